//! The stream hub: the registry of live streams keyed by `app/name`, publishing, and viewing.
//!
//! Data flows one way: a [`Publisher`] pushes frames into its [`Stream`]; every [`Subscription`]
//! reads them from a bounded ring. Dropping a `Publisher` ends the publish and dropping the last
//! `Subscription` of an unpublished stream removes it, so no path can leak a stream.

mod batch;
mod fanout;
mod frame;
mod gop;
mod stream;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rill_media::{Frame, FrameKind};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

pub use batch::Batching;
pub use fanout::{DirectViewer, Framing, HandBack};
pub use frame::{HubFrame, COMMON_STREAM_ID};
pub use stream::{Packet, Stream, StreamFacts, StreamLimits, Tracks};

use stream::{Body, Item, PublisherSlot};

/// Entries a subscription's queues keep allocated once drained.
const KEEP_QUEUED: usize = 16;

/// Lags within [`LAG_WINDOW`] after which a viewer is dropped instead of skipping again.
const MAX_LAGS: usize = 4;
const LAG_WINDOW: Duration = Duration::from_secs(30);

/// Hub-wide settings.
#[derive(Debug, Clone, Copy)]
pub struct HubConfig {
    pub limits: StreamLimits,
    /// A publisher silent this long may be replaced by a newcomer.
    pub publisher_idle_timeout: Duration,
}

/// Why a publish was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PublishError {
    #[error("stream {0} is already being published")]
    AlreadyPublishing(String),
}

/// Counters the control plane reads.
#[derive(Debug, Default)]
pub struct HubCounters {
    /// Frames a slow viewer skipped.
    pub frames_dropped: AtomicU64,
    /// Viewers dropped for staying behind.
    pub viewers_dropped: AtomicU64,
}

/// The registry of streams.
#[derive(Debug)]
pub struct Hub {
    config: HubConfig,
    streams: Mutex<HashMap<String, Arc<Stream>>>,
    pub counters: HubCounters,
}

fn key(app: &str, name: &str) -> String {
    format!("{app}/{name}")
}

impl Hub {
    pub fn new(config: HubConfig) -> Arc<Hub> {
        Arc::new(Hub {
            config,
            streams: Mutex::new(HashMap::new()),
            counters: HubCounters::default(),
        })
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Stream>>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stream `app/name`, if anyone publishes or waits for it.
    pub fn stream(&self, app: &str, name: &str) -> Option<Arc<Stream>> {
        self.registry().get(&key(app, name)).cloned()
    }

    /// Every stream in the registry.
    pub fn streams(&self) -> Vec<Arc<Stream>> {
        self.registry().values().cloned().collect()
    }

    fn get_or_create(&self, app: &str, name: &str) -> Arc<Stream> {
        self.registry()
            .entry(key(app, name))
            .or_insert_with(|| Arc::new(Stream::new(app, name, self.config.limits)))
            .clone()
    }

    /// Publishes `app/name` for `session_id`. A live name is refused unless its publisher has been
    /// silent for the idle timeout, in which case that publisher is kicked and replaced.
    pub fn publish(
        self: &Arc<Self>,
        app: &str,
        name: &str,
        session_id: u64,
        kick: CancellationToken,
    ) -> Result<Publisher, PublishError> {
        let stream = self.get_or_create(app, name);
        {
            let mut inner = stream.lock();
            if let Some(old) = &inner.publisher {
                if !Stream::publisher_idle(&inner, self.config.publisher_idle_timeout) {
                    return Err(PublishError::AlreadyPublishing(stream.path()));
                }
                tracing::info!(stream = %stream.path(), old = old.session_id, new = session_id, "replacing an idle publisher");
                old.kick.cancel();
            }
            let slot = PublisherSlot {
                session_id,
                kick,
                last_media: Instant::now(),
            };
            Stream::start_publish(&mut inner, slot, stream.sender());
        }
        if stream.needs_flusher() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(stream.clone().run_flusher(session_id));
            }
        }
        Ok(Publisher {
            hub: self.clone(),
            stream,
            session_id,
        })
    }

    /// Subscribes to `app/name`, creating a waiting stream if nobody publishes it yet.
    pub fn subscribe(self: &Arc<Self>, app: &str, name: &str) -> Subscription {
        self.join(app, name, false)
    }

    /// Subscribes one of the server's own outputs (segmenter, recorder): it keeps the stream
    /// registered like a viewer but is not counted as one.
    pub fn subscribe_internal(self: &Arc<Self>, app: &str, name: &str) -> Subscription {
        self.join(app, name, true)
    }

    fn join(self: &Arc<Self>, app: &str, name: &str, internal: bool) -> Subscription {
        let stream = self.get_or_create(app, name);
        let (backlog, rx) = stream.join(internal);
        Subscription {
            hub: self.clone(),
            stream,
            backlog,
            arrived: VecDeque::new(),
            rx: Some(rx),
            skipping: false,
            lags: VecDeque::new(),
            sent_video_seq: None,
            internal,
        }
    }

    fn remove_if_idle(&self, stream: &Arc<Stream>) {
        let mut reg = self.registry();
        let k = key(&stream.app, &stream.name);
        if let Some(s) = reg.get(&k) {
            if Arc::ptr_eq(s, stream) && s.is_idle() {
                reg.remove(&k);
            }
        }
    }
}

