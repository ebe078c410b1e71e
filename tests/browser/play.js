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
// The page is served by this script from 127.0.0.1 on an ephemeral port, so it is a real http origin
// and the stream is fetched cross-origin (Rill must send Access-Control-Allow-Origin). Chromium is
// Debian's (`command -v chromium`, or $CHROMIUM); Playwright never downloads a browser.
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const { execSync } = require('child_process');

const EXPECT_WIDTH = 1280;
const EXPECT_HEIGHT = 720;
const MIN_LUMA_STD = 10;

function usage(msg) {
  process.stderr.write(`play.js: ${msg}\nusage: node play.js [--shots DIR] [--seconds N] [--deadline S] URL...\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { shots: null, seconds: 2, deadline: 70, urls: [] };
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
    else opts.urls.push(a);
  }
  if (!opts.urls.length) usage('no URL given');
  if (!(opts.seconds > 0)) usage('--seconds must be a positive number');
  if (!(opts.deadline > 0)) usage('--deadline must be a positive number');
  for (const u of opts.urls) {
    let scheme;
    try { scheme = new URL(u).protocol; } catch (e) { usage(`not a URL: ${u}`); }
    if (!['http:', 'https:', 'ws:', 'wss:'].includes(scheme)) usage(`unsupported scheme in ${u}`);
  }
  return opts;
}

function caseNames(urls) {
  const seen = new Map();
  return urls.map(u => {
    const scheme = new URL(u).protocol.replace(':', '');
    const base = scheme.startsWith('ws') ? 'ws-flv' : 'http-flv';
    const n = (seen.get(base) || 0) + 1;
    seen.set(base, n);
    return n === 1 ? base : `${base}-${n}`;
  });
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

// Serves only the page and the player script: nothing else in this directory is reachable.
function startPageServer() {
  const files = {
    '/flv.html': [path.join(__dirname, 'flv.html'), 'text/html; charset=utf-8'],
    '/node_modules/mpegts.js/dist/mpegts.js':
      [path.join(__dirname, 'node_modules/mpegts.js/dist/mpegts.js'), 'text/javascript; charset=utf-8'],
  };
  const server = http.createServer((req, res) => {
    const entry = files[new URL(req.url, 'http://x').pathname];
    if (!entry) { res.writeHead(404).end(); return; }
    fs.readFile(entry[0], (err, body) => {
      if (err) { res.writeHead(500).end(String(err)); return; }
      res.writeHead(200, { 'Content-Type': entry[1], 'Cache-Control': 'no-store' }).end(body);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

const round = (x, d = 2) => (typeof x === 'number' && isFinite(x) ? Number(x.toFixed(d)) : x);

async function playCase(browser, pageBase, name, url, opts) {
  const result = {
    case: name, url, ok: false, failures: [],
    width: null, height: null, playing_ms: null, advance_s: null, elapsed_ms: null,
    frames_decoded: null, frames_dropped: null, luma_mean: null, luma_std: null, color_bins: null,
    moving: null, errors: [], console_errors: [], screenshot: null,
  };
  const fail = msg => result.failures.push(msg);
  const t0 = Date.now();
  const ctx = await browser.newContext({ viewport: { width: 640, height: 360 } });
  try {
    const page = await ctx.newPage();
    page.on('pageerror', e => result.errors.push('pageerror:' + e.message));
    page.on('console', m => {
      if (m.type() === 'error' && result.console_errors.length < 20) result.console_errors.push(m.text());
    });
    await page.goto(`${pageBase}/flv.html?src=${encodeURIComponent(url)}`, { timeout: 10000 });

    const codecs = await page.evaluate(() => window.__codecs);
    if (!codecs || !codecs.h264_aac) {
      fail('this Chromium cannot decode H.264+AAC through MSE (a build without proprietary codecs?)');
      return result;
    }

    // Fail fast on a player error instead of waiting out the timeout.
    let state;
    try {
      const h = await page.waitForFunction(
        () => (window.__errors.length && 'err') || (window.__events.some(e => e[0] === 'playing') && 'ok'),
        null, { timeout: 20000, polling: 50 });
      state = await h.jsonValue();
    } catch (e) {
      state = 'timeout';
    }
    if (state !== 'ok') {
      fail(state === 'err' ? 'player error before playing' : 'no `playing` event within 20 s');
      return result;
    }
    result.playing_ms = Date.now() - t0;

    // A live stream does not start at currentTime 0, so measure the advance from the first `playing`.
    const start = await page.evaluate(() => ({
      ct: window.__video.currentTime,
      frames: window.__video.getVideoPlaybackQuality().totalVideoFrames,
    }));
    try {
      await page.waitForFunction(([c, n]) => window.__video.currentTime - c > n,
        [start.ct, opts.seconds], { timeout: (opts.seconds + 15) * 1000, polling: 100 });
    } catch (e) {
      fail(`currentTime did not advance by ${opts.seconds} s within ${opts.seconds + 15} s`);
    }

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

    result.advance_s = round(s2.ct - start.ct);
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
      result.screenshot = path.resolve(opts.shots, `${name}.png`);
      await page.screenshot({ path: result.screenshot, timeout: 10000 });
    }
  } catch (e) {
    fail('runner: ' + (e && e.message ? e.message.split('\n')[0] : String(e)));
  } finally {
    // Read the player's errors last so errors raised during the checks count too.
    try {
      const pages = ctx.pages();
      if (pages.length) {
        const errs = await pages[0].evaluate(() => window.__errors || []);
        result.errors.push(...errs);
      }
    } catch (e) { /* the page is gone; failures already say why */ }
    if (result.errors.length) fail(`player/page errors: ${result.errors.join(' | ')}`);
    result.elapsed_ms = Date.now() - t0;
    result.ok = result.failures.length === 0;
    await ctx.close().catch(() => {});
  }
  return result;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const names = caseNames(opts.urls);
  const report = r => process.stdout.write(JSON.stringify(r) + '\n');
  const setupFailure = msg => {
    opts.urls.forEach((url, i) => report({ case: names[i], url, ok: false, failures: [msg] }));
    process.exit(2);
  };

  // A wedged browser must not hang the caller: give up after the deadline.
  const watchdog = setTimeout(() => {
    process.stderr.write(`play.js: deadline of ${opts.deadline} s exceeded\n`);
    process.exit(1);
  }, opts.deadline * 1000);
  watchdog.unref();

  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch (e) {
    setupFailure('playwright-core is not installed: run scripts/setup-browser');
  }
  if (!fs.existsSync(path.join(__dirname, 'node_modules/mpegts.js/dist/mpegts.js'))) {
    setupFailure('mpegts.js is not installed: run scripts/setup-browser');
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
    process.stderr.write(`play.js: ${browser.version()} launched in ${Date.now() - t} ms, page at ${pageBase}\n`);
    for (let i = 0; i < opts.urls.length; i++) {
      const r = await playCase(browser, pageBase, names[i], opts.urls[i], opts);
      allOk = allOk && r.ok;
      report(r);
      reported++;
    }
  } catch (e) {
    process.stderr.write(`play.js: ${e && e.stack ? e.stack : e}\n`);
    allOk = false;
    // Every URL still gets its result line, so the caller never has to guess.
    const msg = 'runner: ' + (e && e.message ? e.message.split('\n')[0] : String(e));
    for (let i = reported; i < opts.urls.length; i++) {
      report({ case: names[i], url: opts.urls[i], ok: false, failures: [msg] });
    }
  } finally {
    if (browser) await browser.close().catch(() => {});
    server.close();
  }
  process.exit(allOk ? 0 : 1);
}

main();
