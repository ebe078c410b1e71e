//! The one frame type that flows through the hub.
//!
//! A frame is classified once, on ingest, from its (legacy or Enhanced RTMP) tag header, so that
//! the hub and every output can decide what to cache and where to start a viewer without parsing
//! headers again.

use bytes::{Bytes, BytesMut};

use crate::codec::Codec;
use crate::flv::{self, AudioPacket, FlvError, VideoPacket};

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    Audio,
    Video,
    /// `onMetaData` script data (AMF0, without the `@setDataFrame` wrapper).
    Metadata,
}

impl FrameKind {
    /// The FLV tag type (8 audio, 9 video, 18 script data); also the RTMP message type id.
    pub fn flv_tag_type(self) -> u8 {
        match self {
            FrameKind::Audio => 8,
            FrameKind::Video => 9,
            FrameKind::Metadata => 18,
        }
    }
}

/// One media frame. The payload is the FLV tag body as received: RTMP carries FLV tag bodies, so
/// passing it through unchanged is what lets every output serialise it once.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub kind: FrameKind,
    /// Decode timestamp in milliseconds.
    pub timestamp: u32,
    /// Presentation minus decode time in milliseconds (video only).
    pub composition_offset: i32,
    /// A random access point (video keyframe; every audio frame counts as one).
    pub keyframe: bool,
    /// A codec configuration record (AVC/HEVC/AV1 sequence header, AAC AudioSpecificConfig, ...).
    pub sequence_header: bool,
    pub codec: Codec,
    pub payload: Bytes,
}

impl Frame {
    /// Builds a frame from an FLV tag body, reading codec, keyframe and sequence-header flags from
    /// its (legacy or Enhanced RTMP) header.
    pub fn from_flv_body(
        kind: FrameKind,
        timestamp: u32,
        payload: Bytes,
    ) -> Result<Frame, FlvError> {
        if payload.is_empty() {
            return Err(FlvError::Truncated);
        }
        let mut frame = Frame {
            kind,
            timestamp,
            composition_offset: 0,
            keyframe: false,
            sequence_header: false,
            codec: Codec::Data,
            payload: Bytes::new(),
        };
        match kind {
            FrameKind::Video => {
                let h = flv::parse_video_header(&payload)?;
                frame.codec = Codec::Video(h.codec);
                frame.composition_offset = h.composition_offset;
                frame.sequence_header = matches!(
                    h.packet,
                    VideoPacket::SequenceStart | VideoPacket::Mpeg2TsSequenceStart
                );
                // Encoders flag sequence headers (and sometimes end-of-sequence markers) as
                // keyframes; a viewer must start at a real coded picture, so only those count.
                frame.keyframe =
                    h.keyframe && matches!(h.packet, VideoPacket::CodedFrames | VideoPacket::Raw);
            }
            FrameKind::Audio => {
                let h = flv::parse_audio_header(&payload)?;
                frame.codec = Codec::Audio(h.codec);
                frame.sequence_header = h.packet == AudioPacket::SequenceStart;
                // Every coded audio frame decodes on its own (given the sequence header).
                frame.keyframe = matches!(h.packet, AudioPacket::CodedFrames | AudioPacket::Raw);
            }
            FrameKind::Metadata => {}
        }
        frame.payload = payload;
        Ok(frame)
    }

    /// Configuration a decoder keeps that is not a sequence header: Enhanced RTMP video metadata
    /// (`colorInfo`: HDR colour volume) and the audio multichannel layout. Encoders send it once,
    /// so a viewer that joins later must be given the last one with the sequence headers.
    pub fn is_stream_setting(&self) -> bool {
        let Some(&first) = self.payload.first() else {
            return false;
        };
        match self.kind {
            // Enhanced video header: the top bit set, the packet type in the low nibble.
            FrameKind::Video if first & 0x80 != 0 => flv::parse_video_header(&self.payload)
                .is_ok_and(|h| h.packet == VideoPacket::Metadata),
            // Enhanced audio header: sound format 9.
            FrameKind::Audio if first >> 4 == 9 => flv::parse_audio_header(&self.payload)
                .is_ok_and(|h| h.packet == AudioPacket::MultichannelConfig),
            _ => false,
        }
    }

    /// A video frame a viewer can start decoding at: the point where the GOP cache starts.
    pub fn is_video_keyframe(&self) -> bool {
        self.kind == FrameKind::Video && self.keyframe && !self.sequence_header
    }

