// Shared by play.js, play-hls.js and play-file.js (CommonJS): argument parsing, the loopback page
// server, Debian's Chromium through playwright-core, and one playback case from page load to the
// result line. A case must reach `playing`, advance currentTime by more than --seconds, decode the
// expected size, show a picture with contrast (luma std > 10) that changes over 0.5 s (or, while the
// player rebuffers with currentTime standing still, within 2.5 s), decode more frames, and report no
// player, media or page error.
//
// Results are JSON lines on stdout; diagnostics go to stderr. Exit 0 when every case passed, 1 when
// one failed, 2 on a usage or setup error.
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const { execSync } = require('child_process');

const EXPECT_WIDTH = 1280;
const EXPECT_HEIGHT = 720;
const MIN_LUMA_STD = 10;
// Windows of 0.5 s the picture gets to change in (see playCase).
const MOVE_WINDOWS = 5;
const CONTENT_TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8' };

const round = (x, d) => (typeof x === 'number' && isFinite(x) ? Number(x.toFixed(d)) : x);
const report = r => process.stdout.write(JSON.stringify(r) + '\n');
const firstLine = e => (e && e.message ? e.message.split('\n')[0] : String(e));

// A usage(msg) that prints `usageLine` and exits 2.
function usageFor(script, usageLine) {
  return msg => {
    process.stderr.write(`${script}: ${msg}\nusage: ${usageLine}\n`);
    process.exit(2);
  };
}

// Parses --shots, --seconds, --deadline, the numeric `options` ({'--width': 'width'}) and hands every
// other argument to `positional(arg, opts)`. Every number must be positive.
function parseArgs(argv, { usage, defaults, options = {}, positional }) {
  const opts = { shots: null, seconds: 2, ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--shots') opts.shots = value();
    else if (a === '--seconds') opts.seconds = Number(value());
    else if (a === '--deadline') opts.deadline = Number(value());
    else if (options[a]) opts[options[a]] = Number(value());
    else if (a === '-h' || a === '--help') usage('help');
    else if (a.startsWith('--')) usage(`unknown option ${a}`);
    else positional(a, opts);
  }
  return opts;
}

