//! The statistics API, the kick endpoints, Basic auth and `/metrics`, against a real server with a
//! synthetic stream published by Rill's own client: an H.264 High 1280x720 sequence header built
//! from a real x264 SPS/PPS, an AAC LC 44.1 kHz stereo AudioSpecificConfig, then made-up frames.
//! One RTMP player and one HTTP-FLV viewer watch it.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use rill::client::{RtmpPlayer, RtmpPublisher};
use rill_media::{Frame, FrameKind};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// SPS of `ffmpeg -f lavfi -i testsrc2=size=1280x720:rate=30 -frames:v 1 -c:v libx264
/// -profile:v high -f h264`: High profile, level 3.1, 1280x720, VUI timing for 30 fps.
const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
    0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
];
/// The PPS of the same encode.
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
/// AAC LC (object type 2), 44100 Hz (index 4), 2 channels.
const ASC: &[u8] = &[0x12, 0x10];

fn avc_sequence_header() -> Bytes {
    let mut b = BytesMut::new();
    b.put_slice(&[0x17, 0x00, 0, 0, 0]);
    // AVCDecoderConfigurationRecord: version, profile, compatibility, level, 4-byte NALU lengths.
    b.put_slice(&[1, SPS[1], SPS[2], SPS[3], 0xff, 0xe1]);
    b.put_u16(SPS.len() as u16);
    b.put_slice(SPS);
    b.put_u8(1);
    b.put_u16(PPS.len() as u16);
    b.put_slice(PPS);
    b.freeze()
}

fn video_frame(keyframe: bool, size: usize, fill: u8) -> Bytes {
    let mut b = BytesMut::new();
    b.put_slice(&[if keyframe { 0x17 } else { 0x27 }, 0x01, 0, 0, 0]);
    b.put_u32(size as u32);
    b.put_u8(if keyframe { 0x65 } else { 0x41 });
    b.put_bytes(fill, size - 1);
    b.freeze()
}

fn audio_frame(sequence_header: bool) -> Bytes {
    let mut b = BytesMut::new();
    b.put_slice(&[0xaf, if sequence_header { 0x00 } else { 0x01 }]);
    if sequence_header {
        b.put_slice(ASC);
    } else {
        b.put_bytes(0x21, 200);
    }
    b.freeze()
}

fn frame(kind: FrameKind, ts: u32, payload: Bytes) -> Frame {
    Frame::from_flv_body(kind, ts, payload).unwrap()
}

/// Sequence headers, then two seconds of 30 fps video (keyframe every 30) and ~43 audio frames/s.
fn synthetic_stream() -> Vec<Frame> {
    let mut frames = vec![
        frame(FrameKind::Video, 0, avc_sequence_header()),
        frame(FrameKind::Audio, 0, audio_frame(true)),
    ];
    for i in 0..60u32 {
        let key = i % 30 == 0;
        let size = if key { 6000 } else { 1500 };
        frames.push(frame(
            FrameKind::Video,
            i * 33,
            video_frame(key, size, i as u8),
        ));
        if i % 3 != 2 {
            frames.push(frame(FrameKind::Audio, i * 33 + 5, audio_frame(false)));
        }
    }
    frames
}

/// An HTTP/1.1 response read to its end.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("body is not UTF-8")
    }
}

/// A request with `Connection: close`, read to the end of the response.
async fn request(addr: SocketAddr, method: &str, path: &str, login: Option<(&str, &str)>) -> Reply {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some((user, pass)) = login {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        req.push_str(&format!("Authorization: Basic {token}\r\n"));
    }
    req.push_str("\r\n");
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    timeout(Duration::from_secs(10), sock.read_to_end(&mut raw))
        .await
        .expect("HTTP response timed out")
        .unwrap();
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no end of headers");
    let head = std::str::from_utf8(&raw[..head_end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let mut reply = Reply {
        status,
        headers,
        body: raw[head_end + 4..].to_vec(),
    };
    if reply
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        reply.body = dechunk(&reply.body).expect("a chunked body");
    }
    reply
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, None).await
}

/// An HTTP-FLV viewer: sends the GET and reads until `min` body bytes have arrived.
async fn http_flv_viewer(addr: SocketAddr, path: &str, min: usize) -> TcpStream {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while got.len() < min {
        let n = timeout(Duration::from_secs(10), sock.read(&mut buf))
            .await
            .expect("HTTP-FLV viewer got no data")
            .unwrap();
        assert!(n > 0, "HTTP-FLV response ended early");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&got[..40])
    );
    sock
}

