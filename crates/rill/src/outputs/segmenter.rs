//! Cuts one stream into HLS (MPEG-TS or fMP4, with LL-HLS parts) and DASH segments, in process,
//! from the hub's frames.
//!
//! Segments start at video keyframes once the target duration is reached (audio-only streams cut
//! at any frame); LL-HLS parts close every part duration. A republish or a codec change marks a
//! discontinuity; an unpublish ends the playlist. Old segments are dropped beyond the window.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rill_media::{Frame, FrameKind};
use rill_mux::dash::{Mpd, Representation};
use rill_mux::fmp4::{Fmp4Writer, TrackRun};
use rill_mux::hls::{MediaPlaylist, Part, Segment};
use rill_mux::sample::{sample_from_frame, Sample, TrackKind};
use rill_mux::track::TrackInfo;
use rill_mux::ts::TsMuxer;

use super::store::{HlsProgress, MediaStore};
use crate::config::{SegmentFormat, SegmentSettings};
use crate::hub::Packet;

/// A segment that has been written.
#[derive(Debug, Clone)]
struct Done {
    msn: u64,
    start_dts: u64,
    end_dts: u64,
    wall_ms: u64,
    discontinuity: bool,
    hls_uri: String,
    parts: Vec<Part>,
    /// Per track (video, audio): decode time of the first sample and where the run ends, as
    /// written in the fragments (DASH timelines must match each track's own `tfdt`).
    spans: [Option<(u64, u64)>; 2],
    /// Every file of this segment (HLS segment, parts, DASH per-track segments).
    files: Vec<String>,
}

/// The segment being filled.
#[derive(Debug, Default)]
struct Current {
    start_dts: Option<u64>,
    samples: Vec<Sample>,
    /// LL-HLS: samples of the part being filled, and the parts already closed.
    part_start_dts: Option<u64>,
    part_samples: Vec<Sample>,
    parts: Vec<Part>,
    /// Fragments of the closed parts (the segment is their concatenation).
    part_bytes: Vec<Bytes>,
    part_files: Vec<String>,
}

/// The segmenter of one stream.
pub struct Segmenter {
    settings: SegmentSettings,
    store: Arc<MediaStore>,
    /// Distinguishes this segmenter's URIs from an earlier one's (CDN caches keep old URIs).
    epoch: u64,
    video: Option<TrackInfo>,
    audio: Option<TrackInfo>,
    /// Width/height from onMetaData, for codecs whose config lacks them (VP9).
    meta_size: Option<(u32, u32)>,
    ts: Option<TsMuxer>,
    fmp4: Option<Fmp4Writer>,
    dash_writers: Vec<(TrackKind, Fmp4Writer)>,
    /// Audio of the segment in progress, for DASH (independent of HLS's carried sample).
    dash_audio: Vec<Sample>,
    /// DASH audio of the last closed segment, waiting for the next audio frame's time.
    dash_pending: Option<(u64, Vec<Sample>)>,
    init_version: u32,
    init_files: Vec<String>,
    current: Current,
    done: VecDeque<Done>,
    next_msn: u64,
    discontinuity_sequence: u64,
    pending_discontinuity: bool,
    ended: bool,
    /// (dts, wall ms) of the first sample: maps stream time to wall-clock time.
    clock: Option<(u64, u64)>,
    last_audio_gap: u64,
    last_video_gap: u64,
    last_dts: [Option<u64>; 2],
    target_duration: u32,
}

fn kind_index(k: TrackKind) -> usize {
    match k {
        TrackKind::Video => 0,
        TrackKind::Audio => 1,
    }
}

