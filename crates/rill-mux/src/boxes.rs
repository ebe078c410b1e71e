//! ISOBMFF building blocks shared by the fragmented ([`crate::fmp4`]) and progressive
//! ([`crate::mp4`]) writers: a box writer, track validation, `ftyp`/`mvhd`/`trak` up to `stsd`,
//! and the sample entries (`avc1`/`avcC`, `hvc1`/`hvcC`, `av01`/`av1C`, `vp09`/`vpcC`,
//! `mp4a`/`esds`, `Opus`/`dOps`).
//!
//! Boxes follow ISO/IEC 14496-12 (ISOBMFF), 14496-14 (`esds`), 14496-15 (`avcC`/`hvcC`), the AV1
//! and VP9 ISOBMFF bindings, and the Opus-in-ISOBMFF mapping (`dOps`).

use bytes::Bytes;
use rill_media::{AudioCodec, VideoCodec};

use crate::sample::TrackKind;
use crate::track::{TrackCodec, TrackInfo};
use crate::MuxError;

/// The most tracks a writer accepts: far beyond any live stream, and it keeps the init segment
/// small enough that its box sizes can never overflow.
pub const MAX_TRACKS: usize = 64;

/// The largest codec configuration record accepted; real ones are at most a few kilobytes.
pub const MAX_CONFIG_LEN: usize = 1 << 20;