/// Checks one Prometheus text-format line against the 0.0.4 grammar.
fn check_prometheus_line(line: &str) {
    fn is_name(s: &str) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    if let Some(rest) = line.strip_prefix("# ") {
        let mut parts = rest.splitn(3, ' ');
        let keyword = parts.next().unwrap();
        let name = parts.next().unwrap_or("");
        let tail = parts.next().unwrap_or("");
        assert!(is_name(name), "bad metric name in {line:?}");
        match keyword {
            "HELP" => assert!(!tail.contains('\n')),
            "TYPE" => assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&tail),
                "bad type in {line:?}"
            ),
            _ => {}
        }
        return;
    }
    let name_end = line.find(['{', ' ']).expect("sample without value");
    assert!(is_name(&line[..name_end]), "bad name in {line:?}");
    let mut rest = &line[name_end..];
    if let Some(labels) = rest.strip_prefix('{') {
        // name="value" pairs, values with \\, \" and \n escapes only.
        let mut s = labels;
        loop {
            if let Some(after) = s.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = s.find('=').expect("label without =");
            assert!(is_name(&s[..eq]), "bad label name in {line:?}");
            s = s[eq + 1..].strip_prefix('"').expect("unquoted label value");
            let mut chars = s.char_indices();
            let end = loop {
                match chars.next().expect("unterminated label value") {
                    (_, '\\') => {
                        let (_, esc) = chars.next().expect("dangling escape");
                        assert!(matches!(esc, '\\' | '"' | 'n'), "bad escape in {line:?}");
                    }
                    (i, '"') => break i,
                    _ => {}
                }
            };
            s = &s[end + 1..];
            s = s.strip_prefix(',').unwrap_or(s);
        }
    }
    let value_text = rest.strip_prefix(' ').expect("no space before the value");
    let mut fields = value_text.split(' ');
    let value = fields.next().unwrap();
    assert!(
        value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
        "bad value in {line:?}"
    );
    if let Some(ts) = fields.next() {
        assert!(ts.parse::<i64>().is_ok(), "bad timestamp in {line:?}");
    }
    assert!(fields.next().is_none(), "trailing fields in {line:?}");
}