impl Segmenter {
    pub fn new(settings: SegmentSettings, store: Arc<MediaStore>, epoch: u64) -> Self {
        let target_duration = settings.segment_duration.ceil().max(1.0) as u32;
        Segmenter {
            settings,
            store,
            epoch,
            video: None,
            audio: None,
            meta_size: None,
            ts: None,
            fmp4: None,
            dash_writers: Vec::new(),
            dash_audio: Vec::new(),
            dash_pending: None,
            init_version: 0,
            init_files: Vec::new(),
            current: Current::default(),
            done: VecDeque::new(),
            next_msn: 0,
            discontinuity_sequence: 0,
            pending_discontinuity: false,
            ended: false,
            clock: None,
            last_audio_gap: 23,
            last_video_gap: 33,
            last_dts: [None, None],
            target_duration,
        }
    }

    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Handles one hub packet; `now_ms` is the wall clock (Unix milliseconds).
    pub fn push(&mut self, packet: Packet, now_ms: u64) {
        match packet {
            Packet::Publish => {
                if self.ended || !self.done.is_empty() {
                    self.pending_discontinuity = true;
                }
                let was_ended = std::mem::replace(&mut self.ended, false);
                // A new publisher starts its own clock mapping and its own sequence headers.
                self.clock = None;
                if was_ended {
                    // Live again: playlists lose EXT-X-ENDLIST and the MPD is dynamic at once.
                    self.publish();
                }
            }
            Packet::Unpublish => {
                self.close_segment(None);
                self.ended = true;
                self.publish();
            }
            Packet::Frame(f) => self.frame(&f.frame, now_ms),
        }
    }

    fn frame(&mut self, frame: &Frame, now_ms: u64) {
        match frame.kind {
            FrameKind::Metadata => {
                self.meta_size = metadata_size(&frame.payload).or(self.meta_size)
            }
            _ if frame.sequence_header => self.sequence_header(frame),
            _ => {
                if frame.kind == FrameKind::Audio && self.audio.is_none() {
                    // Codecs without a sequence header (MP3) describe themselves in each frame.
                    if let Ok(t) = TrackInfo::audio(frame) {
                        self.set_track(t);
                    }
                }
                if let Some(sample) = sample_from_frame(frame) {
                    self.sample(sample, now_ms);
                }
            }
        }
    }

    fn sequence_header(&mut self, frame: &Frame) {
        match TrackInfo::from_sequence_header(frame) {
            Ok(t) => self.set_track(t),
            Err(e) => tracing::warn!(error = %e, "segmenter: unusable sequence header"),
        }
    }

    fn set_track(&mut self, mut t: TrackInfo) {
        if t.kind == TrackKind::Video && (t.width == 0 || t.height == 0) {
            if let Some((w, h)) = self.meta_size {
                (t.width, t.height) = (w, h);
            }
        }
        let slot = match t.kind {
            TrackKind::Video => &mut self.video,
            TrackKind::Audio => &mut self.audio,
        };
        if slot
            .as_ref()
            .is_some_and(|old| old.config == t.config && old.codec == t.codec)
        {
            return;
        }
        let had = slot.is_some();
        *slot = Some(t);
        if had {
            // A new configuration: finish what was cut with the old one, then start over.
            self.close_segment(None);
            if !self.done.is_empty() {
                self.pending_discontinuity = true;
            }
        }
        self.ts = None;
        self.fmp4 = None;
        self.dash_writers.clear();
    }

