//! The WebSocket client-frame decoder of WS-FLV accepts arbitrary input, delivered in pieces, and
//! never keeps more than one control frame's worth of it.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

// The module is sans-IO and self-contained; compiling its file here spares the fuzz build the
// whole server crate.
#[path = "../../crates/rill/src/http/ws_frame.rs"]
#[allow(dead_code)]
mod ws_frame;

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut decoder = ws_frame::ClientDecoder::new();
    let mut buf = BytesMut::new();
    'feed: for piece in rest.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(ws_frame::ClientEvent::Ping(p))) => {
                    assert!(p.len() <= ws_frame::MAX_CONTROL_PAYLOAD);
                    let _ = ws_frame::pong_frame(&p);
                }
                Ok(Some(ws_frame::ClientEvent::Close(_))) => {}
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
        assert!(
            buf.len() < ws_frame::MAX_HEADER + ws_frame::MAX_CONTROL_PAYLOAD + step,
            "the decoder holds {} bytes",
            buf.len()
        );
    }
    if let Ok(key) = std::str::from_utf8(rest) {
        assert_eq!(ws_frame::accept_key(key).len(), 28);
    }
});
