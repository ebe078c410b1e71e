//! Progressive MP4 with faststart (`ftyp`, `moov`, then `mdat`), for finished recordings: the
//! sample tables (stts, ctts, stss, stsz, stsc, stco/co64) and an edit list, built from an index of
//! chunks whose bytes the caller copies into `mdat` in the same order.
//!
//! Timing: a sample's decode time is its own `dts_ms` (durations are differences of absolute tick
//! times, so rounding never accumulates, and a gap between chunks lengthens the sample before it
//! instead of shifting every later one). Presentation is aligned on presentation times: each
//! track's edit list starts at its first sample's composition time (skipping the B-frame delay),
//! and a track whose first presentation time is later than the earliest track's is delayed by an
//! empty edit, so audio and video stay in sync and the movie starts at 0.
//!
//! The index holds 24 bytes per sample and 16 per chunk; counts are bounded by the 32-bit fields
//! of the tables.

use bytes::Bytes;

use crate::boxes::{
    composition_offset, duration_ticks, entries, write_ftyp, write_mvhd, write_trak, BoxWriter,
    Entry, Trak, MOVIE_TIMESCALE,
};
use crate::sample::TrackKind;
use crate::track::TrackInfo;
use crate::MuxError;

/// One sample of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleEntry {
    pub dts_ms: u64,
    pub cts_ms: i32,
    pub size: u32,
    pub sync: bool,
}

/// The most samples, and chunks, one track may hold: the entry counts of the tables are 32-bit.
pub const MAX_SAMPLES_PER_TRACK: usize = u32::MAX as usize;

/// `mdat` payloads from this size on need the 64-bit `largesize` header.
const MDAT_LARGESIZE_FROM: u64 = (1 << 32) - 8;

/// Collects chunks, then writes the header that goes before their bytes.
pub struct Mp4Builder {
    tracks: Vec<TrackInfo>,
    entries: Vec<Entry>,
    index: Vec<TrackIndex>,
    data_size: u64,
    /// The first chunk that could not be indexed: the header would not describe the bytes the
    /// caller writes, so [`Mp4Builder::header`] reports it.
    error: Option<&'static str>,
}

/// The samples and chunks of one track.
#[derive(Default)]
struct TrackIndex {
    samples: Vec<SampleEntry>,
    /// Offset of each chunk in the `mdat` payload, and its sample count.
    chunks: Vec<(u64, u32)>,
    /// Decode time (ms) where the track's last sample ends.
    end_dts_ms: u64,
}

impl Mp4Builder {
    pub fn new(tracks: Vec<TrackInfo>) -> Result<Mp4Builder, MuxError> {
        let entries = entries(&tracks)?;
        let index = tracks.iter().map(|_| TrackIndex::default()).collect();
        Ok(Mp4Builder {
            tracks,
            entries,
            index,
            data_size: 0,
            error: None,
        })
    }

    pub fn tracks(&self) -> &[TrackInfo] {
        &self.tracks
    }

    /// Records a chunk: consecutive samples of track `track` (index into the tracks), whose bytes
    /// will follow the previous chunk's in `mdat`. `end_dts_ms` gives the last sample its duration.
    ///
    /// When a later chunk of the same track follows, its first decode time ends this chunk's last
    /// sample instead, so that every sample keeps its own decode time; the `end_dts_ms` of the
    /// track's last chunk ends the track. An empty chunk is ignored. A chunk that cannot be
    /// indexed (bad track index, too many samples) makes [`Mp4Builder::header`] fail.
    pub fn add_chunk(&mut self, track: usize, samples: &[SampleEntry], end_dts_ms: u64) {
        if samples.is_empty() {
            return;
        }
        let bytes: u64 = samples.iter().map(|s| u64::from(s.size)).sum();
        let start = self.data_size;
        // Counted even for a rejected chunk: the caller still writes its bytes.
        self.data_size = self.data_size.saturating_add(bytes);
        if self.error.is_some() {
            return;
        }
        let Some(index) = self.index.get_mut(track) else {
            self.error = Some("track index out of range");
            return;
        };
        let n = index.samples.len().saturating_add(samples.len());
        if n > MAX_SAMPLES_PER_TRACK {
            self.error = Some("too many samples in a track");
            return;
        }
        // Bounded by MAX_SAMPLES_PER_TRACK: a chunk holds at least one sample.
        index.chunks.push((start, samples.len() as u32));
        index.samples.extend_from_slice(samples);
        index.end_dts_ms = end_dts_ms;
    }

    /// Total bytes of all chunks (the `mdat` payload size).
    pub fn data_size(&self) -> u64 {
        self.data_size
    }

    /// `ftyp` + `moov` + the `mdat` box header: write this, then every chunk's bytes in order.
    pub fn header(&self) -> Result<Bytes, MuxError> {
        if let Some(e) = self.error {
            return Err(MuxError::Malformed(e));
        }
        let plans = self
            .tracks
            .iter()
            .zip(&self.index)
            .map(|(track, index)| plan_track(track, index))
            .collect::<Result<Vec<_>, _>>()?;
        // Movie time 0 is the earliest presentation time of any track.
        let movie_start = plans.iter().filter_map(|p| p.start_ms).min().unwrap_or(0);
        // Chunk offsets depend on the header's length, which depends on whether stco or co64
        // holds them. A longer header only ever turns stco into co64, which makes it longer
        // still, so the lengths grow to a fixed point, reached in at most one step per track.
        let mut len = 0u64;
        for _ in 0..=self.tracks.len() + 1 {
            let header = self.build(&plans, movie_start, len)?;
            if header.len() as u64 == len {
                return Ok(Bytes::from(header));
            }
            len = header.len() as u64;
        }
        Err(MuxError::Malformed("header length does not settle"))
    }

