//! Direct fan-out. Once a viewer on plain TCP has caught up with its stream, its media is written
//! by one of a few group tasks of the stream (one per runtime worker) straight to its socket,
//! instead of by its own task: a batch then costs one wake-up per group, not per viewer, and one
//! `writev` per viewer, with each kind of framing (RTMP chunks, HTTP chunk, WebSocket frame) made
//! once per batch.
//!
//! A group never waits for a socket: what a viewer's socket does not take is queued (shared bytes,
//! no copy) and tried again with the next batch; a viewer that stays behind is handed back to its
//! own task, which waits for it and goes on by itself, so a slow viewer never holds up a group. So
//! is every viewer when the publish changes, and a viewer its task takes back for a command.

use std::io::IoSlice;
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Buf, Bytes};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::Notify;

use super::frame::{HubFrame, COMMON_STREAM_ID};
use super::stream::{Body, Item, Packet};
use crate::control::sessions::SessionInfo;
use crate::http::ws_frame::{self, Opcode};

/// Most buffers handed to one `writev`.
const MAX_IOVECS: usize = 96;
/// Bytes a viewer's session counter lags behind at most (about a second of a 2.5 Mbit/s stream).
const REPORT_STEP: usize = 256 * 1024;
/// Bytes a group keeps for a viewer whose socket is full before giving it back to its task.
const MAX_QUEUED: usize = 1 << 20;

/// How a viewer's batches are framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// RTMP chunks on message stream [`COMMON_STREAM_ID`] at the server's chunk size.
    Rtmp,
    /// FLV tags in one HTTP/1.1 chunk.
    HttpChunked,
    /// FLV tags as they are (HTTP/1.0, the body ends with the connection).
    HttpRaw,
    /// FLV tags in one binary WebSocket frame.
    WebSocket,
}

/// Why a group gave a viewer back to its own task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandBack {
    /// The socket stopped taking batches; what it did not take is the task's to write.
    Stalled,
    /// A publisher started.
    Publish,
    /// The publisher left (or the stream went away).
    Unpublish,
    /// The group fell behind the stream's ring.
    Lagged,
    /// Writing failed.
    Failed(String),
}

impl HandBack {
    /// Whether the viewer's own subscription must start again from the stream's codec
    /// configuration (the publish changed, or entries were lost while the group was behind).
    pub fn resends_config(reason: Option<&HandBack>) -> bool {
        matches!(
            reason,
            Some(HandBack::Publish | HandBack::Unpublish | HandBack::Lagged)
        )
    }
}

/// A viewer whose media a group may write.
#[derive(Debug)]
pub struct DirectViewer {
    /// The viewer's socket (a duplicate descriptor: the task keeps its own for reading).
    fd: TcpStream,
    framing: Framing,
    info: Arc<SessionInfo>,
    state: Mutex<DirectState>,
    handed_back: Notify,
}

#[derive(Debug, Default)]
struct DirectState {
    in_group: bool,
    /// Ring entries up to this number were delivered by the viewer's own task.
    resume_after: u64,
    /// Bytes of the task's own (an RTMP ping), written before the next batch.
    control: Vec<Bytes>,
    /// What the group could not write, and why it gave the viewer back.
    rest: Vec<Bytes>,
    reason: Option<HandBack>,
    /// Bytes written but not yet added to the session's counter.
    unreported: usize,
}

impl DirectState {
    /// Counts `n` bytes out. The session's counter is shared with the API's readers, and
    /// touching it on every write was most of a write's own cost (a cache miss per viewer), so it
    /// is updated in steps.
    fn count_out(&mut self, info: &SessionInfo, n: usize) {
        self.unreported += n;
        if self.unreported >= REPORT_STEP {
            info.add_out(self.unreported);
            self.unreported = 0;
        }
    }

    fn report(&mut self, info: &SessionInfo) {
        info.add_out(std::mem::take(&mut self.unreported));
    }
}

