//! The floor server: the least work an HTTP-FLV fan-out can do, to put a server's figures in
//! proportion ("x floor").
//!
//! Frames come from an RTMP publisher (`--rtmp-port`, so the bench's publisher and latency
//! measurement work exactly as against Rill) or from an FLV file played in real time (`--file`).
//! Each frame is encoded once as an HTTP chunk and shared; viewers get the FLV header, metadata,
//! sequence headers and the current GOP, then live frames:
//! - `frame`: one `writev` per frame per viewer, as soon as the frame arrives;
//! - `batch100`: one `writev` per viewer every 100 ms carrying every frame since the last one.
//!
//! It listens on 127.0.0.1 only.

use std::collections::HashMap;
use std::io::IoSlice;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rill_media::{Frame, FrameKind};
use rill_rtmp::session::server::{ServerEvent, ServerSession, ServerSessionConfig};
use rill_rtmp::session::MediaKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::http::MAX_HEAD;
use crate::publisher::{http_chunk, FlvFile};

/// How viewers are written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// One writev per frame per viewer.
    Frame,
    /// One writev per viewer every 100 ms.
    Batch100,
}

/// Frames a viewer may fall behind before it is dropped.
const QUEUE: usize = 4096;
/// Largest GOP kept for new viewers.
const MAX_GOP: usize = 2048;
/// iovecs per writev: 100 ms of frames of any normal stream fit in one call (Linux allows 1024).
const IOV_BATCH: usize = 128;

const RESPONSE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n\
Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";

/// One stream: what a new viewer needs, and the live feed.
struct Channel {
    tx: broadcast::Sender<Bytes>,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    meta: Option<Bytes>,
    video_config: Option<Bytes>,
    audio_config: Option<Bytes>,
    gop: Vec<Bytes>,
}

impl Channel {
    fn new() -> Arc<Channel> {
        Arc::new(Channel {
            tx: broadcast::channel(QUEUE).0,
            cache: Mutex::new(Cache::default()),
        })
    }

    fn push(&self, frame: &Frame, timestamp: u32) {
        let chunk = http_chunk(frame.kind, timestamp, &frame.payload);
        let Ok(mut c) = self.cache.lock() else {
            return;
        };
        match frame.kind {
            FrameKind::Metadata => c.meta = Some(chunk.clone()),
            FrameKind::Video if frame.sequence_header => c.video_config = Some(chunk.clone()),
            FrameKind::Audio if frame.sequence_header => c.audio_config = Some(chunk.clone()),
            _ if frame.is_video_keyframe() => {
                c.gop.clear();
                c.gop.push(chunk.clone());
            }
            _ if !c.gop.is_empty() && c.gop.len() < MAX_GOP => c.gop.push(chunk.clone()),
            _ => {}
        }
        // Sent under the cache lock, so a joining viewer's snapshot and subscription line up
        // exactly: no frame twice, none missed.
        let _ = self.tx.send(chunk);
    }

    /// The start of a response (head, FLV header, metadata, configs, GOP) and the live feed.
    fn join(&self) -> (Vec<Bytes>, broadcast::Receiver<Bytes>) {
        let mut first = vec![Bytes::from_static(RESPONSE_HEAD), flv_header_chunk()];
        let Ok(c) = self.cache.lock() else {
            return (first, self.tx.subscribe());
        };
        first.extend(c.meta.iter().cloned());
        first.extend(c.video_config.iter().cloned());
        first.extend(c.audio_config.iter().cloned());
        first.extend(c.gop.iter().cloned());
        (first, self.tx.subscribe())
    }
}

fn flv_header_chunk() -> Bytes {
    let mut b = BytesMut::with_capacity(20);
    b.extend_from_slice(b"d\r\n");
    b.extend_from_slice(&rill_media::flv::file_header(true, true));
    b.extend_from_slice(b"\r\n");
    b.freeze()
}

/// Streams by name; in file mode every name is the file's stream.
struct Hub {
    channels: Mutex<HashMap<String, Arc<Channel>>>,
    single: Option<Arc<Channel>>,
}

/// Most distinct stream names the floor keeps.
const MAX_CHANNELS: usize = 4096;

impl Hub {
    fn channel(&self, name: &str) -> Option<Arc<Channel>> {
        if let Some(c) = &self.single {
            return Some(c.clone());
        }
        let mut m = self.channels.lock().ok()?;
        if let Some(c) = m.get(name) {
            return Some(c.clone());
        }
        if m.len() >= MAX_CHANNELS {
            return None;
        }
        let c = Channel::new();
        m.insert(name.to_owned(), c.clone());
        Some(c)
    }
}

/// Floor server options.
pub struct FloorArgs {
    pub port: u16,
    pub rtmp_port: Option<u16>,
    pub file: Option<PathBuf>,
    pub mode: Mode,
}