/// The sample entry of a track, decided (and its record checked) once when a writer is made.
#[derive(Debug, Clone)]
pub(crate) enum Entry {
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

/// Checks a presentation's tracks and chooses their sample entries.
pub(crate) fn entries(tracks: &[TrackInfo]) -> Result<Vec<Entry>, MuxError> {
    if tracks.is_empty() {
        return Err(MuxError::Malformed("presentation without tracks"));
    }
    if tracks.len() > MAX_TRACKS {
        return Err(MuxError::Malformed("too many tracks"));
    }
    tracks.iter().map(entry).collect()
}

/// Milliseconds to ticks, rounding down like [`TrackInfo::ticks`] but without overflowing.
pub(crate) fn ticks(ms: u64, timescale: u64) -> u64 {
    let t = u128::from(ms) * u128::from(timescale) / 1000;
    u64::try_from(t).unwrap_or(u64::MAX)
}

/// [`ticks`] for possibly negative times (presentation times before zero), rounding toward minus
/// infinity so that offsets agree with [`ticks`] for positive times.
pub(crate) fn signed_ticks(ms: i128, timescale: u64) -> i128 {
    (ms * i128::from(timescale)).div_euclid(1000)
}

/// The duration in ticks of a sample decoded at `dts_ms` and followed by one at `next_ms`: a
/// difference of absolute tick times, so rounding never accumulates; backwards timestamps give 0.
pub(crate) fn duration_ticks(dts_ms: u64, next_ms: u64, timescale: u64) -> Result<u32, MuxError> {
    let duration = ticks(next_ms, timescale).saturating_sub(ticks(dts_ms, timescale));
    u32::try_from(duration).map_err(|_| MuxError::Malformed("sample duration too long"))
}

/// The composition time offset in ticks of a sample (presentation minus decode time).
pub(crate) fn composition_offset(
    dts_ms: u64,
    cts_ms: i32,
    timescale: u64,
) -> Result<i32, MuxError> {
    let dts = i128::from(dts_ms);
    let offset = signed_ticks(dts + i128::from(cts_ms), timescale) - signed_ticks(dts, timescale);
    i32::try_from(offset).map_err(|_| MuxError::Malformed("composition offset too large"))
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

/// `ftyp` with a major brand, its minor version and the compatible brands.
pub(crate) fn write_ftyp(w: &mut BoxWriter, major: &[u8; 4], minor: u32, compatible: &[&[u8; 4]]) {
    let ftyp = w.start(b"ftyp");
    w.put(major);
    w.u32(minor);
    for brand in compatible {
        w.put(*brand);
    }
    w.end(ftyp);
}

/// `mvhd` with the movie timescale of 1000 (milliseconds); `duration` 0 means unknown (fragmented).
pub(crate) fn write_mvhd(w: &mut BoxWriter, duration: u64, tracks: usize) {
    // Version 1 only when the duration needs it, so short movies keep the common layout.
    let long = duration > u64::from(u32::MAX);
    let mvhd = w.full(b"mvhd", u8::from(long), 0);
    w.zero_times(long);
    w.u32(MOVIE_TIMESCALE);
    w.duration(long, duration);
    w.u32(0x0001_0000); // rate 1.0
    w.u16(0x0100); // volume 1.0
    w.zeros(10);
    w.matrix();
    w.zeros(24); // pre_defined
                 // next_track_ID; tracks are bounded by MAX_TRACKS.
    w.u32(u32::try_from(tracks).unwrap_or(u32::MAX - 1) + 1);
    w.end(mvhd);
}

/// The movie timescale of `mvhd`, `tkhd` and `elst` segment durations.
pub(crate) const MOVIE_TIMESCALE: u32 = 1000;

/// What a `trak` says about one track.
pub(crate) struct Trak<'a> {
    /// Track id (index + 1).
    pub(crate) id: u32,
    pub(crate) track: &'a TrackInfo,
    pub(crate) entry: &'a Entry,
    /// `tkhd` duration, in the movie timescale (0: unknown).
    pub(crate) duration: u64,
    /// `mdhd` duration, in the track's timescale (0: unknown).
    pub(crate) media_duration: u64,
}

/// `trak` with `tkhd`, whatever `edts` writes, `mdia` down to `stsd`, then whatever `tables`
/// writes into `stbl` after `stsd`: the two writers differ only in those and in the durations.
pub(crate) fn write_trak(
    w: &mut BoxWriter,
    t: &Trak<'_>,
    edts: impl FnOnce(&mut BoxWriter),
    tables: impl FnOnce(&mut BoxWriter),
) {
    let track = t.track;
    let video = track.kind == TrackKind::Video;
    let trak = w.start(b"trak");
    let long = t.duration > u64::from(u32::MAX);
    // track_enabled | track_in_movie
    let tkhd = w.full(b"tkhd", u8::from(long), 3);
    w.zero_times(long);
    w.u32(t.id);
    w.u32(0);
    w.duration(long, t.duration);
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
    edts(w);

    let mdia = w.start(b"mdia");
    let long = t.media_duration > u64::from(u32::MAX);
    let mdhd = w.full(b"mdhd", u8::from(long), 0);
    w.zero_times(long);
    w.u32(track.timescale);
    w.duration(long, t.media_duration);
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
    write_sample_entry(w, track, t.entry);
    w.end(stsd);
    tables(w);
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
pub(crate) struct BoxWriter {
    pub(crate) buf: Vec<u8>,
}

impl BoxWriter {
    pub(crate) fn start(&mut self, name: &[u8; 4]) -> usize {
        let at = self.buf.len();
        self.u32(0);
        self.put(name);
        at
    }

    pub(crate) fn full(&mut self, name: &[u8; 4], version: u8, flags: u32) -> usize {
        let at = self.start(name);
        self.u32((u32::from(version) << 24) | (flags & 0xFF_FFFF));
        at
    }

    /// Callers check sizes beforehand; an impossible overflow saturates instead of panicking.
    pub(crate) fn end(&mut self, at: usize) {
        let size = u32::try_from(self.buf.len() - at).unwrap_or(u32::MAX);
        self.patch_u32(at, size);
    }

    pub(crate) fn patch_u32(&mut self, at: usize, v: u32) {
        if let Some(dst) = self.buf.get_mut(at..at + 4) {
            dst.copy_from_slice(&v.to_be_bytes());
        }
    }

    pub(crate) fn put(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    pub(crate) fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.put(&v.to_be_bytes());
    }

    /// The identity transformation matrix of `mvhd` and `tkhd`.
    pub(crate) fn matrix(&mut self) {
        for v in [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000u32] {
            self.u32(v);
        }
    }

    /// creation_time and modification_time (unknown: zero), 32 or 64 bits by box version.
    pub(crate) fn zero_times(&mut self, long: bool) {
        self.zeros(if long { 16 } else { 8 });
    }

    /// A time field of a version 0 (32-bit) or version 1 (64-bit) box.
    pub(crate) fn duration(&mut self, long: bool, d: u64) {
        if long {
            self.u64(d);
        } else {
            self.u32(u32::try_from(d).unwrap_or(u32::MAX));
        }
    }
}

/// Test support shared by the fMP4 and MP4 writers' tests: a tiny box reader, track fixtures, and
/// the ffmpeg round-trip plumbing.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::sample::{sample_from_frame, Sample};
    use bytes::BytesMut;
    use rill_media::{Codec, FlvDemuxer, Frame, FrameKind};
    use std::ops::Range;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    // ---- a tiny box reader -------------------------------------------------------------------

    /// A box: its type, where it starts, and its payload (after the 8-byte header).
    #[derive(Debug, Clone)]
    pub(crate) struct Bx<'a> {
        pub(crate) name: [u8; 4],
        pub(crate) start: usize,
        pub(crate) payload: &'a [u8],
        pub(crate) payload_start: usize,
    }

