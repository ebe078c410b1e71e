//! A sample: the codec payload of a hub frame with the FLV tag header stripped, and its timing.

use bytes::Bytes;
use rill_media::flv::{parse_audio_header, parse_video_header, AudioPacket, VideoPacket};
use rill_media::{Frame, FrameKind};

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Video,
    Audio,
}

/// One coded frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub kind: TrackKind,
    /// Decode time in milliseconds (the stream's timestamps, possibly large).
    pub dts_ms: u64,
    /// Presentation minus decode time in milliseconds.
    pub cts_ms: i32,
    pub keyframe: bool,
    /// The codec payload: length-prefixed NAL units (AVC/HEVC), OBUs (AV1), a VP9 frame, a raw
    /// AAC frame, an Opus packet, an MP3 frame, ...
    pub data: Bytes,
}

/// Where the codec payload starts in an FLV video tag body, and whether it is coded frames.
fn video_payload_offset(body: &[u8]) -> Option<usize> {
    let h = parse_video_header(body).ok()?;
    if h.packet != VideoPacket::CodedFrames && h.packet != VideoPacket::Raw {
        return None;
    }
    let first = *body.first()?;
    if !h.enhanced {
        // Legacy AVC (7) and HEVC (12): frame type/codec, packet type, 24-bit composition time.
        return Some(if matches!(first & 0x0F, 7 | 12) { 5 } else { 1 });
    }
    // Enhanced RTMP: header byte and FourCC; CodedFrames (1) of avc1/hvc1 carry a composition time,
    // CodedFramesX (3) and the other codecs do not. ModEx and multitrack bodies are not handled here.
    let packet_type = first & 0x0F;
    let fourcc = body.get(1..5)?;
    match packet_type {
        1 if fourcc == b"avc1" || fourcc == b"hvc1" => Some(8),
        1 | 3 => Some(5),
        _ => None,
    }
}

/// Where the codec payload starts in an FLV audio tag body.
fn audio_payload_offset(body: &[u8]) -> Option<usize> {
    let h = parse_audio_header(body).ok()?;
    if h.packet != AudioPacket::CodedFrames && h.packet != AudioPacket::Raw {
        return None;
    }
    let first = *body.first()?;
    match first >> 4 {
        // Enhanced audio: header byte and FourCC (ModEx/multitrack are not handled here).
        9 if first & 0x0F == 1 => Some(5),
        9 => None,
        // AAC: header byte and packet type.
        10 => Some(2),
        _ => Some(1),
    }
}

/// The sample of a coded audio/video frame; `None` for metadata, sequence headers and other
/// non-media packets.
pub fn sample_from_frame(frame: &Frame) -> Option<Sample> {
    if frame.sequence_header {
        return None;
    }
    let (kind, offset) = match frame.kind {
        FrameKind::Video => (TrackKind::Video, video_payload_offset(&frame.payload)?),
        FrameKind::Audio => (TrackKind::Audio, audio_payload_offset(&frame.payload)?),
        FrameKind::Metadata => return None,
    };
    if offset > frame.payload.len() {
        return None;
    }
    Some(Sample {
        kind,
        dts_ms: u64::from(frame.timestamp),
        cts_ms: frame.composition_offset,
        keyframe: frame.keyframe,
        data: frame.payload.slice(offset..),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: FrameKind, ts: u32, body: &'static [u8]) -> Frame {
        Frame::from_flv_body(kind, ts, Bytes::from_static(body)).unwrap()
    }

    #[test]
    fn strips_flv_headers() {
        let s = sample_from_frame(&frame(
            FrameKind::Video,
            40,
            b"\x17\x01\x00\x00\x21\x00\x00\x00\x01\x65",
        ))
        .unwrap();
        assert_eq!(
            (s.kind, s.dts_ms, s.cts_ms, s.keyframe),
            (TrackKind::Video, 40, 33, true)
        );
        assert_eq!(&s.data[..], b"\x00\x00\x00\x01\x65");
        let s =
            sample_from_frame(&frame(FrameKind::Video, 0, b"\x91hvc1\x00\x00\x10\xAA")).unwrap();
        assert_eq!((s.cts_ms, &s.data[..]), (16, &b"\xAA"[..]));
        let s = sample_from_frame(&frame(FrameKind::Video, 0, b"\x93av01\xBB")).unwrap();
        assert_eq!(&s.data[..], b"\xBB");
        let s = sample_from_frame(&frame(FrameKind::Audio, 0, b"\xaf\x01\x21\x10")).unwrap();
        assert_eq!(&s.data[..], b"\x21\x10");
        let s = sample_from_frame(&frame(FrameKind::Audio, 0, b"\x2f\xff\xfb")).unwrap();
        assert_eq!(&s.data[..], b"\xff\xfb");
        let s = sample_from_frame(&frame(FrameKind::Audio, 0, b"\x91Opus\xCC")).unwrap();
        assert_eq!(&s.data[..], b"\xCC");
    }

    #[test]
    fn sequence_headers_and_metadata_are_not_samples() {
        assert!(
            sample_from_frame(&frame(FrameKind::Video, 0, b"\x17\x00\x00\x00\x00\x01")).is_none()
        );
        assert!(sample_from_frame(&frame(FrameKind::Audio, 0, b"\xaf\x00\x12\x10")).is_none());
        assert!(sample_from_frame(&frame(FrameKind::Video, 0, b"\x90hvc1\x01")).is_none());
        assert!(
            sample_from_frame(&frame(FrameKind::Metadata, 0, b"\x02\x00\x0aonMetaData")).is_none()
        );
    }
}