    fn sample(&mut self, sample: Sample, now_ms: u64) {
        let has_video = self.video.is_some();
        if sample.kind == TrackKind::Video && !has_video
            || sample.kind == TrackKind::Audio && self.audio.is_none()
        {
            return;
        }
        let idx = kind_index(sample.kind);
        if let Some(prev) = self.last_dts[idx] {
            let gap = sample.dts_ms.saturating_sub(prev);
            if gap > 0 && gap < 1000 {
                match sample.kind {
                    TrackKind::Video => self.last_video_gap = gap,
                    TrackKind::Audio => self.last_audio_gap = gap,
                }
            }
        }
        self.last_dts[idx] = Some(sample.dts_ms);
        self.clock.get_or_insert((sample.dts_ms, now_ms));
        let starts_segment = if has_video {
            sample.kind == TrackKind::Video && sample.keyframe
        } else {
            true
        };
        match self.current.start_dts {
            None => {
                if !starts_segment {
                    return; // wait for the first keyframe
                }
                self.begin(sample.dts_ms);
            }
            Some(start) => {
                let elapsed = sample.dts_ms.saturating_sub(start) as f64 / 1000.0;
                if starts_segment && elapsed >= self.settings.segment_duration * 0.999 {
                    let carried = self.close_segment(Some(sample.dts_ms));
                    self.begin(sample.dts_ms);
                    self.resume_with(carried);
                } else if self.settings.low_latency {
                    let part_start = self.current.part_start_dts.unwrap_or(start);
                    let part_elapsed = sample.dts_ms.saturating_sub(part_start) as f64 / 1000.0;
                    let boundary = !has_video || sample.kind == TrackKind::Video;
                    if boundary && part_elapsed >= self.settings.part_duration * 0.999 {
                        let carried = self.close_part(sample.dts_ms, true);
                        self.current.part_start_dts = Some(sample.dts_ms);
                        if let Some(c) = carried {
                            self.current.part_samples.push(c);
                        }
                        self.publish();
                    }
                }
            }
        }
        if self.settings.dash && sample.kind == TrackKind::Audio {
            self.flush_dash_audio(Some(sample.dts_ms));
            self.dash_audio.push(sample.clone());
        }
        if self.settings.low_latency {
            self.current.part_samples.push(sample.clone());
        }
        self.current.samples.push(sample);
    }

    /// Puts a sample held back from the closed segment at the start of the new one.
    fn resume_with(&mut self, carried: Option<Sample>) {
        if let Some(c) = carried {
            if self.settings.low_latency {
                self.current.part_samples.push(c.clone());
            }
            self.current.samples.push(c);
        }
    }

    fn begin(&mut self, dts: u64) {
        self.current = Current {
            start_dts: Some(dts),
            part_start_dts: Some(dts),
            ..Current::default()
        };
    }

    fn wall(&self, dts: u64) -> u64 {
        match self.clock {
            Some((d0, w0)) => (w0 + dts).saturating_sub(d0),
            None => 0,
        }
    }

    fn tracks(&self) -> Vec<TrackInfo> {
        self.video
            .iter()
            .chain(self.audio.iter())
            .cloned()
            .collect()
    }

    fn name(&self, what: &str) -> String {
        format!("{what}-{}", self.epoch)
    }

    /// Makes the fMP4 writer (and writes its init segment) when needed.
    fn ensure_fmp4(&mut self) -> Option<&mut Fmp4Writer> {
        if self.fmp4.is_none() {
            let w = Fmp4Writer::new(self.tracks())
                .map_err(|e| tracing::warn!(error = %e, "fmp4 writer"))
                .ok()?;
            self.init_version += 1;
            let init = format!("{}-{}.mp4", self.name("init"), self.init_version);
            self.store.put(vec![(init.clone(), w.init_segment())]);
            self.init_files.push(init);
            self.fmp4 = Some(w);
        }
        self.fmp4.as_mut()
    }

    fn init_uri(&self) -> Option<String> {
        self.init_files.last().cloned()
    }

    /// For each track with samples: (track index in the writer, samples' kind index, end dts).
    /// A track's run ends at `end` when it lies past its last sample, else one frame after it.
    fn plan(
        &self,
        by: &[Vec<Sample>; 2],
        end: Option<u64>,
        audio_next: Option<u64>,
    ) -> Vec<(usize, usize, u64)> {
        let mut plan = Vec::new();
        let tracks = [
            (TrackKind::Video, &self.video),
            (TrackKind::Audio, &self.audio),
        ];
        let mut track = 0;
        for (kind, info) in tracks {
            if info.is_none() {
                continue;
            }
            let k = kind_index(kind);
            if let Some(last) = by[k].last().map(|s| s.dts_ms) {
                plan.push((track, k, self.run_end(kind, last, end, audio_next)));
            }
            track += 1;
        }
        plan
    }

