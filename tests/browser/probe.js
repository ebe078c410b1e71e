// Probe shared by flv.html, mp4.html, hls.html and dash.html (load it after <video id="v">): records
// media events with wall-clock times into window.__events ([name, ms since page start, Unix ms]),
// player and media errors into window.__errors (non-fatal ones into window.__warnings), and exposes
// window.__video, window.__codecs (H.264+AAC through MSE; a page playing without MSE overrides it)
// and window.__frameStats() (luma mean/std-dev, colour bins and a hash of the current frame drawn
// into a 160x90 canvas).
//
// It also holds the start gate: window.__waitForManifest(url) resolves once `url` answers 200
// with `needle` in its body, so a page can be opened before the stream exists and start its
// player as soon as the first segment is listed.
'use strict';
window.__events = [];
window.__errors = [];
window.__warnings = [];
window.__timing = { page_unix_ms: Date.now() };
// Every page shows only the video, filling the viewport (and so the screenshots).
document.head.insertAdjacentHTML('beforeend',
  '<style>html, body { margin: 0; background: #000; } video { width: 100vw; height: 100vh; display: block; }</style>');
const video = document.getElementById('v');
window.__video = video;

const pageT0 = performance.now();
for (const name of ['loadedmetadata', 'canplay', 'playing', 'waiting', 'stalled', 'ended', 'error']) {
  video.addEventListener(name, () => {
    window.__events.push([name, Math.round(performance.now() - pageT0), Date.now()]);
    if (name === 'error' && video.error) {
      window.__errors.push('media:' + video.error.code + ':' + (video.error.message || ''));
    }
  });
}

// A small canvas is enough to tell a real picture from a black or blank frame, and cheap to read.
const canvas = document.createElement('canvas');
canvas.width = 160;
canvas.height = 90;
const ctx2d = canvas.getContext('2d', { willReadFrequently: true });
window.__frameStats = () => {
  ctx2d.drawImage(video, 0, 0, canvas.width, canvas.height);
  const px = ctx2d.getImageData(0, 0, canvas.width, canvas.height).data;
  const n = px.length / 4;
  let sum = 0, sum2 = 0, hash = 2166136261;
  const bins = new Set();
  for (let i = 0; i < px.length; i += 4) {
    const r = px[i], g = px[i + 1], b = px[i + 2];
    const y = 0.299 * r + 0.587 * g + 0.114 * b;
    sum += y;
    sum2 += y * y;
    bins.add((r >> 5) << 6 | (g >> 5) << 3 | (b >> 5));
    hash = Math.imul(hash ^ (r ^ (g << 8) ^ (b << 16)), 16777619) >>> 0;
  }
  const mean = sum / n;
  return { mean, std: Math.sqrt(Math.max(0, sum2 / n - mean * mean)), bins: bins.size, hash };
};

window.__codecs = {
  h264_aac: typeof MediaSource !== 'undefined' &&
    MediaSource.isTypeSupported('video/mp4; codecs="avc1.64001f,mp4a.40.2"'),
};

window.__waitForManifest = async (url, needle) => {
  for (;;) {
    try {
      const r = await fetch(url, { cache: 'no-store' });
      if (r.ok && (await r.text()).includes(needle)) {
        window.__timing.manifest_unix_ms = Date.now();
        return;
      }
    } catch (e) { /* not up yet */ }
    await new Promise(res => setTimeout(res, 50));
  }
};
