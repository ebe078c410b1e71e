//! The RTMP chunk stream: a decoder that reassembles messages from interleaved chunks (types 0–3,
//! extended timestamps also on type-3 chunks), and a stateless encoder whose output depends only on
//! (chunk size, csid, header, payload), so one encoding can be shared by every viewer.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Most bytes reserved for a partial message before its data arrives.
const INITIAL_PARTIAL_CAPACITY: usize = 64 * 1024;

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

/// Lowest chunk stream id a message may use (0 and 1 select the longer basic-header forms).
pub const MIN_CSID: u32 = 2;
/// Highest chunk stream id the 3-byte basic header can carry (64 + 0xFFFF).
pub const MAX_CSID: u32 = 65599;
/// Largest chunk size the protocol allows (the top bit of Set Chunk Size must be zero).
pub const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;

/// The 24-bit timestamp value announcing a 4-byte extended timestamp.
const EXTENDED_MARKER: u32 = 0x00FF_FFFF;

/// What a chunk stream remembers from its previous headers, so that types 1–3 can omit fields.
#[derive(Debug, Default)]
struct StreamState {
    /// Timestamp of the current (or last) message on this chunk stream.
    timestamp: u32,
    /// Delta a type-3 chunk starting a new message adds (see `commit_header`).
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// Whether the last type 0/1/2 header used an extended timestamp: type-3 chunks then carry one too.
    extended: bool,
    /// The message being reassembled; its capacity is exactly `length`.
    partial: Option<BytesMut>,
}

/// A chunk header parsed from the front of the input, not yet applied to any state.
struct ChunkHead {
    fmt: u8,
    csid: u32,
    /// Bytes of basic header + message header + extended timestamp.
    header_len: usize,
    /// Timestamp or delta (already replaced by the extended value when present); fmt 0–2.
    time: u32,
    /// Whether the 24-bit field held the extended marker; fmt 0–2.
    extended: bool,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

/// A bounds-checked reader over the front of the input: every read is `None` when the bytes are
/// not there yet, which the decoder turns into "need more data".
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let end = self.pos.checked_add(N)?;
        let bytes = self.buf.get(self.pos..end)?.try_into().ok()?;
        self.pos = end;
        Some(bytes)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }

    fn u24(&mut self) -> Option<u32> {
        self.take::<3>()
            .map(|[a, b, c]| u32::from_be_bytes([0, a, b, c]))
    }

    fn u32_be(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_be_bytes)
    }

    fn u32_le(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_le_bytes)
    }
}

/// Reassembles messages from chunks.
pub struct ChunkDecoder {
    limits: ChunkLimits,
    chunk_size: u32,
    /// Per-csid state. At most `MAX_CSID - 1` entries of a few dozen bytes each, because the basic
    /// header cannot name more chunk streams; payload memory is bounded separately by `partials`.
    streams: std::collections::HashMap<u32, StreamState>,
    /// Number of chunk streams holding a partial message (bounded by `max_chunk_streams`).
    partials: usize,
}

impl ChunkDecoder {
    pub fn new(limits: ChunkLimits) -> Self {
        ChunkDecoder {
            limits,
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: std::collections::HashMap::new(),
            partials: 0,
        }
    }

