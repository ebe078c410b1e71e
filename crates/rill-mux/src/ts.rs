//! MPEG-TS muxer for HLS segments: PAT/PMT, PES packetisation with PCR, continuity counters and
//! stuffing; H.264/HEVC converted from length-prefixed NAL units to Annex B (parameter sets
//! repeated before each keyframe, access unit delimiters), AAC wrapped in ADTS, MP3 as is.
//!
//! Layout follows ISO/IEC 13818-1: one program (number 1) whose PMT is on [`PMT_PID`], video on
//! [`VIDEO_PID`], audio on [`AUDIO_PID`]. The PCR travels on the video PID (the audio PID for an
//! audio-only program). Timestamps are the sample's milliseconds times 90, masked to 33 bits.

use bytes::{BufMut, BytesMut};
use rill_media::{AudioCodec, VideoCodec};

use crate::sample::{Sample, TrackKind};
use crate::track::{TrackCodec, TrackInfo};
use crate::MuxError;

/// Size of every transport stream packet.
pub const TS_PACKET_SIZE: usize = 188;
/// PID of the Program Association Table.
pub const PAT_PID: u16 = 0x0000;
/// PID of the Program Map Table.
pub const PMT_PID: u16 = 0x1000;
/// PID of the video elementary stream.
pub const VIDEO_PID: u16 = 0x0100;
/// PID of the audio elementary stream.
pub const AUDIO_PID: u16 = 0x0101;

const SYNC_BYTE: u8 = 0x47;
const TS_PAYLOAD_SIZE: usize = TS_PACKET_SIZE - 4;
const TIMESTAMP_MASK: u64 = (1 << 33) - 1;
/// ISO/IEC 13818-1 asks for a PCR at least every 100 ms, but one can only ride on a packet we
/// are writing anyway: writing it once 40 ms have passed keeps the gap under 100 ms as long as
/// samples of the PCR track come at least every 60 ms (any video of 17 fps or more).
const PCR_PERIOD_MS: u64 = 40;
/// When the PCR track is quiet this long, a sample of the other track (audio frames come every
/// ~20-30 ms) pushes a PCR-only packet, which again keeps the gap under 100 ms.
const PCR_FALLBACK_MS: u64 = 70;
/// A PCR less than this far behind the last one is a reordering jitter between tracks (held at
/// the last value so the clock never runs backwards); further back is a timeline discontinuity.
const PCR_JITTER_MS: u64 = 1_000;
/// Upper bound of the presentation delay added to absorb negative composition offsets: anything
/// beyond is a broken stream, and its PTS is clamped to its DTS instead.
const MAX_PRESENTATION_DELAY_MS: u64 = 10_000;

const STREAM_TYPE_MPEG1_AUDIO: u8 = 0x03;
const STREAM_TYPE_MPEG2_AUDIO: u8 = 0x04;
const STREAM_TYPE_AAC_ADTS: u8 = 0x0F;
const STREAM_TYPE_H264: u8 = 0x1B;
const STREAM_TYPE_HEVC: u8 = 0x24;

const STREAM_ID_VIDEO: u8 = 0xE0;
const STREAM_ID_AUDIO: u8 = 0xC0;

const ANNEX_B_START_CODE: [u8; 4] = [0, 0, 0, 1];
/// H.264 access unit delimiter, primary_pic_type 7 (any slice type).
const AVC_AUD: [u8; 2] = [0x09, 0xF0];
/// HEVC access unit delimiter (type 35, layer 0, TemporalId 0), pic_type 2 (any slice type).
const HEVC_AUD: [u8; 3] = [0x46, 0x01, 0x50];

/// AAC sampling frequencies by their ISO/IEC 14496-3 index.
const AAC_SAMPLE_RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NalFlavor {
    Avc,
    Hevc,
}

impl NalFlavor {
    fn nal_type(self, nal: &[u8]) -> u8 {
        let first = nal.first().copied().unwrap_or(0);
        match self {
            NalFlavor::Avc => first & 0x1F,
            NalFlavor::Hevc => (first >> 1) & 0x3F,
        }
    }

    fn is_aud(self, nal_type: u8) -> bool {
        match self {
            NalFlavor::Avc => nal_type == 9,
            NalFlavor::Hevc => nal_type == 35,
        }
    }

    fn is_sps(self, nal_type: u8) -> bool {
        match self {
            NalFlavor::Avc => nal_type == 7,
            NalFlavor::Hevc => nal_type == 33,
        }
    }

    fn aud(self) -> &'static [u8] {
        match self {
            NalFlavor::Avc => &AVC_AUD,
            NalFlavor::Hevc => &HEVC_AUD,
        }
    }
}

#[derive(Debug, Clone)]
struct VideoTrack {
    flavor: NalFlavor,
    stream_type: u8,
    /// Bytes of each NAL unit length prefix in samples (avcC/hvcC lengthSizeMinusOne + 1).
    length_size: usize,
    /// VPS/SPS/PPS from the configuration record, already in Annex B form.
    parameter_sets: Vec<u8>,
}

/// The fixed part of an ADTS header (ISO/IEC 14496-3, 1.A.2.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AdtsConfig {
    /// Audio object type minus one (0 Main, 1 LC, 2 SSR, 3 LTP).
    profile: u8,
    sampling_index: u8,
    channel_config: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AudioFormat {
    Aac(AdtsConfig),
    Mp3,
}

#[derive(Debug, Clone, Copy)]
struct AudioTrack {
    format: AudioFormat,
    stream_type: u8,
}

/// A TS muxer for one video and/or one audio track.
pub struct TsMuxer {
    video: Option<VideoTrack>,
    audio: Option<AudioTrack>,
    pcr_pid: u16,
    /// Next continuity counter of PAT, PMT, video and audio.
    cc: [u8; 4],
    /// The last PCR written, in milliseconds of the sample timeline.
    last_pcr_ms: Option<u64>,
    /// Added to every PTS so that negative composition offsets still give PTS >= DTS. Only
    /// grows, and stays 0 for the usual encoders whose offsets are never negative.
    presentation_delay_ms: u64,
}

impl TsMuxer {
    /// Fails for codecs TS cannot carry here (AV1, VP9, Opus: use fMP4).
    pub fn new(video: Option<&TrackInfo>, audio: Option<&TrackInfo>) -> Result<TsMuxer, MuxError> {
        let video = video.map(video_track).transpose()?;
        let audio = audio.map(audio_track).transpose()?;
        let pcr_pid = match (&video, &audio) {
            (Some(_), _) => VIDEO_PID,
            (None, Some(_)) => AUDIO_PID,
            (None, None) => return Err(MuxError::Malformed("TS program without any track")),
        };
        Ok(TsMuxer {
            video,
            audio,
            pcr_pid,
            cc: [0; 4],
            last_pcr_ms: None,
            presentation_delay_ms: 0,
        })
    }

    /// Writes PAT and PMT; call at the start of every segment so each one decodes on its own.
    pub fn write_tables(&mut self, out: &mut BytesMut) {
        let pat = self.pat_section();
        self.write_section(PAT_PID, &pat, out);
        let pmt = self.pmt_section();
        self.write_section(PMT_PID, &pmt, out);
    }

    /// Writes one sample as a PES packet split into 188-byte TS packets.
    pub fn write_sample(&mut self, sample: &Sample, out: &mut BytesMut) -> Result<(), MuxError> {
        // Everything is validated and assembled before the first byte goes to `out`, so a
        // rejected sample leaves the stream untouched.
        match sample.kind {
            TrackKind::Video => {
                let track = self
                    .video
                    .as_ref()
                    .ok_or(MuxError::Malformed("video sample without a video track"))?;
                let payload = annex_b_access_unit(track, &sample.data, sample.keyframe)?;
                let dts = sample.dts_ms.wrapping_mul(90) & TIMESTAMP_MASK;
                let pts = self.pts(sample);
                let dts = (dts != pts).then_some(dts);
                let mut pes = pes_header(STREAM_ID_VIDEO, pts, dts, None)?;
                pes.extend_from_slice(&payload);
                self.write_pes(VIDEO_PID, &pes, sample, out);
            }
            TrackKind::Audio => {
                let track = self
                    .audio
                    .ok_or(MuxError::Malformed("audio sample without an audio track"))?;
                if sample.data.is_empty() {
                    return Err(MuxError::Malformed("empty audio frame"));
                }
                let pts = self.pts(sample);
                let mut pes = match track.format {
                    AudioFormat::Aac(config) => {
                        let adts = adts_header(config, sample.data.len())?;
                        let mut pes = pes_header(
                            STREAM_ID_AUDIO,
                            pts,
                            None,
                            Some(adts.len() + sample.data.len()),
                        )?;
                        pes.extend_from_slice(&adts);
                        pes
                    }
                    AudioFormat::Mp3 => {
                        pes_header(STREAM_ID_AUDIO, pts, None, Some(sample.data.len()))?
                    }
                };
                pes.extend_from_slice(&sample.data);
                self.write_pes(AUDIO_PID, &pes, sample, out);
            }
        }
        Ok(())
    }

