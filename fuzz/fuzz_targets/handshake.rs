//! Both handshake roles accept arbitrary peer bytes, delivered in two pieces, without panicking,
//! and never produce more output than a handshake can legitimately need.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rill_rtmp::handshake::{ClientHandshake, HandshakeKind, ServerHandshake, HANDSHAKE_SIZE};

/// S0+S1+S2 (server) or C2 (client), with generous slack.
const MAX_OUT: usize = 1 + 2 * HANDSHAKE_SIZE + 64;

fn feed(
    mut process: impl FnMut(&mut BytesMut, &mut BytesMut) -> bool,
    first: &[u8],
    second: &[u8],
) {
    let mut input = BytesMut::from(first);
    let mut out = BytesMut::new();
    if !process(&mut input, &mut out) {
        return;
    }
    input.extend_from_slice(second);
    process(&mut input, &mut out);
    assert!(out.len() <= MAX_OUT, "handshake wrote {} bytes", out.len());
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let split = u16::from_le_bytes([data[0], data[1]]) as usize;
    let digest = data[2] & 1 == 1;
    let body = &data[3..];
    let (first, second) = body.split_at(split.min(body.len()));

    // `process` returns false once the state machine is done or failed: stop feeding then.
    let mut server = ServerHandshake::new(u64::from(data[2]));
    feed(
        |input, out| {
            let len_before = input.len();
            let r = server.process(input, out);
            assert!(input.len() <= len_before, "handshake grew its input");
            matches!(r, Ok(false))
        },
        first,
        second,
    );
    let _ = server.client_kind();

    let kind = if digest {
        HandshakeKind::Digest
    } else {
        HandshakeKind::Simple
    };
    let mut client = ClientHandshake::new(kind, 7);
    let mut c0c1 = BytesMut::new();
    client.start(&mut c0c1);
    assert_eq!(c0c1.len(), 1 + HANDSHAKE_SIZE, "C0+C1 has a fixed size");
    feed(
        |input, out| {
            let len_before = input.len();
            let r = client.process(input, out);
            assert!(input.len() <= len_before, "handshake grew its input");
            matches!(r, Ok(false))
        },
        first,
        second,
    );
});