    /// The chunk size currently applied to incoming chunks.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Applies a Set Chunk Size received from the peer (1..=2^31-1 and at most the limit).
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 || size > MAX_CHUNK_SIZE || size > self.limits.max_chunk_size {
            return Err(ChunkError::BadChunkSize(size));
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Drops the partial message on `csid` (Abort message).
    pub fn abort(&mut self, csid: u32) {
        if let Some(state) = self.streams.get_mut(&csid) {
            if state.partial.take().is_some() {
                self.partials = self.partials.saturating_sub(1);
            }
        }
    }

    /// Consumes chunks from the front of `buf` and returns the next complete message, or `None`
    /// when more bytes are needed (the bytes of an incomplete chunk stay in `buf`).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<RawMessage>, ChunkError> {
        loop {
            let Some(head) = self.parse_head(buf)? else {
                return Ok(None);
            };
            let state = self.streams.get(&head.csid);
            let continuing = head.fmt == 3 && state.is_some_and(|s| s.partial.is_some());
            let length = match head.fmt {
                0 | 1 => head.length,
                _ => state.map_or(0, |s| s.length),
            };
            if length > self.limits.max_message_size {
                return Err(ChunkError::MessageTooLarge(length));
            }
            let received = match state.and_then(|s| s.partial.as_ref()) {
                Some(partial) if continuing => partial.len(),
                _ => 0,
            };
            let remaining = (length as usize).saturating_sub(received);
            let part = remaining.min(self.chunk_size as usize);
            let Some(chunk_end) = head.header_len.checked_add(part) else {
                return Ok(None);
            };
            if buf.len() < chunk_end {
                // Never consume half a chunk: the caller retries with more bytes.
                return Ok(None);
            }
            let replaces_partial = !continuing && state.is_some_and(|s| s.partial.is_some());
            let completes = part == remaining;
            if !continuing && !completes {
                let others = self.partials.saturating_sub(usize::from(replaces_partial));
                if others >= self.limits.max_chunk_streams {
                    return Err(ChunkError::TooManyChunkStreams);
                }
            }

            // From here on the chunk is complete and valid: commit it.
            let state = self.streams.entry(head.csid).or_default();
            if !continuing {
                // A type 0/1/2 chunk in the middle of a message is a peer bug; the message it
                // interrupts can never complete, so it is dropped rather than kept forever.
                if state.partial.take().is_some() {
                    self.partials = self.partials.saturating_sub(1);
                }
                commit_header(state, &head);
            }
            buf.advance(head.header_len);
            let header = MessageHeader {
                timestamp: state.timestamp,
                type_id: state.type_id,
                stream_id: state.stream_id,
            };
            if !continuing && completes {
                // The whole message is in this chunk: hand out the input bytes without copying.
                let payload = buf.split_to(part).freeze();
                return Ok(Some(RawMessage {
                    csid: head.csid,
                    header,
                    payload,
                }));
            }
            let partial = match state.partial.as_mut() {
                Some(partial) => partial,
                None => {
                    self.partials += 1;
                    // Reserve up front only what a peer has shown it will send: announcing
                    // large messages on many chunk streams must not cost memory until the
                    // bytes actually arrive.
                    let first = (length as usize).min(INITIAL_PARTIAL_CAPACITY);
                    state.partial.insert(BytesMut::with_capacity(first))
                }
            };
            partial.extend_from_slice(&buf.split_to(part));
            if completes {
                let payload = state.partial.take().unwrap_or_default().freeze();
                self.partials = self.partials.saturating_sub(1);
                return Ok(Some(RawMessage {
                    csid: head.csid,
                    header,
                    payload,
                }));
            }
        }
    }

    /// Parses the chunk header at the front of `buf` without consuming anything; `Ok(None)` when
    /// the header is not complete yet.
    fn parse_head(&self, buf: &[u8]) -> Result<Option<ChunkHead>, ChunkError> {
        let mut cur = Cursor { buf, pos: 0 };
        let Some(first) = cur.u8() else {
            return Ok(None);
        };
        let fmt = first >> 6;
        let csid = match first & 0x3F {
            0 => match cur.u8() {
                Some(b) => 64 + u32::from(b),
                None => return Ok(None),
            },
            1 => match cur.take::<2>() {
                Some([lo, hi]) => 64 + u32::from(lo) + 256 * u32::from(hi),
                None => return Ok(None),
            },
            n => u32::from(n),
        };
        let state = self.streams.get(&csid);
        if fmt != 0 && state.is_none() {
            return Err(ChunkError::NoPreviousHeader { fmt, csid });
        }
        let mut head = ChunkHead {
            fmt,
            csid,
            header_len: 0,
            time: 0,
            extended: false,
            length: 0,
            type_id: 0,
            stream_id: 0,
        };
        let parsed = (|| {
            if fmt <= 2 {
                head.time = cur.u24()?;
                head.extended = head.time == EXTENDED_MARKER;
            }
            if fmt <= 1 {
                head.length = cur.u24()?;
                head.type_id = cur.u8()?;
            }
            if fmt == 0 {
                // The message stream id is the one little-endian field of RTMP.
                head.stream_id = cur.u32_le()?;
            }
            let extended = if fmt == 3 {
                // ffmpeg, librtmp and OBS repeat the extended timestamp on every type-3 chunk
                // that follows a header which used one, continuation or not.
                state.is_some_and(|s| s.extended)
            } else {
                head.extended
            };
            if extended {
                let value = cur.u32_be()?;
                if fmt != 3 {
                    head.time = value;
                }
            }
            Some(())
        })();
        if parsed.is_none() {
            return Ok(None);
        }
        head.header_len = cur.pos;
        Ok(Some(head))
    }
}