    /// The frame as one FLV tag (header, payload, PreviousTagSize) appended to `out`.
    pub fn write_flv_tag(&self, out: &mut BytesMut) {
        flv::write_tag(self.kind.flv_tag_type(), self.timestamp, &self.payload, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{AudioCodec, VideoCodec};
    use crate::flv::FlvDemuxer;

    fn frame(kind: FrameKind, body: &[u8]) -> Frame {
        Frame::from_flv_body(kind, 1000, Bytes::copy_from_slice(body)).unwrap()
    }

    #[test]
    fn flv_tag_types() {
        assert_eq!(FrameKind::Audio.flv_tag_type(), 8);
        assert_eq!(FrameKind::Video.flv_tag_type(), 9);
        assert_eq!(FrameKind::Metadata.flv_tag_type(), 18);
    }

    #[test]
    fn avc_sequence_header_is_not_a_keyframe() {
        let f = frame(FrameKind::Video, &[0x17, 0x00, 0, 0, 0, 0x01, 0x64]);
        assert_eq!(f.codec, Codec::Video(VideoCodec::Avc));
        assert!(f.sequence_header);
        assert!(!f.keyframe);
        assert!(!f.is_video_keyframe());
        assert_eq!(f.timestamp, 1000);
        assert_eq!(&f.payload[..], &[0x17, 0x00, 0, 0, 0, 0x01, 0x64]);
    }

    #[test]
    fn avc_keyframe_and_inter_frame() {
        let f = frame(
            FrameKind::Video,
            &[0x17, 0x01, 0, 0, 0x21, 0, 0, 0, 1, 0x65],
        );
        assert!(f.keyframe);
        assert!(!f.sequence_header);
        assert!(f.is_video_keyframe());
        assert_eq!(f.composition_offset, 33);
        let f = frame(FrameKind::Video, &[0x27, 0x01, 0xFF, 0xFF, 0xF6, 0x41]);
        assert!(!f.keyframe);
        assert!(!f.is_video_keyframe());
        assert_eq!(f.composition_offset, -10);
    }

    #[test]
    fn end_of_sequence_and_command_are_not_keyframes() {
        let f = frame(FrameKind::Video, &[0x17, 0x02, 0, 0, 0]);
        assert!(!f.keyframe && !f.sequence_header);
        let f = frame(FrameKind::Video, &[0x57, 0x01]);
        assert!(!f.keyframe && !f.sequence_header);
        let f = frame(FrameKind::Video, b"\x94av01\x02");
        assert!(!f.keyframe && !f.sequence_header);
    }

    #[test]
    fn enhanced_video_frames() {
        let f = frame(FrameKind::Video, b"\x90hvc1\x01");
        assert_eq!(f.codec, Codec::Video(VideoCodec::Hevc));
        assert!(f.sequence_header && !f.keyframe);
        let f = frame(FrameKind::Video, b"\x91hvc1\x00\x00\x21\x00");
        assert!(f.is_video_keyframe());
        assert_eq!(f.composition_offset, 33);
        let f = frame(FrameKind::Video, b"\x93av01\x12");
        assert!(f.is_video_keyframe());
        let f = frame(FrameKind::Video, b"\xA3vp09\x00");
        assert_eq!(f.codec, Codec::Video(VideoCodec::Vp9));
        assert!(!f.keyframe);
        let f = frame(FrameKind::Video, b"\x95av01\x00");
        assert!(f.sequence_header && !f.keyframe);
    }

    #[test]
    fn legacy_raw_video_keyframe() {
        let f = frame(FrameKind::Video, &[0x12, 0x00]);
        assert_eq!(f.codec, Codec::Video(VideoCodec::SorensonH263));
        assert!(f.is_video_keyframe());
    }

    #[test]
    fn audio_frames() {
        let f = frame(FrameKind::Audio, &[0xAF, 0x00, 0x12, 0x10]);
        assert_eq!(f.codec, Codec::Audio(AudioCodec::Aac));
        assert!(f.sequence_header && !f.keyframe);
        let f = frame(FrameKind::Audio, &[0xAF, 0x01, 0x21]);
        assert!(!f.sequence_header && f.keyframe);
        assert!(!f.is_video_keyframe());
        let f = frame(FrameKind::Audio, &[0x2F, 0xFF, 0xFB]);
        assert_eq!(f.codec, Codec::Audio(AudioCodec::Mp3));
        assert!(f.keyframe && !f.sequence_header);
        let f = frame(FrameKind::Audio, b"\x90OpusOpusHead");
        assert_eq!(f.codec, Codec::Audio(AudioCodec::Opus));
        assert!(f.sequence_header && !f.keyframe);
        let f = frame(FrameKind::Audio, b"\x91Opus\xFC");
        assert!(f.keyframe);
        assert_eq!(f.composition_offset, 0);
    }

    #[test]
    fn metadata_frame() {
        let f = frame(FrameKind::Metadata, b"\x02\x00\x0aonMetaData");
        assert_eq!(f.codec, Codec::Data);
        assert!(!f.keyframe && !f.sequence_header);
    }

    #[test]
    fn empty_or_truncated_payloads_are_rejected() {
        for kind in [FrameKind::Audio, FrameKind::Video, FrameKind::Metadata] {
            assert_eq!(
                Frame::from_flv_body(kind, 0, Bytes::new()),
                Err(FlvError::Truncated)
            );
        }
        let f = Frame::from_flv_body(FrameKind::Video, 0, Bytes::from_static(&[0x17, 0x01]));
        assert_eq!(f, Err(FlvError::Truncated));
        let f = Frame::from_flv_body(FrameKind::Audio, 0, Bytes::from_static(&[0xAF]));
        assert_eq!(f, Err(FlvError::Truncated));
    }

    #[test]
    fn write_flv_tag_round_trips() {
        let f = Frame::from_flv_body(
            FrameKind::Video,
            0x0123_4567,
            Bytes::from_static(&[0x17, 0x01, 0, 0, 0, 0x65]),
        )
        .unwrap();
        let mut buf = BytesMut::from(&flv::file_header(false, true)[..]);
        f.write_flv_tag(&mut buf);
        let tag = FlvDemuxer::new(1024).next_tag(&mut buf).unwrap().unwrap();
        let back = Frame::from_flv_body(FrameKind::Video, tag.timestamp, tag.body).unwrap();
        assert_eq!(back, f);
    }

    proptest::proptest! {
        #[test]
        fn prop_never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            for kind in [FrameKind::Audio, FrameKind::Video, FrameKind::Metadata] {
                if let Ok(f) = Frame::from_flv_body(kind, 0, Bytes::from(body.clone())) {
                    proptest::prop_assert!(!(f.keyframe && f.sequence_header));
                    proptest::prop_assert_eq!(&f.payload[..], &body[..]);
                }
            }
        }
    }
}
