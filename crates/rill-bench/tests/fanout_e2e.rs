//! End to end, with a 3 s FLV made with ffmpeg and the bench's own RTMP publisher:
//! - the floor server and a 10-viewer HTTP-FLV fan-out against it for 3 s, in both floor modes,
//!   with video and audio latency checked;
//! - Rill (in this process) and 5 viewers over each of RTMP, HTTP-FLV and WS-FLV, which also checks
//!   the bench's own WebSocket frame reader against a real server.
//!
//! Skipped (with a message) when ffmpeg is missing, except under CI=true where that is a failure.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rill-bench");

fn have_ffmpeg() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the floor server however the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_listening(port: u16) {
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "port {port} never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn fanout_against_floor(flv: &Path, mode: &str) -> Value {
    let (http, rtmp) = (free_port(), free_port());
    let floor = Server(
        Command::new(BIN)
            .args(["floor", "--mode", mode])
            .args([
                "--port",
                &http.to_string(),
                "--rtmp-port",
                &rtmp.to_string(),
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(http);
    wait_listening(rtmp);
    fanout(
        flv,
        rtmp,
        &[
            "--protocol",
            "http-flv",
            "--play-url",
            &format!("http://127.0.0.1:{http}/live/{{stream}}.flv"),
            "--viewers",
            "10",
        ],
        floor.0.id(),
    )
}

/// `rill-bench fanout` publishing `flv` to `rtmp://127.0.0.1:{rtmp}/live/t` for 1 + 3 s, with
/// `args` for the viewers; its JSON report.
fn fanout(flv: &Path, rtmp: u16, args: &[&str], server_pid: u32) -> Value {
    let out = Command::new(BIN)
        .arg("fanout")
        .args(["--url", &format!("rtmp://127.0.0.1:{rtmp}/live/t")])
        .args(args)
        .args(["--ramp-per-sec", "100", "--warmup", "1", "--duration", "3"])
        .arg("--file")
        .arg(flv)
        .args(["--server-pid", &server_pid.to_string(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fanout failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A 3 s 320x240 test FLV in `dir`, or `None` (after a message) when ffmpeg is missing outside CI.
fn test_flv(dir: &Path) -> Option<std::path::PathBuf> {
    if !have_ffmpeg() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "ffmpeg is required under CI"
        );
        eprintln!("skipping: ffmpeg not found");
        return None;
    }
    let flv = dir.join("t.flv");
    let made = Command::new(BIN)
        .arg("make-flv")
        .arg("--out")
        .arg(&flv)
        .args(["--seconds", "3", "--size", "320x240", "--kbps", "300"])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "make-flv: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    Some(flv)
}

/// Every viewer connected, stayed, and got the stream in real time.
fn assert_viewers_kept_up(r: &Value, viewers: f64, ctx: &str) {
    assert_eq!(f(r, &["viewers", "connected"]), viewers, "{ctx}");
    assert_eq!(f(r, &["viewers", "failed"]), 0.0, "{ctx}");
    assert_eq!(f(r, &["viewers", "dropped"]), 0.0, "{ctx}");
    assert_eq!(f(r, &["viewers", "without_frames"]), 0.0, "{ctx}");
    // 30 fps over 1 s of warm-up and a 3 s window.
    assert!(f(r, &["viewers", "min_video_frames"]) >= 60.0, "{ctx}");
    assert_eq!(f(r, &["publishers", "publishing"]), 1.0, "{ctx}");
    assert_eq!(f(r, &["ttff_ms", "count"]), viewers, "{ctx}");
    assert!(f(r, &["ttff_ms", "max"]) < 3000.0, "{ctx}");
    assert_eq!(f(r, &["latency_ms", "unmatched_frames"]), 0.0, "{ctx}");
    assert_eq!(
        f(r, &["audio_latency_ms", "unmatched_frames"]),
        0.0,
        "{ctx}"
    );
}

fn f(v: &Value, path: &[&str]) -> f64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_f64()
        .unwrap_or_else(|| panic!("{path:?} missing in {v:#}"))
}

#[test]
fn floor_serves_ten_viewers_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let Some(flv) = test_flv(dir.path()) else {
        return;
    };

    let mut p50 = Vec::new();
    for mode in ["frame", "batch100"] {
        let r = fanout_against_floor(&flv, mode);
        let ctx = format!("{mode}: {r:#}");
        assert_viewers_kept_up(&r, 10.0, &ctx);

        // Every viewer gets about the file's bitrate.
        let kbps = f(&r, &["file_kbps"]);
        assert!(kbps > 100.0 && kbps < 1000.0, "{ctx}");
        let min = f(&r, &["per_viewer_mbps", "min"]) * 1000.0;
        let max = f(&r, &["per_viewer_mbps", "max"]) * 1000.0;
        assert!(min > kbps * 0.6 && max < kbps * 1.6, "{ctx}");
        let agg = f(&r, &["aggregate_mbps"]) * 1000.0;
        assert!(agg > 10.0 * kbps * 0.6, "{ctx}");

        // 10 viewers x ~90 frames in the window, none unexplained.
        assert!(f(&r, &["latency_ms", "samples"]) >= 600.0, "{ctx}");
        let (l50, l99, lmax) = (
            f(&r, &["latency_ms", "p50"]),
            f(&r, &["latency_ms", "p99"]),
            f(&r, &["latency_ms", "max"]),
        );
        assert!(0.0 <= l50 && l50 <= l99 && l99 <= lmax, "{ctx}");
        assert!(lmax < 1000.0, "{ctx}");
        if mode == "frame" {
            assert!(l99 < 200.0, "{ctx}");
        } else {
            // Batching holds frames for up to 100 ms: the figures must show it.
            assert!(f(&r, &["latency_ms", "p95"]) > 20.0, "{ctx}");
            assert!(l50 < 150.0, "{ctx}");
        }
        p50.push(l50);

        // AAC at 48 kHz is ~47 frames a second: 10 viewers x ~140 audio frames in the window.
        assert!(f(&r, &["audio_latency_ms", "samples"]) >= 900.0, "{ctx}");
        let (a50, a99, amax) = (
            f(&r, &["audio_latency_ms", "p50"]),
            f(&r, &["audio_latency_ms", "p99"]),
            f(&r, &["audio_latency_ms", "max"]),
        );
        assert!(
            0.0 <= a50 && a50 <= a99 && a99 <= amax && amax < 1000.0,
            "{ctx}"
        );
        // The combined figures hold every audio and video sample, and lie between the two.
        assert_eq!(
            f(&r, &["all_frames_latency_ms", "count"]),
            f(&r, &["latency_ms", "samples"]) + f(&r, &["audio_latency_ms", "samples"]),
            "{ctx}"
        );
        let all99 = f(&r, &["all_frames_latency_ms", "p99"]);
        assert!(all99 <= l99.max(a99) * 1.02, "{ctx}");
        assert!(all99 >= l99.min(a99) * 0.98, "{ctx}");
        assert_eq!(
            f(&r, &["all_frames_latency_ms", "max"]),
            lmax.max(amax),
            "{ctx}"
        );

        assert!(f(&r, &["server", "cpu_seconds"]) >= 0.0, "{ctx}");
        assert!(f(&r, &["server", "peak_rss_kib"]) > 0.0, "{ctx}");
        assert!(f(&r, &["tool", "cpu_seconds"]) >= 0.0, "{ctx}");
    }
    assert!(p50[0] < p50[1], "batching must add latency: {p50:?}");
}

#[test]
fn rill_serves_rtmp_http_flv_and_ws_flv_viewers() {
    let dir = tempfile::tempdir().unwrap();
    let Some(flv) = test_flv(dir.path()) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime
        .block_on(rill::Server::builder(rill::Config::loopback_ephemeral()).start())
        .expect("rill starts");
    let (rtmp, http) = (server.rtmp_addr().port(), server.http_addr().port());
    for protocol in ["rtmp", "http-flv", "ws-flv"] {
        let args = [
            "--protocol",
            protocol,
            "--http-port",
            &http.to_string(),
            "--viewers",
            "5",
        ];
        let r = fanout(&flv, rtmp, &args, std::process::id());
        let ctx = format!("{protocol}: {r:#}");
        assert_viewers_kept_up(&r, 5.0, &ctx);
        // Coalesced delivery (the default) holds audio for at most about a frame.
        assert!(f(&r, &["all_frames_latency_ms", "p50"]) < 100.0, "{ctx}");
        assert!(f(&r, &["audio_latency_ms", "samples"]) >= 450.0, "{ctx}");
    }
    runtime.block_on(server.shutdown());
}

#[test]
fn refuses_non_loopback_targets() {
    let out = Command::new(BIN)
        .args([
            "fanout",
            "--url",
            "rtmp://192.0.2.1/live/x",
            "--viewers",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a loopback"));
    let out = Command::new(BIN)
        .args(["fanout", "--viewers", "5001", "--file", "/nonexistent.flv"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
