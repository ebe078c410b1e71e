//! Fragmented MP4 (CMAF) writer: an init segment (`ftyp` + `moov` with `mvex`) and fragments
//! (`moof` + `mdat`), for H.264, HEVC, AV1, VP9, AAC, Opus and MP3 tracks. Used for HLS fMP4
//! segments and LL-HLS parts, and DASH.
//!
//! Boxes follow ISO/IEC 14496-12 (ISOBMFF), 14496-14 (`esds`), 14496-15 (`avcC`/`hvcC`), the AV1
//! and VP9 ISOBMFF bindings, and the Opus-in-ISOBMFF mapping (`dOps`). Every track and run is
//! validated before a byte is written, so sizes always fit their 32-bit fields.

use bytes::Bytes;
use rill_media::{AudioCodec, VideoCodec};

use crate::sample::{Sample, TrackKind};
use crate::track::{TrackCodec, TrackInfo};
use crate::MuxError;

/// Samples of one track for one fragment.
#[derive(Debug, Clone, Copy)]
pub struct TrackRun<'a> {
    /// Index into the writer's tracks (track id is index + 1).
    pub track: usize,
    /// In decode order.
    pub samples: &'a [Sample],
    /// Decode time (ms) where the next fragment's first sample of this track starts: gives the
    /// last sample its duration.
    pub end_dts_ms: u64,
}

/// The most tracks a writer accepts: far beyond any live stream, and it keeps the init segment
/// small enough that its box sizes can never overflow.
pub const MAX_TRACKS: usize = 64;

/// The largest codec configuration record accepted; real ones are at most a few kilobytes.
pub const MAX_CONFIG_LEN: usize = 1 << 20;

/// `trun` sample flags of a sync sample: sample_depends_on = 2 (depends on no other sample).
pub const SAMPLE_FLAGS_SYNC: u32 = 0x0200_0000;
/// `trun` sample flags of a non-sync sample: sample_depends_on = 1, sample_is_non_sync_sample = 1.
pub const SAMPLE_FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// `tfhd` flag: data offsets are relative to the start of the enclosing `moof`.
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
const TRUN_DATA_OFFSET: u32 = 0x001;
const TRUN_DURATION: u32 = 0x100;
const TRUN_SIZE: u32 = 0x200;
const TRUN_FLAGS: u32 = 0x400;
const TRUN_CTO: u32 = 0x800;

/// The sample entry of a track, decided (and its record checked) once in [`Fmp4Writer::new`].
#[derive(Debug, Clone)]
enum Entry {
    Avc,
    Hevc,
    Av1,
    /// The VPCodecConfigurationRecord without the FullBox version/flags header.
    Vp9(Bytes),
    Aac,
    Mp3,
    /// The `dOps` payload, already converted from the OpusHead.
    Opus {
        dops: Vec<u8>,
        channels: u8,
    },
}

/// Writes an fMP4 presentation.
pub struct Fmp4Writer {
    tracks: Vec<TrackInfo>,
    entries: Vec<Entry>,
    sequence: u32,
}

impl Fmp4Writer {
    pub fn new(tracks: Vec<TrackInfo>) -> Result<Fmp4Writer, MuxError> {
        if tracks.is_empty() {
            return Err(MuxError::Malformed("presentation without tracks"));
        }
        if tracks.len() > MAX_TRACKS {
            return Err(MuxError::Malformed("too many tracks"));
        }
        let entries = tracks.iter().map(entry).collect::<Result<Vec<_>, _>>()?;
        Ok(Fmp4Writer {
            tracks,
            entries,
            sequence: 0,
        })
    }

    pub fn tracks(&self) -> &[TrackInfo] {
        &self.tracks
    }

    /// `ftyp` + `moov`.
    pub fn init_segment(&self) -> Bytes {
        let mut w = BoxWriter::default();
        let ftyp = w.start(b"ftyp");
        w.put(b"iso6");
        w.u32(0);
        for brand in [b"iso6", b"cmfc", b"mp41", b"iso5", b"dash"] {
            w.put(brand);
        }
        w.end(ftyp);

        let moov = w.start(b"moov");
        let mvhd = w.full(b"mvhd", 0, 0);
        w.u32(0); // creation_time
        w.u32(0); // modification_time
        w.u32(1000); // timescale
        w.u32(0); // duration: unknown, the presentation is fragmented
        w.u32(0x0001_0000); // rate 1.0
        w.u16(0x0100); // volume 1.0
        w.zeros(10);
        w.matrix();
        w.zeros(24); // pre_defined
        w.u32(self.tracks.len() as u32 + 1); // next_track_ID (bounded by MAX_TRACKS)
        w.end(mvhd);
        for (i, (track, entry)) in self.tracks.iter().zip(&self.entries).enumerate() {
            write_trak(&mut w, i as u32 + 1, track, entry);
        }
        let mvex = w.start(b"mvex");
        for i in 0..self.tracks.len() {
            let trex = w.full(b"trex", 0, 0);
            w.u32(i as u32 + 1);
            w.u32(1); // default_sample_description_index
            w.u32(0); // default_sample_duration
            w.u32(0); // default_sample_size
            w.u32(0); // default_sample_flags
            w.end(trex);
        }
        w.end(mvex);
        w.end(moov);
        Bytes::from(w.buf)
    }

