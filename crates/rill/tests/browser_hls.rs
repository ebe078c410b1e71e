//! Real-browser playback of Rill's HLS (MPEG-TS), LL-HLS (fMP4 parts) and DASH output: headless
//! Chromium plays each with the player real sites use (hls.js, hls.js in `lowLatencyMode`,
//! dash.js), driven by `tests/browser/play-hls.js` (Playwright). Each case must reach `playing`,
//! advance `currentTime` by more than 2 s, decode 1280x720, show a real, changing picture and
//! report no fatal player error.
//!
//! Each case also measures latency, with its own fresh stream so the figures do not depend on the
//! order of the cases:
//! - **glass-to-playable**: the page is opened and waits for the manifest; only then does this test
//!   start ffmpeg (publishing a live 1280x720 30 fps H.264 + AAC test pattern over RTMP), and the
//!   figure is the time from spawning ffmpeg to the `playing` event (both Unix clocks of this host);
//! - **live latency** once playing: now minus the wall-clock time of the frame on screen, from
//!   hls.js `playingDate` (EXT-X-PROGRAM-DATE-TIME) or dash.js `getCurrentLiveLatency()`.
//!
//! The figures are printed and written to `target/tmp/latency.json`; screenshots land in
//! `target/tmp/browser-shots/`.
//!
//! Needs Debian's `chromium`, `node`, `ffmpeg` and `tests/browser/node_modules` with hls.js and
//! dashjs (all installed by `scripts/setup-browser`). When one is missing the test is skipped with
//! a message, except under `CI=true`, where it fails.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use common::browser;
use rill::config::{SegmentFormat, TransTask};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Child;
use tokio::time::timeout;

const STREAM: &str = "cam";
const SEGMENT_SECS: f64 = 1.0;
const PART_SECS: f64 = 0.33;
/// Seconds of playback each case must show.
const PLAY_SECONDS: u32 = 2;
/// The whole test: Chromium's start-up and three cases, each with its own publisher.
const TEST_TIMEOUT: Duration = Duration::from_secs(150);
/// `play-hls.js` gets this long; its own watchdog fires a little earlier.
const PLAYER_TIMEOUT: Duration = Duration::from_secs(140);
const PLAYER_DEADLINE_SECS: u32 = 135;
/// Each publisher runs at most this long; it is stopped as soon as its case is done.
const PUBLISH_SECONDS: u32 = 40;

