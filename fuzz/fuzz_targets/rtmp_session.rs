//! A whole server session (after a valid handshake) survives arbitrary chunk-stream input while
//! the fuzzer's caller accepts every connect, publish and play, as the server does.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rill_rtmp::chunk::ChunkLimits;
use rill_rtmp::handshake::{ClientHandshake, HandshakeKind};
use rill_rtmp::session::server::{ServerEvent, ServerSession, ServerSessionConfig};

fuzz_target!(|data: &[u8]| {
    let config = ServerSessionConfig {
        limits: ChunkLimits {
            max_message_size: 64 * 1024,
            max_chunk_size: 65536,
            max_chunk_streams: 8,
        },
        ..ServerSessionConfig::default()
    };
    let mut server = ServerSession::new(config);
    // A genuine handshake first, so the fuzzer spends its time on chunks and commands.
    let mut client = ClientHandshake::new(HandshakeKind::Simple, 1);
    let mut c_out = BytesMut::new();
    client.start(&mut c_out);
    let mut s_in = c_out.split();
    let _ = server.feed(&mut s_in);
    let mut c_in = BytesMut::new();
    if let Some(out) = server.take_output() {
        c_in.extend_from_slice(&out);
    }
    if !matches!(client.process(&mut c_in, &mut c_out), Ok(true)) {
        return;
    }
    s_in.extend_from_slice(&c_out);
    assert!(server.feed(&mut s_in).is_ok());
    assert!(server.handshake_done());

    // Feed the input in pieces whose size the first byte picks.
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    for piece in rest.chunks(step) {
        s_in.extend_from_slice(piece);
        let result = server.feed(&mut s_in);
        while let Some(event) = server.poll_event() {
            match event {
                ServerEvent::Connect { .. } => server.accept_connect(0.0),
                ServerEvent::Publish {
                    stream_id, name, ..
                } => server.accept_publish(stream_id, &name),
                ServerEvent::Play {
                    stream_id,
                    name,
                    reset,
                    ..
                } => server.accept_play(stream_id, &name, reset),
                _ => {}
            }
        }
        let _ = server.take_output();
        if result.is_err() {
            return;
        }
        // Whatever stays buffered is at most one incomplete chunk (header + chunk-size payload).
        assert!(s_in.len() <= 65536 + 18, "buffered {} bytes", s_in.len());
    }
});
