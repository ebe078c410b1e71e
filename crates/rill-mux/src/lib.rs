//! Container writers, sans-IO: frames in, segments and playlists out.
//!
//! - [`sample`]: the codec payload of a hub frame (FLV tag headers stripped) and its timing;
//! - [`track`]: a track's description from its sequence header (codec, config record, timescale);
//! - [`ts`]: MPEG-TS (HLS segments);
//! - [`fmp4`]: fragmented MP4 / CMAF (HLS fMP4 segments and parts, DASH);
//! - [`hls`] / [`dash`]: the playlist and MPD text.

mod boxes;
pub mod dash;
pub mod fmp4;
pub mod hls;
pub mod mp4;
pub mod sample;
pub mod track;
pub mod ts;

/// Why a frame could not be muxed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MuxError {
    #[error("codec {0} cannot be carried in this container")]
    UnsupportedCodec(&'static str),
    #[error("malformed {0}")]
    Malformed(&'static str),
}
