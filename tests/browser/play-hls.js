#!/usr/bin/env node
// Plays live HLS (hls.js), LL-HLS (hls.js lowLatencyMode) and DASH (dash.js) URLs in headless Debian
// Chromium and checks that a real 1280x720 picture plays: `playing` fires, currentTime advances by
// more than --seconds, the decoded size is 1280x720, the canvas picture has contrast (luma std > 10)
// and changes, decoded frames increase, and the player reports no fatal error. It also measures
// live latency: now minus the wall-clock time of the frame playing (hls.js `playingDate`, from
// EXT-X-PROGRAM-DATE-TIME) or dash.js `getCurrentLiveLatency()`.
//
//   node play-hls.js [--shots DIR] [--seconds N] [--deadline S] CASE...
//   CASE = name,kind,url   kind = hls | llhls | dash
//
// Cases run one after another in one browser. For each, the page is opened first and waits for the
// manifest; then this script prints {"event":"ready","case":name,"unix_ms":...} so the caller can
// start the stream and time glass-to-playable from its own clock. Then it prints one result line
// ({"case", "kind", "url", "ok", "failures", "playing_unix_ms", "live_latency_s", ...}). Exit 0
// when every case passed, 1 when one failed, 2 on a usage or setup error. Diagnostics go to stderr.
//
// The pages are served by runner.js from 127.0.0.1 on an ephemeral port, so the stream is fetched
// cross-origin (Rill must send Access-Control-Allow-Origin). Chromium is Debian's (`command -v
// chromium`, or $CHROMIUM); Playwright never downloads a browser.
'use strict';

const runner = require('./runner');

const KINDS = { hls: 'hls.html', llhls: 'hls.html', dash: 'dash.html' };
const PLAYERS = ['node_modules/hls.js/dist/hls.min.js', 'node_modules/dashjs/dist/modern/umd/dash.all.min.js'];
const usage = runner.usageFor('play-hls.js',
  'node play-hls.js [--shots DIR] [--seconds N] [--deadline S] name,kind,url...');

const median = xs => {
  const v = xs.filter(x => typeof x === 'number' && isFinite(x)).sort((a, b) => a - b);
  return v.length ? v[Math.floor(v.length / 2)] : null;
};

const opts = runner.parseArgs(process.argv.slice(2), {
  usage,
  defaults: { deadline: 120, cases: [] },
  positional: (a, o) => {
    const [name, kind, ...rest] = a.split(',');
    const url = rest.join(',');
    if (!name || !KINDS[kind] || !url) usage(`bad case ${a}`);
    try { new URL(url); } catch (e) { usage(`not a URL: ${url}`); }
    o.cases.push({ name, kind, url });
  },
});
if (!opts.cases.length) usage('no case given');
runner.requirePositive(opts, ['seconds', 'deadline'], usage);

const cases = opts.cases.map(({ name, kind, url }) => ({
  name,
  id: { kind, url },
  fields: {
    player: null, ready_unix_ms: null, manifest_unix_ms: null, playing_unix_ms: null,
    live_latency_s: null, edge_latency_s: null, target_latency_s: null, latency_samples: [],
  },
  page: `${KINDS[kind]}?src=${encodeURIComponent(url)}${kind === 'llhls' ? '&ll=1' : ''}`,
  playingTimeoutMs: 30000,
  polling: 20,
  onReady: result => {
    result.ready_unix_ms = Date.now();
    runner.report({ event: 'ready', case: name, unix_ms: result.ready_unix_ms });
  },
  afterWait: async (page, result) => {
    const timing = await page.evaluate(() => ({
      t: window.__timing, ev: window.__events, player: window.__playerVersion || null,
    }));
    result.player = timing.player;
    result.manifest_unix_ms = timing.t.manifest_unix_ms || null;
    const playing = timing.ev.find(e => e[0] === 'playing');
    result.playing_unix_ms = playing ? playing[2] : null;
  },
  // Latency once playback has settled: several samples, the median reported.
  afterAdvance: async (page, result, fail) => {
    for (let i = 0; i < 6; i++) {
      result.latency_samples.push(await page.evaluate(() => window.__latency()));
      await page.waitForTimeout(200);
    }
    const med = key => runner.round(median(result.latency_samples.map(s => s[key])), 3);
    result.live_latency_s = med('live_latency_s');
    result.edge_latency_s = med('edge_latency_s');
    result.target_latency_s = med('target_latency_s');
    if (result.live_latency_s === null) fail('the player reported no live latency');
  },
}));

runner.run({
  script: 'play-hls.js',
  opts,
  cases,
  files: ['hls.html', 'dash.html', 'probe.js', ...PLAYERS],
  required: PLAYERS.map(file => [file, file]),
});
