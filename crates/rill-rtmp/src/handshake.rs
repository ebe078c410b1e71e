//! The RTMP handshake, both roles: the simple handshake (version 3, zero C1 version field) and the
//! digest ("complex", Flash Player 9) handshake with HMAC-SHA256 digests at either offset scheme.
//!
//! Wire layout (Adobe RTMP spec §5.2 for the simple form; the digest form is the de-facto Flash
//! Player 9 extension that Flash-era clients and servers expect):
//! - C0/S0: one version byte, 3 for plain RTMP;
//! - C1/S1: 1536 bytes = time(4) + version(4) + 1528 bytes. In the digest form one 764-byte block
//!   (starting at byte 8 for scheme 0, 772 for scheme 1) carries a 32-byte HMAC-SHA256 over the
//!   whole packet minus those 32 bytes, at an offset derived from the block's first four bytes;
//! - C2/S2: 1536 bytes, an echo of the peer's C1/S1 (simple) or 1504 random bytes followed by an
//!   HMAC-SHA256 keyed by a hash of the peer's digest (digest form).
//!
//! Both state machines are sans-IO: the caller appends received bytes to `input` and sends
//! whatever lands in `out`. Nothing is buffered internally, so partial packets simply stay in
//! `input` until the rest arrives.

use bytes::{Buf, BufMut, BytesMut};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Size of C1/S1/C2/S2.
pub const HANDSHAKE_SIZE: usize = 1536;

/// The version byte we always send: plain, unencrypted RTMP.
pub const RTMP_VERSION: u8 = 3;

/// Highest C0/S0 byte still answered as plain RTMP. Real clients send 3, but some send 6 (RTMPE)
/// or other small values while happily falling back to plain RTMP when answered with 3; anything
/// larger is almost certainly not RTMP (e.g. `G` = 71 from an HTTP `GET`).
const MAX_PLAIN_VERSION: u8 = 31;

const DIGEST_LEN: usize = 32;
/// A digest block is 764 bytes: 4 offset bytes, then the digest somewhere in the remaining 760,
/// which leaves 728 possible positions.
const DIGEST_SPAN: usize = 728;
/// Random part of a digest C2/S2; the last 32 bytes are its signature.
const RESPONSE_RANDOM_LEN: usize = HANDSHAKE_SIZE - DIGEST_LEN;

/// Key prefix used for client (C1) digests.
const GENUINE_FP: &[u8; 30] = b"Genuine Adobe Flash Player 001";
/// Key prefix used for server (S1) digests.
const GENUINE_FMS: &[u8; 36] = b"Genuine Adobe Flash Media Server 001";
/// Constant tail appended to either prefix to form the key for the C2/S2 signature.
const KEY_TAIL: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];
/// Full client key (30 + 32 bytes).
const FP_KEY: [u8; 62] = concat(GENUINE_FP, &KEY_TAIL);
/// Full server key (36 + 32 bytes).
const FMS_KEY: [u8; 68] = concat(GENUINE_FMS, &KEY_TAIL);

/// Version field we put in a digest S1. Clients only check it is nonzero.
const SERVER_VERSION: [u8; 4] = [0x04, 0x05, 0x00, 0x01];
/// Version field we put in a digest C1. Servers use "nonzero" as the hint to look for a digest.
const CLIENT_VERSION: [u8; 4] = [0x80, 0x00, 0x07, 0x02];

const fn concat<const A: usize, const B: usize, const N: usize>(
    a: &[u8; A],
    b: &[u8; B],
) -> [u8; N] {
    // Evaluated at compile time only, so a length mismatch is a build error, not a runtime panic.
    assert!(A + B == N);
    let mut out = [0u8; N];
    let mut i = 0;
    while i < A {
        out[i] = a[i];
        i += 1;
    }
    let mut j = 0;
    while j < B {
        out[A + j] = b[j];
        j += 1;
    }
    out
}

type Packet = [u8; HANDSHAKE_SIZE];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HandshakeError {
    #[error("unsupported RTMP version {0}")]
    BadVersion(u8),
    #[error("handshake already finished")]
    Finished,
    #[error("client handshake not started: call start() first")]
    NotStarted,
}

/// Which handshake a client performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeKind {
    Simple,
    Digest,
}

/// Where in C1/S1 the digest lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DigestScheme {
    /// Digest block right after time + version (byte 8).
    Zero,
    /// Digest block second (byte 772), after the 764-byte key block.
    One,
}

impl DigestScheme {
    const ALL: [DigestScheme; 2] = [DigestScheme::Zero, DigestScheme::One];

    fn block_start(self) -> usize {
        match self {
            DigestScheme::Zero => 8,
            DigestScheme::One => 8 + 764,
        }
    }
}

