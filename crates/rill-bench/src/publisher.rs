//! The publisher: an FLV file read once with `FlvDemuxer`, played in a loop with continuing
//! timestamps, sent over RTMP (`ClientSession`) at real-time pace.
//!
//! For every coded video and audio frame it logs the wall time at which the frame's bytes were
//! handed to the kernel, keyed by the frame's timestamp, one log per media kind; viewers look
//! their arrivals up in those logs to get the latency the server added.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rill_media::flv::MAX_TAG_BODY_SIZE;
use rill_media::{FlvDemuxer, Frame, FrameKind};
use rill_rtmp::session::client::{ClientEvent, ClientSession, ClientSessionConfig};
use rill_rtmp::session::MediaKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::stats::{now_us, Errors, SendLogs};
use crate::target::Target;

/// Largest input file read into memory.
const MAX_FILE: u64 = 1 << 30;
/// How long connect + publish may take before the publisher gives up.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// An FLV file ready to be looped.
pub struct FlvFile {
    /// `onMetaData` and codec configuration: sent once, before the first loop.
    pub once: Vec<Frame>,
    /// Every other audio/video frame, timestamps rebased to start at 0.
    pub frames: Vec<Frame>,
    /// Timestamp step between loops: the file's span plus one video frame interval.
    pub loop_ms: u32,
    /// Media bytes per loop, for the bitrate shown in the summary.
    pub loop_bytes: u64,
}

impl FlvFile {
    pub fn load(path: &Path) -> Result<FlvFile, String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.len() > MAX_FILE {
            return Err(format!("{}: larger than 1 GiB", path.display()));
        }
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&data).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(data: &[u8]) -> Result<FlvFile, String> {
        let mut buf = BytesMut::from(data);
        let mut demux = FlvDemuxer::new(MAX_TAG_BODY_SIZE as u32);
        let mut once = Vec::new();
        let mut frames = Vec::new();
        while let Some(tag) = demux.next_tag(&mut buf).map_err(|e| e.to_string())? {
            let kind = match tag.tag_type {
                8 => FrameKind::Audio,
                9 => FrameKind::Video,
                _ => {
                    // AMF0 string "onMetaData": marker 2, length 10.
                    if tag.body.get(..3) == Some(&[2, 0, 10])
                        && tag.body.get(3..13) == Some(b"onMetaData")
                    {
                        once.push(
                            Frame::from_flv_body(FrameKind::Metadata, 0, tag.body)
                                .map_err(|e| e.to_string())?,
                        );
                    }
                    continue;
                }
            };
            let Ok(frame) = Frame::from_flv_body(kind, tag.timestamp, tag.body) else {
                continue; // empty or unparsable tag: a real encoder would not send it either
            };
            if frame.sequence_header {
                once.push(frame);
            } else {
                frames.push(frame);
            }
        }
        let (Some(first), Some(last)) = (
            frames.iter().map(|f| f.timestamp).min(),
            frames.iter().map(|f| f.timestamp).max(),
        ) else {
            return Err("no audio or video frames".into());
        };
        for f in &mut frames {
            f.timestamp -= first;
        }
        for f in &mut once {
            f.timestamp = 0;
        }
        let video: Vec<u32> = frames
            .iter()
            .filter(|f| f.kind == FrameKind::Video)
            .map(|f| f.timestamp)
            .collect();
        let step = match (video.first(), video.last()) {
            (Some(a), Some(b)) if video.len() > 1 => (b - a) / (video.len() as u32 - 1),
            _ => 33,
        };
        let loop_bytes = frames.iter().map(|f| f.payload.len() as u64).sum();
        Ok(FlvFile {
            once,
            frames,
            loop_ms: (last - first) + step.max(1),
            loop_bytes,
        })
    }

    /// Media bitrate of the file in kbit/s.
    pub fn kbps(&self) -> f64 {
        self.loop_bytes as f64 * 8.0 / self.loop_ms.max(1) as f64
    }

    /// The endless schedule: `once` frames, then the frames looped with continuing timestamps.
    pub fn schedule(&self) -> Schedule<'_> {
        Schedule {
            file: self,
            once: 0,
            index: 0,
            lap: 0,
        }
    }
}

