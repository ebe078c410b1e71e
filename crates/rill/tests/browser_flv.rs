//! Real-browser playback of Rill's HTTP-FLV and WS-FLV output: ffmpeg publishes a live 1280x720
//! 30 fps H.264 + AAC test pattern over RTMP, and headless Chromium plays
//! `http://…/live/browser.flv` and `ws://…/live/browser.flv` with mpegts.js, driven by
//! `tests/browser/play.js` (Playwright). Each case must reach `playing`, advance `currentTime` by
//! more than 2 s, decode 1280x720, show a real, changing picture (canvas luma std > 10) and report
//! no player error. The page is served from another loopback port than Rill's, so the HTTP-FLV case
//! also checks Rill's CORS header the way a real web player needs it.
//!
//! Needs Debian's `chromium`, `node`, `ffmpeg` and `tests/browser/node_modules` (all installed by
//! `scripts/setup-browser`). When one is missing the test is skipped with a message, except under
//! `CI=true`, where it fails: a CI run must never pass without having played anything.
//!
//! Screenshots land in `target/tmp/browser-shots/` for a human to look at.

mod common;

use std::time::{Duration, Instant};

use common::browser;
use tokio::time::timeout;

const APP: &str = "live";
const STREAM: &str = "browser";

/// The whole test, including Chromium's start-up and both playback cases.
const TEST_TIMEOUT: Duration = Duration::from_secs(85);
/// `play.js` gets this long for both cases; its own watchdog fires a little earlier.
const PLAYER_TIMEOUT: Duration = Duration::from_secs(60);
const PLAYER_DEADLINE_SECS: u32 = 55;
/// Seconds of playback each case must show (currentTime advance).
const PLAY_SECONDS: u32 = 2;
/// The stream outlives the two cases with room to spare on a slow machine: one case takes about
/// 5 s. The publisher is killed as soon as the test is done, so the length costs nothing.
const PUBLISH_SECONDS: u32 = 30;

/// True when everything the test needs is installed. Otherwise a panic under CI, or a skip message.
fn prerequisites_present() -> bool {
    browser::prerequisites_present(
        "browser_flv",
        &["ffmpeg"],
        &["playwright-core/package.json", "mpegts.js/dist/mpegts.js"],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_plays_http_flv_and_ws_flv() {
    if !prerequisites_present() {
        return;
    }
    timeout(TEST_TIMEOUT, run())
        .await
        .expect("browser test did not finish in time");
}

async fn run() {
    let started = Instant::now();
    let server = common::start_server().await;
    let rtmp = common::rtmp_url(&server, APP, STREAM);
    let http_flv = common::http_flv_url(&server, APP, STREAM);
    let ws_flv = common::ws_flv_url(&server, APP, STREAM);

    // A keyframe every second, so a player starts within a second.
    let mut publisher = common::spawn_ffmpeg_publisher(&rtmp, PUBLISH_SECONDS);
    common::wait_publishing(&server, APP, STREAM, &mut publisher).await;
    let live_after = started.elapsed();

    let mut args = browser::script_options(PLAY_SECONDS, PLAYER_DEADLINE_SECS);
    args.extend([http_flv.clone(), ws_flv.clone()]);
    let browser::NodeRun {
        results,
        stdout,
        stderr,
        status,
    } = browser::run_node("play.js", &args, PLAYER_TIMEOUT).await;
    eprintln!(
        "published live after {live_after:?}; play.js took {:?}\n{stderr}{stdout}",
        started.elapsed() - live_after
    );

    // Checked before the results: a publisher that died mid-test explains any playback failure.
    assert!(
        server.is_publishing(APP, STREAM),
        "the publisher dropped during playback: {}",
        common::child_stderr(&mut publisher).await
    );

    assert_eq!(
        results.len(),
        2,
        "expected one result line per URL; stdout: {stdout}; stderr: {stderr}"
    );
    for (result, (case, url)) in results
        .iter()
        .zip([("http-flv", &http_flv), ("ws-flv", &ws_flv)])
    {
        assert_eq!(result["case"], case, "{result}");
        assert_eq!(result["url"].as_str(), Some(url.as_str()), "{result}");
        assert_eq!(result["ok"], true, "{case} failed: {result}");
        assert_eq!(result["width"], 1280, "{case}: {result}");
        assert_eq!(result["height"], 720, "{case}: {result}");
        let advance = result["advance_s"].as_f64().unwrap_or(0.0);
        assert!(advance > f64::from(PLAY_SECONDS), "{case}: {result}");
        let std = result["luma_std"].as_f64().unwrap_or(0.0);
        assert!(std > 10.0, "{case}: blank picture: {result}");
        assert_eq!(
            result["errors"].as_array().map(Vec::len),
            Some(0),
            "{result}"
        );
    }
    assert!(
        status.success(),
        "play.js exited with {status}; stderr: {stderr}"
    );

    drop(publisher);
    timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("server shutdown timed out");
}
