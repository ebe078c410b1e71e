//! FLV: file header, tag writing, a sans-IO tag demuxer, and the parsing of audio/video tag headers
//! (legacy and Enhanced RTMP v1/v2, including HEVC with legacy codec id 12).

use bytes::{Bytes, BytesMut};

use crate::codec::{AudioCodec, VideoCodec};

/// FLV file header (9 bytes) plus PreviousTagSize0 (4 bytes).
pub const FLV_HEADER_SIZE: usize = 13;
/// Tag header size.
pub const TAG_HEADER_SIZE: usize = 11;

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
    let _ = (has_audio, has_video);
    todo!()
}

/// Appends one tag (header, body, PreviousTagSize) to `out`.
pub fn write_tag(tag_type: u8, timestamp: u32, body: &[u8], out: &mut BytesMut) {
    let _ = (tag_type, timestamp, body, out);
    todo!()
}

/// One tag read back by [`FlvDemuxer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    pub tag_type: u8,
    pub timestamp: u32,
    pub body: Bytes,
}

/// Sans-IO FLV demuxer: feed bytes, take tags.
pub struct FlvDemuxer {
    _private: (),
}

impl FlvDemuxer {
    /// `max_tag_size` bounds the buffer a peer can make us hold.
    pub fn new(max_tag_size: u32) -> Self {
        let _ = max_tag_size;
        todo!()
    }

    /// The header flags `(has_audio, has_video)` once the file header has been read.
    pub fn header(&self) -> Option<(bool, bool)> {
        todo!()
    }

    /// Consumes bytes from `buf` and returns the next complete tag, or `None` if more are needed.
    pub fn next_tag(&mut self, buf: &mut BytesMut) -> Result<Option<FlvTag>, FlvError> {
        let _ = buf;
        todo!()
    }
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioHeader {
    pub codec: AudioCodec,
    pub packet: AudioPacket,
    pub enhanced: bool,
}

/// Parses the header of a video tag body.
pub fn parse_video_header(body: &[u8]) -> Result<VideoHeader, FlvError> {
    let _ = body;
    todo!()
}

/// Parses the header of an audio tag body.
pub fn parse_audio_header(body: &[u8]) -> Result<AudioHeader, FlvError> {
    let _ = body;
    todo!()
}
