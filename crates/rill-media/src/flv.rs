//! FLV: file header, tag writing, a sans-IO tag demuxer, and the parsing of audio/video tag headers
//! (legacy and Enhanced RTMP v1/v2, including HEVC with legacy codec id 12).
//!
//! RTMP audio/video messages carry FLV tag bodies verbatim, so the header parsers here serve both
//! the RTMP ingest path and FLV files / HTTP-FLV.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::codec::{AudioCodec, VideoCodec};

/// FLV file header (9 bytes) plus PreviousTagSize0 (4 bytes).
pub const FLV_HEADER_SIZE: usize = 13;
/// Tag header size.
pub const TAG_HEADER_SIZE: usize = 11;
/// Size of the PreviousTagSize field that follows every tag.
pub const PREVIOUS_TAG_SIZE_LEN: usize = 4;
/// The largest body a tag can describe: its DataSize field is 24 bits wide.
pub const MAX_TAG_BODY_SIZE: usize = 0xFF_FFFF;

/// FLV tag type of audio tags.
pub const TAG_TYPE_AUDIO: u8 = 8;
/// FLV tag type of video tags.
pub const TAG_TYPE_VIDEO: u8 = 9;
/// FLV tag type of script data tags.
pub const TAG_TYPE_SCRIPT: u8 = 18;

/// The largest DataOffset the demuxer accepts in a file header. The spec fixes it at 9 for FLV
/// version 1, but future versions may append fields; the bound keeps a hostile header from
/// making us wait for (and the caller buffer) gigabytes before the first tag.
const MAX_DATA_OFFSET: u32 = 1024;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FlvError {
    #[error("not an FLV file (bad signature)")]
    BadSignature,
    #[error("FLV tag body is empty or too short")]
    Truncated,
    #[error("FLV tag of {0} bytes exceeds the limit")]
    TagTooLarge(u32),
    #[error("unknown FLV tag type {0}")]
    UnknownTagType(u8),
}

/// The FLV file header with its audio/video flags, followed by PreviousTagSize0.
pub fn file_header(has_audio: bool, has_video: bool) -> [u8; FLV_HEADER_SIZE] {
    let mut flags = 0u8;
    if has_audio {
        flags |= 0x04;
    }
    if has_video {
        flags |= 0x01;
    }
    [b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]
}

/// Appends one tag (header, body, PreviousTagSize) to `out`.
///
/// Timestamps above 24 bits go into the TimestampExtended byte, as the spec asks. A body longer
/// than [`MAX_TAG_BODY_SIZE`] cannot be described by the 24-bit DataSize; such a tag is dropped
/// (nothing is written) because a wrong size would desynchronise every reader for the rest of the
/// stream. RTMP message lengths are 24 bits too, so bodies from the wire never hit this.
pub fn write_tag(tag_type: u8, timestamp: u32, body: &[u8], out: &mut BytesMut) {
    if body.len() > MAX_TAG_BODY_SIZE {
        return;
    }
    // Cannot truncate: checked against MAX_TAG_BODY_SIZE above.
    let size = body.len() as u32;
    out.reserve(TAG_HEADER_SIZE + body.len() + PREVIOUS_TAG_SIZE_LEN);
    out.put_u8(tag_type);
    put_u24(out, size);
    put_u24(out, timestamp & 0xFF_FFFF);
    out.put_u8((timestamp >> 24) as u8);
    put_u24(out, 0);
    out.put_slice(body);
    out.put_u32(TAG_HEADER_SIZE as u32 + size);
}

/// One tag (header, body, PreviousTagSize) as a standalone buffer, for outputs that send each tag
/// as its own write (HTTP-FLV chunks, WebSocket-FLV messages).
pub fn tag_bytes(tag_type: u8, timestamp: u32, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(TAG_HEADER_SIZE + body.len() + PREVIOUS_TAG_SIZE_LEN);
    write_tag(tag_type, timestamp, body, &mut out);
    out.freeze()
}

fn put_u24(out: &mut BytesMut, v: u32) {
    out.put_slice(&v.to_be_bytes()[1..]);
}

/// One tag read back by [`FlvDemuxer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    pub tag_type: u8,
    pub timestamp: u32,
    pub body: Bytes,
}

/// Sans-IO FLV demuxer: feed bytes, take tags.
///
/// The demuxer never holds data itself: bytes stay in the caller's buffer until a whole tag is
/// there. A caller bounds its buffer by [`FlvDemuxer::max_buffered`]; every header that would make
/// a complete unit larger than that is rejected before its body arrives.
pub struct FlvDemuxer {
    max_tag_size: u32,
    header: Option<(bool, bool)>,
    /// Bytes still to discard before the next tag header: the PreviousTagSize of the tag just
    /// returned. Skipping lazily lets a tag be returned as soon as its body is complete.
    skip: usize,
}

impl FlvDemuxer {
    /// `max_tag_size` bounds the buffer a peer can make us hold.
    pub fn new(max_tag_size: u32) -> Self {
        FlvDemuxer {
            max_tag_size,
            header: None,
            skip: 0,
        }
    }

    /// The header flags `(has_audio, has_video)` once the file header has been read.
    pub fn header(&self) -> Option<(bool, bool)> {
        self.header
    }

    /// The most bytes the caller ever needs to buffer for [`FlvDemuxer::next_tag`] to make
    /// progress: a largest-allowed tag with its header and trailing PreviousTagSize.
    pub fn max_buffered(&self) -> usize {
        let tag = TAG_HEADER_SIZE + self.max_tag_size as usize + PREVIOUS_TAG_SIZE_LEN;
        tag.max(MAX_DATA_OFFSET as usize + PREVIOUS_TAG_SIZE_LEN)
    }

