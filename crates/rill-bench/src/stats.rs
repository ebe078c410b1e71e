//! Measurement primitives: a shared monotonic clock, a lock-free log-linear histogram, exact
//! percentiles for small sample sets, the publisher's send logs (video and audio), the latency
//! accounts fed from them, and per-viewer counters.
//!
//! Everything a viewer touches per frame is an atomic add or a read-locked binary search, so
//! thousands of viewers on one runtime thread do not turn the tool into the bottleneck.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{OnceLock, RwLock};
use std::time::Instant;

/// Microseconds since the first call in this process. One clock for every task, so publisher send
/// times and viewer arrival times compare directly.
pub fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// Values below this get one bucket each.
const LINEAR: u64 = 64;
/// Sub-buckets per power of two above the linear range: relative error at most 1/64.
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Octaves 6..=63 above the linear range.
const BUCKETS: usize = LINEAR as usize + (64 - 6) * SUB as usize;

fn bucket_index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let k = 63 - v.leading_zeros(); // >= 6
    let shift = k - SUB_BITS;
    LINEAR as usize + (k as usize - 6) * SUB as usize + ((v >> shift) - SUB) as usize
}

fn bucket_lower(i: usize) -> u64 {
    if i < LINEAR as usize {
        return i as u64;
    }
    let j = i - LINEAR as usize;
    let k = (j / SUB as usize) as u32 + 6;
    let m = (j % SUB as usize) as u64 + SUB;
    m << (k - SUB_BITS)
}

fn bucket_upper(i: usize) -> u64 {
    if i + 1 >= BUCKETS {
        u64::MAX
    } else {
        bucket_lower(i + 1) - 1
    }
}

/// A concurrent histogram of `u64` values (microseconds here), HDR-style: exact below 64, then 32
/// sub-buckets per power of two. Recording is one relaxed atomic add.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    max: AtomicU64,
    min: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            max: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
        }
    }

    pub fn record(&self, v: u64) {
        self.buckets[bucket_index(v)].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.max.fetch_max(v, Relaxed);
        self.min.fetch_min(v, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    pub fn max(&self) -> Option<u64> {
        (self.count() > 0).then(|| self.max.load(Relaxed))
    }

    /// The value at percentile `p` (0..=100) by nearest rank, as the midpoint of its bucket
    /// clamped to the observed min/max; `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = ((p.clamp(0.0, 100.0) / 100.0) * count as f64)
            .ceil()
            .max(1.0) as u64;
        let (lo, hi) = (self.min.load(Relaxed), self.max.load(Relaxed));
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Relaxed);
            if seen >= rank {
                let (l, u) = (bucket_lower(i), bucket_upper(i));
                return Some((l + (u - l) / 2).clamp(lo, hi));
            }
        }
        Some(hi)
    }

    /// A histogram holding every value recorded in `parts`: how audio and video latencies become
    /// one "all frames" distribution without recording each sample twice.
    pub fn merged(parts: &[&Histogram]) -> Histogram {
        let h = Histogram::new();
        for p in parts {
            for (dst, src) in h.buckets.iter().zip(p.buckets.iter()) {
                dst.fetch_add(src.load(Relaxed), Relaxed);
            }
            let n = p.count();
            h.count.fetch_add(n, Relaxed);
            if n > 0 {
                // An empty part's min (u64::MAX) and max (0) must not clamp the merged range.
                h.max.fetch_max(p.max.load(Relaxed), Relaxed);
                h.min.fetch_min(p.min.load(Relaxed), Relaxed);
            }
        }
        h
    }
}

/// Exact nearest-rank percentile of an ascending slice; `None` when empty.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p.clamp(0.0, 100.0) / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.max(1) - 1).copied()
}

/// Most send records kept: at 60 video frames a second, over an hour, far beyond any run.
const SEND_LOG_CAP: usize = 1 << 18;

/// When each timestamp of one media kind was handed to the kernel by the publisher. Timestamps
/// increase monotonically (looping continues them), so lookups are a binary search.
#[derive(Default)]
pub struct SendLog {
    entries: RwLock<VecDeque<(u32, u64)>>,
}

