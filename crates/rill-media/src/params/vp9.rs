//! VP9 (and VP8): the VPCodecConfigurationRecord (`vpcC`, "VP Codec ISO Media File Format
//! Binding" §2.2), carried whole, version and flags included, in an Enhanced RTMP SequenceStart.
//!
//! The record has profile, level, bit depth and chroma subsampling but no picture size: that only
//! appears in the uncompressed header of keyframes. The size is therefore reported as 0x0 and
//! the caller fills it from `onMetaData` or the first keyframe.

use super::{ParamsError, VideoParams};
use crate::codec::VideoCodec;

/// Parses a `vpcC` record (version 1, or the draft version 0 whose first three fields match).
/// `codec` selects the codec string prefix: `vp09` or `vp08`.
pub fn vpcc_params(record: &[u8], codec: VideoCodec) -> Result<VideoParams, ParamsError> {
    let what = if codec == VideoCodec::Vp8 {
        "VP8"
    } else {
        "VP9"
    };
    // version (1), flags (3), profile, level, bitDepth/chroma/range, then colour fields that
    // version 0 laid out differently and that are not needed here.
    let b = record.get(..7).ok_or(ParamsError::Malformed(what))?;
    if b[0] > 1 {
        return Err(ParamsError::Malformed(what));
    }
    let profile = b[4];
    let level_code = b[5];
    let bit_depth = b[6] >> 4;
    if !matches!(bit_depth, 8 | 10 | 12) || (codec == VideoCodec::Vp9 && profile > 3) {
        return Err(ParamsError::Malformed(what));
    }
    let prefix = if codec == VideoCodec::Vp8 {
        "vp08"
    } else {
        "vp09"
    };
    Ok(VideoParams {
        codec,
        profile: Some(format!("Profile {profile}")),
        // 0 means "unspecified" in practice (the defined levels start at 1 = 1.0 ... 62 = 6.2).
        level: (level_code != 0).then(|| f64::from(level_code) / 10.0),
        width: 0,
        height: 0,
        fps: None,
        codec_string: Some(format!(
            "{prefix}.{profile:02}.{level_code:02}.{bit_depth:02}"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::super::bits::tests::hex;
    use super::super::samples;
    use super::*;

    // ffprobe reports "Profile 0"/"Profile 1" for these files (and no level: it does not read
    // the vpcC level; libvpx wrote 31 and 30). The codec strings match ffmpeg's DASH muxer.

    #[test]
    fn libvpx_720p_profile0() {
        let p = vpcc_params(&hex(samples::VP9_720P30), VideoCodec::Vp9).unwrap();
        assert_eq!(p.codec, VideoCodec::Vp9);
        assert_eq!(p.profile.as_deref(), Some("Profile 0"));
        assert_eq!(p.level, Some(3.1));
        assert_eq!((p.width, p.height, p.fps), (0, 0, None));
        assert_eq!(p.codec_string.as_deref(), Some("vp09.00.31.08"));
    }

    #[test]
    fn libvpx_444_profile1() {
        let p = vpcc_params(&hex(samples::VP9_480P25_444), VideoCodec::Vp9).unwrap();
        assert_eq!(p.profile.as_deref(), Some("Profile 1"));
        assert_eq!(p.level, Some(3.0));
        assert_eq!(p.codec_string.as_deref(), Some("vp09.01.30.08"));
    }

    #[test]
    fn hand_built_records() {
        let p = vpcc_params(&[1, 0, 0, 0, 2, 51, 0xA2, 9, 16, 9, 0, 0], VideoCodec::Vp9).unwrap();
        assert_eq!(p.profile.as_deref(), Some("Profile 2"));
        assert_eq!(p.level, Some(5.1));
        assert_eq!(p.codec_string.as_deref(), Some("vp09.02.51.10"));
        let p = vpcc_params(&[1, 0, 0, 0, 0, 0, 0x80, 1, 1, 1, 0, 0], VideoCodec::Vp8).unwrap();
        assert_eq!(p.level, None);
        assert_eq!(p.codec_string.as_deref(), Some("vp08.00.00.08"));
        assert_eq!(
            vpcc_params(&[1, 0, 0, 0, 0, 10], VideoCodec::Vp9),
            Err(ParamsError::Malformed("VP9"))
        );
        assert!(vpcc_params(&[2, 0, 0, 0, 0, 10, 0x80], VideoCodec::Vp9).is_err());
        assert!(vpcc_params(&[1, 0, 0, 0, 0, 10, 0x90], VideoCodec::Vp9).is_err());
        assert!(vpcc_params(&[1, 0, 0, 0, 4, 10, 0x80], VideoCodec::Vp9).is_err());
    }
}
