//! A track's description, read from its sequence header: codec, configuration record, size or
//! sample rate, RFC 6381 codec string, and the timescale its container timestamps use.

use bytes::Bytes;
use rill_media::params::{audio_params, video_params};
use rill_media::{AudioCodec, Frame, FrameKind, VideoCodec};

use crate::sample::TrackKind;
use crate::MuxError;

/// Video timescale (the MPEG 90 kHz clock, shared by TS and fMP4).
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// The codec of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackCodec {
    Video(VideoCodec),
    Audio(AudioCodec),
}

/// Everything a container writer needs to describe a track.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackInfo {
    pub kind: TrackKind,
    pub codec: TrackCodec,
    /// The codec configuration record as carried in FLV: avcC, hvcC, av1C or vpcC contents for
    /// video; AudioSpecificConfig (AAC) or OpusHead (Opus) for audio; empty for MP3.
    pub config: Bytes,
    pub width: u32,
    pub height: u32,
    pub sample_rate: u32,
    pub channels: u8,
    /// RFC 6381 codec string (`avc1.64001f`, `mp4a.40.2`, ...).
    pub codec_string: String,
    /// Ticks per second of this track's container timestamps.
    pub timescale: u32,
}

impl TrackInfo {
    /// Reads a video or audio sequence header frame.
    pub fn from_sequence_header(frame: &Frame) -> Result<TrackInfo, MuxError> {
        let body = &frame.payload;
        match frame.kind {
            FrameKind::Video => {
                let p =
                    video_params(body).map_err(|_| MuxError::Malformed("video sequence header"))?;
                // Legacy (frame type/codec, packet type, composition time) and Enhanced (header
                // byte, FourCC) headers are both 5 bytes before the record.
                let config = body.slice(5.min(body.len())..);
                Ok(TrackInfo {
                    kind: TrackKind::Video,
                    codec: TrackCodec::Video(p.codec),
                    config,
                    width: p.width,
                    height: p.height,
                    sample_rate: 0,
                    channels: 0,
                    codec_string: p.codec_string.unwrap_or_default(),
                    timescale: VIDEO_TIMESCALE,
                })
            }
            FrameKind::Audio => Self::audio(frame),
            FrameKind::Metadata => Err(MuxError::Malformed("metadata is not a track")),
        }
    }

    /// Reads an audio sequence header, or any frame of a codec without one (MP3).
    pub fn audio(frame: &Frame) -> Result<TrackInfo, MuxError> {
        let body = &frame.payload;
        let p = audio_params(body).map_err(|_| MuxError::Malformed("audio configuration"))?;
        let config = match body.first().map(|b| b >> 4) {
            Some(10) => body.slice(2.min(body.len())..),
            Some(9) => body.slice(5.min(body.len())..),
            _ => Bytes::new(),
        };
        let timescale = if p.codec == AudioCodec::Opus {
            48_000
        } else {
            p.sample_rate.max(1)
        };
        Ok(TrackInfo {
            kind: TrackKind::Audio,
            codec: TrackCodec::Audio(p.codec),
            config,
            width: 0,
            height: 0,
            sample_rate: p.sample_rate,
            channels: p.channels,
            codec_string: p.codec_string.unwrap_or_default(),
            timescale,
        })
    }

    /// Converts milliseconds to this track's timescale.
    pub fn ticks(&self, ms: u64) -> u64 {
        ms * u64::from(self.timescale) / 1000
    }
}
