//! Rill's media model, shared by every part of the server: the [`Frame`] that flows through the hub,
//! codec identifiers (FLV ids and Enhanced RTMP FourCCs), and FLV tag muxing/demuxing.
//!
//! Sans-IO: no sockets, no runtime.

pub mod codec;
pub mod flv;
pub mod frame;
pub mod params;

pub use codec::{AudioCodec, Codec, VideoCodec};
pub use flv::{FlvDemuxer, FlvError, FlvTag};
pub use frame::{Frame, FrameKind};
pub use params::{AudioParams, ParamsError, VideoParams};
