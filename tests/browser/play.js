#!/usr/bin/env node
// Plays live FLV URLs (http:// HTTP-FLV or ws:// WS-FLV) in headless Debian Chromium with mpegts.js
// and checks that a real 1280x720 picture plays: `playing` fires, currentTime advances by more than
// --seconds, the decoded size is 1280x720, the canvas picture has contrast (luma std > 10) and
// changes over time, decoded frames increase, and neither the player nor the page reports an error.
//
//   node play.js [--shots DIR] [--seconds N] [--deadline S] URL...
//
// Prints one JSON line per URL on stdout ({"case", "url", "ok", "failures", "width", ...}) and exits
// 0 when every case passed, 1 when one failed, 2 on a usage or setup error. Diagnostics go to stderr.
//
// The page is served by runner.js from 127.0.0.1 on an ephemeral port, so it is a real http origin
// and the stream is fetched cross-origin (Rill must send Access-Control-Allow-Origin). Chromium is
// Debian's (`command -v chromium`, or $CHROMIUM); Playwright never downloads a browser.
'use strict';

const runner = require('./runner');

const MPEGTS = 'node_modules/mpegts.js/dist/mpegts.js';
const usage = runner.usageFor('play.js', 'node play.js [--shots DIR] [--seconds N] [--deadline S] URL...');

const opts = runner.parseArgs(process.argv.slice(2), {
  usage,
  defaults: { deadline: 70, urls: [] },
  positional: (a, o) => o.urls.push(a),
});
if (!opts.urls.length) usage('no URL given');
runner.requirePositive(opts, ['seconds', 'deadline'], usage);
for (const u of opts.urls) {
  let scheme;
  try { scheme = new URL(u).protocol; } catch (e) { usage(`not a URL: ${u}`); }
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(scheme)) usage(`unsupported scheme in ${u}`);
}

// Cases are named after the transport: http-flv, ws-flv, then http-flv-2 and so on for repeats.
const seen = new Map();
const cases = opts.urls.map(url => {
  const base = new URL(url).protocol.startsWith('ws') ? 'ws-flv' : 'http-flv';
  const n = (seen.get(base) || 0) + 1;
  seen.set(base, n);
  return {
    name: n === 1 ? base : `${base}-${n}`,
    id: { url },
    page: `flv.html?src=${encodeURIComponent(url)}`,
  };
});

runner.run({
  script: 'play.js',
  opts,
  cases,
  files: ['flv.html', 'probe.js', MPEGTS],
  required: [[MPEGTS, 'mpegts.js']],
});