    /// Where a track's run of samples ends: video (and the only track of an audio-only stream)
    /// at the cut, where the next run starts. Audio of a stream with video ends where the next
    /// audio run starts (`audio_next`: its first sample, held back from this run), since a video
    /// cut falls inside an audio frame and a shortened or overlong last frame makes players see
    /// a gap; without one (the stream ended), one frame after its last sample.
    fn run_end(
        &self,
        kind: TrackKind,
        last: u64,
        cut: Option<u64>,
        audio_next: Option<u64>,
    ) -> u64 {
        let (gap, next) = match kind {
            TrackKind::Video => (self.last_video_gap, cut),
            TrackKind::Audio if self.video.is_none() => (self.last_audio_gap, cut),
            TrackKind::Audio => (self.last_audio_gap, audio_next),
        };
        match next {
            Some(n) if n > last => n,
            _ => last + gap,
        }
    }

    /// With video, the last audio sample of a run is held back into the next run, so that the
    /// run can end exactly where the next one starts.
    fn take_carry(has_video: bool, samples: &mut Vec<Sample>) -> Option<Sample> {
        if !has_video {
            return None;
        }
        let i = samples.iter().rposition(|s| s.kind == TrackKind::Audio)?;
        Some(samples.remove(i))
    }

    /// One fMP4 fragment of `samples` (all tracks), ending at `end` (audio at `audio_next`).
    fn fragment(&mut self, samples: &[Sample], end: u64, audio_next: Option<u64>) -> Option<Bytes> {
        let by = Self::split(samples);
        let plan = self.plan(&by, Some(end), audio_next);
        let w = self.ensure_fmp4()?;
        let runs: Vec<TrackRun<'_>> = plan
            .iter()
            .map(|&(track, k, end_dts_ms)| TrackRun {
                track,
                samples: &by[k],
                end_dts_ms,
            })
            .collect();
        w.fragment(&runs)
            .map_err(|e| tracing::warn!(error = %e, "fmp4 fragment"))
            .ok()
    }

    fn split(samples: &[Sample]) -> [Vec<Sample>; 2] {
        let mut by: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
        for s in samples {
            by[kind_index(s.kind)].push(s.clone());
        }
        by
    }

    /// LL-HLS: turns the part being filled into a published part ending at `end`. With `carry`,
    /// the last audio sample is held back and returned, to start the next part.
    fn close_part(&mut self, end: u64, carry: bool) -> Option<Sample> {
        if self.current.part_samples.is_empty() {
            return None;
        }
        let mut samples = std::mem::take(&mut self.current.part_samples);
        let carried = if carry {
            Self::take_carry(self.video.is_some(), &mut samples)
        } else {
            None
        };
        let audio_next = carried.as_ref().map(|c| c.dts_ms);
        let start = self.current.part_start_dts.unwrap_or(end);
        let independent = samples
            .iter()
            .any(|s| s.kind == TrackKind::Video && s.keyframe)
            || self.video.is_none();
        let Some(frag) = self.fragment(&samples, end, audio_next) else {
            return carried;
        };
        let uri = format!(
            "{}-{}.{}.m4s",
            self.name("part"),
            self.next_msn,
            self.current.parts.len()
        );
        self.store.put(vec![(uri.clone(), frag.clone())]);
        self.current.part_bytes.push(frag);
        self.current.part_files.push(uri.clone());
        let duration = end.saturating_sub(start) as f64 / 1000.0;
        self.current.parts.push(Part {
            uri,
            duration,
            independent,
        });
        carried
    }