    /// Consumes bytes from `buf` and returns the next complete tag, or `None` if more are needed.
    ///
    /// On error nothing of the offending tag is consumed; the stream cannot be resynchronised, so
    /// the caller should give up on it.
    pub fn next_tag(&mut self, buf: &mut BytesMut) -> Result<Option<FlvTag>, FlvError> {
        if self.header.is_none() && !self.read_file_header(buf)? {
            return Ok(None);
        }
        if self.skip > 0 {
            let n = self.skip.min(buf.len());
            buf.advance(n);
            self.skip -= n;
            if self.skip > 0 {
                return Ok(None);
            }
        }
        // Validate what we can as soon as the bytes are there, so garbage fails fast instead of
        // making the caller buffer up to a bogus DataSize.
        let Some(&tag_type) = buf.first() else {
            return Ok(None);
        };
        if !matches!(tag_type, TAG_TYPE_AUDIO | TAG_TYPE_VIDEO | TAG_TYPE_SCRIPT) {
            return Err(FlvError::UnknownTagType(tag_type));
        }
        let Some(size_bytes) = buf.get(1..4) else {
            return Ok(None);
        };
        let size = u24(size_bytes);
        if size > self.max_tag_size {
            return Err(FlvError::TagTooLarge(size));
        }
        let total = TAG_HEADER_SIZE + size as usize;
        if buf.len() < total {
            return Ok(None);
        }
        let header = buf.split_to(TAG_HEADER_SIZE);
        let timestamp = (u32::from(header[7]) << 24) | u24(&header[4..7]);
        let body = buf.split_to(size as usize).freeze();
        self.skip = PREVIOUS_TAG_SIZE_LEN;
        Ok(Some(FlvTag {
            tag_type,
            timestamp,
            body,
        }))
    }

    /// Reads the file header and PreviousTagSize0; `Ok(false)` if more bytes are needed.
    fn read_file_header(&mut self, buf: &mut BytesMut) -> Result<bool, FlvError> {
        let seen = buf.len().min(3);
        if buf[..seen] != b"FLV"[..seen] {
            return Err(FlvError::BadSignature);
        }
        if buf.len() < 9 {
            return Ok(false);
        }
        let flags = buf[4];
        let offset = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]);
        if !(9..=MAX_DATA_OFFSET).contains(&offset) {
            return Err(FlvError::BadSignature);
        }
        let total = offset as usize + PREVIOUS_TAG_SIZE_LEN;
        if buf.len() < total {
            return Ok(false);
        }
        buf.advance(total);
        self.header = Some((flags & 0x04 != 0, flags & 0x01 != 0));
        Ok(true)
    }
}

fn u24(b: &[u8]) -> u32 {
    b.iter()
        .take(3)
        .fold(0, |acc, &x| (acc << 8) | u32::from(x))
}

/// Video packet kinds, unified over legacy AVCPacketType and Enhanced RTMP VideoPacketType.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoPacket {
    SequenceStart,
    CodedFrames,
    SequenceEnd,
    Metadata,
    Mpeg2TsSequenceStart,
    Multitrack,
    /// A video info/command frame (frame type 5), no picture.
    Command,
    /// Codecs without packet types (H.263, VP6, ...).
    Raw,
}

/// What the header of a video tag body says.
///
/// For an Enhanced RTMP multitrack message, `packet` is the packet type shared by all its tracks
/// (so a multitrack sequence start still reads as [`VideoPacket::SequenceStart`]), and `codec` and
/// `composition_offset` are those of the first track. [`VideoPacket::Multitrack`] only appears
/// for a multitrack message that illegally nests another multitrack packet type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoHeader {
    pub codec: VideoCodec,
    pub keyframe: bool,
    pub packet: VideoPacket,
    pub composition_offset: i32,
    /// True when the Enhanced RTMP ExVideoTagHeader is used.
    pub enhanced: bool,
}

/// Audio packet kinds, unified over AACPacketType and Enhanced RTMP AudioPacketType.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioPacket {
    SequenceStart,
    CodedFrames,
    SequenceEnd,
    MultichannelConfig,
    Multitrack,
    /// Codecs without packet types (MP3, Speex, Nellymoser, G.711, ...).
    Raw,
}

/// What the header of an audio tag body says.
///
/// Multitrack messages are reported like in [`VideoHeader`]: the shared packet type and the first
/// track's codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioHeader {
    pub codec: AudioCodec,
    pub packet: AudioPacket,
    pub enhanced: bool,
}

/// A bounds-checked reader over a tag body: every read that runs past the end is `Truncated`.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FlvError> {
        if self.data.len() < n {
            return Err(FlvError::Truncated);
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, FlvError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, FlvError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self) -> Result<u32, FlvError> {
        Ok(u24(self.take(3)?))
    }

    fn si24(&mut self) -> Result<i32, FlvError> {
        // Shift the 24-bit value to the top of an i32 and back to sign-extend it.
        Ok(((self.u24()? << 8) as i32) >> 8)
    }

    fn fourcc(&mut self) -> Result<[u8; 4], FlvError> {
        let b = self.take(4)?;
        Ok([b[0], b[1], b[2], b[3]])
    }

    /// Skips the Enhanced RTMP v2 ModEx blocks that precede the real packet type and returns that
    /// type. Each block is a size (UI8 + 1, or UI16 + 1 when the UI8 says 256), the modifier data,
    /// then a byte whose high nibble is the modifier type and low nibble the next packet type.
    /// The only modifier defined so far (TimestampOffsetNano) refines timing below the millisecond,
    /// which nothing downstream uses, so the data is skipped. Each block consumes at least two
    /// bytes, so the loop ends with the input.
    fn skip_mod_ex(&mut self, mut packet_type: u8) -> Result<u8, FlvError> {
        while packet_type == PACKET_TYPE_MOD_EX {
            let mut size = usize::from(self.u8()?) + 1;
            if size == 256 {
                size = usize::from(self.u16()?) + 1;
            }
            self.take(size)?;
            packet_type = self.u8()? & 0x0F;
        }
        Ok(packet_type)
    }
}