/// Applies the header of a chunk that starts a new message to its chunk stream.
fn commit_header(state: &mut StreamState, head: &ChunkHead) {
    match head.fmt {
        0 => {
            state.timestamp = head.time;
            // Spec 5.3.1.2.4: a type-3 chunk may directly follow a type-0 chunk when the delta
            // between the first two messages equals the first message's timestamp, i.e. after a
            // type-0 header the delta to reuse is the absolute timestamp itself.
            state.delta = head.time;
            state.length = head.length;
            state.type_id = head.type_id;
            state.stream_id = head.stream_id;
            state.extended = head.extended;
        }
        1 | 2 => {
            state.delta = head.time;
            state.timestamp = state.timestamp.wrapping_add(head.time);
            if head.fmt == 1 {
                state.length = head.length;
                state.type_id = head.type_id;
            }
            state.extended = head.extended;
        }
        // Type 3 starting a new message: every field repeats, the timestamp advances by the same
        // delta as before. A repeated extended timestamp field carries that same delta, so the
        // stored value is used.
        _ => state.timestamp = state.timestamp.wrapping_add(state.delta),
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
    ///
    /// `csid` must be in `MIN_CSID..=MAX_CSID` and the payload shorter than 2^24 bytes (the
    /// message length field is 24 bits); both are caller invariants, checked in debug builds.
    pub fn encode(&self, csid: u32, header: &MessageHeader, payload: &[u8], out: &mut BytesMut) {
        let extended = header.timestamp >= EXTENDED_MARKER;
        out.reserve(self.encoded_len(csid, payload.len(), 11, extended));
        put_basic_header(out, 0, csid);
        put_u24(out, header.timestamp.min(EXTENDED_MARKER));
        put_u24(out, message_length(payload));
        out.put_u8(header.type_id);
        out.put_u32_le(header.stream_id);
        self.put_payload(csid, extended.then_some(header.timestamp), payload, out);
    }

    /// Appends the chunks of one message using a type-1 header (timestamp delta, length, type id;
    /// the receiver reuses the stream id of the previous header on `csid`). Only valid when the
    /// peer has already seen a header on `csid`; the output still depends only on the arguments.
    pub fn encode_type1(
        &self,
        csid: u32,
        timestamp_delta: u32,
        type_id: u8,
        payload: &[u8],
        out: &mut BytesMut,
    ) {
        let extended = timestamp_delta >= EXTENDED_MARKER;
        out.reserve(self.encoded_len(csid, payload.len(), 7, extended));
        put_basic_header(out, 1, csid);
        put_u24(out, timestamp_delta.min(EXTENDED_MARKER));
        put_u24(out, message_length(payload));
        out.put_u8(type_id);
        self.put_payload(csid, extended.then_some(timestamp_delta), payload, out);
    }

    fn effective_chunk_size(&self) -> usize {
        // A zero chunk size would never make progress; treat it as the smallest valid one.
        self.chunk_size.max(1) as usize
    }

    fn encoded_len(&self, csid: u32, payload: usize, header: usize, extended: bool) -> usize {
        let chunks = payload.div_ceil(self.effective_chunk_size()).max(1);
        let per_chunk = basic_header_len(csid) + if extended { 4 } else { 0 };
        payload + header + chunks * per_chunk
    }

    /// Writes the extended timestamp of the first chunk, then the payload split into chunks with
    /// type-3 continuation headers, each repeating the extended timestamp when there is one.
    fn put_payload(&self, csid: u32, extended: Option<u32>, payload: &[u8], out: &mut BytesMut) {
        if let Some(ts) = extended {
            out.put_u32(ts);
        }
        for (i, chunk) in payload.chunks(self.effective_chunk_size()).enumerate() {
            if i > 0 {
                put_basic_header(out, 3, csid);
                if let Some(ts) = extended {
                    out.put_u32(ts);
                }
            }
            out.extend_from_slice(chunk);
        }
    }

    /// The chunks of one message as shareable bytes.
    pub fn encode_to_bytes(&self, csid: u32, header: &MessageHeader, payload: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(
            payload.len() + 16 + payload.len() / self.chunk_size.max(1) as usize * 5,
        );
        self.encode(csid, header, payload, &mut out);
        out.freeze()
    }
}

fn basic_header_len(csid: u32) -> usize {
    match csid {
        0..=63 => 1,
        64..=319 => 2,
        _ => 3,
    }
}

fn put_basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    debug_assert!(
        (MIN_CSID..=MAX_CSID).contains(&csid),
        "csid {csid} out of range"
    );
    // Out-of-range ids are a local bug; clamp so the output at least stays parseable.
    let csid = csid.clamp(MIN_CSID, MAX_CSID);
    let fmt = fmt << 6;
    match csid {
        0..=63 => out.put_u8(fmt | csid as u8),
        64..=319 => {
            out.put_u8(fmt);
            out.put_u8((csid - 64) as u8);
        }
        _ => {
            out.put_u8(fmt | 1);
            out.put_u16_le((csid - 64) as u16);
        }
    }
}

fn put_u24(out: &mut BytesMut, value: u32) {
    out.put_slice(&value.to_be_bytes()[1..]);
}