impl DirectViewer {
    pub fn new(fd: TcpStream, framing: Framing, info: Arc<SessionInfo>) -> Arc<Self> {
        Arc::new(DirectViewer {
            fd,
            framing,
            info,
            state: Mutex::new(DirectState::default()),
            handed_back: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, DirectState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a group writes this viewer's media now.
    pub fn in_group(&self) -> bool {
        self.state().in_group
    }

    /// Queues bytes of the task's own to go out before the next batch; false (and nothing
    /// queued) once the viewer is no longer in a group, when the task writes them itself.
    pub fn queue_control(&self, b: Bytes) -> bool {
        let mut st = self.state();
        if st.in_group {
            st.control.push(b);
        }
        st.in_group
    }

    /// Takes the viewer back from its group: what is left to write first (queued control bytes or
    /// the rest of a stalled batch) and why the group gave it back, if it did.
    pub fn reclaim(&self) -> (Vec<Bytes>, Option<HandBack>) {
        let mut st = self.state();
        st.in_group = false;
        st.report(&self.info);
        let mut out = std::mem::take(&mut st.rest);
        out.append(&mut st.control);
        (out, st.reason.take())
    }

    /// The viewer's connection is ending: no group writes to it any more, and the socket is shut
    /// down now rather than when the group next looks at it.
    pub fn close(&self) {
        let mut st = self.state();
        st.in_group = false;
        st.report(&self.info);
        drop(st);
        let _ = self.fd.shutdown(std::net::Shutdown::Both);
    }

    /// Resolves when a group has given `viewer` back; never without a viewer (for `select!`).
    pub async fn handed_back(viewer: Option<&Arc<DirectViewer>>) {
        match viewer {
            Some(v) => v.handed_back.notified().await,
            None => std::future::pending().await,
        }
    }

    /// Called under the stream's lock: from entry `seq` on, the group writes.
    pub(super) fn enter(&self, seq: u64) {
        let mut st = self.state();
        st.in_group = true;
        st.resume_after = seq;
        st.reason = None;
    }

    fn hand_back(&self, st: &mut DirectState, reason: HandBack) {
        st.in_group = false;
        st.reason = Some(reason);
        self.handed_back.notify_one();
    }

    /// Writes entry `seq`; false once the viewer has left the group.
    ///
    /// What the socket does not take waits in the viewer's queue for the next entry (a viewer a
    /// little behind catches up); past [`MAX_QUEUED`] bytes the viewer goes back to its task.
    fn deliver(&self, seq: u64, parts: &mut Parts<'_>) -> bool {
        let mut st = self.state();
        if !st.in_group {
            return false;
        }
        if seq <= st.resume_after {
            return true;
        }
        let body = parts.get(self.framing);
        let written = if st.rest.is_empty() {
            let total = st.control.iter().chain(body).map(Bytes::len).sum::<usize>();
            match write_now(&self.fd, &st.control, body) {
                Ok(n) if n == total => {
                    st.control.clear();
                    st.count_out(&self.info, n);
                    return true;
                }
                Ok(n) => {
                    let mut rest: Vec<Bytes> = st.control.drain(..).collect();
                    rest.extend(body.iter().cloned());
                    st.rest = rest;
                    Ok(n)
                }
                Err(e) => Err(e),
            }
        } else {
            let mut control = std::mem::take(&mut st.control);
            st.rest.append(&mut control);
            st.rest.extend(body.iter().cloned());
            write_now(&self.fd, &st.rest, &[])
        };
        match written {
            Ok(n) => {
                st.count_out(&self.info, n);
                skip(&mut st.rest, n);
                if st.rest.iter().map(Bytes::len).sum::<usize>() > MAX_QUEUED {
                    self.hand_back(&mut st, HandBack::Stalled);
                    return false;
                }
                true
            }
            Err(e) => {
                self.hand_back(&mut st, HandBack::Failed(format!("write error: {e}")));
                false
            }
        }
    }
}

/// Drops the first `n` bytes of `bufs`.
fn skip(bufs: &mut Vec<Bytes>, mut n: usize) {
    bufs.retain_mut(|b| {
        let k = n.min(b.len());
        b.advance(k);
        n -= k;
        !b.is_empty()
    });
}

/// Writes `a` then `b` as far as the socket takes them without waiting; returns how much it took.
fn write_now(fd: &TcpStream, a: &[Bytes], b: &[Bytes]) -> std::io::Result<usize> {
    let mut written = 0;
    loop {
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let mut count = 0;
        let mut to_skip = written;
        for buf in a.iter().chain(b) {
            if to_skip >= buf.len() {
                to_skip -= buf.len();
                continue;
            }
            if count == MAX_IOVECS {
                break;
            }
            slices[count] = IoSlice::new(&buf[to_skip..]);
            to_skip = 0;
            count += 1;
        }
        if count == 0 {
            return Ok(written);
        }
        // sendmsg, not writev: the socket call skips the file layer's checks, a fifth of the
        // kernel's cost per write here.
        match socket2::SockRef::from(fd).send_vectored(&slices[..count]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(written),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// A batch's bytes in each framing, made when the first viewer of that framing needs them.
struct Parts<'a> {
    frames: &'a [Arc<HubFrame>],
    chunk_size: u32,
    rtmp: Option<Vec<Bytes>>,
    flv: [Option<Vec<Bytes>>; 3],
}

impl<'a> Parts<'a> {
    fn new(frames: &'a [Arc<HubFrame>], chunk_size: u32) -> Self {
        Parts {
            frames,
            chunk_size,
            rtmp: None,
            flv: [None, None, None],
        }
    }

    fn get(&mut self, framing: Framing) -> &[Bytes] {
        let (frames, chunk_size) = (self.frames, self.chunk_size);
        if framing == Framing::Rtmp {
            return self.rtmp.get_or_insert_with(|| {
                frames
                    .iter()
                    .map(|f| f.rtmp_chunks(chunk_size, COMMON_STREAM_ID))
                    .collect()
            });
        }
        let slot = match framing {
            Framing::HttpRaw => 0,
            Framing::HttpChunked => 1,
            _ => 2,
        };
        self.flv[slot].get_or_insert_with(|| {
            let tags: Vec<Bytes> = frames.iter().map(|f| f.flv_tag()).collect();
            let len: usize = tags.iter().map(Bytes::len).sum();
            let mut out = Vec::with_capacity(tags.len() + 2);
            match framing {
                Framing::HttpChunked => out.push(Bytes::from(format!("{len:x}\r\n"))),
                Framing::WebSocket => out.push(ws_frame::frame_header(Opcode::Binary, len)),
                _ => {}
            }
            out.extend(tags);
            if framing == Framing::HttpChunked {
                out.push(Bytes::from_static(b"\r\n"));
            }
            out
        })
    }
}

/// The groups of one stream.
#[derive(Debug)]
pub(super) struct Fanout {
    groups: Vec<Arc<Group>>,
}

#[derive(Debug, Default)]
struct Group {
    queue: Mutex<GroupQueue>,
}

#[derive(Debug, Default)]
struct GroupQueue {
    /// Viewers that joined since the group task last looked.
    joined: Vec<Arc<DirectViewer>>,
    running: bool,
}

impl Group {
    fn queue(&self) -> MutexGuard<'_, GroupQueue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Fanout {
    pub fn new(groups: usize) -> Self {
        Fanout {
            groups: (0..groups.max(1)).map(|_| Arc::default()).collect(),
        }
    }

    /// Adds `viewer` (which [`DirectViewer::enter`]ed) to a group, under the stream's lock;
    /// starts that group's task with `subscribe` if it is not running.
    pub fn add(
        &self,
        viewer: &Arc<DirectViewer>,
        chunk_size: u32,
        subscribe: impl FnOnce() -> broadcast::Receiver<Item>,
    ) {
        let i = (viewer.info.id as usize) % self.groups.len();
        let group = &self.groups[i];
        let mut q = group.queue();
        q.joined.push(viewer.clone());
        if !q.running {
            q.running = true;
            tokio::spawn(run_group(group.clone(), subscribe(), chunk_size));
        }
    }
}

/// One group's task: every ring entry goes to each of its viewers, until it has none.
async fn run_group(group: Arc<Group>, mut rx: broadcast::Receiver<Item>, chunk_size: u32) {
    let mut viewers: Vec<Arc<DirectViewer>> = Vec::new();
    loop {
        {
            let mut q = group.queue();
            viewers.append(&mut q.joined);
            if viewers.is_empty() {
                q.running = false;
                return;
            }
        }
        let item = rx.recv().await;
        viewers.append(&mut group.queue().joined);
        let (seq, frames): (u64, Arc<[Arc<HubFrame>]>) = match item {
            Ok(Item {
                seq,
                body: Body::One(Packet::Frame(f)),
            }) => (seq, Arc::from([f])),
            Ok(Item {
                seq,
                body: Body::Batch(frames),
            }) => (seq, frames),
            Ok(Item {
                body: Body::One(Packet::Publish),
                ..
            }) => {
                hand_back_all(&mut viewers, HandBack::Publish);
                continue;
            }
            Ok(Item {
                body: Body::One(Packet::Unpublish),
                ..
            })
            | Err(RecvError::Closed) => {
                hand_back_all(&mut viewers, HandBack::Unpublish);
                continue;
            }
            Err(RecvError::Lagged(_)) => {
                hand_back_all(&mut viewers, HandBack::Lagged);
                continue;
            }
        };
        let mut parts = Parts::new(&frames, chunk_size);
        viewers.retain(|v| v.deliver(seq, &mut parts));
    }
}

fn hand_back_all(viewers: &mut Vec<Arc<DirectViewer>>, reason: HandBack) {
    for v in viewers.drain(..) {
        let mut st = v.state();
        if st.in_group {
            v.hand_back(&mut st, reason.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rill_media::{Frame, FrameKind};
    use tokio::io::AsyncReadExt;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::control::sessions::{Protocol, Sessions};
    use crate::hub::{Batching, Hub, HubConfig, StreamLimits};

    fn hub() -> Arc<Hub> {
        Hub::new(HubConfig {
            limits: StreamLimits {
                gop_cache: true,
                gop_max_bytes: 1 << 20,
                gop_max_frames: 1000,
                queue: 64,
                chunk_size: 4096,
                batching: Batching::Frame,
            },
            publisher_idle_timeout: Duration::from_secs(5),
        })
    }

    fn video(ts: u32, key: bool, size: usize) -> Frame {
        let mut body = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        body.resize(size, ts as u8);
        Frame::from_flv_body(FrameKind::Video, ts, Bytes::from(body)).unwrap()
    }

    /// A connected pair: the server's side as a duplicate descriptor for a group, the viewer's
    /// side to read from.
    async fn pair() -> (
        std::net::TcpStream,
        tokio::net::TcpStream,
        tokio::net::TcpStream,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let fd = {
            use std::os::fd::AsFd;
            std::net::TcpStream::from(server.as_fd().try_clone_to_owned().unwrap())
        };
        (fd, server, client)
    }

    fn viewer(fd: std::net::TcpStream) -> Arc<DirectViewer> {
        let sessions = Arc::new(Sessions::new(CancellationToken::new()));
        let guard = sessions.register(Protocol::HttpFlv, "127.0.0.1:1".parse().unwrap());
        DirectViewer::new(fd, Framing::HttpRaw, (*guard).clone())
    }

    /// Reads FLV tags from `r` until `n` have arrived; their timestamps.
    async fn tags(r: &mut tokio::net::TcpStream, n: usize) -> Vec<u32> {
        let mut got = Vec::new();
        let mut buf = BytesMut::new();
        while got.len() < n {
            let k = tokio::time::timeout(Duration::from_secs(5), r.read_buf(&mut buf))
                .await
                .expect("tags in time")
                .unwrap();
            assert!(k > 0, "closed after {got:?}");
            while buf.len() >= 11 {
                let size = u32::from_be_bytes([0, buf[1], buf[2], buf[3]]) as usize;
                if buf.len() < 11 + size + 4 {
                    break;
                }
                let ts = u32::from_be_bytes([buf[7], buf[4], buf[5], buf[6]]);
                got.push(ts);
                buf.advance(11 + size + 4);
            }
        }
        got
    }

    use bytes::BytesMut;

    #[tokio::test]
    async fn a_caught_up_viewer_moves_to_the_group_without_a_gap_or_a_repeat() {
        let hub = hub();
        let p = hub
            .publish("live", "s", 1, CancellationToken::new())
            .unwrap();
        let mut sub = hub.subscribe("live", "s");
        p.push(video(0, true, 100));
        p.push(video(33, false, 100));
        let (fd, _server, mut client) = pair().await;
        let dv = viewer(fd);
        // Not caught up: two frames wait for the viewer's own task.
        assert!(!sub.go_direct(&dv));
        assert_eq!(std::iter::from_fn(|| sub.try_recv().unwrap()).count(), 2);
        assert!(sub.go_direct(&dv));
        assert!(dv.in_group());
        for i in 2..40 {
            p.push(video(i * 33, i % 10 == 0, 100));
        }
        let got = tags(&mut client, 38).await;
        assert_eq!(got, (2..40).map(|i| i * 33).collect::<Vec<_>>());
        // The task takes the viewer back: its subscription continues from the next keyframe.
        let (rest, reason) = dv.reclaim();
        assert!(rest.is_empty() && reason.is_none());
        sub.resume(false);
        for i in 40..52 {
            p.push(video(i * 33, i == 50, 100));
        }
        let resumed: Vec<u32> = std::iter::from_fn(|| sub.try_recv().unwrap())
            .filter_map(|pk| match pk {
                Packet::Frame(f) => Some(f.frame.timestamp),
                _ => None,
            })
            .collect();
        assert_eq!(resumed, [50 * 33, 51 * 33]);
    }

    #[tokio::test]
    async fn a_viewer_that_stops_reading_is_handed_back_with_what_it_did_not_take() {
        let hub = hub();
        let p = hub
            .publish("live", "slow", 1, CancellationToken::new())
            .unwrap();
        let mut sub = hub.subscribe("live", "slow");
        let (fd, _server, client) = pair().await;
        let dv = viewer(fd);
        assert!(sub.go_direct(&dv));
        // 64 KiB frames until the kernel's buffers and then the group's queue are full.
        let mut handed = false;
        for i in 0..400 {
            p.push(video(i * 33, i % 30 == 0, 64 * 1024));
            tokio::task::yield_now().await;
            if !dv.in_group() {
                handed = true;
                break;
            }
        }
        assert!(handed, "a viewer that does not read stays in the group");
        tokio::time::timeout(Duration::from_secs(1), DirectViewer::handed_back(Some(&dv)))
            .await
            .expect("the task is told");
        let (rest, reason) = dv.reclaim();
        assert_eq!(reason, Some(HandBack::Stalled));
        let queued: usize = rest.iter().map(Bytes::len).sum();
        assert!(
            queued > MAX_QUEUED && queued < MAX_QUEUED + 2 * 64 * 1024,
            "{queued} bytes queued"
        );
        drop(client);
    }

    #[tokio::test]
    async fn a_publish_change_hands_every_viewer_back() {
        let hub = hub();
        let p = hub
            .publish("live", "r", 1, CancellationToken::new())
            .unwrap();
        let mut subs = Vec::new();
        let mut dvs = Vec::new();
        let mut keep = Vec::new();
        for _ in 0..3 {
            let mut sub = hub.subscribe("live", "r");
            let (fd, server, client) = pair().await;
            let dv = viewer(fd);
            assert!(sub.go_direct(&dv));
            subs.push(sub);
            dvs.push(dv);
            keep.push((server, client));
        }
        p.push(video(0, true, 100));
        drop(p);
        for dv in &dvs {
            tokio::time::timeout(Duration::from_secs(1), DirectViewer::handed_back(Some(dv)))
                .await
                .expect("handed back");
            assert_eq!(dv.reclaim().1, Some(HandBack::Unpublish));
        }
        // Back on their own subscriptions, they see the next publisher.
        for sub in &mut subs {
            sub.resume(true);
        }
        let p = hub
            .publish("live", "r", 2, CancellationToken::new())
            .unwrap();
        p.push(video(0, true, 100));
        for sub in &mut subs {
            let got: Vec<Packet> = std::iter::from_fn(|| sub.try_recv().unwrap()).collect();
            assert!(matches!(got[0], Packet::Publish), "{got:?}");
            assert!(matches!(&got[1], Packet::Frame(f) if f.frame.is_video_keyframe()));
        }
    }
}