/// Absolute position of the digest inside `packet` for `scheme`. Always leaves room for the 32
/// digest bytes: the largest result is 772 + 4 + 727 = 1503, and 1503 + 32 = 1535 < 1536.
fn digest_offset(packet: &Packet, scheme: DigestScheme) -> usize {
    let start = scheme.block_start();
    let sum: usize = packet[start..start + 4]
        .iter()
        .map(|&b| usize::from(b))
        .sum();
    start + 4 + sum % DIGEST_SPAN
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    // HMAC accepts keys of every length (long ones are hashed), so this cannot fail; avoiding
    // `expect` keeps the no-panic guarantee mechanical.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return [0; DIGEST_LEN];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The digest that belongs at `offset`: HMAC over the packet with those 32 bytes left out.
fn packet_digest(packet: &Packet, offset: usize, key: &[u8]) -> [u8; DIGEST_LEN] {
    hmac_sha256(key, &[&packet[..offset], &packet[offset + DIGEST_LEN..]])
}

/// Looks for a valid digest under either scheme; returns the scheme and the digest found.
fn verify_digest(packet: &Packet, key: &[u8]) -> Option<(DigestScheme, [u8; DIGEST_LEN])> {
    DigestScheme::ALL.into_iter().find_map(|scheme| {
        let offset = digest_offset(packet, scheme);
        let expected = packet_digest(packet, offset, key);
        (packet[offset..offset + DIGEST_LEN] == expected).then_some((scheme, expected))
    })
}

/// Writes the digest for `scheme` into `packet` (whose other bytes must be final) and returns it.
fn embed_digest(packet: &mut Packet, scheme: DigestScheme, key: &[u8]) -> [u8; DIGEST_LEN] {
    let offset = digest_offset(packet, scheme);
    let digest = packet_digest(packet, offset, key);
    packet[offset..offset + DIGEST_LEN].copy_from_slice(&digest);
    digest
}

/// Signature over the random part of a digest C2/S2, bound to the peer's C1/S1 digest.
fn response_signature(
    random: &[u8],
    full_key: &[u8],
    peer_digest: &[u8; DIGEST_LEN],
) -> [u8; DIGEST_LEN] {
    let key = hmac_sha256(full_key, &[peer_digest]);
    hmac_sha256(&key, &[random])
}

/// Builds a digest C2/S2: random bytes then their signature.
fn make_response(rng: &mut XorShift, full_key: &[u8], peer_digest: &[u8; DIGEST_LEN]) -> Packet {
    let mut packet = [0u8; HANDSHAKE_SIZE];
    rng.fill(&mut packet[..RESPONSE_RANDOM_LEN]);
    let signature = response_signature(&packet[..RESPONSE_RANDOM_LEN], full_key, peer_digest);
    packet[RESPONSE_RANDOM_LEN..].copy_from_slice(&signature);
    packet
}

/// Whether `packet` is a digest C2/S2 answering our own C1/S1 digest `own_digest`.
fn verify_response(packet: &Packet, full_key: &[u8], own_digest: &[u8; DIGEST_LEN]) -> bool {
    let expected = response_signature(&packet[..RESPONSE_RANDOM_LEN], full_key, own_digest);
    packet[RESPONSE_RANDOM_LEN..] == expected
}

/// Removes one whole handshake packet from the front of `input`, if it has fully arrived.
fn take_packet(input: &mut BytesMut) -> Option<Packet> {
    let mut packet = [0u8; HANDSHAKE_SIZE];
    packet.copy_from_slice(input.get(..HANDSHAKE_SIZE)?);
    input.advance(HANDSHAKE_SIZE);
    Some(packet)
}

fn is_plain_version(version: u8) -> bool {
    (RTMP_VERSION..=MAX_PLAIN_VERSION).contains(&version)
}

/// xorshift64* generator: the random handshake bytes only need to look random to the peer, and a
/// seeded generator keeps the state machines deterministic and testable.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // One splitmix64 step decorrelates neighbouring seeds and maps seed 0 away from the
        // all-zero state, on which xorshift would be stuck forever.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        XorShift(if z == 0 { 0x9E37_79B9_7F4A_7C15 } else { z })
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// Progress through the bytes a role receives, which have the same shape on both sides: a
/// version byte (C0/S0), then two whole packets (C1/S1, then C2/S2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Client only: `start()` has not written C0+C1 yet.
    Idle,
    AwaitVersion,
    AwaitFirst,
    AwaitSecond,
    Done,
    Failed(u8),
}

/// What [`next_event`] found in the input.
enum Event {
    /// The next piece has not fully arrived.
    NeedMore,
    /// C1 (server) or S1 (client) has arrived; the role answers it.
    First(Packet),
    /// C2 (server) or S2 (client) has arrived: the handshake is complete.
    Second(Packet),
    /// Already complete, nothing more in `input`.
    Finished,
}

/// Advances `stage` over the front of `input`, consuming the version byte silently and returning
/// each whole packet for the role to act on. A rejected version sticks, so later calls keep
/// returning the same `BadVersion`; bytes after completion belong to the chunk stream, so they
/// are an error here rather than consumed.
fn next_event(stage: &mut Stage, input: &mut BytesMut) -> Result<Event, HandshakeError> {
    loop {
        match *stage {
            Stage::Idle => return Err(HandshakeError::NotStarted),
            Stage::AwaitVersion => {
                let Some(&version) = input.first() else {
                    return Ok(Event::NeedMore);
                };
                if !is_plain_version(version) {
                    *stage = Stage::Failed(version);
                    return Err(HandshakeError::BadVersion(version));
                }
                input.advance(1);
                *stage = Stage::AwaitFirst;
            }
            Stage::AwaitFirst => {
                let Some(packet) = take_packet(input) else {
                    return Ok(Event::NeedMore);
                };
                *stage = Stage::AwaitSecond;
                return Ok(Event::First(packet));
            }
            Stage::AwaitSecond => {
                let Some(packet) = take_packet(input) else {
                    return Ok(Event::NeedMore);
                };
                *stage = Stage::Done;
                return Ok(Event::Second(packet));
            }
            Stage::Done => {
                return if input.is_empty() {
                    Ok(Event::Finished)
                } else {
                    Err(HandshakeError::Finished)
                };
            }
            Stage::Failed(version) => return Err(HandshakeError::BadVersion(version)),
        }
    }
}

