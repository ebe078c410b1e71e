//! Stream facts read from sequence headers: codec, profile, level, resolution, frame rate, sample
//! rate and channels, for every codec Rill ingests. Sans-IO; each parser runs once per sequence
//! header, so correctness matters more than speed, and none may panic on hostile input.

use crate::codec::{AudioCodec, VideoCodec};

/// What a video sequence header says.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoParams {
    pub codec: VideoCodec,
    /// Profile name as players show it (`"High"`, `"Main"`, `"Main 10"`, `"Profile 0"`, ...).
    pub profile: Option<String>,
    /// Level as a number (`3.1`, `4.0`, `5.1`, ...).
    pub level: Option<f64>,
    /// Displayed size (after cropping).
    pub width: u32,
    pub height: u32,
    /// Frames per second from the bitstream's timing info, when present.
    pub fps: Option<f64>,
    /// RFC 6381 codec string (`avc1.64001f`, `hvc1.1.6.L93.B0`, `av01.0.05M.08`, `vp09.00.10.08`).
    pub codec_string: Option<String>,
}

/// What an audio tag (sequence header or legacy flags) says.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioParams {
    pub codec: AudioCodec,
    /// Profile name (`"LC"`, `"HE-AAC"`, `"HE-AACv2"`, ...), where the codec has one.
    pub profile: Option<String>,
    pub sample_rate: u32,
    pub channels: u8,
    /// RFC 6381 codec string (`mp4a.40.2`, `opus`, `mp4a.40.34` for MP3, ...).
    pub codec_string: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParamsError {
    #[error("not a sequence header")]
    NotSequenceHeader,
    #[error("{0} configuration is truncated or malformed")]
    Malformed(&'static str),
    #[error("codec {0} has no parser")]
    Unsupported(&'static str),
}

/// Parses the FLV video tag body of a sequence header (legacy AVC/HEVC-id-12, or Enhanced RTMP
/// SequenceStart for avc1/hvc1/av01/vp09).
pub fn video_params(body: &[u8]) -> Result<VideoParams, ParamsError> {
    let _ = body;
    todo!()
}

/// Parses an FLV audio tag body: the AAC AudioSpecificConfig / Opus head of a sequence header, or
/// the legacy sound rate/size/type flags for codecs without one (MP3, Speex, Nellymoser, G.711).
pub fn audio_params(body: &[u8]) -> Result<AudioParams, ParamsError> {
    let _ = body;
    todo!()
}