/// A playback case: its name (also the app, so each case has its own stream and task), the
/// play-hls.js kind, and the manifest file.
type Case = (&'static str, &'static str, &'static str);

const HLS_TS: Case = ("hls", "hls", "index.m3u8");
const DASH: Case = ("dash", "dash", "index.mpd");
const LL_HLS: Case = ("llhls", "llhls", "index.m3u8");
const HLS_FMP4: Case = ("fmp4", "hls", "index.m3u8");

/// True when everything the test needs is installed. Otherwise a panic under CI, or a skip message.
fn prerequisites_present() -> bool {
    browser::prerequisites_present(
        "browser_hls",
        &["ffmpeg"],
        &[
            "playwright-core/package.json",
            "hls.js/dist/hls.min.js",
            "dashjs/dist/modern/umd/dash.all.min.js",
        ],
    )
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn tasks() -> Vec<TransTask> {
    let base = TransTask {
        segment_duration: Some(SEGMENT_SECS),
        playlist_length: Some(6),
        cleanup_after: 5,
        ..Default::default()
    };
    vec![
        TransTask {
            app: "hls".into(),
            hls: true,
            format: SegmentFormat::Ts,
            ..base.clone()
        },
        TransTask {
            app: "llhls".into(),
            hls: true,
            format: SegmentFormat::Fmp4,
            low_latency: true,
            part_duration: PART_SECS,
            ..base.clone()
        },
        TransTask {
            app: "fmp4".into(),
            hls: true,
            format: SegmentFormat::Fmp4,
            ..base.clone()
        },
        TransTask {
            app: "dash".into(),
            dash: true,
            format: SegmentFormat::Fmp4,
            ..base
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_plays_hls_and_dash_and_measures_latency() {
    if !prerequisites_present() {
        return;
    }
    let _turn = common::serial().await;
    timeout(TEST_TIMEOUT, run(&[HLS_TS, DASH]))
        .await
        .expect("browser test did not finish in time");
}

/// hls.js plays fMP4 through one SourceBuffer holding both tracks. There, a fragment whose last
/// AAC frame is cut short at the video keyframe makes Chromium freeze the video for seconds (audio
/// and currentTime go on): MSE takes the jump to the next audio frame for a discontinuity. This
/// case guards the segmenter's abutting runs (`fmp4_audio_fragments_abut` in hls_dash.rs): the
/// runner fails a picture that stands still while currentTime advances. DASH (one SourceBuffer per
/// track) and TS HLS (hls.js remuxes) are not exposed to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_plays_ll_hls_and_fmp4_hls_and_measures_latency() {
    if !prerequisites_present() {
        return;
    }
    let _turn = common::serial().await;
    timeout(TEST_TIMEOUT, run(&[LL_HLS, HLS_FMP4]))
        .await
        .expect("browser test did not finish in time");
}

/// One case's publisher and when it was started.
struct Live {
    publisher: Child,
    spawned_unix_ms: u64,
}

async fn run(cases: &[Case]) {
    let mut config = rill::Config::loopback_ephemeral();
    config.trans.tasks = tasks();
    for t in &config.trans.tasks {
        assert!(t.problem().is_none(), "{:?}", t.problem());
    }
    let server = common::start_server_from(config).await;
    let http_port = server.http_addr().port();
    let rtmp_port = server.rtmp_addr().port();

    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let mut args = browser::script_options(PLAY_SECONDS, PLAYER_DEADLINE_SECS);
    for (name, kind, file) in cases {
        args.push(format!(
            "{name},{kind},http://127.0.0.1:{http_port}/{name}/{STREAM}/{file}"
        ));
    }
    let mut player = browser::spawn_node("play-hls.js", &args);
    let mut stderr_pipe = player.stderr.take().expect("stderr");
    let stderr_task = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s).await;
        s
    });
    let mut lines = BufReader::new(player.stdout.take().expect("stdout")).lines();

    // The conversation: on "ready" start that case's stream, on its result stop it.
    let mut live: HashMap<String, Live> = HashMap::new();
    let mut results: Vec<(serde_json::Value, u64)> = Vec::new();
    let mut stdout_log = String::new();
    let conversation = async {
        while let Some(line) = lines.next_line().await.expect("read play-hls.js stdout") {
            stdout_log.push_str(&line);
            stdout_log.push('\n');
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let case = msg["case"].as_str().unwrap_or_default().to_owned();
            if msg["event"] == "ready" {
                let url = format!("rtmp://127.0.0.1:{rtmp_port}/{case}/{STREAM}");
                let spawned_unix_ms = unix_ms();
                let publisher = common::spawn_ffmpeg_publisher(&url, PUBLISH_SECONDS);
                live.insert(
                    case,
                    Live {
                        publisher,
                        spawned_unix_ms,
                    },
                );
                continue;
            }
            let Some(mut l) = live.remove(&case) else {
                results.push((msg, 0));
                continue;
            };
            // A publisher that died mid-case explains any playback failure.
            if !server.is_publishing(&case, STREAM) {
                let stderr = common::child_stderr(&mut l.publisher).await;
                panic!("{case}: the publisher was not live at the end of its case: {stderr}");
            }
            drop(l.publisher);
            results.push((msg, l.spawned_unix_ms));
        }
    };
    let talked = timeout(PLAYER_TIMEOUT, conversation).await;
    let status = timeout(Duration::from_secs(10), player.wait()).await;
    let stderr = timeout(Duration::from_secs(5), stderr_task)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    eprintln!("{stderr}{stdout_log}");
    assert!(talked.is_ok(), "play-hls.js did not finish in time");

    assert_eq!(
        results.len(),
        cases.len(),
        "expected one result line per case; stdout: {stdout_log}; stderr: {stderr}"
    );
    let mut figures = serde_json::Map::new();
    for ((result, spawned), &(name, kind, file)) in results.iter().zip(cases) {
        let url = format!("http://127.0.0.1:{http_port}/{name}/{STREAM}/{file}");
        assert_eq!(result["case"], name, "{result}");
        assert_eq!(result["kind"], kind, "{result}");
        assert_eq!(result["url"].as_str(), Some(url.as_str()), "{result}");
        assert_eq!(result["ok"], true, "{name} failed: {result}");
        assert_eq!(result["width"], 1280, "{name}: {result}");
        assert_eq!(result["height"], 720, "{name}: {result}");
        let advance = result["advance_s"].as_f64().unwrap_or(0.0);
        assert!(advance >= f64::from(PLAY_SECONDS), "{name}: {result}");
        let std = result["luma_std"].as_f64().unwrap_or(0.0);
        assert!(std > 10.0, "{name}: blank picture: {result}");
        assert_eq!(result["moving"], true, "{name}: {result}");

        let playing = result["playing_unix_ms"].as_u64().expect("playing_unix_ms");
        let manifest = result["manifest_unix_ms"].as_u64().unwrap_or(0);
        assert!(*spawned > 0 && playing > *spawned, "{name}: {result}");
        let glass_to_playing = (playing - spawned) as f64 / 1000.0;
        let to_manifest = manifest.saturating_sub(*spawned) as f64 / 1000.0;
        let live = result["live_latency_s"].as_f64().expect("live latency");
        // Loose sanity bounds: the figures are for reading, not for a flaky gate.
        assert!(
            glass_to_playing < 20.0,
            "{name}: {glass_to_playing} s to playing"
        );
        assert!(
            live > 0.0 && live < 15.0,
            "{name}: live latency {live} s: {result}"
        );
        eprintln!(
            "{name:6} ({}): ffmpeg start -> manifest {to_manifest:.2} s, -> playing {glass_to_playing:.2} s; \
             live latency {live:.2} s (edge {}, target {}); dropped {}/{} frames; rebuffering in {} \
             0.5 s windows of the picture check; warnings {}",
            result["player"].as_str().unwrap_or("?"),
            result["edge_latency_s"],
            result["target_latency_s"],
            result["frames_dropped"],
            result["frames_decoded"],
            result["stall_windows"],
            result["warnings"],
        );
        figures.insert(
            name.to_owned(),
            serde_json::json!({
                "player": result["player"],
                "url": url,
                "ffmpeg_start_to_manifest_s": to_manifest,
                "ffmpeg_start_to_playing_s": glass_to_playing,
                "live_latency_s": live,
                "player_edge_latency_s": result["edge_latency_s"],
                "player_target_latency_s": result["target_latency_s"],
                "frames_decoded": result["frames_decoded"],
                "frames_dropped": result["frames_dropped"],
                "stall_windows": result["stall_windows"],
                "screenshot": result["screenshot"],
            }),
        );
    }
    // Each test adds its cases to what the other one wrote (the tests take turns).
    let path = tmp.join("latency.json");
    let mut all = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("cases").and_then(|c| c.as_object().cloned()))
        .unwrap_or_default();
    all.extend(figures);
    let report = serde_json::json!({
        "updated_unix_ms": unix_ms(),
        "segment_duration_s": SEGMENT_SECS,
        "part_duration_s": PART_SECS,
        "publisher": "ffmpeg -re testsrc2 1280x720@30 libx264 ultrafast zerolatency -g 30 + aac 44.1 kHz, RTMP",
        "how": "ffmpeg_start_to_playing_s: the page waits for the manifest, then ffmpeg is spawned; \
                live_latency_s: now minus the wall-clock time of the frame playing (hls.js playingDate \
                from EXT-X-PROGRAM-DATE-TIME, dash.js getCurrentLiveLatency), median of 6 samples",
        "cases": all,
    });
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    eprintln!("latency figures written to {}", path.display());
    assert!(
        matches!(status, Ok(Ok(s)) if s.success()),
        "play-hls.js exited with {status:?}; stderr: {stderr}"
    );

    timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("server shutdown timed out");
}