/// The value of the sample written exactly as `series` (name and labels).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_kicks_and_metrics() {
    bounded(async {
        let server = start_server().await;
        let http = server.http_addr();
        let url = rtmp_url(&server, "live", "cam");

        let frames = synthetic_stream();
        let payload_bytes: u64 = frames.iter().map(|f| f.payload.len() as u64).sum();
        let mut publisher = RtmpPublisher::connect(&url).await.unwrap();
        for f in &frames {
            publisher.send_frame(f).await.unwrap();
        }
        let hub = server.hub().clone();
        let all_in = wait_until(Duration::from_secs(10), || {
            hub.stream("live", "cam")
                .is_some_and(|s| s.facts().frames_in == frames.len() as u64)
        })
        .await;
        assert!(all_in, "the hub did not receive every frame");

        // An RTMP player, fed from the GOP cache; read up to the keyframe.
        let mut player = RtmpPlayer::connect(&url).await.unwrap();
        loop {
            let f = timeout(Duration::from_secs(10), player.next_frame())
                .await
                .unwrap()
                .unwrap()
                .expect("player closed early");
            if f.is_video_keyframe() {
                break;
            }
        }
        // An HTTP-FLV viewer that reads past the FLV header and sequence headers.
        let _flv = http_flv_viewer(http, "/live/cam.flv", 4096).await;
        // A TCP connection to the RTMP port that never handshakes: an idle session.
        let _idle = TcpStream::connect(server.rtmp_addr()).await.unwrap();
        let sessions = server.sessions().clone();
        assert!(
            wait_until(Duration::from_secs(5), || sessions.list().len() == 4).await,
            "expected 4 sessions, have {:?}",
            sessions.list()
        );

        // /api/streams
        let r = get(http, "/api/streams").await;
        assert_eq!(r.status, 200);
        assert!(r.header("content-type").unwrap().starts_with("application/json"));
        let all = r.json();
        assert_eq!(all.as_object().unwrap().len(), 1, "{all:#}");
        let cam = &all["live"]["cam"];
        let p = &cam["publisher"];
        assert_eq!(p["app"], "live");
        assert_eq!(p["stream"], "cam");
        assert_eq!(p["ip"], "127.0.0.1");
        let publisher_id: u64 = p["clientId"].as_str().unwrap().parse().unwrap();
        let created = p["connectCreated"].as_str().unwrap();
        assert!(
            created.len() == 24 && created.ends_with('Z') && created.as_bytes()[10] == b'T',
            "{created}"
        );
        let bytes = p["bytes"].as_u64().unwrap();
        assert!(
            bytes >= payload_bytes,
            "publisher bytes {bytes} < payload sent {payload_bytes}"
        );
        assert_eq!(p["video"]["codec"], "H264", "{p:#}");
        assert_eq!(p["video"]["width"], 1280);
        assert_eq!(p["video"]["height"], 720);
        assert_eq!(p["video"]["profile"], "High");
        assert_eq!(p["video"]["level"].as_f64(), Some(3.1));
        assert!(
            p["video"]["fps"].is_null() || p["video"]["fps"].as_f64() == Some(30.0),
            "{p:#}"
        );
        assert_eq!(
            p["audio"],
            serde_json::json!({"codec": "AAC", "profile": "LC", "samplerate": 44100, "channels": 2})
        );
        let subs = cam["subscribers"].as_array().unwrap();
        assert_eq!(subs.len(), 2, "{cam:#}");
        let mut protocols: Vec<&str> = subs.iter().map(|s| s["protocol"].as_str().unwrap()).collect();
        protocols.sort();
        // Node-Media-Server's names (`/api/sessions` says `http-flv`).
        assert_eq!(protocols, ["http", "rtmp"]);
        for s in subs {
            assert_eq!(s["app"], "live");
            assert_eq!(s["stream"], "cam");
            assert_eq!(s["ip"], "127.0.0.1");
            assert!(s["bytes"].as_u64().unwrap() > 0, "{s:#}");
            assert!(s["connectCreated"].as_str().unwrap().ends_with('Z'));
        }
        let rtmp_player_id: u64 = subs
            .iter()
            .find(|s| s["protocol"] == "rtmp")
            .unwrap()["clientId"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(cam["bitrate_in_kbps"].as_u64().unwrap() > 0, "{cam:#}");
        assert!(cam["bitrate_out_kbps"].as_u64().unwrap() > 0, "{cam:#}");

        // One stream, and 404s.
        let r = get(http, "/api/streams/live/cam").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["publisher"]["clientId"], p["clientId"]);
        assert_eq!(get(http, "/api/streams/live/nope").await.status, 404);

        // /api/sessions
        let r = get(http, "/api/sessions").await;
        assert_eq!(r.status, 200);
        let list = r.json();
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), 4, "{list:#?}");
        let me = list.iter().find(|s| s["id"] == publisher_id).unwrap();
        assert_eq!(me["protocol"], "rtmp");
        assert_eq!(me["role"], "publisher");
        assert_eq!(me["app"], "live");
        assert_eq!(me["stream"], "cam");
        assert_eq!(me["ip"], "127.0.0.1");
        assert!(me["bytes_in"].as_u64().unwrap() >= payload_bytes);
        assert!(
            list.iter()
                .any(|s| s["protocol"] == "http-flv" && s["role"] == "player"),
            "{list:#?}"
        );
        assert!(list.iter().any(|s| s["role"].is_null() && s["app"] == ""));

        // /api/server
        let r = get(http, "/api/server").await;
        assert_eq!(r.status, 200);
        let s = r.json();
        for key in ["arch", "platform", "release"] {
            assert!(s["os"][key].is_string(), "{s:#}");
        }
        assert!(s["cpu"]["num"].as_u64().unwrap() >= 1);
        assert!(s["cpu"]["load"].as_u64().unwrap() <= 100);
        assert!(s["cpu"]["model"].is_string() && s["cpu"]["speed"].is_u64());
        assert!(s["mem"]["total"].as_u64().unwrap() > 0);
        assert_eq!(s["mem"]["totle"], s["mem"]["total"]);
        assert!(s["mem"]["free"].as_u64().unwrap() <= s["mem"]["total"].as_u64().unwrap());
        assert!(s["net"]["inbytes"].as_u64().unwrap() >= payload_bytes);
        assert!(s["net"]["outbytes"].as_u64().unwrap() > 0);
        assert!(s["process"]["mem"].as_u64().unwrap() > 0, "{s:#}");
        assert!(s["process"]["uptime"].is_u64());
        assert_eq!(s["process"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
        let accepted = s["clients"]["accepted"].as_u64().unwrap();
        assert_eq!(accepted, 4);
        assert_eq!(
            s["clients"],
            serde_json::json!({"accepted": 4, "active": 3, "idle": 1, "rtmp": 3, "http": 1, "ws": 0})
        );

        // /metrics
        let r = get(http, "/metrics").await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        let text = r.text();
        for line in text.lines() {
            check_prometheus_line(line);
        }
        assert_eq!(sample(&text, "rill_streams"), 1.0);
        assert_eq!(sample(&text, "rill_sessions{protocol=\"rtmp\"}"), 3.0);
        assert_eq!(sample(&text, "rill_sessions{protocol=\"http-flv\"}"), 1.0);
        assert_eq!(sample(&text, "rill_sessions{protocol=\"ws-flv\"}"), 0.0);
        assert_eq!(sample(&text, "rill_connections_accepted_total"), 4.0);
        assert_eq!(sample(&text, "rill_connections_refused_total"), 0.0);
        assert!(sample(&text, "rill_received_bytes_total") >= payload_bytes as f64);
        assert!(sample(&text, "rill_sent_bytes_total") > 0.0);
        assert_eq!(sample(&text, "rill_frames_dropped_total"), 0.0);
        assert_eq!(sample(&text, "rill_viewers_dropped_total"), 0.0);
        assert_eq!(
            sample(&text, "rill_stream_viewers{app=\"live\",stream=\"cam\"}"),
            2.0
        );
        assert_eq!(
            sample(&text, "rill_stream_received_bytes_total{app=\"live\",stream=\"cam\"}"),
            payload_bytes as f64
        );
        assert!(sample(&text, "process_resident_memory_bytes") > 0.0);
        let start = sample(&text, "process_start_time_seconds");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(start > now - 3600.0 && start <= now + 1.0, "{start} vs {now}");

        // Kick the RTMP player by session id: its connection ends.
        let r = request(http, "DELETE", &format!("/api/sessions/{rtmp_player_id}"), None).await;
        assert_eq!(r.status, 204);
        let ended = timeout(Duration::from_secs(5), async {
            while let Ok(Some(_)) = player.next_frame().await {}
        })
        .await;
        assert!(ended.is_ok(), "the kicked player's connection did not end");
        assert!(wait_until(Duration::from_secs(5), || sessions.get(rtmp_player_id).is_none()).await);
        let r = request(http, "DELETE", &format!("/api/sessions/{rtmp_player_id}"), None).await;
        assert_eq!(r.status, 404);
        assert_eq!(request(http, "DELETE", "/api/sessions/x", None).await.status, 404);

        // Kick the publisher through its stream.
        let r = request(http, "DELETE", "/api/streams/live/cam", None).await;
        assert_eq!(r.status, 204);
        assert!(
            wait_until(Duration::from_secs(5), || !server.is_publishing("live", "cam")).await,
            "the publisher was not kicked"
        );
        assert!(wait_until(Duration::from_secs(5), || sessions.get(publisher_id).is_none()).await);
        let r = request(http, "DELETE", "/api/streams/live/cam", None).await;
        assert_eq!(r.status, 404);
        // The HTTP-FLV viewer stays, waiting: the stream is listed without a publisher.
        let cam = get(http, "/api/streams/live/cam").await.json();
        assert!(cam["publisher"].is_null(), "{cam:#}");
        assert_eq!(cam["subscribers"].as_array().unwrap().len(), 1);
        let text = get(http, "/metrics").await.text();
        assert_eq!(sample(&text, "rill_streams"), 0.0);
        // Wrong method.
        assert_eq!(request(http, "POST", "/api/server", None).await.status, 405);

        drop(publisher);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_metrics_require_basic_auth_when_configured() {
    bounded(async {
        let mut config = rill::Config::loopback_ephemeral();
        config.auth.api = true;
        config.auth.api_user = "admin".into();
        config.auth.api_pass = "p4ss:word".into();
        let server = rill::Server::builder(config).start().await.unwrap();
        let http = server.http_addr();
        for path in ["/api/server", "/api/streams", "/api/sessions", "/metrics"] {
            let r = get(http, path).await;
            assert_eq!(r.status, 401, "{path} without credentials");
            assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"rill\""));
            for wrong in [
                ("admin", "p4ss"),
                ("admin", "p4ss:wordx"),
                ("Admin", "p4ss:word"),
                ("", ""),
            ] {
                let r = request(http, "GET", path, Some(wrong)).await;
                assert_eq!(r.status, 401, "{path} with {wrong:?}");
            }
            let r = request(http, "GET", path, Some(("admin", "p4ss:word"))).await;
            assert_eq!(r.status, 200, "{path} with the right credentials");
        }
        let r = request(http, "DELETE", "/api/sessions/1", None).await;
        assert_eq!(r.status, 401);
        // Media stays open: an HTTP-FLV viewer gets its 200 with no credentials.
        let mut sock = TcpStream::connect(http).await.unwrap();
        sock.write_all(format!("GET /live/x.flv HTTP/1.1\r\nHost: {http}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut head = [0u8; 12];
        timeout(Duration::from_secs(5), sock.read_exact(&mut head))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        drop(sock);
        server.shutdown().await;
    })
    .await;
}