    /// Closes the segment in progress at `end` (the next segment's first dts), or at its last
    /// sample plus one frame when the stream stops. At a cut, the last audio sample is held back
    /// and returned, to start the next segment.
    fn close_segment(&mut self, end: Option<u64>) -> Option<Sample> {
        let start = self.current.start_dts?;
        if self.current.samples.is_empty() {
            self.current = Current::default();
            return None;
        }
        let last = self
            .current
            .samples
            .iter()
            .map(|s| s.dts_ms)
            .max()
            .unwrap_or(start);
        let end_dts = end.unwrap_or(last + self.last_video_gap.max(self.last_audio_gap));
        if self.settings.low_latency {
            // The segment's last audio sample is its last part's: carried once, below.
            let _ = self.close_part(end_dts, end.is_some());
        }
        let carried = if end.is_some() {
            Self::take_carry(self.video.is_some(), &mut self.current.samples)
        } else {
            None
        };
        let audio_next = carried.as_ref().map(|c| c.dts_ms);
        let cur = std::mem::take(&mut self.current);
        let msn = self.next_msn;
        let mut files = cur.part_files.clone();
        let hls_uri = match self.settings.format {
            SegmentFormat::Ts => format!("{}-{msn}.ts", self.name("seg")),
            SegmentFormat::Fmp4 => format!("{}-{msn}.m4s", self.name("seg")),
        };
        if self.settings.hls {
            let data = match self.settings.format {
                SegmentFormat::Ts => self.mux_ts(&cur.samples),
                SegmentFormat::Fmp4 if self.settings.low_latency => {
                    let mut b = BytesMut::new();
                    for p in &cur.part_bytes {
                        b.extend_from_slice(p);
                    }
                    Some(b.freeze())
                }
                SegmentFormat::Fmp4 => self.fragment(&cur.samples, end_dts, audio_next),
            };
            if let Some(data) = data {
                self.store.put(vec![(hls_uri.clone(), data)]);
                files.push(hls_uri.clone());
            }
        }
        let mut dash_audio = Vec::new();
        if self.settings.dash {
            let video: Vec<Sample> = cur
                .samples
                .iter()
                .filter(|s| s.kind == TrackKind::Video)
                .cloned()
                .collect();
            files.extend(self.dash_fragment(TrackKind::Video, &video, msn, end_dts));
            dash_audio = std::mem::take(&mut self.dash_audio);
        }
        let discontinuity = std::mem::take(&mut self.pending_discontinuity);
        if discontinuity {
            self.discontinuity_sequence += u64::from(!self.done.is_empty());
        }
        let duration = (end_dts - start) as f64 / 1000.0;
        // RFC 8216 compares the target with durations rounded to the nearest second.
        self.target_duration = self.target_duration.max(duration.round() as u32);
        let by = Self::split(&cur.samples);
        let span = |k: TrackKind| {
            let list = &by[kind_index(k)];
            Some((
                list.first()?.dts_ms,
                self.run_end(k, list.last()?.dts_ms, Some(end_dts), audio_next),
            ))
        };
        let spans = [
            span(TrackKind::Video),
            if self.settings.dash {
                None
            } else {
                span(TrackKind::Audio)
            },
        ];
        self.done.push_back(Done {
            msn,
            start_dts: start,
            end_dts,
            wall_ms: self.wall(start),
            discontinuity,
            hls_uri,
            parts: cur.parts,
            spans,
            files,
        });
        self.next_msn += 1;
        self.expire();
        if self.dash_pending.is_some() {
            // A segment shorter than one audio frame: the earlier one ends where this one starts.
            let next = dash_audio.first().map(|s| s.dts_ms);
            self.flush_dash_audio(next);
        }
        if self.video.is_some() && !dash_audio.is_empty() {
            self.dash_pending = Some((msn, dash_audio));
            if end.is_none() {
                self.flush_dash_audio(None);
            }
        } else if !dash_audio.is_empty() {
            // Audio-only: the cut is at an audio frame, which ends the run exactly.
            let first = dash_audio[0].dts_ms;
            let file = self.dash_fragment(TrackKind::Audio, &dash_audio, msn, end_dts);
            if let Some(d) = self.done.back_mut() {
                d.spans[kind_index(TrackKind::Audio)] = Some((first, end_dts));
                d.files.extend(file);
            }
        }
        self.publish();
        carried
    }

    fn mux_ts(&mut self, samples: &[Sample]) -> Option<Bytes> {
        if self.ts.is_none() {
            let ts = TsMuxer::new(self.video.as_ref(), self.audio.as_ref())
                .map_err(|e| tracing::warn!(error = %e, "ts muxer"))
                .ok()?;
            self.ts = Some(ts);
        }
        let ts = self.ts.as_mut()?;
        let mut out = BytesMut::new();
        ts.write_tables(&mut out);
        for s in samples {
            if let Err(e) = ts.write_sample(s, &mut out) {
                tracing::debug!(error = %e, "ts: sample skipped");
            }
        }
        Some(out.freeze())
    }