fn message_length(payload: &[u8]) -> u32 {
    debug_assert!(payload.len() < 1 << 24, "message too long for RTMP");
    (payload.len() as u32).min(EXTENDED_MARKER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hdr(timestamp: u32, type_id: u8, stream_id: u32) -> MessageHeader {
        MessageHeader {
            timestamp,
            type_id,
            stream_id,
        }
    }

    fn decoder() -> ChunkDecoder {
        ChunkDecoder::new(ChunkLimits::default())
    }

    /// Decodes every message in `bytes`, asserting nothing is left over.
    fn decode_all(dec: &mut ChunkDecoder, bytes: &[u8]) -> Vec<RawMessage> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(msg) = dec.decode(&mut buf).unwrap() {
            out.push(msg);
        }
        assert!(buf.is_empty(), "{} bytes left over", buf.len());
        out
    }

    #[test]
    fn encode_small_message_exact_bytes() {
        let enc = ChunkEncoder::new(DEFAULT_CHUNK_SIZE);
        let out = enc.encode_to_bytes(3, &hdr(1000, 20, 1), b"hello");
        assert_eq!(
            &out[..],
            &[
                0x03, // fmt 0, csid 3
                0x00, 0x03, 0xE8, // timestamp 1000
                0x00, 0x00, 0x05, // length
                20,   // type id
                0x01, 0x00, 0x00, 0x00, // stream id, little-endian
                b'h', b'e', b'l', b'l', b'o',
            ]
        );
    }

    #[test]
    fn encode_basic_header_forms() {
        let enc = ChunkEncoder::new(128);
        let cases: [(u32, &[u8]); 6] = [
            (2, &[0x02]),
            (63, &[0x3F]),
            (64, &[0x00, 0x00]),
            (319, &[0x00, 0xFF]),
            (320, &[0x01, 0x00, 0x01]),
            (65599, &[0x01, 0xFF, 0xFF]),
        ];
        for (csid, basic) in cases {
            let out = enc.encode_to_bytes(csid, &hdr(0, 8, 0), b"");
            assert_eq!(&out[..basic.len()], basic, "csid {csid}");
            assert_eq!(out.len(), basic.len() + 11);
        }
    }

    #[test]
    fn encode_splits_with_type3_continuations() {
        let enc = ChunkEncoder::new(4);
        let out = enc.encode_to_bytes(64, &hdr(5, 9, 1), b"abcdefghij");
        let mut expected = vec![0x00, 0x00, 0, 0, 5, 0, 0, 10, 9, 1, 0, 0, 0];
        expected.extend_from_slice(b"abcd");
        expected.extend_from_slice(&[0xC0, 0x00]);
        expected.extend_from_slice(b"efgh");
        expected.extend_from_slice(&[0xC0, 0x00]);
        expected.extend_from_slice(b"ij");
        assert_eq!(&out[..], &expected[..]);
    }

    #[test]
    fn encode_extended_timestamp_repeated_on_continuations() {
        let enc = ChunkEncoder::new(3);
        let out = enc.encode_to_bytes(4, &hdr(0x0100_0000, 8, 1), b"abcdef");
        let mut expected = vec![0x04, 0xFF, 0xFF, 0xFF, 0, 0, 6, 8, 1, 0, 0, 0];
        expected.extend_from_slice(&[0x01, 0, 0, 0]);
        expected.extend_from_slice(b"abc");
        expected.extend_from_slice(&[0xC4, 0x01, 0, 0, 0]);
        expected.extend_from_slice(b"def");
        assert_eq!(&out[..], &expected[..]);
        // 0xFFFFFF itself must also go to the extended field.
        let out = enc.encode_to_bytes(4, &hdr(0xFF_FFFF, 8, 1), b"");
        assert_eq!(&out[1..4], &[0xFF, 0xFF, 0xFF]);
        assert_eq!(&out[12..], &[0x00, 0xFF, 0xFF, 0xFF]);
    }

    #[test]
    fn encode_zero_chunk_size_does_not_hang() {
        let enc = ChunkEncoder::new(0);
        let out = enc.encode_to_bytes(3, &hdr(0, 8, 1), b"ab");
        let mut dec = decoder();
        dec.set_chunk_size(1).unwrap();
        let msgs = decode_all(&mut dec, &out);
        assert_eq!(&msgs[0].payload[..], b"ab");
    }

    #[test]
    fn decode_basic_header_forms() {
        let enc = ChunkEncoder::new(128);
        for csid in [2, 3, 63, 64, 65, 319, 320, 321, 65599] {
            let out = enc.encode_to_bytes(csid, &hdr(7, 18, 1), b"x");
            let msgs = decode_all(&mut decoder(), &out);
            assert_eq!(msgs.len(), 1);
            assert_eq!(msgs[0].csid, csid);
            assert_eq!(msgs[0].header, hdr(7, 18, 1));
        }
    }

    #[test]
    fn decode_zero_length_message() {
        let enc = ChunkEncoder::new(128);
        let out = enc.encode_to_bytes(3, &hdr(1, 20, 0), b"");
        let msgs = decode_all(&mut decoder(), &out);
        assert_eq!(msgs.len(), 1);
        assert!(msgs[0].payload.is_empty());
    }

    #[test]
    fn decode_several_messages_in_one_buffer() {
        let enc = ChunkEncoder::new(10);
        let mut buf = BytesMut::new();
        enc.encode(3, &hdr(1, 20, 0), &[1; 25], &mut buf);
        enc.encode(4, &hdr(2, 8, 1), &[2; 5], &mut buf);
        enc.encode(3, &hdr(3, 20, 0), &[3; 10], &mut buf);
        let mut dec = decoder();
        dec.set_chunk_size(10).unwrap();
        let msgs = decode_all(&mut dec, &buf);
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[0].payload, Bytes::from(vec![1; 25]));
        assert_eq!(msgs[1].payload, Bytes::from(vec![2; 5]));
        assert_eq!(msgs[2].payload, Bytes::from(vec![3; 10]));
        assert_eq!(msgs[2].header.timestamp, 3);
    }

    #[test]
    fn decode_interleaved_audio_and_video() {
        // Chunk size 4; audio on csid 4 (6 bytes), video on csid 6 (10 bytes), chunks alternating.
        let mut b = Vec::new();
        b.extend_from_slice(&[0x04, 0, 0, 10, 0, 0, 6, 8, 1, 0, 0, 0]);
        b.extend_from_slice(b"AAAA");
        b.extend_from_slice(&[0x06, 0, 0, 20, 0, 0, 10, 9, 1, 0, 0, 0]);
        b.extend_from_slice(b"VVVV");
        b.extend_from_slice(&[0xC4]);
        b.extend_from_slice(b"aa");
        b.extend_from_slice(&[0xC6]);
        b.extend_from_slice(b"vvvv");
        b.extend_from_slice(&[0xC6]);
        b.extend_from_slice(b"ww");
        let mut dec = decoder();
        dec.set_chunk_size(4).unwrap();
        let msgs = decode_all(&mut dec, &b);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].csid, 4);
        assert_eq!(msgs[0].header, hdr(10, 8, 1));
        assert_eq!(&msgs[0].payload[..], b"AAAAaa");
        assert_eq!(msgs[1].csid, 6);
        assert_eq!(msgs[1].header, hdr(20, 9, 1));
        assert_eq!(&msgs[1].payload[..], b"VVVVvvvvww");
    }

    #[test]
    fn decode_type1_type2_type3_deltas() {
        let mut b = Vec::new();
        // fmt0: ts 100, len 2, type 8, stream 1
        b.extend_from_slice(&[0x04, 0, 0, 100, 0, 0, 2, 8, 1, 0, 0, 0, b'a', b'b']);
        // fmt1: delta 20, len 3, type 9
        b.extend_from_slice(&[0x44, 0, 0, 20, 0, 0, 3, 9, b'c', b'd', b'e']);
        // fmt2: delta 30 (len 3, type 9 reused)
        b.extend_from_slice(&[0x84, 0, 0, 30, b'f', b'g', b'h']);
        // fmt3 new message: delta 30 again
        b.extend_from_slice(&[0xC4, b'i', b'j', b'k']);
        let msgs = decode_all(&mut decoder(), &b);
        let got: Vec<_> = msgs.iter().map(|m| (m.header, &m.payload[..])).collect();
        assert_eq!(
            got,
            vec![
                (hdr(100, 8, 1), &b"ab"[..]),
                (hdr(120, 9, 1), &b"cde"[..]),
                (hdr(150, 9, 1), &b"fgh"[..]),
                (hdr(180, 9, 1), &b"ijk"[..]),
            ]
        );
    }

    #[test]
    fn decode_type3_after_type0_uses_timestamp_as_delta() {
        let mut b = vec![0x03, 0, 0, 40, 0, 0, 1, 8, 1, 0, 0, 0, b'a'];
        b.extend_from_slice(&[0xC3, b'b', 0xC3, b'c']);
        let msgs = decode_all(&mut decoder(), &b);
        let ts: Vec<_> = msgs.iter().map(|m| m.header.timestamp).collect();
        assert_eq!(ts, vec![40, 80, 120]);
    }

    #[test]
    fn decode_extended_timestamp_on_type3_continuation_and_new_message() {
        let ts = 0x1234_5678u32;
        let mut b = vec![0x05, 0xFF, 0xFF, 0xFF, 0, 0, 4, 9, 1, 0, 0, 0];
        b.extend_from_slice(&ts.to_be_bytes());
        b.extend_from_slice(b"ab");
        b.extend_from_slice(&[0xC5]);
        b.extend_from_slice(&ts.to_be_bytes());
        b.extend_from_slice(b"cd");
        // fmt2 with an extended delta, then a type-3 new message repeating it.
        let delta = 0x0100_0000u32;
        b.extend_from_slice(&[0x85, 0xFF, 0xFF, 0xFF]);
        b.extend_from_slice(&delta.to_be_bytes());
        b.extend_from_slice(b"ef");
        b.extend_from_slice(&[0xC5]);
        b.extend_from_slice(&delta.to_be_bytes());
        b.extend_from_slice(b"gh");
        b.extend_from_slice(&[0xC5]);
        b.extend_from_slice(&delta.to_be_bytes());
        b.extend_from_slice(b"ij");
        b.extend_from_slice(&[0xC5]);
        b.extend_from_slice(&delta.to_be_bytes());
        b.extend_from_slice(b"kl");
        // A small fmt2 delta turns extended timestamps off again.
        b.extend_from_slice(&[0x85, 0, 0, 1, b'm', b'n', 0xC5, b'o', b'p']);
        let mut dec = decoder();
        dec.set_chunk_size(2).unwrap();
        let msgs = decode_all(&mut dec, &b);
        let got: Vec<_> = msgs
            .iter()
            .map(|m| (m.header.timestamp, &m.payload[..]))
            .collect();
        assert_eq!(
            got,
            vec![
                (ts, &b"abcd"[..]),
                (ts + delta, &b"efgh"[..]),
                (ts + 2 * delta, &b"ijkl"[..]),
                (ts + 2 * delta + 1, &b"mnop"[..]),
            ]
        );
    }

    #[test]
    fn decode_timestamp_wraps() {
        let mut b = Vec::new();
        b.extend_from_slice(&[0x04, 0xFF, 0xFF, 0xFF, 0, 0, 0, 8, 1, 0, 0, 0]);
        b.extend_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
        b.extend_from_slice(&[0x84, 0, 0, 0x20]);
        let msgs = decode_all(&mut decoder(), &b);
        assert_eq!(msgs[1].header.timestamp, 0x10);
    }

    #[test]
    fn decode_first_chunk_not_type0_is_error() {
        for (fmt, first) in [(1u8, 0x44u8), (2, 0x84), (3, 0xC4)] {
            let mut buf = BytesMut::from(&[first, 0, 0, 0, 0, 0, 0, 0][..]);
            assert_eq!(
                decoder().decode(&mut buf),
                Err(ChunkError::NoPreviousHeader { fmt, csid: 4 })
            );
        }
        let mut buf = BytesMut::from(&[0x41, 0x00, 0x01][..]);
        assert_eq!(
            decoder().decode(&mut buf),
            Err(ChunkError::NoPreviousHeader { fmt: 1, csid: 320 })
        );
    }

    #[test]
    fn decode_message_too_large() {
        let mut dec = ChunkDecoder::new(ChunkLimits {
            max_message_size: 100,
            ..ChunkLimits::default()
        });
        let ok = ChunkEncoder::new(128).encode_to_bytes(3, &hdr(0, 8, 1), &[0; 100]);
        assert_eq!(decode_all(&mut dec, &ok).len(), 1);
        let mut buf = BytesMut::from(&[0x03, 0, 0, 0, 0, 0, 101, 8, 1, 0, 0, 0][..]);
        assert_eq!(dec.decode(&mut buf), Err(ChunkError::MessageTooLarge(101)));
        // Also through a type-1 header on a known stream.
        let mut buf = BytesMut::from(&[0x43, 0, 0, 0, 0x10, 0, 0, 8][..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(ChunkError::MessageTooLarge(0x10_0000))
        );
    }

    #[test]
    fn decode_too_many_chunk_streams() {
        let mut dec = ChunkDecoder::new(ChunkLimits {
            max_chunk_streams: 2,
            ..ChunkLimits::default()
        });
        let enc = ChunkEncoder::new(128);
        let first_chunk = |csid: u32| {
            let all = enc.encode_to_bytes(csid, &hdr(0, 9, 1), &[7; 200]);
            all.slice(..all.len() - 73) // drop the continuation chunk (1 + 72 bytes)
        };
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&first_chunk(3));
        buf.extend_from_slice(&first_chunk(4));
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert!(buf.is_empty());
        // A third partial is refused, a complete single-chunk message is still fine.
        let single = enc.encode_to_bytes(6, &hdr(0, 8, 1), &[1; 10]);
        assert!(decode_all(&mut dec, &single).len() == 1);
        buf.extend_from_slice(&first_chunk(5));
        assert_eq!(dec.decode(&mut buf), Err(ChunkError::TooManyChunkStreams));
        // Aborting one frees a slot.
        dec.abort(3);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert!(buf.is_empty());
    }

    #[test]
    fn abort_drops_partial_message() {
        let enc = ChunkEncoder::new(128);
        let all = enc.encode_to_bytes(3, &hdr(0, 9, 1), &[7; 200]);
        let mut dec = decoder();
        let mut buf = BytesMut::from(&all[..140]); // first chunk (12 + 128) only
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert!(buf.is_empty());
        dec.abort(3);
        dec.abort(99); // unknown csid: no effect
                       // The type-3 chunk now starts a new 200-byte message instead of finishing the old one, so
                       // it waits for a full 128-byte chunk rather than completing with the 72 bytes left.
        buf.extend_from_slice(&all[140..]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert_eq!(buf.len(), 73);
        buf.clear();
        // A fresh message decodes normally.
        let msg = enc.encode_to_bytes(3, &hdr(5, 9, 1), &[8; 20]);
        assert_eq!(
            decode_all(&mut dec, &msg)[0].payload,
            Bytes::from(vec![8; 20])
        );
    }

    #[test]
    fn new_header_mid_message_replaces_partial() {
        let enc = ChunkEncoder::new(128);
        let all = enc.encode_to_bytes(3, &hdr(0, 9, 1), &[7; 200]);
        let mut dec = ChunkDecoder::new(ChunkLimits {
            max_chunk_streams: 1,
            ..ChunkLimits::default()
        });
        let mut buf = BytesMut::from(&all[..140]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        // Same csid, new type-0 partial: allowed even at the partial limit since it replaces.
        buf.extend_from_slice(&all[..140]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        buf.extend_from_slice(&all[140..]);
        let msg = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(msg.payload, Bytes::from(vec![7; 200]));
    }

    #[test]
    fn set_chunk_size_validation_and_mid_stream_change() {
        let mut dec = ChunkDecoder::new(ChunkLimits {
            max_chunk_size: 1000,
            ..ChunkLimits::default()
        });
        assert_eq!(dec.set_chunk_size(0), Err(ChunkError::BadChunkSize(0)));
        assert_eq!(
            dec.set_chunk_size(1001),
            Err(ChunkError::BadChunkSize(1001))
        );
        let mut unlimited = ChunkDecoder::new(ChunkLimits {
            max_chunk_size: u32::MAX,
            ..ChunkLimits::default()
        });
        assert_eq!(
            unlimited.set_chunk_size(0x8000_0000),
            Err(ChunkError::BadChunkSize(0x8000_0000))
        );
        assert_eq!(unlimited.set_chunk_size(0x7FFF_FFFF), Ok(()));
        assert_eq!(dec.set_chunk_size(1000), Ok(()));
        assert_eq!(dec.chunk_size(), 1000);

        let mut dec = decoder();
        let small = ChunkEncoder::new(128);
        let big = ChunkEncoder::new(4096);
        let mut buf = BytesMut::new();
        small.encode(3, &hdr(1, 20, 0), &[1; 300], &mut buf);
        let first = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(first.payload.len(), 300);
        dec.set_chunk_size(4096).unwrap();
        big.encode(3, &hdr(2, 20, 0), &[2; 3000], &mut buf);
        let second = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(second.payload, Bytes::from(vec![2; 3000]));
        assert!(buf.is_empty());
    }

    #[test]
    fn incomplete_chunk_is_never_consumed() {
        let enc = ChunkEncoder::new(16);
        let all = enc.encode_to_bytes(320, &hdr(0x0200_0000, 9, 1), &[5; 40]);
        // Every prefix that ends inside a chunk must leave the buffer as it was; prefixes that
        // end on a chunk boundary consume exactly the complete chunks.
        let boundaries = [3 + 11 + 4 + 16, 3 + 11 + 4 + 16 + 3 + 4 + 16];
        for len in 0..all.len() {
            let mut dec = decoder();
            dec.set_chunk_size(16).unwrap();
            let mut buf = BytesMut::from(&all[..len]);
            assert_eq!(dec.decode(&mut buf), Ok(None), "prefix {len}");
            let consumed = boundaries.iter().filter(|&&b| b <= len).max().copied();
            assert_eq!(buf.len(), len - consumed.unwrap_or(0), "prefix {len}");
        }
        let mut dec = decoder();
        dec.set_chunk_size(16).unwrap();
        let msgs = decode_all(&mut dec, &all);
        assert_eq!(msgs[0].header.timestamp, 0x0200_0000);
    }

    #[test]
    fn single_chunk_message_is_zero_copy() {
        let enc = ChunkEncoder::new(128);
        let mut buf = BytesMut::new();
        enc.encode(3, &hdr(0, 9, 1), &[9; 100], &mut buf);
        enc.encode(3, &hdr(0, 9, 1), &[9; 100], &mut buf);
        let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        let msg = decoder().decode(&mut buf).unwrap().unwrap();
        assert!(range.contains(&(msg.payload.as_ptr() as usize)));
    }

    #[test]
    fn encode_type1_round_trip() {
        let enc = ChunkEncoder::new(5);
        let mut buf = BytesMut::new();
        enc.encode(4, &hdr(1000, 8, 7), b"first", &mut buf);
        enc.encode_type1(4, 33, 9, b"second message", &mut buf);
        enc.encode_type1(4, 0x0123_4567, 8, b"third message", &mut buf);
        assert_eq!(buf[17], 0x44);
        let mut dec = decoder();
        dec.set_chunk_size(5).unwrap();
        let msgs = decode_all(&mut dec, &buf);
        assert_eq!(msgs[1].header, hdr(1033, 9, 7));
        assert_eq!(&msgs[1].payload[..], b"second message");
        assert_eq!(msgs[2].header, hdr(1033 + 0x0123_4567, 8, 7));
        assert_eq!(&msgs[2].payload[..], b"third message");
    }

    fn csid_strategy() -> impl Strategy<Value = u32> {
        prop_oneof![
            Just(2u32),
            Just(63),
            Just(64),
            Just(319),
            Just(320),
            Just(65599),
            2u32..=65599,
        ]
    }

    fn timestamp_strategy() -> impl Strategy<Value = u32> {
        prop_oneof![
            0u32..0x100,
            Just(0xFF_FFFE),
            Just(0xFF_FFFF),
            Just(0x100_0000),
            Just(u32::MAX),
            any::<u32>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn round_trip_with_arbitrary_splits(
            chunk_size in prop_oneof![1u32..=16, 1u32..=5000, Just(128u32), Just(4096u32)],
            msgs in prop::collection::vec(
                (csid_strategy(), timestamp_strategy(), any::<u8>(), any::<u32>(), 0usize..=20000),
                1..4,
            ),
            splits in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let enc = ChunkEncoder::new(chunk_size);
            let mut wire = BytesMut::new();
            let mut expected = Vec::new();
            for (i, &(csid, ts, type_id, sid, len)) in msgs.iter().enumerate() {
                let payload: Vec<u8> = (0..len).map(|j| (j * 31 + i) as u8).collect();
                let header = hdr(ts, type_id, sid);
                enc.encode(csid, &header, &payload, &mut wire);
                expected.push(RawMessage { csid, header, payload: Bytes::from(payload) });
            }
            let mut cuts: Vec<usize> = splits.iter().map(|s| s.index(wire.len() + 1)).collect();
            cuts.push(wire.len());
            cuts.sort_unstable();

            let mut dec = decoder();
            dec.set_chunk_size(chunk_size).unwrap();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut fed = 0;
            for cut in cuts {
                buf.extend_from_slice(&wire[fed..cut]);
                fed = cut;
                while let Some(msg) = dec.decode(&mut buf).unwrap() {
                    got.push(msg);
                }
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn garbage_never_panics(
            chunk_size in 1u32..=300,
            bytes in prop::collection::vec(any::<u8>(), 0..2000),
        ) {
            let mut dec = ChunkDecoder::new(ChunkLimits {
                max_message_size: 4096,
                max_chunk_size: 4096,
                max_chunk_streams: 4,
            });
            dec.set_chunk_size(chunk_size).unwrap();
            let mut buf = BytesMut::from(&bytes[..]);
            loop {
                let before = buf.len();
                match dec.decode(&mut buf) {
                    Ok(Some(msg)) => {
                        prop_assert!(msg.payload.len() <= 4096);
                        // Every delivered message consumed at least its chunk header.
                        prop_assert!(buf.len() < before);
                    }
                    Ok(None) => {
                        // Only complete chunks were consumed; what is left is an incomplete one.
                        prop_assert!(buf.len() <= before);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }

        #[test]
        fn garbage_after_valid_prefix_never_panics(
            bytes in prop::collection::vec(any::<u8>(), 0..500),
        ) {
            let enc = ChunkEncoder::new(8);
            let mut dec = decoder();
            dec.set_chunk_size(8).unwrap();
            let mut buf = BytesMut::new();
            enc.encode(3, &hdr(0xFF_FFFF, 8, 1), &[1; 20], &mut buf);
            enc.encode(4, &hdr(5, 9, 1), &[2; 5], &mut buf);
            buf.extend_from_slice(&bytes);
            while let Ok(Some(_)) = dec.decode(&mut buf) {}
        }
    }
}