    /// The 90 kHz PTS of a sample, including the presentation delay.
    fn pts(&mut self, sample: &Sample) -> u64 {
        if sample.cts_ms < 0 {
            let needed = u64::from(sample.cts_ms.unsigned_abs()).min(MAX_PRESENTATION_DELAY_MS);
            self.presentation_delay_ms = self.presentation_delay_ms.max(needed);
        }
        let shift = i64::from(sample.cts_ms) + self.presentation_delay_ms as i64;
        // Clamped for offsets beyond the delay cap: a frame is never presented before decoded.
        let shift = shift.max(0) as u64;
        sample.dts_ms.wrapping_add(shift).wrapping_mul(90) & TIMESTAMP_MASK
    }

    fn pat_section(&self) -> Vec<u8> {
        let mut s = Vec::with_capacity(16);
        s.push(0x00); // table_id: program_association_section
        s.extend_from_slice(&[0, 0]); // section_length, patched by finish_section
        s.extend_from_slice(&1u16.to_be_bytes()); // transport_stream_id
        s.push(0xC1); // reserved, version 0, current_next_indicator
        s.extend_from_slice(&[0, 0]); // section_number, last_section_number
        s.extend_from_slice(&1u16.to_be_bytes()); // program_number
        s.extend_from_slice(&(0xE000 | PMT_PID).to_be_bytes());
        finish_section(s)
    }

    fn pmt_section(&self) -> Vec<u8> {
        let mut s = Vec::with_capacity(40);
        s.push(0x02); // table_id: TS_program_map_section
        s.extend_from_slice(&[0, 0]);
        s.extend_from_slice(&1u16.to_be_bytes()); // program_number
        s.push(0xC1);
        s.extend_from_slice(&[0, 0]);
        s.extend_from_slice(&(0xE000 | self.pcr_pid).to_be_bytes());
        s.extend_from_slice(&0xF000u16.to_be_bytes()); // program_info_length 0
        if let Some(v) = &self.video {
            s.push(v.stream_type);
            s.extend_from_slice(&(0xE000 | VIDEO_PID).to_be_bytes());
            if v.flavor == NalFlavor::Hevc {
                // Registration descriptor 'HEVC': some players look for it besides type 0x24.
                s.extend_from_slice(&0xF006u16.to_be_bytes());
                s.extend_from_slice(&[0x05, 0x04, b'H', b'E', b'V', b'C']);
            } else {
                s.extend_from_slice(&0xF000u16.to_be_bytes());
            }
        }
        if let Some(a) = &self.audio {
            s.push(a.stream_type);
            s.extend_from_slice(&(0xE000 | AUDIO_PID).to_be_bytes());
            s.extend_from_slice(&0xF000u16.to_be_bytes());
        }
        finish_section(s)
    }

    /// Writes a PSI section that fits one packet: pointer field, section, 0xFF filler.
    fn write_section(&mut self, pid: u16, section: &[u8], out: &mut BytesMut) {
        let cc = self.next_cc(pid);
        out.reserve(TS_PACKET_SIZE);
        put_ts_header(out, pid, true, 0b01, cc);
        out.put_u8(0); // pointer_field
        let len = section.len().min(TS_PAYLOAD_SIZE - 1);
        out.put_slice(&section[..len]);
        out.put_bytes(0xFF, TS_PAYLOAD_SIZE - 1 - len);
    }

    fn cc_slot(pid: u16) -> usize {
        match pid {
            PAT_PID => 0,
            PMT_PID => 1,
            VIDEO_PID => 2,
            _ => 3,
        }
    }

    fn next_cc(&mut self, pid: u16) -> u8 {
        let slot = &mut self.cc[Self::cc_slot(pid)];
        let cc = *slot;
        *slot = (cc + 1) & 0x0F;
        cc
    }

    /// The PCR to put on the first packet of this sample's PES, if one is due.
    fn pcr_for(&mut self, pid: u16, sample: &Sample) -> Option<u64> {
        if pid != self.pcr_pid {
            return None;
        }
        let now = sample.dts_ms;
        let due = match self.last_pcr_ms {
            None => true,
            Some(last) => sample.keyframe || now >= last.saturating_add(PCR_PERIOD_MS),
        };
        due.then(|| self.advance_pcr(now))
    }

    /// Records a PCR at `now` ms and returns its 90 kHz base, never stepping back over jitter.
    fn advance_pcr(&mut self, now: u64) -> u64 {
        let value = match self.last_pcr_ms {
            Some(last) if now < last && last - now < PCR_JITTER_MS => last,
            _ => now,
        };
        self.last_pcr_ms = Some(value);
        value.wrapping_mul(90) & TIMESTAMP_MASK
    }

    /// When the PCR track is quiet (sparse video), a sample of the other track carries the clock
    /// forward in an adaptation-field-only packet on the PCR PID.
    fn write_pcr_only_if_due(&mut self, pid: u16, sample: &Sample, out: &mut BytesMut) {
        if pid == self.pcr_pid {
            return;
        }
        let Some(last) = self.last_pcr_ms else {
            return;
        };
        if sample.dts_ms < last.saturating_add(PCR_FALLBACK_MS) {
            return;
        }
        let pcr = self.advance_pcr(sample.dts_ms);
        // A packet without payload repeats the PID's last continuity counter.
        let slot = Self::cc_slot(self.pcr_pid);
        let cc = self.cc[slot].wrapping_sub(1) & 0x0F;
        out.reserve(TS_PACKET_SIZE);
        put_ts_header(out, self.pcr_pid, false, 0b10, cc);
        out.put_u8((TS_PAYLOAD_SIZE - 1) as u8);
        out.put_u8(0x10);
        put_pcr(out, pcr);
        out.put_bytes(0xFF, TS_PAYLOAD_SIZE - 8);
    }

    /// Splits a whole PES packet into TS packets, the last one padded by adaptation stuffing.
    fn write_pes(&mut self, pid: u16, pes: &[u8], sample: &Sample, out: &mut BytesMut) {
        self.write_pcr_only_if_due(pid, sample, out);
        let pcr = self.pcr_for(pid, sample);
        out.reserve(pes.len().div_ceil(TS_PAYLOAD_SIZE - 8).max(1) * TS_PACKET_SIZE);
        let mut rest = pes;
        let mut first = true;
        while first || !rest.is_empty() {
            let (pcr, rai) = if first {
                (pcr, sample.keyframe)
            } else {
                (None, false)
            };
            let taken = self.write_packet(pid, first, rai, pcr, rest, out);
            rest = rest.get(taken..).unwrap_or_default();
            first = false;
        }
    }

    /// Writes one TS packet with as much of `data` as fits; returns how much it took.
    fn write_packet(
        &mut self,
        pid: u16,
        start: bool,
        random_access: bool,
        pcr: Option<u64>,
        data: &[u8],
        out: &mut BytesMut,
    ) -> usize {
        // Adaptation field bytes required before stuffing: length, flags, optional PCR.
        let fields = if random_access || pcr.is_some() {
            2 + if pcr.is_some() { 6 } else { 0 }
        } else {
            0
        };
        let room = TS_PAYLOAD_SIZE - fields;
        let taken = data.len().min(room);
        let stuffing = room - taken;
        let adaptation_len = fields + stuffing;
        let cc = self.next_cc(pid);
        let control = if adaptation_len > 0 { 0b11 } else { 0b01 };
        put_ts_header(out, pid, start, control, cc);
        if adaptation_len > 0 {
            // adaptation_field_length counts the bytes after itself.
            out.put_u8((adaptation_len - 1) as u8);
            if adaptation_len > 1 {
                let mut flags = 0u8;
                if random_access {
                    flags |= 0x40;
                }
                if pcr.is_some() {
                    flags |= 0x10;
                }
                out.put_u8(flags);
                if let Some(pcr) = pcr {
                    put_pcr(out, pcr);
                }
                let written = 2 + if pcr.is_some() { 6 } else { 0 };
                out.put_bytes(0xFF, adaptation_len - written);
            }
        }
        out.put_slice(&data[..taken]);
        taken
    }
}

fn put_ts_header(out: &mut BytesMut, pid: u16, start: bool, control: u8, cc: u8) {
    out.put_u8(SYNC_BYTE);
    let pusi = if start { 0x40 } else { 0 };
    out.put_u8(pusi | ((pid >> 8) as u8 & 0x1F));
    out.put_u8(pid as u8);
    out.put_u8((control << 4) | (cc & 0x0F));
}

/// PCR base (33 bits of 90 kHz), 6 reserved bits, extension 0 (the 27 MHz remainder).
fn put_pcr(out: &mut BytesMut, base: u64) {
    let base = base & TIMESTAMP_MASK;
    out.put_u8((base >> 25) as u8);
    out.put_u8((base >> 17) as u8);
    out.put_u8((base >> 9) as u8);
    out.put_u8((base >> 1) as u8);
    out.put_u8((((base & 1) as u8) << 7) | 0x7E);
    out.put_u8(0);
}