/// What differs between the two roles once the byte stream has been cut into packets.
trait Role {
    fn stage(&mut self) -> &mut Stage;
    /// Answers the peer's C1/S1.
    fn on_first(&mut self, packet: &Packet, out: &mut BytesMut);
    /// Checks the peer's C2/S2, which ends the handshake.
    fn on_second(&mut self, packet: &Packet);
}

/// The `process` loop of both roles.
fn drive<R: Role>(
    role: &mut R,
    input: &mut BytesMut,
    out: &mut BytesMut,
) -> Result<bool, HandshakeError> {
    loop {
        match next_event(role.stage(), input)? {
            Event::NeedMore => return Ok(false),
            Event::First(packet) => role.on_first(&packet, out),
            Event::Second(packet) => {
                role.on_second(&packet);
                return Ok(true);
            }
            Event::Finished => return Ok(true),
        }
    }
}

/// Server side. Feed it what the client sent; it writes S0+S1+S2 into `out` once C0+C1 are in,
/// answering a digest C1 with a digest S1/S2 and anything else with the simple echo.
pub struct ServerHandshake {
    state: Stage,
    rng: XorShift,
    client_kind: Option<HandshakeKind>,
    /// Our S1 digest, to check a digest C2 against.
    s1_digest: Option<[u8; DIGEST_LEN]>,
    c2_verified: Option<bool>,
}

impl ServerHandshake {
    /// `seed` fills the random parts (no cryptographic strength is needed there).
    pub fn new(seed: u64) -> Self {
        ServerHandshake {
            state: Stage::AwaitVersion,
            rng: XorShift::new(seed),
            client_kind: None,
            s1_digest: None,
            c2_verified: None,
        }
    }

    /// Consumes handshake bytes from the front of `input`, appends bytes to send to `out`.
    /// Returns `Ok(true)` once C2 has been consumed: what is left in `input` is chunk-stream data.
    ///
    /// Once done, calling again with an empty `input` returns `Ok(true)`, and with bytes in it
    /// `Err(Finished)` (they belong to the chunk stream, not to us). A rejected C0 makes every
    /// later call return the same `BadVersion`.
    pub fn process(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<bool, HandshakeError> {
        drive(self, input, out)
    }

    /// The handshake kind the client used (known once C1 has been read).
    pub fn client_kind(&self) -> Option<HandshakeKind> {
        self.client_kind
    }

    /// For a digest handshake, whether C2 carried the expected signature (known once done);
    /// `None` for a simple handshake. Informational only: a bad C2 does not fail the handshake.
    pub fn c2_verified(&self) -> Option<bool> {
        self.c2_verified
    }
}

impl Role for ServerHandshake {
    fn stage(&mut self) -> &mut Stage {
        &mut self.state
    }

    fn on_second(&mut self, c2: &Packet) {
        // C2 is not validated strictly: plenty of clients send garbage here.
        self.c2_verified = self
            .s1_digest
            .map(|digest| verify_response(c2, &FP_KEY, &digest));
    }

    fn on_first(&mut self, c1: &Packet, out: &mut BytesMut) {
        out.reserve(1 + 2 * HANDSHAKE_SIZE);
        out.put_u8(RTMP_VERSION);
        // S1 time stays 0: we have no clock here and the spec allows any epoch.
        let mut s1 = [0u8; HANDSHAKE_SIZE];
        match verify_digest(c1, GENUINE_FP) {
            Some((scheme, client_digest)) => {
                self.client_kind = Some(HandshakeKind::Digest);
                s1[4..8].copy_from_slice(&SERVER_VERSION);
                self.rng.fill(&mut s1[8..]);
                // Answering in the client's scheme is what Flash Player checks first.
                self.s1_digest = Some(embed_digest(&mut s1, scheme, GENUINE_FMS));
                out.put_slice(&s1);
                out.put_slice(&make_response(&mut self.rng, &FMS_KEY, &client_digest));
            }
            None => {
                self.client_kind = Some(HandshakeKind::Simple);
                self.rng.fill(&mut s1[8..]);
                out.put_slice(&s1);
                out.put_slice(c1);
            }
        }
    }
}

/// Client side.
pub struct ClientHandshake {
    kind: HandshakeKind,
    state: Stage,
    rng: XorShift,
    /// Our C1 digest, to check a digest S2 against.
    c1_digest: Option<[u8; DIGEST_LEN]>,
    server_kind: Option<HandshakeKind>,
    s2_verified: Option<bool>,
}

impl ClientHandshake {
    pub fn new(kind: HandshakeKind, seed: u64) -> Self {
        ClientHandshake {
            kind,
            state: Stage::Idle,
            rng: XorShift::new(seed),
            c1_digest: None,
            server_kind: None,
            s2_verified: None,
        }
    }

    /// Writes C0+C1 into `out`. Call once, first.
    ///
    /// Later calls write nothing: a second C1 would desynchronise the peer.
    pub fn start(&mut self, out: &mut BytesMut) {
        if self.state != Stage::Idle {
            return;
        }
        let mut c1 = [0u8; HANDSHAKE_SIZE];
        self.rng.fill(&mut c1[8..]);
        if self.kind == HandshakeKind::Digest {
            c1[4..8].copy_from_slice(&CLIENT_VERSION);
            self.c1_digest = Some(embed_digest(&mut c1, DigestScheme::Zero, GENUINE_FP));
        }
        out.reserve(1 + HANDSHAKE_SIZE);
        out.put_u8(RTMP_VERSION);
        out.put_slice(&c1);
        self.state = Stage::AwaitVersion;
    }

