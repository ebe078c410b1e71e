//! Codec identifiers: the legacy FLV ids and the FourCCs of Enhanced RTMP.

/// A video codec as signalled in an FLV/RTMP video tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// Legacy id 2.
    SorensonH263,
    /// Legacy id 3.
    ScreenVideo,
    /// Legacy id 4.
    Vp6,
    /// Legacy id 5.
    Vp6Alpha,
    /// Legacy id 6.
    ScreenVideo2,
    /// Legacy id 7, or FourCC `avc1`.
    Avc,
    /// Legacy id 12 (the Chinese CDN convention), or FourCC `hvc1`.
    Hevc,
    /// FourCC `av01`.
    Av1,
    /// FourCC `vp09`.
    Vp9,
    /// FourCC `vp08`.
    Vp8,
    /// Any other legacy id.
    Legacy(u8),
    /// Any other FourCC.
    FourCc(u32),
}

/// An audio codec as signalled in an FLV/RTMP audio tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// Sound format 0.
    LinearPcmPlatform,
    /// Sound format 1.
    Adpcm,
    /// Sound format 2 (and 14, MP3 8 kHz).
    Mp3,
    /// Sound format 3.
    LinearPcmLe,
    /// Sound formats 4, 5, 6.
    Nellymoser,
    /// Sound format 7.
    G711A,
    /// Sound format 8.
    G711U,
    /// Sound format 10, or FourCC `mp4a`.
    Aac,
    /// Sound format 11.
    Speex,
    /// FourCC `Opus`.
    Opus,
    /// FourCC `fLaC`.
    Flac,
    /// FourCC `ac-3`.
    Ac3,
    /// FourCC `ec-3`.
    Eac3,
    /// Any other legacy sound format.
    Legacy(u8),
    /// Any other FourCC.
    FourCc(u32),
}

/// The codec of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Video(VideoCodec),
    Audio(AudioCodec),
    /// Script data (metadata).
    Data,
}

impl VideoCodec {
    /// Short lowercase name for logs and the API (`"h264"`, `"hevc"`, `"av1"`, ...).
    pub fn name(&self) -> &'static str {
        todo!()
    }
}

impl AudioCodec {
    /// Short lowercase name for logs and the API (`"aac"`, `"mp3"`, `"opus"`, ...).
    pub fn name(&self) -> &'static str {
        todo!()
    }
}
