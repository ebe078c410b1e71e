//! Sans-IO WebSocket framing (RFC 6455) for the server side of WS-FLV.
//!
//! The server only sends binary frames (the FLV stream) and a few control frames; the client is
//! expected to send nothing but close and ping frames. Whatever data frames a client sends anyway
//! are skipped as their bytes arrive, so a client can never make the server buffer more than one
//! control frame (a 14-byte header plus at most 125 bytes of payload).

use base64::Engine as _;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use sha1::{Digest, Sha1};

/// The GUID a server appends to the client's key (RFC 6455 §1.3).
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The largest data frame a client may announce, even though its payload is dropped: a client
/// that claims more is either broken or probing, and failing early is cheaper than draining it.
pub const MAX_DATA_FRAME: u64 = 1 << 20;

/// The largest payload of a control frame (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The longest frame header: 2 bytes, 8 bytes of extended length and a 4-byte masking key.
pub const MAX_HEADER: usize = 14;

/// Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + 258EAFA5-E914-47DA-95CA-C5AB0DC85B11)).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(ACCEPT_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// A frame's opcode (RFC 6455 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    /// The 4-bit value on the wire.
    pub const fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// The opcode for a 4-bit wire value; `None` for the reserved values.
    pub const fn from_bits(bits: u8) -> Option<Opcode> {
        Some(match bits {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    /// Close, ping and pong: short, never fragmented, allowed between fragments of a message.
    pub const fn is_control(self) -> bool {
        self.bits() & 0x8 != 0
    }
}

/// The header of an unmasked server frame with FIN set: 2, 4 or 10 bytes for payload length `len`.
pub fn frame_header(opcode: Opcode, len: usize) -> Bytes {
    let mut out = BytesMut::with_capacity(10);
    out.put_u8(0x80 | opcode.bits());
    if len < 126 {
        out.put_u8(len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.put_u8(126);
        out.put_u16(short);
    } else {
        out.put_u8(127);
        out.put_u64(len as u64);
    }
    out.freeze()
}

/// A close frame from the server with status `code` (e.g. 1000 normal, 1001 going away, 1002 protocol error).
pub fn close_frame(code: u16) -> Bytes {
    let mut out = BytesMut::with_capacity(4);
    out.extend_from_slice(&frame_header(Opcode::Close, 2));
    out.put_u16(code);
    out.freeze()
}

/// A pong frame echoing `payload`. A control frame cannot carry more than 125 bytes, so a longer
/// payload (which [`ClientDecoder`] never produces) is cut to its first 125 bytes rather than
/// sending the client a frame it must reject.
pub fn pong_frame(payload: &[u8]) -> Bytes {
    let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
    let mut out = BytesMut::with_capacity(2 + payload.len());
    out.extend_from_slice(&frame_header(Opcode::Pong, payload.len()));
    out.extend_from_slice(payload);
    out.freeze()
}

/// What the client said that matters to the server.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// A ping: answer with a pong carrying this payload (<= 125 bytes).
    Ping(Bytes),
    /// A close frame (code if present); the server answers with a close and ends.
    Close(Option<u16>),
}

/// A protocol violation by the client; the connection should be closed (1002, or 1009 for
/// [`WsError::FrameTooLarge`]).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WsError {
    #[error("client frame is not masked")]
    Unmasked,
    #[error("client frame sets reserved bits {0:#04x} (no extension was negotiated)")]
    ReservedBits(u8),
    #[error("client frame uses reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    #[error("client control frame announces more than 125 bytes of payload")]
    ControlTooLong,
    #[error("client control frame is fragmented")]
    FragmentedControl,
    #[error("client frame of {0} bytes exceeds the limit of {MAX_DATA_FRAME} bytes")]
    FrameTooLarge(u64),
    #[error("client continuation frame without a message to continue")]
    UnexpectedContinuation,
    #[error("client started a new message before finishing the previous one")]
    ExpectedContinuation,
    #[error("client close frame has a 1-byte payload (a status code takes 2)")]
    BadClosePayload,
}

/// Where the decoder is within the client's byte stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a frame boundary, waiting for a header.
    #[default]
    Header,
    /// Inside a data frame's payload, this many bytes still to drop.
    Skip(u64),
}