    /// Consumes S0+S1+S2 from the front of `input`, appends C2 to `out`. Returns `Ok(true)` once done:
    /// what is left in `input` is chunk-stream data.
    ///
    /// C2 is written as soon as S1 is in, without waiting for S2. Once done, calling again with an
    /// empty `input` returns `Ok(true)`, and with bytes in it `Err(Finished)`.
    pub fn process(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<bool, HandshakeError> {
        drive(self, input, out)
    }

    /// The handshake kind the server answered with (known once S1 has been read): `Digest` only
    /// when we sent a digest C1 and S1 carried a valid server digest.
    pub fn server_kind(&self) -> Option<HandshakeKind> {
        self.server_kind
    }

    /// For a digest C1, whether S2 carried the expected signature (known once done); `None` for a
    /// simple handshake. Informational only: a bad S2 does not fail the handshake.
    pub fn s2_verified(&self) -> Option<bool> {
        self.s2_verified
    }
}

impl Role for ClientHandshake {
    fn stage(&mut self) -> &mut Stage {
        &mut self.state
    }

    fn on_second(&mut self, s2: &Packet) {
        // Servers vary in how they build S2, so a mismatch is recorded, not fatal.
        self.s2_verified = self
            .c1_digest
            .map(|digest| verify_response(s2, &FMS_KEY, &digest));
    }

