//! Opus: the identification header (`OpusHead`, RFC 7845 §5.1) that an Enhanced RTMP Opus
//! SequenceStart carries, and, leniently, the MP4 `dOps` box payload some muxers send instead.
//!
//! Opus always decodes at 48 kHz; the header's input sample rate is only the rate of the
//! original source, so 48000 is reported whatever it says.

use super::{AudioParams, ParamsError};
use crate::codec::AudioCodec;

const WHAT: &str = "Opus";
const MAGIC: &[u8; 8] = b"OpusHead";
/// The rate every Opus decoder outputs.
pub const OPUS_RATE: u32 = 48_000;

/// Parses an `OpusHead` (or `dOps` payload) into [`AudioParams`].
pub fn opus_head_params(head: &[u8]) -> Result<AudioParams, ParamsError> {
    let channels = if let Some(rest) = head.strip_prefix(MAGIC) {
        // version (major version 0 is the only one defined; minor ones stay compatible),
        // channel count, pre-skip, input rate, gain, mapping family.
        let fixed = rest.get(..11).ok_or(ParamsError::Malformed(WHAT))?;
        if fixed[0] >> 4 != 0 {
            return Err(ParamsError::Malformed(WHAT));
        }
        fixed[1]
    } else {
        // dOps: Version 0, OutputChannelCount, PreSkip, InputSampleRate, OutputGain (BE), family.
        let fixed = head.get(..11).ok_or(ParamsError::Malformed(WHAT))?;
        if fixed[0] != 0 {
            return Err(ParamsError::Malformed(WHAT));
        }
        fixed[1]
    };
    if channels == 0 {
        return Err(ParamsError::Malformed(WHAT));
    }
    Ok(AudioParams {
        codec: AudioCodec::Opus,
        profile: None,
        sample_rate: OPUS_RATE,
        channels,
        codec_string: Some("opus".to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::super::bits::tests::hex;
    use super::super::samples;
    use super::*;

    // ffprobe: opus, 48000 Hz, 2 channels / 1 channel (input rate 24000 in the header).

    #[test]
    fn libopus_heads() {
        let p = opus_head_params(&hex(samples::OPUS_HEAD_STEREO)).unwrap();
        assert_eq!(p.codec, AudioCodec::Opus);
        assert_eq!((p.sample_rate, p.channels), (48_000, 2));
        assert_eq!(p.codec_string.as_deref(), Some("opus"));
        assert_eq!(p.profile, None);
        let p = opus_head_params(&hex(samples::OPUS_HEAD_MONO_24K)).unwrap();
        assert_eq!((p.sample_rate, p.channels), (48_000, 1));
    }

    #[test]
    fn dops_and_errors() {
        // dOps for 6 channels, family 1, with its mapping table.
        let dops = [
            0, 6, 0x01, 0x38, 0, 0, 0xBB, 0x80, 0, 0, 1, 4, 2, 0, 4, 1, 2, 3, 5,
        ];
        assert_eq!(opus_head_params(&dops).unwrap().channels, 6);
        assert!(opus_head_params(b"OpusHead\x01\x02").is_err());
        assert!(opus_head_params(b"OpusHead\x10\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00").is_err());
        assert!(opus_head_params(b"OpusHead\x01\x00\x38\x01\x80\xbb\x00\x00\x00\x00\x00").is_err());
        assert!(opus_head_params(&[1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(opus_head_params(&[]).is_err());
    }
}
