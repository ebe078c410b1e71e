//! One live stream: its publisher slot, metadata, sequence headers, GOP cache, and the bounded
//! broadcast ring its viewers read from.
//!
//! The publisher pushes under the stream's lock and never waits for a viewer: `broadcast` overwrites
//! the oldest entry when a viewer is behind, and that viewer notices (`Lagged`) and skips to the next
//! keyframe. Joining snapshots the cached state and subscribes under the same lock, so a viewer gets
//! every frame exactly once.
//!
//! The stream, not each viewer, decides when viewers wake ([`Batching`]): frames wait in `pending`
//! and leave as one ring entry, so a thousand viewers wake once per batch instead of once per frame
//! and need no timer of their own. Caches (GOP, sequence headers) take frames when they leave, so a
//! joiner's snapshot and the ring never overlap.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rill_media::params::{audio_params, video_params};
use rill_media::{AudioParams, Frame, FrameKind, VideoParams};
use rill_rtmp::amf0;
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

use super::batch::Batching;
use super::fanout::{DirectViewer, Fanout};
use super::frame::HubFrame;
use super::gop::GopCache;

/// Most frames held back for one batch, whatever the policy says: bounds the stream's memory and
/// a batch's size.
const MAX_PENDING: usize = 256;

/// What a viewer receives.
#[derive(Debug, Clone)]
pub enum Packet {
    Frame(Arc<HubFrame>),
    /// A publisher started (sent to viewers already waiting).
    Publish,
    /// The publisher left; viewers stay and wait for the next one.
    Unpublish,
}

/// An entry of the ring, numbered so that delivery can move between a viewer's own task and the
/// stream's fan-out without losing or repeating anything.
#[derive(Debug, Clone)]
pub(super) struct Item {
    pub seq: u64,
    pub body: Body,
}

/// A packet, or frames that leave together (one wake-up for every viewer).
#[derive(Debug, Clone)]
pub(super) enum Body {
    One(Packet),
    Batch(Arc<[Arc<HubFrame>]>),
}

/// Which tracks the stream carries, from metadata and sequence headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tracks {
    pub audio: bool,
    pub video: bool,
}

#[derive(Debug)]
pub(super) struct PublisherSlot {
    pub session_id: u64,
    pub kick: CancellationToken,
    pub last_media: Instant,
}

#[derive(Debug)]
pub(super) struct StreamInner {
    pub publisher: Option<PublisherSlot>,
    pub viewers: usize,
    /// Of the viewers, the server's own outputs (segmenters, recorders).
    pub internal: usize,
    metadata: Option<Arc<HubFrame>>,
    video_seq: Option<Arc<HubFrame>>,
    audio_seq: Option<Arc<HubFrame>>,
    /// The last video metadata (colorInfo) and audio multichannel layout: sent once by encoders.
    video_setting: Option<Arc<HubFrame>>,
    audio_setting: Option<Arc<HubFrame>>,
    gop: GopCache,
    tracks: Tracks,
    /// Added to incoming timestamps so that a republish continues where the last one ended.
    ts_offset: u32,
    /// Set at republish: the next frame fixes `ts_offset`.
    rebase_from: Option<u32>,
    last_ts: Option<u32>,
    facts: StreamFacts,
    /// Width/height from onMetaData.
    meta_size: Option<(u32, u32)>,
    /// Frames held back for the next batch, and when that batch is due.
    pending: Vec<Arc<HubFrame>>,
    pending_due: Option<tokio::time::Instant>,
    /// Number of the last ring entry sent.
    pub seq: u64,
    /// The current publish has sent something a viewer can start on (a video keyframe, or audio
    /// of a stream without video).
    startable: bool,
}

impl StreamInner {
    /// Sends `body` as the next ring entry (under the stream's lock, so numbers follow the ring).
    pub(super) fn send(&mut self, tx: &broadcast::Sender<Item>, body: Body) {
        self.seq += 1;
        let _ = tx.send(Item {
            seq: self.seq,
            body,
        });
    }
}