/// Enhanced RTMP packet type shared by audio and video: a ModEx block follows.
const PACKET_TYPE_MOD_EX: u8 = 7;
/// Enhanced RTMP AvMultitrackType whose tracks each carry their own FourCC.
const MULTITRACK_MANY_CODECS: u8 = 2;
/// Enhanced RTMP AvMultitrackType with a single track (no per-track size field).
const MULTITRACK_ONE_TRACK: u8 = 0;
/// VideoFrameType of a keyframe.
const FRAME_TYPE_KEY: u8 = 1;
/// VideoFrameType of a video info/command frame.
const FRAME_TYPE_COMMAND: u8 = 5;

/// Parses the header of a video tag body.
pub fn parse_video_header(body: &[u8]) -> Result<VideoHeader, FlvError> {
    let mut r = Reader { data: body };
    let b0 = r.u8()?;
    if b0 & 0x80 != 0 {
        parse_ex_video(b0, r)
    } else {
        parse_legacy_video(b0, r)
    }
}

fn parse_legacy_video(b0: u8, mut r: Reader<'_>) -> Result<VideoHeader, FlvError> {
    let frame_type = b0 >> 4;
    let codec = VideoCodec::from_legacy_id(b0 & 0x0F);
    let mut header = VideoHeader {
        codec,
        keyframe: frame_type == FRAME_TYPE_KEY,
        packet: VideoPacket::Raw,
        composition_offset: 0,
        enhanced: false,
    };
    if frame_type == FRAME_TYPE_COMMAND {
        // The command byte follows (after the AVC packet type and CTS when present); insisting on
        // only one more byte tolerates encoders that omit the AVC fields on command frames.
        r.u8()?;
        header.keyframe = false;
        header.packet = VideoPacket::Command;
        return Ok(header);
    }
    if matches!(codec, VideoCodec::Avc | VideoCodec::Hevc) {
        let packet_type = r.u8()?;
        let cts = r.si24()?;
        header.packet = match packet_type {
            0 => VideoPacket::SequenceStart,
            1 => VideoPacket::CodedFrames,
            2 => VideoPacket::SequenceEnd,
            _ => VideoPacket::Raw,
        };
        // The spec makes the CTS meaningful for NALUs only; elsewhere it must be 0 and a stray
        // value would only corrupt presentation times downstream.
        if header.packet == VideoPacket::CodedFrames {
            header.composition_offset = cts;
        }
    }
    Ok(header)
}

fn video_packet(packet_type: u8) -> VideoPacket {
    match packet_type {
        0 => VideoPacket::SequenceStart,
        1 | 3 => VideoPacket::CodedFrames,
        2 => VideoPacket::SequenceEnd,
        4 => VideoPacket::Metadata,
        5 => VideoPacket::Mpeg2TsSequenceStart,
        6 => VideoPacket::Multitrack,
        // Reserved values: the FourCC still identifies the stream, so pass the data through.
        _ => VideoPacket::Raw,
    }
}

fn parse_ex_video(b0: u8, mut r: Reader<'_>) -> Result<VideoHeader, FlvError> {
    let frame_type = (b0 >> 4) & 0x07;
    let mut packet_type = r.skip_mod_ex(b0 & 0x0F)?;
    let packet = video_packet(packet_type);

    if packet != VideoPacket::Metadata && frame_type == FRAME_TYPE_COMMAND {
        // v2 puts the command byte right here with no FourCC; some v1-era encoders wrote the
        // FourCC first. Recognise a known FourCC if one is there, purely for the codec label.
        let codec = match r.data.get(..4) {
            Some(&[a, b, c, d]) => match VideoCodec::from_fourcc([a, b, c, d]) {
                VideoCodec::FourCc(_) => VideoCodec::FourCc(0),
                known => known,
            },
            _ => VideoCodec::FourCc(0),
        };
        r.u8()?;
        return Ok(VideoHeader {
            codec,
            keyframe: false,
            packet: VideoPacket::Command,
            composition_offset: 0,
            enhanced: true,
        });
    }

    let codec;
    if packet == VideoPacket::Multitrack {
        let b = r.u8()?;
        let multitrack_type = b >> 4;
        packet_type = b & 0x0F;
        let shared = if multitrack_type != MULTITRACK_MANY_CODECS {
            Some(r.fourcc()?)
        } else {
            None
        };
        if packet_type == 6 || packet_type == PACKET_TYPE_MOD_EX {
            // Nesting is forbidden by the spec; report it without guessing at the body layout.
            return Ok(VideoHeader {
                codec: shared.map_or(VideoCodec::FourCc(0), VideoCodec::from_fourcc),
                keyframe: false,
                packet: VideoPacket::Multitrack,
                composition_offset: 0,
                enhanced: true,
            });
        }
        // First track's preamble: its own FourCC (many codecs), track id, and a UI24 size unless
        // there is a single track.
        let fourcc = match shared {
            Some(cc) => cc,
            None => r.fourcc()?,
        };
        codec = VideoCodec::from_fourcc(fourcc);
        r.u8()?;
        if multitrack_type != MULTITRACK_ONE_TRACK {
            r.u24()?;
        }
    } else {
        codec = VideoCodec::from_fourcc(r.fourcc()?);
    }

    let packet = video_packet(packet_type);
    // Only AVC and HEVC carry a CTS, and only with CodedFrames; CodedFramesX (3) exists to
    // omit a zero one.
    let composition_offset =
        if packet_type == 1 && matches!(codec, VideoCodec::Avc | VideoCodec::Hevc) {
            r.si24()?
        } else {
            0
        };
    Ok(VideoHeader {
        codec,
        // The frame type is meaningless on metadata packets.
        keyframe: frame_type == FRAME_TYPE_KEY && packet != VideoPacket::Metadata,
        packet,
        composition_offset,
        enhanced: true,
    })
}

/// SoundFormat that announces the Enhanced RTMP ExAudioTagHeader.
const SOUND_FORMAT_EX_HEADER: u8 = 9;
/// SoundFormat of AAC, the only legacy format with a packet type byte.
const SOUND_FORMAT_AAC: u8 = 10;

