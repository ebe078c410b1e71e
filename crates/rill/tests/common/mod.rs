//! Helpers shared by the integration tests: a server on loopback ephemeral ports, ffmpeg/ffprobe
//! processes, polling, and checks on ffprobe's JSON.
//!
//! Every external process is spawned with `kill_on_drop(true)` and awaited under a timeout, so a
//! stuck peer fails the test instead of hanging the suite.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::future::Future;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rill_media::FrameKind;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, MutexGuard};
use tokio::time::timeout;

/// Upper bound for one whole test.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(90);

/// The tests of one binary start real-time 720p encoders; on a 2-core machine two of them at once
/// fall behind real time and the frame-rate checks turn flaky, so the heavy tests take turns.
static SERIAL: Mutex<()> = Mutex::const_new(());

pub async fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// True if `name` runs. When it does not: a panic under CI (a missing tool must fail CI rather than
/// silently skip the interop tests), otherwise a skip message and `false`.
pub fn require_tool(name: &str) -> bool {
    let found = std::process::Command::new(name)
        .arg("-version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if found {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{name} is required under CI but was not found on PATH (scripts/test installs it)");
    }
    eprintln!("SKIPPED: {name} not found on PATH (install ffmpeg to run the interop tests)");
    false
}

/// Both ffmpeg and ffprobe.
pub fn require_ffmpeg() -> bool {
    require_tool("ffmpeg") && require_tool("ffprobe")
}

/// Runs `test` under [`TEST_TIMEOUT`].
pub async fn bounded<F: Future<Output = ()>>(test: F) {
    timeout(TEST_TIMEOUT, test)
        .await
        .expect("test did not finish in time");
}

pub async fn start_server() -> rill::ServerHandle {
    timeout(
        Duration::from_secs(10),
        rill::Server::builder(rill::Config::loopback_ephemeral()).start(),
    )
    .await
    .expect("server start timed out")
    .expect("server failed to start")
}

pub fn rtmp_url(server: &rill::ServerHandle, app: &str, stream: &str) -> String {
    format!(
        "rtmp://127.0.0.1:{}/{app}/{stream}",
        server.rtmp_addr().port()
    )
}

pub fn http_flv_url(server: &rill::ServerHandle, app: &str, stream: &str) -> String {
    format!(
        "http://127.0.0.1:{}/{app}/{stream}.flv",
        server.http_addr().port()
    )
}

pub fn ws_flv_url(server: &rill::ServerHandle, app: &str, stream: &str) -> String {
    format!(
        "ws://127.0.0.1:{}/{app}/{stream}.flv",
        server.http_addr().port()
    )
}