    /// One `moof` + `mdat` with the given runs; sequence numbers increase by one per call.
    pub fn fragment(&mut self, runs: &[TrackRun<'_>]) -> Result<Bytes, MuxError> {
        let mut plans = Vec::with_capacity(runs.len());
        // Everything is checked and timed before writing, so an error leaves no state behind.
        let mut payload: u64 = 0;
        for run in runs {
            if run.samples.is_empty() {
                continue;
            }
            let track = self
                .tracks
                .get(run.track)
                .ok_or(MuxError::Malformed("track index out of range"))?;
            let plan = plan_run(track, run)?;
            payload = payload.saturating_add(plan.bytes);
            plans.push((run.track, plan, run.samples));
        }
        if plans.is_empty() {
            return Err(MuxError::Malformed("fragment without samples"));
        }
        let moof_len: u64 = 8
            + 16
            + plans
                .iter()
                .map(|(_, p, _)| {
                    let entry = if p.cto.is_some() { 16 } else { 12 };
                    8 + 16 + 20 + 20 + entry * p.durations.len() as u64
                })
                .sum::<u64>();
        // data_offset is a signed 32-bit field, so the whole fragment stays below 2 GiB; that
        // also keeps the mdat size within its 32-bit header.
        let total = moof_len.saturating_add(8).saturating_add(payload);
        if total > i32::MAX as u64 {
            return Err(MuxError::Malformed("fragment larger than 2 GiB"));
        }
        let sequence = self.sequence.wrapping_add(1);

        let mut w = BoxWriter::default();
        w.buf.reserve(total as usize);
        let moof = w.start(b"moof");
        let mfhd = w.full(b"mfhd", 0, 0);
        w.u32(sequence);
        w.end(mfhd);
        let mut offsets = Vec::with_capacity(plans.len());
        for (track, plan, _) in &plans {
            let traf = w.start(b"traf");
            let tfhd = w.full(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF);
            w.u32(*track as u32 + 1);
            w.end(tfhd);
            let tfdt = w.full(b"tfdt", 1, 0);
            w.u64(plan.base_time);
            w.end(tfdt);
            let mut flags = TRUN_DATA_OFFSET | TRUN_DURATION | TRUN_SIZE | TRUN_FLAGS;
            let version = if plan.cto.is_some() {
                flags |= TRUN_CTO;
                1
            } else {
                0
            };
            let trun = w.full(b"trun", version, flags);
            w.u32(plan.durations.len() as u32);
            offsets.push(w.buf.len());
            w.u32(0); // data_offset, patched once the moof size is known
            for (i, &duration) in plan.durations.iter().enumerate() {
                w.u32(duration);
                w.u32(plan.sizes.get(i).copied().unwrap_or(0));
                w.u32(plan.flags.get(i).copied().unwrap_or(SAMPLE_FLAGS_SYNC));
                if let Some(cto) = &plan.cto {
                    w.u32(cto.get(i).copied().unwrap_or(0) as u32);
                }
            }
            w.end(trun);
            w.end(traf);
        }
        w.end(moof);

        let mut data_offset = w.buf.len() as u64 + 8;
        for ((_, plan, _), at) in plans.iter().zip(offsets) {
            // Checked against i32::MAX above.
            w.patch_u32(at, data_offset as u32);
            data_offset += plan.bytes;
        }
        let mdat = w.start(b"mdat");
        for s in plans.iter().flat_map(|(_, _, samples)| samples.iter()) {
            w.put(&s.data);
        }
        w.end(mdat);
        self.sequence = sequence;
        Ok(Bytes::from(w.buf))
    }
}

/// A run's timing and sizes, computed before anything is written.
struct RunPlan {
    base_time: u64,
    durations: Vec<u32>,
    sizes: Vec<u32>,
    flags: Vec<u32>,
    /// Composition time offsets (video tracks only).
    cto: Option<Vec<i32>>,
    bytes: u64,
}

fn plan_run(track: &TrackInfo, run: &TrackRun<'_>) -> Result<RunPlan, MuxError> {
    let scale = u64::from(track.timescale);
    let video = track.kind == TrackKind::Video;
    let n = run.samples.len();
    let mut plan = RunPlan {
        base_time: 0,
        durations: Vec::with_capacity(n),
        sizes: Vec::with_capacity(n),
        flags: Vec::with_capacity(n),
        cto: video.then(|| Vec::with_capacity(n)),
        bytes: 0,
    };
    for (i, s) in run.samples.iter().enumerate() {
        if s.kind != track.kind {
            return Err(MuxError::Malformed("sample kind does not match its track"));
        }
        let next_ms = run.samples.get(i + 1).map_or(run.end_dts_ms, |n| n.dts_ms);
        // Durations are differences of absolute tick times, so rounding never accumulates.
        let start = ticks(s.dts_ms, scale);
        if i == 0 {
            plan.base_time = start;
        }
        let duration = ticks(next_ms, scale).saturating_sub(start);
        plan.durations.push(
            u32::try_from(duration).map_err(|_| MuxError::Malformed("sample duration too long"))?,
        );
        let size = u32::try_from(s.data.len())
            .map_err(|_| MuxError::Malformed("sample larger than 4 GiB"))?;
        plan.sizes.push(size);
        plan.bytes += u64::from(size);
        // Every AAC, Opus and MP3 frame is a sync sample, whatever the caller marked.
        plan.flags.push(if s.keyframe || !video {
            SAMPLE_FLAGS_SYNC
        } else {
            SAMPLE_FLAGS_NON_SYNC
        });
        if let Some(cto) = &mut plan.cto {
            let dts = i128::from(s.dts_ms);
            let pts = dts + i128::from(s.cts_ms);
            let offset = signed_ticks(pts, scale) - signed_ticks(dts, scale);
            cto.push(
                i32::try_from(offset)
                    .map_err(|_| MuxError::Malformed("composition offset too large"))?,
            );
        }
    }
    Ok(plan)
}

/// Milliseconds to ticks, rounding down like [`TrackInfo::ticks`] but without overflowing.
fn ticks(ms: u64, timescale: u64) -> u64 {
    let t = u128::from(ms) * u128::from(timescale) / 1000;
    u64::try_from(t).unwrap_or(u64::MAX)
}

/// [`ticks`] for possibly negative times (presentation times before zero), rounding toward minus
/// infinity so that offsets agree with [`ticks`] for positive times.
fn signed_ticks(ms: i128, timescale: u64) -> i128 {
    (ms * i128::from(timescale)).div_euclid(1000)
}

/// Chooses the sample entry of a track and checks its configuration record.
fn entry(track: &TrackInfo) -> Result<Entry, MuxError> {
    if track.config.len() > MAX_CONFIG_LEN {
        return Err(MuxError::Malformed("codec configuration too large"));
    }
    if track.timescale == 0 {
        return Err(MuxError::Malformed("timescale of zero"));
    }
    let need_config = |what| {
        if track.config.is_empty() {
            Err(MuxError::Malformed(what))
        } else {
            Ok(())
        }
    };
    let entry = match (track.kind, track.codec) {
        (TrackKind::Video, TrackCodec::Video(v)) => match v {
            VideoCodec::Avc => need_config("missing avcC").map(|_| Entry::Avc)?,
            VideoCodec::Hevc => need_config("missing hvcC").map(|_| Entry::Hevc)?,
            VideoCodec::Av1 => need_config("missing av1C").map(|_| Entry::Av1)?,
            VideoCodec::Vp9 => Entry::Vp9(vpcc_record(&track.config)?),
            other => return Err(MuxError::UnsupportedCodec(other.name())),
        },
        (TrackKind::Audio, TrackCodec::Audio(a)) => match a {
            AudioCodec::Aac => need_config("missing AudioSpecificConfig").map(|_| Entry::Aac)?,
            AudioCodec::Mp3 => Entry::Mp3,
            AudioCodec::Opus => {
                let (dops, channels) = dops_from_opus_head(&track.config)?;
                Entry::Opus { dops, channels }
            }
            other => return Err(MuxError::UnsupportedCodec(other.name())),
        },
        _ => return Err(MuxError::Malformed("track kind does not match its codec")),
    };
    Ok(entry)
}

/// The VPCodecConfigurationRecord (8 bytes + codec initialization data). Enhanced RTMP senders
/// (ffmpeg among them) include the `vpcC` FullBox version/flags in front of it, others may not:
/// the record's own length field tells which.
fn vpcc_record(config: &Bytes) -> Result<Bytes, MuxError> {
    let fits = |rec: &[u8]| match rec.get(6..8) {
        Some(n) => rec.len() == 8 + usize::from(u16::from_be_bytes([n[0], n[1]])),
        None => false,
    };
    if config.len() >= 12 && config[0] == 1 && config[1..4] == [0, 0, 0] && fits(&config[4..]) {
        Ok(config.slice(4..))
    } else if fits(config) {
        Ok(config.clone())
    } else {
        Err(MuxError::Malformed("vpcC"))
    }
}

/// Converts an OpusHead (RFC 7845, little-endian) into the `dOps` payload (Opus in ISOBMFF,
/// big-endian); also returns the output channel count for the sample entry.
pub fn dops_from_opus_head(head: &[u8]) -> Result<(Vec<u8>, u8), MuxError> {
    const ERR: MuxError = MuxError::Malformed("OpusHead");
    if head.len() < 19 || &head[..8] != b"OpusHead" {
        return Err(ERR);
    }
    let channels = head[9];
    let pre_skip = u16::from_le_bytes([head[10], head[11]]);
    let rate = u32::from_le_bytes([head[12], head[13], head[14], head[15]]);
    let gain = i16::from_le_bytes([head[16], head[17]]);
    let family = head[18];
    if channels == 0 {
        return Err(ERR);
    }
    let mut dops = Vec::with_capacity(11 + 2 + usize::from(channels));
    dops.push(0); // Version
    dops.push(channels);
    dops.extend_from_slice(&pre_skip.to_be_bytes());
    dops.extend_from_slice(&rate.to_be_bytes());
    dops.extend_from_slice(&gain.to_be_bytes());
    dops.push(family);
    if family != 0 {
        // StreamCount, CoupledCount and one mapping byte per output channel.
        let table = head.get(19..21 + usize::from(channels)).ok_or(ERR)?;
        dops.extend_from_slice(table);
    }
    Ok((dops, channels))
}

fn write_trak(w: &mut BoxWriter, id: u32, track: &TrackInfo, entry: &Entry) {
    let video = track.kind == TrackKind::Video;
    let trak = w.start(b"trak");
    // track_enabled | track_in_movie
    let tkhd = w.full(b"tkhd", 0, 3);
    w.u32(0);
    w.u32(0);
    w.u32(id);
    w.u32(0);
    w.u32(0); // duration
    w.zeros(8);
    w.u16(0); // layer
    w.u16(0); // alternate_group
    w.u16(if video { 0 } else { 0x0100 });
    w.u16(0);
    w.matrix();
    let (width, height) = if video {
        (track.width.min(0xFFFF), track.height.min(0xFFFF))
    } else {
        (0, 0)
    };
    w.u32(width << 16);
    w.u32(height << 16);
    w.end(tkhd);

    let mdia = w.start(b"mdia");
    let mdhd = w.full(b"mdhd", 0, 0);
    w.u32(0);
    w.u32(0);
    w.u32(track.timescale);
    w.u32(0);
    w.u16(0x55C4); // language "und", packed ISO-639-2/T
    w.u16(0);
    w.end(mdhd);
    let hdlr = w.full(b"hdlr", 0, 0);
    w.u32(0);
    w.put(if video { b"vide" } else { b"soun" });
    w.zeros(12);
    w.put(if video {
        b"VideoHandler\0"
    } else {
        b"SoundHandler\0"
    });
    w.end(hdlr);

    let minf = w.start(b"minf");
    if video {
        let vmhd = w.full(b"vmhd", 0, 1);
        w.zeros(8); // graphicsmode, opcolor
        w.end(vmhd);
    } else {
        let smhd = w.full(b"smhd", 0, 0);
        w.zeros(4); // balance, reserved
        w.end(smhd);
    }
    let dinf = w.start(b"dinf");
    let dref = w.full(b"dref", 0, 0);
    w.u32(1);
    // flags 1: the media data is in this file.
    let url = w.full(b"url ", 0, 1);
    w.end(url);
    w.end(dref);
    w.end(dinf);

    let stbl = w.start(b"stbl");
    let stsd = w.full(b"stsd", 0, 0);
    w.u32(1);
    write_sample_entry(w, track, entry);
    w.end(stsd);
    for name in [b"stts", b"stsc", b"stco"] {
        let b = w.full(name, 0, 0);
        w.u32(0);
        w.end(b);
    }
    let stsz = w.full(b"stsz", 0, 0);
    w.u32(0); // sample_size
    w.u32(0); // sample_count
    w.end(stsz);
    w.end(stbl);
    w.end(minf);
    w.end(mdia);
    w.end(trak);
}

fn write_sample_entry(w: &mut BoxWriter, track: &TrackInfo, entry: &Entry) {
    let visual = |w: &mut BoxWriter, name: &[u8; 4]| {
        let b = w.start(name);
        w.zeros(6);
        w.u16(1); // data_reference_index
        w.zeros(16); // pre_defined, reserved, pre_defined[3]
        w.u16(track.width.min(0xFFFF) as u16);
        w.u16(track.height.min(0xFFFF) as u16);
        w.u32(0x0048_0000); // 72 dpi
        w.u32(0x0048_0000);
        w.u32(0);
        w.u16(1); // frame_count
        w.zeros(32); // compressorname
        w.u16(0x0018); // depth
        w.u16(0xFFFF); // pre_defined = -1
        b
    };
    let audio = |w: &mut BoxWriter, name: &[u8; 4], channels: u8, rate: u32| {
        let b = w.start(name);
        w.zeros(6);
        w.u16(1);
        w.zeros(8);
        w.u16(u16::from(channels.max(1)));
        w.u16(16); // samplesize
        w.u32(0); // pre_defined, reserved
                  // 16.16 fixed point: rates above 65535 Hz cannot be expressed and are written as 0.
        w.u32(if rate <= 0xFFFF { rate << 16 } else { 0 });
        b
    };
    match entry {
        Entry::Avc | Entry::Hevc | Entry::Av1 => {
            let (name, cfg): (&[u8; 4], &[u8; 4]) = match entry {
                Entry::Avc => (b"avc1", b"avcC"),
                Entry::Hevc => (b"hvc1", b"hvcC"),
                _ => (b"av01", b"av1C"),
            };
            let b = visual(w, name);
            let c = w.start(cfg);
            w.put(&track.config);
            w.end(c);
            w.end(b);
        }
        Entry::Vp9(record) => {
            let b = visual(w, b"vp09");
            let c = w.full(b"vpcC", 1, 0);
            w.put(record);
            w.end(c);
            w.end(b);
        }
        Entry::Aac | Entry::Mp3 => {
            let b = audio(w, b"mp4a", track.channels, track.sample_rate);
            let (oti, dsi): (u8, &[u8]) = match entry {
                Entry::Aac => (0x40, &track.config),
                _ => (0x6B, &[]),
            };
            write_esds(w, oti, dsi);
            w.end(b);
        }
        Entry::Opus { dops, channels } => {
            // Opus always decodes at 48 kHz, whatever the input rate in the header says.
            let b = audio(w, b"Opus", *channels, 48_000);
            let c = w.start(b"dOps");
            w.put(dops);
            w.end(c);
            w.end(b);
        }
    }
}

/// `esds`: ES_Descriptor { DecoderConfigDescriptor { DecoderSpecificInfo }, SLConfigDescriptor }.
fn write_esds(w: &mut BoxWriter, object_type: u8, dsi: &[u8]) {
    let esds = w.full(b"esds", 0, 0);
    let dsi_len = if dsi.is_empty() {
        0
    } else {
        descriptor_len(dsi.len())
    };
    let dcd_len = 13 + dsi_len;
    let es_len = 3 + descriptor_len(dcd_len) + descriptor_len(1);
    descriptor_header(w, 0x03, es_len);
    w.u16(0); // ES_ID
    w.u8(0); // no stream dependence, URL or OCR stream
    descriptor_header(w, 0x04, dcd_len);
    w.u8(object_type);
    w.u8(0x15); // streamType audio (5) << 2 | reserved 1
    w.zeros(3); // bufferSizeDB
    w.u32(0); // maxBitrate
    w.u32(0); // avgBitrate
    if !dsi.is_empty() {
        descriptor_header(w, 0x05, dsi.len());
        w.put(dsi);
    }
    descriptor_header(w, 0x06, 1);
    w.u8(2); // predefined: MP4
    w.end(esds);
}

/// Size of a descriptor with `payload` bytes, including its tag and expandable length.
fn descriptor_len(payload: usize) -> usize {
    1 + length_bytes(payload) + payload
}

fn length_bytes(len: usize) -> usize {
    match len {
        0..=0x7F => 1,
        0x80..=0x3FFF => 2,
        0x4000..=0x1F_FFFF => 3,
        _ => 4,
    }
}

/// Tag and expandable size (7 bits per byte, high bit = more). Lengths are bounded by
/// [`MAX_CONFIG_LEN`], well under the 28 bits four bytes can carry.
fn descriptor_header(w: &mut BoxWriter, tag: u8, len: usize) {
    w.u8(tag);
    let n = length_bytes(len);
    for i in (0..n).rev() {
        let more = if i > 0 { 0x80 } else { 0 };
        w.u8(((len >> (7 * i)) & 0x7F) as u8 | more);
    }
}

/// Appends boxes to a buffer; a box's size is patched in when it ends.
#[derive(Default)]
struct BoxWriter {
    buf: Vec<u8>,
}

impl BoxWriter {
    fn start(&mut self, name: &[u8; 4]) -> usize {
        let at = self.buf.len();
        self.u32(0);
        self.put(name);
        at
    }