/// The right to push frames into a stream. Dropping it unpublishes.
#[derive(Debug)]
pub struct Publisher {
    hub: Arc<Hub>,
    stream: Arc<Stream>,
    session_id: u64,
}

impl Publisher {
    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }

    /// Pushes a frame; false once another publisher has taken the stream over.
    pub fn push(&self, frame: Frame) -> bool {
        self.stream.push(self.session_id, frame)
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if self.stream.end_publish(self.session_id) {
            self.hub.remove_if_idle(&self.stream);
        }
    }
}

/// A viewer's place in a stream. Dropping it leaves.
#[derive(Debug)]
pub struct Subscription {
    hub: Arc<Hub>,
    stream: Arc<Stream>,
    /// Packets to hand out before anything else (join snapshot, a re-sent sequence header).
    backlog: VecDeque<Packet>,
    /// Frames of a batch taken from the ring, not yet filtered.
    arrived: VecDeque<Arc<HubFrame>>,
    /// None while the stream's fan-out delivers: a receiver nobody reads would keep every entry
    /// of the ring alive.
    rx: Option<broadcast::Receiver<Item>>,
    skipping: bool,
    lags: VecDeque<Instant>,
    sent_video_seq: Option<Arc<HubFrame>>,
    internal: bool,
}

/// Why a subscription ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ViewerEnd {
    /// Fell behind too often: dropped to protect everyone else.
    TooSlow,
    /// The hub went away.
    Closed,
}

