//! Stream lifecycle with Rill's own client: viewers waiting before the publisher, staying across
//! unpublish/republish, publisher replacement, HTTP routing (404/405/CORS) and shutdown.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rill::client::{RtmpPlayer, RtmpPublisher};
use rill::{Config, Server, ServerHandle};
use rill_media::flv::FlvDemuxer;
use rill_media::{Frame, FrameKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(10);

async fn start(config: Config) -> ServerHandle {
    Server::builder(config)
        .start()
        .await
        .expect("server starts")
}

fn video(ts: u32, body: &'static [u8]) -> Frame {
    Frame::from_flv_body(FrameKind::Video, ts, Bytes::from_static(body)).unwrap()
}

const SEQ: &[u8] = b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f\xff\xe1\x00\x04\x67\x64\x00\x1f\x01\x00\x04\x68\xee\x3c\x80";
const KEY: &[u8] = b"\x17\x01\x00\x00\x00\x00\x00\x00\x05\x65\x88\x84\x00\x10";
const INTER: &[u8] = b"\x27\x01\x00\x00\x00\x00\x00\x00\x05\x41\x9a\x00\x10\x20";

async fn publish_gop(p: &mut RtmpPublisher, base: u32) {
    p.send_frame(&video(base, SEQ)).await.unwrap();
    p.send_frame(&video(base, KEY)).await.unwrap();
    for i in 1..5 {
        p.send_frame(&video(base + i * 33, INTER)).await.unwrap();
    }
}

async fn next_video(player: &mut RtmpPlayer) -> Frame {
    loop {
        let f = timeout(T, player.next_frame())
            .await
            .expect("frame in time")
            .unwrap()
            .expect("not closed");
        if f.kind == FrameKind::Video {
            return f;
        }
    }
}

#[tokio::test]
async fn rtmp_viewer_waits_for_publisher_and_survives_republish() {
    let server = start(Config::loopback_ephemeral()).await;
    let url = format!("rtmp://{}/live/wait", server.rtmp_addr());
    let mut player = timeout(T, RtmpPlayer::connect(&url))
        .await
        .unwrap()
        .unwrap();

    let mut publisher = RtmpPublisher::connect(&url).await.unwrap();
    assert_eq!(
        player.next_status().await.unwrap().as_deref(),
        Some("NetStream.Play.PublishNotify")
    );
    publish_gop(&mut publisher, 0).await;
    let f = next_video(&mut player).await;
    assert!(f.sequence_header, "sequence header first");
    let f = next_video(&mut player).await;
    assert!(f.is_video_keyframe());
    for _ in 1..5 {
        next_video(&mut player).await;
    }
    timeout(T, publisher.close()).await.unwrap().unwrap();
    assert_eq!(
        player.next_status().await.unwrap().as_deref(),
        Some("NetStream.Play.UnpublishNotify")
    );

    let mut publisher = RtmpPublisher::connect(&url).await.unwrap();
    assert_eq!(
        player.next_status().await.unwrap().as_deref(),
        Some("NetStream.Play.PublishNotify")
    );
    publish_gop(&mut publisher, 0).await;
    let seq = next_video(&mut player).await;
    assert!(
        seq.sequence_header,
        "the new publisher's sequence header reaches the old viewer"
    );
    let key = next_video(&mut player).await;
    assert!(key.is_video_keyframe());
    assert!(
        key.timestamp > 4 * 33,
        "timestamps continue across republish, got {}",
        key.timestamp
    );
    server.shutdown().await;
}

#[tokio::test]
async fn second_publisher_is_refused_but_an_idle_one_is_replaced() {
    let mut config = Config::loopback_ephemeral();
    config.rtmp.publisher_idle_timeout = 1;
    let server = start(config).await;
    let url = format!("rtmp://{}/live/dup", server.rtmp_addr());
    let mut first = RtmpPublisher::connect(&url).await.unwrap();
    publish_gop(&mut first, 0).await;
    let refused = RtmpPublisher::connect(&url).await;
    match refused {
        Err(rill::client::ClientError::Refused(msg)) => {
            assert!(msg.contains("NetStream.Publish.BadName"), "{msg}")
        }
        other => panic!("expected a refusal, got {:?}", other.err()),
    }
    // The first publisher goes silent (as after a network blip); the reconnect takes over.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let mut second = timeout(T, RtmpPublisher::connect(&url))
        .await
        .unwrap()
        .expect("idle publisher replaced");
    publish_gop(&mut second, 0).await;
    let mut player = RtmpPlayer::connect(&url).await.unwrap();
    assert!(next_video(&mut player).await.sequence_header);
    assert!(next_video(&mut player).await.is_video_keyframe());
    server.shutdown().await;
}

async fn http_get(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = timeout(T, s.read(&mut buf)).await.unwrap().unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn http_routes_status_codes_and_cors() {
    let server = start(Config::loopback_ephemeral()).await;
    let a = server.http_addr();
    let r = http_get(a, "GET /nothing/here/at/all HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    let r = http_get(a, "GET /live/cam1.mp4 HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    let r = http_get(
        a,
        "POST /live/cam1.flv HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 405"), "{r}");
    let r = http_get(
        a,
        "GET /live/cam1.flv HTTP/1.1\r\nHost: x\r\nOrigin: http://page.example\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let lower = r.to_ascii_lowercase();
    assert!(lower.contains("content-type: video/x-flv"), "{r}");
    assert!(lower.contains("access-control-allow-origin: *"), "{r}");
    assert!(lower.contains("transfer-encoding: chunked"), "{r}");
    server.shutdown().await;

    let mut config = Config::loopback_ephemeral();
    config.http.allow_origin = String::new();
    let server = start(config).await;
    let r = http_get(
        server.http_addr(),
        "GET /live/cam1.flv HTTP/1.1\r\nHost: x\r\nOrigin: http://p\r\n\r\n",
    )
    .await;
    assert!(
        !r.to_ascii_lowercase()
            .contains("access-control-allow-origin"),
        "{r}"
    );
    server.shutdown().await;
}

/// Reads an HTTP-FLV response: skips the headers, de-chunks the body, demuxes FLV tags.
struct FlvReader {
    s: TcpStream,
    raw: BytesMut,
    body: BytesMut,
    demux: FlvDemuxer,
    headers_done: bool,
}

impl FlvReader {
    async fn open(addr: std::net::SocketAddr, path: &str) -> FlvReader {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        FlvReader {
            s,
            raw: BytesMut::new(),
            body: BytesMut::new(),
            demux: FlvDemuxer::new(1 << 24),
            headers_done: false,
        }
    }

    async fn tags(&mut self, want: usize) -> Vec<rill_media::flv::FlvTag> {
        let mut tags = Vec::new();
        while tags.len() < want {
            while let Some(tag) = self.demux.next_tag(&mut self.body).unwrap() {
                tags.push(tag);
            }
            if tags.len() >= want {
                break;
            }
            let mut buf = [0u8; 16384];
            let n = timeout(T, self.s.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "connection closed early");
            self.raw.extend_from_slice(&buf[..n]);
            if !self.headers_done {
                let Some(end) = self.raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let _ = self.raw.split_to(end + 4);
                self.headers_done = true;
            }
            while let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") {
                let size = std::str::from_utf8(&self.raw[..line_end]).unwrap().trim();
                let size = usize::from_str_radix(size, 16).unwrap();
                if self.raw.len() < line_end + 2 + size + 2 {
                    break;
                }
                let _ = self.raw.split_to(line_end + 2);
                let chunk = self.raw.split_to(size);
                self.body.extend_from_slice(&chunk);
                let _ = self.raw.split_to(2);
            }
        }
        tags
    }
}

#[tokio::test]
async fn http_flv_viewer_keeps_its_connection_across_republish() {
    let server = start(Config::loopback_ephemeral()).await;
    let url = format!("rtmp://{}/live/flvre", server.rtmp_addr());
    let mut reader = FlvReader::open(server.http_addr(), "/live/flvre.flv").await;
    let mut publisher = RtmpPublisher::connect(&url).await.unwrap();
    publish_gop(&mut publisher, 0).await;
    let tags = reader.tags(6).await;
    assert_eq!(
        reader.demux.header(),
        Some((false, true)),
        "video-only stream: only the video flag"
    );
    assert_eq!(&tags[0].body[..], SEQ);
    assert_eq!(&tags[1].body[..], KEY);
    publisher.close().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut publisher = RtmpPublisher::connect(&url).await.unwrap();
    publish_gop(&mut publisher, 0).await;
    let tags = reader.tags(6).await;
    assert_eq!(
        &tags[0].body[..],
        SEQ,
        "new sequence header on the same connection"
    );
    assert!(
        tags[1].timestamp > 4 * 33,
        "continuing timestamps: {}",
        tags[1].timestamp
    );
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_every_session() {
    let server = start(Config::loopback_ephemeral()).await;
    let url = format!("rtmp://{}/live/bye", server.rtmp_addr());
    let mut publisher = RtmpPublisher::connect(&url).await.unwrap();
    publish_gop(&mut publisher, 0).await;
    let mut player = RtmpPlayer::connect(&url).await.unwrap();
    next_video(&mut player).await;
    let mut flv = FlvReader::open(server.http_addr(), "/live/bye.flv").await;
    flv.tags(2).await;
    timeout(T, server.shutdown())
        .await
        .expect("shutdown completes");
    // Both viewers see their connection end.
    while let Ok(Some(_)) = timeout(T, player.next_frame()).await.unwrap() {}
    let mut rest = Vec::new();
    let _ = timeout(T, flv.s.read_to_end(&mut rest))
        .await
        .expect("http-flv closed");
}

#[tokio::test]
async fn signed_urls_guard_hls_and_dash_playlists() {
    let mut config = Config::loopback_ephemeral();
    config.auth.play = true;
    config.auth.secret = "s3cret".into();
    config.trans.tasks = vec![rill::config::TransTask {
        app: "live".into(),
        hls: true,
        dash: true,
        ..Default::default()
    }];
    let server = start(config).await;
    let a = server.http_addr();
    let expires = 4_000_000_000u64;
    let good = rill::control::auth::sign_hash("/live/cam", expires, "s3cret");
    for file in ["index.m3u8", "index.mpd"] {
        let r = http_get(
            a,
            &format!("GET /live/cam/{file} HTTP/1.1\r\nHost: x\r\n\r\n"),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 401"), "no sign: {r}");
        let r = http_get(
            a,
            &format!(
                "GET /live/cam/{file}?sign={expires}-{} HTTP/1.1\r\nHost: x\r\n\r\n",
                "0".repeat(32)
            ),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 403"), "bad sign: {r}");
        assert!(!r.contains("s3cret") && !r.contains(&good), "no leak: {r}");
        let r = http_get(
            a,
            &format!("GET /live/cam/{file}?sign=100-{good} HTTP/1.1\r\nHost: x\r\n\r\n"),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 403"), "expired: {r}");
        // A valid signature passes the check; nothing is published, so the playlist is not found.
        let r = http_get(
            a,
            &format!("GET /live/cam/{file}?sign={expires}-{good} HTTP/1.1\r\nHost: x\r\n\r\n"),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 404"), "valid sign: {r}");
    }
    server.shutdown().await;
}