    /// The header, assuming it is `header_len` bytes long.
    fn build(
        &self,
        plans: &[TrackPlan],
        movie_start: u64,
        header_len: u64,
    ) -> Result<Vec<u8>, MuxError> {
        let mut w = BoxWriter::default();
        write_ftyp(&mut w, b"isom", 0x200, &[b"isom", b"iso2", b"mp41"]);
        let moov = w.start(b"moov");
        let edits: Vec<Option<Edit>> = plans
            .iter()
            .zip(&self.tracks)
            .map(|(p, t)| p.edit(t, movie_start))
            .collect();
        let duration = edits.iter().flatten().map(Edit::total).max().unwrap_or(0);
        write_mvhd(&mut w, duration, self.tracks.len());
        let per_track = self.tracks.iter().zip(&self.entries).zip(&self.index);
        for (i, (((track, entry), index), (plan, edit))) in
            per_track.zip(plans.iter().zip(&edits)).enumerate()
        {
            let trak = Trak {
                id: i as u32 + 1,
                track,
                entry,
                duration: edit.as_ref().map_or(0, Edit::total),
                media_duration: plan.media_duration,
            };
            write_trak(
                &mut w,
                &trak,
                |w| {
                    if let Some(edit) = edit {
                        write_edts(w, edit);
                    }
                },
                |w| write_tables(w, plan, index, header_len, track.kind == TrackKind::Video),
            );
        }
        w.end(moov);
        if w.buf.len() - moov > u32::MAX as usize {
            return Err(MuxError::Malformed("moov larger than 4 GiB"));
        }
        if self.data_size >= MDAT_LARGESIZE_FROM {
            w.u32(1);
            w.put(b"mdat");
            w.u64(self.data_size.saturating_add(16));
        } else {
            // Below 2^32 - 8 by the branch above.
            w.u32(self.data_size as u32 + 8);
            w.put(b"mdat");
        }
        Ok(w.buf)
    }
}

/// A track's tables, computed once before the header is written (they do not depend on where the
/// chunks land).
struct TrackPlan {
    /// (sample_count, sample_delta) runs.
    stts: Vec<(u32, u32)>,
    /// (sample_count, sample_offset) runs, when any composition offset is not zero.
    ctts: Option<Vec<(u32, i32)>>,
    /// The sample size when every sample has it.
    constant_size: Option<u32>,
    /// (first_chunk, samples_per_chunk) runs.
    stsc: Vec<(u32, u32)>,
    /// Sum of the durations, in track ticks.
    media_duration: u64,
    /// Presentation time (ms) of the first sample shown; `None` for a track without samples.
    start_ms: Option<u64>,
    /// Where in the media the presentation starts (the first sample's composition offset).
    media_time: i64,
}

/// A track's edit list: an optional empty edit, then the media from `media_time`.
struct Edit {
    /// Movie ticks (ms) before the track starts.
    empty: u64,
    /// Movie ticks of the media.
    duration: u64,
    media_time: i64,
}

impl Edit {
    fn total(&self) -> u64 {
        self.empty.saturating_add(self.duration)
    }
}

impl TrackPlan {
    fn edit(&self, track: &TrackInfo, movie_start: u64) -> Option<Edit> {
        let start = self.start_ms?;
        let scale = u128::from(track.timescale);
        // Rounded to the nearest movie tick.
        let duration =
            (u128::from(self.media_duration) * u128::from(MOVIE_TIMESCALE) + scale / 2) / scale;
        Some(Edit {
            empty: start.saturating_sub(movie_start),
            duration: u64::try_from(duration).unwrap_or(u64::MAX),
            media_time: self.media_time,
        })
    }
}

fn plan_track(track: &TrackInfo, index: &TrackIndex) -> Result<TrackPlan, MuxError> {
    let scale = u64::from(track.timescale);
    let samples = &index.samples;
    let mut plan = TrackPlan {
        stts: Vec::new(),
        ctts: None,
        constant_size: None,
        stsc: Vec::new(),
        media_duration: 0,
        start_ms: None,
        media_time: 0,
    };
    let mut ctts: Vec<(u32, i32)> = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        let next_ms = samples.get(i + 1).map_or(index.end_dts_ms, |n| n.dts_ms);
        let duration = duration_ticks(s.dts_ms, next_ms, scale)?;
        plan.media_duration = plan.media_duration.saturating_add(u64::from(duration));
        push_run(&mut plan.stts, duration);
        let offset = composition_offset(s.dts_ms, s.cts_ms, scale)?;
        push_run(&mut ctts, offset);
    }
    if ctts.iter().any(|&(_, offset)| offset != 0) {
        plan.ctts = Some(ctts);
    }
    if let Some(first) = samples.first() {
        // A first sample shown after it is decoded (B-frames): the presentation starts there.
        let delay = first.cts_ms.max(0);
        plan.start_ms = Some(first.dts_ms.saturating_add(delay as u64));
        if delay > 0 {
            plan.media_time = i64::from(composition_offset(first.dts_ms, delay, scale)?);
        }
        if first.size != 0 && samples.iter().all(|s| s.size == first.size) {
            plan.constant_size = Some(first.size);
        }
    }
    for (i, &(_, n)) in index.chunks.iter().enumerate() {
        // Chunk numbers are 1-based; chunk counts are bounded by MAX_SAMPLES_PER_TRACK.
        if plan.stsc.last().map(|&(_, last)| last) != Some(n) {
            plan.stsc.push((i as u32 + 1, n));
        }
    }
    Ok(plan)
}

/// Extends the run-length table `runs` of (count, value) with one value.
fn push_run<T: PartialEq + Copy>(runs: &mut Vec<(u32, T)>, value: T) {
    match runs.last_mut() {
        // Counts are bounded by the sample count, itself bounded by MAX_SAMPLES_PER_TRACK.
        Some((count, last)) if *last == value => *count += 1,
        _ => runs.push((1, value)),
    }
}

/// `edts` with an `elst` of one or two entries.
fn write_edts(w: &mut BoxWriter, edit: &Edit) {
    let long = edit.total() > u64::from(u32::MAX);
    let edts = w.start(b"edts");
    let elst = w.full(b"elst", u8::from(long), 0);
    let mut entries = Vec::with_capacity(2);
    if edit.empty > 0 {
        entries.push((edit.empty, -1));
    }
    entries.push((edit.duration, edit.media_time));
    w.u32(entries.len() as u32);
    for (duration, media_time) in entries {
        w.duration(long, duration);
        if long {
            w.u64(media_time as u64);
        } else {
            // A composition offset, which fits 32 bits.
            w.u32(media_time as i32 as u32);
        }
        w.u16(1); // media_rate_integer
        w.u16(0); // media_rate_fraction
    }
    w.end(elst);
    w.end(edts);
}