/// Polls `cond` every 20 ms; true as soon as it holds, false once `limit` has passed.
pub async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// ffmpeg publishing a synthetic 1280x720 30 fps H.264 (keyframe every second, no B-frames) + AAC
/// stream in real time to `url` for `seconds`.
pub fn spawn_ffmpeg_publisher(url: &str, seconds: u32) -> Child {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-g",
            "30",
        ])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k"])
        .args(["-t", &seconds.to_string(), "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // -loglevel error keeps this tiny, so an unread pipe never fills up.
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd.spawn().expect("cannot spawn ffmpeg")
}

/// Stderr of a child that has exited (or is killed now), for failure messages.
pub async fn child_stderr(child: &mut Child) -> String {
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

/// Waits until `app/stream` is live on `server`, failing with ffmpeg's own words if it is not.
pub async fn wait_publishing(
    server: &rill::ServerHandle,
    app: &str,
    stream: &str,
    publisher: &mut Child,
) {
    if wait_until(Duration::from_secs(15), || {
        server.is_publishing(app, stream)
    })
    .await
    {
        return;
    }
    let status = publisher.try_wait();
    let stderr = child_stderr(publisher).await;
    panic!("{app}/{stream} never became live (ffmpeg status {status:?}, stderr: {stderr})");
}

/// Runs ffprobe on a live `url`, reading `read_seconds` of stream time from the first packet
/// (`-read_intervals %+N` counts from the first timestamp, so a late joiner whose stream starts at
/// t=5 s still reads N seconds), and returns its JSON: `streams` and per-frame `frames`.
pub async fn ffprobe_frames(url: &str, read_seconds: u32) -> serde_json::Value {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error", "-show_streams", "-show_entries"])
        // ffprobe 5.1 dropped pkt_pts_time in favour of pts_time; ask for both so older ones work.
        .arg("frame=media_type,key_frame,pts_time,pkt_pts_time,pkt_dts_time,best_effort_timestamp_time,width,height")
        .args(["-of", "json", "-read_intervals", &format!("%+{read_seconds}"), url])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let limit = Duration::from_secs(u64::from(read_seconds) + 20);
    let output = timeout(limit, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("ffprobe on {url} did not finish within {limit:?}"))
        .expect("cannot run ffprobe");
    assert!(
        output.status.success(),
        "ffprobe on {url} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("ffprobe printed invalid JSON")
}

/// One decoded frame as ffprobe reports it.
#[derive(Debug, Clone)]
pub struct ProbeFrame {
    pub video: bool,
    pub key: bool,
    pub pts: Option<f64>,
    pub dts: Option<f64>,
    pub width: Option<u64>,
    pub height: Option<u64>,
}

fn time_field(frame: &serde_json::Value, names: &[&str]) -> Option<f64> {
    names
        .iter()
        .find_map(|n| frame.get(*n)?.as_str()?.parse().ok())
}

pub fn probe_frames(probe: &serde_json::Value) -> Vec<ProbeFrame> {
    probe["frames"]
        .as_array()
        .map(|frames| {
            frames
                .iter()
                .map(|f| ProbeFrame {
                    video: f["media_type"] == "video",
                    key: f["key_frame"] == 1,
                    pts: time_field(
                        f,
                        &["pts_time", "pkt_pts_time", "best_effort_timestamp_time"],
                    ),
                    dts: time_field(f, &["pkt_dts_time"]),
                    width: f["width"].as_u64(),
                    height: f["height"].as_u64(),
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn video_frames(probe: &serde_json::Value) -> Vec<ProbeFrame> {
    probe_frames(probe)
        .into_iter()
        .filter(|f| f.video)
        .collect()
}

/// Asserts what every viewer of the ffmpeg test stream must see: exactly an H.264 1280x720 stream
/// and an AAC stream, at least `min_video_frames` decoded video frames, a keyframe first, and video
/// pts/dts that never go backwards (the publisher has no B-frames, so pts is monotonic too).
pub fn check_test_stream(probe: &serde_json::Value, min_video_frames: usize, what: &str) {
    let streams = probe["streams"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no streams in {probe}"));
    let video: Vec<_> = streams
        .iter()
        .filter(|s| s["codec_type"] == "video")
        .collect();
    let audio: Vec<_> = streams
        .iter()
        .filter(|s| s["codec_type"] == "audio")
        .collect();
    assert_eq!(video.len(), 1, "{what}: video streams {video:?}");
    assert_eq!(audio.len(), 1, "{what}: audio streams {audio:?}");
    assert_eq!(video[0]["codec_name"], "h264", "{what}");
    assert_eq!(video[0]["width"], 1280, "{what}");
    assert_eq!(video[0]["height"], 720, "{what}");
    assert_eq!(audio[0]["codec_name"], "aac", "{what}");

    let frames = video_frames(probe);
    assert!(
        frames.len() >= min_video_frames,
        "{what}: only {} video frames, expected at least {min_video_frames}",
        frames.len()
    );
    assert!(
        frames[0].key,
        "{what}: first video frame is not a keyframe: {:?}",
        frames[0]
    );
    for f in &frames {
        assert_eq!(
            (f.width, f.height),
            (Some(1280), Some(720)),
            "{what}: frame {f:?}"
        );
    }
    assert_monotonic(frames.iter().map(|f| f.dts), &format!("{what}: video dts"));
    assert_monotonic(frames.iter().map(|f| f.pts), &format!("{what}: video pts"));
    let audio_frames = probe_frames(probe).into_iter().filter(|f| !f.video).count();
    assert!(audio_frames > 0, "{what}: no audio frames decoded");
}

/// Every value present, and non-decreasing.
pub fn assert_monotonic(values: impl Iterator<Item = Option<f64>>, what: &str) {
    let mut last = f64::NEG_INFINITY;
    for (i, v) in values.enumerate() {
        let v = v.unwrap_or_else(|| panic!("{what}: frame {i} has no timestamp"));
        assert!(v >= last, "{what}: frame {i} goes back from {last} to {v}");
        last = v;
    }
}

/// Rill's own RTMP player running in the background, counting what it receives.
pub struct BackgroundViewer {
    pub video_frames: Arc<AtomicUsize>,
    /// Why the viewer stopped or misbehaved; empty while all is well.
    pub problems: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl BackgroundViewer {
    pub async fn start(url: &str) -> BackgroundViewer {
        let mut player = timeout(
            Duration::from_secs(10),
            rill::client::RtmpPlayer::connect(url),
        )
        .await
        .expect("RTMP play timed out")
        .expect("RTMP play failed");
        let video_frames = Arc::new(AtomicUsize::new(0));
        let problems = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (count, probs) = (video_frames.clone(), problems.clone());
        let task = tokio::spawn(async move {
            let mut last_video_ts = None;
            loop {
                match player.next_frame().await {
                    Ok(Some(frame)) => {
                        if frame.kind != FrameKind::Video || frame.sequence_header {
                            continue;
                        }
                        if let Some(last) = last_video_ts {
                            if frame.timestamp < last {
                                probs.lock().unwrap().push(format!(
                                    "video ts back from {last} to {}",
                                    frame.timestamp
                                ));
                            }
                        }
                        last_video_ts = Some(frame.timestamp);
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(None) => {
                        probs
                            .lock()
                            .unwrap()
                            .push("server closed the viewer".into());
                        return;
                    }
                    Err(e) => {
                        probs.lock().unwrap().push(format!("viewer error: {e}"));
                        return;
                    }
                }
            }
        });
        BackgroundViewer {
            video_frames,
            problems,
            task,
        }
    }

    pub fn count(&self) -> usize {
        self.video_frames.load(Ordering::SeqCst)
    }

    /// Asserts that at least `min` more video frames arrive within `within`, and nothing went wrong.
    pub async fn assert_flowing(&self, min: usize, within: Duration, what: &str) {
        let start = self.count();
        let arrived = wait_until(within, || self.count() >= start + min).await;
        let problems = self.problems.lock().unwrap().clone();
        assert!(problems.is_empty(), "{what}: viewer problems: {problems:?}");
        assert!(
            arrived,
            "{what}: only {} video frames in {within:?}, expected {min}",
            self.count() - start
        );
    }
}

impl Drop for BackgroundViewer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