impl Subscription {
    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }

    /// The next packet, waiting for it.
    pub async fn recv(&mut self) -> Result<Packet, ViewerEnd> {
        loop {
            if let Some(p) = self.ready()? {
                return Ok(p);
            }
            let Some(rx) = self.rx.as_mut() else {
                return std::future::pending().await;
            };
            let r = rx.recv().await;
            if let Some(p) = self.take(r)? {
                return Ok(self.note(p));
            }
        }
    }

    /// The next packet if one is ready now (to batch writes).
    pub fn try_recv(&mut self) -> Result<Option<Packet>, ViewerEnd> {
        loop {
            if let Some(p) = self.ready()? {
                return Ok(Some(p));
            }
            let Some(rx) = self.rx.as_mut() else {
                return Ok(None);
            };
            let r = match rx.try_recv() {
                Ok(p) => Ok(p),
                Err(broadcast::error::TryRecvError::Empty) => return Ok(None),
                Err(broadcast::error::TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                Err(broadcast::error::TryRecvError::Closed) => Err(RecvError::Closed),
            };
            if let Some(p) = self.take(r)? {
                return Ok(Some(self.note(p)));
            }
        }
    }

    /// Hands this viewer's media to the stream's fan-out (see `fanout.rs`) if it has caught up;
    /// false if something is still waiting for it (try again after delivering it).
    pub fn go_direct(&mut self, viewer: &Arc<DirectViewer>) -> bool {
        if !self.backlog.is_empty() || !self.arrived.is_empty() || self.skipping {
            return false;
        }
        let Some(rx) = &self.rx else { return false };
        if !self.stream.go_direct(rx, viewer) {
            return false;
        }
        self.rx = None;
        true
    }

    /// Back from the fan-out: this subscription delivers again, from the next keyframe (a stalled
    /// viewer skips what it could not take); after a publish change, from the codec configuration.
    pub fn resume(&mut self, config: bool) {
        let (backlog, rx) = self.stream.rejoin(config);
        self.backlog = backlog;
        self.rx = Some(rx);
        self.arrived.clear();
        self.skipping = true;
    }

    /// A packet already taken from the ring: the backlog first, then the rest of a batch.
    fn ready(&mut self) -> Result<Option<Packet>, ViewerEnd> {
        loop {
            if let Some(p) = self.backlog.pop_front() {
                if self.backlog.is_empty() && self.backlog.capacity() > KEEP_QUEUED {
                    // The join snapshot (a whole GOP) is out: a viewer keeps no room for it.
                    self.backlog = VecDeque::new();
                }
                return Ok(Some(self.note(p)));
            }
            let Some(f) = self.arrived.pop_front() else {
                return Ok(None);
            };
            if let Some(p) = self.filter(Ok(Packet::Frame(f)))? {
                return Ok(Some(self.note(p)));
            }
        }
    }

    /// Unpacks a ring entry: a packet is filtered, a batch's frames are queued for [`Self::ready`].
    fn take(&mut self, r: Result<Item, RecvError>) -> Result<Option<Packet>, ViewerEnd> {
        match r {
            Ok(Item {
                body: Body::One(p), ..
            }) => self.filter(Ok(p)),
            Ok(Item {
                body: Body::Batch(frames),
                ..
            }) => {
                self.arrived.extend(frames.iter().cloned());
                Ok(None)
            }
            Err(e) => self.filter(Err(e)),
        }
    }

    fn note(&mut self, p: Packet) -> Packet {
        if let Packet::Frame(f) = &p {
            if f.frame.kind == FrameKind::Video && f.frame.sequence_header {
                self.sent_video_seq = Some(f.clone());
            }
        }
        p
    }

    /// Applies lag handling: after a lag, frames are skipped up to the next keyframe.
    fn filter(&mut self, r: Result<Packet, RecvError>) -> Result<Option<Packet>, ViewerEnd> {
        match r {
            Ok(Packet::Frame(f)) => {
                if !self.skipping {
                    return Ok(Some(Packet::Frame(f)));
                }
                let fr = &f.frame;
                let resume = fr.is_video_keyframe()
                    || (fr.kind == FrameKind::Audio
                        && !fr.sequence_header
                        && !self.stream.tracks().video);
                if fr.sequence_header || fr.kind == FrameKind::Metadata {
                    return Ok(Some(Packet::Frame(f)));
                }
                if !resume {
                    self.hub
                        .counters
                        .frames_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok(None);
                }
                self.skipping = false;
                // If the codec configuration changed while this viewer was behind, resend it first.
                if fr.kind == FrameKind::Video {
                    if let Some(seq) = self.stream.video_sequence_header() {
                        if !self
                            .sent_video_seq
                            .as_ref()
                            .is_some_and(|s| Arc::ptr_eq(s, &seq))
                        {
                            self.backlog.push_back(Packet::Frame(f));
                            return Ok(Some(Packet::Frame(seq)));
                        }
                    }
                }
                Ok(Some(Packet::Frame(f)))
            }
            Ok(p) => {
                if matches!(p, Packet::Publish) {
                    // A new publisher's first frames include a keyframe; no skipping across it.
                    self.skipping = false;
                }
                Ok(Some(p))
            }
            Err(RecvError::Lagged(n)) => {
                self.hub
                    .counters
                    .frames_dropped
                    .fetch_add(n, Ordering::Relaxed);
                let now = Instant::now();
                self.lags.push_back(now);
                while self
                    .lags
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > LAG_WINDOW)
                {
                    self.lags.pop_front();
                }
                if self.lags.len() > MAX_LAGS {
                    self.hub
                        .counters
                        .viewers_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(ViewerEnd::TooSlow);
                }
                self.skipping = true;
                Ok(None)
            }
            Err(RecvError::Closed) => Err(ViewerEnd::Closed),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if self.stream.leave(self.internal) {
            self.hub.remove_if_idle(&self.stream);
        }
    }
}

#[cfg(test)]
mod tests;
