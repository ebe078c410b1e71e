//! AMF0 decoding never panics, and whatever decodes re-encodes into bytes that decode again.
//!
//! The second encoding must equal the first: decoding may normalise (lossy UTF-8, AMF3 values
//! mapped to AMF0), but after one round trip the encoding has to be a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rill_rtmp::amf0;

fuzz_target!(|data: &[u8]| {
    let Ok(values) = amf0::decode_all(data) else {
        return;
    };
    let encoded = amf0::encode_all(&values);
    let again = match amf0::decode_all(&encoded) {
        Ok(v) => v,
        Err(e) => panic!("re-encoded AMF0 does not decode: {e}"),
    };
    assert_eq!(
        again.len(),
        values.len(),
        "value count changed in a round trip"
    );
    assert_eq!(
        amf0::encode_all(&again),
        encoded,
        "AMF0 encoding is not a fixed point"
    );
});