    /// Parses consecutive boxes; the sizes must tile `data` exactly.
    pub(crate) fn boxes(data: &[u8], base: usize) -> Vec<Bx<'_>> {
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

    pub(crate) fn children<'a>(b: &Bx<'a>, skip: usize) -> Vec<Bx<'a>> {
        boxes(&b.payload[skip..], b.payload_start + skip)
    }

    pub(crate) fn child<'a>(b: &Bx<'a>, name: &[u8; 4]) -> Bx<'a> {
        let skip = match name {
            _ if &b.name == b"dref" || &b.name == b"stsd" => 8,
            _ => 0,
        };
        children(b, skip)
            .into_iter()
            .find(|c| &c.name == name)
            .unwrap_or_else(|| panic!("no {} in {}", show(name), show(&b.name)))
    }

    pub(crate) fn all<'a>(b: &Bx<'a>, name: &[u8; 4]) -> Vec<Bx<'a>> {
        children(b, 0)
            .into_iter()
            .filter(|c| &c.name == name)
            .collect()
    }

    pub(crate) fn path<'a>(b: &Bx<'a>, p: &str) -> Bx<'a> {
        p.split('/').fold(b.clone(), |b, n| {
            child(&b, n.as_bytes().try_into().unwrap())
        })
    }

    pub(crate) fn show(n: &[u8; 4]) -> String {
        String::from_utf8_lossy(n).into_owned()
    }

    pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }

    pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes(b[at..at + 2].try_into().unwrap())
    }

    /// Checks that every container's children tile its payload exactly.
    pub(crate) fn check_nesting(b: &Bx<'_>) {
        let skip = match &b.name {
            b"moov" | b"trak" | b"mdia" | b"minf" | b"dinf" | b"stbl" | b"mvex" | b"moof"
            | b"traf" | b"edts" => 0,
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

    pub(crate) fn child_with_skip<'a>(b: &Bx<'a>, skip: usize, name: &[u8; 4]) -> Bx<'a> {
        children(b, skip)
            .into_iter()
            .find(|c| &c.name == name)
            .unwrap()
    }

    pub(crate) const AVCC: &[u8] =
        b"\x01\x64\x00\x1f\xff\xe1\x00\x04\x67\x64\x00\x1f\x01\x00\x04\x68\xee\x3c\x80";
    pub(crate) const ASC: &[u8] = &[0x12, 0x10];
    pub(crate) const OPUS_HEAD: &[u8] = b"OpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\xfe\xff\x00";

    pub(crate) fn video(codec: VideoCodec, config: &[u8]) -> TrackInfo {
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

    pub(crate) fn audio(codec: AudioCodec, config: &[u8], rate: u32, channels: u8) -> TrackInfo {
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

    pub(crate) fn sample(kind: TrackKind, dts: u64, cts: i32, key: bool, data: &[u8]) -> Sample {
        Sample {
            kind,
            dts_ms: dts,
            cts_ms: cts,
            keyframe: key,
            data: Bytes::copy_from_slice(data),
        }
    }

    // ---- ffmpeg round trips ------------------------------------------------------------------

    pub(crate) fn have(exe: &str) -> bool {
        Command::new(exe)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Debian's ffmpeg, or `None` (a hard failure under CI).
    pub(crate) fn system_ffmpeg() -> Option<()> {
        if have("ffmpeg") && have("ffprobe") {
            return Some(());
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "ffmpeg/ffprobe missing under CI"
        );
        eprintln!("ffmpeg/ffprobe not installed: skipping an interop test");
        None
    }

    /// The modern static ffmpeg of scripts/setup-modern-ffmpeg (imageio-ffmpeg), if present.
    pub(crate) fn modern_ffmpeg() -> Option<String> {
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
            eprintln!("imageio-ffmpeg not installed: skipping HEVC/AV1/VP9/Opus tests");
            None
        }
    }

    pub(crate) fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rill-mux-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    pub(crate) struct Expect {
        pub(crate) vcodec: &'static str,
        pub(crate) acodec: &'static str,
        pub(crate) width: u32,
        pub(crate) height: u32,
        pub(crate) rate: u32,
        /// Audio frame duration in ms, for the last audio sample.
        pub(crate) audio_frame_ms: u64,
    }

    /// An FLV file's two tracks and their samples, in decode order.
    pub(crate) struct Demuxed {
        pub(crate) vtrack: TrackInfo,
        pub(crate) atrack: TrackInfo,
        pub(crate) video: Vec<Sample>,
        pub(crate) audio: Vec<Sample>,
    }

    /// Reads `flv` with Rill's demuxer, building the tracks by hand from the sequence headers.
    pub(crate) fn demux_flv(flv: &Path, e: &Expect) -> Demuxed {
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
                    Codec::Video(c) => {
                        let mut t = video(c, &body[5..]);
                        (t.width, t.height) = (e.width, e.height);
                        vtrack = Some(t);
                    }
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
        Demuxed {
            vtrack: vtrack.unwrap(),
            atrack: atrack.unwrap(),
            video: vs,
            audio: aus,
        }
    }

    /// One GOP of video and the audio decoded before the next keyframe, each with the decode
    /// time that ends it (the next sample's, or the last one's plus a frame).
    pub(crate) struct Gop {
        pub(crate) video: Range<usize>,
        pub(crate) video_end_ms: u64,
        pub(crate) audio: Range<usize>,
        pub(crate) audio_end_ms: u64,
    }

    pub(crate) fn gops(d: &Demuxed, e: &Expect) -> Vec<Gop> {
        let (vs, aus) = (&d.video, &d.audio);
        let keys: Vec<usize> = (0..vs.len()).filter(|&i| vs[i].keyframe).collect();
        assert_eq!(keys[0], 0, "stream must start with a keyframe");
        assert!(keys.len() >= 2, "expected several GOPs, got {}", keys.len());
        let mut out = Vec::new();
        let mut a_at = 0;
        for (k, &start) in keys.iter().enumerate() {
            let end = keys.get(k + 1).copied().unwrap_or(vs.len());
            let boundary = keys.get(k + 1).map_or(u64::MAX, |&i| vs[i].dts_ms);
            let a_end = a_at
                + aus[a_at..]
                    .iter()
                    .take_while(|s| s.dts_ms < boundary)
                    .count();
            let video_end_ms = vs.get(end).map_or(vs[end - 1].dts_ms + 40, |s| s.dts_ms);
            let audio_end_ms = aus
                .get(a_end)
                .map_or_else(|| aus[a_end - 1].dts_ms + e.audio_frame_ms, |s| s.dts_ms);
            out.push(Gop {
                video: start..end,
                video_end_ms,
                audio: a_at..a_end,
                audio_end_ms,
            });
            a_at = a_end;
        }
        out
    }

    pub(crate) fn ffmpeg_clean(ffmpeg: &str, mp4: &Path) {
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

    /// Decodes `mp4` with Debian's ffmpeg and, when `ffmpeg` is another one (the one that made
    /// the input), with that one too: neither may complain.
    pub(crate) fn ffmpeg_clean_both(ffmpeg: &str, mp4: &Path) {
        ffmpeg_clean("ffmpeg", mp4);
        if ffmpeg != "ffmpeg" {
            ffmpeg_clean(ffmpeg, mp4);
        }
    }

    /// A writer's `round_trip(ffmpeg, name, size, video args, audio args, expect)`.
    pub(crate) type RoundTrip = fn(&str, &str, &str, &[&str], &[&str], Expect);

    /// Runs `round_trip` on the modern ffmpeg's 320x180 output with Opus audio; skips when
    /// either ffmpeg is missing, since the result is checked with both.
    pub(crate) fn modern_round_trip(
        name: &str,
        v: &[&str],
        vcodec: &'static str,
        round_trip: RoundTrip,
    ) {
        if system_ffmpeg().is_none() {
            return;
        }
        let Some(ffmpeg) = modern_ffmpeg() else {
            return;
        };
        let e = Expect::modern_opus(vcodec);
        round_trip(&ffmpeg, name, "320x180", v, &OPUS_ARGS, e);
    }

    pub(crate) fn make_flv(
        ffmpeg: &str,
        dir: &Path,
        size: &str,
        v: &[&str],
        a: &[&str],
    ) -> PathBuf {
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

    /// `ffprobe -v error <args> -of json <file>`, with its whitespace removed for matching.
    pub(crate) fn ffprobe(args: &[&str], file: &Path) -> String {
        let out = Command::new("ffprobe")
            .args(["-v", "error"])
            .args(args)
            .args(["-of", "json"])
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .collect()
    }

    /// ffprobe's format and streams (frames counted), checked against `e`; returns the JSON.
    pub(crate) fn probe_streams(file: &Path, e: &Expect) -> String {
        let json = ffprobe(&["-show_format", "-show_streams", "-count_frames"], file);
        for needle in [
            format!("\"codec_name\":\"{}\"", e.vcodec),
            format!("\"width\":{}", e.width),
            format!("\"height\":{}", e.height),
            "\"nb_read_frames\":\"100\"".to_string(),
            format!("\"codec_name\":\"{}\"", e.acodec),
            format!("\"sample_rate\":\"{}\"", e.rate),
            "\"channels\":1".to_string(),
        ] {
            assert!(json.contains(&needle), "{needle} not in {json}");
        }
        json
    }

    /// Encoder arguments of the modern ffmpeg (Enhanced RTMP codecs in FLV).
    pub(crate) const HEVC_ARGS: [&str; 4] = ["-c:v", "libx265", "-x265-params", "log-level=error"];
    pub(crate) const AV1_ARGS: [&str; 4] = ["-c:v", "libsvtav1", "-preset", "12"];
    pub(crate) const VP9_ARGS: [&str; 6] = [
        "-c:v",
        "libvpx-vp9",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
    ];
    pub(crate) const OPUS_ARGS: [&str; 4] = ["-c:a", "libopus", "-ar", "48000"];

    impl Expect {
        /// Debian's ffmpeg: libx264 640x360 and AAC at 44.1 kHz.
        pub(crate) fn h264_aac() -> Expect {
            Expect {
                vcodec: "h264",
                acodec: "aac",
                width: 640,
                height: 360,
                rate: 44_100,
                audio_frame_ms: 23,
            }
        }

        /// The modern ffmpeg: 320x180 video and Opus at 48 kHz.
        pub(crate) fn modern_opus(vcodec: &'static str) -> Expect {
            Expect {
                vcodec,
                acodec: "opus",
                width: 320,
                height: 180,
                rate: 48_000,
                audio_frame_ms: 20,
            }
        }
    }
}
