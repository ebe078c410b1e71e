//! Peers of the relay tests (`tests/relay.rs`): a third-party RTMP server (Debian's nginx with
//! libnginx-mod-rtmp, started per test in a temp dir on a free loopback port), short test clips
//! made by ffmpeg, a free-port picker and a small HTTP/1.1 client for the API (JSON and form
//! bodies, Basic auth, a status-only GET for endless media responses).
//!
//! Self-contained (std, tokio, tempfile, base64, serde_json): it works as `common::relay_peers` and
//! as a module of its own (`#[path = "common/relay_peers.rs"] mod relay_peers;`).
//!
//! nginx runs in the foreground (`daemon off; master_process off;`: one process, so killing it
//! leaves no worker behind), with `kill_on_drop`, its pid file and log in the temp dir.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::timeout;

use super::dechunk;

/// Where Debian's libnginx-mod-rtmp installs the module.
pub const NGINX_RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// `name` as found on PATH, or in /usr/sbin and /sbin (root's tools, not always on PATH).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The nginx binary, if it and the RTMP module are installed; otherwise why not
/// (`scripts/setup-nginx-rtmp` installs both).
pub fn nginx_rtmp() -> Result<PathBuf, String> {
    let nginx = which("nginx").ok_or_else(|| {
        "nginx not found (scripts/setup-nginx-rtmp installs nginx and libnginx-mod-rtmp)".to_owned()
    })?;
    if !Path::new(NGINX_RTMP_MODULE).is_file() {
        return Err(format!(
            "{NGINX_RTMP_MODULE} not found (scripts/setup-nginx-rtmp installs libnginx-mod-rtmp)"
        ));
    }
    Ok(nginx)
}

/// A loopback port that was free a moment ago (bound to 0, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("cannot bind an ephemeral loopback port")
        .port()
}

/// Polls `connect` to `addr` every 50 ms until it succeeds; false after `limit`.
pub async fn wait_accepting(addr: SocketAddr, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Ok(_)) = timeout(Duration::from_millis(500), TcpStream::connect(addr)).await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// nginx-rtmp listening on `127.0.0.1:port` with one `live` application (`live on`, and
/// `wait_key`/`wait_video` so that a player starts at a keyframe), running until killed or dropped.
pub struct NginxRtmp {
    nginx: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl NginxRtmp {
    /// Starts nginx on a free loopback port; panics (with its log) if it does not accept within
    /// 10 s. Check [`nginx_rtmp`] first to skip when it is not installed.
    pub async fn start() -> NginxRtmp {
        let nginx = nginx_rtmp().unwrap_or_else(|why| panic!("{why}"));
        let dir = tempfile::tempdir().expect("temp dir for nginx");
        let mut peer = NginxRtmp {
            nginx,
            dir,
            port: free_port(),
            child: None,
        };
        std::fs::write(peer.conf_path(), peer.conf()).expect("write nginx.conf");
        peer.spawn().await;
        peer
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `rtmp://127.0.0.1:PORT/app/stream`.
    pub fn rtmp_url(&self, app: &str, stream: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{app}/{stream}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn conf_path(&self) -> PathBuf {
        self.dir.path().join("nginx.conf")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("stderr.log")
    }

    /// What nginx wrote to stderr (its error log) so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn conf(&self) -> String {
        let dir = self.dir.path().display();
        // No http{} block: the temp paths (client_body_temp_path, ...) belong to it, so nginx has
        // none to create. The prefix (-p) is the temp dir, so nothing is written outside it.
        format!(
            "daemon off;\n\
             master_process off;\n\
             worker_processes 1;\n\
             error_log stderr warn;\n\
             pid {dir}/nginx.pid;\n\
             load_module {NGINX_RTMP_MODULE};\n\
             events {{ worker_connections 256; }}\n\
             rtmp {{\n\
             \x20   server {{\n\
             \x20       listen 127.0.0.1:{port};\n\
             \x20       chunk_size 4096;\n\
             \x20       application live {{\n\
             \x20           live on;\n\
             \x20           wait_key on;\n\
             \x20           wait_video on;\n\
             \x20       }}\n\
             \x20   }}\n\
             }}\n",
            port = self.port
        )
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open nginx log");
        let child = Command::new(&self.nginx)
            .arg("-p")
            .arg(self.dir.path())
            .arg("-c")
            .arg(self.conf_path())
            // Errors before the configuration is read go to stderr too, not /var/log/nginx.
            .args(["-e", "stderr"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", self.nginx.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "nginx exited with {status} before accepting on port {}: {}",
                    self.port,
                    self.log()
                );
            }
            if wait_accepting(self.addr(), Duration::from_millis(100)).await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nginx does not accept on port {} after 10 s: {}",
                self.port,
                self.log()
            );
        }
    }

