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
// The page is served by this script from 127.0.0.1 on an ephemeral port, so the file is fetched
// cross-origin (the server must send Access-Control-Allow-Origin for the canvas to stay readable).
// Chromium is Debian's (`command -v chromium`, or $CHROMIUM); Playwright never downloads a browser.
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const { execSync } = require('child_process');

const MIN_LUMA_STD = 10;

function usage(msg) {
  process.stderr.write(`play-file.js: ${msg}\n` +
    'usage: node play-file.js [--shots DIR] [--seconds N] [--deadline S] [--width W] [--height H] URL\n');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { shots: null, seconds: 2, deadline: 60, width: 1280, height: 720, url: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--shots') opts.shots = value();
    else if (a === '--seconds') opts.seconds = Number(value());
    else if (a === '--deadline') opts.deadline = Number(value());
    else if (a === '--width') opts.width = Number(value());
    else if (a === '--height') opts.height = Number(value());
    else if (a === '-h' || a === '--help') usage('help');
    else if (a.startsWith('--')) usage(`unknown option ${a}`);
    else if (opts.url) usage('only one URL');
    else opts.url = a;
  }
  if (!opts.url) usage('no URL given');
  let scheme;
  try { scheme = new URL(opts.url).protocol; } catch (e) { usage(`not a URL: ${opts.url}`); }
  if (!['http:', 'https:'].includes(scheme)) usage(`unsupported scheme in ${opts.url}`);
  for (const k of ['seconds', 'deadline', 'width', 'height']) {
    if (!(opts[k] > 0)) usage(`--${k} must be a positive number`);
  }
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

// Serves only the page: nothing else in this directory is reachable.
function startPageServer() {
  const page = path.join(__dirname, 'mp4.html');
  const server = http.createServer((req, res) => {
    if (new URL(req.url, 'http://x').pathname !== '/mp4.html') { res.writeHead(404).end(); return; }
    fs.readFile(page, (err, body) => {
      if (err) { res.writeHead(500).end(String(err)); return; }
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' }).end(body);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

const round = (x, d = 2) => (typeof x === 'number' && isFinite(x) ? Number(x.toFixed(d)) : x);

async function playCase(browser, pageBase, url, opts) {
  const result = {
    case: 'mp4-file', url, ok: false, failures: [],
    width: null, height: null, duration_s: null, playing_ms: null, advance_s: null, elapsed_ms: null,
    frames_decoded: null, luma_mean: null, luma_std: null, moving: null,
    errors: [], console_errors: [], screenshot: null,
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
    await page.goto(`${pageBase}/mp4.html?src=${encodeURIComponent(url)}`, { timeout: 10000 });

    const codecs = await page.evaluate(() => window.__codecs);
    if (!codecs || !codecs.h264_aac) {
      fail('this Chromium cannot play H.264+AAC MP4 (a build without proprietary codecs?)');
      return result;
    }

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
      fail(state === 'err' ? 'media error before playing' : 'no `playing` event within 20 s');
      return result;
    }
    result.playing_ms = Date.now() - t0;

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
        ct: v.currentTime, w: v.videoWidth, h: v.videoHeight, duration: v.duration,
        frames: q.totalVideoFrames, stats: window.__frameStats(),
      };
    });
    const s1 = await sample();
    await page.waitForTimeout(500);
    const s2 = await sample();

    result.advance_s = round(s2.ct - start.ct);
    result.width = s2.w;
    result.height = s2.h;
    result.duration_s = round(s2.duration, 3);
    result.frames_decoded = s2.frames;
    result.luma_mean = round(s2.stats.mean, 1);
    result.luma_std = round(s2.stats.std, 1);
    result.moving = s1.stats.hash !== s2.stats.hash;

    if (s2.w !== opts.width || s2.h !== opts.height) {
      fail(`decoded size ${s2.w}x${s2.h}, expected ${opts.width}x${opts.height}`);
    }
    if (!(s2.duration > 0 && isFinite(s2.duration))) fail(`duration ${s2.duration}`);
    if (!(s2.stats.std > MIN_LUMA_STD)) fail(`picture has luma std ${result.luma_std} (blank or black frame?)`);
    if (!result.moving && !(s2.ct >= s2.duration)) fail('the picture did not change over 0.5 s');
    if (!(s2.frames > start.frames)) fail(`decoded frames did not increase (${start.frames} -> ${s2.frames})`);

    if (opts.shots) {
      result.screenshot = path.resolve(opts.shots, 'mp4-file.png');
      await page.screenshot({ path: result.screenshot, timeout: 10000 });
    }
  } catch (e) {
    fail('runner: ' + (e && e.message ? e.message.split('\n')[0] : String(e)));
  } finally {
    try {
      const pages = ctx.pages();
      if (pages.length) {
        const errs = await pages[0].evaluate(() => window.__errors || []);
        result.errors.push(...errs);
      }
    } catch (e) { /* the page is gone; failures already say why */ }
    if (result.errors.length) fail(`media/page errors: ${result.errors.join(' | ')}`);
    result.elapsed_ms = Date.now() - t0;
    result.ok = result.failures.length === 0;
    await ctx.close().catch(() => {});
  }
  return result;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const report = r => process.stdout.write(JSON.stringify(r) + '\n');
  const setupFailure = msg => {
    report({ case: 'mp4-file', url: opts.url, ok: false, failures: [msg] });
    process.exit(2);
  };

  // A wedged browser must not hang the caller: give up after the deadline.
  const watchdog = setTimeout(() => {
    process.stderr.write(`play-file.js: deadline of ${opts.deadline} s exceeded\n`);
    process.exit(1);
  }, opts.deadline * 1000);
  watchdog.unref();

  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch (e) {
    setupFailure('playwright-core is not installed: run scripts/setup-browser');
  }
  const executablePath = findChromium();
  if (!executablePath) setupFailure('chromium not found: run scripts/setup-browser');
  if (opts.shots) fs.mkdirSync(opts.shots, { recursive: true });

  const server = await startPageServer();
  const pageBase = `http://127.0.0.1:${server.address().port}`;
  let browser;
  let ok = false;
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
    process.stderr.write(`play-file.js: ${browser.version()} launched in ${Date.now() - t} ms, page at ${pageBase}\n`);
    const r = await playCase(browser, pageBase, opts.url, opts);
    ok = r.ok;
    report(r);
  } catch (e) {
    process.stderr.write(`play-file.js: ${e && e.stack ? e.stack : e}\n`);
    report({ case: 'mp4-file', url: opts.url, ok: false,
      failures: ['runner: ' + (e && e.message ? e.message.split('\n')[0] : String(e))] });
  } finally {
    if (browser) await browser.close().catch(() => {});
    server.close();
  }
  process.exit(ok ? 0 : 1);
}

main();
