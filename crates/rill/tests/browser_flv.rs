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

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
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

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn browser_dir() -> PathBuf {
    repo_root().join("tests/browser")
}

fn runs(program: &str, arg: &str) -> bool {
    std::process::Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Same lookup as play.js: `$CHROMIUM`, else `chromium` on PATH.
fn chromium_found() -> bool {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Path::new(&path).is_file();
    }
    std::process::Command::new("sh")
        .args(["-c", "command -v chromium"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// True when everything the test needs is installed. Otherwise a panic under CI, or a skip message.
fn prerequisites_present() -> bool {
    let modules = browser_dir().join("node_modules");
    let mut missing = Vec::new();
    if !chromium_found() {
        missing.push("chromium");
    }
    if !runs("node", "--version") {
        missing.push("node");
    }
    if !runs("ffmpeg", "-version") {
        missing.push("ffmpeg");
    }
    if !modules.join("playwright-core/package.json").is_file()
        || !modules.join("mpegts.js/dist/mpegts.js").is_file()
    {
        missing.push("tests/browser/node_modules (playwright-core, mpegts.js)");
    }
    if missing.is_empty() {
        return true;
    }
    let missing = missing.join(", ");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "browser test prerequisites missing under CI: {missing} (run scripts/setup-browser)"
        );
    }
    eprintln!("SKIPPED browser_flv: missing {missing} (run scripts/setup-browser to install)");
    false
}

/// A live 1280x720 30 fps H.264 (keyframe every second, so a player starts within a second) + AAC
/// test pattern, published in real time.
fn spawn_publisher(url: &str) -> Child {
    Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        // ultrafast leaves the second core to Chromium's software decoder on a 2-core machine.
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args(["-g", "30", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-b:a", "64k"])
        .args(["-t", &PUBLISH_SECONDS.to_string(), "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // -loglevel error keeps this tiny, so the unread pipe never fills.
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot spawn ffmpeg")
}

async fn publisher_stderr(child: &mut Child) -> String {
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.start_kill();
    }
    let _ = timeout(Duration::from_secs(5), child.wait()).await;
    let mut text = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = timeout(Duration::from_secs(5), err.read_to_string(&mut text)).await;
    }
    text
}

async fn wait_publishing(server: &rill::ServerHandle, publisher: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !server.is_publishing(APP, STREAM) {
        if Instant::now() >= deadline || !matches!(publisher.try_wait(), Ok(None)) {
            let status = publisher.try_wait();
            let stderr = publisher_stderr(publisher).await;
            panic!("{APP}/{STREAM} never became live (ffmpeg {status:?}, stderr: {stderr})");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
    let server = timeout(
        Duration::from_secs(10),
        rill::Server::builder(rill::Config::loopback_ephemeral()).start(),
    )
    .await
    .expect("server start timed out")
    .expect("server failed to start");

    let rtmp = format!(
        "rtmp://127.0.0.1:{}/{APP}/{STREAM}",
        server.rtmp_addr().port()
    );
    let http_port = server.http_addr().port();
    let http_flv = format!("http://127.0.0.1:{http_port}/{APP}/{STREAM}.flv");
    let ws_flv = format!("ws://127.0.0.1:{http_port}/{APP}/{STREAM}.flv");

    let mut publisher = spawn_publisher(&rtmp);
    wait_publishing(&server, &mut publisher).await;
    let live_after = started.elapsed();

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-shots");
    let dir = browser_dir();
    let player = Command::new("node")
        .arg(dir.join("play.js"))
        .arg("--shots")
        .arg(&shots)
        .args(["--seconds", &PLAY_SECONDS.to_string()])
        .args(["--deadline", &PLAYER_DEADLINE_SECS.to_string()])
        .args([&http_flv, &ws_flv])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot spawn node");
    let output = timeout(PLAYER_TIMEOUT, player.wait_with_output())
        .await
        .expect("play.js did not finish in time")
        .expect("cannot wait for play.js");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!(
        "published live after {live_after:?}; play.js took {:?}\n{stderr}{stdout}",
        started.elapsed() - live_after
    );

    // Checked before the results: a publisher that died mid-test explains any playback failure.
    assert!(
        server.is_publishing(APP, STREAM),
        "the publisher dropped during playback: {}",
        publisher_stderr(&mut publisher).await
    );

    let results: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad result line {l}: {e}")))
        .collect();
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
        output.status.success(),
        "play.js exited with {}; stderr: {stderr}",
        output.status
    );

    drop(publisher);
    timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("server shutdown timed out");
}
