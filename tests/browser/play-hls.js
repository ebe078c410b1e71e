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
// The pages are served by this script from 127.0.0.1 on an ephemeral port, so the stream is fetched
// cross-origin (Rill must send Access-Control-Allow-Origin). Chromium is Debian's (`command -v
// chromium`, or $CHROMIUM); Playwright never downloads a browser.
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const { execSync } = require('child_process');

const EXPECT_WIDTH = 1280;
const EXPECT_HEIGHT = 720;
const MIN_LUMA_STD = 10;
const KINDS = { hls: 'hls.html', llhls: 'hls.html', dash: 'dash.html' };
const PLAYING_TIMEOUT_MS = 30000;

function usage(msg) {
  process.stderr.write(`play-hls.js: ${msg}\nusage: node play-hls.js [--shots DIR] [--seconds N] [--deadline S] name,kind,url...\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { shots: null, seconds: 2, deadline: 120, cases: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--shots') opts.shots = value();
    else if (a === '--seconds') opts.seconds = Number(value());
    else if (a === '--deadline') opts.deadline = Number(value());
    else if (a === '-h' || a === '--help') usage('help');
    else if (a.startsWith('--')) usage(`unknown option ${a}`);
    else {
      const [name, kind, ...rest] = a.split(',');
      const url = rest.join(',');
      if (!name || !KINDS[kind] || !url) usage(`bad case ${a}`);
      try { new URL(url); } catch (e) { usage(`not a URL: ${url}`); }
      opts.cases.push({ name, kind, url });
    }
  }
  if (!opts.cases.length) usage('no case given');
  if (!(opts.seconds > 0)) usage('--seconds must be a positive number');
  if (!(opts.deadline > 0)) usage('--deadline must be a positive number');
  return opts;
}

function findChromium() {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  try {
    return execSync('command -v chromium', { stdio: ['ignore', 'pipe', 'ignore'], shell: '/bin/sh' })
      .toString().trim() || null;
  } catch (e) {
    return null;
  }
}

const PLAYER_FILES = {
  '/node_modules/hls.js/dist/hls.min.js': 'node_modules/hls.js/dist/hls.min.js',
  '/node_modules/dashjs/dist/modern/umd/dash.all.min.js': 'node_modules/dashjs/dist/modern/umd/dash.all.min.js',
};

// Serves only the pages, the probe and the player scripts: nothing else here is reachable.
function startPageServer() {
  const files = {
    '/hls.html': ['hls.html', 'text/html; charset=utf-8'],
    '/dash.html': ['dash.html', 'text/html; charset=utf-8'],
    '/probe.js': ['probe.js', 'text/javascript; charset=utf-8'],
  };
  for (const [route, file] of Object.entries(PLAYER_FILES)) files[route] = [file, 'text/javascript; charset=utf-8'];
  const server = http.createServer((req, res) => {
    const entry = files[new URL(req.url, 'http://x').pathname];
    if (!entry) { res.writeHead(404).end(); return; }
    fs.readFile(path.join(__dirname, entry[0]), (err, body) => {
      if (err) { res.writeHead(500).end(String(err)); return; }
      res.writeHead(200, { 'Content-Type': entry[1], 'Cache-Control': 'no-store' }).end(body);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

const round = (x, d = 3) => (typeof x === 'number' && isFinite(x) ? Number(x.toFixed(d)) : x);
const median = xs => {
  const v = xs.filter(x => typeof x === 'number' && isFinite(x)).sort((a, b) => a - b);
  return v.length ? v[Math.floor(v.length / 2)] : null;
};
const report = r => process.stdout.write(JSON.stringify(r) + '\n');

async function playCase(browser, pageBase, c, opts) {
  const result = {
    case: c.name, kind: c.kind, url: c.url, ok: false, failures: [], player: null,
    ready_unix_ms: null, manifest_unix_ms: null, playing_unix_ms: null,
    width: null, height: null, advance_s: null,
    live_latency_s: null, edge_latency_s: null, target_latency_s: null, latency_samples: [],
    frames_decoded: null, frames_dropped: null, luma_mean: null, luma_std: null, color_bins: null,
    moving: null, errors: [], warnings: [], console_errors: [], screenshot: null,
  };
  const fail = msg => result.failures.push(msg);
  const ctx = await browser.newContext({ viewport: { width: 640, height: 360 } });
  let page;
  try {
    page = await ctx.newPage();
    page.on('pageerror', e => result.errors.push('pageerror:' + e.message));
    page.on('console', m => {
      if (m.type() === 'error' && result.console_errors.length < 20) result.console_errors.push(m.text());
    });
    const query = `src=${encodeURIComponent(c.url)}${c.kind === 'llhls' ? '&ll=1' : ''}`;
    await page.goto(`${pageBase}/${KINDS[c.kind]}?${query}`, { timeout: 10000 });
    const codecs = await page.evaluate(() => window.__codecs);
    if (!codecs || !codecs.h264_aac) {
      fail('this Chromium cannot decode H.264+AAC through MSE (a build without proprietary codecs?)');
      return result;
    }
    result.ready_unix_ms = Date.now();
    report({ event: 'ready', case: c.name, unix_ms: result.ready_unix_ms });

    let state;
    try {
      const h = await page.waitForFunction(
        () => (window.__errors.length && 'err') || (window.__events.some(e => e[0] === 'playing') && 'ok'),
        null, { timeout: PLAYING_TIMEOUT_MS, polling: 20 });
      state = await h.jsonValue();
    } catch (e) {
      state = 'timeout';
    }
    const timing = await page.evaluate(() => ({
      t: window.__timing, ev: window.__events, player: window.__playerVersion || null,
    }));
    result.player = timing.player;
    result.manifest_unix_ms = timing.t.manifest_unix_ms || null;
    const playing = timing.ev.find(e => e[0] === 'playing');
    result.playing_unix_ms = playing ? playing[2] : null;
    if (state !== 'ok') {
      fail(state === 'err' ? 'player error before playing' : `no \`playing\` event within ${PLAYING_TIMEOUT_MS / 1000} s`);
      return result;
    }

    // A live stream does not start at currentTime 0, so measure the advance from the first `playing`.
    const start = await page.evaluate(() => ({
      ct: window.__video.currentTime,
      frames: window.__video.getVideoPlaybackQuality().totalVideoFrames,
    }));
    try {
      await page.waitForFunction(([ct, n]) => window.__video.currentTime - ct > n,
        [start.ct, opts.seconds], { timeout: (opts.seconds + 15) * 1000, polling: 100 });
    } catch (e) {
      fail(`currentTime did not advance by ${opts.seconds} s within ${opts.seconds + 15} s`);
    }

    // Latency once playback has settled: several samples, the median reported.
    for (let i = 0; i < 6; i++) {
      result.latency_samples.push(await page.evaluate(() => window.__latency()));
      await page.waitForTimeout(200);
    }
    result.live_latency_s = round(median(result.latency_samples.map(s => s.live_latency_s)));
    result.edge_latency_s = round(median(result.latency_samples.map(s => s.edge_latency_s)));
    result.target_latency_s = round(median(result.latency_samples.map(s => s.target_latency_s)));
    if (result.live_latency_s === null) fail('the player reported no live latency');

    const sample = () => page.evaluate(() => {
      const v = window.__video;
      const q = v.getVideoPlaybackQuality();
      return {
        ct: v.currentTime, w: v.videoWidth, h: v.videoHeight,
        frames: q.totalVideoFrames, dropped: q.droppedVideoFrames, stats: window.__frameStats(),
      };
    });
    const s1 = await sample();
    await page.waitForTimeout(500);
    const s2 = await sample();
    result.advance_s = round(s2.ct - start.ct, 2);
    result.width = s2.w;
    result.height = s2.h;
    result.frames_decoded = s2.frames;
    result.frames_dropped = s2.dropped;
    result.luma_mean = round(s2.stats.mean, 1);
    result.luma_std = round(s2.stats.std, 1);
    result.color_bins = s2.stats.bins;
    result.moving = s1.stats.hash !== s2.stats.hash;

    if (s2.w !== EXPECT_WIDTH || s2.h !== EXPECT_HEIGHT) {
      fail(`decoded size ${s2.w}x${s2.h}, expected ${EXPECT_WIDTH}x${EXPECT_HEIGHT}`);
    }
    if (!(s2.stats.std > MIN_LUMA_STD)) fail(`picture has luma std ${result.luma_std} (blank or black frame?)`);
    if (!result.moving) fail('the picture did not change over 0.5 s');
    if (!(s2.frames > start.frames)) fail(`decoded frames did not increase (${start.frames} -> ${s2.frames})`);

    if (opts.shots) {
      result.screenshot = path.resolve(opts.shots, `${c.name}.png`);
      await page.screenshot({ path: result.screenshot, timeout: 10000 });
    }
  } catch (e) {
    fail('runner: ' + (e && e.message ? e.message.split('\n')[0] : String(e)));
  } finally {
    try {
      if (page) {
        const p = await page.evaluate(() => ({ e: window.__errors || [], w: window.__warnings || [] }));
        result.errors.push(...p.e);
        result.warnings.push(...p.w.slice(0, 20));
      }
    } catch (e) { /* the page is gone; failures already say why */ }
    if (result.errors.length) fail(`player/page errors: ${result.errors.join(' | ')}`);
    result.ok = result.failures.length === 0;
    await ctx.close().catch(() => {});
  }
  return result;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const setupFailure = msg => {
    opts.cases.forEach(c => report({ case: c.name, kind: c.kind, url: c.url, ok: false, failures: [msg] }));
    process.exit(2);
  };
  const watchdog = setTimeout(() => {
    process.stderr.write(`play-hls.js: deadline of ${opts.deadline} s exceeded\n`);
    process.exit(1);
  }, opts.deadline * 1000);
  watchdog.unref();

  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch (e) {
    setupFailure('playwright-core is not installed: run scripts/setup-browser');
  }
  for (const file of Object.values(PLAYER_FILES)) {
    if (!fs.existsSync(path.join(__dirname, file))) setupFailure(`${file} is not installed: run scripts/setup-browser`);
  }
  const executablePath = findChromium();
  if (!executablePath) setupFailure('chromium not found: run scripts/setup-browser');
  if (opts.shots) fs.mkdirSync(opts.shots, { recursive: true });

  const server = await startPageServer();
  const pageBase = `http://127.0.0.1:${server.address().port}`;
  let browser;
  let allOk = true;
  let reported = 0;
  try {
    const t = Date.now();
    browser = await chromium.launch({
      executablePath,
      timeout: 30000,
      args: [
        '--no-sandbox', // the tests run as root
        '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--autoplay-policy=no-user-gesture-required',
      ],
    });
    process.stderr.write(`play-hls.js: ${browser.version()} launched in ${Date.now() - t} ms, pages at ${pageBase}\n`);
    for (const c of opts.cases) {
      const r = await playCase(browser, pageBase, c, opts);
      allOk = allOk && r.ok;
      report(r);
      reported++;
    }
  } catch (e) {
    process.stderr.write(`play-hls.js: ${e && e.stack ? e.stack : e}\n`);
    allOk = false;
    const msg = 'runner: ' + (e && e.message ? e.message.split('\n')[0] : String(e));
    for (const c of opts.cases.slice(reported)) report({ case: c.name, kind: c.kind, url: c.url, ok: false, failures: [msg] });
  } finally {
    if (browser) await browser.close().catch(() => {});
    server.close();
  }
  process.exit(allOk ? 0 : 1);
}

main();