/// Runs until killed.
pub async fn run(args: FloorArgs) -> Result<(), String> {
    if args.file.is_none() && args.rtmp_port.is_none() {
        return Err("floor needs --file (play a file) or --rtmp-port (accept a publisher)".into());
    }
    let single = match &args.file {
        Some(path) => {
            let file = Arc::new(FlvFile::load(path)?);
            let ch = Channel::new();
            tokio::spawn(play_file(file, ch.clone()));
            Some(ch)
        }
        None => None,
    };
    let hub = Arc::new(Hub {
        channels: Mutex::new(HashMap::new()),
        single,
    });
    let http = TcpListener::bind(("127.0.0.1", args.port))
        .await
        .map_err(|e| format!("bind 127.0.0.1:{}: {e}", args.port))?;
    eprintln!(
        "floor: HTTP-FLV on http://127.0.0.1:{}/live/STREAM.flv ({:?} mode)",
        local_port(&http),
        args.mode
    );
    if let Some(p) = args.rtmp_port {
        let rtmp = TcpListener::bind(("127.0.0.1", p))
            .await
            .map_err(|e| format!("bind 127.0.0.1:{p}: {e}"))?;
        eprintln!(
            "floor: RTMP ingest on rtmp://127.0.0.1:{}/live/STREAM",
            local_port(&rtmp)
        );
        let hub = hub.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = rtmp.accept().await {
                tokio::spawn(ingest(sock, hub.clone()));
            }
        });
    }
    let mode = args.mode;
    loop {
        let (sock, _) = http.accept().await.map_err(|e| format!("accept: {e}"))?;
        let _ = sock.set_nodelay(true);
        tokio::spawn(serve(sock, hub.clone(), mode));
    }
}

fn local_port(l: &TcpListener) -> u16 {
    l.local_addr().map(|a| a.port()).unwrap_or(0)
}

async fn play_file(file: Arc<FlvFile>, ch: Arc<Channel>) {
    let start = Instant::now();
    for (ts, frame) in file.schedule() {
        tokio::time::sleep_until(start + Duration::from_millis(u64::from(ts))).await;
        ch.push(frame, ts);
    }
}

/// One RTMP publisher: everything it publishes goes to the channel of its stream name.
async fn ingest(mut sock: TcpStream, hub: Arc<Hub>) {
    let mut session = ServerSession::new(ServerSessionConfig::default());
    let mut buf = BytesMut::with_capacity(256 * 1024);
    let mut channel: Option<Arc<Channel>> = None;
    loop {
        if buf.capacity() - buf.len() < 64 * 1024 {
            buf.reserve(256 * 1024);
        }
        match sock.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if session.feed(&mut buf).is_err() {
            return;
        }
        while let Some(ev) = session.poll_event() {
            match ev {
                ServerEvent::Connect { .. } => session.accept_connect(0.0),
                ServerEvent::Publish {
                    stream_id, name, ..
                } => match hub.channel(&name) {
                    Some(c) => {
                        channel = Some(c);
                        session.accept_publish(stream_id, &name);
                    }
                    None => session.reject_publish(stream_id, "NetStream.Publish.BadName", "full"),
                },
                ServerEvent::Play { stream_id, .. } => session.reject_play(
                    stream_id,
                    "NetStream.Play.Failed",
                    "the floor server plays HTTP-FLV only",
                ),
                ServerEvent::Media {
                    kind,
                    timestamp,
                    payload,
                    ..
                } => {
                    let kind = match kind {
                        MediaKind::Audio => FrameKind::Audio,
                        MediaKind::Video => FrameKind::Video,
                    };
                    if let (Some(c), Ok(f)) =
                        (&channel, Frame::from_flv_body(kind, timestamp, payload))
                    {
                        c.push(&f, timestamp);
                    }
                }
                ServerEvent::Metadata {
                    timestamp, payload, ..
                } => {
                    if let (Some(c), Ok(f)) = (
                        &channel,
                        Frame::from_flv_body(FrameKind::Metadata, timestamp, payload),
                    ) {
                        c.push(&f, timestamp);
                    }
                }
                _ => {}
            }
        }
        while let Some(out) = session.take_output() {
            if sock.write_all(&out).await.is_err() {
                return;
            }
        }
    }
}

/// Stream name from `GET /app/NAME.flv[?q] HTTP/1.1`.
pub fn request_stream(head: &[u8]) -> Option<String> {
    let line = head.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    if parts.next()? != "GET" {
        return None;
    }
    let path = parts.next()?.split('?').next()?;
    let name = path.rsplit('/').next()?.strip_suffix(".flv")?;
    (!name.is_empty()).then(|| name.to_owned())
}

