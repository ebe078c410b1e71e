#!/usr/bin/env node
// Plays one recorded MP4 file (an http:// URL, e.g. Rill's /app/stream/NAME.mp4) in headless Debian
// Chromium with a plain <video> element (mp4.html) and checks that a real picture plays: `playing`
// fires, currentTime advances by more than --seconds, the decoded size is 1280x720 (or
// --width/--height), the canvas picture has contrast (luma std > 10) and changes over time, decoded
// frames increase, and the page reports no media error. Also reports the file's duration as the
// browser sees it (known at loadedmetadata only when `moov` is readable, as in a faststart MP4).
//
//   node play-file.js [--shots DIR] [--seconds N] [--deadline S] [--width W] [--height H] URL
//
// Prints one JSON line on stdout ({"case", "url", "ok", "failures", "width", ...}) and exits 0 when
// the case passed, 1 when it failed, 2 on a usage or setup error. Diagnostics go to stderr.
//
// The page is served by runner.js from 127.0.0.1 on an ephemeral port, so the file is fetched
// cross-origin (the server must send Access-Control-Allow-Origin for the canvas to stay readable).
// Chromium is Debian's (`command -v chromium`, or $CHROMIUM); Playwright never downloads a browser.
'use strict';

const runner = require('./runner');

const usage = runner.usageFor('play-file.js',
  'node play-file.js [--shots DIR] [--seconds N] [--deadline S] [--width W] [--height H] URL');

const opts = runner.parseArgs(process.argv.slice(2), {
  usage,
  defaults: { deadline: 60, width: 1280, height: 720, url: null },
  options: { '--width': 'width', '--height': 'height' },
  positional: (a, o) => {
    if (o.url) usage('only one URL');
    o.url = a;
  },
});
if (!opts.url) usage('no URL given');
let scheme;
try { scheme = new URL(opts.url).protocol; } catch (e) { usage(`not a URL: ${opts.url}`); }
if (!['http:', 'https:'].includes(scheme)) usage(`unsupported scheme in ${opts.url}`);
runner.requirePositive(opts, ['seconds', 'deadline', 'width', 'height'], usage);

runner.run({
  script: 'play-file.js',
  opts,
  cases: [{
    name: 'mp4-file',
    id: { url: opts.url },
    fields: { duration_s: null },
    page: `mp4.html?src=${encodeURIComponent(opts.url)}`,
    codecsFailure: 'this Chromium cannot play H.264+AAC MP4 (a build without proprietary codecs?)',
    errorWord: 'media',
    width: opts.width,
    height: opts.height,
    // A short file may have ended by the second sample and rightly show its last picture.
    stillAtEndOk: true,
    checkSample: (s, result, fail) => {
      result.duration_s = runner.round(s.duration, 3);
      if (!(s.duration > 0 && isFinite(s.duration))) fail(`duration ${s.duration}`);
    },
  }],
  files: ['mp4.html', 'probe.js'],
});
