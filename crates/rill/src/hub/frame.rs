//! A frame in the hub, with its wire encodings made once and shared by every viewer.

use std::sync::OnceLock;

use bytes::Bytes;
use rill_media::{flv, Frame, FrameKind};
use rill_rtmp::chunk::{ChunkEncoder, MessageHeader};
use rill_rtmp::message::csid;

/// Message stream id that nearly every RTMP player gets from its first createStream: frames are
/// pre-encoded for it; other ids are encoded per viewer.
pub const COMMON_STREAM_ID: u32 = 1;

/// A frame plus lazily built, shared encodings: the FLV tag (HTTP-FLV, WS-FLV) and the RTMP chunks
/// at the server's outgoing chunk size.
#[derive(Debug)]
pub struct HubFrame {
    pub frame: Frame,
    chunk_size: u32,
    flv_tag: OnceLock<Bytes>,
    rtmp: OnceLock<Bytes>,
}

impl HubFrame {
    pub fn new(frame: Frame, chunk_size: u32) -> Self {
        HubFrame {
            frame,
            chunk_size,
            flv_tag: OnceLock::new(),
            rtmp: OnceLock::new(),
        }
    }

    /// The whole FLV tag (header, body, previous tag size).
    pub fn flv_tag(&self) -> Bytes {
        self.flv_tag
            .get_or_init(|| {
                flv::tag_bytes(
                    self.frame.kind.flv_tag_type(),
                    self.frame.timestamp,
                    &self.frame.payload,
                )
            })
            .clone()
    }

    /// The RTMP chunks of this frame for a player on message stream `stream_id`.
    pub fn rtmp_chunks(&self, chunk_size: u32, stream_id: u32) -> Bytes {
        if chunk_size == self.chunk_size && stream_id == COMMON_STREAM_ID {
            self.rtmp
                .get_or_init(|| self.encode_rtmp(chunk_size, stream_id))
                .clone()
        } else {
            self.encode_rtmp(chunk_size, stream_id)
        }
    }

    fn encode_rtmp(&self, chunk_size: u32, stream_id: u32) -> Bytes {
        let cs = match self.frame.kind {
            FrameKind::Audio => csid::AUDIO,
            FrameKind::Video => csid::VIDEO,
            FrameKind::Metadata => csid::DATA,
        };
        let header = MessageHeader {
            timestamp: self.frame.timestamp,
            type_id: self.frame.kind.flv_tag_type(),
            stream_id,
        };
        ChunkEncoder::new(chunk_size).encode_to_bytes(cs, &header, &self.frame.payload)
    }

    /// Bytes of payload, for cache accounting.
    pub fn size(&self) -> usize {
        self.frame.payload.len()
    }
}
