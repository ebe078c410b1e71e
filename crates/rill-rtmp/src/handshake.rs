//! The RTMP handshake, both roles: the simple handshake (version 3, zero C1 version field) and the
//! digest ("complex", Flash Player 9) handshake with HMAC-SHA256 digests at either offset scheme.

use bytes::BytesMut;

/// Size of C1/S1/C2/S2.
pub const HANDSHAKE_SIZE: usize = 1536;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HandshakeError {
    #[error("unsupported RTMP version {0}")]
    BadVersion(u8),
    #[error("handshake already finished")]
    Finished,
}

/// Which handshake a client performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeKind {
    Simple,
    Digest,
}

/// Server side. Feed it what the client sent; it writes S0+S1+S2 into `out` once C0+C1 are in,
/// answering a digest C1 with a digest S1/S2 and anything else with the simple echo.
pub struct ServerHandshake {
    _private: (),
}

impl ServerHandshake {
    /// `seed` fills the random parts (no cryptographic strength is needed there).
    pub fn new(seed: u64) -> Self {
        let _ = seed;
        todo!()
    }

    /// Consumes handshake bytes from the front of `input`, appends bytes to send to `out`.
    /// Returns `Ok(true)` once C2 has been consumed: what is left in `input` is chunk-stream data.
    pub fn process(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<bool, HandshakeError> {
        let _ = (input, out);
        todo!()
    }

    /// The handshake kind the client used (known once C1 has been read).
    pub fn client_kind(&self) -> Option<HandshakeKind> {
        todo!()
    }
}

/// Client side.
pub struct ClientHandshake {
    _private: (),
}

impl ClientHandshake {
    pub fn new(kind: HandshakeKind, seed: u64) -> Self {
        let _ = (kind, seed);
        todo!()
    }

    /// Writes C0+C1 into `out`. Call once, first.
    pub fn start(&mut self, out: &mut BytesMut) {
        let _ = out;
        todo!()
    }

    /// Consumes S0+S1+S2 from the front of `input`, appends C2 to `out`. Returns `Ok(true)` once done:
    /// what is left in `input` is chunk-stream data.
    pub fn process(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<bool, HandshakeError> {
        let _ = (input, out);
        todo!()
    }
}
