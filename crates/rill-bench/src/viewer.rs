//! Viewers: RTMP (`ClientSession`), HTTP-FLV (raw GET, chunked decoding, streaming FLV scan),
//! WS-FLV (the same with an upgrade and frame decoding, see `wsread`) and HLS (playlist and
//! segment polling; time to first segment only).
//!
//! Each viewer is one task with one reused read buffer. Per frame it does the least it can: the
//! FLV paths read tag headers only, and every viewer does a few relaxed atomic adds and, for
//! latency, one binary search in the publisher's send log of the frame's kind (audio frames count
//! as well as video: a server that holds audio back must show it).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rill_rtmp::session::client::{ClientEvent, ClientSession, ClientSessionConfig};
use rill_rtmp::session::MediaKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::http::{self, ChunkedDecoder, FlvScanner, TagInfo};
use crate::rxstamp::StampedStream;
use crate::stats::{
    is_audio_config, is_video_config, now_us, Errors, Latencies, SendLogs, ViewerState, ViewerStats,
};
use crate::target::{Scheme, Target};
use crate::wsread::WsDecoder;

/// How a viewer plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    Rtmp,
    HttpFlv,
    WsFlv,
    Hls,
}

impl Protocol {
    /// The URL scheme this protocol plays from.
    pub fn scheme(self) -> Scheme {
        match self {
            Protocol::Rtmp => Scheme::Rtmp,
            Protocol::HttpFlv | Protocol::Hls => Scheme::Http,
            Protocol::WsFlv => Scheme::Ws,
        }
    }
}

/// Size of an RTMP viewer's read buffer: large, so a burst (the GOP cache) takes few reads. The
/// RTMP session reassembles messages in it, so it must hold a whole frame anyway.
const READ_BUF: usize = 256 * 1024;
/// HTTP-FLV viewers scan in place and keep nothing, so a smaller buffer does (it is mostly what a
/// viewer costs in memory: thousands of them add up).
const HTTP_READ_BUF: usize = 64 * 1024;
/// Longest a viewer waits for the connection and the protocol's go-ahead.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest HLS playlist / segment fetched.
const MAX_PLAYLIST: usize = 1 << 20;
const MAX_SEGMENT: usize = 64 << 20;

/// What one viewer reports into.
#[derive(Clone)]
pub struct Viewer {
    pub stats: Arc<ViewerStats>,
    pub latency: Arc<Latencies>,
    /// The publisher's logs, when the bench publishes (no latency without them).
    pub log: Option<Arc<SendLogs>>,
    pub errors: Arc<Errors>,
    /// Pause after each read (`--read-interval-ms`): fewer, larger reads make a bulk viewer much
    /// cheaper, at the price of arrival-time precision, so paced viewers report no latency.
    pub pace: Option<Duration>,
}

impl Viewer {
    /// The pause between reads, once playing and the first picture is in (pausing earlier would
    /// add the pause to the time to first frame).
    async fn pause(&self) {
        if let Some(d) = self.pace {
            if self.stats.state() == ViewerState::Connected && self.stats.ttff().is_some() {
                tokio::time::sleep(d).await;
            }
        }
    }

    /// One video tag arrived completely; its last bytes reached the socket at `at_us`.
    fn video(&self, start_us: u64, at_us: u64, timestamp: u32, first: [u8; 2]) {
        if is_video_config(first) {
            return;
        }
        self.stats.video_frame(at_us);
        if let Some(log) = &self.log {
            self.latency
                .video
                .frame(&log.video, timestamp, at_us, start_us);
        }
    }

    /// One audio tag arrived completely; its last bytes reached the socket at `at_us`.
    fn audio(&self, start_us: u64, at_us: u64, timestamp: u32, first: [u8; 2]) {
        if is_audio_config(first) {
            return;
        }
        if let Some(log) = &self.log {
            self.latency
                .audio
                .frame(&log.audio, timestamp, at_us, start_us);
        }
    }