    fn on_first(&mut self, s1: &Packet, out: &mut BytesMut) {
        let server_digest = match self.kind {
            HandshakeKind::Digest => verify_digest(s1, GENUINE_FMS).map(|(_, digest)| digest),
            HandshakeKind::Simple => None,
        };
        match server_digest {
            Some(digest) => {
                self.server_kind = Some(HandshakeKind::Digest);
                out.put_slice(&make_response(&mut self.rng, &FP_KEY, &digest));
            }
            None => {
                self.server_kind = Some(HandshakeKind::Simple);
                out.put_slice(s1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const N: usize = HANDSHAKE_SIZE;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn packet_from(bytes: &[u8]) -> Packet {
        let mut p = [0u8; N];
        p.copy_from_slice(bytes);
        p
    }

    /// A client that has written C0+C1, with those bytes.
    fn started(kind: HandshakeKind, seed: u64) -> (ClientHandshake, BytesMut) {
        let mut client = ClientHandshake::new(kind, seed);
        let mut c01 = BytesMut::new();
        client.start(&mut c01);
        (client, c01)
    }

    /// A server fed C0 (version 3) and `c1`, with the S0+S1+S2 it answered.
    fn server_fed_c1(seed: u64, c1: &Packet) -> (ServerHandshake, BytesMut) {
        let mut server = ServerHandshake::new(seed);
        let mut input = BytesMut::from(&[RTMP_VERSION][..]);
        input.put_slice(c1);
        let mut out = BytesMut::new();
        assert_eq!(server.process(&mut input, &mut out), Ok(false));
        assert!(input.is_empty());
        (server, out)
    }

    /// Feeds S0 (version 3), `s1` and `s2` to a started client, which must finish; returns C2.
    fn client_fed(client: &mut ClientHandshake, s1: &Packet, s2: &[u8]) -> BytesMut {
        let mut input = BytesMut::from(&[RTMP_VERSION][..]);
        input.put_slice(s1);
        input.put_slice(s2);
        let mut out = BytesMut::new();
        assert_eq!(client.process(&mut input, &mut out), Ok(true));
        out
    }

    /// A C1 in the digest form with the digest at `scheme`, built independently of the client.
    fn digest_c1(scheme: DigestScheme, fill: u8) -> (Packet, [u8; 32]) {
        let mut c1 = [0u8; N];
        for (i, b) in c1.iter_mut().enumerate().skip(8) {
            *b = (i as u8).wrapping_mul(fill);
        }
        c1[4..8].copy_from_slice(&[0x0A, 0x00, 0x2D, 0x02]);
        let digest = embed_digest(&mut c1, scheme, GENUINE_FP);
        (c1, digest)
    }

    /// Runs a client against a server, delivering each side's output whole. Returns
    /// (C0+C1, S0+S1+S2, C2).
    fn run_pair(
        client: &mut ClientHandshake,
        server: &mut ServerHandshake,
    ) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let mut c01 = BytesMut::new();
        client.start(&mut c01);
        let c01_copy = c01.to_vec();
        let mut s012 = BytesMut::new();
        assert_eq!(server.process(&mut c01, &mut s012), Ok(false));
        assert!(c01.is_empty());
        let s012_copy = s012.to_vec();
        let mut c2 = BytesMut::new();
        assert_eq!(client.process(&mut s012, &mut c2), Ok(true));
        assert!(s012.is_empty());
        let c2_copy = c2.to_vec();
        let mut nothing = BytesMut::new();
        assert_eq!(server.process(&mut c2, &mut nothing), Ok(true));
        assert!(c2.is_empty());
        assert!(nothing.is_empty());
        (c01_copy, s012_copy, c2_copy)
    }

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn full_keys_are_prefix_plus_constant_tail() {
        assert_eq!(&FP_KEY[..30], b"Genuine Adobe Flash Player 001");
        assert_eq!(&FP_KEY[30..], &KEY_TAIL);
        assert_eq!(&FMS_KEY[..36], b"Genuine Adobe Flash Media Server 001");
        assert_eq!(&FMS_KEY[36..], &KEY_TAIL);
        assert_eq!(KEY_TAIL[0], 0xF0);
        assert_eq!(KEY_TAIL[31], 0xAE);
    }

    #[test]
    fn digest_offsets_follow_the_scheme_formulas() {
        let mut p = [0u8; N];
        assert_eq!(digest_offset(&p, DigestScheme::Zero), 12);
        assert_eq!(digest_offset(&p, DigestScheme::One), 776);
        p[8..12].copy_from_slice(&[1, 2, 3, 4]);
        p[772..776].copy_from_slice(&[10, 20, 30, 40]);
        assert_eq!(digest_offset(&p, DigestScheme::Zero), 22);
        assert_eq!(digest_offset(&p, DigestScheme::One), 876);
        // 255 * 4 = 1020, 1020 % 728 = 292.
        p[8..12].copy_from_slice(&[255; 4]);
        p[772..776].copy_from_slice(&[255; 4]);
        assert_eq!(digest_offset(&p, DigestScheme::Zero), 304);
        assert_eq!(digest_offset(&p, DigestScheme::One), 1068);
        // Sum 727 gives the largest offsets, which must still fit the digest in its block.
        p[8..12].copy_from_slice(&[255, 255, 217, 0]);
        p[772..776].copy_from_slice(&[255, 255, 217, 0]);
        assert_eq!(digest_offset(&p, DigestScheme::Zero), 739);
        assert_eq!(digest_offset(&p, DigestScheme::One), 1503);
        // The digest at those offsets must fit inside its own block and the packet.
        let mut q = p;
        let d0 = embed_digest(&mut q, DigestScheme::Zero, GENUINE_FP);
        assert_eq!(&q[739..771], &d0);
        assert_eq!(
            &q[772..776],
            &[255, 255, 217, 0],
            "scheme 1 offset bytes untouched"
        );
        let d1 = embed_digest(&mut q, DigestScheme::One, GENUINE_FP);
        assert_eq!(&q[1503..1535], &d1);
        // Sum 728 wraps to the first position.
        p[8..12].copy_from_slice(&[255, 255, 218, 0]);
        assert_eq!(digest_offset(&p, DigestScheme::Zero), 12);
    }

    #[test]
    fn embedded_digest_verifies_under_its_scheme_only_with_its_key() {
        for scheme in DigestScheme::ALL {
            let (c1, digest) = digest_c1(scheme, 7);
            assert_eq!(verify_digest(&c1, GENUINE_FP), Some((scheme, digest)));
            let offset = digest_offset(&c1, scheme);
            assert_eq!(&c1[offset..offset + 32], &digest);
            assert_eq!(verify_digest(&c1, GENUINE_FMS), None);
            assert_eq!(verify_digest(&c1, &FP_KEY), None);
            // Any byte outside the digest is covered by it.
            for pos in [0, 5, 300, 771, 1000, N - 1] {
                if (offset..offset + 32).contains(&pos) {
                    continue;
                }
                let mut tampered = c1;
                tampered[pos] ^= 0x01;
                assert_eq!(verify_digest(&tampered, GENUINE_FP), None, "pos {pos}");
            }
        }
    }

    #[test]
    fn digest_computation_skips_exactly_the_digest_bytes() {
        let (c1, digest) = digest_c1(DigestScheme::Zero, 3);
        let offset = digest_offset(&c1, DigestScheme::Zero);
        let mut joined = c1[..offset].to_vec();
        joined.extend_from_slice(&c1[offset + 32..]);
        assert_eq!(joined.len(), N - 32);
        assert_eq!(hmac_sha256(GENUINE_FP, &[&joined]), digest);
    }

    #[test]
    fn response_signature_binds_peer_digest() {
        let mut rng = XorShift::new(9);
        let peer = [0x42u8; 32];
        let resp = make_response(&mut rng, &FMS_KEY, &peer);
        assert!(verify_response(&resp, &FMS_KEY, &peer));
        assert!(!verify_response(&resp, &FP_KEY, &peer));
        assert!(!verify_response(&resp, &FMS_KEY, &[0x43; 32]));
        let inner = hmac_sha256(&FMS_KEY, &[&peer]);
        assert_eq!(&resp[1504..], &hmac_sha256(&inner, &[&resp[..1504]]));
    }

    #[test]
    fn rng_is_deterministic_and_seed_sensitive() {
        let draw = |seed| {
            let mut r = XorShift::new(seed);
            let mut buf = [0u8; 37];
            r.fill(&mut buf);
            buf
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
        assert_ne!(draw(0), [0u8; 37]);
        let mut r = XorShift::new(0);
        let first = r.next_u64();
        assert_ne!(first, r.next_u64());
    }

    #[test]
    fn simple_client_with_server() {
        let mut client = ClientHandshake::new(HandshakeKind::Simple, 1);
        let mut server = ServerHandshake::new(2);
        let (c01, s012, c2) = run_pair(&mut client, &mut server);
        assert_eq!(c01.len(), 1 + N);
        assert_eq!(c01[0], 3);
        assert_eq!(
            &c01[1..9],
            &[0; 8],
            "simple C1: time 0 and zero version field"
        );
        assert_eq!(s012.len(), 1 + 2 * N);
        assert_eq!(s012[0], 3);
        assert_eq!(&s012[1..9], &[0; 8], "simple S1: time 0 and zero field");
        assert_ne!(
            &s012[9..1 + N],
            &[0u8; N - 8][..],
            "S1 random part is filled"
        );
        assert_eq!(&s012[1 + N..], &c01[1..], "S2 echoes C1");
        assert_eq!(&c2[..], &s012[1..1 + N], "C2 echoes S1");
        assert_eq!(server.client_kind(), Some(HandshakeKind::Simple));
        assert_eq!(client.server_kind(), Some(HandshakeKind::Simple));
        assert_eq!(server.c2_verified(), None);
        assert_eq!(client.s2_verified(), None);
    }

    #[test]
    fn digest_client_with_server() {
        let mut client = ClientHandshake::new(HandshakeKind::Digest, 11);
        let mut server = ServerHandshake::new(22);
        let (c01, s012, c2) = run_pair(&mut client, &mut server);
        let c1 = packet_from(&c01[1..]);
        let s1 = packet_from(&s012[1..1 + N]);
        let s2 = packet_from(&s012[1 + N..]);
        let c2 = packet_from(&c2);

        assert_eq!(&c1[4..8], &[0x80, 0x00, 0x07, 0x02]);
        let (c_scheme, c_digest) = verify_digest(&c1, GENUINE_FP).unwrap();
        assert_eq!(c_scheme, DigestScheme::Zero);

        assert_eq!(s012[0], 3);
        assert_eq!(&s1[4..8], &[0x04, 0x05, 0x00, 0x01]);
        let (s_scheme, s_digest) = verify_digest(&s1, GENUINE_FMS).unwrap();
        assert_eq!(
            s_scheme,
            DigestScheme::Zero,
            "server answers in the client's scheme"
        );
        assert!(verify_response(&s2, &FMS_KEY, &c_digest));
        assert!(verify_response(&c2, &FP_KEY, &s_digest));
        assert_ne!(&s2[..], &c1[..], "digest S2 is not an echo");
        assert_ne!(&c2[..], &s1[..], "digest C2 is not an echo");

        assert_eq!(server.client_kind(), Some(HandshakeKind::Digest));
        assert_eq!(client.server_kind(), Some(HandshakeKind::Digest));
        assert_eq!(client.s2_verified(), Some(true));
        assert_eq!(server.c2_verified(), Some(true));
    }

    #[test]
    fn server_answers_scheme_one_in_scheme_one() {
        let (c1, c_digest) = digest_c1(DigestScheme::One, 5);
        assert_eq!(
            verify_digest(&c1, GENUINE_FP).map(|(s, _)| s),
            Some(DigestScheme::One)
        );
        let (server, out) = server_fed_c1(3, &c1);
        assert_eq!(server.client_kind(), Some(HandshakeKind::Digest));
        let s1 = packet_from(&out[1..1 + N]);
        let s2 = packet_from(&out[1 + N..]);
        // Scheme 0 is tried first, so finding scheme 1 proves scheme 0 was not used.
        assert_eq!(
            verify_digest(&s1, GENUINE_FMS).map(|(s, _)| s),
            Some(DigestScheme::One)
        );
        assert!(verify_response(&s2, &FMS_KEY, &c_digest));
    }

    #[test]
    fn hand_built_simple_c1_is_echoed_exactly() {
        let mut c1 = [0u8; N];
        c1[..4].copy_from_slice(&[0x00, 0x01, 0x02, 0x03]);
        for (i, b) in c1.iter_mut().enumerate().skip(8) {
            *b = (i % 251) as u8;
        }
        let (server, out) = server_fed_c1(77, &c1);
        assert_eq!(server.client_kind(), Some(HandshakeKind::Simple));
        assert_eq!(out.len(), 1 + 2 * N);
        assert_eq!(out[0], 3);
        assert_eq!(&out[1..9], &[0; 8]);
        assert_eq!(&out[1 + N..], &c1[..]);
    }

    #[test]
    fn nonzero_version_without_valid_digest_gets_simple_answer() {
        let (mut c1, _) = digest_c1(DigestScheme::Zero, 9);
        c1[N - 1] ^= 0xFF;
        let (server, out) = server_fed_c1(4, &c1);
        assert_eq!(server.client_kind(), Some(HandshakeKind::Simple));
        assert_eq!(&out[1 + N..], &c1[..]);
    }

    #[test]
    fn server_byte_at_a_time() {
        let (mut client, c01) = started(HandshakeKind::Digest, 5);
        let mut server = ServerHandshake::new(6);
        let mut input = BytesMut::new();
        let mut out = BytesMut::new();
        for (i, &b) in c01.iter().enumerate() {
            input.put_u8(b);
            assert_eq!(server.process(&mut input, &mut out), Ok(false));
            if i + 1 < c01.len() {
                assert!(out.is_empty(), "no output before C1 is complete (byte {i})");
                assert_eq!(server.client_kind(), None);
            }
        }
        assert!(input.is_empty());
        assert_eq!(out.len(), 1 + 2 * N);
        assert_eq!(server.client_kind(), Some(HandshakeKind::Digest));

        let mut s012 = out.split();
        let mut c2 = BytesMut::new();
        assert_eq!(client.process(&mut s012, &mut c2), Ok(true));
        for (i, &b) in c2.iter().enumerate() {
            input.put_u8(b);
            let done = server.process(&mut input, &mut out).unwrap();
            assert_eq!(done, i + 1 == N);
        }
        assert!(out.is_empty());
        assert_eq!(server.c2_verified(), Some(true));
    }

    #[test]
    fn client_byte_at_a_time_sends_c2_after_s1() {
        let (mut client, mut c01) = started(HandshakeKind::Digest, 8);
        let mut server = ServerHandshake::new(9);
        let mut s012 = BytesMut::new();
        server.process(&mut c01, &mut s012).unwrap();

        let mut input = BytesMut::new();
        let mut out = BytesMut::new();
        for (i, &b) in s012.iter().enumerate() {
            input.put_u8(b);
            let done = client.process(&mut input, &mut out).unwrap();
            assert_eq!(done, i + 1 == s012.len());
            let expected_out = if i >= N { N } else { 0 };
            assert_eq!(out.len(), expected_out, "byte {i}");
        }
        assert_eq!(client.server_kind(), Some(HandshakeKind::Digest));
        assert_eq!(client.s2_verified(), Some(true));
    }

    #[test]
    fn server_all_at_once_keeps_leftover() {
        let (_, mut input) = started(HandshakeKind::Simple, 1);
        input.put_slice(&[0x5A; N]); // C2 content is not checked strictly
        input.put_slice(&[0x03, 0x00, 0x00, 0x00, 0xAA]);
        let mut server = ServerHandshake::new(2);
        let mut out = BytesMut::new();
        assert_eq!(server.process(&mut input, &mut out), Ok(true));
        assert_eq!(&input[..], &[0x03, 0x00, 0x00, 0x00, 0xAA]);
        assert_eq!(out.len(), 1 + 2 * N);
        assert_eq!(
            server.process(&mut input, &mut out),
            Err(HandshakeError::Finished)
        );
        assert_eq!(
            &input[..],
            &[0x03, 0x00, 0x00, 0x00, 0xAA],
            "error does not consume"
        );
        assert_eq!(server.process(&mut BytesMut::new(), &mut out), Ok(true));
        assert_eq!(out.len(), 1 + 2 * N);
    }

    #[test]
    fn client_all_at_once_keeps_leftover() {
        let (mut client, mut c01) = started(HandshakeKind::Simple, 1);
        let mut server = ServerHandshake::new(2);
        let mut input = BytesMut::new();
        server.process(&mut c01, &mut input).unwrap();
        input.put_slice(b"chunk");
        let mut out = BytesMut::new();
        assert_eq!(client.process(&mut input, &mut out), Ok(true));
        assert_eq!(&input[..], b"chunk");
        assert_eq!(
            client.process(&mut input, &mut out),
            Err(HandshakeError::Finished)
        );
        assert_eq!(client.process(&mut BytesMut::new(), &mut out), Ok(true));
        assert_eq!(out.len(), N);
    }

    #[test]
    fn server_rejects_bad_versions_and_stays_failed() {
        for v in [0u8, 1, 2, 32, b'G', 0xFF] {
            let mut server = ServerHandshake::new(0);
            let mut input = BytesMut::from(&[v, 0, 0, 0][..]);
            let mut out = BytesMut::new();
            assert_eq!(
                server.process(&mut input, &mut out),
                Err(HandshakeError::BadVersion(v))
            );
            assert_eq!(
                server.process(&mut input, &mut out),
                Err(HandshakeError::BadVersion(v))
            );
            assert!(out.is_empty());
            assert_eq!(server.client_kind(), None);
        }
    }

    #[test]
    fn server_answers_other_small_versions_as_plain_3() {
        for v in [3u8, 6, 8, 31] {
            let mut server = ServerHandshake::new(0);
            let mut input = BytesMut::from(&[v][..]);
            input.put_slice(&[0u8; N]);
            let mut out = BytesMut::new();
            assert_eq!(server.process(&mut input, &mut out), Ok(false));
            assert_eq!(out[0], 3, "version {v}");
        }
    }

    #[test]
    fn client_rejects_bad_s0() {
        let mut client = ClientHandshake::new(HandshakeKind::Simple, 0);
        let mut out = BytesMut::new();
        client.start(&mut out);
        out.clear();
        let mut input = BytesMut::from(&[0x48u8, 0x54][..]); // "HT"
        assert_eq!(
            client.process(&mut input, &mut out),
            Err(HandshakeError::BadVersion(0x48))
        );
        assert_eq!(
            client.process(&mut input, &mut out),
            Err(HandshakeError::BadVersion(0x48))
        );
        assert!(out.is_empty());
    }

    #[test]
    fn client_needs_start_and_starts_once() {
        let mut client = ClientHandshake::new(HandshakeKind::Digest, 0);
        let mut out = BytesMut::new();
        let mut input = BytesMut::from(&[3u8][..]);
        assert_eq!(
            client.process(&mut input, &mut out),
            Err(HandshakeError::NotStarted)
        );
        client.start(&mut out);
        assert_eq!(out.len(), 1 + N);
        client.start(&mut out);
        assert_eq!(out.len(), 1 + N, "second start writes nothing");
    }

    #[test]
    fn digest_client_with_simple_server_echoes_s1() {
        let (mut client, c01) = started(HandshakeKind::Digest, 3);
        // A simple server: S1 without digest, S2 echoing C1.
        let mut s1 = [0u8; N];
        for (i, b) in s1.iter_mut().enumerate().skip(8) {
            *b = (i * 7) as u8;
        }
        let out = client_fed(&mut client, &s1, &c01[1..]);
        assert_eq!(&out[..], &s1[..]);
        assert_eq!(client.server_kind(), Some(HandshakeKind::Simple));
        assert_eq!(client.s2_verified(), Some(false), "recorded, not fatal");
    }

    #[test]
    fn simple_client_echoes_even_a_digest_s1() {
        let (mut client, _) = started(HandshakeKind::Simple, 3);
        let mut s1 = [0u8; N];
        s1[4..8].copy_from_slice(&SERVER_VERSION);
        embed_digest(&mut s1, DigestScheme::Zero, GENUINE_FMS);
        let out = client_fed(&mut client, &s1, &[0u8; N]);
        assert_eq!(&out[..], &s1[..]);
        assert_eq!(client.server_kind(), Some(HandshakeKind::Simple));
    }

    #[test]
    fn server_truncated_c0_c1_at_every_length() {
        let (c1, _) = digest_c1(DigestScheme::Zero, 1);
        let mut full = vec![3u8];
        full.extend_from_slice(&c1);
        for len in 0..full.len() {
            let mut server = ServerHandshake::new(0);
            let mut input = BytesMut::from(&full[..len]);
            let mut out = BytesMut::new();
            assert_eq!(server.process(&mut input, &mut out), Ok(false));
            assert!(out.is_empty());
            assert_eq!(
                input.len(),
                len.saturating_sub(1),
                "only C0 is consumed early"
            );
        }
    }

    #[test]
    fn server_garbage_c2_still_completes() {
        let mut server = ServerHandshake::new(1);
        let mut client = ClientHandshake::new(HandshakeKind::Digest, 2);
        let mut input = BytesMut::new();
        client.start(&mut input);
        input.put_slice(&[0xEE; N]);
        let mut out = BytesMut::new();
        assert_eq!(server.process(&mut input, &mut out), Ok(true));
        assert_eq!(server.client_kind(), Some(HandshakeKind::Digest));
        assert_eq!(server.c2_verified(), Some(false));
    }

    /// Feeds `data` to `step` in pieces whose sizes come from `cuts`, until it errs or is done;
    /// the unfed rest is then appended to the returned input.
    fn feed_in_pieces(
        data: &[u8],
        cuts: &[usize],
        mut step: impl FnMut(&mut BytesMut, &mut BytesMut) -> Result<bool, HandshakeError>,
    ) -> (Result<bool, HandshakeError>, BytesMut, BytesMut) {
        let mut input = BytesMut::new();
        let mut out = BytesMut::new();
        let mut pos = 0;
        let mut cut = cuts.iter().cycle();
        let mut last = Ok(false);
        while pos < data.len() {
            let size = cut
                .next()
                .copied()
                .unwrap_or(data.len())
                .clamp(1, data.len() - pos);
            input.put_slice(&data[pos..pos + size]);
            pos += size;
            last = step(&mut input, &mut out);
            if last != Ok(false) {
                // Whatever follows belongs to the chunk stream (or is moot after an error).
                input.put_slice(&data[pos..]);
                break;
            }
        }
        (last, input, out)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn server_never_panics_on_arbitrary_bytes(
            data in proptest::collection::vec(any::<u8>(), 0..4000),
            plain in any::<bool>(),
            cuts in proptest::collection::vec(1usize..2000, 1..8),
            seed in any::<u64>(),
        ) {
            let mut data = data;
            if plain && !data.is_empty() {
                data[0] = 3;
            }
            let mut server = ServerHandshake::new(seed);
            let (result, input, out) = feed_in_pieces(&data, &cuts, |i, o| server.process(i, o));
            prop_assert!(out.is_empty() || out.len() == 1 + 2 * N);
            if plain && data.len() > 2 * N {
                prop_assert_eq!(result, Ok(true));
                prop_assert_eq!(input.len(), data.len() - 1 - 2 * N);
            }
        }

        #[test]
        fn client_never_panics_on_arbitrary_bytes(
            data in proptest::collection::vec(any::<u8>(), 0..4000),
            plain in any::<bool>(),
            digest in any::<bool>(),
            cuts in proptest::collection::vec(1usize..2000, 1..8),
            seed in any::<u64>(),
        ) {
            let mut data = data;
            if plain && !data.is_empty() {
                data[0] = 3;
            }
            let kind = if digest { HandshakeKind::Digest } else { HandshakeKind::Simple };
            let (mut client, _) = started(kind, seed);
            let (result, input, out) = feed_in_pieces(&data, &cuts, |i, o| client.process(i, o));
            prop_assert!(out.is_empty() || out.len() == N);
            if plain && data.len() > 2 * N {
                prop_assert_eq!(result, Ok(true));
                prop_assert_eq!(input.len(), data.len() - 1 - 2 * N);
            }
        }

        #[test]
        fn client_and_server_agree_under_any_split(
            digest in any::<bool>(),
            cseed in any::<u64>(),
            sseed in any::<u64>(),
            cuts in proptest::collection::vec(1usize..1600, 1..6),
        ) {
            let kind = if digest { HandshakeKind::Digest } else { HandshakeKind::Simple };
            let mut client = ClientHandshake::new(kind, cseed);
            let mut server = ServerHandshake::new(sseed);
            let mut c01 = BytesMut::new();
            client.start(&mut c01);
            let (r, rest, s012) = feed_in_pieces(&c01, &cuts, |i, o| server.process(i, o));
            prop_assert_eq!(r, Ok(false));
            prop_assert!(rest.is_empty());
            let (r, rest, c2) = feed_in_pieces(&s012, &cuts, |i, o| client.process(i, o));
            prop_assert_eq!(r, Ok(true));
            prop_assert!(rest.is_empty());
            let (r, rest, extra) = feed_in_pieces(&c2, &cuts, |i, o| server.process(i, o));
            prop_assert_eq!(r, Ok(true));
            prop_assert!(rest.is_empty() && extra.is_empty());
            prop_assert_eq!(server.client_kind(), Some(kind));
            prop_assert_eq!(client.server_kind(), Some(kind));
            let verified = if digest { Some(true) } else { None };
            prop_assert_eq!(client.s2_verified(), verified);
            prop_assert_eq!(server.c2_verified(), verified);
        }
    }
}
