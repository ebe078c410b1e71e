//! A streaming reader of the frames a WebSocket server sends (RFC 6455 §5.2), for WS-FLV viewers.
//! The payload bytes of binary messages go on as they arrive, straight from the viewer's read
//! buffer: no message is copied or held whole, as [`crate::http::ChunkedDecoder`] does for
//! HTTP-FLV. A general client (tungstenite) copies every message into a buffer of its own and
//! zero-fills its read buffer before each read; for a thousand viewers on the machine the server
//! runs on, that work made WS-FLV look dearer for the server than HTTP-FLV.

/// Why the server's frames could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsError {
    /// A server must not mask its frames.
    Masked,
    /// A reserved bit is set (no extension was negotiated).
    Reserved,
    /// An opcode RFC 6455 does not define.
    BadOpcode(u8),
    /// A control frame longer than 125 bytes, or fragmented.
    BadControl,
    /// A continuation frame outside a message, or a new message inside one.
    BadFragment,
    /// A text message: WS-FLV sends binary messages only.
    Text,
    /// A 64-bit length with its top bit set.
    BadLength,
}

/// What the payload being read is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payload {
    /// Binary message data: passed on.
    Media,
    /// Ping or pong: skipped (the bench never pings, and servers need no answer to their pongs).
    Skip,
}

/// Streaming decoder of server-to-client frames. Holds only the header being read and a count.
#[derive(Debug, Clone, Default)]
pub struct WsDecoder {
    head: [u8; 10],
    have: usize,
    /// Payload bytes of the current frame still to come, and what they are.
    remaining: u64,
    payload: Option<Payload>,
    /// Whether a fragmented binary message is open (its FIN not yet seen).
    in_message: bool,
}