/// `stts`, `ctts`, `stss`, `stsz`, `stsc` and `stco`/`co64`, after `stsd`.
fn write_tables(
    w: &mut BoxWriter,
    plan: &TrackPlan,
    index: &TrackIndex,
    header_len: u64,
    video: bool,
) {
    // Entry counts below are bounded by MAX_SAMPLES_PER_TRACK.
    let stts = w.full(b"stts", 0, 0);
    w.u32(plan.stts.len() as u32);
    for &(count, delta) in &plan.stts {
        w.u32(count);
        w.u32(delta);
    }
    w.end(stts);

    if let Some(ctts) = &plan.ctts {
        // Version 1: signed offsets, as a sample may be shown before it is decoded.
        let b = w.full(b"ctts", 1, 0);
        w.u32(ctts.len() as u32);
        for &(count, offset) in ctts {
            w.u32(count);
            w.u32(offset as u32);
        }
        w.end(b);
    }

    if video {
        // 1-based numbers of the sync samples; audio tracks omit the box (every sample syncs).
        let stss = w.full(b"stss", 0, 0);
        let at = w.buf.len();
        w.u32(0);
        let mut n = 0u32;
        for (i, s) in index.samples.iter().enumerate() {
            if s.sync {
                w.u32(i as u32 + 1);
                n += 1;
            }
        }
        w.patch_u32(at, n);
        w.end(stss);
    }

    let stsz = w.full(b"stsz", 0, 0);
    match plan.constant_size {
        Some(size) => {
            w.u32(size);
            w.u32(index.samples.len() as u32);
        }
        None => {
            w.u32(0);
            w.u32(index.samples.len() as u32);
            for s in &index.samples {
                w.u32(s.size);
            }
        }
    }
    w.end(stsz);

    let stsc = w.full(b"stsc", 0, 0);
    w.u32(plan.stsc.len() as u32);
    for &(first_chunk, per_chunk) in &plan.stsc {
        w.u32(first_chunk);
        w.u32(per_chunk);
        w.u32(1); // sample_description_index
    }
    w.end(stsc);

    let offsets = index
        .chunks
        .iter()
        .map(|&(at, _)| header_len.saturating_add(at));
    let co64 = index
        .chunks
        .last()
        .is_some_and(|&(at, _)| header_len.saturating_add(at) > u64::from(u32::MAX));
    let b = w.full(if co64 { b"co64" } else { b"stco" }, 0, 0);
    w.u32(index.chunks.len() as u32);
    for offset in offsets {
        if co64 {
            w.u64(offset);
        } else {
            w.u32(offset as u32);
        }
    }
    w.end(b);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boxes::testing::*;
    use crate::boxes::{signed_ticks, ticks};
    use proptest::prelude::*;
    use rill_media::{AudioCodec, VideoCodec};

    // ---- reading the tables back -------------------------------------------------------------

    fn be64(b: &[u8], at: usize) -> u64 {
        u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
    }

    /// A version 0 (32-bit) or 1 (64-bit) field at `at`, and where the next field starts.
    fn field(b: &[u8], at: usize, long: bool) -> (u64, usize) {
        if long {
            (be64(b, at), at + 8)
        } else {
            (u64::from(be32(b, at)), at + 4)
        }
    }

    /// Everything a `trak` says about its samples.
    #[derive(Debug, Default)]
    struct Table {
        id: u32,
        tkhd_duration: u64,
        timescale: u32,
        media_duration: u64,
        /// (segment_duration, media_time)
        elst: Option<Vec<(u64, i64)>>,
        stts: Vec<(u32, u32)>,
        ctts: Option<Vec<(u32, i32)>>,
        stss: Option<Vec<u32>>,
        /// stsz sample_size (0: the table follows) and the expanded sizes.
        constant_size: u32,
        sizes: Vec<u32>,
        stsc: Vec<(u32, u32, u32)>,
        co64: bool,
        offsets: Vec<u64>,
        stbl_names: Vec<String>,
    }

    impl Table {
        /// Samples per chunk, expanded from stsc.
        fn per_chunk(&self) -> Vec<u32> {
            (0..self.offsets.len() as u32)
                .map(|c| {
                    self.stsc
                        .iter()
                        .rev()
                        .find(|e| e.0 <= c + 1)
                        .map_or(0, |e| e.1)
                })
                .collect()
        }

        fn durations(&self) -> Vec<u32> {
            self.stts
                .iter()
                .flat_map(|&(n, d)| std::iter::repeat_n(d, n as usize))
                .collect()
        }

        fn offsets_cts(&self) -> Vec<i32> {
            match &self.ctts {
                Some(c) => c
                    .iter()
                    .flat_map(|&(n, o)| std::iter::repeat_n(o, n as usize))
                    .collect(),
                None => vec![0; self.sizes.len()],
            }
        }
    }

    struct Movie {
        top: Vec<String>,
        mvhd_timescale: u32,
        mvhd_duration: u64,
        next_track_id: u32,
        tables: Vec<Table>,
    }

    /// Splits a header into its boxes and the `mdat` header (whose payload is not there), and
    /// reads every table.
    fn parse_header(h: &[u8], data_size: u64) -> Movie {
        let mdat_len = if data_size >= MDAT_LARGESIZE_FROM {
            16
        } else {
            8
        };
        let (boxes_part, mdat) = h.split_at(h.len() - mdat_len);
        if mdat_len == 16 {
            assert_eq!(&mdat[..8], b"\0\0\0\x01mdat");
            assert_eq!(be64(mdat, 8), data_size + 16);
        } else {
            assert_eq!(be32(mdat, 0) as u64, data_size + 8);
            assert_eq!(&mdat[4..], b"mdat");
        }
        let top = boxes(boxes_part, 0);
        let mut names: Vec<String> = top.iter().map(|b| show(&b.name)).collect();
        names.push("mdat".into());
        assert_eq!(&top[0].payload[..8], b"isom\0\0\x02\0");
        let moov = &top[1];
        check_nesting(moov);
        let mvhd = child(moov, b"mvhd").payload;
        let long = mvhd[0] == 1;
        let at = if long { 20 } else { 12 };
        let (mvhd_timescale, at) = (be32(mvhd, at), at + 4);
        let (mvhd_duration, _) = field(mvhd, at, long);
        let next_track_id = be32(mvhd, mvhd.len() - 4);
        let tables = all(moov, b"trak").iter().map(read_trak).collect();
        Movie {
            top: names,
            mvhd_timescale,
            mvhd_duration,
            next_track_id,
            tables,
        }
    }

    fn read_trak(trak: &Bx<'_>) -> Table {
        let mut t = Table::default();
        let tkhd = child(trak, b"tkhd").payload;
        let long = tkhd[0] == 1;
        let at = if long { 20 } else { 12 };
        t.id = be32(tkhd, at);
        t.tkhd_duration = field(tkhd, at + 8, long).0;
        let names: Vec<_> = children(trak, 0).iter().map(|b| show(&b.name)).collect();
        if let Some(edts) = children(trak, 0).iter().find(|b| &b.name == b"edts") {
            assert_eq!(names, ["tkhd", "edts", "mdia"]);
            let elst = child(edts, b"elst").payload;
            let long = elst[0] == 1;
            let n = be32(elst, 4) as usize;
            let per = if long { 20 } else { 12 };
            assert_eq!(elst.len(), 8 + n * per);
            t.elst = Some(
                (0..n)
                    .map(|i| {
                        let at = 8 + i * per;
                        let (d, at) = field(elst, at, long);
                        let m = if long {
                            be64(elst, at) as i64
                        } else {
                            i64::from(be32(elst, at) as i32)
                        };
                        // media_rate 1.0
                        assert_eq!(be32(elst, at + per / 2 - 2), 0x0001_0000);
                        (d, m)
                    })
                    .collect(),
            );
        } else {
            assert_eq!(names, ["tkhd", "mdia"]);
        }
        let mdhd = path(trak, "mdia/mdhd").payload;
        let long = mdhd[0] == 1;
        let at = if long { 20 } else { 12 };
        t.timescale = be32(mdhd, at);
        t.media_duration = field(mdhd, at + 4, long).0;

        let stbl = path(trak, "mdia/minf/stbl");
        t.stbl_names = children(&stbl, 0).iter().map(|b| show(&b.name)).collect();
        let stts = child(&stbl, b"stts").payload;
        let n = be32(stts, 4) as usize;
        assert_eq!(stts.len(), 8 + 8 * n);
        t.stts = (0..n)
            .map(|i| (be32(stts, 8 + 8 * i), be32(stts, 12 + 8 * i)))
            .collect();
        if t.stbl_names.iter().any(|n| n == "ctts") {
            let ctts = child(&stbl, b"ctts").payload;
            assert_eq!(ctts[0], 1, "ctts version 1");
            let n = be32(ctts, 4) as usize;
            assert_eq!(ctts.len(), 8 + 8 * n);
            t.ctts = Some(
                (0..n)
                    .map(|i| (be32(ctts, 8 + 8 * i), be32(ctts, 12 + 8 * i) as i32))
                    .collect(),
            );
        }
        if t.stbl_names.iter().any(|n| n == "stss") {
            let stss = child(&stbl, b"stss").payload;
            let n = be32(stss, 4) as usize;
            assert_eq!(stss.len(), 8 + 4 * n);
            t.stss = Some((0..n).map(|i| be32(stss, 8 + 4 * i)).collect());
        }
        let stsz = child(&stbl, b"stsz").payload;
        t.constant_size = be32(stsz, 4);
        let n = be32(stsz, 8) as usize;
        if t.constant_size == 0 {
            assert_eq!(stsz.len(), 12 + 4 * n);
            t.sizes = (0..n).map(|i| be32(stsz, 12 + 4 * i)).collect();
        } else {
            assert_eq!(stsz.len(), 12);
            t.sizes = vec![t.constant_size; n];
        }
        let stsc = child(&stbl, b"stsc").payload;
        let n = be32(stsc, 4) as usize;
        assert_eq!(stsc.len(), 8 + 12 * n);
        t.stsc = (0..n)
            .map(|i| {
                let at = 8 + 12 * i;
                (be32(stsc, at), be32(stsc, at + 4), be32(stsc, at + 8))
            })
            .collect();
        t.co64 = t.stbl_names.iter().any(|n| n == "co64");
        let name: &[u8; 4] = if t.co64 { b"co64" } else { b"stco" };
        let co = child(&stbl, name).payload;
        let n = be32(co, 4) as usize;
        let per = if t.co64 { 8 } else { 4 };
        assert_eq!(co.len(), 8 + per * n);
        t.offsets = (0..n).map(|i| field(co, 8 + per * i, t.co64).0).collect();
        t
    }

    /// Checks that every sample's bytes sit where the tables say, in `file`.
    fn check_samples(file: &[u8], t: &Table, expected: &[Vec<u8>]) {
        assert_eq!(t.sizes.len(), expected.len());
        let mut s = 0;
        for (chunk, (&offset, &n)) in t.offsets.iter().zip(&t.per_chunk()).enumerate() {
            let mut at = offset as usize;
            for _ in 0..n {
                let len = t.sizes[s] as usize;
                assert_eq!(
                    &file[at..at + len],
                    &expected[s][..],
                    "track {} chunk {chunk} sample {s}",
                    t.id
                );
                at += len;
                s += 1;
            }
        }
        assert_eq!(s, expected.len(), "stsc covers every sample");
    }

    fn entry(dts: u64, cts: i32, sync: bool, data: &[u8]) -> (SampleEntry, Vec<u8>) {
        (
            SampleEntry {
                dts_ms: dts,
                cts_ms: cts,
                size: data.len() as u32,
                sync,
            },
            data.to_vec(),
        )
    }

    /// A chunk for [`build`]: track, samples with their bytes, end decode time.
    type TestChunk = (usize, Vec<(SampleEntry, Vec<u8>)>, u64);

    /// Builds the whole file from chunks.
    fn build(tracks: Vec<TrackInfo>, chunks: &[TestChunk]) -> (Vec<u8>, Movie) {
        let mut b = Mp4Builder::new(tracks).unwrap();
        let mut data = Vec::new();
        for (track, samples, end) in chunks {
            let entries: Vec<SampleEntry> = samples.iter().map(|s| s.0).collect();
            b.add_chunk(*track, &entries, *end);
            for (_, bytes) in samples {
                data.extend_from_slice(bytes);
            }
        }
        assert_eq!(b.data_size(), data.len() as u64);
        let header = b.header().unwrap();
        let movie = parse_header(&header, b.data_size());
        let mut file = header.to_vec();
        file.extend_from_slice(&data);
        let top = boxes(&file, 0);
        let names: Vec<_> = top.iter().map(|b| show(&b.name)).collect();
        assert_eq!(names, ["ftyp", "moov", "mdat"]);
        assert_eq!(top[2].payload, &data[..]);
        (file, movie)
    }

    // ---- tables ------------------------------------------------------------------------------

    #[test]
    fn tables_edit_lists_and_offsets() {
        let v1 = vec![
            entry(1000, 80, true, b"I-frame"),
            entry(1040, 120, false, b"P1"),
            entry(1080, 0, false, b"B"),
            entry(1120, -40, false, b"P2!"),
        ];
        let a1 = vec![
            entry(1000, 0, true, b"aac0"),
            entry(1023, 0, true, b"aac1"),
            entry(1046, 0, true, b"aac2"),
        ];
        let v2 = vec![entry(1160, 80, true, b"I2"), entry(1200, 0, false, b"P3")];
        let a2 = vec![
            entry(1070, 0, true, b"aac3"),
            entry(1093, 0, true, b"aac4"),
            entry(1116, 0, true, b"aac5"),
        ];
        let chunks = [
            (0, v1.clone(), 1160),
            (1, a1.clone(), 1070),
            (0, v2.clone(), 1240),
            (1, a2.clone(), 1139),
        ];
        let (file, m) = build(
            vec![
                video(VideoCodec::Avc, AVCC),
                audio(AudioCodec::Aac, ASC, 44_100, 2),
            ],
            &chunks,
        );
        assert_eq!(m.top, ["ftyp", "moov", "mdat"]);
        assert_eq!((m.mvhd_timescale, m.next_track_id), (1000, 3));
        let (v, a) = (&m.tables[0], &m.tables[1]);
        assert_eq!((v.id, a.id), (1, 2));

        // Video: 6 samples of 40 ms at 90 kHz, B-frame offsets (one negative), two sync samples.
        assert_eq!(
            v.stbl_names,
            ["stsd", "stts", "ctts", "stss", "stsz", "stsc", "stco"]
        );
        assert_eq!(v.timescale, 90_000);
        assert_eq!(v.stts, [(6, 3600)]);
        assert_eq!(v.media_duration, 6 * 3600);
        assert_eq!(
            v.ctts.as_deref(),
            Some(
                &[
                    (1, 7200),
                    (1, 10_800),
                    (1, 0),
                    (1, -3600),
                    (1, 7200),
                    (1, 0)
                ][..]
            )
        );
        assert_eq!(v.stss.as_deref(), Some(&[1, 5][..]));
        assert_eq!(v.constant_size, 0);
        assert_eq!(v.sizes, [7, 2, 1, 3, 2, 2]);
        assert_eq!(v.stsc, [(1, 4, 1), (2, 2, 1)]);
        // Video is first shown at 1080 ms, audio at 1000: an 80 ms empty edit, then the media
        // from the I-frame's composition time (7200 ticks), 240 ms of it.
        assert_eq!(v.elst.as_deref(), Some(&[(80, -1), (240, 7200)][..]));
        assert_eq!(v.tkhd_duration, 320);

        // Audio: durations are differences of absolute ticks (1000 ms = 44100, 1023 = 45114,
        // 1046 = 46128, 1070 = 47187, ..., 1139 = 50229), constant size, no ctts or stss.
        assert_eq!(a.stbl_names, ["stsd", "stts", "stsz", "stsc", "stco"]);
        assert_eq!(a.stts, [(2, 1014), (1, 1059), (3, 1014)]);
        assert_eq!(a.media_duration, 50_229 - 44_100);
        assert_eq!((a.constant_size, a.sizes.len()), (4, 6));
        assert_eq!(a.stsc, [(1, 3, 1)]);
        assert_eq!(a.elst.as_deref(), Some(&[(139, 0)][..]));
        assert_eq!(a.tkhd_duration, 139);
        assert_eq!(m.mvhd_duration, 320);

        // Chunks are laid out in the order they were added, right after the header.
        let header_len = file.len() - 7 - 2 - 1 - 3 - 12 - 4 - 12;
        assert_eq!(v.offsets, [header_len as u64, header_len as u64 + 25]);
        assert_eq!(a.offsets, [header_len as u64 + 13, header_len as u64 + 29]);
        let bytes = |c: &[&Vec<(SampleEntry, Vec<u8>)>]| -> Vec<Vec<u8>> {
            c.iter()
                .flat_map(|v| v.iter().map(|s| s.1.clone()))
                .collect()
        };
        check_samples(&file, v, &bytes(&[&v1, &v2]));
        check_samples(&file, a, &bytes(&[&a1, &a2]));
    }

    #[test]
    fn a_gap_between_chunks_lengthens_the_sample_before_it() {
        let chunks = [
            (
                0,
                vec![entry(0, 0, true, b"a"), entry(20, 0, true, b"b")],
                40,
            ),
            (0, vec![entry(100, 0, true, b"c")], 120),
        ];
        let (_, m) = build(vec![audio(AudioCodec::Mp3, b"", 48_000, 2)], &chunks);
        let t = &m.tables[0];
        assert_eq!(t.durations(), [960, 3840, 960]);
        assert_eq!(t.media_duration, 5760);
        assert_eq!(t.elst.as_deref(), Some(&[(120, 0)][..]));
        assert_eq!(t.stsc, [(1, 2, 1), (2, 1, 1)]);
    }

    #[test]
    fn tracks_without_composition_offsets_or_samples() {
        let chunks = [(
            0,
            vec![entry(500, 0, true, b"k1"), entry(540, 0, false, b"p1")],
            580,
        )];
        let (_, m) = build(
            vec![
                video(VideoCodec::Hevc, b"hvcc"),
                audio(AudioCodec::Opus, OPUS_HEAD, 48_000, 2),
            ],
            &chunks,
        );
        let (v, a) = (&m.tables[0], &m.tables[1]);
        // No ctts when every offset is 0; video keeps its stss.
        assert_eq!(
            v.stbl_names,
            ["stsd", "stts", "stss", "stsz", "stsc", "stco"]
        );
        assert_eq!(v.stss.as_deref(), Some(&[1][..]));
        assert_eq!(v.elst.as_deref(), Some(&[(80, 0)][..]));
        assert_eq!((v.constant_size, v.sizes.len()), (2, 2));
        // The Opus track has no samples: empty tables, no edit list, zero durations.
        assert_eq!(a.elst, None);
        assert!(a.stts.is_empty() && a.sizes.is_empty() && a.stsc.is_empty());
        assert!(a.offsets.is_empty());
        assert_eq!(
            (a.tkhd_duration, a.media_duration, a.timescale),
            (0, 0, 48_000)
        );
        assert_eq!(m.mvhd_duration, 80);
    }

    #[test]
    fn empty_movie_and_empty_chunks() {
        let mut b = Mp4Builder::new(vec![video(VideoCodec::Av1, b"\x81\x08\x0c\x00")]).unwrap();
        b.add_chunk(0, &[], 100);
        assert_eq!(b.tracks().len(), 1);
        assert_eq!(b.data_size(), 0);
        let h = b.header().unwrap();
        let m = parse_header(&h, 0);
        assert_eq!(m.mvhd_duration, 0);
        assert!(m.tables[0].offsets.is_empty());
        assert_eq!(m.tables[0].stss.as_deref(), Some(&[][..]));
    }

    #[test]
    fn zero_sized_samples_use_the_size_table() {
        let chunks = [(0, vec![entry(0, 0, true, b""), entry(23, 0, true, b"")], 46)];
        let (_, m) = build(vec![audio(AudioCodec::Aac, ASC, 44_100, 2)], &chunks);
        assert_eq!(m.tables[0].constant_size, 0);
        assert_eq!(m.tables[0].sizes, [0, 0]);
    }

    #[test]
    fn errors() {
        assert!(Mp4Builder::new(vec![]).is_err());
        assert_eq!(
            Mp4Builder::new(vec![video(VideoCodec::Vp6, b"")]).err(),
            Some(MuxError::UnsupportedCodec("vp6"))
        );
        let s = |dts, cts| SampleEntry {
            dts_ms: dts,
            cts_ms: cts,
            size: 10,
            sync: true,
        };
        let track = || vec![video(VideoCodec::Avc, AVCC)];

        // A chunk of a track that does not exist: its bytes still count, the header fails.
        let mut b = Mp4Builder::new(track()).unwrap();
        b.add_chunk(0, &[s(0, 0)], 40);
        b.add_chunk(1, &[s(40, 0)], 80);
        b.add_chunk(0, &[s(80, 0)], 120);
        assert_eq!(b.data_size(), 30);
        assert_eq!(
            b.header().err(),
            Some(MuxError::Malformed("track index out of range"))
        );

        // 2^32 ticks at 90 kHz is about 13 hours.
        let mut b = Mp4Builder::new(track()).unwrap();
        b.add_chunk(0, &[s(0, 0)], 48_000_000);
        assert_eq!(
            b.header().err(),
            Some(MuxError::Malformed("sample duration too long"))
        );
        let mut b = Mp4Builder::new(track()).unwrap();
        b.add_chunk(0, &[s(0, i32::MAX)], 40);
        assert_eq!(
            b.header().err(),
            Some(MuxError::Malformed("composition offset too large"))
        );
    }

    #[test]
    fn odd_timing_does_not_panic() {
        let s = |dts, cts| SampleEntry {
            dts_ms: dts,
            cts_ms: cts,
            size: 1,
            sync: false,
        };
        let mut b = Mp4Builder::new(vec![video(VideoCodec::Avc, AVCC)]).unwrap();
        // Backwards decode times give zero durations.
        b.add_chunk(0, &[s(100, -10), s(50, 0)], 0);
        let h = b.header().unwrap();
        let t = &parse_header(&h, 2).tables[0];
        assert_eq!(t.durations(), [0, 0]);
        assert_eq!(t.offsets_cts(), [-900, 0]);
        assert_eq!(t.elst.as_deref(), Some(&[(0, 0)][..]));
        let mut b = Mp4Builder::new(vec![video(VideoCodec::Avc, AVCC)]).unwrap();
        b.add_chunk(0, &[s(u64::MAX, i32::MIN)], u64::MAX);
        let _ = b.header();
    }

    // ---- 64-bit offsets and sizes ------------------------------------------------------------

    /// Track 0 gets chunks of `first` bytes, 1 byte and 4 GiB - 1 (so `mdat` always has a largesize);
    /// returns the header and the data size.
    fn large(first: u32) -> (Bytes, u64) {
        let s = |dts, size| SampleEntry {
            dts_ms: dts,
            cts_ms: 0,
            size,
            sync: true,
        };
        let mut b = Mp4Builder::new(vec![video(VideoCodec::Avc, AVCC)]).unwrap();
        b.add_chunk(0, &[s(0, first)], 40);
        b.add_chunk(0, &[s(40, 1)], 80);
        b.add_chunk(0, &[s(80, u32::MAX)], 120);
        (b.header().unwrap(), b.data_size())
    }

    #[test]
    fn co64_when_an_offset_needs_it() {
        // Small first chunk: every offset fits 32 bits, but the mdat needs a largesize.
        assert!(large(100).1 >= MDAT_LARGESIZE_FROM);
        let (h, size) = large(100);
        let m = parse_header(&h, size);
        let t = &m.tables[0];
        assert!(!t.co64);
        let len = h.len() as u64;
        assert_eq!(t.offsets, [len, len + 100, len + 101]);
        assert_eq!(t.sizes, [100, 1, u32::MAX]);

        // The last chunk ends exactly at 2^32 - 1 with stco: still stco.
        let stco_len = len;
        let fits = (u64::from(u32::MAX) - stco_len - 1) as u32;
        let (h, size) = large(fits);
        let t = &parse_header(&h, size).tables[0];
        assert!(!t.co64, "{:?} {} {}", t.offsets, h.len(), stco_len);
        assert_eq!(h.len() as u64, stco_len);
        assert_eq!(t.offsets[2], u64::from(u32::MAX));

        // One byte more: only the length of the stco header pushes the offset over, so the
        // header is rebuilt with co64 and its offsets account for its own, longer length.
        let (h, size) = large(fits + 1);
        let t = &parse_header(&h, size).tables[0];
        assert!(t.co64);
        let len = h.len() as u64;
        assert_eq!(len, stco_len + 3 * 4);
        assert_eq!(
            t.offsets,
            [len, len + u64::from(fits) + 1, len + u64::from(fits) + 2]
        );
    }

    #[test]
    fn mdat_header_size_boundary() {
        let s = |size| SampleEntry {
            dts_ms: 0,
            cts_ms: 0,
            size,
            sync: true,
        };
        for (data, long) in [
            (MDAT_LARGESIZE_FROM - 1, false),
            (MDAT_LARGESIZE_FROM, true),
        ] {
            let mut b = Mp4Builder::new(vec![audio(AudioCodec::Mp3, b"", 44_100, 2)]).unwrap();
            b.add_chunk(0, &[s(data as u32)], 26);
            let h = b.header().unwrap();
            let tail = &h[h.len() - if long { 16 } else { 8 }..];
            if long {
                assert_eq!(&tail[..8], b"\0\0\0\x01mdat");
                assert_eq!(be64(tail, 8), data + 16);
            } else {
                assert_eq!(be32(tail, 0), u32::MAX);
                assert_eq!(&tail[4..], b"mdat");
            }
            parse_header(&h, data);
        }
    }

    #[test]
    fn long_durations_use_version_1_boxes() {
        // 60 000 samples of 80 000 ms: 4.8e9 ms, past 32 bits in the movie timescale too.
        let samples: Vec<SampleEntry> = (0..60_000u64)
            .map(|i| SampleEntry {
                dts_ms: i * 80_000,
                cts_ms: 0,
                size: 1,
                sync: true,
            })
            .collect();
        let mut b = Mp4Builder::new(vec![audio(AudioCodec::Mp3, b"", 8_000, 1)]).unwrap();
        b.add_chunk(0, &samples, 60_000 * 80_000);
        let h = b.header().unwrap();
        let m = parse_header(&h, 60_000);
        let t = &m.tables[0];
        assert_eq!(m.mvhd_duration, 4_800_000_000);
        assert_eq!(t.tkhd_duration, 4_800_000_000);
        assert_eq!(t.media_duration, 38_400_000_000);
        assert_eq!(t.stts, [(60_000, 640_000)]);
        assert_eq!(t.elst.as_deref(), Some(&[(4_800_000_000, 0)][..]));
    }

    proptest! {
        #[test]
        fn chunks_parse_back(
            chunks in proptest::collection::vec(
                (0usize..2, proptest::collection::vec((0u64..60, -50i32..200, any::<bool>(), 0usize..30), 1..12)),
                0..16,
            ),
            start in 0u64..10_000_000_000,
            tail in 0u64..100,
        ) {
            let mut dts = [start, start + 7];
            let mut all_chunks = Vec::new();
            let mut expected: [Vec<Vec<u8>>; 2] = Default::default();
            let mut expected_entries: [Vec<SampleEntry>; 2] = Default::default();
            let mut ends = [0u64; 2];
            for (k, (track, samples)) in chunks.iter().enumerate() {
                let mut list = Vec::new();
                for (i, &(gap, cts, key, len)) in samples.iter().enumerate() {
                    dts[*track] += gap;
                    let cts = if *track == 1 { 0 } else { cts };
                    let data = vec![(k * 16 + i) as u8; len];
                    list.push(entry(dts[*track], cts, key, &data));
                    expected[*track].push(data);
                }
                expected_entries[*track].extend(list.iter().map(|s| s.0));
                ends[*track] = dts[*track] + tail;
                all_chunks.push((*track, list, ends[*track]));
            }
            let (file, m) = build(
                vec![video(VideoCodec::Avc, AVCC), audio(AudioCodec::Aac, ASC, 44_100, 1)],
                &all_chunks,
            );
            let first_pts: Vec<Option<u64>> = expected_entries
                .iter()
                .map(|e| e.first().map(|s| s.dts_ms + s.cts_ms.max(0) as u64))
                .collect();
            let movie_start = first_pts.iter().flatten().min().copied();
            let mut max_total = 0;
            for (i, t) in m.tables.iter().enumerate() {
                let entries = &expected_entries[i];
                check_samples(&file, t, &expected[i]);
                let chunks_of_track = all_chunks.iter().filter(|c| c.0 == i).count();
                prop_assert_eq!(t.offsets.len(), chunks_of_track);
                prop_assert_eq!(t.per_chunk().iter().map(|&n| n as usize).sum::<usize>(), entries.len());
                let scale = u64::from(t.timescale);
                if let Some(first) = entries.first() {
                    // Decode times are monotonic here, so the durations add up to the span.
                    let total: u64 = t.durations().iter().map(|&d| u64::from(d)).sum();
                    prop_assert_eq!(total, ticks(ends[i], scale) - ticks(first.dts_ms, scale));
                    prop_assert_eq!(t.media_duration, total);
                    let mut at = ticks(first.dts_ms, scale);
                    for ((s, d), c) in entries.iter().zip(t.durations()).zip(t.offsets_cts()) {
                        prop_assert_eq!(at, ticks(s.dts_ms, scale));
                        let pts = s.dts_ms as i64 + i64::from(s.cts_ms);
                        prop_assert_eq!(
                            at as i128 + i128::from(c),
                            signed_ticks(i128::from(pts), scale)
                        );
                        at += u64::from(d);
                    }
                    let elst = t.elst.clone().unwrap();
                    let empty = first_pts[i].unwrap() - movie_start.unwrap();
                    let media_time = if first.cts_ms > 0 { i64::from(t.offsets_cts()[0]) } else { 0 };
                    if empty > 0 {
                        prop_assert_eq!(elst[0], (empty, -1));
                    }
                    prop_assert_eq!(elst.last().unwrap().1, media_time);
                    prop_assert_eq!(elst.len(), 1 + usize::from(empty > 0));
                    prop_assert_eq!(t.tkhd_duration, elst.iter().map(|e| e.0).sum::<u64>());
                    max_total = max_total.max(t.tkhd_duration);
                } else {
                    prop_assert!(t.elst.is_none());
                }
                let syncs: Vec<u32> = (1..=entries.len() as u32).filter(|&n| entries[n as usize - 1].sync).collect();
                if i == 0 {
                    prop_assert_eq!(t.stss.clone().unwrap(), syncs);
                } else {
                    prop_assert!(t.stss.is_none());
                }
            }
            prop_assert_eq!(m.mvhd_duration, max_total);
        }
    }

    // ---- end to end with ffmpeg -------------------------------------------------------------

    mod e2e {
        use super::*;
        use crate::sample::Sample;
        use std::path::Path;

        fn entries(samples: &[Sample]) -> Vec<SampleEntry> {
            samples
                .iter()
                .map(|s| SampleEntry {
                    dts_ms: s.dts_ms,
                    cts_ms: s.cts_ms,
                    size: s.data.len() as u32,
                    sync: s.keyframe,
                })
                .collect()
        }

        /// Writes `x.mp4` (video and audio) and `v.mp4` (video only) from `flv`, one chunk per
        /// GOP per track, the way a recording is finished: header, then the chunks' bytes.
        fn remux(flv: &Path, dir: &Path, e: &Expect) -> (Demuxed, Vec<u8>) {
            let d = demux_flv(flv, e);
            let mut both = Mp4Builder::new(vec![d.vtrack.clone(), d.atrack.clone()]).unwrap();
            let mut video_only = Mp4Builder::new(vec![d.vtrack.clone()]).unwrap();
            let (mut both_data, mut video_data) = (Vec::new(), Vec::new());
            for g in gops(&d, e) {
                let (v, a) = (&d.video[g.video], &d.audio[g.audio]);
                both.add_chunk(0, &entries(v), g.video_end_ms);
                both.add_chunk(1, &entries(a), g.audio_end_ms);
                video_only.add_chunk(0, &entries(v), g.video_end_ms);
                for s in v.iter().chain(a) {
                    both_data.extend_from_slice(&s.data);
                }
                for s in v {
                    video_data.extend_from_slice(&s.data);
                }
            }
            let write = |b: &Mp4Builder, data: &[u8], name: &str| {
                assert_eq!(b.data_size(), data.len() as u64);
                let mut file = b.header().unwrap().to_vec();
                file.extend_from_slice(data);
                std::fs::write(dir.join(name), &file).unwrap();
                file
            };
            let file = write(&both, &both_data, "x.mp4");
            write(&video_only, &video_data, "v.mp4");
            (d, file)
        }

        /// The first `best_effort_timestamp_time` of the selected stream, in ms.
        fn first_frame_ms(file: &Path, stream: &str) -> f64 {
            let json = ffprobe(
                &[
                    "-select_streams",
                    stream,
                    "-read_intervals",
                    "%+#1",
                    "-show_frames",
                    "-show_entries",
                    "frame=best_effort_timestamp_time",
                ],
                file,
            );
            let key = "\"best_effort_timestamp_time\":\"";
            let at = json
                .find(key)
                .unwrap_or_else(|| panic!("no frame in {json}"))
                + key.len();
            let secs: f64 = json[at..].split('"').next().unwrap().parse().unwrap();
            secs * 1000.0
        }

        fn assert_ms(got: f64, expected: f64, what: &str) {
            assert!(
                (got - expected).abs() < 0.5,
                "{what} at {got} ms, not {expected}"
            );
        }

        fn format_duration(json: &str) -> f64 {
            let format = &json[json.find("\"format\":").unwrap()..];
            let key = "\"duration\":\"";
            let at = format.find(key).unwrap() + key.len();
            format[at..].split('"').next().unwrap().parse().unwrap()
        }

        fn round_trip(ffmpeg: &str, name: &str, size: &str, v: &[&str], a: &[&str], e: Expect) {
            let dir = tempdir(&format!("mp4-{name}"));
            let flv = make_flv(ffmpeg, &dir, size, v, a);
            let (d, file) = remux(&flv, &dir, &e);
            let x = dir.join("x.mp4");

            let top: Vec<_> = boxes(&file, 0).iter().map(|b| show(&b.name)).collect();
            assert_eq!(top, ["ftyp", "moov", "mdat"]);
            let json = probe_streams(&x, &e);
            let duration = format_duration(&json);
            assert!((duration - 4.0).abs() <= 0.1, "lasts {duration} s: {json}");
            ffmpeg_clean_both(ffmpeg, &x);

            // The edit lists start each track at its first presentation time, and the earliest
            // track at 0: video and audio keep the offset they had in the FLV.
            let pts = |s: &Sample| s.dts_ms as f64 + f64::from(s.cts_ms.max(0));
            let (v0, a0) = (pts(&d.video[0]), pts(&d.audio[0]));
            let start = v0.min(a0);
            assert_ms(first_frame_ms(&x, "v"), v0 - start, "first video frame");
            // ffmpeg drops the Opus pre-skip (dOps) itself, which delays the first audio frame.
            let pre_skip = if e.acodec == "opus" {
                f64::from(u16::from_le_bytes([
                    d.atrack.config[10],
                    d.atrack.config[11],
                ])) / 48.0
            } else {
                0.0
            };
            assert_ms(
                first_frame_ms(&x, "a"),
                a0 - start + pre_skip,
                "first audio frame",
            );
            // Alone, the video starts at 0 although its first frame is decoded before it is
            // shown (B-frames): the edit list skips the composition offset.
            let v = dir.join("v.mp4");
            assert_ms(first_frame_ms(&v, "v"), 0.0, "first video frame alone");
            let json = ffprobe(&["-show_streams", "-count_frames"], &v);
            assert!(json.contains("\"nb_read_frames\":\"100\""), "{json}");
            ffmpeg_clean("ffmpeg", &v);
            let _ = std::fs::remove_dir_all(&dir);
        }

        #[test]
        fn h264_aac_from_debian_ffmpeg() {
            if system_ffmpeg().is_none() {
                return;
            }
            let v = ["-c:v", "libx264", "-bf", "2"];
            let a = ["-c:a", "aac"];
            round_trip("ffmpeg", "avc", "640x360", &v, &a, Expect::h264_aac());
        }

        #[test]
        fn hevc_opus_from_modern_ffmpeg() {
            modern_round_trip("hevc", &HEVC_ARGS, "hevc", round_trip);
        }

        #[test]
        fn av1_opus_from_modern_ffmpeg() {
            modern_round_trip("av1", &AV1_ARGS, "av1", round_trip);
        }
    }
}