    /// One complete FLV tag seen by an HTTP-FLV or WS-FLV scan.
    fn tag(&self, start_us: u64, at_us: u64, t: TagInfo) {
        match t.tag_type {
            8 => self.audio(start_us, at_us, t.timestamp, t.first),
            9 => self.video(start_us, at_us, t.timestamp, t.first),
            _ => {}
        }
    }

    fn connected(&self) {
        self.stats.set_state(ViewerState::Connected);
    }
}

/// Plays `target` until the server ends it or the task is aborted; records the outcome.
pub async fn run(protocol: Protocol, target: Target, v: Viewer) {
    let start = now_us();
    v.stats
        .start_us
        .store(start, std::sync::atomic::Ordering::Relaxed);
    let r = match protocol {
        Protocol::Rtmp => rtmp(&target, &v, start).await,
        Protocol::HttpFlv => http_flv(&target, &v, start).await,
        Protocol::WsFlv => ws_flv(&target, &v, start).await,
        Protocol::Hls => hls(&target, &v).await,
    };
    let e = r.err().unwrap_or_else(|| "ended".into());
    if v.stats.state() == ViewerState::Connecting {
        v.stats.set_state(ViewerState::Failed);
        v.errors.add(format!("viewer failed: {e}"));
    } else {
        v.stats.set_state(ViewerState::Dropped);
        v.errors.add(format!("viewer dropped: {e}"));
    }
}

async fn connect(target: &Target) -> Result<StampedStream, String> {
    let sock = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target.addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect {}: {e}", target.addr))?;
    let _ = sock.set_nodelay(true);
    Ok(StampedStream::new(sock))
}

fn first2(body: &[u8]) -> [u8; 2] {
    [
        body.first().copied().unwrap_or(0),
        body.get(1).copied().unwrap_or(0),
    ]
}

async fn rtmp(target: &Target, v: &Viewer, start: u64) -> Result<(), String> {
    let (app, stream) = target.rtmp_parts()?;
    let mut sock = connect(target).await?;
    let mut session =
        ClientSession::new(ClientSessionConfig::new(app.clone(), target.tc_url(&app)));
    session.start();
    session.play(&stream);
    let mut buf = BytesMut::with_capacity(READ_BUF);
    loop {
        while let Some(out) = session.take_output() {
            sock.write_all(&out)
                .await
                .map_err(|e| format!("write: {e}"))?;
        }
        if buf.capacity() - buf.len() < READ_BUF / 4 {
            buf.reserve(READ_BUF);
        }
        let n = if v.stats.state() == ViewerState::Connecting {
            tokio::time::timeout(CONNECT_TIMEOUT, sock.read_buf(&mut buf))
                .await
                .map_err(|_| "no Play.Start in time".to_string())?
        } else {
            sock.read_buf(&mut buf).await
        }
        .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("server closed the connection".into());
        }
        v.stats.add_bytes(n);
        let at = sock.arrival_us();
        session.feed(&mut buf).map_err(|e| format!("rtmp: {e}"))?;
        while let Some(ev) = session.poll_event() {
            match ev {
                ClientEvent::Media {
                    kind: MediaKind::Video,
                    timestamp,
                    payload,
                } => v.video(start, at, timestamp, first2(&payload)),
                ClientEvent::Media {
                    kind: MediaKind::Audio,
                    timestamp,
                    payload,
                } => v.audio(start, at, timestamp, first2(&payload)),
                ClientEvent::Status {
                    level,
                    code,
                    description,
                    ..
                } => {
                    if code == "NetStream.Play.Start" {
                        v.connected();
                    } else if level == "error" {
                        return Err(format!("{code}: {description}"));
                    }
                }
                _ => {}
            }
        }
        v.pause().await;
    }
}