/// Fills in section_length and appends the CRC.
fn finish_section(mut s: Vec<u8>) -> Vec<u8> {
    // section_length counts from after itself through the CRC.
    let len = (s.len() - 3 + 4) as u16;
    s[1] = 0xB0 | ((len >> 8) as u8 & 0x0F);
    s[2] = len as u8;
    let crc = crc32_mpeg2(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

/// CRC-32/MPEG-2: polynomial 0x04C11DB7, initial value all ones, no reflection, no final xor.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Writes a 5-byte PTS or DTS field with its 4-bit prefix and marker bits.
fn put_timestamp(out: &mut Vec<u8>, prefix: u8, ts: u64) {
    let ts = ts & TIMESTAMP_MASK;
    out.push((prefix << 4) | (((ts >> 30) as u8 & 0x07) << 1) | 1);
    out.extend_from_slice(&((((ts >> 15) & 0x7FFF) << 1 | 1) as u16).to_be_bytes());
    out.extend_from_slice(&((((ts & 0x7FFF) << 1) | 1) as u16).to_be_bytes());
}

/// A PES header. `payload_len` is `None` for video, whose PES_packet_length is 0 (unbounded).
fn pes_header(
    stream_id: u8,
    pts: u64,
    dts: Option<u64>,
    payload_len: Option<usize>,
) -> Result<Vec<u8>, MuxError> {
    let header_data_len: usize = if dts.is_some() { 10 } else { 5 };
    let packet_len = match payload_len {
        None => 0,
        Some(n) => u16::try_from(3 + header_data_len + n)
            .map_err(|_| MuxError::Malformed("audio frame too large for one PES packet"))?,
    };
    let mut h = Vec::with_capacity(9 + header_data_len + TS_PAYLOAD_SIZE);
    h.extend_from_slice(&[0, 0, 1, stream_id]);
    h.extend_from_slice(&packet_len.to_be_bytes());
    // '10', not scrambled, data_alignment_indicator: every PES starts an access unit.
    h.push(0x84);
    h.push(if dts.is_some() { 0xC0 } else { 0x80 });
    h.push(header_data_len as u8);
    match dts {
        Some(dts) => {
            put_timestamp(&mut h, 0b0011, pts);
            put_timestamp(&mut h, 0b0001, dts);
        }
        None => put_timestamp(&mut h, 0b0010, pts),
    }
    Ok(h)
}

/// A 7-byte ADTS header (no CRC) for a raw AAC frame of `frame_len` bytes.
fn adts_header(c: AdtsConfig, frame_len: usize) -> Result<[u8; 7], MuxError> {
    let len = frame_len + 7;
    if len > 0x1FFF {
        return Err(MuxError::Malformed("AAC frame too large for ADTS"));
    }
    let len = len as u16;
    Ok([
        0xFF,
        0xF1, // syncword, MPEG-4, layer 0, protection_absent
        (c.profile << 6) | (c.sampling_index << 2) | ((c.channel_config >> 2) & 0x01),
        ((c.channel_config & 0x03) << 6) | (len >> 11) as u8,
        (len >> 3) as u8,
        ((len as u8 & 0x07) << 5) | 0x1F, // buffer fullness 0x7FF: variable bit rate
        0xFC,                             // one raw data block
    ])
}

fn video_track(info: &TrackInfo) -> Result<VideoTrack, MuxError> {
    let (flavor, stream_type) = match info.codec {
        TrackCodec::Video(VideoCodec::Avc) => (NalFlavor::Avc, STREAM_TYPE_H264),
        TrackCodec::Video(VideoCodec::Hevc) => (NalFlavor::Hevc, STREAM_TYPE_HEVC),
        TrackCodec::Video(VideoCodec::Av1) => return Err(MuxError::UnsupportedCodec("AV1")),
        TrackCodec::Video(VideoCodec::Vp9) => return Err(MuxError::UnsupportedCodec("VP9")),
        TrackCodec::Video(_) => return Err(MuxError::UnsupportedCodec("video codec")),
        TrackCodec::Audio(_) => return Err(MuxError::Malformed("audio codec on the video track")),
    };
    let (length_size, parameter_sets) = if info.config.is_empty() {
        // No record: parameter sets can only come in band; FLV's customary 4-byte prefixes.
        (4, Vec::new())
    } else {
        match flavor {
            NalFlavor::Avc => parse_avcc(&info.config)?,
            NalFlavor::Hevc => parse_hvcc(&info.config)?,
        }
    };
    Ok(VideoTrack {
        flavor,
        stream_type,
        length_size,
        parameter_sets,
    })
}

fn audio_track(info: &TrackInfo) -> Result<AudioTrack, MuxError> {
    match info.codec {
        TrackCodec::Audio(AudioCodec::Aac) => Ok(AudioTrack {
            format: AudioFormat::Aac(adts_config(info)?),
            stream_type: STREAM_TYPE_AAC_ADTS,
        }),
        TrackCodec::Audio(AudioCodec::Mp3) => Ok(AudioTrack {
            format: AudioFormat::Mp3,
            // MPEG-2 audio (ISO/IEC 13818-3) adds the half sampling rates below 32 kHz.
            stream_type: if info.sample_rate != 0 && info.sample_rate < 32_000 {
                STREAM_TYPE_MPEG2_AUDIO
            } else {
                STREAM_TYPE_MPEG1_AUDIO
            },
        }),
        TrackCodec::Audio(AudioCodec::Opus) => Err(MuxError::UnsupportedCodec("Opus")),
        TrackCodec::Audio(_) => Err(MuxError::UnsupportedCodec("audio codec")),
        TrackCodec::Video(_) => Err(MuxError::Malformed("video codec on the audio track")),
    }
}

/// A bounds-checked big-endian cursor over a configuration record.
struct ByteReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        ByteReader { data, pos: 0 }
    }

    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], MuxError> {
        let end = self.pos.checked_add(n).ok_or(MuxError::Malformed(what))?;
        let b = self
            .data
            .get(self.pos..end)
            .ok_or(MuxError::Malformed(what))?;
        self.pos = end;
        Ok(b)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, MuxError> {
        let b = self.bytes(1, what)?;
        b.first().copied().ok_or(MuxError::Malformed(what))
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, MuxError> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
}

fn push_annex_b(out: &mut Vec<u8>, nal: &[u8]) {
    out.extend_from_slice(&ANNEX_B_START_CODE);
    out.extend_from_slice(nal);
}

/// Reads an AVCDecoderConfigurationRecord (ISO/IEC 14496-15, 5.3.3.1): NAL length size and
/// the SPS and PPS in Annex B form.
fn parse_avcc(record: &[u8]) -> Result<(usize, Vec<u8>), MuxError> {
    const WHAT: &str = "avcC record";
    let mut r = ByteReader::new(record);
    if r.u8(WHAT)? != 1 {
        return Err(MuxError::Malformed("avcC version"));
    }
    r.bytes(3, WHAT)?; // profile, compatibility, level
    let length_size = usize::from(r.u8(WHAT)? & 0x03) + 1;
    let mut sets = Vec::new();
    let sps_count = r.u8(WHAT)? & 0x1F;
    for _ in 0..sps_count {
        let len = usize::from(r.u16(WHAT)?);
        push_annex_b(&mut sets, r.bytes(len, WHAT)?);
    }
    let pps_count = r.u8(WHAT)?;
    for _ in 0..pps_count {
        let len = usize::from(r.u16(WHAT)?);
        push_annex_b(&mut sets, r.bytes(len, WHAT)?);
    }
    // High-profile chroma/bit-depth extensions may follow; the decoder reads those from the SPS.
    Ok((length_size, sets))
}

/// Reads an HEVCDecoderConfigurationRecord (ISO/IEC 14496-15, 8.3.3.1): NAL length size and
/// the VPS, SPS and PPS, in that order, in Annex B form. Other arrays (SEI) are left out.
fn parse_hvcc(record: &[u8]) -> Result<(usize, Vec<u8>), MuxError> {
    const WHAT: &str = "hvcC record";
    let mut r = ByteReader::new(record);
    if r.u8(WHAT)? != 1 {
        return Err(MuxError::Malformed("hvcC version"));
    }
    r.bytes(20, WHAT)?; // profile/tier/level, segmentation, chroma, bit depths, frame rate
    let length_size = usize::from(r.u8(WHAT)? & 0x03) + 1;
    let array_count = r.u8(WHAT)?;
    let mut by_type: [Vec<u8>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..array_count {
        let nal_type = r.u8(WHAT)? & 0x3F;
        let count = r.u16(WHAT)?;
        for _ in 0..count {
            let len = usize::from(r.u16(WHAT)?);
            let nal = r.bytes(len, WHAT)?;
            if let Some(slot) = nal_type
                .checked_sub(32)
                .and_then(|i| by_type.get_mut(usize::from(i)))
            {
                push_annex_b(slot, nal);
            }
        }
    }
    Ok((length_size, by_type.concat()))
}

/// Converts a length-prefixed access unit to Annex B: AUD, parameter sets on keyframes (unless
/// the sample carries its own), then the sample's NAL units minus any AUD of its own.
fn annex_b_access_unit(
    track: &VideoTrack,
    data: &[u8],
    keyframe: bool,
) -> Result<Vec<u8>, MuxError> {
    let mut nals: Vec<&[u8]> = Vec::new();
    let mut rest = data;
    let mut has_sps = false;
    while !rest.is_empty() {
        let (prefix, body) = rest
            .split_at_checked(track.length_size)
            .ok_or(MuxError::Malformed("truncated NAL unit length"))?;
        let len = prefix
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let (nal, tail) = body
            .split_at_checked(len)
            .ok_or(MuxError::Malformed("NAL unit longer than its sample"))?;
        rest = tail;
        if nal.is_empty() {
            continue;
        }
        let nal_type = track.flavor.nal_type(nal);
        if track.flavor.is_aud(nal_type) {
            continue;
        }
        has_sps |= track.flavor.is_sps(nal_type);
        nals.push(nal);
    }
    if nals.is_empty() {
        return Err(MuxError::Malformed("video sample without NAL units"));
    }
    let aud = track.flavor.aud();
    let body: usize = nals
        .iter()
        .map(|n| n.len() + ANNEX_B_START_CODE.len())
        .sum();
    let mut out = Vec::with_capacity(4 + aud.len() + track.parameter_sets.len() + body);
    push_annex_b(&mut out, aud);
    if keyframe && !has_sps {
        out.extend_from_slice(&track.parameter_sets);
    }
    for nal in nals {
        push_annex_b(&mut out, nal);
    }
    Ok(out)
}

/// A small MSB-first bit reader for the AudioSpecificConfig.
struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
}

impl BitReader<'_> {
    fn bits(&mut self, n: u32) -> Result<u32, MuxError> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = self
                .data
                .get(self.bit / 8)
                .ok_or(MuxError::Malformed("AudioSpecificConfig"))?;
            v = (v << 1) | u32::from((byte >> (7 - self.bit % 8)) & 1);
            self.bit += 1;
        }
        Ok(v)
    }

    fn object_type(&mut self) -> Result<u32, MuxError> {
        let t = self.bits(5)?;
        Ok(if t == 31 { 32 + self.bits(6)? } else { t })
    }

    fn sampling_index(&mut self) -> Result<u8, MuxError> {
        let i = self.bits(4)?;
        if i != 15 {
            return Ok(i as u8);
        }
        let rate = self.bits(24)?;
        sampling_index_of(rate).ok_or(MuxError::UnsupportedCodec(
            "AAC sampling rate without an ADTS index",
        ))
    }
}

