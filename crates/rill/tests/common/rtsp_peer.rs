//! The real RTSP peer of the relay tests: Debian GStreamer's gst-rtsp-server running
//! tests/fixtures/rtsp_server.py (installed by scripts/setup-rtsp-peer), a live 640x360 25 fps
//! H.264 or H.265 picture with 48 kHz AAC on loopback, as an IP camera would serve it.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;

pub const PYTHON: &str = "/usr/bin/python3";
pub const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rtsp_server.py");

/// True when Debian's python has gst-rtsp-server and the elements the fixture needs.
pub fn peer_available(encoder: &str) -> bool {
    let check = format!(
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); \
         from gi.repository import Gst, GstRtspServer; Gst.init(None); \
         import sys; sys.exit(0 if all(Gst.ElementFactory.find(e) for e in \
         ['{encoder}', 'avenc_aac', 'rtph264pay', 'rtph265pay', 'rtpmp4gpay', 'videotestsrc']) else 1)"
    );
    let ok = std::process::Command::new(PYTHON)
        .args(["-c", &check])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        super::tool_missing(&format!(
            "GStreamer RTSP server with {encoder} not available to {PYTHON} \
             (scripts/setup-rtsp-peer installs it)"
        ));
    }
    ok
}

/// A running fixture server. Dropping it closes its stdin (it exits) and kills it.
pub struct Peer {
    _child: Child,
    pub port: u16,
}

impl Peer {
    pub fn url(&self, userinfo: &str) -> String {
        format!("rtsp://{userinfo}127.0.0.1:{}/test", self.port)
    }
}

/// Starts the fixture on a free loopback port; `None` (after a skip note) when GStreamer is
/// missing.
pub async fn start_peer(
    codec: &str,
    bframes: u32,
    auth: Option<(&str, &str, &str)>,
) -> Option<Peer> {
    start_peer_on(None, codec, bframes, auth).await
}

/// [`start_peer`] on `port` when given (to restart a camera where it was), else a free port.
pub async fn start_peer_on(
    port: Option<u16>,
    codec: &str,
    bframes: u32,
    auth: Option<(&str, &str, &str)>,
) -> Option<Peer> {
    let encoder = if codec == "h264" {
        "x264enc"
    } else {
        "x265enc"
    };
    if !peer_available(encoder) {
        return None;
    }
    // The port is free when we look; another process could take it before the fixture binds,
    // so a failed start is retried on a new port.
    for _attempt in 0..3 {
        let port = port.unwrap_or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("no free loopback port")
                .port()
        });
        let mut cmd = Command::new(PYTHON);
        cmd.arg(FIXTURE)
            .args(["--port", &port.to_string(), "--codec", codec])
            .args(["--bframes", &bframes.to_string()]);
        if let Some((user, password, method)) = auth {
            cmd.args(["--user", user, "--password", password, "--auth", method]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot spawn the RTSP fixture");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.trim() == "READY" {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        if ready {
            return Some(Peer {
                _child: child,
                port,
            });
        }
    }
    panic!("the RTSP fixture never printed READY");
}