/// Iterator over `(timestamp, frame)` of an endless loop of a file.
pub struct Schedule<'a> {
    file: &'a FlvFile,
    once: usize,
    index: usize,
    lap: u32,
}

impl<'a> Iterator for Schedule<'a> {
    type Item = (u32, &'a Frame);

    fn next(&mut self) -> Option<(u32, &'a Frame)> {
        if let Some(f) = self.file.once.get(self.once) {
            self.once += 1;
            return Some((0, f));
        }
        let f = self.file.frames.get(self.index)?;
        let ts = self
            .lap
            .wrapping_mul(self.file.loop_ms)
            .wrapping_add(f.timestamp);
        self.index += 1;
        if self.index == self.file.frames.len() {
            self.index = 0;
            self.lap += 1;
        }
        Some((ts, f))
    }
}

/// Publisher counters, read by the reporter.
#[derive(Default)]
pub struct PublisherStats {
    /// 0 connecting, 1 publishing, 2 failed, 3 dropped.
    pub state: AtomicU8,
    pub frames: AtomicU64,
    pub bytes: AtomicU64,
    /// How far behind schedule a send ever was: a publisher that cannot keep up means the tool
    /// (or the server's reading) is the bottleneck, and latency figures are suspect.
    pub max_late_us: AtomicU64,
}

pub const PUB_CONNECTING: u8 = 0;
pub const PUB_PUBLISHING: u8 = 1;
pub const PUB_FAILED: u8 = 2;
pub const PUB_DROPPED: u8 = 3;

/// Publishes `file` to `target` until aborted. `ready` gets the outcome of connect + publish.
pub async fn run(
    target: Target,
    file: Arc<FlvFile>,
    log: Arc<SendLogs>,
    stats: Arc<PublisherStats>,
    errors: Arc<Errors>,
    ready: oneshot::Sender<Result<(), String>>,
) {
    let conn = match tokio::time::timeout(PUBLISH_TIMEOUT, connect(&target)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return fail(&stats, &errors, ready, e),
        Err(_) => return fail(&stats, &errors, ready, "publish timed out".into()),
    };
    stats.state.store(PUB_PUBLISHING, Relaxed);
    let _ = ready.send(Ok(()));
    if let Err(e) = pace(conn, &file, &log, &stats).await {
        stats.state.store(PUB_DROPPED, Relaxed);
        errors.add(format!("publisher: {e}"));
    }
}

fn fail(
    stats: &PublisherStats,
    errors: &Errors,
    ready: oneshot::Sender<Result<(), String>>,
    e: String,
) {
    stats.state.store(PUB_FAILED, Relaxed);
    errors.add(format!("publisher: {e}"));
    let _ = ready.send(Err(e));
}

struct Conn {
    sock: TcpStream,
    session: ClientSession,
    rbuf: BytesMut,
}

impl Conn {
    async fn flush(&mut self) -> Result<usize, String> {
        let mut n = 0;
        while let Some(out) = self.session.take_output() {
            n += out.len();
            self.sock
                .write_all(&out)
                .await
                .map_err(|e| format!("write: {e}"))?;
        }
        Ok(n)
    }

    /// Reads once and handles what came (see [`Conn::handle_read`]).
    async fn read_some(&mut self) -> Result<Option<String>, String> {
        self.reserve();
        let r = self.sock.read_buf(&mut self.rbuf).await;
        self.handle_read(r).await
    }

    fn reserve(&mut self) {
        if self.rbuf.capacity() - self.rbuf.len() < 4096 {
            self.rbuf.reserve(16 * 1024);
        }
    }

    /// Handles the outcome of one read: acknowledgements and pings are answered by the session;
    /// an error-level status ends publishing. Returns `Some` once publishing has started.
    ///
    /// Kept apart from the read itself because only the read is cancel-safe: the pacing loop
    /// races the read against its timer, and must never drop a half-written answer.
    async fn handle_read(&mut self, r: std::io::Result<usize>) -> Result<Option<String>, String> {
        let n = r.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("server closed the connection".into());
        }
        self.session
            .feed(&mut self.rbuf)
            .map_err(|e| format!("rtmp: {e}"))?;
        let mut started = None;
        while let Some(ev) = self.session.poll_event() {
            if let ClientEvent::Status {
                level,
                code,
                description,
                ..
            } = ev
            {
                if code == "NetStream.Publish.Start" {
                    started = Some(code);
                } else if level == "error" {
                    return Err(format!("{code}: {description}"));
                }
            }
        }
        self.flush().await?;
        Ok(started)
    }
}