/// Decodes client frames incrementally. Data frames (text/binary/continuation) are skipped without buffering their payload (a client may send anything; nothing a client sends is kept beyond one control frame of <= 125 bytes plus a 14-byte header).
///
/// After an error the stream is out of sync; the decoder must not be used again.
#[derive(Debug, Default)]
pub struct ClientDecoder {
    state: State,
    /// A fragmented data message has started and its final fragment has not arrived yet.
    in_message: bool,
}

/// A parsed frame header.
struct Header {
    fin: bool,
    opcode: Opcode,
    header_len: usize,
    payload_len: u64,
    mask: [u8; 4],
}

impl ClientDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes what it can from `buf` (advancing it; partial frames stay in buf until more bytes arrive, but a data frame's payload is consumed and dropped as it comes so `buf` never needs to hold more than one header + 125 bytes) and returns the next event, Ok(None) if more bytes are needed.
    ///
    /// Call it until it returns `Ok(None)`: only then is everything decodable consumed, and
    /// what remains in `buf` is shorter than [`MAX_HEADER`] + [`MAX_CONTROL_PAYLOAD`] bytes.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<ClientEvent>, WsError> {
        loop {
            if let State::Skip(remaining) = self.state {
                let take = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
                buf.advance(take);
                let left = remaining - take as u64;
                self.state = if left == 0 {
                    State::Header
                } else {
                    State::Skip(left)
                };
                if left > 0 {
                    return Ok(None);
                }
            }

            let Some(header) = self.parse_header(buf)? else {
                return Ok(None);
            };

            if !header.opcode.is_control() {
                buf.advance(header.header_len);
                self.in_message = !header.fin;
                self.state = State::Skip(header.payload_len);
                continue;
            }

            // parse_header bounds a control payload by 125, so this cannot overflow.
            let payload_len = header.payload_len as usize;
            let frame_len = header.header_len + payload_len;
            if buf.len() < frame_len {
                return Ok(None);
            }
            buf.advance(header.header_len);
            let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
            let payload = &mut payload[..payload_len];
            payload.copy_from_slice(&buf[..payload_len]);
            buf.advance(payload_len);
            for (i, byte) in payload.iter_mut().enumerate() {
                *byte ^= header.mask[i % 4];
            }

            match header.opcode {
                Opcode::Ping => {
                    return Ok(Some(ClientEvent::Ping(Bytes::copy_from_slice(payload))))
                }
                Opcode::Close => {
                    return match *payload {
                        [] => Ok(Some(ClientEvent::Close(None))),
                        [_] => Err(WsError::BadClosePayload),
                        [hi, lo, ..] => {
                            Ok(Some(ClientEvent::Close(Some(u16::from_be_bytes([hi, lo])))))
                        }
                    };
                }
                // An unsolicited pong is allowed (RFC 6455 §5.5.3) and means nothing to us.
                _ => continue,
            }
        }
    }

    /// Parses the header at the start of `buf` without consuming it. Violations are reported as
    /// soon as the bytes that reveal them are present, so a bad client fails after two bytes.
    fn parse_header(&self, buf: &[u8]) -> Result<Option<Header>, WsError> {
        let (b0, b1) = match buf {
            [b0, b1, ..] => (*b0, *b1),
            _ => return Ok(None),
        };
        let fin = b0 & 0x80 != 0;
        let rsv = b0 & 0x70;
        if rsv != 0 {
            return Err(WsError::ReservedBits(rsv));
        }
        let opcode = Opcode::from_bits(b0 & 0x0F).ok_or(WsError::ReservedOpcode(b0 & 0x0F))?;
        if b1 & 0x80 == 0 {
            return Err(WsError::Unmasked);
        }
        let len7 = b1 & 0x7F;
        if opcode.is_control() {
            if !fin {
                return Err(WsError::FragmentedControl);
            }
            if usize::from(len7) > MAX_CONTROL_PAYLOAD {
                return Err(WsError::ControlTooLong);
            }
        } else if opcode == Opcode::Continuation {
            if !self.in_message {
                return Err(WsError::UnexpectedContinuation);
            }
        } else if self.in_message {
            return Err(WsError::ExpectedContinuation);
        }

        let rest = &buf[2..];
        let (payload_len, ext_len) = match len7 {
            126 => match rest {
                [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 2),
                _ => return Ok(None),
            },
            127 => match rest.first_chunk::<8>() {
                Some(bytes) => (u64::from_be_bytes(*bytes), 8),
                None => return Ok(None),
            },
            short => (u64::from(short), 0),
        };
        if payload_len > MAX_DATA_FRAME {
            return Err(WsError::FrameTooLarge(payload_len));
        }
        let Some(mask) = rest[ext_len..].first_chunk::<4>() else {
            return Ok(None);
        };
        Ok(Some(Header {
            fin,
            opcode,
            header_len: 2 + ext_len + 4,
            payload_len,
            mask: *mask,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A masked client frame, as a browser would send it.
    fn client_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![b0];
        let len = payload.len();
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if len <= 0xFFFF {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        out
    }

    /// Decodes all events in `bytes`, fed at once.
    fn decode_all(bytes: &[u8]) -> (Vec<ClientEvent>, Result<(), WsError>, BytesMut) {
        let mut dec = ClientDecoder::new();
        let mut buf = BytesMut::from(bytes);
        let mut events = Vec::new();
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(ev)) => events.push(ev),
                Ok(None) => return (events, Ok(()), buf),
                Err(e) => return (events, Err(e), buf),
            }
        }
    }

    /// A deterministic xorshift64 generator, so failures reproduce.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn accept_key_matches_rfc_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn header_lengths() {
        assert_eq!(&frame_header(Opcode::Binary, 0)[..], [0x82, 0]);
        assert_eq!(&frame_header(Opcode::Binary, 125)[..], [0x82, 125]);
        assert_eq!(
            &frame_header(Opcode::Binary, 126)[..],
            [0x82, 126, 0x00, 0x7E]
        );
        assert_eq!(
            &frame_header(Opcode::Binary, 65535)[..],
            [0x82, 126, 0xFF, 0xFF]
        );
        assert_eq!(
            &frame_header(Opcode::Binary, 65536)[..],
            [0x82, 127, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]
        );
        assert_eq!(&frame_header(Opcode::Text, 5)[..], [0x81, 5]);
        assert_eq!(&frame_header(Opcode::Continuation, 1)[..], [0x80, 1]);
    }

    #[test]
    fn opcode_bits_round_trip() {
        for op in [
            Opcode::Continuation,
            Opcode::Text,
            Opcode::Binary,
            Opcode::Close,
            Opcode::Ping,
            Opcode::Pong,
        ] {
            assert_eq!(Opcode::from_bits(op.bits()), Some(op));
        }
        for reserved in [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(Opcode::from_bits(reserved), None);
        }
    }

    #[test]
    fn server_control_frames() {
        assert_eq!(&close_frame(1000)[..], [0x88, 2, 0x03, 0xE8]);
        assert_eq!(&close_frame(1002)[..], [0x88, 2, 0x03, 0xEA]);
        // RFC 6455 §5.7: unmasked pong "Hello".
        assert_eq!(
            &pong_frame(b"Hello")[..],
            [0x8A, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
        );
        assert_eq!(&pong_frame(b"")[..], [0x8A, 0]);
        let long = pong_frame(&[7u8; 200]);
        assert_eq!(long.len(), 2 + 125);
        assert_eq!(&long[..2], [0x8A, 125]);
    }

    #[test]
    fn rfc_masked_text_is_skipped() {
        // RFC 6455 §5.7: a masked text frame "Hello".
        let text = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let (events, res, buf) = decode_all(&text);
        assert_eq!(res, Ok(()));
        assert!(events.is_empty());
        assert!(buf.is_empty());
    }

    #[test]
    fn rfc_masked_ping_decodes() {
        // RFC 6455 §5.7's masked "Hello" with the ping opcode.
        let ping = [
            0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(client_frame(0x89, b"Hello"), ping);
        let (events, res, buf) = decode_all(&ping);
        assert_eq!(res, Ok(()));
        assert_eq!(events, [ClientEvent::Ping(Bytes::from_static(b"Hello"))]);
        assert!(buf.is_empty());
    }

    #[test]
    fn text_then_ping_then_pong_then_close() {
        let mut bytes = client_frame(0x81, b"Hello");
        bytes.extend(client_frame(0x89, b""));
        bytes.extend(client_frame(0x8A, b"unsolicited"));
        bytes.extend(client_frame(0x89, &[0xAB; 125]));
        bytes.extend(client_frame(0x88, &1001u16.to_be_bytes()));
        let (events, res, buf) = decode_all(&bytes);
        assert_eq!(res, Ok(()));
        assert_eq!(
            events,
            [
                ClientEvent::Ping(Bytes::new()),
                ClientEvent::Ping(Bytes::from(vec![0xAB; 125])),
                ClientEvent::Close(Some(1001)),
            ]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn close_with_and_without_code() {
        let (events, res, _) = decode_all(&client_frame(0x88, b""));
        assert_eq!(res, Ok(()));
        assert_eq!(events, [ClientEvent::Close(None)]);

        let (events, res, _) = decode_all(&client_frame(0x88, &1000u16.to_be_bytes()));
        assert_eq!(res, Ok(()));
        assert_eq!(events, [ClientEvent::Close(Some(1000))]);

        // A reason after the code is allowed and ignored.
        let mut payload = 4000u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"bye now");
        let (events, res, _) = decode_all(&client_frame(0x88, &payload));
        assert_eq!(res, Ok(()));
        assert_eq!(events, [ClientEvent::Close(Some(4000))]);
    }

    #[test]
    fn fragmented_message_with_interleaved_ping() {
        let mut bytes = client_frame(0x02, b"part one"); // binary, FIN clear
        bytes.extend(client_frame(0x89, b"mid")); // control frames may interleave
        bytes.extend(client_frame(0x00, b"part two")); // continuation, FIN clear
        bytes.extend(client_frame(0x80, b"last")); // continuation, FIN set
        bytes.extend(client_frame(0x81, b"next message"));
        bytes.extend(client_frame(0x89, b"end"));
        let (events, res, buf) = decode_all(&bytes);
        assert_eq!(res, Ok(()));
        assert_eq!(
            events,
            [
                ClientEvent::Ping(Bytes::from_static(b"mid")),
                ClientEvent::Ping(Bytes::from_static(b"end")),
            ]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn large_frame_fed_byte_by_byte_is_skipped() {
        let payload: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
        let mut bytes = client_frame(0x82, &payload);
        bytes.extend(client_frame(0x89, b"still here"));
        let mut dec = ClientDecoder::new();
        let mut buf = BytesMut::new();
        let mut events = Vec::new();
        for &byte in &bytes {
            buf.put_u8(byte);
            while let Some(ev) = dec.decode(&mut buf).unwrap() {
                events.push(ev);
            }
            assert!(buf.len() <= MAX_HEADER + MAX_CONTROL_PAYLOAD);
        }
        assert_eq!(
            events,
            [ClientEvent::Ping(Bytes::from_static(b"still here"))]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn buffer_stays_small_while_skipping() {
        let payload = vec![0x55u8; MAX_DATA_FRAME as usize];
        let mut bytes = client_frame(0x82, &payload);
        bytes.extend(client_frame(0x89, b"after"));
        bytes.extend(client_frame(0x88, &1000u16.to_be_bytes()));
        let mut dec = ClientDecoder::new();
        let mut buf = BytesMut::new();
        let mut events = Vec::new();
        for piece in bytes.chunks(1000) {
            buf.extend_from_slice(piece);
            while let Some(ev) = dec.decode(&mut buf).unwrap() {
                events.push(ev);
            }
            assert!(
                buf.len() <= MAX_HEADER + MAX_CONTROL_PAYLOAD,
                "buf holds {}",
                buf.len()
            );
        }
        assert_eq!(
            events,
            [
                ClientEvent::Ping(Bytes::from_static(b"after")),
                ClientEvent::Close(Some(1000))
            ]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn errors() {
        let err = |bytes: &[u8]| decode_all(bytes).1;
        let unmasked_ping = [0x89, 0x05, b'H', b'e', b'l', b'l', b'o'];
        assert_eq!(err(&unmasked_ping), Err(WsError::Unmasked));
        assert_eq!(err(&[0x82, 0x00]), Err(WsError::Unmasked));
        for (b0, rsv) in [(0xC2, 0x40), (0xA2, 0x20), (0x92, 0x10), (0xF2, 0x70)] {
            assert_eq!(err(&[b0, 0x80]), Err(WsError::ReservedBits(rsv)));
        }
        for op in [3u8, 7, 0xB, 0xF] {
            assert_eq!(err(&[0x80 | op, 0x80]), Err(WsError::ReservedOpcode(op)));
        }
        for b0 in [0x88, 0x89, 0x8A] {
            assert_eq!(err(&[b0, 0x80 | 126]), Err(WsError::ControlTooLong));
            assert_eq!(err(&[b0, 0x80 | 127]), Err(WsError::ControlTooLong));
        }
        for b0 in [0x08, 0x09, 0x0A] {
            assert_eq!(err(&[b0, 0x80]), Err(WsError::FragmentedControl));
        }
        let mut too_large = vec![0x82, 0x80 | 127];
        too_large.extend_from_slice(&(MAX_DATA_FRAME + 1).to_be_bytes());
        assert_eq!(
            err(&too_large),
            Err(WsError::FrameTooLarge(MAX_DATA_FRAME + 1))
        );
        let mut top_bit = vec![0x82, 0x80 | 127];
        top_bit.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(err(&top_bit), Err(WsError::FrameTooLarge(u64::MAX)));
        // Exactly the limit is accepted (the header alone decodes to "need more").
        let mut at_limit = vec![0x82, 0x80 | 127];
        at_limit.extend_from_slice(&MAX_DATA_FRAME.to_be_bytes());
        at_limit.extend_from_slice(&MASK);
        assert_eq!(err(&at_limit), Ok(()));

        assert_eq!(
            err(&client_frame(0x80, b"x")),
            Err(WsError::UnexpectedContinuation)
        );
        let mut restart = client_frame(0x01, b"a");
        restart.extend(client_frame(0x82, b"b"));
        assert_eq!(err(&restart), Err(WsError::ExpectedContinuation));
        assert_eq!(
            err(&client_frame(0x88, b"x")),
            Err(WsError::BadClosePayload)
        );
    }

    #[test]
    fn errors_have_messages() {
        assert_eq!(WsError::Unmasked.to_string(), "client frame is not masked");
        assert_eq!(
            WsError::FrameTooLarge(2_000_000).to_string(),
            "client frame of 2000000 bytes exceeds the limit of 1048576 bytes"
        );
        assert_eq!(
            WsError::ReservedOpcode(0xB).to_string(),
            "client frame uses reserved opcode 0xb"
        );
    }

    #[test]
    fn truncated_input_never_panics() {
        let frames = [
            client_frame(0x89, b"Hello"),
            client_frame(0x88, &1000u16.to_be_bytes()),
            client_frame(0x88, b""),
            client_frame(0x89, &[1u8; 125]),
            client_frame(0x82, &[2u8; 300]),
            client_frame(0x82, &[3u8; 70_000]),
        ];
        for frame in &frames {
            for cut in 0..frame.len() {
                let (events, res, buf) = decode_all(&frame[..cut]);
                assert_eq!(res, Ok(()), "cut at {cut}");
                assert!(events.is_empty(), "cut at {cut}");
                assert!(buf.len() <= MAX_HEADER + MAX_CONTROL_PAYLOAD);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let len = (rng.next() % 64) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Bias toward plausible headers so decoding gets past the first checks.
            if let Some(first) = bytes.first_mut() {
                if rng.next().is_multiple_of(2) {
                    *first &= 0x8F;
                }
            }
            if let Some(second) = bytes.get_mut(1) {
                *second |= 0x80;
            }
            let mut dec = ClientDecoder::new();
            let mut buf = BytesMut::new();
            'feed: for piece in bytes.chunks((rng.next() % 8 + 1) as usize) {
                buf.extend_from_slice(piece);
                loop {
                    match dec.decode(&mut buf) {
                        Ok(Some(ClientEvent::Ping(p))) => assert!(p.len() <= MAX_CONTROL_PAYLOAD),
                        Ok(Some(ClientEvent::Close(_))) => {}
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
                assert!(buf.len() <= MAX_HEADER + MAX_CONTROL_PAYLOAD);
            }
        }
    }
}