function requirePositive(opts, keys, usage) {
  for (const k of keys) {
    if (!(opts[k] > 0)) usage(`--${k} must be a positive number`);
  }
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

// Serves only `files` (paths relative to this directory, each at /<path>): nothing else here is
// reachable. Served over http rather than file:// so the streams are fetched cross-origin, the way a
// real web player needs Rill's Access-Control-Allow-Origin.
function startPageServer(files) {
  const served = new Set(files.map(f => '/' + f));
  const server = http.createServer((req, res) => {
    const route = new URL(req.url, 'http://x').pathname;
    if (!served.has(route)) { res.writeHead(404).end(); return; }
    fs.readFile(path.join(__dirname, route.slice(1)), (err, body) => {
      if (err) { res.writeHead(500).end(String(err)); return; }
      res.writeHead(200, { 'Content-Type': CONTENT_TYPES[path.extname(route)], 'Cache-Control': 'no-store' })
        .end(body);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

// One case in a fresh browser context. `c` describes it:
//   name, id (fields that identify the case in every line, e.g. {url}), fields (extra result fields),
//   page (path and query on the page server), codecsFailure (message when H.264+AAC is missing),
//   playingTimeoutMs, polling, errorWord ('player' | 'media'), width, height, stillAtEndOk (a file
//   that has ended may show a still picture), and hooks: onReady(result), afterWait(page, result),
//   afterAdvance(page, result, fail), checkSample(s2, result, fail).
async function playCase(browser, pageBase, opts, c) {
  const result = {
    case: c.name, ...c.id, ok: false, failures: [], ...c.fields,
    width: null, height: null, playing_ms: null, advance_s: null, elapsed_ms: null,
    frames_decoded: null, frames_dropped: null, luma_mean: null, luma_std: null, color_bins: null,
    moving: null, errors: [], warnings: [], console_errors: [], screenshot: null,
  };
  const fail = msg => result.failures.push(msg);
  const expectWidth = c.width || EXPECT_WIDTH;
  const expectHeight = c.height || EXPECT_HEIGHT;
  const playingTimeoutMs = c.playingTimeoutMs || 20000;
  const errorWord = c.errorWord || 'player';
  const t0 = Date.now();
  const ctx = await browser.newContext({ viewport: { width: 640, height: 360 } });
  let page;
  try {
    page = await ctx.newPage();
    page.on('pageerror', e => result.errors.push('pageerror:' + e.message));
    page.on('console', m => {
      if (m.type() === 'error' && result.console_errors.length < 20) result.console_errors.push(m.text());
    });
    await page.goto(`${pageBase}/${c.page}`, { timeout: 10000 });

    const codecs = await page.evaluate(() => window.__codecs);
    if (!codecs || !codecs.h264_aac) {
      fail(c.codecsFailure || 'this Chromium cannot decode H.264+AAC through MSE (a build without proprietary codecs?)');
      return result;
    }
    if (c.onReady) c.onReady(result);

    // Fail fast on a player error instead of waiting out the timeout.
    let state;
    try {
      const h = await page.waitForFunction(
        () => (window.__errors.length && 'err') || (window.__events.some(e => e[0] === 'playing') && 'ok'),
        null, { timeout: playingTimeoutMs, polling: c.polling || 50 });
      state = await h.jsonValue();
    } catch (e) {
      state = 'timeout';
    }
    if (c.afterWait) await c.afterWait(page, result);
    if (state !== 'ok') {
      fail(state === 'err' ? `${errorWord} error before playing` : `no \`playing\` event within ${playingTimeoutMs / 1000} s`);
      return result;
    }
    result.playing_ms = Date.now() - t0;

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
    if (c.afterAdvance) await c.afterAdvance(page, result, fail);

    const sample = () => page.evaluate(() => {
      const v = window.__video;
      const q = v.getVideoPlaybackQuality();
      return {
        ct: v.currentTime, w: v.videoWidth, h: v.videoHeight, duration: v.duration,
        frames: q.totalVideoFrames, dropped: q.droppedVideoFrames, stats: window.__frameStats(),
      };
    });
    // A live player may rebuffer for a moment (hls.js on a stream that has just started joins at its
    // first segment, about a second behind live, and on a busy machine the next one can come late).
    // While it does, currentTime stands still with the picture: such a window is counted in
    // `stall_windows` and the picture gets another, up to MOVE_WINDOWS. A picture that stands still
    // while currentTime goes on is frozen video (e.g. MSE taking an audio gap for a discontinuity)
    // and fails at once.
    const s1 = await sample();
    let s2 = s1;
    let frozen = false;
    result.stall_windows = 0;
    for (let w = 0; w < MOVE_WINDOWS; w++) {
      const before = s2;
      await page.waitForTimeout(500);
      s2 = await sample();
      if (s2.stats.hash !== before.stats.hash) break;
      if (s2.ct - before.ct > 0.25) { frozen = true; break; }
      result.stall_windows++;
      if (c.stillAtEndOk && s2.ct >= s2.duration) break;
    }

    result.advance_s = round(s2.ct - start.ct, 2);
    result.width = s2.w;
    result.height = s2.h;
    result.frames_decoded = s2.frames;
    result.frames_dropped = s2.dropped;
    result.luma_mean = round(s2.stats.mean, 1);
    result.luma_std = round(s2.stats.std, 1);
    result.color_bins = s2.stats.bins;
    result.moving = !frozen && result.stall_windows < MOVE_WINDOWS;

    if (s2.w !== expectWidth || s2.h !== expectHeight) {
      fail(`decoded size ${s2.w}x${s2.h}, expected ${expectWidth}x${expectHeight}`);
    }
    if (c.checkSample) c.checkSample(s2, result, fail);
    if (!(s2.stats.std > MIN_LUMA_STD)) fail(`picture has luma std ${result.luma_std} (blank or black frame?)`);
    if (!result.moving && !(c.stillAtEndOk && s2.ct >= s2.duration)) {
      fail(frozen ? 'the picture stood still over 0.5 s while currentTime advanced (frozen video)'
        : `the picture did not change over ${MOVE_WINDOWS * 0.5} s`);
    }
    if (!(s2.frames > start.frames)) fail(`decoded frames did not increase (${start.frames} -> ${s2.frames})`);

    if (opts.shots) {
      result.screenshot = path.resolve(opts.shots, `${c.name}.png`);
      await page.screenshot({ path: result.screenshot, timeout: 10000 });
    }
  } catch (e) {
    fail('runner: ' + firstLine(e));
  } finally {
    // Read the page's errors last so errors raised during the checks count too.
    try {
      if (page) {
        const p = await page.evaluate(() => ({ e: window.__errors || [], w: window.__warnings || [] }));
        result.errors.push(...p.e);
        result.warnings.push(...p.w.slice(0, 20));
      }
    } catch (e) { /* the page is gone; failures already say why */ }
    if (result.errors.length) fail(`${errorWord}/page errors: ${result.errors.join(' | ')}`);
    result.elapsed_ms = Date.now() - t0;
    result.ok = result.failures.length === 0;
    await ctx.close().catch(() => {});
  }
  return result;
}

// Checks the setup, launches Chromium, serves `files`, runs `cases` (see playCase) one after another
// and exits. `required` lists [file under this directory, what to call it when missing].
async function run({ script, opts, cases, files, required = [] }) {
  const setupFailure = msg => {
    cases.forEach(c => report({ case: c.name, ...c.id, ok: false, failures: [msg] }));
    process.exit(2);
  };

  // A wedged browser must not hang the caller: give up after the deadline.
  const watchdog = setTimeout(() => {
    process.stderr.write(`${script}: deadline of ${opts.deadline} s exceeded\n`);
    process.exit(1);
  }, opts.deadline * 1000);
  watchdog.unref();

  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch (e) {
    setupFailure('playwright-core is not installed: run scripts/setup-browser');
  }
  for (const [file, what] of required) {
    if (!fs.existsSync(path.join(__dirname, file))) setupFailure(`${what} is not installed: run scripts/setup-browser`);
  }
  const executablePath = findChromium();
  if (!executablePath) setupFailure('chromium not found: run scripts/setup-browser');
  if (opts.shots) fs.mkdirSync(opts.shots, { recursive: true });

  const server = await startPageServer(files);
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
    process.stderr.write(`${script}: ${browser.version()} launched in ${Date.now() - t} ms, pages at ${pageBase}\n`);
    for (const c of cases) {
      const r = await playCase(browser, pageBase, opts, c);
      allOk = allOk && r.ok;
      report(r);
      reported++;
    }
  } catch (e) {
    process.stderr.write(`${script}: ${e && e.stack ? e.stack : e}\n`);
    allOk = false;
    // Every case still gets its result line, so the caller never has to guess.
    const msg = 'runner: ' + firstLine(e);
    for (const c of cases.slice(reported)) report({ case: c.name, ...c.id, ok: false, failures: [msg] });
  } finally {
    if (browser) await browser.close().catch(() => {});
    server.close();
  }
  process.exit(allOk ? 0 : 1);
}

module.exports = { usageFor, parseArgs, requirePositive, round, report, run };