    /// Kills nginx (SIGKILL, as a crash) and waits until it is gone; its port is then closed.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = timeout(Duration::from_secs(5), child.wait()).await;
        }
    }

    /// Starts nginx again on the same port (after [`NginxRtmp::kill`]).
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

/// Makes a `seconds`-long clip at `path` with `ffmpeg` (not in real time): the same test pattern
/// as the live publishers of `common` (1280x720 30 fps H.264 without B-frames, keyframe every
/// second; 440 Hz AAC at 44.1 kHz). The container follows the extension (`.flv`, `.mp4`; MP4 gets
/// its `moov` first). Panics with ffmpeg's words if it fails.
pub async fn make_clip(ffmpeg: &Path, path: &Path, seconds: u32) {
    let mut cmd = super::ffmpeg_test_source(ffmpeg, (1280, 720), 30, 44100, false);
    cmd.arg("-y")
        .args(super::X264_LIVE)
        .args([
            "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
        ])
        .args(["-t", &seconds.to_string()]);
    if path.extension().is_some_and(|e| e == "mp4") {
        cmd.args(["-movflags", "+faststart"]);
    }
    cmd.arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("ffmpeg making {} took over 60 s", path.display()))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", ffmpeg.display()));
    assert!(
        out.status.success() && path.is_file(),
        "ffmpeg could not make {} ({}): {}",
        path.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// A small HTTP/1.1 client
// ---------------------------------------------------------------------------------------------

/// An HTTP/1.1 response read to its end.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics (showing status and body) if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }
}

/// A request body and its Content-Type.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    None,
    Json(&'a serde_json::Value),
    /// `application/x-www-form-urlencoded` from these pairs.
    Form(&'a [(&'a str, &'a str)]),
}

/// `application/x-www-form-urlencoded` encoding of `pairs`.
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `method path` with `Connection: close`, Basic auth when `login` is set, and `body`; the response
/// read to its end (within 15 s).
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    login: Option<(&str, &str)>,
    body: Body<'_>,
) -> HttpReply {
    let (content_type, payload) = match body {
        Body::None => (None, Vec::new()),
        Body::Json(v) => (Some("application/json"), v.to_string().into_bytes()),
        Body::Form(pairs) => (
            Some("application/x-www-form-urlencoded"),
            form_encode(pairs).into_bytes(),
        ),
    };
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some((user, pass)) = login {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        req.push_str(&format!("Authorization: Basic {token}\r\n"));
    }
    if let Some(ct) = content_type {
        req.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    if content_type.is_some() || method == "POST" || method == "PUT" {
        req.push_str(&format!("Content-Length: {}\r\n", payload.len()));
    }
    req.push_str("\r\n");
    let exchange = async {
        let mut sock = TcpStream::connect(addr).await.expect("connect for HTTP");
        sock.write_all(req.as_bytes()).await.expect("send request");
        sock.write_all(&payload).await.expect("send body");
        let mut raw = Vec::new();
        sock.read_to_end(&mut raw).await.expect("read response");
        raw
    };
    let raw = timeout(Duration::from_secs(15), exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no whole response within 15 s"));
    parse_reply(&raw).unwrap_or_else(|| {
        panic!(
            "{method} {path}: malformed response {:?}",
            String::from_utf8_lossy(&raw)
        )
    })
}

fn parse_head(head: &str) -> Option<(u16, Vec<(String, String)>)> {
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Some((status, headers))
}

fn parse_reply(raw: &[u8]) -> Option<HttpReply> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let (status, headers) = parse_head(std::str::from_utf8(&raw[..end]).ok()?)?;
    let mut reply = HttpReply {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    };
    if reply
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        reply.body = dechunk(&reply.body)?;
    }
    Some(reply)
}

/// Sends `GET path` and reads only the status line and headers (a media response such as
/// HTTP-FLV never ends); `None` if no head arrived within `limit` (or the connection closed first).
pub async fn http_get_status(addr: SocketAddr, path: &str, limit: Duration) -> Option<u16> {
    let exchange = async {
        let mut sock = TcpStream::connect(addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: rill-test\r\n\r\n");
        sock.write_all(req.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..end]).into_owned();
                return parse_head(&head).map(|(status, _)| status);
            }
            let n = sock.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            raw.extend_from_slice(&buf[..n]);
        }
    };
    timeout(limit, exchange).await.ok().flatten()
}
