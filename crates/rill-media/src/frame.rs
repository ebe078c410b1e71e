//! The one frame type that flows through the hub.

use bytes::Bytes;

use crate::codec::Codec;
use crate::flv::{self, FlvError};

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
    pub fn from_flv_body(kind: FrameKind, timestamp: u32, payload: Bytes) -> Result<Frame, FlvError> {
        let _ = (kind, timestamp, payload, flv::FLV_HEADER_SIZE);
        todo!()
    }
}