    /// One fragment per track (DASH lists each track as its own representation).
    /// Makes the per-track DASH writers (and writes their init segments) when needed.
    fn ensure_dash(&mut self) {
        if !self.dash_writers.is_empty() {
            return;
        }
        for t in self.tracks() {
            let kind = t.kind;
            match Fmp4Writer::new(vec![t]) {
                Ok(w) => {
                    let init = format!("{}-{}-init.m4s", self.name("dash"), rep_id(kind));
                    self.store.put(vec![(init, w.init_segment())]);
                    self.dash_writers.push((kind, w));
                }
                Err(e) => tracing::warn!(error = %e, "dash writer"),
            }
        }
    }

    /// Writes one track's DASH fragment of segment `msn`; returns its file name.
    fn dash_fragment(
        &mut self,
        kind: TrackKind,
        samples: &[Sample],
        msn: u64,
        end_dts_ms: u64,
    ) -> Option<String> {
        if samples.is_empty() {
            return None;
        }
        self.ensure_dash();
        let name = format!("{}-{}-{msn}.m4s", self.name("dash"), rep_id(kind));
        let (_, w) = self.dash_writers.iter_mut().find(|(k, _)| *k == kind)?;
        let frag = w
            .fragment(&[TrackRun {
                track: 0,
                samples,
                end_dts_ms,
            }])
            .map_err(|e| tracing::warn!(error = %e, "dash fragment"))
            .ok()?;
        self.store.put(vec![(name.clone(), frag)]);
        Some(name)
    }

    /// DASH audio of a closed segment waits for the next audio frame, whose time ends it exactly
    /// (a guessed end leaves a gap or an overlap that players stumble on). `next` is that frame's
    /// time, or `None` when the stream ended.
    fn flush_dash_audio(&mut self, next: Option<u64>) {
        let Some((msn, samples)) = self.dash_pending.take() else {
            return;
        };
        let Some(last) = samples.last().map(|s| s.dts_ms) else {
            return;
        };
        let end = next
            .filter(|n| *n > last)
            .unwrap_or(last + self.last_audio_gap);
        let first = samples.first().map(|s| s.dts_ms).unwrap_or(last);
        let file = self.dash_fragment(TrackKind::Audio, &samples, msn, end);
        if let Some(d) = self.done.iter_mut().find(|d| d.msn == msn) {
            d.spans[kind_index(TrackKind::Audio)] = Some((first, end));
            d.files.extend(file);
        }
        self.publish();
    }

    /// Drops segments beyond the playlist window plus the extra ones kept for late players.
    fn expire(&mut self) {
        let keep = self.settings.playlist_length + self.settings.extra_segments;
        while self.done.len() > keep {
            if let Some(old) = self.done.pop_front() {
                self.store.remove(&old.files);
            }
        }
        // Init segments no listed segment uses any more.
        if self.init_files.len() > 2 {
            let old: Vec<String> = self.init_files.drain(..self.init_files.len() - 2).collect();
            self.store.remove(&old);
        }
    }

    fn listed(&self) -> impl Iterator<Item = &Done> {
        let skip = self
            .done
            .len()
            .saturating_sub(self.settings.playlist_length);
        self.done.iter().skip(skip)
    }

    /// Renders and stores the playlist and MPD.
    fn publish(&mut self) {
        let playlist = self.settings.hls.then(|| self.render_hls());
        let progress = HlsProgress {
            next_msn: self.next_msn,
            parts: self.current.parts.len(),
            ended: self.ended,
        };
        // The MPD lists a segment only once every track of it is written.
        let mpd = (self.settings.dash && self.dash_pending.is_none()).then(|| self.render_mpd());
        self.store.publish(playlist, progress, mpd);
    }

