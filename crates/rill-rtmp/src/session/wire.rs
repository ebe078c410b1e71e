//! What both roles of an RTMP connection share: the chunk decoder and encoder, the output buffer,
//! acknowledgements of received bytes, the protocol control messages, and command writing.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::SessionError;
use crate::amf0::Amf0Value;
use crate::chunk::{ChunkDecoder, ChunkEncoder, ChunkLimits, DEFAULT_CHUNK_SIZE};
use crate::message::{
    csid, encode_command, encode_u32, encode_user_control, type_id, write_message, Message,
    UserControl,
};

/// Window assumed until the peer announces one.
const DEFAULT_PEER_WINDOW: u32 = 2_500_000;

pub(crate) struct Wire {
    pub decoder: ChunkDecoder,
    pub encoder: ChunkEncoder,
    pub out: BytesMut,
    received: u64,
    acked: u64,
    peer_window: u32,
    /// Parts of an aggregate message not yet handed out.
    unpacked: VecDeque<(u32, u32, Message)>,
}

impl Wire {
    pub fn new(limits: ChunkLimits) -> Self {
        Wire {
            decoder: ChunkDecoder::new(limits),
            encoder: ChunkEncoder::new(DEFAULT_CHUNK_SIZE),
            // Grows on first use; an idle connection holds no output buffer.
            out: BytesMut::new(),
            received: 0,
            acked: 0,
            peer_window: DEFAULT_PEER_WINDOW,
            unpacked: VecDeque::new(),
        }
    }

    /// Counts `n` consumed bytes and acknowledges each window's worth, as the peer asked.
    pub fn count_received(&mut self, n: usize) {
        self.received += n as u64;
        if self.received - self.acked >= u64::from(self.peer_window.max(1)) {
            self.acked = self.received;
            // The sequence number is the byte count modulo 2^32 (it wraps on long sessions).
            self.send_control(type_id::ACKNOWLEDGEMENT, &encode_u32(self.received as u32));
        }
    }

    pub fn take_output(&mut self) -> Option<Bytes> {
        // Taken whole (not split off): the buffer leaves with the bytes, so a connection keeps
        // no handshake-sized buffer for the odd acknowledgement it writes later.
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out).freeze())
    }

    /// Writes one message (timestamp 0) on chunk stream `cs`.
    pub fn write(&mut self, cs: u32, type_id: u8, stream_id: u32, payload: &[u8]) {
        write_message(
            &self.encoder,
            &mut self.out,
            cs,
            type_id,
            stream_id,
            0,
            payload,
        );
    }

    pub fn send_control(&mut self, type_id: u8, payload: &[u8]) {
        self.write(csid::PROTOCOL, type_id, 0, payload);
    }

    pub fn send_user_control(&mut self, event: &UserControl) {
        self.send_control(type_id::USER_CONTROL, &encode_user_control(event));
    }

    pub fn send_command(
        &mut self,
        stream_id: u32,
        name: &str,
        txn: f64,
        object: &Amf0Value,
        args: &[Amf0Value],
    ) {
        let payload = encode_command(name, txn, object, args);
        self.write(csid::COMMAND, type_id::COMMAND_AMF0, stream_id, &payload);
    }

    /// The next message for the session from the front of `input`, as (stream id, timestamp,
    /// message): protocol control is applied here, and aggregates come out as their audio and
    /// video parts, one at a time.
    pub fn next_message(
        &mut self,
        input: &mut BytesMut,
    ) -> Result<Option<(u32, u32, Message)>, SessionError> {
        loop {
            if let Some(m) = self.unpacked.pop_front() {
                return Ok(Some(m));
            }
            let Some(raw) = self.decoder.decode(input)? else {
                return Ok(None);
            };
            let (stream_id, timestamp) = (raw.header.stream_id, raw.header.timestamp);
            match self.control(Message::decode(&raw)?)? {
                Some(Message::Aggregate(parts)) => {
                    for (h, body) in parts {
                        let msg = match h.type_id {
                            type_id::AUDIO => Message::Audio(body),
                            type_id::VIDEO => Message::Video(body),
                            _ => continue,
                        };
                        self.unpacked.push_back((stream_id, h.timestamp, msg));
                    }
                }
                Some(msg) => return Ok(Some((stream_id, timestamp, msg))),
                None => {}
            }
        }
    }

    /// Applies a protocol control message (chunk size, abort, window, ping request); any other
    /// message is handed back.
    fn control(&mut self, msg: Message) -> Result<Option<Message>, SessionError> {
        match msg {
            Message::SetChunkSize(size) => self.decoder.set_chunk_size(size)?,
            Message::Abort(cs) => self.decoder.abort(cs),
            Message::WindowAckSize(size) => self.peer_window = size,
            Message::Acknowledgement(_) | Message::SetPeerBandwidth { .. } => {}
            Message::UserControl(UserControl::PingRequest(t)) => {
                self.send_user_control(&UserControl::PingResponse(t))
            }
            other => return Ok(Some(other)),
        }
        Ok(None)
    }
}
