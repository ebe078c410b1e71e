//! The RTMP chunk stream: a decoder that reassembles messages from interleaved chunks (types 0–3,
//! extended timestamps also on type-3 chunks), and a stateless encoder whose output depends only on
//! (chunk size, csid, header, payload), so one encoding can be shared by every viewer.

use bytes::{Bytes, BytesMut};

/// Default chunk size before any Set Chunk Size.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;

/// Header of one RTMP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageHeader {
    /// Absolute timestamp in milliseconds (wrapping u32).
    pub timestamp: u32,
    pub type_id: u8,
    pub stream_id: u32,
}

/// One reassembled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    pub csid: u32,
    pub header: MessageHeader,
    pub payload: Bytes,
}

/// Limits the decoder enforces; a violation is an error that ends the connection.
#[derive(Debug, Clone, Copy)]
pub struct ChunkLimits {
    /// Largest message length accepted.
    pub max_message_size: u32,
    /// Largest chunk size a peer may set.
    pub max_chunk_size: u32,
    /// Most chunk streams with a partial message at once.
    pub max_chunk_streams: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        ChunkLimits {
            max_message_size: 16 * 1024 * 1024,
            max_chunk_size: 16 * 1024 * 1024,
            max_chunk_streams: 64,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ChunkError {
    #[error("chunk of type {fmt} on chunk stream {csid} with no previous header")]
    NoPreviousHeader { fmt: u8, csid: u32 },
    #[error("message of {0} bytes exceeds the limit")]
    MessageTooLarge(u32),
    #[error("chunk size {0} is invalid or above the limit")]
    BadChunkSize(u32),
    #[error("too many chunk streams open at once")]
    TooManyChunkStreams,
}

/// Reassembles messages from chunks.
pub struct ChunkDecoder {
    _private: (),
}

impl ChunkDecoder {
    pub fn new(limits: ChunkLimits) -> Self {
        let _ = limits;
        todo!()
    }

    /// Applies a Set Chunk Size received from the peer (1..=2^31-1 and at most the limit).
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        let _ = size;
        todo!()
    }

    /// Drops the partial message on `csid` (Abort message).
    pub fn abort(&mut self, csid: u32) {
        let _ = csid;
        todo!()
    }

    /// Consumes chunks from the front of `buf` and returns the next complete message, or `None`
    /// when more bytes are needed (the bytes of an incomplete chunk stay in `buf`).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<RawMessage>, ChunkError> {
        let _ = buf;
        todo!()
    }
}

/// Encodes messages as one type-0 chunk followed by type-3 continuations.
#[derive(Debug, Clone, Copy)]
pub struct ChunkEncoder {
    chunk_size: u32,
}

impl ChunkEncoder {
    pub fn new(chunk_size: u32) -> Self {
        ChunkEncoder { chunk_size }
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Changes the outgoing chunk size (send a Set Chunk Size message first).
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size;
    }

    /// Appends the chunks of one message to `out`.
    pub fn encode(&self, csid: u32, header: &MessageHeader, payload: &[u8], out: &mut BytesMut) {
        let _ = (csid, header, payload, out);
        todo!()
    }

    /// The chunks of one message as shareable bytes.
    pub fn encode_to_bytes(&self, csid: u32, header: &MessageHeader, payload: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(payload.len() + 16 + payload.len() / self.chunk_size.max(1) as usize * 5);
        self.encode(csid, header, payload, &mut out);
        out.freeze()
    }
}
