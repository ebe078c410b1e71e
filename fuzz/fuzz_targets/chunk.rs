//! The chunk stream decoder survives arbitrary input under tight limits and honours them.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rill_rtmp::chunk::{ChunkDecoder, ChunkLimits};

const LIMITS: ChunkLimits = ChunkLimits {
    max_message_size: 64 * 1024,
    max_chunk_size: 4096,
    max_chunk_streams: 8,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut decoder = ChunkDecoder::new(LIMITS);
    // Selector 0 keeps the default 128, 1..=15 gives tiny chunks (many continuation headers), the
    // rest spreads up to 8160, past the 4096 limit, so refused sizes are exercised too: a refused
    // size must leave the decoder usable.
    match selector {
        0 => {}
        1..=15 => {
            let _ = decoder.set_chunk_size(u32::from(selector));
        }
        _ => {
            let _ = decoder.set_chunk_size(u32::from(selector) * 32);
        }
    }
    let mut buf = BytesMut::from(rest);
    loop {
        let before = buf.len();
        match decoder.decode(&mut buf) {
            Ok(Some(msg)) => {
                assert!(
                    msg.payload.len() <= LIMITS.max_message_size as usize,
                    "message above the limit"
                );
                assert!(
                    buf.len() < before,
                    "a message came out without consuming input"
                );
            }
            Ok(None) | Err(_) => break,
        }
    }
});