fn sampling_index_of(rate: u32) -> Option<u8> {
    AAC_SAMPLE_RATES
        .iter()
        .position(|&r| r == rate)
        .map(|i| i as u8)
}

/// Fields of an AudioSpecificConfig (ISO/IEC 14496-3, 1.6.2.1) as ADTS needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AscFields {
    /// The core object type (for SBR/PS, the one underneath: ADTS signals them implicitly).
    pub object_type: u8,
    /// Index into the AAC sampling frequency table.
    pub sampling_index: u8,
    /// Its sampling frequency in Hz, if the index is a defined one.
    pub sample_rate: Option<u32>,
    pub channel_config: u8,
}

/// Parses the leading fields of an AudioSpecificConfig.
pub fn parse_audio_specific_config(asc: &[u8]) -> Result<AscFields, MuxError> {
    let mut r = BitReader { data: asc, bit: 0 };
    let mut object_type = r.object_type()?;
    let sampling_index = r.sampling_index()?;
    let channel_config = r.bits(4)? as u8;
    if object_type == 5 || object_type == 29 {
        // Explicit SBR/PS: extension sampling index, then the core object type.
        r.sampling_index()?;
        object_type = r.object_type()?;
    }
    Ok(AscFields {
        object_type: u8::try_from(object_type).unwrap_or(u8::MAX),
        sampling_index,
        sample_rate: AAC_SAMPLE_RATES.get(usize::from(sampling_index)).copied(),
        channel_config,
    })
}

fn adts_config(info: &TrackInfo) -> Result<AdtsConfig, MuxError> {
    if info.config.is_empty() {
        // No AudioSpecificConfig: assume AAC-LC with the track's rate and channels.
        let sampling_index = sampling_index_of(info.sample_rate)
            .ok_or(MuxError::Malformed("AAC track without AudioSpecificConfig"))?;
        let channel_config = channel_config_of(info.channels)
            .ok_or(MuxError::Malformed("AAC track without AudioSpecificConfig"))?;
        return Ok(AdtsConfig {
            profile: 1,
            sampling_index,
            channel_config,
        });
    }
    let asc = parse_audio_specific_config(&info.config)?;
    if !(1..=4).contains(&asc.object_type) {
        return Err(MuxError::UnsupportedCodec(
            "AAC object type without an ADTS profile",
        ));
    }
    if asc.sampling_index > 12 {
        return Err(MuxError::Malformed("AAC sampling frequency index"));
    }
    let channel_config = match asc.channel_config {
        // Layout in a program config element: fall back to the declared channel count.
        0 => channel_config_of(info.channels)
            .ok_or(MuxError::UnsupportedCodec("AAC channel layout"))?,
        c @ 1..=7 => c,
        _ => return Err(MuxError::UnsupportedCodec("AAC channel layout")),
    };
    Ok(AdtsConfig {
        profile: asc.object_type - 1,
        sampling_index: asc.sampling_index,
        channel_config,
    })
}