async fn http_flv(target: &Target, v: &Viewer, start: u64) -> Result<(), String> {
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: rill-bench\r\nAccept: */*\r\n\r\n",
        target.path, target.authority
    );
    flv_stream(target, v, start, &req, |head| {
        if head.status != 200 {
            return Err(format!("HTTP {}", head.status));
        }
        Ok(Framing::Http(head.chunked.then(ChunkedDecoder::default)))
    })
    .await
}

async fn ws_flv(target: &Target, v: &Viewer, start: u64) -> Result<(), String> {
    let key = generate_key();
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: rill-bench\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        target.path, target.authority
    );
    let accept = derive_accept_key(key.as_bytes());
    flv_stream(target, v, start, &req, |head| {
        if head.status != 101 {
            return Err(format!("WebSocket upgrade refused: HTTP {}", head.status));
        }
        if head.ws_accept.as_deref() != Some(accept.as_str()) {
            return Err("WebSocket: wrong Sec-WebSocket-Accept".into());
        }
        Ok(Framing::WebSocket(WsDecoder::default()))
    })
    .await
}

/// Sends `request`, reads the response head, lets `accept` check it and choose how the body is
/// framed, then scans FLV tags from every read, in place, until the server ends the stream.
async fn flv_stream(
    target: &Target,
    v: &Viewer,
    start: u64,
    request: &str,
    accept: impl FnOnce(&http::Head) -> Result<Framing, String>,
) -> Result<(), String> {
    let mut sock = connect(target).await?;
    sock.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = vec![0u8; HTTP_READ_BUF];
    let mut filled = 0;
    let (head, used) = loop {
        let n = tokio::time::timeout(CONNECT_TIMEOUT, sock.read(&mut buf[filled..]))
            .await
            .map_err(|_| "no response in time".to_string())?
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("closed before the response head".into());
        }
        filled += n;
        v.stats.add_bytes(n);
        if let Some(h) = http::parse_head(&buf[..filled])? {
            break h;
        }
    };
    let mut body = FlvBody {
        framing: accept(&head)?,
        scan: FlvScanner::default(),
    };
    v.connected();
    body.feed(&buf[used..filled], v, start, sock.arrival_us())?;
    loop {
        let n = sock
            .read(&mut buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("server closed the connection".into());
        }
        v.stats.add_bytes(n);
        body.feed(&buf[..n], v, start, sock.arrival_us())?;
        v.pause().await;
    }
}

/// How the FLV bytes of a response body are framed.
enum Framing {
    /// HTTP: as they are, or chunk-encoded.
    Http(Option<ChunkedDecoder>),
    /// In binary WebSocket messages.
    WebSocket(WsDecoder),
}

/// An FLV byte stream, however framed, scanned without buffering.
struct FlvBody {
    framing: Framing,
    scan: FlvScanner,
}

impl FlvBody {
    fn feed(&mut self, data: &[u8], v: &Viewer, start: u64, at: u64) -> Result<(), String> {
        let on_tag = |t: TagInfo| v.tag(start, at, t);
        let scan = &mut self.scan;
        let mut err = None;
        let mut flv = |d: &[u8]| {
            if err.is_none() {
                err = scan.feed(d, on_tag).err();
            }
        };
        let ended = match &mut self.framing {
            Framing::Http(None) => {
                flv(data);
                false
            }
            Framing::Http(Some(dec)) => {
                dec.feed(data, flv).map_err(|e| format!("chunked: {e:?}"))?
            }
            Framing::WebSocket(dec) => dec
                .feed(data, flv)
                .map_err(|e| format!("WebSocket: {e:?}"))?,
        };
        if let Some(e) = err {
            return Err(format!("flv: {e:?}"));
        }
        if ended {
            return Err("server ended the stream".into());
        }
        Ok(())
    }
}

/// Segment URIs (and whether it is a master playlist) from an M3U8 text.
pub fn playlist_uris(text: &str) -> (Vec<&str>, bool, Option<f64>) {
    let mut uris = Vec::new();
    let mut master = false;
    let mut target = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with("#EXT-X-STREAM-INF") {
            master = true;
        } else if let Some(t) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            target = t.trim().parse().ok();
        } else if !line.is_empty() && !line.starts_with('#') {
            uris.push(line);
        }
    }
    (uris, master, target)
}

/// Resolves a playlist URI against the playlist's path; absolute URLs must stay on loopback.
pub fn resolve(base: &Target, playlist_path: &str, uri: &str) -> Result<(Target, String), String> {
    if uri.contains("://") {
        let t = Target::parse(uri)?;
        let p = t.path.clone();
        return Ok((t, p));
    }
    if uri.starts_with('/') {
        return Ok((base.clone(), uri.to_owned()));
    }
    let dir_end = playlist_path
        .split('?')
        .next()
        .and_then(|p| p.rfind('/'))
        .unwrap_or(0);
    Ok((
        base.clone(),
        format!("{}/{}", &playlist_path[..dir_end], uri),
    ))
}

async fn hls(target: &Target, v: &Viewer) -> Result<(), String> {
    let mut playlist = target.path.clone();
    // Recently fetched segment URIs, so each is fetched once (bounded).
    let mut seen: VecDeque<String> = VecDeque::new();
    let mut first_fetch = true;
    loop {
        let (status, body) = http::get(target, &playlist, MAX_PLAYLIST).await?;
        if status == 404 && v.stats.state() == ViewerState::Connecting {
            // Not published yet (or no segment yet): a player keeps polling too.
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        if status != 200 {
            return Err(format!("playlist: HTTP {status}"));
        }
        v.stats.add_bytes(body.len());
        let text = String::from_utf8_lossy(&body);
        let (uris, master, target_duration) = playlist_uris(&text);
        if master {
            let Some(first) = uris.first() else {
                return Err("empty master playlist".into());
            };
            let (_, p) = resolve(target, &playlist, first)?;
            playlist = p;
            continue;
        }
        v.connected();
        // Like a player starting at the live edge: the newest segment first, then every new one.
        let fresh: Vec<String> = if first_fetch {
            uris.last().map(|u| u.to_string()).into_iter().collect()
        } else {
            uris.iter()
                .filter(|u| !seen.iter().any(|s| s == *u))
                .map(|u| u.to_string())
                .collect()
        };
        for u in &uris {
            if !seen.iter().any(|s| s == u) {
                if seen.len() >= 256 {
                    seen.pop_front();
                }
                seen.push_back(u.to_string());
            }
        }
        first_fetch = fresh.is_empty() && first_fetch;
        for uri in fresh {
            let (t, path) = resolve(target, &playlist, &uri)?;
            let (status, seg) = http::get(&t, &path, MAX_SEGMENT).await?;
            if status != 200 {
                return Err(format!("segment {uri}: HTTP {status}"));
            }
            v.stats.add_bytes(seg.len());
            v.stats.video_frame(now_us());
        }
        let wait = target_duration.unwrap_or(2.0).clamp(0.4, 10.0) / 2.0;
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_playlists() {
        let media = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\nseg1.ts\n#EXT-X-PART:URI=\"p.m4s\"\n#EXTINF:4.0,\nseg2.ts\n";
        let (uris, master, td) = playlist_uris(media);
        assert_eq!(uris, ["seg1.ts", "seg2.ts"]);
        assert!(!master);
        assert_eq!(td, Some(4.0));
        let (uris, master, _) =
            playlist_uris("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nhi/index.m3u8\n");
        assert_eq!(uris, ["hi/index.m3u8"]);
        assert!(master);
    }

    #[test]
    fn resolves_uris_and_keeps_loopback() {
        let base = Target::parse("http://127.0.0.1:8000/live/s/index.m3u8").unwrap();
        let (_, p) = resolve(&base, "/live/s/index.m3u8?x=1", "seg1.ts").unwrap();
        assert_eq!(p, "/live/s/seg1.ts");
        let (_, p) = resolve(&base, "/live/s/index.m3u8", "/other/seg.ts").unwrap();
        assert_eq!(p, "/other/seg.ts");
        let (t, p) = resolve(&base, "/x", "http://localhost:9000/a.ts").unwrap();
        assert_eq!((t.addr.port(), p.as_str()), (9000, "/a.ts"));
        assert!(resolve(&base, "/x", "http://10.0.0.1/a.ts").is_err());
    }

    #[test]
    fn first_bytes() {
        assert_eq!(first2(&[]), [0, 0]);
        assert_eq!(first2(&[7]), [7, 0]);
        assert_eq!(first2(&[7, 8, 9]), [7, 8]);
    }
}