async fn connect(target: &Target) -> Result<Conn, String> {
    let (app, stream) = target.rtmp_parts()?;
    let sock = TcpStream::connect(target.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", target.addr))?;
    let _ = sock.set_nodelay(true);
    let mut session =
        ClientSession::new(ClientSessionConfig::new(app.clone(), target.tc_url(&app)));
    session.start();
    session.publish(&stream);
    let mut conn = Conn {
        sock,
        session,
        rbuf: BytesMut::with_capacity(16 * 1024),
    };
    conn.flush().await?;
    while conn.read_some().await?.is_none() {}
    Ok(conn)
}

/// Sends frames as their timestamps come due, servicing the socket's read side while waiting.
async fn pace(
    mut conn: Conn,
    file: &FlvFile,
    log: &SendLogs,
    stats: &PublisherStats,
) -> Result<(), String> {
    let start = Instant::now();
    let mut schedule = file.schedule().peekable();
    // Kinds and timestamps of the coded frames being sent, logged once the batch is written.
    let mut batch: Vec<(FrameKind, u32)> = Vec::with_capacity(64);
    loop {
        let Some(&(ts, _)) = schedule.peek() else {
            return Ok(());
        };
        let due = start + Duration::from_millis(u64::from(ts));
        while Instant::now() < due {
            conn.reserve();
            let read = tokio::select! {
                _ = tokio::time::sleep_until(due) => None,
                r = conn.sock.read_buf(&mut conn.rbuf) => Some(r),
            };
            match read {
                Some(r) => {
                    conn.handle_read(r).await?;
                }
                None => break,
            }
        }
        let now = Instant::now();
        let late = now.saturating_duration_since(due).as_micros() as u64;
        stats.max_late_us.fetch_max(late, Relaxed);
        batch.clear();
        // Everything due by now goes out in one write, as an encoder's muxer would do.
        while let Some(&(ts, f)) = schedule.peek() {
            if start + Duration::from_millis(u64::from(ts)) > now {
                break;
            }
            schedule.next();
            send(&mut conn.session, ts, f);
            stats.frames.fetch_add(1, Relaxed);
            if logged(f) {
                batch.push((f.kind, ts));
            }
            if batch.len() >= 64 {
                break;
            }
        }
        let n = conn.flush().await?;
        stats.bytes.fetch_add(n as u64, Relaxed);
        log_sent(log, &batch, now_us());
    }
}

/// Does `f`'s send time go into a log? Coded frames only: configuration is sent once, at the
/// start, and viewers skip it too.
fn logged(f: &Frame) -> bool {
    matches!(f.kind, FrameKind::Video | FrameKind::Audio) && !f.sequence_header
}

/// Logs a written batch, each frame in the log of its own kind.
fn log_sent(log: &SendLogs, batch: &[(FrameKind, u32)], sent_us: u64) {
    for &(kind, ts) in batch {
        match kind {
            FrameKind::Audio => log.audio.push(ts, sent_us),
            FrameKind::Video => log.video.push(ts, sent_us),
            FrameKind::Metadata => {}
        }
    }
}

fn send(session: &mut ClientSession, ts: u32, f: &Frame) {
    match f.kind {
        FrameKind::Audio => session.send_media(MediaKind::Audio, ts, &f.payload),
        FrameKind::Video => session.send_media(MediaKind::Video, ts, &f.payload),
        FrameKind::Metadata => session.send_metadata(&f.payload),
    }
}

/// One FLV tag as an HTTP chunk (`size CRLF tag CRLF`), encoded once and shared by every viewer
/// of the floor server.
pub fn http_chunk(kind: FrameKind, timestamp: u32, payload: &Bytes) -> Bytes {
    let mut tag = BytesMut::with_capacity(payload.len() + 32);
    let head = format!("{:x}\r\n", payload.len() + 15);
    tag.extend_from_slice(head.as_bytes());
    rill_media::flv::write_tag(kind.flv_tag_type(), timestamp, payload, &mut tag);
    tag.extend_from_slice(b"\r\n");
    tag.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_media::flv::{file_header, write_tag};

    fn file() -> Vec<u8> {
        let mut out = BytesMut::new();
        out.extend_from_slice(&file_header(true, true));
        let meta = b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x00\x00\x00\x09";
        write_tag(18, 0, meta, &mut out);
        write_tag(9, 1000, &[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f], &mut out);
        write_tag(8, 1000, &[0xAF, 0, 0x12, 0x10], &mut out);
        for i in 0..4u32 {
            let ft = if i == 0 { 0x17 } else { 0x27 };
            write_tag(9, 1000 + i * 40, &[ft, 1, 0, 0, 0, 0xAA], &mut out);
            write_tag(8, 1000 + i * 40 + 5, &[0xAF, 1, 0x21], &mut out);
        }
        out.to_vec()
    }

    #[test]
    fn loads_and_loops_with_continuing_timestamps() {
        let f = FlvFile::parse(&file()).unwrap();
        assert_eq!(f.once.len(), 3); // metadata + two sequence headers
        assert_eq!(f.frames.len(), 8);
        assert_eq!(f.frames[0].timestamp, 0);
        // Span 125 ms + one 40 ms video interval.
        assert_eq!(f.loop_ms, 165);
        let s: Vec<(u32, FrameKind)> = f
            .schedule()
            .take(3 + 8 + 3)
            .map(|(t, f)| (t, f.kind))
            .collect();
        assert_eq!(s[0], (0, FrameKind::Metadata));
        assert_eq!(s[3], (0, FrameKind::Video));
        assert_eq!(s[10], (125, FrameKind::Audio));
        // Second lap: no sequence headers again, timestamps continue.
        assert_eq!(s[11], (165, FrameKind::Video));
        assert_eq!(s[12], (170, FrameKind::Audio));
        assert_eq!(s[13], (205, FrameKind::Video));
        assert!(f.kbps() > 0.0);
    }

    #[test]
    fn logs_coded_audio_and_video_apart() {
        let f = FlvFile::parse(&file()).unwrap();
        let batch: Vec<(FrameKind, u32)> = f
            .schedule()
            .take(3 + 8)
            .filter(|(_, f)| logged(f))
            .map(|(t, f)| (f.kind, t))
            .collect();
        // Metadata and both sequence headers are not logged; 4 pictures and 4 AAC frames are.
        assert_eq!(batch.len(), 8);
        let log = SendLogs::default();
        log_sent(&log, &batch, 500);
        log_sent(&log, &[(FrameKind::Metadata, 200)], 600);
        assert_eq!(log.video.lookup(40), Some(500));
        assert_eq!(log.audio.lookup(45), Some(500));
        // Each timestamp only in the log of its own kind.
        assert_eq!(log.video.lookup(45), None);
        assert_eq!(log.audio.lookup(40), None);
        assert_eq!(log.audio.lookup(200), None);
    }

    #[test]
    fn rejects_empty_and_garbage() {
        assert!(FlvFile::parse(&file_header(true, true)).is_err());
        assert!(FlvFile::parse(b"not an flv").is_err());
    }

    #[test]
    fn http_chunks_frame_a_tag() {
        let payload = Bytes::from_static(&[0x27, 1, 0, 0, 0, 9]);
        let c = http_chunk(FrameKind::Video, 0x0102_0304, &payload);
        let size = 11 + 6 + 4;
        assert!(c.starts_with(format!("{size:x}\r\n").as_bytes()));
        assert!(c.ends_with(b"\r\n"));
        let tag = &c[4..c.len() - 2];
        assert_eq!(tag.len(), size);
        assert_eq!(tag[0], 9);
        assert_eq!(&tag[4..8], &[0x02, 0x03, 0x04, 0x01]);
    }
}