fn channel_config_of(channels: u8) -> Option<u8> {
    match channels {
        1..=6 => Some(channels),
        8 => Some(7),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // The track and sample fixtures are the ones the MP4 writers' tests use.
    use crate::boxes::testing::{audio as audio_info, sample, video as video_info};
    use proptest::prelude::*;
    use std::collections::HashMap;

    const AVCC: &[u8] = &[
        1, 0x42, 0x00, 0x1E, 0xFF, 0xE1, 0, 3, 0x67, 0x42, 0x00, 1, 0, 2, 0x68, 0xCE,
    ];

    /// Length-prefixes NAL units with 4-byte lengths.
    fn avcc_sample(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&(n.len() as u32).to_be_bytes());
            v.extend_from_slice(n);
        }
        v
    }

    #[derive(Debug, Default)]
    struct Demuxed {
        /// Every packet, in order.
        packets: Vec<[u8; TS_PACKET_SIZE]>,
        /// Whole PES packets (or PSI payloads) by PID.
        units: HashMap<u16, Vec<Vec<u8>>>,
    }

    fn pid_of(p: &[u8]) -> u16 {
        (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2])
    }

    /// A strict reader: checks sync bytes, continuity counters and adaptation fields.
    fn demux(ts: &[u8]) -> Demuxed {
        assert_eq!(ts.len() % TS_PACKET_SIZE, 0, "whole packets only");
        let mut d = Demuxed::default();
        let mut last_cc: HashMap<u16, u8> = HashMap::new();
        for p in ts.chunks(TS_PACKET_SIZE) {
            assert_eq!(p[0], SYNC_BYTE);
            let pid = pid_of(p);
            let pusi = p[1] & 0x40 != 0;
            let control = (p[3] >> 4) & 0x03;
            let cc = p[3] & 0x0F;
            assert_ne!(control, 0);
            let has_payload = control & 0x01 != 0;
            if let Some(&prev) = last_cc.get(&pid) {
                let want = if has_payload { (prev + 1) & 0x0F } else { prev };
                assert_eq!(cc, want, "continuity counter of PID {pid:#x}");
            }
            last_cc.insert(pid, cc);
            let mut start = 4;
            if control & 0x02 != 0 {
                let len = usize::from(p[4]);
                if has_payload {
                    assert!(len <= 182);
                } else {
                    assert_eq!(len, 183);
                }
                if len > 0 {
                    let flags = p[5];
                    let fixed = 1 + if flags & 0x10 != 0 { 6 } else { 0 };
                    assert!(len >= fixed);
                    assert!(p[5 + fixed..5 + len].iter().all(|&b| b == 0xFF), "stuffing");
                }
                start = 5 + len;
            }
            d.packets.push(p.try_into().unwrap());
            if !has_payload {
                continue;
            }
            let units = d.units.entry(pid).or_default();
            if pusi {
                units.push(Vec::new());
            }
            units
                .last_mut()
                .expect("payload before the unit start")
                .extend_from_slice(&p[start..]);
        }
        d
    }

    fn adaptation(p: &[u8]) -> Option<&[u8]> {
        (p[3] & 0x20 != 0).then(|| &p[5..5 + usize::from(p[4])])
    }

    fn pcr_of(p: &[u8]) -> Option<u64> {
        let af = adaptation(p)?;
        if af.is_empty() || af[0] & 0x10 == 0 {
            return None;
        }
        let b = &af[1..7];
        Some(
            (u64::from(b[0]) << 25)
                | (u64::from(b[1]) << 17)
                | (u64::from(b[2]) << 9)
                | (u64::from(b[3]) << 1)
                | u64::from(b[4] >> 7),
        )
    }

    fn read_timestamp(b: &[u8]) -> u64 {
        assert_eq!(b[0] & 1, 1);
        assert_eq!(b[2] & 1, 1);
        assert_eq!(b[4] & 1, 1);
        (u64::from(b[0] >> 1 & 0x07) << 30)
            | (u64::from(u16::from_be_bytes([b[1], b[2]]) >> 1) << 15)
            | u64::from(u16::from_be_bytes([b[3], b[4]]) >> 1)
    }

    /// Splits a PES packet into (stream id, PTS, DTS, payload).
    fn parse_pes(pes: &[u8]) -> (u8, u64, Option<u64>, &[u8]) {
        assert_eq!(&pes[..3], &[0, 0, 1]);
        let len = usize::from(u16::from_be_bytes([pes[4], pes[5]]));
        let flags = pes[7];
        let hlen = usize::from(pes[8]);
        let pts = read_timestamp(&pes[9..14]);
        let dts = (flags & 0x40 != 0).then(|| read_timestamp(&pes[14..19]));
        let payload = &pes[9 + hlen..];
        if len != 0 {
            assert_eq!(len, pes.len() - 6, "PES_packet_length");
        }
        (pes[3], pts, dts, payload)
    }

    fn avc_audio_muxer() -> TsMuxer {
        TsMuxer::new(
            Some(&video_info(VideoCodec::Avc, AVCC)),
            Some(&audio_info(AudioCodec::Aac, &[0x12, 0x10], 44_100, 2)),
        )
        .unwrap()
    }

    #[test]
    fn crc_check_value() {
        // The CRC-32/MPEG-2 catalogue check value.
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
        // Running the CRC over a section including its CRC leaves zero.
        let s = finish_section(vec![0, 0, 0, 1, 2, 3]);
        assert_eq!(crc32_mpeg2(&s), 0);
    }

    #[test]
    fn pat_and_pmt_match_ffmpeg() {
        let mut m = avc_audio_muxer();
        let mut out = BytesMut::new();
        m.write_tables(&mut out);
        assert_eq!(out.len(), 2 * TS_PACKET_SIZE);
        // Byte for byte what ffmpeg 5.1's mpegts muxer writes for H.264 + AAC.
        let pat =
            b"\x47\x40\x00\x10\x00\x00\xb0\x0d\x00\x01\xc1\x00\x00\x00\x01\xf0\x00\x2a\xb1\x04\xb2";
        assert_eq!(&out[..pat.len()], pat);
        assert!(out[pat.len()..TS_PACKET_SIZE].iter().all(|&b| b == 0xFF));
        let pmt = b"\x47\x50\x00\x10\x00\x02\xb0\x17\x00\x01\xc1\x00\x00\xe1\x00\xf0\x00\x1b\xe1\x00\xf0\x00\x0f\xe1\x01\xf0\x00\x2f\x44\xb9\x9b";
        let second = &out[TS_PACKET_SIZE..];
        assert_eq!(&second[..pmt.len()], pmt);
        assert!(second[pmt.len()..].iter().all(|&b| b == 0xFF));

        // Continuity counters advance with every table repetition.
        out.clear();
        m.write_tables(&mut out);
        assert_eq!(out[3], 0x11);
        assert_eq!(out[TS_PACKET_SIZE + 3], 0x11);
    }

    #[test]
    fn hevc_pmt_matches_ffmpeg() {
        let mut m = TsMuxer::new(Some(&video_info(VideoCodec::Hevc, &[])), None).unwrap();
        let mut out = BytesMut::new();
        m.write_tables(&mut out);
        let pmt = b"\x02\xb0\x18\x00\x01\xc1\x00\x00\xe1\x00\xf0\x00\x24\xe1\x00\xf0\x06\x05\x04HEVC\xcb\x9e\x00\x52";
        assert_eq!(
            &out[TS_PACKET_SIZE + 5..TS_PACKET_SIZE + 5 + pmt.len()],
            pmt
        );
    }

    #[test]
    fn audio_only_pmt() {
        let mut m = TsMuxer::new(None, Some(&audio_info(AudioCodec::Mp3, &[], 44_100, 2))).unwrap();
        let mut out = BytesMut::new();
        m.write_tables(&mut out);
        let section = &out[TS_PACKET_SIZE + 5..];
        // PCR on the audio PID, one stream of type MPEG-1 audio.
        assert_eq!(&section[8..10], &[0xE1, 0x01]);
        assert_eq!(&section[12..17], &[0x03, 0xE1, 0x01, 0xF0, 0x00]);
        assert_eq!(u16::from_be_bytes([section[1], section[2]]) & 0x0FFF, 18);
        assert_eq!(crc32_mpeg2(&section[..21]), 0);
        let m = TsMuxer::new(None, Some(&audio_info(AudioCodec::Mp3, &[], 22_050, 2))).unwrap();
        assert_eq!(m.audio.unwrap().stream_type, STREAM_TYPE_MPEG2_AUDIO);
    }

    #[test]
    fn unsupported_codecs() {
        let err = |v: Option<&TrackInfo>, a: Option<&TrackInfo>| TsMuxer::new(v, a).err();
        assert_eq!(
            err(Some(&video_info(VideoCodec::Av1, b"\x81")), None),
            Some(MuxError::UnsupportedCodec("AV1"))
        );
        assert_eq!(
            err(Some(&video_info(VideoCodec::Vp9, b"")), None),
            Some(MuxError::UnsupportedCodec("VP9"))
        );
        assert_eq!(
            err(
                None,
                Some(&audio_info(AudioCodec::Opus, b"OpusHead", 48_000, 2))
            ),
            Some(MuxError::UnsupportedCodec("Opus"))
        );
        assert!(matches!(
            err(Some(&video_info(VideoCodec::Vp6, b"")), None),
            Some(MuxError::UnsupportedCodec(_))
        ));
        assert!(matches!(err(None, None), Some(MuxError::Malformed(_))));
        // HE-AAC v2 with a core object type ADTS cannot express (ER AAC-LD = 23).
        assert!(matches!(
            err(
                None,
                Some(&audio_info(AudioCodec::Aac, &[0xB9, 0x88], 48_000, 1))
            ),
            Some(MuxError::UnsupportedCodec(_))
        ));
    }

    #[test]
    fn timestamp_encoding() {
        let mut v = Vec::new();
        put_timestamp(&mut v, 0b0010, 90_000);
        assert_eq!(v, [0x21, 0x00, 0x05, 0xBF, 0x21]);
        v.clear();
        put_timestamp(&mut v, 0b0011, TIMESTAMP_MASK);
        assert_eq!(v, [0x3F, 0xFF, 0xFF, 0xFF, 0xFF]);
        v.clear();
        put_timestamp(&mut v, 0b0001, 0);
        assert_eq!(v, [0x11, 0x00, 0x01, 0x00, 0x01]);
        // Bits above 33 are dropped: the clock wraps.
        v.clear();
        put_timestamp(&mut v, 0b0010, (1 << 33) + 90_000);
        assert_eq!(v, [0x21, 0x00, 0x05, 0xBF, 0x21]);
        for ts in [0, 1, 0x7FFF, 0x8000, 0x1_2345_6789, TIMESTAMP_MASK] {
            v.clear();
            put_timestamp(&mut v, 0b0010, ts);
            assert_eq!(read_timestamp(&v), ts);
        }
    }

    #[test]
    fn pes_headers() {
        let h = pes_header(STREAM_ID_VIDEO, 9000, Some(3600), None).unwrap();
        assert_eq!(&h[..9], &[0, 0, 1, 0xE0, 0, 0, 0x84, 0xC0, 10]);
        assert_eq!(h[9] >> 4, 0b0011);
        assert_eq!(h[14] >> 4, 0b0001);
        assert_eq!(
            (read_timestamp(&h[9..]), read_timestamp(&h[14..])),
            (9000, 3600)
        );
        let h = pes_header(STREAM_ID_AUDIO, 0, None, Some(100)).unwrap();
        assert_eq!(&h[..9], &[0, 0, 1, 0xC0, 0, 108, 0x84, 0x80, 5]);
        assert_eq!(h.len(), 14);
        assert!(pes_header(STREAM_ID_AUDIO, 0, None, Some(65_528)).is_err());
        assert!(pes_header(STREAM_ID_AUDIO, 0, None, Some(65_527)).is_ok());
    }

    #[test]
    fn adts_header_fields() {
        let lc = AdtsConfig {
            profile: 1,
            sampling_index: 4,
            channel_config: 2,
        };
        assert_eq!(
            adts_header(lc, 100).unwrap(),
            [0xFF, 0xF1, 0x50, 0x80, 0x0D, 0x7F, 0xFC]
        );
        // Field by field for a frame with all length bits in use.
        let c = AdtsConfig {
            profile: 3,
            sampling_index: 11,
            channel_config: 7,
        };
        let h = adts_header(c, 0x1FFF - 7).unwrap();
        assert_eq!(u16::from_be_bytes([h[0], h[1]]) >> 4, 0xFFF);
        assert_eq!(h[1] & 0x01, 1, "protection absent");
        assert_eq!(h[2] >> 6, 3);
        assert_eq!((h[2] >> 2) & 0x0F, 11);
        assert_eq!(((h[2] & 1) << 2) | (h[3] >> 6), 7);
        let len = (u16::from(h[3] & 0x03) << 11) | (u16::from(h[4]) << 3) | u16::from(h[5] >> 5);
        assert_eq!(len, 0x1FFF);
        assert_eq!(h[6] & 0x03, 0, "one raw data block");
        assert!(adts_header(c, 0x1FFF - 6).is_err());
    }

    #[test]
    fn audio_specific_config() {
        let lc = parse_audio_specific_config(&[0x12, 0x10]).unwrap();
        assert_eq!(
            lc,
            AscFields {
                object_type: 2,
                sampling_index: 4,
                sample_rate: Some(44_100),
                channel_config: 2
            }
        );
        // Explicit HE-AAC: SBR (5), 24 kHz core, stereo, 48 kHz extension, LC core.
        let he = parse_audio_specific_config(&[0x2B, 0x11, 0x88]).unwrap();
        assert_eq!(
            (he.object_type, he.sampling_index, he.channel_config),
            (2, 6, 2)
        );
        // Escaped sampling frequency 48000 = 0x00BB80 maps to index 3.
        let esc = parse_audio_specific_config(&[0x17, 0x80, 0x5D, 0xC0, 0x08]).unwrap();
        assert_eq!(
            (esc.object_type, esc.sampling_index, esc.channel_config),
            (2, 3, 1)
        );
        for cut in 0..2 {
            assert!(parse_audio_specific_config(&[0x12, 0x10][..cut]).is_err());
        }
        // Configless AAC falls back to the track's rate and channels.
        let m = TsMuxer::new(None, Some(&audio_info(AudioCodec::Aac, &[], 48_000, 1))).unwrap();
        assert_eq!(
            m.audio.unwrap().format,
            AudioFormat::Aac(AdtsConfig {
                profile: 1,
                sampling_index: 3,
                channel_config: 1
            })
        );
    }

    #[test]
    fn avcc_and_annex_b() {
        let track = video_track(&video_info(VideoCodec::Avc, AVCC)).unwrap();
        assert_eq!(track.length_size, 4);
        assert_eq!(
            track.parameter_sets,
            b"\0\0\0\x01\x67\x42\x00\0\0\0\x01\x68\xCE".to_vec()
        );
        let data = avcc_sample(&[b"\x06\x05", b"\x65\x88\x84"]);
        let key = annex_b_access_unit(&track, &data, true).unwrap();
        assert_eq!(
            key,
            b"\0\0\0\x01\x09\xF0\0\0\0\x01\x67\x42\x00\0\0\0\x01\x68\xCE\0\0\0\x01\x06\x05\0\0\0\x01\x65\x88\x84"
                .to_vec()
        );
        let data = avcc_sample(&[b"\x41\x9A"]);
        let delta = annex_b_access_unit(&track, &data, false).unwrap();
        assert_eq!(delta, b"\0\0\0\x01\x09\xF0\0\0\0\x01\x41\x9A".to_vec());
        // The sample's own AUD is replaced, its own parameter sets are not doubled.
        let data = avcc_sample(&[b"\x09\x10", b"\x67\x64", b"\x68\xEE", b"\x65\x11"]);
        let own = annex_b_access_unit(&track, &data, true).unwrap();
        assert_eq!(
            own,
            b"\0\0\0\x01\x09\xF0\0\0\0\x01\x67\x64\0\0\0\x01\x68\xEE\0\0\0\x01\x65\x11".to_vec()
        );
        // Two-byte length prefixes as the record says.
        let mut short = AVCC.to_vec();
        short[4] = 0xFD;
        let track2 = video_track(&video_info(VideoCodec::Avc, &short)).unwrap();
        assert_eq!(track2.length_size, 2);
        let out = annex_b_access_unit(&track2, b"\x00\x02\x41\x9A", false).unwrap();
        assert_eq!(out, b"\0\0\0\x01\x09\xF0\0\0\0\x01\x41\x9A".to_vec());
    }

    #[test]
    fn malformed_length_prefixes() {
        let track = video_track(&video_info(VideoCodec::Avc, AVCC)).unwrap();
        let good = avcc_sample(&[b"\x06\x05", b"\x65\x88\x84"]);
        for cut in 0..good.len() {
            let r = annex_b_access_unit(&track, &good[..cut], true);
            // Cutting exactly between NAL units leaves a valid shorter unit.
            if cut == 6 {
                assert!(r.is_ok());
            } else {
                assert!(matches!(r, Err(MuxError::Malformed(_))), "cut {cut}");
            }
        }
        assert!(annex_b_access_unit(&track, b"\xFF\xFF\xFF\xFF\x65", false).is_err());
        assert!(annex_b_access_unit(&track, b"\x00\x00\x00\x00", false).is_err());
        let mut m = avc_audio_muxer();
        let mut out = BytesMut::new();
        let bad = sample(TrackKind::Video, 0, 0, true, b"\x00\x00\x01\x00\x65");
        assert!(m.write_sample(&bad, &mut out).is_err());
        assert!(out.is_empty(), "nothing written for a rejected sample");
        let empty = sample(TrackKind::Audio, 0, 0, true, b"");
        assert!(m.write_sample(&empty, &mut out).is_err());
    }

    #[test]
    fn avcc_truncated_at_every_length() {
        for cut in 0..AVCC.len() {
            let info = video_info(VideoCodec::Avc, &AVCC[..cut]);
            let r = TsMuxer::new(Some(&info), None);
            // Empty means "no record"; the last cut only loses the PPS count's payload.
            assert_eq!(r.is_ok(), cut == 0, "cut {cut}");
        }
        let mut v2 = AVCC.to_vec();
        v2[0] = 2;
        assert!(video_track(&video_info(VideoCodec::Avc, &v2)).is_err());
    }

    fn hvcc(arrays: &[(u8, &[u8])]) -> Vec<u8> {
        let mut v = vec![1u8];
        v.extend_from_slice(&[0; 20]);
        v.push(0x0F); // lengthSizeMinusOne 3
        v.push(arrays.len() as u8);
        for (t, nal) in arrays {
            v.push(0x80 | t);
            v.extend_from_slice(&1u16.to_be_bytes());
            v.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            v.extend_from_slice(nal);
        }
        v
    }

    #[test]
    fn hvcc_and_hevc_access_units() {
        // Arrays out of order and an SEI array: VPS, SPS, PPS come out in order, SEI dropped.
        let record = hvcc(&[
            (34, b"\x44\x01\xAA"),
            (39, b"\x4E\x01\x05"),
            (32, b"\x40\x01\xBB"),
            (33, b"\x42\x01\xCC"),
        ]);
        let track = video_track(&video_info(VideoCodec::Hevc, &record)).unwrap();
        assert_eq!(track.length_size, 4);
        assert_eq!(
            track.parameter_sets,
            b"\0\0\0\x01\x40\x01\xBB\0\0\0\x01\x42\x01\xCC\0\0\0\x01\x44\x01\xAA".to_vec()
        );
        let data = avcc_sample(&[b"\x46\x01\x10", b"\x26\x01\xAF"]);
        let key = annex_b_access_unit(&track, &data, true).unwrap();
        assert_eq!(
            key,
            b"\0\0\0\x01\x46\x01\x50\0\0\0\x01\x40\x01\xBB\0\0\0\x01\x42\x01\xCC\0\0\0\x01\x44\x01\xAA\0\0\0\x01\x26\x01\xAF"
                .to_vec()
        );
        for cut in 1..record.len() {
            assert!(video_track(&video_info(VideoCodec::Hevc, &record[..cut])).is_err());
        }
    }

    #[test]
    fn packetisation() {
        let mut m = avc_audio_muxer();
        let mut out = BytesMut::new();
        m.write_tables(&mut out);
        let big: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut idr = vec![0x65];
        idr.extend_from_slice(&big);
        let mut expected_video = Vec::new();
        for i in 0..40u64 {
            let key = i % 10 == 0;
            let nal: &[u8] = if key { &idr } else { b"\x41\x9A\x02" };
            let s = sample(
                TrackKind::Video,
                1000 + i * 40,
                80,
                key,
                &avcc_sample(&[nal]),
            );
            m.write_sample(&s, &mut out).unwrap();
            expected_video.push((s.clone(), nal.to_vec()));
            let a = sample(
                TrackKind::Audio,
                1000 + i * 40,
                0,
                true,
                &big[..(i as usize * 7) % 300 + 1],
            );
            m.write_sample(&a, &mut out).unwrap();
        }
        let d = demux(&out);
        assert_eq!(d.units[&PAT_PID].len(), 1);
        let video = &d.units[&VIDEO_PID];
        let audio = &d.units[&AUDIO_PID];
        assert_eq!((video.len(), audio.len()), (40, 40));
        for (pes, (s, nal)) in video.iter().zip(&expected_video) {
            let (sid, pts, dts, payload) = parse_pes(pes);
            assert_eq!(sid, 0xE0);
            assert_eq!(u16::from_be_bytes([pes[4], pes[5]]), 0);
            assert_eq!(pts, (s.dts_ms + 80) * 90);
            assert_eq!(dts, Some(s.dts_ms * 90));
            assert!(payload.starts_with(b"\0\0\0\x01\x09\xF0"));
            assert!(payload.ends_with(nal));
            assert_eq!(
                payload.windows(5).any(|w| w == b"\0\0\0\x01\x67"),
                s.keyframe
            );
        }
        for (i, pes) in audio.iter().enumerate() {
            let (sid, pts, dts, payload) = parse_pes(pes);
            assert_eq!((sid, dts), (0xC0, None));
            assert_eq!(pts, (1000 + i as u64 * 40) * 90);
            let len = (i * 7) % 300 + 1;
            assert_eq!(&payload[..3], &[0xFF, 0xF1, 0x50]);
            assert_eq!(&payload[7..], &big[..len]);
        }
        // PCR and random access on the first packet of every keyframe PES, on the video PID.
        let mut pcrs = Vec::new();
        let mut video_index = 0;
        for p in &d.packets {
            if let Some(pcr) = pcr_of(p) {
                assert_eq!(pid_of(p), VIDEO_PID);
                assert!(p[1] & 0x40 != 0);
                pcrs.push(pcr);
            }
            if pid_of(p) == VIDEO_PID && p[1] & 0x40 != 0 {
                let keyframe = video_index % 10 == 0;
                let rai = adaptation(p).is_some_and(|a| !a.is_empty() && a[0] & 0x40 != 0);
                assert_eq!(
                    rai, keyframe,
                    "random_access_indicator of video PES {video_index}"
                );
                if keyframe {
                    assert_eq!(pcr_of(p), Some((1000 + video_index * 40) * 90));
                }
                video_index += 1;
            }
        }
        // Keyframes every 400 ms: a PCR there, and in between at least every 100 ms.
        assert!(pcrs.len() >= 40 * 40 / 100);
        assert_eq!(pcrs[0], 1000 * 90);
        assert!(pcrs.windows(2).all(|w| w[0] <= w[1] && w[1] - w[0] <= 9000));
    }

    #[test]
    fn stuffing_edge_sizes() {
        // PES sizes around one packet's capacity: 184 bytes per packet without adaptation field.
        for len in 150..400usize {
            let mut m =
                TsMuxer::new(None, Some(&audio_info(AudioCodec::Mp3, &[], 44_100, 2))).unwrap();
            let data = vec![0xAB; len];
            let mut out = BytesMut::new();
            // Not a keyframe after the first PCR: packets without adaptation field when full.
            m.write_sample(&sample(TrackKind::Audio, 0, 0, true, b"\xFF"), &mut out)
                .unwrap();
            m.write_sample(&sample(TrackKind::Audio, 10, 0, false, &data), &mut out)
                .unwrap();
            let d = demux(&out);
            let units = &d.units[&AUDIO_PID];
            let (_, _, _, payload) = parse_pes(&units[1]);
            assert_eq!(payload, &data[..], "len {len}");
        }
    }

    #[test]
    fn one_byte_stuffing() {
        let mut m = TsMuxer::new(None, Some(&audio_info(AudioCodec::Mp3, &[], 44_100, 2))).unwrap();
        let mut out = BytesMut::new();
        m.write_sample(&sample(TrackKind::Audio, 0, 0, true, b"\xFF"), &mut out)
            .unwrap();
        out.clear();
        // 14 header bytes + 169 = 183: a one-byte adaptation field (length 0) pads the packet.
        m.write_sample(&sample(TrackKind::Audio, 10, 0, false, &[1; 169]), &mut out)
            .unwrap();
        assert_eq!(out.len(), TS_PACKET_SIZE);
        assert_eq!(out[3] >> 4, 0b11);
        assert_eq!(out[4], 0);
        assert_eq!(&out[5..9], &[0, 0, 1, 0xC0]);
        out.clear();
        m.write_sample(&sample(TrackKind::Audio, 20, 0, false, &[1; 170]), &mut out)
            .unwrap();
        assert_eq!((out.len(), out[3] >> 4), (TS_PACKET_SIZE, 0b01));
    }

    #[test]
    fn negative_composition_offsets_delay_presentation() {
        let mut m = avc_audio_muxer();
        let mut out = BytesMut::new();
        let frame = avcc_sample(&[b"\x41\x01"]);
        m.write_sample(&sample(TrackKind::Video, 0, 0, true, &frame), &mut out)
            .unwrap();
        m.write_sample(&sample(TrackKind::Video, 40, -40, false, &frame), &mut out)
            .unwrap();
        m.write_sample(&sample(TrackKind::Video, 80, 40, false, &frame), &mut out)
            .unwrap();
        m.write_sample(&sample(TrackKind::Audio, 80, 0, true, b"\x21"), &mut out)
            .unwrap();
        let d = demux(&out);
        let v: Vec<_> = d.units[&VIDEO_PID].iter().map(|p| parse_pes(p)).collect();
        assert_eq!((v[0].1, v[0].2), (0, None));
        // PTS = DTS here (only the PTS is written), then everything shifts by 40 ms.
        assert_eq!((v[1].1, v[1].2), (3600, None));
        assert_eq!((v[2].1, v[2].2), ((80 + 40 + 40) * 90, Some(80 * 90)));
        let (_, apts, _, _) = parse_pes(&d.units[&AUDIO_PID][0]);
        assert_eq!(apts, (80 + 40) * 90);
        // Absurd offsets are clamped to PTS = DTS rather than growing the delay forever.
        let mut m = avc_audio_muxer();
        out.clear();
        m.write_sample(
            &sample(TrackKind::Video, 100_000, i32::MIN, true, &frame),
            &mut out,
        )
        .unwrap();
        let d = demux(&out);
        let (_, pts, dts, _) = parse_pes(&d.units[&VIDEO_PID][0]);
        assert_eq!((pts, dts), (100_000 * 90, None));
    }

    #[test]
    fn thirty_three_bit_wrap() {
        let mut m = avc_audio_muxer();
        let mut out = BytesMut::new();
        let frame = avcc_sample(&[b"\x41\x01"]);
        let wrap_ms = (1u64 << 33) / 90 + 1;
        m.write_sample(
            &sample(TrackKind::Video, wrap_ms, 40, true, &frame),
            &mut out,
        )
        .unwrap();
        m.write_sample(
            &sample(TrackKind::Video, u64::MAX / 2, 0, true, &frame),
            &mut out,
        )
        .unwrap();
        let d = demux(&out);
        let (_, pts, dts, _) = parse_pes(&d.units[&VIDEO_PID][0]);
        assert_eq!(dts, Some((wrap_ms * 90) & TIMESTAMP_MASK));
        assert_eq!(pts, ((wrap_ms + 40) * 90) & TIMESTAMP_MASK);
        assert_eq!(pcr_of(&d.packets[0]), Some((wrap_ms * 90) & TIMESTAMP_MASK));
    }

    #[test]
    fn sparse_video_gets_pcr_from_audio_time() {
        let mut m = avc_audio_muxer();
        let mut out = BytesMut::new();
        let frame = avcc_sample(&[b"\x41\x01"]);
        m.write_sample(&sample(TrackKind::Video, 0, 0, true, &frame), &mut out)
            .unwrap();
        for t in (0..1000).step_by(23) {
            m.write_sample(&sample(TrackKind::Audio, t, 0, true, b"\x21\x00"), &mut out)
                .unwrap();
        }
        m.write_sample(&sample(TrackKind::Video, 1000, 0, false, &frame), &mut out)
            .unwrap();
        let d = demux(&out);
        let pcrs: Vec<u64> = d.packets.iter().filter_map(|p| pcr_of(p)).collect();
        assert!(
            pcrs.windows(2).all(|w| w[0] <= w[1] && w[1] - w[0] <= 9000),
            "{pcrs:?}"
        );
        assert!(pcrs.len() >= 10);
        // Adaptation-only PCR packets sit on the video PID and carry no payload.
        let only = d.packets.iter().filter(|p| p[3] >> 4 == 0b10).count();
        assert!(only >= 9);
        assert!(d
            .packets
            .iter()
            .filter(|p| p[3] >> 4 == 0b10)
            .all(|p| pid_of(p) == VIDEO_PID));
    }

    #[test]
    fn sample_for_missing_track() {
        let mut m = TsMuxer::new(None, Some(&audio_info(AudioCodec::Mp3, &[], 44_100, 2))).unwrap();
        let mut out = BytesMut::new();
        let v = sample(TrackKind::Video, 0, 0, true, &avcc_sample(&[b"\x65"]));
        assert!(matches!(
            m.write_sample(&v, &mut out),
            Err(MuxError::Malformed(_))
        ));
        assert!(out.is_empty());
    }

    proptest! {
        #[test]
        fn random_samples_never_panic(
            hevc in any::<bool>(),
            config in proptest::collection::vec(any::<u8>(), 0..64),
            asc in proptest::collection::vec(any::<u8>(), 0..4),
            samples in proptest::collection::vec(
                (any::<bool>(), 0u64..1u64 << 40, any::<i32>(), any::<bool>(),
                 proptest::collection::vec(any::<u8>(), 0..600)),
                1..12,
            ),
        ) {
            let codec = if hevc { VideoCodec::Hevc } else { VideoCodec::Avc };
            let video = video_info(codec, &config);
            let audio = audio_info(AudioCodec::Aac, &asc, 44_100, 2);
            let mut m = match TsMuxer::new(Some(&video), Some(&audio)) {
                Ok(m) => m,
                Err(_) => TsMuxer::new(Some(&video_info(codec, &[])), None).unwrap(),
            };
            let mut out = BytesMut::new();
            m.write_tables(&mut out);
            for (is_video, dts, cts, key, data) in samples {
                let kind = if is_video { TrackKind::Video } else { TrackKind::Audio };
                let before = out.len();
                let r = m.write_sample(&sample(kind, dts, cts, key, &data), &mut out);
                if r.is_err() {
                    prop_assert_eq!(out.len(), before);
                }
            }
            prop_assert_eq!(out.len() % TS_PACKET_SIZE, 0);
            demux(&out);
        }

        #[test]
        fn valid_access_units_round_trip(
            nals in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 1..6),
            key in any::<bool>(),
            dts in 0u64..1u64 << 34,
            cts in 0i32..1000,
        ) {
            let mut nals = nals;
            for n in &mut nals {
                // Slice NAL types only, so none is taken for an AUD or SPS.
                n[0] = 0x41;
            }
            let refs: Vec<&[u8]> = nals.iter().map(|n| n.as_slice()).collect();
            let mut m = avc_audio_muxer();
            let mut out = BytesMut::new();
            m.write_sample(&sample(TrackKind::Video, dts, cts, key, &avcc_sample(&refs)), &mut out).unwrap();
            let d = demux(&out);
            let (_, pts, dts90, payload) = parse_pes(&d.units[&VIDEO_PID][0]);
            prop_assert_eq!(pts, ((dts + cts as u64) * 90) & TIMESTAMP_MASK);
            prop_assert_eq!(dts90.unwrap_or(pts), (dts * 90) & TIMESTAMP_MASK);
            let mut want = b"\0\0\0\x01\x09\xF0".to_vec();
            if key {
                want.extend_from_slice(b"\0\0\0\x01\x67\x42\x00\0\0\0\x01\x68\xCE");
            }
            for n in &nals {
                want.extend_from_slice(&ANNEX_B_START_CODE);
                want.extend_from_slice(n);
            }
            prop_assert_eq!(payload, &want[..]);
        }
    }

    mod e2e {
        use super::*;
        use rill_media::{FlvDemuxer, Frame, FrameKind};
        use std::path::{Path, PathBuf};
        use std::process::Command;

        use crate::boxes::testing::{system_ffmpeg, tempdir};
        use crate::sample::sample_from_frame;

        fn run(cmd: &mut Command) -> std::process::Output {
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "{cmd:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            out
        }

        /// `ffprobe -show_streams -count_frames` as (key, value) pairs of its flat output.
        fn probe(ts: &Path) -> HashMap<String, String> {
            let out = run(Command::new("ffprobe")
                .args([
                    "-v",
                    "error",
                    "-show_streams",
                    "-count_frames",
                    "-of",
                    "flat",
                ])
                .arg(ts));
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
                .collect()
        }

        /// Decodes the whole file and returns whatever ffmpeg complained about.
        fn decode_errors(ts: &Path) -> String {
            let out = run(Command::new("ffmpeg")
                .args(["-v", "error", "-i"])
                .arg(ts)
                .args(["-f", "null", "-"]));
            String::from_utf8_lossy(&out.stderr).into_owned()
        }

        /// ffmpeg reading the 640x360, 25 fps test pattern; the caller adds the rest.
        fn ffmpeg_testsrc() -> Command {
            let mut cmd = Command::new("ffmpeg");
            cmd.args(["-v", "error", "-y", "-f", "lavfi"])
                .args(["-i", "testsrc2=size=640x360:rate=25"]);
            cmd
        }

        /// Muxes `samples` as HLS would, checks our own demuxer takes the result, writes it to
        /// `x.ts` in `dir` and returns that path with what ffprobe says about it.
        fn mux_and_probe(
            m: &mut TsMuxer,
            samples: &[Sample],
            dir: &Path,
        ) -> (PathBuf, HashMap<String, String>) {
            let out = mux(m, samples);
            demux(&out);
            let ts = dir.join("x.ts");
            std::fs::write(&ts, &out).unwrap();
            let p = probe(&ts);
            (ts, p)
        }

        /// One field of stream `index` in `probe`'s output; empty when ffprobe did not say.
        fn field<'a>(p: &'a HashMap<String, String>, index: usize, key: &str) -> &'a str {
            p.get(&format!("streams.stream.{index}.{key}"))
                .map_or("", String::as_str)
        }

        /// Stream `index` is the 640x360 test pattern in `codec`, with `frames` frames decoded.
        fn assert_video_stream(
            p: &HashMap<String, String>,
            index: usize,
            codec: &str,
            frames: usize,
        ) {
            assert_eq!(field(p, index, "codec_name"), codec);
            assert_eq!(field(p, index, "width"), "640");
            assert_eq!(field(p, index, "height"), "360");
            assert_eq!(field(p, index, "nb_read_frames"), frames.to_string());
        }

        /// Writes samples as HLS would: tables again before every video keyframe.
        fn mux(m: &mut TsMuxer, samples: &[Sample]) -> BytesMut {
            let mut out = BytesMut::new();
            m.write_tables(&mut out);
            for (i, s) in samples.iter().enumerate() {
                if i > 0 && s.kind == TrackKind::Video && s.keyframe {
                    m.write_tables(&mut out);
                }
                m.write_sample(s, &mut out).unwrap();
            }
            out
        }

        #[test]
        fn h264_aac_from_debian_ffmpeg() {
            if system_ffmpeg().is_none() {
                return;
            }
            let dir = tempdir("ts-h264");
            let flv = dir.join("in.flv");
            run(ffmpeg_testsrc()
                .args([
                    "-f", "lavfi", "-i", "sine", "-t", "3", "-c:v", "libx264", "-g", "25",
                ])
                .args(["-c:a", "aac", "-f", "flv"])
                .arg(&flv));
            let mut buf = BytesMut::from(&std::fs::read(&flv).unwrap()[..]);
            let mut demuxer = FlvDemuxer::new(16 << 20);
            let (mut video, mut audio, mut samples) = (None, None, Vec::new());
            while let Some(tag) = demuxer.next_tag(&mut buf).unwrap() {
                let kind = match tag.tag_type {
                    8 => FrameKind::Audio,
                    9 => FrameKind::Video,
                    _ => continue,
                };
                let frame = Frame::from_flv_body(kind, tag.timestamp, tag.body.clone()).unwrap();
                if frame.sequence_header && kind == FrameKind::Video {
                    video = Some(video_info(VideoCodec::Avc, &tag.body[5..]));
                } else if frame.sequence_header {
                    let asc = parse_audio_specific_config(&tag.body[2..]).unwrap();
                    audio = Some(audio_info(
                        AudioCodec::Aac,
                        &tag.body[2..],
                        asc.sample_rate.unwrap(),
                        asc.channel_config,
                    ));
                } else if let Some(s) = sample_from_frame(&frame) {
                    samples.push(s);
                }
            }
            let (video, audio) = (video.unwrap(), audio.unwrap());
            assert_eq!((audio.sample_rate, audio.channels), (44_100, 1));
            let video_samples = samples
                .iter()
                .filter(|s| s.kind == TrackKind::Video)
                .count();
            let audio_samples = samples.len() - video_samples;
            assert_eq!(video_samples, 75);
            assert!(
                samples.iter().any(|s| s.cts_ms > 0),
                "B-frames exercise PTS != DTS"
            );

            let mut m = TsMuxer::new(Some(&video), Some(&audio)).unwrap();
            let (ts, p) = mux_and_probe(&mut m, &samples, &dir);
            let (v, a) = if field(&p, 0, "codec_type") == "video" {
                (0, 1)
            } else {
                (1, 0)
            };
            assert_video_stream(&p, v, "h264", video_samples);
            assert_eq!(field(&p, a, "codec_name"), "aac");
            assert_eq!(field(&p, a, "sample_rate"), "44100");
            assert_eq!(field(&p, a, "nb_read_frames"), audio_samples.to_string());
            assert_eq!(decode_errors(&ts), "");
            let _ = std::fs::remove_dir_all(&dir);
        }

        /// Splits an Annex B stream into NAL units.
        fn annex_b_nals(data: &[u8]) -> Vec<&[u8]> {
            let mut starts = Vec::new();
            let mut i = 0;
            while i + 3 <= data.len() {
                if data[i..i + 3] == [0, 0, 1] {
                    starts.push(i + 3);
                    i += 3;
                } else {
                    i += 1;
                }
            }
            let mut nals = Vec::new();
            for (k, &s) in starts.iter().enumerate() {
                let mut end = starts.get(k + 1).map_or(data.len(), |&n| n - 3);
                while end > s && data[end - 1] == 0 {
                    end -= 1;
                }
                nals.push(&data[s..end]);
            }
            nals
        }

        /// Debian's ffmpeg 5.1 cannot put HEVC in FLV, so this takes libx265's Annex B output,
        /// turns it into what an Enhanced RTMP publisher sends (hvcC record, length-prefixed
        /// access units without parameter sets) and checks the TS decodes.
        #[test]
        fn hevc_from_debian_ffmpeg() {
            if system_ffmpeg().is_none() {
                return;
            }
            let encoders = run(Command::new("ffmpeg").args(["-hide_banner", "-encoders"]));
            if !String::from_utf8_lossy(&encoders.stdout).contains("libx265") {
                eprintln!("ffmpeg without libx265: skipping the HEVC MPEG-TS test");
                return;
            }
            let dir = tempdir("ts-hevc");
            let raw = dir.join("in.hevc");
            run(ffmpeg_testsrc()
                .args(["-t", "3", "-c:v", "libx265"])
                .args([
                    "-x265-params",
                    "aud=1:bframes=0:keyint=25:log-level=error",
                    "-f",
                    "hevc",
                ])
                .arg(&raw));
            let data = std::fs::read(&raw).unwrap();
            let mut params: [Option<Vec<u8>>; 3] = [None, None, None];
            let mut units: Vec<(bool, Vec<u8>)> = Vec::new();
            for nal in annex_b_nals(&data) {
                let t = (nal[0] >> 1) & 0x3F;
                match t {
                    35 => units.push((false, Vec::new())),
                    32..=34 => params[usize::from(t - 32)] = Some(nal.to_vec()),
                    _ => {
                        let (key, au) = units.last_mut().unwrap();
                        *key |= (16..=21).contains(&t);
                        au.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                        au.extend_from_slice(nal);
                    }
                }
            }
            let [vps, sps, pps] = params.map(Option::unwrap);
            let record = hvcc(&[(32, &vps), (33, &sps), (34, &pps)]);
            let samples: Vec<Sample> = units
                .iter()
                .enumerate()
                .map(|(i, (key, au))| sample(TrackKind::Video, i as u64 * 40, 0, *key, au))
                .collect();
            assert_eq!(samples.len(), 75);
            assert_eq!(samples.iter().filter(|s| s.keyframe).count(), 3);

            let mut m = TsMuxer::new(Some(&video_info(VideoCodec::Hevc, &record)), None).unwrap();
            let (ts, p) = mux_and_probe(&mut m, &samples, &dir);
            assert_video_stream(&p, 0, "hevc", 75);
            assert_eq!(decode_errors(&ts), "");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