impl WsDecoder {
    /// Decodes all of `input`, passing each run of binary-message payload to `out`. Returns true
    /// once a Close frame has been read (later bytes are ignored).
    pub fn feed<'a>(
        &mut self,
        mut input: &'a [u8],
        mut out: impl FnMut(&'a [u8]),
    ) -> Result<bool, WsError> {
        while !input.is_empty() {
            if let Some(kind) = self.payload {
                let n = self.remaining.min(input.len() as u64) as usize;
                let (data, rest) = input.split_at(n);
                if kind == Payload::Media && n > 0 {
                    out(data);
                }
                self.remaining -= n as u64;
                input = rest;
                if self.remaining == 0 {
                    self.payload = None;
                }
                continue;
            }
            let want = self.header_len();
            let n = (want - self.have).min(input.len());
            self.head[self.have..self.have + n].copy_from_slice(&input[..n]);
            self.have += n;
            input = &input[n..];
            if self.have == want && self.header_len() == want && self.start_frame()? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Bytes of the header being read, as far as its first two bytes tell.
    fn header_len(&self) -> usize {
        if self.have < 2 {
            return 2;
        }
        match self.head[1] & 0x7F {
            126 => 4,
            127 => 10,
            _ => 2,
        }
    }

    /// Checks the complete header in `head` and sets up its payload. True for a Close frame.
    fn start_frame(&mut self) -> Result<bool, WsError> {
        let (b0, b1) = (self.head[0], self.head[1]);
        self.have = 0;
        if b1 & 0x80 != 0 {
            return Err(WsError::Masked);
        }
        if b0 & 0x70 != 0 {
            return Err(WsError::Reserved);
        }
        let fin = b0 & 0x80 != 0;
        let len = match b1 & 0x7F {
            126 => u64::from(u16::from_be_bytes([self.head[2], self.head[3]])),
            127 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(&self.head[2..10]);
                let len = u64::from_be_bytes(be);
                if len >> 63 != 0 {
                    return Err(WsError::BadLength);
                }
                len
            }
            short => u64::from(short),
        };
        let payload = match b0 & 0x0F {
            opcode @ (0x8..=0xA) => {
                if !fin || len > 125 {
                    return Err(WsError::BadControl);
                }
                if opcode == 0x8 {
                    return Ok(true);
                }
                Payload::Skip
            }
            0x0 if !self.in_message => return Err(WsError::BadFragment),
            0x0 => Payload::Media,
            0x1 => return Err(WsError::Text),
            0x2 if self.in_message => return Err(WsError::BadFragment),
            0x2 => Payload::Media,
            other => return Err(WsError::BadOpcode(other)),
        };
        if payload == Payload::Media {
            self.in_message = !fin;
        }
        self.remaining = len;
        self.payload = (len > 0).then_some(payload);
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![b0];
        match payload.len() {
            n if n < 126 => f.push(n as u8),
            n if n <= 0xFFFF => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(payload);
        f
    }

    /// Feeds `wire` in pieces of `step` bytes; returns the payload passed on and the close flag.
    fn decode(wire: &[u8], step: usize) -> Result<(Vec<u8>, bool), WsError> {
        let mut dec = WsDecoder::default();
        let mut got = Vec::new();
        for piece in wire.chunks(step) {
            if dec.feed(piece, |d| got.extend_from_slice(d))? {
                return Ok((got, true));
            }
        }
        Ok((got, false))
    }

    #[test]
    fn binary_messages_of_every_length_form_in_any_pieces() {
        let small: Vec<u8> = (0..100u8).collect();
        let medium: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let large: Vec<u8> = (0..70_000u32).map(|i| (i * 7) as u8).collect();
        let mut wire = frame(0x82, &small);
        wire.extend(frame(0x82, &medium));
        wire.extend(frame(0x82, &large));
        wire.extend(frame(0x82, &[]));
        let want: Vec<u8> = [small, medium, large].concat();
        for step in [1, 2, 3, 7, 126, 4096, wire.len()] {
            assert_eq!(
                decode(&wire, step),
                Ok((want.clone(), false)),
                "step {step}"
            );
        }
    }

    #[test]
    fn fragments_pings_and_close() {
        let mut wire = frame(0x02, b"ab");
        wire.extend(frame(0x89, b"ping"));
        wire.extend(frame(0x00, b"cd"));
        wire.extend(frame(0x8A, b""));
        wire.extend(frame(0x80, b"ef"));
        wire.extend(frame(0x82, b"gh"));
        wire.extend(frame(0x88, &[0x03, 0xE8]));
        wire.extend(frame(0x82, b"after close"));
        for step in [1, 5, wire.len()] {
            assert_eq!(decode(&wire, step), Ok((b"abcdefgh".to_vec(), true)));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_never_pass_more_than_they_got() {
        // A small LCG: deterministic, no dependency.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        };
        for _ in 0..2000 {
            let len = usize::from(next()) * 4;
            let mut wire: Vec<u8> = (0..len).map(|_| next()).collect();
            // Half the inputs start with a plausible unmasked binary header.
            if next() & 1 == 0 && wire.len() > 2 {
                wire[0] = 0x82;
                wire[1] &= 0x7F;
            }
            let step = usize::from(next() % 16) + 1;
            if let Ok((got, _)) = decode(&wire, step) {
                assert!(got.len() <= wire.len());
            }
        }
    }

    #[test]
    fn protocol_violations_are_errors() {
        let masked = [0x82, 0x81, 1, 2, 3, 4, 0x55];
        assert_eq!(decode(&masked, 1), Err(WsError::Masked));
        assert_eq!(decode(&frame(0xC2, b"x"), 1), Err(WsError::Reserved));
        assert_eq!(decode(&frame(0x83, b"x"), 1), Err(WsError::BadOpcode(3)));
        assert_eq!(decode(&frame(0x81, b"x"), 1), Err(WsError::Text));
        assert_eq!(decode(&frame(0x80, b"x"), 1), Err(WsError::BadFragment));
        let mut open = frame(0x02, b"x");
        open.extend(frame(0x82, b"y"));
        assert_eq!(decode(&open, 1), Err(WsError::BadFragment));
        assert_eq!(decode(&frame(0x09, b"x"), 1), Err(WsError::BadControl));
        assert_eq!(decode(&frame(0x89, &[0; 126]), 1), Err(WsError::BadControl));
        let huge = [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(decode(&huge, 3), Err(WsError::BadLength));
    }
}