    fn render_hls(&self) -> String {
        let ll = self.settings.low_latency;
        // Parts are listed for the last few segments only, as LL-HLS asks.
        let recent = self.done.len().saturating_sub(3);
        let first_listed = self
            .done
            .len()
            .saturating_sub(self.settings.playlist_length);
        let segments = self
            .done
            .iter()
            .enumerate()
            .skip(first_listed)
            .map(|(i, d)| Segment {
                uri: d.hls_uri.clone(),
                duration: (d.end_dts - d.start_dts) as f64 / 1000.0,
                sequence: d.msn,
                program_date_time_ms: Some(d.wall_ms),
                discontinuity: d.discontinuity,
                parts: if ll && i >= recent {
                    d.parts.clone()
                } else {
                    Vec::new()
                },
            })
            .collect::<Vec<_>>();
        let discontinuities_dropped = self
            .done
            .iter()
            .take(first_listed)
            .filter(|d| d.discontinuity)
            .count() as u64;
        MediaPlaylist {
            target_duration: self.target_duration,
            media_sequence: segments
                .first()
                .map(|s| s.sequence)
                .unwrap_or(self.next_msn),
            discontinuity_sequence: discontinuities_dropped,
            map_uri: (self.settings.format == SegmentFormat::Fmp4)
                .then(|| self.init_uri())
                .flatten(),
            segments,
            pending_parts: if ll && !self.ended {
                self.current.parts.clone()
            } else {
                Vec::new()
            },
            part_target: ll.then_some(self.settings.part_duration),
            preload_hint: (ll && !self.ended).then(|| {
                format!(
                    "{}-{}.{}.m4s",
                    self.name("part"),
                    self.next_msn,
                    self.current.parts.len()
                )
            }),
            ended: self.ended,
        }
        .render()
    }

    fn render_mpd(&self) -> String {
        let (d0, w0) = self.clock.unwrap_or((0, 0));
        let listed: Vec<&Done> = self.listed().collect();
        let prefix = self.name("dash");
        let representations = self
            .tracks()
            .into_iter()
            .map(|t| {
                let id = rep_id(t.kind).to_owned();
                Representation {
                    mime_type: if t.kind == TrackKind::Video {
                        "video/mp4"
                    } else {
                        "audio/mp4"
                    }
                    .into(),
                    codecs: t.codec_string.clone(),
                    bandwidth: if t.kind == TrackKind::Video {
                        2_000_000
                    } else {
                        128_000
                    },
                    width: t.width,
                    height: t.height,
                    sample_rate: t.sample_rate,
                    timescale: t.timescale,
                    initialization: format!("{prefix}-$RepresentationID$-init.m4s"),
                    media: format!("{prefix}-$RepresentationID$-$Number$.m4s"),
                    timeline: listed
                        .iter()
                        .map(|d| {
                            let (a, b) =
                                d.spans[kind_index(t.kind)].unwrap_or((d.start_dts, d.end_dts));
                            (t.ticks(a), t.ticks(b) - t.ticks(a))
                        })
                        .collect(),
                    start_number: listed.first().map(|d| d.msn).unwrap_or(0),
                    id,
                }
            })
            .collect();
        let seg = self.settings.segment_duration;
        Mpd {
            availability_start_ms: w0.saturating_sub(d0),
            publish_time_ms: crate::outputs::now_ms(),
            min_buffer_secs: seg,
            min_update_period_secs: seg,
            time_shift_depth_secs: seg * self.settings.playlist_length as f64,
            max_segment_duration_secs: f64::from(self.target_duration),
            suggested_presentation_delay_secs: seg * 2.0,
            utc_timing_url: None,
            representations,
            ended: self.ended,
        }
        .render()
    }
}

fn rep_id(kind: TrackKind) -> &'static str {
    match kind {
        TrackKind::Video => "video",
        TrackKind::Audio => "audio",
    }
}

/// `width`/`height` from an `onMetaData` payload.
fn metadata_size(payload: &[u8]) -> Option<(u32, u32)> {
    let values = rill_rtmp::amf0::decode_all(payload).ok()?;
    let props = values.iter().find(|v| v.get("width").is_some())?;
    let w = props.get("width")?.as_f64()?;
    let h = props.get("height")?.as_f64()?;
    (w > 0.0 && h > 0.0 && w < 65536.0 && h < 65536.0).then_some((w as u32, h as u32))
}