async fn serve(mut sock: TcpStream, hub: Arc<Hub>, mode: Mode) {
    let mut head = Vec::with_capacity(1024);
    let mut tmp = [0u8; 1024];
    let read_head = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match sock.read(&mut tmp).await {
                Ok(0) | Err(_) => return false,
                Ok(n) if head.len() + n <= MAX_HEAD => head.extend_from_slice(&tmp[..n]),
                Ok(_) => return false,
            }
        }
        true
    };
    if !tokio::time::timeout(Duration::from_secs(10), read_head)
        .await
        .unwrap_or(false)
    {
        return;
    }
    let Some(ch) = request_stream(&head).and_then(|n| hub.channel(&n)) else {
        let _ = sock
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return;
    };
    let (first, mut rx) = ch.join();
    drop(ch);
    if write_all_vectored(&mut sock, &first).await.is_err() {
        return;
    }
    match mode {
        Mode::Frame => loop {
            match rx.recv().await {
                Ok(b) => {
                    if write_all_vectored(&mut sock, std::slice::from_ref(&b))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                // Lagged: too slow for the floor; Closed: the stream is gone.
                Err(_) => return,
            }
        },
        Mode::Batch100 => {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut batch: Vec<Bytes> = Vec::with_capacity(256);
            loop {
                tick.tick().await;
                batch.clear();
                loop {
                    match rx.try_recv() {
                        Ok(b) => batch.push(b),
                        Err(broadcast::error::TryRecvError::Empty) => break,
                        Err(_) => return,
                    }
                }
                if !batch.is_empty() && write_all_vectored(&mut sock, &batch).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Writes every buffer, one `writev` per call of up to [`IOV_BATCH`] slices, resuming after
/// partial writes. The iovec array lives on the stack: no allocation per frame.
pub async fn write_all_vectored(sock: &mut TcpStream, bufs: &[Bytes]) -> std::io::Result<()> {
    let (mut i, mut off) = (0usize, 0usize);
    while i < bufs.len() {
        let n = {
            let mut slices = [IoSlice::new(&[]); IOV_BATCH];
            let mut used = 0;
            for (slot, (k, b)) in slices.iter_mut().zip(bufs[i..].iter().enumerate()) {
                *slot = IoSlice::new(if k == 0 { &b[off..] } else { &b[..] });
                used += 1;
            }
            sock.write_vectored(&slices[..used]).await?
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let mut left = n;
        while left > 0 && i < bufs.len() {
            let rest = bufs[i].len() - off;
            if left >= rest {
                left -= rest;
                i += 1;
                off = 0;
            } else {
                off += left;
                left = 0;
            }
        }
        while i < bufs.len() && bufs[i].len() == off {
            i += 1;
            off = 0;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_stream_names() {
        assert_eq!(
            request_stream(b"GET /live/bench.flv?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").as_deref(),
            Some("bench")
        );
        assert_eq!(
            request_stream(b"GET /a/b/c.flv HTTP/1.1\r\n\r\n").as_deref(),
            Some("c")
        );
        assert_eq!(request_stream(b"POST /live/x.flv HTTP/1.1\r\n\r\n"), None);
        assert_eq!(request_stream(b"GET /live/x.mp4 HTTP/1.1\r\n\r\n"), None);
        assert_eq!(request_stream(b"GET /live/.flv HTTP/1.1\r\n\r\n"), None);
        assert_eq!(request_stream(b"\xff\xfe"), None);
    }

    #[test]
    fn channel_snapshot_starts_at_keyframe() {
        let ch = Channel::new();
        let f = |kind, body: &[u8]| {
            Frame::from_flv_body(kind, 0, Bytes::copy_from_slice(body)).unwrap()
        };
        ch.push(&f(FrameKind::Video, &[0x27, 1, 0, 0, 0]), 0); // before any keyframe: not cached
        ch.push(&f(FrameKind::Video, &[0x17, 0, 0, 0, 0]), 0); // config
        ch.push(&f(FrameKind::Video, &[0x17, 1, 0, 0, 0]), 10); // keyframe
        ch.push(&f(FrameKind::Audio, &[0xAF, 1, 0]), 12);
        let (first, mut rx) = ch.join();
        // Head, FLV header, video config, keyframe, audio.
        assert_eq!(first.len(), 5);
        ch.push(&f(FrameKind::Video, &[0x27, 1, 0, 0, 0]), 20);
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn vectored_writes_arrive_whole() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let bufs: Vec<Bytes> = (0..3000u32)
            .map(|i| Bytes::from(vec![(i % 251) as u8; (i % 700) as usize]))
            .collect();
        let want: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
        let w = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            write_all_vectored(&mut s, &bufs).await.unwrap();
        });
        let (mut r, _) = l.accept().await.unwrap();
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        w.await.unwrap();
        assert_eq!(got, want);
    }
}
