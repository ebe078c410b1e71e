//! AMF3 decoding never panics and always makes progress on success.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rill_rtmp::amf3;

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    // Decode a sequence so that the state after one value (reference tables are per call) is hit too.
    while !buf.is_empty() {
        let before = buf.len();
        if amf3::decode(&mut buf).is_err() {
            break;
        }
        assert!(
            buf.len() < before,
            "AMF3 decode succeeded without consuming input"
        );
    }
});