impl SendLog {
    pub fn push(&self, timestamp: u32, sent_us: u64) {
        let Ok(mut e) = self.entries.write() else {
            return;
        };
        if e.back().is_some_and(|&(t, _)| t >= timestamp) {
            // Not monotonic (a repeated timestamp): the first send is the one that counts.
            return;
        }
        if e.len() >= SEND_LOG_CAP {
            e.pop_front();
        }
        e.push_back((timestamp, sent_us));
    }

    /// When `timestamp` was sent, if it was.
    pub fn lookup(&self, timestamp: u32) -> Option<u64> {
        let e = self.entries.read().ok()?;
        e.binary_search_by_key(&timestamp, |&(t, _)| t)
            .ok()
            .and_then(|i| e.get(i))
            .map(|&(_, s)| s)
    }
}

/// One publisher's send logs. Audio and video are kept apart because their timestamps can
/// coincide (an AAC frame and a picture both at 1000 ms) yet leave in different writes.
#[derive(Default)]
pub struct SendLogs {
    pub video: SendLog,
    pub audio: SendLog,
}

/// Latency figures of one media kind, shared by every viewer of a run.
#[derive(Default)]
pub struct Latency {
    pub hist: Histogram,
    /// Frames whose timestamp was sent before that viewer connected (GOP cache backlog).
    pub backlog: AtomicU64,
    /// Frames whose timestamp the publisher never logged (rewritten timestamps, or not ours).
    pub unmatched: AtomicU64,
    /// Start of the measurement window (`u64::MAX` until it opens): earlier arrivals don't count.
    pub window_start_us: AtomicU64,
}

impl Latency {
    pub fn new() -> Self {
        let l = Latency::default();
        l.window_start_us.store(u64::MAX, Relaxed);
        l
    }

    /// Accounts one frame that arrived at `arrival_us` for a viewer that started at
    /// `viewer_start_us`, looked up in the send log of its own media kind.
    pub fn frame(&self, log: &SendLog, timestamp: u32, arrival_us: u64, viewer_start_us: u64) {
        match log.lookup(timestamp) {
            None => {
                self.unmatched.fetch_add(1, Relaxed);
            }
            Some(sent) if sent < viewer_start_us => {
                self.backlog.fetch_add(1, Relaxed);
            }
            Some(sent) => {
                if arrival_us >= self.window_start_us.load(Relaxed) {
                    self.hist.record(arrival_us.saturating_sub(sent));
                }
            }
        }
    }
}

/// The video and audio latency accounts of a run. Audio has its own because a server may hold
/// audio back (to ride along with the next picture), which per-picture figures cannot show.
pub struct Latencies {
    pub video: Latency,
    pub audio: Latency,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    pub fn new() -> Self {
        Latencies {
            video: Latency::new(),
            audio: Latency::new(),
        }
    }

    /// Starts counting arrivals from `at_us` on, for both media kinds at once.
    pub fn open_window(&self, at_us: u64) {
        self.video.window_start_us.store(at_us, Relaxed);
        self.audio.window_start_us.store(at_us, Relaxed);
    }

    /// Audio and video samples together.
    pub fn combined(&self) -> Histogram {
        Histogram::merged(&[&self.video.hist, &self.audio.hist])
    }
}

/// Life cycle of one viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ViewerState {
    Connecting = 0,
    Connected = 1,
    Failed = 2,
    Dropped = 3,
}

/// One viewer's counters, written by its task and read by the reporter.
pub struct ViewerStats {
    state: AtomicU8,
    pub start_us: AtomicU64,
    pub bytes: AtomicU64,
    pub video_frames: AtomicU64,
    /// First coded video frame, in microseconds after `start_us` (`u64::MAX` until then).
    pub ttff_us: AtomicU64,
}

impl Default for ViewerStats {
    fn default() -> Self {
        ViewerStats {
            state: AtomicU8::new(ViewerState::Connecting as u8),
            start_us: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            video_frames: AtomicU64::new(0),
            ttff_us: AtomicU64::new(u64::MAX),
        }
    }
}

impl ViewerStats {
    pub fn state(&self) -> ViewerState {
        match self.state.load(Relaxed) {
            1 => ViewerState::Connected,
            2 => ViewerState::Failed,
            3 => ViewerState::Dropped,
            _ => ViewerState::Connecting,
        }
    }

    pub fn set_state(&self, s: ViewerState) {
        self.state.store(s as u8, Relaxed);
    }

