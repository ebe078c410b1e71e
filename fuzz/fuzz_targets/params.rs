//! Codec parameter parsing never panics on any video or audio tag body, and the levels and
//! frame rates it reports are always finite and positive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rill_media::params::{audio_params, video_params};

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = video_params(data) {
        // A parsed level is always a small positive number, never NaN or infinite.
        if let Some(level) = v.level {
            assert!(level.is_finite() && level > 0.0, "level {level}");
        }
        if let Some(fps) = v.fps {
            assert!(fps.is_finite() && fps > 0.0, "fps {fps}");
        }
    }
    let _ = audio_params(data);
});
