//! Direct fan-out. Once a viewer on plain TCP has caught up with its stream, its media is written
//! by one of a few group tasks of the stream (one per runtime worker) straight to its socket,
//! instead of by its own task: a batch then costs one wake-up per group, not per viewer, and one
//! `sendmsg` per viewer, with each kind of framing (RTMP chunks, HTTP chunk, WebSocket frame) made
//! once per entry. A round over a thousand sockets takes milliseconds, so a group looks for new
//! entries as it goes (and lets the publisher's task run): a viewer gets everything that arrived
//! by the time its turn comes, in one write, and the viewers already done get it next round.
//!
//! A group never waits for a socket: what a viewer's socket does not take is queued (shared bytes,
//! no copy) and tried again with the next batch; a viewer that stays behind is handed back to its
//! own task, which waits for it and goes on by itself, so a slow viewer never holds up a group. So
//! is every viewer when the publish changes, and a viewer its task takes back for a command.

use std::io::IoSlice;
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Buf, Bytes};
use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};
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

    /// Writes what of `window` this viewer has not had yet; returns the last entry it now has
    /// (written or queued), or `None` once it has left the group.
    ///
    /// What the socket does not take waits in the viewer's queue for the next entry (a viewer a
    /// little behind catches up); past [`MAX_QUEUED`] bytes the viewer goes back to its task.
    fn deliver(&self, window: &mut Window) -> Option<u64> {
        let mut st = self.state();
        if !st.in_group {
            return None;
        }
        let Some(last) = window.last_seq() else {
            return Some(st.resume_after);
        };
        let Some(from) = window.after(st.resume_after) else {
            // Entries it needs are gone: its task resumes it at the next keyframe.
            self.hand_back(&mut st, HandBack::Lagged);
            return None;
        };
        if from == window.entries.len() {
            return Some(st.resume_after);
        }
        st.resume_after = last;
        let body = window.framed(from, self.framing);
        // Bytes of the task's own (rare: an RTMP ping) go first, through the queue.
        if !st.control.is_empty() {
            let mut control = std::mem::take(&mut st.control);
            st.rest.append(&mut control);
        }
        let written = if st.rest.is_empty() {
            let total = body.clone().map(Bytes::len).sum::<usize>();
            match write_now(&self.fd, body.clone()) {
                Ok(n) if n == total => {
                    st.count_out(&self.info, n);
                    return Some(last);
                }
                Ok(n) => {
                    st.rest.extend(body.cloned());
                    Ok(n)
                }
                Err(e) => Err(e),
            }
        } else {
            st.rest.extend(body.cloned());
            write_now(&self.fd, st.rest.iter())
        };
        match written {
            Ok(n) => {
                st.count_out(&self.info, n);
                skip(&mut st.rest, n);
                if st.rest.iter().map(Bytes::len).sum::<usize>() > MAX_QUEUED {
                    self.hand_back(&mut st, HandBack::Stalled);
                    return None;
                }
                Some(last)
            }
            Err(e) => {
                self.hand_back(&mut st, HandBack::Failed(format!("write error: {e}")));
                None
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

/// Writes `bufs` as far as the socket takes them without waiting; returns how much it took.
fn write_now<'a>(
    fd: &TcpStream,
    bufs: impl Iterator<Item = &'a Bytes> + Clone,
) -> std::io::Result<usize> {
    let mut written = 0;
    loop {
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let mut count = 0;
        let mut to_skip = written;
        for buf in bufs.clone() {
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

/// A ring entry held by a group until each of its viewers has it, with its bytes in each
/// framing, made when the first viewer of that framing needs them. Each entry is framed on its
/// own (its own HTTP chunk, its own WebSocket message), so that any run of entries is a viewer's
/// next write as it is.
struct Entry {
    seq: u64,
    frames: Arc<[Arc<HubFrame>]>,
    rtmp: Option<Vec<Bytes>>,
    flv: [Option<Vec<Bytes>>; 3],
}

impl Entry {
    fn slot(framing: Framing) -> usize {
        match framing {
            Framing::HttpRaw => 0,
            Framing::HttpChunked => 1,
            _ => 2,
        }
    }

    fn frame(&mut self, framing: Framing, chunk_size: u32) {
        let frames = &self.frames;
        if framing == Framing::Rtmp {
            self.rtmp.get_or_insert_with(|| {
                frames
                    .iter()
                    .map(|f| f.rtmp_chunks(chunk_size, COMMON_STREAM_ID))
                    .collect()
            });
            return;
        }
        self.flv[Self::slot(framing)].get_or_insert_with(|| {
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
        });
    }

    fn framed(&self, framing: Framing) -> &[Bytes] {
        let cached = if framing == Framing::Rtmp {
            &self.rtmp
        } else {
            &self.flv[Self::slot(framing)]
        };
        cached.as_deref().unwrap_or_default()
    }
}

/// The entries a group has taken from the ring that not all of its viewers have yet, oldest
/// first. Entries that arrive while a group goes through its viewers join the window at once, so
/// the viewers still to come get them in the same write; the viewers already done get them on
/// the next round.
struct Window {
    entries: std::collections::VecDeque<Entry>,
    chunk_size: u32,
}

impl Window {
    fn push(&mut self, seq: u64, frames: Arc<[Arc<HubFrame>]>) {
        self.entries.push_back(Entry {
            seq,
            frames,
            rtmp: None,
            flv: [None, None, None],
        });
    }

    fn last_seq(&self) -> Option<u64> {
        self.entries.back().map(|e| e.seq)
    }

    /// Index of the first entry after `pos`, or `None` if entries right after it are no longer
    /// held. Numbers skipped by publish changes never reach a window: a group hands every viewer
    /// back at those.
    fn after(&self, pos: u64) -> Option<usize> {
        match self.entries.front() {
            Some(first) if first.seq > pos.saturating_add(1) => None,
            _ => Some(self.entries.partition_point(|e| e.seq <= pos)),
        }
    }

    /// The bytes of the entries from index `from` on, in `framing`.
    fn framed(
        &mut self,
        from: usize,
        framing: Framing,
    ) -> impl Iterator<Item = &Bytes> + Clone + '_ {
        let chunk_size = self.chunk_size;
        for e in self.entries.range_mut(from..) {
            e.frame(framing, chunk_size);
        }
        self.entries
            .range(from..)
            .flat_map(move |e| e.framed(framing).iter())
    }

    /// Forgets the entries every viewer has had (up to `pos`).
    fn trim(&mut self, pos: u64) {
        while self.entries.front().is_some_and(|e| e.seq <= pos) {
            self.entries.pop_front();
        }
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

/// Viewers a group writes between two looks for new ring entries.
const PULL_EVERY: usize = 16;
/// Viewers a group writes before it lets other tasks of its worker run.
const YIELD_EVERY: usize = 128;

/// What a ring entry asks of a group.
enum Taken {
    Media(u64, Arc<[Arc<HubFrame>]>),
    /// Every viewer goes back to its task (a publish change, or the group fell behind the ring).
    HandBack(HandBack),
}

fn take(item: Result<Item, RecvError>) -> Taken {
    match item {
        Ok(Item {
            seq,
            body: Body::One(Packet::Frame(f)),
        }) => Taken::Media(seq, Arc::from([f])),
        Ok(Item {
            seq,
            body: Body::Batch(frames),
        }) => Taken::Media(seq, frames),
        Ok(Item {
            body: Body::One(Packet::Publish),
            ..
        }) => Taken::HandBack(HandBack::Publish),
        Ok(Item {
            body: Body::One(Packet::Unpublish),
            ..
        })
        | Err(RecvError::Closed) => Taken::HandBack(HandBack::Unpublish),
        Err(RecvError::Lagged(_)) => Taken::HandBack(HandBack::Lagged),
    }
}

/// Moves what has arrived in the ring into `window`, up to the next publish change (kept in
/// `held` until every viewer has had what came before it).
fn pull(rx: &mut broadcast::Receiver<Item>, window: &mut Window, held: &mut Option<HandBack>) {
    while held.is_none() {
        let item = match rx.try_recv() {
            Ok(item) => Ok(item),
            Err(TryRecvError::Empty) => return,
            Err(TryRecvError::Closed) => Err(RecvError::Closed),
            Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
        };
        match take(item) {
            Taken::Media(seq, frames) => window.push(seq, frames),
            Taken::HandBack(reason) => *held = Some(reason),
        }
    }
}

/// One group's task: every ring entry goes to each of its viewers, until it has none. A viewer
/// gets everything that has arrived by the time its turn comes, in one write.
async fn run_group(group: Arc<Group>, mut rx: broadcast::Receiver<Item>, chunk_size: u32) {
    let mut viewers: Vec<Arc<DirectViewer>> = Vec::new();
    let mut window = Window {
        entries: Default::default(),
        chunk_size,
    };
    let mut held: Option<HandBack> = None;
    loop {
        {
            let mut q = group.queue();
            viewers.append(&mut q.joined);
            if viewers.is_empty() {
                q.running = false;
                return;
            }
        }
        if window.entries.is_empty() {
            if let Some(reason) = held.take() {
                hand_back_all(&mut viewers, reason);
                continue;
            }
            let item = rx.recv().await;
            viewers.append(&mut group.queue().joined);
            match take(item) {
                Taken::Media(seq, frames) => window.push(seq, frames),
                Taken::HandBack(reason) => {
                    hand_back_all(&mut viewers, reason);
                    continue;
                }
            }
        } else {
            // Another round for the viewers an entry arrived after: let other tasks run first.
            tokio::task::yield_now().await;
            viewers.append(&mut group.queue().joined);
        }
        let mut oldest = u64::MAX;
        let mut i = 0;
        while i < viewers.len() {
            if i % PULL_EVERY == 0 {
                if i > 0 && i % YIELD_EVERY == 0 {
                    // A round over thousands of sockets takes milliseconds: let the publisher's
                    // task (on this worker's queue) bring in the next frame meanwhile, for the
                    // viewers still to come.
                    tokio::task::yield_now().await;
                }
                pull(&mut rx, &mut window, &mut held);
            }
            match viewers[i].deliver(&mut window) {
                Some(pos) => {
                    oldest = oldest.min(pos);
                    i += 1;
                }
                None => {
                    viewers.swap_remove(i);
                }
            }
        }
        window.trim(oldest);
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

    fn window_of(seqs: &[u64]) -> Window {
        let mut w = Window {
            entries: Default::default(),
            chunk_size: 4096,
        };
        for &seq in seqs {
            let f = Arc::new(HubFrame::new(video(seq as u32, false, 20), 4096));
            w.push(seq, Arc::from([f]));
        }
        w
    }

    #[test]
    fn a_window_gives_each_viewer_what_it_has_not_had_and_spots_a_gap() {
        let mut w = window_of(&[5, 6, 7]);
        assert_eq!(w.after(4), Some(0));
        assert_eq!(w.after(5), Some(1));
        assert_eq!(w.after(7), Some(3), "caught up: nothing to write");
        assert_eq!(w.after(9), Some(3));
        assert_eq!(w.after(3), None, "entry 4 is not held any more");
        // Each entry is its own HTTP chunk, so a viewer's run of entries is one valid body part.
        let bytes: Vec<u8> = w
            .framed(1, Framing::HttpChunked)
            .flat_map(|b| b.iter().copied())
            .collect();
        let tag = 11 + 20 + 4;
        let one = format!("{tag:x}\r\n");
        assert!(bytes.starts_with(one.as_bytes()));
        assert_eq!(bytes.len(), 2 * (one.len() + tag + 2));
        assert_eq!(&bytes[one.len() + tag..one.len() + tag + 2], b"\r\n");
        assert_eq!(w.framed(2, Framing::Rtmp).count(), 1);
        w.trim(6);
        assert_eq!(w.entries.front().map(|e| e.seq), Some(7));
        assert_eq!(w.after(5), None);
        w.trim(7);
        assert!(w.entries.is_empty());
        assert_eq!(w.after(1), Some(0));
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