impl StreamInner {
    /// What a viewer needs before any picture: metadata, sequence headers and stream settings.
    fn config_frames(&self) -> impl Iterator<Item = Packet> + '_ {
        [
            &self.metadata,
            &self.video_seq,
            &self.audio_seq,
            &self.video_setting,
            &self.audio_setting,
        ]
        .into_iter()
        .flatten()
        .map(|f| Packet::Frame(f.clone()))
    }

    /// Codecs whose configuration carries no picture size (VP9, some AV1) take it from metadata.
    fn fill_video_size(&mut self) {
        if let (Some(v), Some((w, h))) = (self.facts.video.as_mut(), self.meta_size) {
            if v.width == 0 || v.height == 0 {
                (v.width, v.height) = (w, h);
            }
        }
    }
}

/// What is known about the published media, for the API and metrics.
#[derive(Debug, Clone, Default)]
pub struct StreamFacts {
    /// Session id of the publisher.
    pub publisher: Option<u64>,
    /// Unix time in milliseconds when the current publish started.
    pub publish_started_ms: u64,
    pub video: Option<VideoParams>,
    pub audio: Option<AudioParams>,
    /// Payload bytes and frames received from publishers of this stream.
    pub bytes_in: u64,
    pub frames_in: u64,
}

/// Settings every stream shares.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    pub gop_cache: bool,
    pub gop_max_bytes: usize,
    pub gop_max_frames: usize,
    pub queue: usize,
    pub chunk_size: u32,
    /// When frames leave for the viewers.
    pub batching: Batching,
}

/// A live stream (`app/name`).
#[derive(Debug)]
pub struct Stream {
    pub app: String,
    pub name: String,
    limits: StreamLimits,
    inner: Mutex<StreamInner>,
    tx: broadcast::Sender<Item>,
    /// Wakes the stream's flusher when a batch becomes due later (see [`Stream::run_flusher`]).
    flush_wake: Notify,
    fanout: Fanout,
}