    fn full(&mut self, name: &[u8; 4], version: u8, flags: u32) -> usize {
        let at = self.start(name);
        self.u32((u32::from(version) << 24) | (flags & 0xFF_FFFF));
        at
    }

    /// Callers check sizes beforehand; an impossible overflow saturates instead of panicking.
    fn end(&mut self, at: usize) {
        let size = u32::try_from(self.buf.len() - at).unwrap_or(u32::MAX);
        self.patch_u32(at, size);
    }

    fn patch_u32(&mut self, at: usize, v: u32) {
        if let Some(dst) = self.buf.get_mut(at..at + 4) {
            dst.copy_from_slice(&v.to_be_bytes());
        }
    }

    fn put(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }

    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    fn u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.put(&v.to_be_bytes());
    }

    /// The identity transformation matrix of `mvhd` and `tkhd`.
    fn matrix(&mut self) {
        for v in [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000u32] {
            self.u32(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // ---- a tiny box reader -------------------------------------------------------------------

    /// A box: its type, where it starts, and its payload (after the 8-byte header).
    #[derive(Debug, Clone)]
    struct Bx<'a> {
        name: [u8; 4],
        start: usize,
        payload: &'a [u8],
        payload_start: usize,
    }

    /// Parses consecutive boxes; the sizes must tile `data` exactly.
    fn boxes(data: &[u8], base: usize) -> Vec<Bx<'_>> {
        let mut out = Vec::new();
        let mut p = 0;
        while p < data.len() {
            let size = u32::from_be_bytes(data[p..p + 4].try_into().unwrap()) as usize;
            assert!(
                size >= 8 && p + size <= data.len(),
                "bad box size {size} at {p}"
            );
            out.push(Bx {
                name: data[p + 4..p + 8].try_into().unwrap(),
                start: base + p,
                payload: &data[p + 8..p + size],
                payload_start: base + p + 8,
            });
            p += size;
        }
        assert_eq!(p, data.len());
        out
    }

    fn children<'a>(b: &Bx<'a>, skip: usize) -> Vec<Bx<'a>> {
        boxes(&b.payload[skip..], b.payload_start + skip)
    }

    fn child<'a>(b: &Bx<'a>, name: &[u8; 4]) -> Bx<'a> {
        let skip = match name {
            _ if &b.name == b"dref" || &b.name == b"stsd" => 8,
            _ => 0,
        };
        children(b, skip)
            .into_iter()
            .find(|c| &c.name == name)
            .unwrap_or_else(|| panic!("no {} in {}", show(name), show(&b.name)))
    }

    fn all<'a>(b: &Bx<'a>, name: &[u8; 4]) -> Vec<Bx<'a>> {
        children(b, 0)
            .into_iter()
            .filter(|c| &c.name == name)
            .collect()
    }

    fn path<'a>(b: &Bx<'a>, p: &str) -> Bx<'a> {
        p.split('/').fold(b.clone(), |b, n| {
            child(&b, n.as_bytes().try_into().unwrap())
        })
    }

    fn show(n: &[u8; 4]) -> String {
        String::from_utf8_lossy(n).into_owned()
    }

    fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn be16(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes(b[at..at + 2].try_into().unwrap())
    }

    /// Checks that every container's children tile its payload exactly.
    fn check_nesting(b: &Bx<'_>) {
        let skip = match &b.name {
            b"moov" | b"trak" | b"mdia" | b"minf" | b"dinf" | b"stbl" | b"mvex" | b"moof"
            | b"traf" => 0,
            b"dref" | b"stsd" => 8,
            b"avc1" | b"hvc1" | b"av01" | b"vp09" => 78,
            b"mp4a" | b"Opus" => 28,
            _ => return,
        };
        for c in children(b, skip) {
            check_nesting(&c);
        }
    }

    // ---- fixtures ----------------------------------------------------------------------------

    const AVCC: &[u8] =
        b"\x01\x64\x00\x1f\xff\xe1\x00\x04\x67\x64\x00\x1f\x01\x00\x04\x68\xee\x3c\x80";
    const ASC: &[u8] = &[0x12, 0x10];
    const OPUS_HEAD: &[u8] = b"OpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\xfe\xff\x00";

    fn video(codec: VideoCodec, config: &[u8]) -> TrackInfo {
        TrackInfo {
            kind: TrackKind::Video,
            codec: TrackCodec::Video(codec),
            config: Bytes::copy_from_slice(config),
            width: 640,
            height: 360,
            sample_rate: 0,
            channels: 0,
            codec_string: String::new(),
            timescale: 90_000,
        }
    }

    fn audio(codec: AudioCodec, config: &[u8], rate: u32, channels: u8) -> TrackInfo {
        TrackInfo {
            kind: TrackKind::Audio,
            codec: TrackCodec::Audio(codec),
            config: Bytes::copy_from_slice(config),
            width: 0,
            height: 0,
            sample_rate: rate,
            channels,
            codec_string: String::new(),
            timescale: if codec == AudioCodec::Opus {
                48_000
            } else {
                rate
            },
        }
    }

    fn sample(kind: TrackKind, dts: u64, cts: i32, key: bool, data: &[u8]) -> Sample {
        Sample {
            kind,
            dts_ms: dts,
            cts_ms: cts,
            keyframe: key,
            data: Bytes::copy_from_slice(data),
        }
    }

    fn stsd_entry<'a>(init: &'a [u8], track: usize) -> Bx<'a> {
        let top = boxes(init, 0);
        let trak = all(&top[1], b"trak")[track].clone();
        let stsd = path(&trak, "mdia/minf/stbl/stsd");
        assert_eq!(be32(stsd.payload, 4), 1);
        children(&stsd, 8).remove(0)
    }

    // ---- init segment ------------------------------------------------------------------------

    #[test]
    fn init_segment_structure() {
        let w = Fmp4Writer::new(vec![
            video(VideoCodec::Avc, AVCC),
            audio(AudioCodec::Aac, ASC, 44_100, 2),
        ])
        .unwrap();
        assert_eq!(w.tracks().len(), 2);
        let init = w.init_segment();
        let top = boxes(&init, 0);
        assert_eq!(top.len(), 2);
        assert_eq!(&top[0].name, b"ftyp");
        assert_eq!(&top[0].payload[..8], b"iso6\0\0\0\0");
        assert!(top[0].payload[8..].chunks(4).any(|c| c == b"cmfc"));
        assert!(top[0].payload[8..].chunks(4).any(|c| c == b"iso6"));
        let moov = &top[1];
        assert_eq!(&moov.name, b"moov");
        check_nesting(moov);
        let names: Vec<_> = children(moov, 0).iter().map(|b| show(&b.name)).collect();
        assert_eq!(names, ["mvhd", "trak", "trak", "mvex"]);
        let mvhd = child(moov, b"mvhd");
        assert_eq!(mvhd.payload.len(), 100);
        assert_eq!(be32(mvhd.payload, 12), 1000);
        assert_eq!(be32(mvhd.payload, 96), 3); // next_track_ID

        let traks = all(moov, b"trak");
        for (i, trak) in traks.iter().enumerate() {
            let tkhd = child(trak, b"tkhd");
            assert_eq!(be32(tkhd.payload, 0), 3); // version 0, enabled | in_movie
            assert_eq!(be32(tkhd.payload, 12), i as u32 + 1);
            assert_eq!(tkhd.payload.len(), 84);
        }
        let tkhd = child(&traks[0], b"tkhd");
        assert_eq!(
            (be32(tkhd.payload, 76), be32(tkhd.payload, 80)),
            (640 << 16, 360 << 16)
        );
        assert_eq!(be16(tkhd.payload, 36), 0); // video volume
        assert_eq!(be16(child(&traks[1], b"tkhd").payload, 36), 0x0100);

        let mdhd = path(&traks[0], "mdia/mdhd");
        assert_eq!(be32(mdhd.payload, 12), 90_000);
        assert_eq!(be16(mdhd.payload, 20), 0x55C4);
        assert_eq!(be32(path(&traks[1], "mdia/mdhd").payload, 12), 44_100);
        assert_eq!(&path(&traks[0], "mdia/hdlr").payload[8..12], b"vide");
        assert_eq!(&path(&traks[1], "mdia/hdlr").payload[8..12], b"soun");
        assert_eq!(
            path(&traks[0], "mdia/minf/vmhd").payload,
            &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(path(&traks[1], "mdia/minf/smhd").payload, &[0; 8]);
        let url = path(&traks[0], "mdia/minf/dinf/dref/url ");
        assert_eq!(url.payload, &[0, 0, 0, 1]);
        let stbl = path(&traks[0], "mdia/minf/stbl");
        let names: Vec<_> = children(&stbl, 0).iter().map(|b| show(&b.name)).collect();
        assert_eq!(names, ["stsd", "stts", "stsc", "stco", "stsz"]);
        assert_eq!(child(&stbl, b"stts").payload, &[0; 8]);
        assert_eq!(child(&stbl, b"stsz").payload, &[0; 12]);

        let avc1 = stsd_entry(&init, 0);
        assert_eq!(&avc1.name, b"avc1");
        assert_eq!(be16(avc1.payload, 6), 1); // data_reference_index
        assert_eq!((be16(avc1.payload, 24), be16(avc1.payload, 26)), (640, 360));
        assert_eq!(be16(avc1.payload, 74), 0x18);
        assert_eq!(child_with_skip(&avc1, 78, b"avcC").payload, AVCC);
        let mp4a = stsd_entry(&init, 1);
        assert_eq!(&mp4a.name, b"mp4a");
        assert_eq!(be16(mp4a.payload, 16), 2); // channelcount
        assert_eq!(be16(mp4a.payload, 18), 16);
        assert_eq!(be32(mp4a.payload, 24), 44_100 << 16);

        let trex = all(&child(moov, b"mvex"), b"trex");
        assert_eq!(trex.len(), 2);
        assert_eq!(
            trex[1].payload,
            &[0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    fn child_with_skip<'a>(b: &Bx<'a>, skip: usize, name: &[u8; 4]) -> Bx<'a> {
        children(b, skip)
            .into_iter()
            .find(|c| &c.name == name)
            .unwrap()
    }

    #[test]
    fn esds_bytes_for_aac_and_mp3() {
        let w = Fmp4Writer::new(vec![audio(AudioCodec::Aac, ASC, 44_100, 2)]).unwrap();
        let init = w.init_segment();
        let esds = child_with_skip(&stsd_entry(&init, 0), 28, b"esds");
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 0,
            0x03, 25, 0, 0, 0,
            0x04, 17, 0x40, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0x05, 2, 0x12, 0x10,
            0x06, 1, 2,
        ];
        assert_eq!(esds.payload, expected);

        let w = Fmp4Writer::new(vec![audio(AudioCodec::Mp3, b"", 44_100, 2)]).unwrap();
        let init = w.init_segment();
        let esds = child_with_skip(&stsd_entry(&init, 0), 28, b"esds");
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 0,
            0x03, 21, 0, 0, 0,
            0x04, 13, 0x6B, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0x06, 1, 2,
        ];
        assert_eq!(esds.payload, expected);
    }

    #[test]
    fn esds_long_asc_uses_multibyte_lengths() {
        let asc = vec![0x12; 200];
        let w = Fmp4Writer::new(vec![audio(AudioCodec::Aac, &asc, 48_000, 2)]).unwrap();
        let init = w.init_segment();
        let esds = child_with_skip(&stsd_entry(&init, 0), 28, b"esds");
        let p = esds.payload;
        // ES_Descriptor: 3 + DCD (1 + 2 + 13 + DSI (1 + 2 + 200)) + SL (3) = 225.
        assert_eq!(&p[4..7], &[0x03, 0x81, 225 - 128]);
        assert_eq!(&p[10..13], &[0x04, 0x81, 216 - 128]);
        assert_eq!(&p[26..29], &[0x05, 0x81, 200 - 128]);
        assert_eq!(&p[29..229], &asc[..]);
        assert_eq!(&p[229..], &[0x06, 1, 2]);
    }

    #[test]
    fn opus_entry_and_dops() {
        let w = Fmp4Writer::new(vec![audio(AudioCodec::Opus, OPUS_HEAD, 48_000, 2)]).unwrap();
        let init = w.init_segment();
        let entry = stsd_entry(&init, 0);
        assert_eq!(&entry.name, b"Opus");
        assert_eq!(be16(entry.payload, 16), 2);
        assert_eq!(be32(entry.payload, 24), 48_000 << 16);
        let dops = child_with_skip(&entry, 28, b"dOps");
        // Pre-skip 312 (0x0138), rate 48000, gain -2, family 0, all now big-endian.
        assert_eq!(
            dops.payload,
            &[0, 2, 0x01, 0x38, 0, 0, 0xbb, 0x80, 0xff, 0xfe, 0]
        );
    }

    #[test]
    fn dops_with_mapping_table_and_bad_heads() {
        let mut head = b"OpusHead\x01\x03\x00\x00\x44\xac\x00\x00\x00\x00\x01".to_vec();
        head.extend_from_slice(&[2, 1, 0, 2, 1]);
        let (dops, ch) = dops_from_opus_head(&head).unwrap();
        assert_eq!(ch, 3);
        assert_eq!(dops, [0, 3, 0, 0, 0, 0, 0xac, 0x44, 0, 0, 1, 2, 1, 0, 2, 1]);
        for n in 0..head.len() {
            assert!(dops_from_opus_head(&head[..n]).is_err(), "length {n}");
        }
        assert!(
            dops_from_opus_head(b"OpusTags\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00").is_err()
        );
        assert!(
            dops_from_opus_head(b"OpusHead\x01\x00\x38\x01\x80\xbb\x00\x00\x00\x00\x00").is_err()
        );
    }

    #[test]
    fn other_video_entries() {
        let hvcc = [1u8, 2, 3, 4, 5];
        let av1c = [0x81u8, 0x08, 0x0c, 0x00];
        let vpcc = [0u8, 0x0b, 0x82, 2, 2, 2, 0, 0];
        let mut vpcc_full = vec![1, 0, 0, 0];
        vpcc_full.extend_from_slice(&vpcc);
        for (codec, config, name, cfg, payload) in [
            (VideoCodec::Hevc, &hvcc[..], b"hvc1", b"hvcC", hvcc.to_vec()),
            (VideoCodec::Av1, &av1c[..], b"av01", b"av1C", av1c.to_vec()),
            (
                VideoCodec::Vp9,
                &vpcc[..],
                b"vp09",
                b"vpcC",
                vpcc_full.clone(),
            ),
            (
                VideoCodec::Vp9,
                &vpcc_full[..],
                b"vp09",
                b"vpcC",
                vpcc_full.clone(),
            ),
        ] {
            let w = Fmp4Writer::new(vec![video(codec, config)]).unwrap();
            let init = w.init_segment();
            check_nesting(&boxes(&init, 0)[1]);
            let entry = stsd_entry(&init, 0);
            assert_eq!(&entry.name, name);
            assert_eq!(child_with_skip(&entry, 78, cfg).payload, &payload[..]);
        }
        assert_eq!(
            Fmp4Writer::new(vec![video(VideoCodec::Vp9, &[0, 1, 2])]).err(),
            Some(MuxError::Malformed("vpcC"))
        );
    }

    #[test]
    fn rejects_bad_tracks() {
        assert!(Fmp4Writer::new(vec![]).is_err());
        assert_eq!(
            Fmp4Writer::new(vec![video(VideoCodec::Vp6, b"")]).err(),
            Some(MuxError::UnsupportedCodec("vp6"))
        );
        assert_eq!(
            Fmp4Writer::new(vec![audio(AudioCodec::Speex, b"", 16_000, 1)]).err(),
            Some(MuxError::UnsupportedCodec("speex"))
        );
        assert!(Fmp4Writer::new(vec![video(VideoCodec::Avc, b"")]).is_err());
        assert!(Fmp4Writer::new(vec![audio(AudioCodec::Aac, b"", 44_100, 2)]).is_err());
        let mut t = video(VideoCodec::Avc, AVCC);
        t.kind = TrackKind::Audio;
        assert!(Fmp4Writer::new(vec![t]).is_err());
        let mut t = video(VideoCodec::Avc, AVCC);
        t.timescale = 0;
        assert!(Fmp4Writer::new(vec![t]).is_err());
        let t = video(VideoCodec::Avc, &vec![0; MAX_CONFIG_LEN + 1]);
        assert!(Fmp4Writer::new(vec![t]).is_err());
        let many = vec![audio(AudioCodec::Mp3, b"", 44_100, 2); MAX_TRACKS + 1];
        assert!(Fmp4Writer::new(many).is_err());
    }

    #[test]
    fn odd_dimensions_and_rates_do_not_panic() {
        let mut v = video(VideoCodec::Avc, AVCC);
        v.width = u32::MAX;
        v.height = 70_000;
        let mut a = audio(AudioCodec::Mp3, b"", 96_000, 0);
        a.timescale = 96_000;
        let init = Fmp4Writer::new(vec![v, a]).unwrap().init_segment();
        check_nesting(&boxes(&init, 0)[1]);
        let tkhd = path(&all(&boxes(&init, 0)[1], b"trak")[0], "tkhd");
        assert_eq!(be32(tkhd.payload, 76), 0xFFFF << 16);
        let mp4a = stsd_entry(&init, 1);
        assert_eq!(be16(mp4a.payload, 16), 1);
        assert_eq!(be32(mp4a.payload, 24), 0);
    }

    // ---- fragments ---------------------------------------------------------------------------

    struct Trun {
        track_id: u32,
        base: u64,
        data_offset: usize,
        /// (duration, size, flags, composition offset)
        entries: Vec<(u32, u32, u32, i32)>,
    }

    /// Parses a fragment: sequence number and each traf's tfhd/tfdt/trun.
    fn parse_fragment(frag: &[u8]) -> (u32, Vec<Trun>, Bx<'_>) {
        let top = boxes(frag, 0);
        assert_eq!(top.len(), 2);
        let (moof, mdat) = (&top[0], top[1].clone());
        assert_eq!((&moof.name, &mdat.name), (b"moof", b"mdat"));
        assert_eq!(moof.start, 0);
        check_nesting(moof);
        let mfhd = child(moof, b"mfhd");
        assert_eq!(mfhd.payload.len(), 8);
        let seq = be32(mfhd.payload, 4);
        let mut runs = Vec::new();
        for traf in all(moof, b"traf") {
            let names: Vec<_> = children(&traf, 0).iter().map(|b| show(&b.name)).collect();
            assert_eq!(names, ["tfhd", "tfdt", "trun"]);
            let tfhd = child(&traf, b"tfhd");
            assert_eq!(be32(tfhd.payload, 0), TFHD_DEFAULT_BASE_IS_MOOF);
            assert_eq!(tfhd.payload.len(), 8);
            let tfdt = child(&traf, b"tfdt");
            assert_eq!(tfdt.payload[0], 1);
            assert_eq!(tfdt.payload.len(), 12);
            let base = u64::from_be_bytes(tfdt.payload[4..12].try_into().unwrap());
            let trun = child(&traf, b"trun").payload;
            let vf = be32(trun, 0);
            let cto = vf & TRUN_CTO != 0;
            assert_eq!(vf & 0xFF_FFFF & !TRUN_CTO, 0x701);
            assert_eq!(vf >> 24, u32::from(cto));
            let n = be32(trun, 4) as usize;
            let data_offset = be32(trun, 8) as usize;
            let per = if cto { 16 } else { 12 };
            assert_eq!(trun.len(), 12 + n * per);
            let entries = (0..n)
                .map(|i| {
                    let e = 12 + i * per;
                    let c = if cto { be32(trun, e + 12) as i32 } else { 0 };
                    (be32(trun, e), be32(trun, e + 4), be32(trun, e + 8), c)
                })
                .collect();
            runs.push(Trun {
                track_id: be32(tfhd.payload, 4),
                base,
                data_offset,
                entries,
            });
        }
        (seq, runs, mdat)
    }

    #[test]
    fn fragment_structure_timing_and_offsets() {
        let mut w = Fmp4Writer::new(vec![
            video(VideoCodec::Avc, AVCC),
            audio(AudioCodec::Aac, ASC, 44_100, 2),
        ])
        .unwrap();
        let v = [
            sample(TrackKind::Video, 1000, 80, true, b"I-frame"),
            sample(TrackKind::Video, 1040, 120, false, b"P1"),
            sample(TrackKind::Video, 1080, 0, false, b"B"),
            sample(TrackKind::Video, 1120, -40, false, b"P2!"),
        ];
        let a = [
            sample(TrackKind::Audio, 1000, 0, true, b"aac0"),
            sample(TrackKind::Audio, 1023, 0, true, b"aac1."),
            sample(TrackKind::Audio, 1046, 0, true, b"a2"),
        ];
        let frag = w
            .fragment(&[
                TrackRun {
                    track: 0,
                    samples: &v,
                    end_dts_ms: 1160,
                },
                TrackRun {
                    track: 1,
                    samples: &a,
                    end_dts_ms: 1070,
                },
            ])
            .unwrap();
        let (seq, runs, mdat) = parse_fragment(&frag);
        assert_eq!(seq, 1);
        assert_eq!(runs.len(), 2);
        let (rv, ra) = (&runs[0], &runs[1]);
        assert_eq!((rv.track_id, ra.track_id), (1, 2));
        assert_eq!(rv.base, 90_000);
        assert_eq!(ra.base, 44_100);
        assert_eq!(
            rv.entries,
            [
                (3600, 7, SAMPLE_FLAGS_SYNC, 7200),
                (3600, 2, SAMPLE_FLAGS_NON_SYNC, 10_800),
                (3600, 1, SAMPLE_FLAGS_NON_SYNC, 0),
                (3600, 3, SAMPLE_FLAGS_NON_SYNC, -3600),
            ]
        );
        // 1000 ms = 44100, 1023 ms = 45114 (floor of 45114.3), 1046 = 46128 (46128.6), 1070 =
        // 47187: durations are differences of those absolute times.
        assert_eq!(
            ra.entries,
            [
                (1014, 4, SAMPLE_FLAGS_SYNC, 0),
                (1014, 5, SAMPLE_FLAGS_SYNC, 0),
                (1059, 2, SAMPLE_FLAGS_SYNC, 0),
            ]
        );
        // Data offsets point at each run's first byte; the mdat holds exactly the sample data.
        assert_eq!(rv.data_offset, mdat.payload_start);
        assert_eq!(&frag[rv.data_offset..rv.data_offset + 7], b"I-frame");
        assert_eq!(ra.data_offset, mdat.payload_start + 13);
        assert_eq!(&frag[ra.data_offset..ra.data_offset + 4], b"aac0");
        assert_eq!(mdat.payload, b"I-frameP1BP2!aac0aac1.a2");

        let frag = w
            .fragment(&[TrackRun {
                track: 1,
                samples: &a[..1],
                end_dts_ms: 1023,
            }])
            .unwrap();
        let (seq, runs, _) = parse_fragment(&frag);
        assert_eq!((seq, runs.len(), runs[0].track_id), (2, 1, 2));
    }

    #[test]
    fn empty_runs_are_skipped() {
        let mut w = Fmp4Writer::new(vec![
            video(VideoCodec::Avc, AVCC),
            audio(AudioCodec::Aac, ASC, 44_100, 2),
        ])
        .unwrap();
        let v = [sample(TrackKind::Video, 0, 0, true, b"x")];
        let frag = w
            .fragment(&[
                TrackRun {
                    track: 1,
                    samples: &[],
                    end_dts_ms: 0,
                },
                TrackRun {
                    track: 0,
                    samples: &v,
                    end_dts_ms: 40,
                },
            ])
            .unwrap();
        let (_, runs, mdat) = parse_fragment(&frag);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].track_id, 1);
        assert_eq!(runs[0].data_offset, mdat.payload_start);
    }

    #[test]
    fn fragment_errors_leave_the_sequence_alone() {
        let mut w = Fmp4Writer::new(vec![video(VideoCodec::Avc, AVCC)]).unwrap();
        let v = [sample(TrackKind::Video, 0, 0, true, b"x")];
        let a = [sample(TrackKind::Audio, 0, 0, true, b"x")];
        let run = |samples, end| TrackRun {
            track: 0,
            samples,
            end_dts_ms: end,
        };
        assert!(w.fragment(&[]).is_err());
        assert!(w.fragment(&[run(&[], 0)]).is_err());
        assert!(w
            .fragment(&[TrackRun {
                track: 1,
                samples: &v,
                end_dts_ms: 40
            }])
            .is_err());
        assert!(w.fragment(&[run(&a, 40)]).is_err());
        // 2^32 ticks at 90 kHz is about 13 hours.
        assert!(w.fragment(&[run(&v, 48_000_000)]).is_err());
        let far = [sample(TrackKind::Video, 0, i32::MAX, true, b"x")];
        assert!(w.fragment(&[run(&far, 40)]).is_err());
        let (seq, _, _) = parse_fragment(&w.fragment(&[run(&v, 40)]).unwrap());
        assert_eq!(seq, 1);
    }

    #[test]
    fn odd_timing_does_not_panic() {
        let mut w = Fmp4Writer::new(vec![video(VideoCodec::Avc, AVCC)]).unwrap();
        let v = [
            sample(TrackKind::Video, u64::MAX, i32::MIN, true, b"x"),
            sample(TrackKind::Video, 5, 0, false, b"y"),
            sample(TrackKind::Video, 0, -10, false, b"z"),
        ];
        // Backwards timestamps give zero durations, never an underflow.
        let frag = w
            .fragment(&[TrackRun {
                track: 0,
                samples: &v[1..],
                end_dts_ms: 0,
            }])
            .unwrap();
        let (_, runs, _) = parse_fragment(&frag);
        assert_eq!(runs[0].entries[0].0, 0);
        assert_eq!(runs[0].entries[1].3, -900);
        let _ = w.fragment(&[TrackRun {
            track: 0,
            samples: &v,
            end_dts_ms: u64::MAX,
        }]);
    }

    #[test]
    fn ticks_do_not_drift_or_overflow() {
        assert_eq!(ticks(1000, 44_100), 44_100);
        assert_eq!(ticks(u64::MAX, 90_000), u64::MAX);
        let t = audio(AudioCodec::Aac, ASC, 44_100, 2);
        for ms in [0, 1, 23, 999, 123_456_789] {
            assert_eq!(ticks(ms, 44_100), t.ticks(ms));
        }
        assert_eq!(signed_ticks(-1, 90_000), -90);
        assert_eq!(signed_ticks(-1, 44_100), -45);
    }

    proptest! {
        #[test]
        fn fragments_parse_back(
            gaps in proptest::collection::vec((0u64..100, -50i32..200, any::<bool>(), 0usize..40), 1..40),
            audio_gaps in proptest::collection::vec((0u64..50, 0usize..20), 0..40),
            start in 0u64..10_000_000_000,
            tail in 0u64..100,
        ) {
            let mut w = Fmp4Writer::new(vec![
                video(VideoCodec::Hevc, b"cfg"),
                audio(AudioCodec::Aac, ASC, 44_100, 1),
            ]).unwrap();
            let mut dts = start;
            let mut v = Vec::new();
            for (i, (gap, cts, key, len)) in gaps.iter().enumerate() {
                dts += gap;
                v.push(sample(TrackKind::Video, dts, *cts, *key, &vec![i as u8; *len]));
            }
            let v_end = dts + tail;
            let mut dts = start;
            let mut a = Vec::new();
            for (i, (gap, len)) in audio_gaps.iter().enumerate() {
                dts += gap;
                a.push(sample(TrackKind::Audio, dts, 0, true, &vec![0x80 | i as u8; *len]));
            }
            let a_end = dts + tail;
            let frag = w.fragment(&[
                TrackRun { track: 0, samples: &v, end_dts_ms: v_end },
                TrackRun { track: 1, samples: &a, end_dts_ms: a_end },
            ]).unwrap();
            let (_, runs, mdat) = parse_fragment(&frag);
            prop_assert_eq!(runs.len(), if a.is_empty() { 1 } else { 2 });
            let mut expected_mdat = Vec::new();
            for (run, (samples, end, scale)) in runs.iter().zip([(&v, v_end, 90_000u64), (&a, a_end, 44_100)]) {
                prop_assert_eq!(run.base, ticks(samples[0].dts_ms, scale));
                let total: u64 = run.entries.iter().map(|e| u64::from(e.0)).sum();
                prop_assert_eq!(run.base + total, ticks(end, scale));
                let mut at = run.data_offset;
                for (s, e) in samples.iter().zip(&run.entries) {
                    prop_assert_eq!(&frag[at..at + s.data.len()], &s.data[..]);
                    prop_assert_eq!(e.1 as usize, s.data.len());
                    at += s.data.len();
                    let pts = ticks((s.dts_ms as i64 + i64::from(s.cts_ms)).max(0) as u64, scale);
                    if s.dts_ms as i64 + i64::from(s.cts_ms) >= 0 && scale == 90_000 {
                        prop_assert_eq!(ticks(s.dts_ms, scale) as i64 + i64::from(e.3), pts as i64);
                    }
                    expected_mdat.extend_from_slice(&s.data);
                }
            }
            prop_assert_eq!(mdat.payload, &expected_mdat[..]);
        }

        #[test]
        fn arbitrary_configs_never_panic(config in proptest::collection::vec(any::<u8>(), 0..64), codec in 0usize..7) {
            let t = match codec {
                0 => video(VideoCodec::Avc, &config),
                1 => video(VideoCodec::Hevc, &config),
                2 => video(VideoCodec::Av1, &config),
                3 => video(VideoCodec::Vp9, &config),
                4 => audio(AudioCodec::Aac, &config, 48_000, 2),
                5 => audio(AudioCodec::Opus, &config, 48_000, 2),
                _ => audio(AudioCodec::Mp3, &config, 44_100, 2),
            };
            if let Ok(w) = Fmp4Writer::new(vec![t]) {
                let init = w.init_segment();
                check_nesting(&boxes(&init, 0)[1]);
            }
        }
    }

    // ---- end to end with ffmpeg -------------------------------------------------------------

    mod e2e {
        use super::*;
        use bytes::BytesMut;
        use rill_media::{Codec, FlvDemuxer, Frame, FrameKind};
        use std::path::{Path, PathBuf};
        use std::process::Command;

        use crate::sample::sample_from_frame;

        fn have(exe: &str) -> bool {
            Command::new(exe)
                .arg("-version")
                .output()
                .is_ok_and(|o| o.status.success())
        }

        /// Debian's ffmpeg, or `None` (a hard failure under CI).
        fn system_ffmpeg() -> Option<()> {
            if have("ffmpeg") && have("ffprobe") {
                return Some(());
            }
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "ffmpeg/ffprobe missing under CI"
            );
            eprintln!("ffmpeg/ffprobe not installed: skipping the fMP4 interop test");
            None
        }

        /// The modern static ffmpeg of scripts/setup-modern-ffmpeg (imageio-ffmpeg), if present.
        fn modern_ffmpeg() -> Option<String> {
            if let Ok(p) = std::env::var("RILL_MODERN_FFMPEG") {
                if have(&p) {
                    return Some(p);
                }
            }
            let out = Command::new("python3")
                .args([
                    "-c",
                    "import imageio_ffmpeg as i; print(i.get_ffmpeg_exe())",
                ])
                .output()
                .ok()?;
            let p = String::from_utf8(out.stdout).ok()?.trim().to_string();
            if out.status.success() && have(&p) {
                Some(p)
            } else {
                eprintln!("imageio-ffmpeg not installed: skipping HEVC/AV1/VP9/Opus fMP4 tests");
                None
            }
        }

        fn tempdir(name: &str) -> PathBuf {
            let d = std::env::temp_dir().join(format!("rill-fmp4-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            d
        }

        struct Expect {
            vcodec: &'static str,
            acodec: &'static str,
            width: u32,
            height: u32,
            rate: u32,
            /// Audio frame duration in ms, for the last audio sample.
            audio_frame_ms: u64,
        }

        /// Demuxes `flv`, writes init + one fragment per GOP to `out`, returns the durations
        /// (seconds) of the video and audio tracks summed over every trun.
        fn remux(flv: &Path, out: &Path, e: &Expect) -> (f64, f64) {
            let mut buf = BytesMut::from(&std::fs::read(flv).unwrap()[..]);
            let mut demux = FlvDemuxer::new(16 << 20);
            let (mut vtrack, mut atrack) = (None, None);
            let (mut vs, mut aus) = (Vec::new(), Vec::new());
            while let Some(tag) = demux.next_tag(&mut buf).unwrap() {
                let kind = match tag.tag_type {
                    8 => FrameKind::Audio,
                    9 => FrameKind::Video,
                    _ => continue,
                };
                let frame = Frame::from_flv_body(kind, tag.timestamp, tag.body.clone()).unwrap();
                let body = &frame.payload;
                let enhanced = match kind {
                    FrameKind::Video => body[0] & 0x80 != 0,
                    _ => body[0] >> 4 == 9,
                };
                // Enhanced packet type 0 is SequenceStart; other non-frame packets (metadata,
                // multichannel config) are skipped.
                if frame.sequence_header && (!enhanced || body[0] & 0x0F == 0) {
                    match frame.codec {
                        Codec::Video(c) => vtrack = Some(video_track(c, body.slice(5..), e)),
                        Codec::Audio(c) => {
                            let config = if enhanced {
                                body.slice(5..)
                            } else {
                                body.slice(2..)
                            };
                            let mut t = audio(c, &config, e.rate, 1);
                            t.config = config;
                            atrack = Some(t);
                        }
                        Codec::Data => {}
                    }
                    continue;
                }
                if let Some(s) = sample_from_frame(&frame) {
                    match s.kind {
                        TrackKind::Video => vs.push(s),
                        TrackKind::Audio => aus.push(s),
                    }
                }
            }
            let mut w = Fmp4Writer::new(vec![vtrack.unwrap(), atrack.unwrap()]).unwrap();
            let mut file = w.init_segment().to_vec();
            let keys: Vec<usize> = (0..vs.len()).filter(|&i| vs[i].keyframe).collect();
            assert_eq!(keys[0], 0, "stream must start with a keyframe");
            assert!(keys.len() >= 2, "expected several GOPs, got {}", keys.len());
            // Audio partitions: the samples before each next video keyframe.
            let mut parts = Vec::new();
            let mut a_at = 0;
            for (k, &start) in keys.iter().enumerate() {
                let end = keys.get(k + 1).copied().unwrap_or(vs.len());
                let boundary = keys.get(k + 1).map_or(u64::MAX, |&i| vs[i].dts_ms);
                let a_end = a_at
                    + aus[a_at..]
                        .iter()
                        .take_while(|s| s.dts_ms < boundary)
                        .count();
                parts.push((start..end, a_at..a_end));
                a_at = a_end;
            }
            let (mut vdur, mut adur) = (0u64, 0u64);
            for (v, a) in &parts {
                let v_end = vs
                    .get(v.end)
                    .map_or(vs[v.end - 1].dts_ms + 40, |s| s.dts_ms);
                let a_end = aus
                    .get(a.end)
                    .map_or_else(|| aus[a.end - 1].dts_ms + e.audio_frame_ms, |s| s.dts_ms);
                let frag = w
                    .fragment(&[
                        TrackRun {
                            track: 0,
                            samples: &vs[v.clone()],
                            end_dts_ms: v_end,
                        },
                        TrackRun {
                            track: 1,
                            samples: &aus[a.clone()],
                            end_dts_ms: a_end,
                        },
                    ])
                    .unwrap();
                let (_, runs, _) = parse_fragment(&frag);
                for r in runs {
                    let d: u64 = r.entries.iter().map(|e| u64::from(e.0)).sum();
                    if r.track_id == 1 {
                        vdur += d
                    } else {
                        adur += d
                    }
                }
                file.extend_from_slice(&frag);
            }
            std::fs::write(out, &file).unwrap();
            (
                vdur as f64 / 90_000.0,
                adur as f64 / f64::from(w.tracks()[1].timescale),
            )
        }

        fn video_track(codec: VideoCodec, config: Bytes, e: &Expect) -> TrackInfo {
            let mut t = video(codec, &config);
            (t.width, t.height) = (e.width, e.height);
            t
        }

        fn ffmpeg_clean(ffmpeg: &str, mp4: &Path) {
            let out = Command::new(ffmpeg)
                .args(["-v", "error", "-i"])
                .arg(mp4)
                .args(["-f", "null", "-"])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && err.trim().is_empty(),
                "decode errors: {err}"
            );
        }

        fn probe(mp4: &Path, e: &Expect) {
            let out = Command::new("ffprobe")
                .args([
                    "-v",
                    "error",
                    "-show_streams",
                    "-count_frames",
                    "-of",
                    "json",
                ])
                .arg(mp4)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let json = String::from_utf8(out.stdout).unwrap();
            let compact: String = json.split_whitespace().collect();
            for needle in [
                format!("\"codec_name\":\"{}\"", e.vcodec),
                format!("\"width\":{}", e.width),
                format!("\"height\":{}", e.height),
                "\"nb_read_frames\":\"100\"".to_string(),
                format!("\"codec_name\":\"{}\"", e.acodec),
                format!("\"sample_rate\":\"{}\"", e.rate),
                "\"channels\":1".to_string(),
            ] {
                assert!(compact.contains(&needle), "{needle} not in {json}");
            }
        }

        fn make_flv(ffmpeg: &str, dir: &Path, size: &str, v: &[&str], a: &[&str]) -> PathBuf {
            let flv = dir.join("in.flv");
            let status = Command::new(ffmpeg)
                .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
                .arg(format!("testsrc2=size={size}:rate=25"))
                .args([
                    "-f", "lavfi", "-i", "sine", "-t", "4", "-pix_fmt", "yuv420p",
                ])
                .args(v)
                .args(["-g", "25"])
                .args(a)
                .args(["-f", "flv"])
                .arg(&flv)
                .status()
                .unwrap();
            assert!(status.success(), "ffmpeg could not make {}", flv.display());
            flv
        }

        fn round_trip(ffmpeg: &str, name: &str, size: &str, v: &[&str], a: &[&str], e: Expect) {
            let dir = tempdir(name);
            let flv = make_flv(ffmpeg, &dir, size, v, a);
            let mp4 = dir.join("x.mp4");
            let (vdur, adur) = remux(&flv, &mp4, &e);
            assert!((vdur - 4.0).abs() < 0.05, "video lasts {vdur} s");
            assert!((adur - 4.0).abs() < 0.1, "audio lasts {adur} s");
            probe(&mp4, &e);
            ffmpeg_clean("ffmpeg", &mp4);
            if ffmpeg != "ffmpeg" {
                ffmpeg_clean(ffmpeg, &mp4);
            }
            let _ = std::fs::remove_dir_all(&dir);
        }

        #[test]
        fn h264_aac_from_debian_ffmpeg() {
            if system_ffmpeg().is_none() {
                return;
            }
            let e = Expect {
                vcodec: "h264",
                acodec: "aac",
                width: 640,
                height: 360,
                rate: 44_100,
                audio_frame_ms: 23,
            };
            round_trip(
                "ffmpeg",
                "avc",
                "640x360",
                &["-c:v", "libx264"],
                &["-c:a", "aac"],
                e,
            );
        }

        fn modern(name: &str, v: &[&str], vcodec: &'static str) {
            if system_ffmpeg().is_none() {
                return;
            }
            let Some(ffmpeg) = modern_ffmpeg() else {
                return;
            };
            let e = Expect {
                vcodec,
                acodec: "opus",
                width: 320,
                height: 180,
                rate: 48_000,
                audio_frame_ms: 20,
            };
            let a = ["-c:a", "libopus", "-ar", "48000"];
            round_trip(&ffmpeg, name, "320x180", v, &a, e);
        }

        #[test]
        fn hevc_opus_from_modern_ffmpeg() {
            modern(
                "hevc",
                &["-c:v", "libx265", "-x265-params", "log-level=error"],
                "hevc",
            );
        }

        #[test]
        fn av1_opus_from_modern_ffmpeg() {
            modern("av1", &["-c:v", "libsvtav1", "-preset", "12"], "av1");
        }

        #[test]
        fn vp9_opus_from_modern_ffmpeg() {
            modern(
                "vp9",
                &[
                    "-c:v",
                    "libvpx-vp9",
                    "-deadline",
                    "realtime",
                    "-cpu-used",
                    "8",
                ],
                "vp9",
            );
        }
    }
}