    pub fn add_bytes(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Relaxed);
    }

    /// A coded video frame arrived at `now`.
    pub fn video_frame(&self, now: u64) {
        if self.video_frames.fetch_add(1, Relaxed) == 0 {
            let start = self.start_us.load(Relaxed);
            self.ttff_us.store(now.saturating_sub(start), Relaxed);
        }
    }

    pub fn ttff(&self) -> Option<u64> {
        let t = self.ttff_us.load(Relaxed);
        (t != u64::MAX).then_some(t)
    }
}

/// Distinct error messages and how often each happened; bounded so a storm of failures cannot
/// grow it.
#[derive(Default)]
pub struct Errors {
    inner: std::sync::Mutex<Vec<(String, u64)>>,
}

const MAX_DISTINCT_ERRORS: usize = 16;

impl Errors {
    pub fn add(&self, msg: String) {
        let Ok(mut v) = self.inner.lock() else {
            return;
        };
        if let Some(e) = v.iter_mut().find(|(m, _)| *m == msg) {
            e.1 += 1;
        } else if v.len() < MAX_DISTINCT_ERRORS {
            v.push((msg, 1));
        } else if let Some(last) = v.last_mut() {
            last.0 = "(other errors)".into();
            last.1 += 1;
        }
    }

    pub fn snapshot(&self) -> Vec<(String, u64)> {
        self.inner.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// Is this FLV video tag body (its first two bytes) a codec configuration record rather than a
/// coded picture? Legacy: AVCPacketType 0 of AVC/HEVC; Enhanced RTMP: PacketType SequenceStart.
pub fn is_video_config(first: [u8; 2]) -> bool {
    if first[0] & 0x80 != 0 {
        // Enhanced RTMP: IsExHeader, low nibble is the PacketType (0 = SequenceStart,
        // 5 = MPEG2TSSequenceStart); 2 (SequenceEnd) and 4 (Metadata) are no pictures either.
        return matches!(first[0] & 0x0F, 0 | 2 | 4 | 5);
    }
    let codec = first[0] & 0x0F;
    // AVC (7), legacy HEVC (12): AVCPacketType 0 = sequence header, 2 = end of sequence.
    matches!(codec, 7 | 12) && matches!(first[1], 0 | 2)
        // Frame type 5 is a video info/command frame, not a picture.
        || first[0] >> 4 == 5
}

/// Is this FLV audio tag body (its first two bytes) a codec configuration record (or another
/// non-sample packet) rather than coded audio? Legacy: AAC (SoundFormat 10) with AACPacketType 0;
/// Enhanced RTMP (SoundFormat 9): AudioPacketType SequenceStart, SequenceEnd or
/// MultichannelConfig, also inside a multitrack packet.
pub fn is_audio_config(first: [u8; 2]) -> bool {
    let not_samples = |packet_type: u8| matches!(packet_type, 0 | 2 | 4);
    match first[0] >> 4 {
        10 => first[1] == 0,
        // Multitrack (5): the packet type of the tracks is the low nibble of the next byte.
        9 if first[0] & 0x0F == 5 => not_samples(first[1] & 0x0F),
        9 => not_samples(first[0] & 0x0F),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_bounds_contain_their_values() {
        let mut v = 0u64;
        while v < (1 << 40) {
            let i = bucket_index(v);
            assert!(i < BUCKETS);
            assert!(bucket_lower(i) <= v && v <= bucket_upper(i), "{v} in {i}");
            if v >= LINEAR {
                // Relative width at most 1/32 of the lower bound.
                assert!(bucket_upper(i) - bucket_lower(i) < bucket_lower(i) / 31);
            }
            v = v * 9 / 8 + 1;
        }
        assert_eq!(bucket_index(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_upper(BUCKETS - 1), u64::MAX);
        for i in 0..BUCKETS - 1 {
            assert_eq!(bucket_upper(i) + 1, bucket_lower(i + 1));
        }
    }

    #[test]
    fn histogram_percentiles_within_two_percent() {
        let h = Histogram::new();
        assert_eq!(h.percentile(50.0), None);
        assert_eq!(h.max(), None);
        for v in 1..=10_000u64 {
            h.record(v);
        }
        assert_eq!(h.count(), 10_000);
        assert_eq!(h.max(), Some(10_000));
        for (p, want) in [(50.0, 5_000.0), (95.0, 9_500.0), (99.0, 9_900.0)] {
            let got = h.percentile(p).unwrap() as f64;
            assert!((got - want).abs() / want < 0.02, "p{p}: {got} vs {want}");
        }
        assert_eq!(h.percentile(100.0), Some(10_000));
        assert_eq!(h.percentile(0.0), Some(1));
    }

    #[test]
    fn histogram_small_values_exact_and_skewed_tail() {
        let h = Histogram::new();
        for _ in 0..99 {
            h.record(7);
        }
        h.record(1_000_000);
        assert_eq!(h.percentile(50.0), Some(7));
        assert_eq!(h.percentile(99.0), Some(7));
        let p100 = h.percentile(100.0).unwrap();
        assert_eq!(p100, 1_000_000);
        let single = Histogram::new();
        single.record(123_456);
        assert_eq!(single.percentile(50.0), Some(123_456));
    }

    #[test]
    fn exact_percentiles() {
        assert_eq!(percentile_sorted(&[], 50.0), None);
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile_sorted(&v, 50.0), Some(50.0));
        assert_eq!(percentile_sorted(&v, 95.0), Some(95.0));
        assert_eq!(percentile_sorted(&v, 100.0), Some(100.0));
        assert_eq!(percentile_sorted(&v, 0.0), Some(1.0));
        assert_eq!(percentile_sorted(&[3.0], 99.0), Some(3.0));
        assert_eq!(percentile_sorted(&[1.0, 2.0], 50.0), Some(1.0));
        assert_eq!(percentile_sorted(&[1.0, 2.0], 51.0), Some(2.0));
    }

    #[test]
    fn send_log_lookup_and_backlog_rule() {
        let log = SendLog::default();
        log.push(0, 1_000);
        log.push(33, 34_000);
        log.push(33, 99_000); // repeated timestamp: ignored
        log.push(66, 67_000);
        assert_eq!(log.lookup(33), Some(34_000));
        assert_eq!(log.lookup(34), None);

        let lat = Latency::new();
        // Window not open yet: nothing recorded, but classification still happens.
        lat.frame(&log, 66, 70_000, 0);
        assert_eq!(lat.hist.count(), 0);
        lat.window_start_us.store(0, Relaxed);
        lat.frame(&log, 0, 50_000, 20_000); // sent before the viewer started: backlog
        lat.frame(&log, 66, 70_000, 20_000); // 3 ms
        lat.frame(&log, 99, 80_000, 20_000); // unknown
        assert_eq!(lat.backlog.load(Relaxed), 1);
        assert_eq!(lat.unmatched.load(Relaxed), 1);
        assert_eq!(lat.hist.count(), 1);
        assert_eq!(lat.hist.max(), Some(3_000));
    }

    #[test]
    fn merged_histogram_spans_both_parts() {
        let video = Histogram::new();
        let audio = Histogram::new();
        let empty = Histogram::new();
        for _ in 0..90 {
            video.record(2_000);
        }
        for _ in 0..10 {
            audio.record(40_000); // audio held back: only the merged tail shows it
        }
        assert_eq!(video.percentile(99.0), Some(2_000));
        let all = Histogram::merged(&[&video, &audio, &empty]);
        assert_eq!(all.count(), 100);
        assert_eq!(all.max(), Some(40_000));
        assert_eq!(all.percentile(50.0), Some(2_000));
        assert_eq!(all.percentile(89.0), Some(2_000));
        assert_eq!(all.percentile(92.0), Some(40_000));
        assert_eq!(all.percentile(99.0), Some(40_000));
        assert_eq!(all.percentile(0.0), Some(2_000)); // the empty part did not clamp the min
        assert_eq!(Histogram::merged(&[&empty]).percentile(99.0), None);
        // The parts are left as they were.
        assert_eq!((video.count(), audio.count()), (90, 10));
    }

    #[test]
    fn latencies_keep_audio_and_video_apart() {
        let logs = SendLogs::default();
        // The same timestamp sent twice, once per kind, at different times.
        logs.video.push(1_000, 10_000);
        logs.audio.push(1_000, 30_000);
        logs.audio.push(1_021, 31_000);
        let lat = Latencies::new();
        lat.video.frame(&logs.video, 1_000, 40_000, 0);
        assert_eq!(lat.video.hist.count(), 0); // window still closed
        lat.open_window(35_000);
        lat.video.frame(&logs.video, 1_000, 40_000, 0); // 30 ms
        lat.audio.frame(&logs.audio, 1_000, 40_000, 0); // 10 ms
        lat.audio.frame(&logs.audio, 1_021, 34_000, 0); // arrived before the window
        lat.audio.frame(&logs.audio, 1_042, 41_000, 0); // never sent
        lat.audio.frame(&logs.audio, 1_000, 41_000, 35_000); // sent before the viewer started
        assert_eq!(lat.video.hist.max(), Some(30_000));
        assert_eq!(lat.audio.hist.max(), Some(10_000));
        assert_eq!(lat.audio.hist.count(), 1);
        assert_eq!(lat.audio.unmatched.load(Relaxed), 1);
        assert_eq!(lat.audio.backlog.load(Relaxed), 1);
        assert_eq!(lat.video.unmatched.load(Relaxed), 0);
        let all = lat.combined();
        assert_eq!(all.count(), 2);
        // Bucket midpoints: within the histogram's 1/64 relative error of the samples.
        let p50 = all.percentile(50.0).unwrap();
        assert!((10_000..=10_000 + 10_000 / 64).contains(&p50), "{p50}");
        let p99 = all.percentile(99.0).unwrap();
        assert!(p99.abs_diff(30_000) <= 30_000 / 64, "{p99}");
        assert_eq!(all.max(), Some(30_000));
    }

    #[test]
    fn audio_config_detection() {
        assert!(is_audio_config([0xAF, 0x00])); // AAC sequence header
        assert!(!is_audio_config([0xAF, 0x01])); // AAC raw frame
        assert!(!is_audio_config([0xAE, 0x01])); // AAC, other rate/size bits
        assert!(!is_audio_config([0x2F, 0x00])); // MP3: no sequence header, first byte of data
        assert!(!is_audio_config([0x00, 0x00])); // PCM (and an empty body, zero-padded)
        assert!(is_audio_config([0x90, b'O'])); // Enhanced SequenceStart (Opus)
        assert!(!is_audio_config([0x91, b'O'])); // Enhanced CodedFrames
        assert!(is_audio_config([0x92, b'f'])); // Enhanced SequenceEnd
        assert!(is_audio_config([0x94, b'm'])); // Enhanced MultichannelConfig
        assert!(is_audio_config([0x95, 0x00])); // Multitrack of SequenceStart
        assert!(!is_audio_config([0x95, 0x01])); // Multitrack of CodedFrames
        assert!(!is_audio_config([0x95, 0x11])); // ManyTracks of CodedFrames
    }

    #[test]
    fn viewer_ttff_is_first_frame_only() {
        let v = ViewerStats::default();
        v.start_us.store(1_000, Relaxed);
        assert_eq!(v.ttff(), None);
        v.video_frame(5_000);
        v.video_frame(9_000);
        assert_eq!(v.ttff(), Some(4_000));
        assert_eq!(v.video_frames.load(Relaxed), 2);
        for s in [
            ViewerState::Connected,
            ViewerState::Failed,
            ViewerState::Dropped,
            ViewerState::Connecting,
        ] {
            v.set_state(s);
            assert_eq!(v.state(), s);
        }
    }

    #[test]
    fn errors_are_bounded() {
        let e = Errors::default();
        for i in 0..100 {
            e.add(format!("e{}", i % 40));
        }
        let s = e.snapshot();
        assert_eq!(s.len(), MAX_DISTINCT_ERRORS);
        assert_eq!(s.iter().map(|x| x.1).sum::<u64>(), 100);
    }

    #[test]
    fn video_config_detection() {
        assert!(is_video_config([0x17, 0x00])); // AVC keyframe, sequence header
        assert!(!is_video_config([0x17, 0x01])); // AVC keyframe, NALUs
        assert!(!is_video_config([0x27, 0x01])); // AVC inter frame
        assert!(is_video_config([0x1C, 0x00])); // legacy HEVC sequence header
        assert!(is_video_config([0x90, b'h'])); // Enhanced SequenceStart, keyframe
        assert!(!is_video_config([0x91, b'h'])); // Enhanced CodedFrames
        assert!(!is_video_config([0xA3, b'a'])); // Enhanced CodedFramesX, inter
        assert!(is_video_config([0x57, 0x00])); // command frame
        assert!(!is_video_config([0x22, 0x00])); // Sorenson H.263 picture
    }
}