impl Stream {
    pub(super) fn new(app: &str, name: &str, limits: StreamLimits) -> Self {
        let (tx, _) = broadcast::channel(limits.queue);
        Stream {
            app: app.to_owned(),
            name: name.to_owned(),
            limits,
            inner: Mutex::new(StreamInner {
                publisher: None,
                viewers: 0,
                internal: 0,
                metadata: None,
                video_seq: None,
                audio_seq: None,
                video_setting: None,
                audio_setting: None,
                gop: GopCache::new(limits.gop_max_bytes, limits.gop_max_frames),
                tracks: Tracks::default(),
                ts_offset: 0,
                rebase_from: None,
                last_ts: None,
                facts: StreamFacts::default(),
                meta_size: None,
                pending: Vec::new(),
                pending_due: None,
                seq: 0,
                startable: false,
            }),
            tx,
            flush_wake: Notify::new(),
            fanout: Fanout::new(std::thread::available_parallelism().map_or(1, |n| n.get())),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, StreamInner> {
        // A panic while holding the lock cannot leave the stream half-updated in a way that matters
        // more than losing the stream, so a poisoned lock is used as is.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `/app/name`.
    pub fn path(&self) -> String {
        format!("/{}/{}", self.app, self.name)
    }

    pub fn is_live(&self) -> bool {
        self.lock().publisher.is_some()
    }

    pub fn tracks(&self) -> Tracks {
        self.lock().tracks
    }

    /// Viewers, not counting the server's own outputs.
    pub fn viewer_count(&self) -> usize {
        let g = self.lock();
        g.viewers - g.internal
    }

    /// Live, and a viewer joining now starts on a picture (or on audio, for audio-only streams).
    pub fn has_start(&self) -> bool {
        let g = self.lock();
        g.publisher.is_some() && g.startable
    }

    /// No publisher and nobody subscribed (outputs included): the stream can go.
    pub fn is_idle(&self) -> bool {
        let g = self.lock();
        g.viewers == 0 && g.publisher.is_none()
    }

    /// Bytes and frames in the GOP cache.
    pub fn gop_size(&self) -> (usize, usize) {
        let g = self.lock();
        (g.gop.bytes(), g.gop.len())
    }

    /// Takes the publisher slot (the caller checked it is free or stale).
    pub(super) fn start_publish(
        inner: &mut StreamInner,
        slot: PublisherSlot,
        tx: &broadcast::Sender<Item>,
    ) {
        inner.facts = StreamFacts {
            publisher: Some(slot.session_id),
            publish_started_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            ..StreamFacts::default()
        };
        inner.publisher = Some(slot);
        inner.metadata = None;
        inner.video_seq = None;
        inner.audio_seq = None;
        inner.video_setting = None;
        inner.audio_setting = None;
        inner.gop.clear();
        inner.tracks = Tracks::default();
        inner.meta_size = None;
        inner.rebase_from = inner.last_ts.map(|t| t.wrapping_add(1));
        inner.pending.clear();
        inner.pending_due = None;
        inner.startable = false;
        inner.send(tx, Body::One(Packet::Publish));
    }

    pub(super) fn sender(&self) -> &broadcast::Sender<Item> {
        &self.tx
    }

    /// Ends the publish of `session_id` (no-op if another publisher took over).
    pub(super) fn end_publish(&self, session_id: u64) -> bool {
        let mut inner = self.lock();
        if inner.publisher.as_ref().map(|p| p.session_id) != Some(session_id) {
            return false;
        }
        self.flush(&mut inner);
        inner.publisher = None;
        inner.gop.clear();
        inner.send(&self.tx, Body::One(Packet::Unpublish));
        drop(inner);
        // The flusher sees the publish is over and ends.
        self.flush_wake.notify_one();
        true
    }

    /// Adds a frame from the publisher `session_id`: updates what is known of the stream and sends
    /// the frame to every viewer, now or with the next batch. Returns false if that session no
    /// longer owns the stream.
    pub fn push(&self, session_id: u64, mut frame: Frame) -> bool {
        let mut inner = self.lock();
        let Some(slot) = inner.publisher.as_mut() else {
            return false;
        };
        if slot.session_id != session_id {
            return false;
        }
        if frame.kind != FrameKind::Metadata {
            slot.last_media = Instant::now();
        }
        if let Some(from) = inner.rebase_from.take() {
            inner.ts_offset = from.wrapping_sub(frame.timestamp);
        }
        frame.timestamp = frame.timestamp.wrapping_add(inner.ts_offset);
        inner.last_ts = Some(frame.timestamp);
        let hf = Arc::new(HubFrame::new(frame, self.limits.chunk_size));
        Self::describe(&mut inner, &hf);
        let kind = hf.frame.kind;
        match self.limits.batching {
            Batching::Frame => {
                self.cache(&mut inner, &hf);
                inner.send(&self.tx, Body::One(Packet::Frame(hf)));
            }
            policy => {
                inner.pending.push(hf);
                let now = tokio::time::Instant::now();
                let due = match (inner.pending_due, policy) {
                    (Some(due), _) => due,
                    (None, Batching::Coalesced { wait }) => now + wait,
                    (None, Batching::Merged { window }) => now + window,
                    (None, Batching::Frame) => now,
                };
                // Coalesced: a picture takes the audio gathered since the last one along.
                let flush_now = (matches!(policy, Batching::Coalesced { .. })
                    && kind != FrameKind::Audio)
                    || now >= due
                    || inner.pending.len() >= MAX_PENDING;
                if flush_now {
                    self.flush(&mut inner);
                } else if inner.pending_due.is_none() {
                    inner.pending_due = Some(due);
                    drop(inner);
                    self.flush_wake.notify_one();
                }
            }
        }
        true
    }

    /// Updates the facts the API reports and the track flags from a frame as it arrives.
    fn describe(inner: &mut StreamInner, hf: &Arc<HubFrame>) {
        let f = &hf.frame;
        match f.kind {
            FrameKind::Metadata => {
                let (audio, video, size) = metadata_tracks(&f.payload);
                inner.tracks.audio |= audio;
                inner.tracks.video |= video;
                inner.meta_size = size.or(inner.meta_size);
                inner.fill_video_size();
            }
            FrameKind::Video => {
                inner.tracks.video = true;
                if f.sequence_header {
                    inner.facts.video = video_params(&f.payload).ok();
                    inner.fill_video_size();
                }
            }
            FrameKind::Audio => {
                inner.tracks.audio = true;
                // Codecs without a sequence header (MP3, Speex, ...) describe themselves in every
                // tag's flags.
                if f.sequence_header || inner.facts.audio.is_none() {
                    inner.facts.audio = audio_params(&f.payload).ok();
                }
            }
        }
        inner.startable |= f.is_video_keyframe()
            || (f.kind == FrameKind::Audio && !f.sequence_header && !inner.tracks.video);
        inner.facts.bytes_in += hf.size() as u64;
        inner.facts.frames_in += 1;
    }

    /// Keeps what a joining viewer needs first from a frame that is leaving for the viewers.
    fn cache(&self, inner: &mut StreamInner, hf: &Arc<HubFrame>) {
        let f = &hf.frame;
        match f.kind {
            FrameKind::Metadata => inner.metadata = Some(hf.clone()),
            FrameKind::Video if f.sequence_header => {
                if inner.video_seq.as_ref().map(|s| &s.frame.payload) != Some(&f.payload) {
                    // A new codec configuration invalidates the cached pictures.
                    inner.gop.clear();
                }
                inner.video_seq = Some(hf.clone());
            }
            FrameKind::Audio if f.sequence_header => inner.audio_seq = Some(hf.clone()),
            FrameKind::Video if f.is_stream_setting() => inner.video_setting = Some(hf.clone()),
            FrameKind::Audio if f.is_stream_setting() => inner.audio_setting = Some(hf.clone()),
            _ => {
                if self.limits.gop_cache {
                    let has_video = inner.tracks.video;
                    inner.gop.push(hf, has_video);
                }
            }
        }
    }

    /// Sends the held-back frames as one ring entry.
    fn flush(&self, inner: &mut StreamInner) {
        inner.pending_due = None;
        if inner.pending.is_empty() {
            return;
        }
        let frames = std::mem::take(&mut inner.pending);
        for hf in &frames {
            self.cache(inner, hf);
        }
        let body = if frames.len() == 1 {
            Body::One(Packet::Frame(frames[0].clone()))
        } else {
            Body::Batch(frames.into())
        };
        inner.send(&self.tx, body);
    }

    /// Whether frames are ever held back, so that a flusher must release them on time.
    pub(super) fn needs_flusher(&self) -> bool {
        self.limits.batching != Batching::Frame
    }

    /// Sends batches whose time has come while no new frame arrived to carry them: one task per
    /// publish (not per viewer), ending with the publish of `session_id`.
    pub(super) async fn run_flusher(self: Arc<Self>, session_id: u64) {
        loop {
            let due = {
                let mut inner = self.lock();
                if inner.publisher.as_ref().map(|p| p.session_id) != Some(session_id) {
                    return;
                }
                match inner.pending_due {
                    Some(due) if due <= tokio::time::Instant::now() => {
                        self.flush(&mut inner);
                        None
                    }
                    due => due,
                }
            };
            match due {
                Some(due) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(due) => {}
                        _ = self.flush_wake.notified() => {}
                    }
                }
                None => self.flush_wake.notified().await,
            }
        }
    }

    /// What is known about the published media.
    pub fn facts(&self) -> StreamFacts {
        self.lock().facts.clone()
    }

    /// Whether the publisher `session_id` has been silent for `idle` (a dead session lingering).
    pub(super) fn publisher_idle(inner: &StreamInner, idle: Duration) -> bool {
        inner
            .publisher
            .as_ref()
            .is_some_and(|p| p.last_media.elapsed() >= idle)
    }

    /// Joins as a viewer: the snapshot of what a new viewer needs first, and the live ring.
    pub(super) fn join(
        self: &Arc<Self>,
        internal: bool,
    ) -> (VecDeque<Packet>, broadcast::Receiver<Item>) {
        let mut inner = self.lock();
        inner.viewers += 1;
        inner.internal += usize::from(internal);
        let rx = self.tx.subscribe();
        let mut backlog = VecDeque::new();
        if inner.publisher.is_some() {
            backlog.extend(inner.config_frames());
            backlog.extend(inner.gop.frames().map(|f| Packet::Frame(f.clone())));
        }
        (backlog, rx)
    }

    pub(super) fn leave(&self, internal: bool) -> bool {
        let mut inner = self.lock();
        inner.viewers = inner.viewers.saturating_sub(1);
        inner.internal = inner.internal.saturating_sub(usize::from(internal));
        inner.viewers == 0 && inner.publisher.is_none()
    }

    /// Hands `viewer`'s media to the fan-out if `rx` has nothing waiting (the viewer has had every
    /// entry so far); false otherwise.
    pub(super) fn go_direct(
        &self,
        rx: &broadcast::Receiver<Item>,
        viewer: &Arc<DirectViewer>,
    ) -> bool {
        let inner = self.lock();
        if !rx.is_empty()
            || inner.publisher.is_none()
            || tokio::runtime::Handle::try_current().is_err()
        {
            return false;
        }
        viewer.enter(inner.seq);
        self.fanout
            .add(viewer, self.limits.chunk_size, || self.tx.subscribe());
        true
    }

    /// A viewer's own place in the ring again, from now on; with `config`, the codec
    /// configuration to start with (the publish changed while the fan-out had the viewer).
    pub(super) fn rejoin(&self, config: bool) -> (VecDeque<Packet>, broadcast::Receiver<Item>) {
        let inner = self.lock();
        let mut backlog = VecDeque::new();
        if config && inner.publisher.is_some() {
            backlog.extend(inner.config_frames());
        }
        (backlog, self.tx.subscribe())
    }

    /// The current video sequence header, to resend after a viewer skipped frames.
    pub(super) fn video_sequence_header(&self) -> Option<Arc<HubFrame>> {
        self.lock().video_seq.clone()
    }
}

/// Reads `hasAudio`/`hasVideo`/`audiocodecid`/`videocodecid` and `width`/`height` from an
/// `onMetaData` payload.
fn metadata_tracks(payload: &[u8]) -> (bool, bool, Option<(u32, u32)>) {
    use amf0::Amf0Value;
    let Ok(values) = amf0::decode_all(payload) else {
        return (false, false, None);
    };
    let props = values.iter().find(|v| {
        let v = match v {
            Amf0Value::Amf3(inner) => inner.as_ref(),
            v => v,
        };
        matches!(v, Amf0Value::Object(_) | Amf0Value::EcmaArray(_))
    });
    let Some(props) = props else {
        return (false, false, None);
    };
    let has = |flag: &str, id: &str| {
        let flagged = props.get(flag).and_then(|v| v.as_bool()).unwrap_or(false);
        let codec = props
            .get(id)
            .is_some_and(|v| !matches!(v, Amf0Value::Null | Amf0Value::Undefined));
        flagged || codec
    };
    let dim = |k: &str| {
        props
            .get(k)
            .and_then(|v| v.as_f64())
            .filter(|v| *v >= 1.0 && *v < 65536.0)
    };
    let size = dim("width")
        .zip(dim("height"))
        .map(|(w, h)| (w as u32, h as u32));
    (
        has("hasAudio", "audiocodecid"),
        has("hasVideo", "videocodecid"),
        size,
    )
}
