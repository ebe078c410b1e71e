//! Helpers shared by the integration tests: a server on loopback ephemeral ports, ffmpeg/ffprobe
//! processes (Debian's and the modern one), polling, checks on ffprobe's JSON, a WS-FLV reader, and
//! the real-browser scripts of `tests/browser` ([`browser`]).
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

use bytes::BytesMut;
use futures_util::StreamExt;
use rill_media::flv::{self, FlvDemuxer, FlvTag, VideoPacket};
use rill_media::FrameKind;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, MutexGuard};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

/// Upper bound for one whole test.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(90);

/// The tests of one binary start real-time 720p encoders; on a 2-core machine two of them at once
/// fall behind real time and the frame-rate checks turn flaky, so the heavy tests take turns.
static SERIAL: Mutex<()> = Mutex::const_new(());

pub async fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// True when `CI=true`: there a missing tool fails a test instead of skipping it, so a CI run never
/// passes without having exercised anything.
pub fn under_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// True if `program arg` runs and exits successfully.
pub fn runs(program: &str, arg: &str) -> bool {
    std::process::Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// True if `name` runs. When it does not: a panic under CI (a missing tool must fail CI rather than
/// silently skip the interop tests), otherwise a skip message and `false`.
pub fn require_tool(name: &str) -> bool {
    if runs(name, "-version") {
        return true;
    }
    if under_ci() {
        panic!("{name} is required under CI but was not found on PATH (scripts/test installs it)");
    }
    eprintln!("SKIPPED: {name} not found on PATH (install ffmpeg to run the interop tests)");
    false
}

/// A tool is missing: fails under CI, otherwise prints why the test skips.
pub fn tool_missing(why: &str) {
    if under_ci() {
        panic!("{why} (required under CI=true)");
    }
    eprintln!("SKIPPED: {why}");
}

/// The modern ffmpeg (7 or newer, for Enhanced RTMP) with every encoder of `encoders`:
/// `RILL_MODERN_FFMPEG`, else imageio-ffmpeg's binary. `None` after a skip note, or a panic under
/// CI.
pub fn modern_ffmpeg(encoders: &[&str]) -> Option<std::path::PathBuf> {
    // Finding it runs python3 and ffmpeg: once per test binary is enough.
    static FOUND: std::sync::OnceLock<Result<std::path::PathBuf, String>> =
        std::sync::OnceLock::new();
    let found = FOUND
        .get_or_init(find_modern_ffmpeg)
        .clone()
        .and_then(|path| modern_ffmpeg_has(&path, encoders).map(|()| path));
    match found {
        Ok(path) => Some(path),
        Err(why) => {
            tool_missing(&format!("{why}; scripts/setup-modern-ffmpeg installs it"));
            None
        }
    }
}

fn find_modern_ffmpeg() -> Result<std::path::PathBuf, String> {
    let path = match std::env::var_os("RILL_MODERN_FFMPEG") {
        Some(p) if !p.is_empty() => std::path::PathBuf::from(p),
        _ => {
            let out = std::process::Command::new("python3")
                .args([
                    "-c",
                    "import imageio_ffmpeg as i; print(i.get_ffmpeg_exe())",
                ])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("modern ffmpeg: cannot run python3: {e}"))?;
            if !out.status.success() {
                return Err(
                    "modern ffmpeg: the Python module imageio_ffmpeg is not installed \
                     (set RILL_MODERN_FFMPEG or run scripts/setup-modern-ffmpeg)"
                        .into(),
                );
            }
            std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    };
    let version = std::process::Command::new(&path)
        .args(["-hide_banner", "-version"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("modern ffmpeg {}: cannot run: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&version.stdout);
    let major = ffmpeg_major_version(&text).ok_or_else(|| {
        format!(
            "modern ffmpeg {}: unreadable -version: {text}",
            path.display()
        )
    })?;
    // Enhanced RTMP muxing of HEVC/AV1/VP9 arrived in 6.1 and Opus-in-FLV in 7.
    if major < 7 {
        return Err(format!(
            "modern ffmpeg {} is version {major}; 7 or newer is needed",
            path.display()
        ));
    }
    Ok(path)
}

fn modern_ffmpeg_has(path: &std::path::Path, encoders: &[&str]) -> Result<(), String> {
    let listing = std::process::Command::new(path)
        .args(["-hide_banner", "-encoders"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!(
                "modern ffmpeg {}: cannot list encoders: {e}",
                path.display()
            )
        })?;
    let listed = String::from_utf8_lossy(&listing.stdout);
    for enc in encoders {
        if !listed
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(*enc))
        {
            return Err(format!(
                "modern ffmpeg {} lacks the {enc} encoder",
                path.display()
            ));
        }
    }
    Ok(())
}

/// `ffmpeg version n9.0.2-17-g...` or `ffmpeg version 7.1.1` -> the major number.
pub fn ffmpeg_major_version(version_output: &str) -> Option<u32> {
    let word = version_output.lines().next()?.split_whitespace().nth(2)?;
    let digits: String = word
        .trim_start_matches('n')
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
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

/// A server on loopback ephemeral ports.
pub async fn start_server() -> rill::ServerHandle {
    start_server_from(rill::Config::loopback_ephemeral()).await
}

/// A server with `config`, started within 10 s.
pub async fn start_server_from(config: rill::Config) -> rill::ServerHandle {
    timeout(
        Duration::from_secs(10),
        rill::Server::builder(config).start(),
    )
    .await
    .expect("server start timed out")
    .expect("server failed to start")
}

/// A server with the configuration file text `toml` (parsed and validated as a file is), its
/// RTMP, HTTP, HTTPS and RTMPS listeners moved to loopback ephemeral ports.
pub async fn start_server_with(toml: &str) -> rill::ServerHandle {
    let mut c = rill::Config::from_toml(toml, "test config")
        .unwrap_or_else(|e| panic!("the configuration is refused: {e}\n---\n{toml}"));
    let l = rill::Config::loopback_ephemeral();
    (c.rtmp.host, c.rtmp.port) = (l.rtmp.host, 0);
    (c.http.host, c.http.port) = (l.http.host, 0);
    (c.https.host, c.https.port) = (l.https.host, 0);
    (c.rtmps.host, c.rtmps.port) = (l.rtmps.host, 0);
    start_server_from(c).await
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

/// Polls the async `check` every 100 ms; true as soon as it holds, false once `limit` has passed.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The body of a `Transfer-Encoding: chunked` HTTP response, decoded; `None` if it is cut short
/// or malformed.
pub fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// `ffmpeg` (a path, or "ffmpeg" from PATH) quiet, with two synthetic inputs: input 0 the
/// `testsrc2` pattern at `width`x`height` and `fps`, input 1 a 440 Hz sine at `sample_rate`; read
/// in real time (`-re`) when `realtime`. The caller adds the encoding and the output.
pub fn ffmpeg_test_source(
    ffmpeg: impl AsRef<std::ffi::OsStr>,
    (width, height): (u32, u32),
    fps: u32,
    sample_rate: u32,
    realtime: bool,
) -> Command {
    let mut cmd = Command::new(ffmpeg);
    cmd.args(["-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"]);
    if realtime {
        cmd.arg("-re");
    }
    cmd.args([
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size={width}x{height}:rate={fps}"),
    ])
    .args([
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=440:sample_rate={sample_rate}"),
    ]);
    cmd
}

/// H.264 as a live publisher encodes it: no B-frames, and `ultrafast` leaves CPU to the other
/// processes of a test (a browser's software decoder, ffprobe) on a 2-core machine.
pub const X264_LIVE: [&str; 6] = [
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-tune",
    "zerolatency",
];

/// Spawns `cmd` (an ffmpeg that writes nothing to stdout) with stderr piped for failure messages
/// and killed when dropped.
pub fn spawn_quiet(cmd: &mut Command, what: &str) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        // -loglevel error keeps this tiny, so an unread pipe never fills up.
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {what}: {e}"))
}

/// ffmpeg publishing a synthetic 1280x720 30 fps H.264 (keyframe every second, no B-frames) + AAC
/// stream in real time to `url` for `seconds`.
pub fn spawn_ffmpeg_publisher(url: &str, seconds: u32) -> Child {
    let mut cmd = ffmpeg_test_source("ffmpeg", (1280, 720), 30, 44100, true);
    cmd.args(X264_LIVE)
        .args([
            "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
        ])
        .args(["-t", &seconds.to_string(), "-f", "flv", url]);
    spawn_quiet(&mut cmd, "ffmpeg")
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

/// ffmpeg publishing the test stream (see [`spawn_ffmpeg_publisher`]) to `app/stream` on `server`
/// for `seconds`, once it is live there.
pub async fn publish_live(
    server: &rill::ServerHandle,
    app: &str,
    stream: &str,
    seconds: u32,
) -> Child {
    let mut publisher = spawn_ffmpeg_publisher(&rtmp_url(server, app, stream), seconds);
    wait_publishing(server, app, stream, &mut publisher).await;
    publisher
}

/// Runs `cmd` to its end within `limit` and returns its output whatever its exit status; panics,
/// naming it `what`, if it cannot start or does not finish in time.
pub async fn output_within(cmd: &mut Command, limit: Duration, what: &str) -> std::process::Output {
    timeout(limit, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"))
}

/// The ffprobe command of [`ffprobe_frames`], with `options` (e.g. TLS settings) before the URL,
/// and the time it gets.
pub fn ffprobe_frames_command<I, S>(url: &str, read_seconds: u32, options: I) -> (Command, Duration)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error"])
        .args(options)
        .args(["-show_streams", "-show_entries"])
        // ffprobe 5.1 dropped pkt_pts_time in favour of pts_time; ask for both so older ones work.
        .arg("frame=media_type,key_frame,pts_time,pkt_pts_time,pkt_dts_time,best_effort_timestamp_time,width,height")
        .args(["-of", "json", "-read_intervals", &format!("%+{read_seconds}"), url])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    (cmd, Duration::from_secs(u64::from(read_seconds) + 20))
}

/// Runs ffprobe on a live `url`, reading `read_seconds` of stream time from the first packet
/// (`-read_intervals %+N` counts from the first timestamp, so a late joiner whose stream starts at
/// t=5 s still reads N seconds), and returns its JSON: `streams` and per-frame `frames`.
pub async fn ffprobe_frames(url: &str, read_seconds: u32) -> serde_json::Value {
    let (mut cmd, limit) = ffprobe_frames_command(url, read_seconds, [] as [&str; 0]);
    let output = output_within(&mut cmd, limit, &format!("ffprobe on {url}")).await;
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

/// True for an FLV video tag that carries pictures (not a sequence header).
pub fn is_coded_video(t: &FlvTag) -> bool {
    t.tag_type == 9 && flv::parse_video_header(&t.body).unwrap().packet == VideoPacket::CodedFrames
}

/// Demuxes the FLV arriving over the WebSocket `ws` (WS-FLV or WSS-FLV) until `min_video` coded
/// video tags are in, within 15 s; returns the header flags (audio, video) and every tag in order.
pub async fn read_ws_flv<S, E>(
    ws: &mut S,
    min_video: usize,
    what: &str,
) -> (Option<(bool, bool)>, Vec<FlvTag>)
where
    S: futures_util::Stream<Item = Result<Message, E>> + Unpin,
    E: std::fmt::Debug,
{
    let mut demuxer = FlvDemuxer::new(16 * 1024 * 1024);
    let mut buf = BytesMut::new();
    let mut tags: Vec<FlvTag> = Vec::new();
    timeout(Duration::from_secs(15), async {
        while tags.iter().filter(|t| is_coded_video(t)).count() < min_video {
            match ws
                .next()
                .await
                .expect("WebSocket closed")
                .expect("WebSocket error")
            {
                Message::Binary(data) => buf.extend_from_slice(&data),
                Message::Close(frame) => panic!("server closed the WebSocket: {frame:?}"),
                _ => continue,
            }
            while let Some(tag) = demuxer
                .next_tag(&mut buf)
                .expect("invalid FLV from the server")
            {
                tags.push(tag);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("too few FLV tags {what} within 15 s"));
    (demuxer.header(), tags)
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

/// Real-browser tests: Debian's Chromium driven through Playwright by the Node scripts in
/// `tests/browser` (play.js, play-hls.js, play-file.js), which print one JSON line per case.
pub mod relay_peers;
pub mod rtsp_peer;

pub mod browser {
    use std::path::{Path, PathBuf};
    use std::process::{ExitStatus, Stdio};
    use std::time::Duration;

    use tokio::process::{Child, Command};
    use tokio::time::timeout;

    /// `tests/browser`: the scripts, their pages and their `node_modules`.
    pub fn dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser")
    }

    /// Where the scripts leave their screenshots for a human to look at.
    pub fn shots_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-shots")
    }

    /// The options every script takes: screenshots to [`shots_dir`], `seconds` of playback each
    /// case must show, and the script's own `deadline` in seconds.
    pub fn script_options(seconds: u32, deadline: u32) -> Vec<String> {
        vec![
            "--shots".to_owned(),
            shots_dir().display().to_string(),
            "--seconds".to_owned(),
            seconds.to_string(),
            "--deadline".to_owned(),
            deadline.to_string(),
        ]
    }

    /// Same lookup as the scripts: `$CHROMIUM`, else `chromium` on PATH.
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
            .is_ok_and(|s| s.success())
    }

    /// True when Chromium, node, every tool of `tools` (run with `-version`) and every file of
    /// `node_modules` (relative to `tests/browser/node_modules`) are installed. Otherwise a panic
    /// under `CI=true`, or a skip message naming `test` and `false`.
    pub fn prerequisites_present(test: &str, tools: &[&str], node_modules: &[&str]) -> bool {
        let mut missing = Vec::new();
        if !chromium_found() {
            missing.push("chromium".to_owned());
        }
        if !super::runs("node", "--version") {
            missing.push("node".to_owned());
        }
        for tool in tools {
            if !super::runs(tool, "-version") {
                missing.push((*tool).to_owned());
            }
        }
        let modules = dir().join("node_modules");
        for file in node_modules {
            if !modules.join(file).is_file() {
                missing.push(format!("tests/browser/node_modules/{file}"));
            }
        }
        if missing.is_empty() {
            return true;
        }
        let missing = missing.join(", ");
        if super::under_ci() {
            panic!(
                "{test}: browser test prerequisites missing under CI: {missing} (run scripts/setup-browser)"
            );
        }
        eprintln!("SKIPPED {test}: missing {missing} (run scripts/setup-browser to install)");
        false
    }

    /// `node SCRIPT ARGS...` in `tests/browser`, stdout and stderr piped, killed when dropped.
    pub fn spawn_node(script: &str, args: &[String]) -> Child {
        let dir = dir();
        Command::new("node")
            .arg(dir.join(script))
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot spawn node")
    }

    /// What a script printed, and how it exited.
    pub struct NodeRun {
        /// Every JSON line of stdout, in order.
        pub results: Vec<serde_json::Value>,
        pub stdout: String,
        pub stderr: String,
        pub status: ExitStatus,
    }

    /// Runs a script to its end (see [`spawn_node`]) within `limit`; panics on a line of stdout that
    /// looks like JSON but does not parse.
    pub async fn run_node(script: &str, args: &[String], limit: Duration) -> NodeRun {
        let output = timeout(limit, spawn_node(script, args).wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{script} did not finish in time"))
            .unwrap_or_else(|e| panic!("cannot wait for {script}: {e}"));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let results = stdout
            .lines()
            .filter(|l| l.trim_start().starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad result line {l}: {e}")))
            .collect();
        NodeRun {
            results,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            stdout,
            status: output.status,
        }
    }
}