/// Parses the header of an audio tag body.
pub fn parse_audio_header(body: &[u8]) -> Result<AudioHeader, FlvError> {
    let mut r = Reader { data: body };
    let b0 = r.u8()?;
    let format = b0 >> 4;
    match format {
        SOUND_FORMAT_EX_HEADER => parse_ex_audio(b0, r),
        SOUND_FORMAT_AAC => {
            let packet = match r.u8()? {
                0 => AudioPacket::SequenceStart,
                1 => AudioPacket::CodedFrames,
                _ => AudioPacket::Raw,
            };
            Ok(AudioHeader {
                codec: AudioCodec::Aac,
                packet,
                enhanced: false,
            })
        }
        _ => Ok(AudioHeader {
            codec: AudioCodec::from_sound_format(format),
            packet: AudioPacket::Raw,
            enhanced: false,
        }),
    }
}

fn audio_packet(packet_type: u8) -> AudioPacket {
    match packet_type {
        0 => AudioPacket::SequenceStart,
        1 => AudioPacket::CodedFrames,
        2 => AudioPacket::SequenceEnd,
        4 => AudioPacket::MultichannelConfig,
        5 => AudioPacket::Multitrack,
        // Reserved values: the FourCC still identifies the stream, so pass the data through.
        _ => AudioPacket::Raw,
    }
}

fn parse_ex_audio(b0: u8, mut r: Reader<'_>) -> Result<AudioHeader, FlvError> {
    let mut packet_type = r.skip_mod_ex(b0 & 0x0F)?;
    let codec;
    if audio_packet(packet_type) == AudioPacket::Multitrack {
        // The high nibble (AvMultitrackType) does not matter here: the next four bytes are
        // either the FourCC shared by all tracks or (many codecs) the first track's own FourCC.
        packet_type = r.u8()? & 0x0F;
        codec = AudioCodec::from_fourcc(r.fourcc()?);
    } else {
        codec = AudioCodec::from_fourcc(r.fourcc()?);
    }
    Ok(AudioHeader {
        codec,
        packet: audio_packet(packet_type),
        enhanced: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn video(body: &[u8]) -> VideoHeader {
        parse_video_header(body).unwrap()
    }

    fn audio(body: &[u8]) -> AudioHeader {
        parse_audio_header(body).unwrap()
    }

    #[test]
    fn file_header_flags() {
        assert_eq!(
            file_header(true, true),
            [b'F', b'L', b'V', 1, 0x05, 0, 0, 0, 9, 0, 0, 0, 0]
        );
        assert_eq!(file_header(true, false)[4], 0x04);
        assert_eq!(file_header(false, true)[4], 0x01);
        assert_eq!(file_header(false, false)[4], 0x00);
    }

    #[test]
    fn write_tag_exact_bytes() {
        let mut out = BytesMut::new();
        write_tag(9, 0x0012_3456, &[0xAA, 0xBB, 0xCC], &mut out);
        assert_eq!(
            &out[..],
            &[
                9, 0, 0, 3, // type, size
                0x12, 0x34, 0x56, 0x00, // timestamp, extended
                0, 0, 0, // stream id
                0xAA, 0xBB, 0xCC, // body
                0, 0, 0, 14, // PreviousTagSize = 11 + 3
            ]
        );
        assert_eq!(tag_bytes(9, 0x0012_3456, &[0xAA, 0xBB, 0xCC]), out.freeze());
    }

    #[test]
    fn write_tag_extended_timestamp() {
        let bytes = tag_bytes(8, 0x1234_5678, &[1]);
        assert_eq!(&bytes[4..8], &[0x34, 0x56, 0x78, 0x12]);
    }

    #[test]
    fn write_tag_refuses_oversized_body() {
        let body = vec![0u8; MAX_TAG_BODY_SIZE + 1];
        let mut out = BytesMut::new();
        write_tag(9, 0, &body, &mut out);
        assert!(out.is_empty());
        assert_eq!(
            tag_bytes(9, 0, &vec![0u8; MAX_TAG_BODY_SIZE]).len(),
            MAX_TAG_BODY_SIZE + 15
        );
    }

    fn file(tags: &[(u8, u32, Vec<u8>)]) -> BytesMut {
        let mut out = BytesMut::from(&file_header(true, true)[..]);
        for (t, ts, body) in tags {
            write_tag(*t, *ts, body, &mut out);
        }
        out
    }

    fn drain(demux: &mut FlvDemuxer, buf: &mut BytesMut) -> Vec<FlvTag> {
        let mut tags = Vec::new();
        while let Some(tag) = demux.next_tag(buf).unwrap() {
            tags.push(tag);
        }
        tags
    }

    #[test]
    fn demux_round_trip_with_extended_timestamp() {
        let tags = vec![
            (18u8, 0u32, b"meta".to_vec()),
            (9, 0x0100_0000, vec![0x17, 0, 0, 0, 0]),
            (8, 0xFFFF_FFFF, vec![0xAF, 1, 2]),
            (9, 0x00FF_FFFF, vec![]),
        ];
        let mut buf = file(&tags);
        let mut demux = FlvDemuxer::new(1 << 20);
        assert_eq!(demux.header(), None);
        let got = drain(&mut demux, &mut buf);
        assert_eq!(demux.header(), Some((true, true)));
        assert_eq!(got.len(), tags.len());
        for (tag, (t, ts, body)) in got.iter().zip(&tags) {
            assert_eq!(tag.tag_type, *t);
            assert_eq!(tag.timestamp, *ts);
            assert_eq!(&tag.body[..], &body[..]);
        }
        // The call that found no further tag consumed the final PreviousTagSize.
        assert!(buf.is_empty());
        assert_eq!(demux.next_tag(&mut buf), Ok(None));
    }

    #[test]
    fn demux_returns_tag_before_its_previous_tag_size() {
        let full = file(&[(8, 1, vec![0x2F, 0xAA])]);
        let mut buf = BytesMut::from(&full[..full.len() - 4]);
        let mut demux = FlvDemuxer::new(100);
        assert_eq!(
            &demux.next_tag(&mut buf).unwrap().unwrap().body[..],
            &[0x2F, 0xAA]
        );
        // PreviousTagSize arriving in pieces is skipped, then the next tag is read.
        buf.extend_from_slice(&full[full.len() - 4..full.len() - 2]);
        assert_eq!(demux.next_tag(&mut buf), Ok(None));
        assert!(buf.is_empty());
        buf.extend_from_slice(&full[full.len() - 2..]);
        buf.extend_from_slice(&tag_bytes(9, 2, &[0x27]));
        assert_eq!(demux.next_tag(&mut buf).unwrap().unwrap().timestamp, 2);
    }

    #[test]
    fn demux_header_flags() {
        let mut demux = FlvDemuxer::new(100);
        let mut buf = BytesMut::from(&file_header(false, true)[..]);
        assert_eq!(demux.next_tag(&mut buf), Ok(None));
        assert_eq!(demux.header(), Some((false, true)));
        assert!(buf.is_empty());
    }

    #[test]
    fn demux_skips_larger_data_offset() {
        let mut buf = BytesMut::from(&b"FLV\x01\x05\x00\x00\x00\x0C"[..]);
        buf.extend_from_slice(&[0xEE; 3]); // extra header bytes
        buf.extend_from_slice(&[0, 0, 0, 0]);
        buf.extend_from_slice(&tag_bytes(8, 5, &[0x2F]));
        let mut demux = FlvDemuxer::new(100);
        let tag = demux.next_tag(&mut buf).unwrap().unwrap();
        assert_eq!(
            (tag.tag_type, tag.timestamp, &tag.body[..]),
            (8, 5, &[0x2F][..])
        );
    }

    #[test]
    fn demux_bad_signature() {
        for bad in [
            &b"X"[..],
            b"FLX",
            b"flv\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00",
        ] {
            let mut demux = FlvDemuxer::new(100);
            let mut buf = BytesMut::from(bad);
            assert_eq!(demux.next_tag(&mut buf), Err(FlvError::BadSignature));
            assert_eq!(buf.len(), bad.len());
        }
        // A DataOffset below the header size is not a valid FLV header either.
        let mut demux = FlvDemuxer::new(100);
        let mut buf = BytesMut::from(&b"FLV\x01\x05\x00\x00\x00\x08\x00\x00\x00\x00"[..]);
        assert_eq!(demux.next_tag(&mut buf), Err(FlvError::BadSignature));
        // A prefix of the signature just waits.
        let mut demux = FlvDemuxer::new(100);
        let mut buf = BytesMut::from(&b"FL"[..]);
        assert_eq!(demux.next_tag(&mut buf), Ok(None));
        assert_eq!(&buf[..], b"FL");
    }

    #[test]
    fn demux_tag_too_large() {
        let mut buf = file(&[(9, 0, vec![0; 101])]);
        let mut demux = FlvDemuxer::new(100);
        assert_eq!(demux.next_tag(&mut buf), Err(FlvError::TagTooLarge(101)));
        // Rejected from the header alone, before the body arrives.
        let mut buf = BytesMut::from(&file_header(true, true)[..]);
        buf.extend_from_slice(&[9, 0xFF, 0xFF, 0xFF]);
        let mut demux = FlvDemuxer::new(100);
        assert_eq!(
            demux.next_tag(&mut buf),
            Err(FlvError::TagTooLarge(0xFF_FFFF))
        );
        assert_eq!(&buf[..], &[9, 0xFF, 0xFF, 0xFF]);
    }

    #[test]
    fn demux_exact_limit_is_accepted() {
        let mut buf = file(&[(9, 0, vec![7; 100])]);
        let mut demux = FlvDemuxer::new(100);
        assert_eq!(demux.next_tag(&mut buf).unwrap().unwrap().body.len(), 100);
        assert!(demux.max_buffered() >= TAG_HEADER_SIZE + 100 + 4);
    }

    #[test]
    fn demux_unknown_tag_type() {
        for t in [0u8, 7, 10, 17, 19, 0x28, 0xFF] {
            let mut buf = file(&[(t, 0, vec![1, 2, 3])]);
            let mut demux = FlvDemuxer::new(100);
            assert_eq!(demux.next_tag(&mut buf), Err(FlvError::UnknownTagType(t)));
        }
    }

    #[test]
    fn demux_never_consumes_partial_tag() {
        let full = file(&[(9, 42, vec![0x17, 1, 0, 0, 0x21, 0xAB])]);
        for cut in FLV_HEADER_SIZE..full.len() - 4 {
            let mut demux = FlvDemuxer::new(100);
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(demux.next_tag(&mut buf), Ok(None), "cut {cut}");
            assert_eq!(buf.len(), cut - FLV_HEADER_SIZE, "cut {cut}");
            // Completing the buffer yields the tag.
            buf.extend_from_slice(&full[cut..]);
            let tag = demux.next_tag(&mut buf).unwrap().unwrap();
            assert_eq!(tag.timestamp, 42);
            assert_eq!(&tag.body[..], &[0x17, 1, 0, 0, 0x21, 0xAB]);
        }
        for cut in 0..FLV_HEADER_SIZE {
            let mut demux = FlvDemuxer::new(100);
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(demux.next_tag(&mut buf), Ok(None));
            assert_eq!(buf.len(), cut);
            assert_eq!(demux.header(), None);
        }
    }

    #[test]
    fn demux_body_is_zero_copy() {
        let mut buf = file(&[(9, 0, vec![1, 2, 3, 4])]);
        let start = buf.as_ptr() as usize + FLV_HEADER_SIZE + TAG_HEADER_SIZE;
        let mut demux = FlvDemuxer::new(100);
        let tag = demux.next_tag(&mut buf).unwrap().unwrap();
        assert_eq!(tag.body.as_ptr() as usize, start);
    }

    // ---- video headers ----

    #[test]
    fn avc_sequence_header() {
        let h = video(&[0x17, 0x00, 0, 0, 0, 0x01, 0x64, 0x00, 0x1F]);
        assert_eq!(
            h,
            VideoHeader {
                codec: VideoCodec::Avc,
                keyframe: true,
                packet: VideoPacket::SequenceStart,
                composition_offset: 0,
                enhanced: false,
            }
        );
    }

    #[test]
    fn avc_keyframe_with_cts() {
        let h = video(&[0x17, 0x01, 0x00, 0x00, 0x21, 0, 0, 0, 5, 0x65]);
        assert_eq!(h.codec, VideoCodec::Avc);
        assert!(h.keyframe);
        assert_eq!(h.packet, VideoPacket::CodedFrames);
        assert_eq!(h.composition_offset, 33);
    }

    #[test]
    fn avc_inter_frame_and_negative_cts() {
        let h = video(&[0x27, 0x01, 0, 0, 0, 0x41]);
        assert!(!h.keyframe);
        assert_eq!(h.packet, VideoPacket::CodedFrames);
        let h = video(&[0x27, 0x01, 0xFF, 0xFF, 0xF6]);
        assert_eq!(h.composition_offset, -10);
        let h = video(&[0x27, 0x01, 0x80, 0x00, 0x00]);
        assert_eq!(h.composition_offset, -0x80_0000);
        let h = video(&[0x27, 0x01, 0x7F, 0xFF, 0xFF]);
        assert_eq!(h.composition_offset, 0x7F_FFFF);
    }

    #[test]
    fn avc_end_of_sequence() {
        let h = video(&[0x17, 0x02, 0, 0, 0]);
        assert_eq!(h.packet, VideoPacket::SequenceEnd);
    }

    #[test]
    fn avc_too_short() {
        for len in 0..5 {
            let body = [0x17, 0x01, 0, 0, 0x21];
            assert_eq!(parse_video_header(&body[..len]), Err(FlvError::Truncated));
        }
    }

    #[test]
    fn hevc_legacy_id_12() {
        let h = video(&[0x1C, 0x00, 0, 0, 0, 0x01]);
        assert_eq!(h.codec, VideoCodec::Hevc);
        assert_eq!(h.packet, VideoPacket::SequenceStart);
        assert!(!h.enhanced);
        let h = video(&[0x1C, 0x01, 0, 0, 0x28, 0x26]);
        assert_eq!(h.packet, VideoPacket::CodedFrames);
        assert!(h.keyframe);
        assert_eq!(h.composition_offset, 40);
        let h = video(&[0x2C, 0x01, 0, 0, 0, 0x02]);
        assert!(!h.keyframe);
    }

    #[test]
    fn legacy_raw_codecs() {
        let h = video(&[0x12, 0xAA]);
        assert_eq!(h.codec, VideoCodec::SorensonH263);
        assert_eq!(h.packet, VideoPacket::Raw);
        assert!(h.keyframe);
        let h = video(&[0x24]);
        assert_eq!(h.codec, VideoCodec::Vp6);
        assert!(!h.keyframe);
        assert_eq!(video(&[0x35]).codec, VideoCodec::Vp6Alpha);
        assert_eq!(video(&[0x13]).codec, VideoCodec::ScreenVideo);
        assert_eq!(video(&[0x16]).codec, VideoCodec::ScreenVideo2);
        assert_eq!(video(&[0x1D]).codec, VideoCodec::Legacy(13));
        assert_eq!(parse_video_header(&[]), Err(FlvError::Truncated));
    }

    #[test]
    fn legacy_command_frame() {
        let h = video(&[0x57, 0x00, 0, 0, 0, 0x01]);
        assert_eq!(h.packet, VideoPacket::Command);
        assert!(!h.keyframe);
        assert_eq!(h.codec, VideoCodec::Avc);
        let h = video(&[0x5C, 0x00]);
        assert_eq!(h.packet, VideoPacket::Command);
        assert_eq!(h.codec, VideoCodec::Hevc);
        assert_eq!(parse_video_header(&[0x57]), Err(FlvError::Truncated));
    }

    #[test]
    fn enhanced_hevc_sequence_start() {
        let h = video(b"\x90hvc1\x01\x02");
        assert_eq!(
            h,
            VideoHeader {
                codec: VideoCodec::Hevc,
                keyframe: true,
                packet: VideoPacket::SequenceStart,
                composition_offset: 0,
                enhanced: true,
            }
        );
    }

    #[test]
    fn enhanced_coded_frames_with_cts() {
        let h = video(b"\x91hvc1\x00\x00\x21\x00\x00\x00\x05");
        assert_eq!(h.codec, VideoCodec::Hevc);
        assert_eq!(h.packet, VideoPacket::CodedFrames);
        assert!(h.keyframe);
        assert_eq!(h.composition_offset, 33);
        let h = video(b"\xA1avc1\xFF\xFF\xF6");
        assert_eq!(h.codec, VideoCodec::Avc);
        assert!(!h.keyframe);
        assert_eq!(h.composition_offset, -10);
        // The CTS is mandatory for hvc1/avc1 CodedFrames.
        assert_eq!(
            parse_video_header(b"\x91hvc1\x00\x00"),
            Err(FlvError::Truncated)
        );
    }

    #[test]
    fn enhanced_coded_frames_x() {
        let h = video(b"\x93av01\x12\x00");
        assert_eq!(h.codec, VideoCodec::Av1);
        assert_eq!(h.packet, VideoPacket::CodedFrames);
        assert!(h.keyframe);
        assert_eq!(h.composition_offset, 0);
        // hvc1 with CodedFramesX: no CTS on the wire, the NALU length follows directly.
        let h = video(b"\x93hvc1\xFF\xFF\xF6\x00");
        assert_eq!(h.composition_offset, 0);
    }

    #[test]
    fn enhanced_vp9_inter_and_av1_coded() {
        let h = video(b"\xA3vp09\x00");
        assert_eq!(h.codec, VideoCodec::Vp9);
        assert!(!h.keyframe);
        assert_eq!(h.packet, VideoPacket::CodedFrames);
        // No CTS for codecs other than AVC/HEVC, even with CodedFrames.
        let h = video(b"\x91av01");
        assert_eq!(h.codec, VideoCodec::Av1);
        assert_eq!(h.composition_offset, 0);
        assert_eq!(video(b"\x90vp08").codec, VideoCodec::Vp8);
    }

    #[test]
    fn enhanced_other_packet_types() {
        assert_eq!(video(b"\x92hvc1").packet, VideoPacket::SequenceEnd);
        let h = video(b"\x94av01\x02\x00\x09colorInfo");
        assert_eq!(h.packet, VideoPacket::Metadata);
        assert!(!h.keyframe, "frame type is ignored on metadata");
        assert_eq!(video(b"\x95av01").packet, VideoPacket::Mpeg2TsSequenceStart);
        assert_eq!(video(b"\x9Fav01").packet, VideoPacket::Raw);
        assert_eq!(video(b"\x93abcd").codec, VideoCodec::FourCc(0x6162_6364));
        for len in 1..5 {
            assert_eq!(
                parse_video_header(&b"\x90hvc1"[..len]),
                Err(FlvError::Truncated)
            );
        }
    }

    #[test]
    fn enhanced_command_frame() {
        // v2: the command byte directly follows the header byte.
        let h = video(&[0xD1, 0x00]);
        assert_eq!(h.packet, VideoPacket::Command);
        assert!(!h.keyframe);
        assert!(h.enhanced);
        assert_eq!(h.codec, VideoCodec::FourCc(0));
        // v1-era layout with a FourCC first.
        let h = video(b"\xD1hvc1\x01");
        assert_eq!(h.packet, VideoPacket::Command);
        assert_eq!(h.codec, VideoCodec::Hevc);
        assert_eq!(parse_video_header(&[0xD1]), Err(FlvError::Truncated));
        // Metadata overrides the command frame type.
        assert_eq!(video(b"\xD4av01\x02").packet, VideoPacket::Metadata);
    }

    #[test]
    fn enhanced_mod_ex_is_skipped() {
        // ModEx: size 3 (UI8 2 + 1), TimestampOffsetNano data, then type 0 / packet CodedFrames.
        let h = video(b"\x97\x02\x00\x01\x02\x01hvc1\x00\x00\x21");
        assert_eq!(h.packet, VideoPacket::CodedFrames);
        assert_eq!(h.codec, VideoCodec::Hevc);
        assert!(h.keyframe);
        assert_eq!(h.composition_offset, 33);
        // Two chained ModEx blocks, the second one with the UI16 size escape (300 bytes).
        let mut body = vec![0x97, 0x00, 0xAA, 0x07, 0xFF, 0x01, 0x2B];
        body.extend_from_slice(&[0u8; 300]);
        body.push(0x03);
        body.extend_from_slice(b"av01");
        let h = video(&body);
        assert_eq!(h.packet, VideoPacket::CodedFrames);
        assert_eq!(h.codec, VideoCodec::Av1);
        // Modifier data running past the end.
        assert_eq!(
            parse_video_header(b"\x97\x05\x00"),
            Err(FlvError::Truncated)
        );
        assert_eq!(
            parse_video_header(b"\x97\xFF\x01"),
            Err(FlvError::Truncated)
        );
    }

    #[test]
    fn enhanced_multitrack() {
        // One track, shared FourCC, CodedFrames: FourCC, track id, then the CTS.
        let h = video(b"\x96\x01hvc1\x00\x00\x00\x21\x00");
        assert_eq!(h.codec, VideoCodec::Hevc);
        assert_eq!(h.packet, VideoPacket::CodedFrames);
        assert!(h.keyframe);
        assert_eq!(h.composition_offset, 33);
        // Many tracks, same codec, sequence start: track id then UI24 size.
        let h = video(b"\x96\x10av01\x00\x00\x00\x04\x81\x00\x0c\x00");
        assert_eq!(h.codec, VideoCodec::Av1);
        assert_eq!(h.packet, VideoPacket::SequenceStart);
        // Many tracks, many codecs: the first track's FourCC opens the body.
        let h = video(b"\xA6\x21avc1\x00\x00\x00\x08\xFF\xFF\xF6\x00");
        assert_eq!(h.codec, VideoCodec::Avc);
        assert!(!h.keyframe);
        assert_eq!(h.composition_offset, -10);
        // Nested multitrack is reported, not parsed.
        assert_eq!(video(b"\x96\x06hvc1").packet, VideoPacket::Multitrack);
        assert_eq!(
            parse_video_header(b"\x96\x01hvc1"),
            Err(FlvError::Truncated)
        );
        assert_eq!(parse_video_header(b"\x96"), Err(FlvError::Truncated));
    }

    // ---- audio headers ----

    #[test]
    fn aac_headers() {
        assert_eq!(
            audio(&[0xAF, 0x00, 0x12, 0x10]),
            AudioHeader {
                codec: AudioCodec::Aac,
                packet: AudioPacket::SequenceStart,
                enhanced: false,
            }
        );
        assert_eq!(audio(&[0xAF, 0x01, 0x21]).packet, AudioPacket::CodedFrames);
        assert_eq!(audio(&[0xAF, 0x05]).packet, AudioPacket::Raw);
        assert_eq!(parse_audio_header(&[0xAF]), Err(FlvError::Truncated));
        assert_eq!(parse_audio_header(&[]), Err(FlvError::Truncated));
    }

    #[test]
    fn legacy_raw_audio() {
        for (b0, codec) in [
            (0x2F, AudioCodec::Mp3),
            (0xE2, AudioCodec::Mp3),
            (0xB6, AudioCodec::Speex),
            (0x6E, AudioCodec::Nellymoser),
            (0x42, AudioCodec::Nellymoser),
            (0x52, AudioCodec::Nellymoser),
            (0x72, AudioCodec::G711A),
            (0x82, AudioCodec::G711U),
            (0x0E, AudioCodec::LinearPcmPlatform),
            (0x1E, AudioCodec::Adpcm),
            (0x3F, AudioCodec::LinearPcmLe),
            (0xF0, AudioCodec::Legacy(15)),
        ] {
            let h = audio(&[b0, 0xFF, 0xFB]);
            assert_eq!(h.codec, codec, "{b0:#x}");
            assert_eq!(h.packet, AudioPacket::Raw);
            assert!(!h.enhanced);
        }
    }

    #[test]
    fn ex_audio() {
        assert_eq!(
            audio(b"\x90OpusOpusHead"),
            AudioHeader {
                codec: AudioCodec::Opus,
                packet: AudioPacket::SequenceStart,
                enhanced: true,
            }
        );
        assert_eq!(audio(b"\x91fLaC\xFF\xF8").packet, AudioPacket::CodedFrames);
        assert_eq!(audio(b"\x91fLaC").codec, AudioCodec::Flac);
        assert_eq!(audio(b"\x92ac-3").packet, AudioPacket::SequenceEnd);
        assert_eq!(audio(b"\x92ac-3").codec, AudioCodec::Ac3);
        assert_eq!(
            audio(b"\x94ec-3\x00\x02").packet,
            AudioPacket::MultichannelConfig
        );
        assert_eq!(audio(b"\x94ec-3").codec, AudioCodec::Eac3);
        assert_eq!(audio(b"\x90mp4a\x12\x10").codec, AudioCodec::Aac);
        assert_eq!(audio(b"\x91.mp3").codec, AudioCodec::Mp3);
        assert_eq!(audio(b"\x93Opus").packet, AudioPacket::Raw);
        for len in 0..5 {
            assert_eq!(
                parse_audio_header(&b"\x90Opus"[..len]),
                Err(FlvError::Truncated)
            );
        }
    }

    #[test]
    fn ex_audio_mod_ex_and_multitrack() {
        let h = audio(b"\x97\x02\x00\x00\x10\x01Opus");
        assert_eq!(h.codec, AudioCodec::Opus);
        assert_eq!(h.packet, AudioPacket::CodedFrames);
        let h = audio(b"\x95\x00Opus\x00OpusHead");
        assert_eq!(h.codec, AudioCodec::Opus);
        assert_eq!(h.packet, AudioPacket::SequenceStart);
        let h = audio(b"\x95\x21mp4a\x00\x00\x00\x02\x21\x00");
        assert_eq!(h.codec, AudioCodec::Aac);
        assert_eq!(h.packet, AudioPacket::CodedFrames);
        assert_eq!(parse_audio_header(b"\x95\x01Op"), Err(FlvError::Truncated));
    }

    proptest! {
        #[test]
        fn prop_round_trip_any_split(
            tags in prop::collection::vec(
                (prop::sample::select(vec![8u8, 9, 18]), any::<u32>(),
                 prop::collection::vec(any::<u8>(), 0..300)),
                0..12,
            ),
            splits in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
            has_audio in any::<bool>(),
            has_video in any::<bool>(),
        ) {
            let mut stream = file_header(has_audio, has_video).to_vec();
            for (t, ts, body) in &tags {
                stream.extend_from_slice(&tag_bytes(*t, *ts, body));
            }
            let mut cuts: Vec<usize> = splits.iter().map(|i| i.index(stream.len() + 1)).collect();
            cuts.push(stream.len());
            cuts.sort_unstable();
            let mut demux = FlvDemuxer::new(300);
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut fed = 0;
            for cut in cuts {
                buf.extend_from_slice(&stream[fed..cut]);
                fed = cut;
                while let Some(tag) = demux.next_tag(&mut buf).unwrap() {
                    got.push((tag.tag_type, tag.timestamp, tag.body.to_vec()));
                }
            }
            prop_assert_eq!(got, tags);
            prop_assert_eq!(demux.header(), Some((has_audio, has_video)));
        }

        #[test]
        fn prop_demuxer_never_panics(
            prefix in any::<bool>(),
            garbage in prop::collection::vec(any::<u8>(), 0..512),
            step in 1usize..64,
        ) {
            let mut stream = if prefix { file_header(true, true).to_vec() } else { Vec::new() };
            stream.extend_from_slice(&garbage);
            let mut demux = FlvDemuxer::new(256);
            let mut buf = BytesMut::new();
            for chunk in stream.chunks(step) {
                buf.extend_from_slice(chunk);
                while let Ok(Some(tag)) = demux.next_tag(&mut buf) {
                    prop_assert!(tag.body.len() <= 256);
                }
                // An error leaves the buffer as it was, and says the same thing again.
                let before = buf.clone();
                if let Err(e) = demux.next_tag(&mut buf) {
                    prop_assert_eq!(&buf, &before);
                    prop_assert_eq!(demux.next_tag(&mut buf), Err(e));
                }
                prop_assert!(buf.len() <= stream.len());
            }
        }

        #[test]
        fn prop_header_parsers_never_panic(body in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_video_header(&body);
            let _ = parse_audio_header(&body);
            for len in 0..body.len() {
                let _ = parse_video_header(&body[..len]);
                let _ = parse_audio_header(&body[..len]);
            }
        }

        #[test]
        fn prop_legacy_avc_cts(cts in -0x80_0000i32..0x80_0000) {
            let b = cts.to_be_bytes();
            let h = parse_video_header(&[0x27, 0x01, b[1], b[2], b[3]]).unwrap();
            prop_assert_eq!(h.composition_offset, cts);
        }
    }
}
