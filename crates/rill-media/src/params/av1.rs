//! AV1: the AV1CodecConfigurationRecord (`av1C`, AV1-ISOBMFF §2.3) and the sequence header OBU
//! in its configOBUs (AV1 spec §5.5), read far enough to get the profile, level, tier, bit depth,
//! maximum frame size and, when the encoder wrote timing info, the frame rate.

use super::bits::BitReader;
use super::{ParamsError, VideoParams};
use crate::codec::VideoCodec;

const WHAT: &str = "AV1";
/// obu_type of a sequence header.
const OBU_SEQUENCE_HEADER: u8 = 1;
/// seq_level_idx meaning "no level constraint".
const LEVEL_MAX: u8 = 31;

/// What an AV1 sequence header OBU says.
#[derive(Debug, Clone, PartialEq)]
pub struct Av1SequenceHeader {
    pub seq_profile: u8,
    pub still_picture: bool,
    /// seq_level_idx and seq_tier of operating point 0.
    pub seq_level_idx: u8,
    pub tier: bool,
    pub max_width: u32,
    pub max_height: u32,
    /// From timing_info when it declares an equal picture interval.
    pub fps: Option<f64>,
    /// From color_config; `None` when the header ends before it.
    pub bit_depth: Option<u8>,
}

/// Parses an `av1C` record. Without a sequence header in configOBUs (allowed by AV1-ISOBMFF),
/// the size is reported as 0x0 and the rest comes from the record's fixed fields. A body without
/// the `av1C` marker bit but starting with OBUs (some early Enhanced RTMP encoders) is read as
/// bare OBUs.
pub fn av1c_params(record: &[u8]) -> Result<VideoParams, ParamsError> {
    let first = *record.first().ok_or(ParamsError::Malformed(WHAT))?;
    if first & 0x80 == 0 {
        let seq = find_sequence_header(record)?.ok_or(ParamsError::Malformed(WHAT))?;
        let seq = parse_sequence_header(seq)?;
        let bit_depth = seq.bit_depth.ok_or(ParamsError::Malformed(WHAT))?;
        return Ok(build(
            seq.seq_profile,
            seq.seq_level_idx,
            seq.tier,
            bit_depth,
            Some(&seq),
        ));
    }
    let fixed = record.get(..4).ok_or(ParamsError::Malformed(WHAT))?;
    if first & 0x7F != 1 {
        return Err(ParamsError::Malformed(WHAT));
    }
    let profile = fixed[1] >> 5;
    let level_idx = fixed[1] & 0x1F;
    let tier = fixed[2] & 0x80 != 0;
    let high_bitdepth = fixed[2] & 0x40 != 0;
    let twelve_bit = fixed[2] & 0x20 != 0;
    let bit_depth = match (high_bitdepth, twelve_bit) {
        (false, _) => 8,
        (true, false) => 10,
        (true, true) => 12,
    };
    let seq = match find_sequence_header(&record[4..])? {
        Some(obu) => Some(parse_sequence_header(obu)?),
        None => None,
    };
    Ok(match &seq {
        // The sequence header is authoritative; av1C merely repeats it.
        Some(s) => build(
            s.seq_profile,
            s.seq_level_idx,
            s.tier,
            s.bit_depth.unwrap_or(bit_depth),
            Some(s),
        ),
        None => build(profile, level_idx, tier, bit_depth, None),
    })
}

fn build(
    profile: u8,
    level_idx: u8,
    tier: bool,
    bit_depth: u8,
    seq: Option<&Av1SequenceHeader>,
) -> VideoParams {
    VideoParams {
        codec: VideoCodec::Av1,
        profile: profile_name(profile).map(str::to_owned),
        level: level(level_idx),
        width: seq.map_or(0, |s| s.max_width),
        height: seq.map_or(0, |s| s.max_height),
        fps: seq.and_then(|s| s.fps),
        codec_string: Some(format!(
            "av01.{profile}.{level_idx:02}{}.{bit_depth:02}",
            if tier { 'H' } else { 'M' }
        )),
    }
}

/// The level number of a seq_level_idx (AV1 Annex A.3): X.Y with X = 2 + idx / 4, Y = idx % 4.
pub fn level(seq_level_idx: u8) -> Option<f64> {
    if seq_level_idx >= LEVEL_MAX {
        return None;
    }
    let tenths = 20 + 10 * u32::from(seq_level_idx >> 2) + u32::from(seq_level_idx & 3);
    Some(f64::from(tenths) / 10.0)
}

/// The profile name of a seq_profile, as ffprobe shows it.
pub fn profile_name(seq_profile: u8) -> Option<&'static str> {
    match seq_profile {
        0 => Some("Main"),
        1 => Some("High"),
        2 => Some("Professional"),
        _ => None,
    }
}

/// leb128() of AV1 §4.10.5: at most 8 bytes, value within 32 bits.
fn leb128(data: &[u8], pos: &mut usize) -> Result<usize, ParamsError> {
    let mut value: u64 = 0;
    for i in 0..8 {
        let b = *data.get(*pos).ok_or(ParamsError::Malformed(WHAT))?;
        *pos += 1;
        value |= u64::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return usize::try_from(value)
                .ok()
                .filter(|&v| v <= u32::MAX as usize)
                .ok_or(ParamsError::Malformed(WHAT));
        }
    }
    Err(ParamsError::Malformed(WHAT))
}

/// The payload of the first sequence header OBU in a sequence of OBUs.
fn find_sequence_header(mut data: &[u8]) -> Result<Option<&[u8]>, ParamsError> {
    while let Some(&header) = data.first() {
        if header & 0x80 != 0 {
            return Err(ParamsError::Malformed(WHAT));
        }
        let obu_type = (header >> 3) & 0x0F;
        let has_extension = header & 0x04 != 0;
        let has_size = header & 0x02 != 0;
        let mut pos = 1 + usize::from(has_extension);
        if pos > data.len() {
            return Err(ParamsError::Malformed(WHAT));
        }
        let size = if has_size {
            leb128(data, &mut pos)?
        } else {
            data.len() - pos
        };
        let end = pos.checked_add(size).ok_or(ParamsError::Malformed(WHAT))?;
        let payload = data.get(pos..end).ok_or(ParamsError::Malformed(WHAT))?;
        if obu_type == OBU_SEQUENCE_HEADER {
            return Ok(Some(payload));
        }
        data = &data[end..];
    }
    Ok(None)
}

/// sequence_header_obu(), AV1 §5.5.1.
pub fn parse_sequence_header(payload: &[u8]) -> Result<Av1SequenceHeader, ParamsError> {
    let mut r = BitReader::new(payload, WHAT);
    let seq_profile = r.u8(3)?;
    if seq_profile > 2 {
        return Err(r.malformed());
    }
    let still_picture = r.flag()?;
    let reduced = r.flag()?;
    let mut fps = None;
    let seq_level_idx;
    let mut tier = false;
    if reduced {
        seq_level_idx = r.u8(5)?;
    } else {
        let timing_info_present = r.flag()?;
        let mut decoder_model_info_present = false;
        let mut buffer_delay_length = 0;
        if timing_info_present {
            let num_units_in_display_tick = r.bits(32)?;
            let time_scale = r.bits(32)?;
            if r.flag()? {
                let ticks_per_picture = u64::from(r.uvlc()?) + 1;
                let period = u64::from(num_units_in_display_tick) * ticks_per_picture;
                if period > 0 && time_scale > 0 {
                    fps = Some(f64::from(time_scale) / period as f64);
                }
            }
            decoder_model_info_present = r.flag()?;
            if decoder_model_info_present {
                buffer_delay_length = r.bits(5)? + 1;
                r.skip(32 + 5 + 5)?;
            }
        }
        let initial_display_delay_present = r.flag()?;
        let operating_points = r.bits(5)? + 1;
        let mut first = None;
        for _ in 0..operating_points {
            let _idc = r.bits(12)?;
            let idx = r.u8(5)?;
            let t = idx > 7 && r.flag()?;
            if decoder_model_info_present && r.flag()? {
                r.skip(2 * buffer_delay_length as usize + 1)?;
            }
            if initial_display_delay_present && r.flag()? {
                r.skip(4)?;
            }
            first.get_or_insert((idx, t));
        }
        // The loop ran at least once, so `first` is set; fall back to "unconstrained" anyway.
        let (idx, t) = first.unwrap_or((LEVEL_MAX, false));
        seq_level_idx = idx;
        tier = t;
    }
    let width_bits = r.bits(4)? + 1;
    let height_bits = r.bits(4)? + 1;
    let max_width = u64::from(r.bits(width_bits)?) + 1;
    let max_height = u64::from(r.bits(height_bits)?) + 1;
    let bit_depth = color_bit_depth(&mut r, reduced, seq_profile).ok();
    Ok(Av1SequenceHeader {
        seq_profile,
        still_picture,
        seq_level_idx,
        tier,
        // At most 16 bits each, plus one: always fits.
        max_width: u32::try_from(max_width).map_err(|_| r.malformed())?,
        max_height: u32::try_from(max_height).map_err(|_| r.malformed())?,
        fps,
        bit_depth,
    })
}

/// Walks from frame_id_numbers_present_flag to color_config's bit depth (AV1 §5.5.1, §5.5.2).
fn color_bit_depth(
    r: &mut BitReader<'_>,
    reduced: bool,
    seq_profile: u8,
) -> Result<u8, ParamsError> {
    if !reduced && r.flag()? {
        // delta_frame_id_length_minus_2, additional_frame_id_length_minus_1.
        r.skip(7)?;
    }
    // use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter.
    r.skip(3)?;
    if !reduced {
        // interintra, masked compound, warped motion, dual filter.
        r.skip(4)?;
        let order_hint = r.flag()?;
        if order_hint {
            r.skip(2)?;
        }
        let force_screen_content_tools = if r.flag()? { 2 } else { r.bits(1)? };
        if force_screen_content_tools > 0 && !r.flag()? {
            r.skip(1)?;
        }
        if order_hint {
            r.skip(3)?;
        }
    }
    // superres, cdef, restoration.
    r.skip(3)?;
    let high_bitdepth = r.flag()?;
    Ok(if seq_profile == 2 && high_bitdepth {
        if r.flag()? {
            12
        } else {
            10
        }
    } else if high_bitdepth {
        10
    } else {
        8
    })
}

#[cfg(test)]
mod tests {
    use super::super::bits::tests::{facts, hex, BitWriter};
    use super::super::samples;
    use super::*;

    fn params(h: &str) -> VideoParams {
        av1c_params(&hex(h)).unwrap()
    }

    // Expected values from ffprobe -show_streams on the MP4 files (ffprobe's level is
    // seq_level_idx). The frame rate is only in the bitstream when the encoder writes timing
    // info, which libaom and SVT-AV1 do not by default. The codec strings are those ffmpeg's DASH
    // muxer wrote for the same streams.

    #[test]
    fn libaom_720p30() {
        let p = params(samples::AV1_720P30_AOM);
        assert_eq!(p.codec, VideoCodec::Av1);
        assert_eq!(
            facts(&p),
            (
                Some("Main"),
                Some(3.1),
                (1280, 720),
                None,
                Some("av01.0.05M.08")
            )
        );
    }

    #[test]
    fn svt_854x480() {
        let p = params(samples::AV1_480P25_SVT);
        assert_eq!(p.profile.as_deref(), Some("Main"));
        assert_eq!(p.level, Some(3.0));
        assert_eq!((p.width, p.height), (854, 480));
        assert_eq!(p.codec_string.as_deref(), Some("av01.0.04M.08"));
    }

    #[test]
    fn libaom_with_timing_info() {
        let p = params(samples::AV1_480P25_AOM_TIMING);
        assert_eq!((p.width, p.height), (854, 480));
        assert_eq!(p.fps, Some(25.0));
        assert_eq!(p.level, Some(3.0));
    }

    #[test]
    fn libaom_1080p60_10bit() {
        let p = params(samples::AV1_1080P60_AOM_10BIT);
        assert_eq!(p.profile.as_deref(), Some("Main"));
        assert_eq!(p.level, Some(4.1));
        assert_eq!((p.width, p.height), (1920, 1080));
        assert_eq!(p.codec_string.as_deref(), Some("av01.0.09M.10"));
        let rec = hex(samples::AV1_1080P60_AOM_10BIT);
        let seq = parse_sequence_header(find_sequence_header(&rec[4..]).unwrap().unwrap()).unwrap();
        assert_eq!(seq.bit_depth, Some(10));
    }

    #[test]
    fn bare_obus_and_record_without_obus() {
        let rec = hex(samples::AV1_720P30_AOM);
        // A temporal delimiter, then the sequence header, without av1C around them.
        let mut bare = vec![0x12, 0x00];
        bare.extend_from_slice(&rec[4..]);
        let p = av1c_params(&bare).unwrap();
        assert_eq!((p.width, p.height), (1280, 720));
        assert_eq!(p.codec_string.as_deref(), Some("av01.0.05M.08"));
        // av1C alone: level, tier and depth from the fixed fields, size unknown.
        let p = av1c_params(&[0x81, 0x4D, 0xC0, 0x00]).unwrap();
        assert_eq!(p.profile.as_deref(), Some("Professional"));
        assert_eq!(p.level, Some(5.1));
        assert_eq!((p.width, p.height), (0, 0));
        assert_eq!(p.codec_string.as_deref(), Some("av01.2.13H.10"));
        let p = av1c_params(&[0x81, 0x3F, 0x60, 0x00]).unwrap();
        assert_eq!(p.level, None);
        assert_eq!(p.codec_string.as_deref(), Some("av01.1.31M.12"));
    }

    #[test]
    fn hand_built_headers() {
        // Reduced still picture header: profile 1, level idx 12, 4:4:4 high bit depth.
        let mut w = BitWriter::new();
        w.bits(3, 1).bit(true).bit(true).bits(5, 12);
        w.bits(4, 11).bits(4, 11).bits(12, 3839).bits(12, 2159);
        w.bits(3, 0).bits(3, 0).bit(true);
        let seq = parse_sequence_header(&w.finish()).unwrap();
        assert!(seq.still_picture);
        assert_eq!(
            (seq.seq_profile, seq.seq_level_idx, seq.tier),
            (1, 12, false)
        );
        assert_eq!((seq.max_width, seq.max_height), (3840, 2160));
        assert_eq!(seq.bit_depth, Some(10));

        // Full header with timing, a decoder model and two operating points.
        let mut w = BitWriter::new();
        w.bits(3, 2).bit(false).bit(false).bit(true);
        w.bits(32, 1001).bits(32, 120_000).bit(true).ue(1); // 2 ticks a picture
        w.bit(true).bits(5, 9).bits(32, 1).bits(5, 4).bits(5, 4); // decoder model, 10-bit delays
        w.bit(true).bits(5, 1);
        w.bits(12, 0x101)
            .bits(5, 16)
            .bit(true)
            .bit(true)
            .bits(21, 0)
            .bit(true)
            .bits(4, 3);
        w.bits(12, 0x103).bits(5, 4).bit(false).bit(false);
        w.bits(4, 10).bits(4, 10).bits(11, 1919).bits(11, 1079);
        w.bit(true)
            .bits(7, 0)
            .bits(3, 0)
            .bits(4, 0)
            .bit(true)
            .bits(2, 0);
        // screen content forced, integer mv not chosen but forced off, 7 order hint bits.
        w.bit(false).bit(true).bit(false).bit(false).bits(3, 6);
        w.bits(3, 0).bit(true).bit(true); // 12-bit
        let seq = parse_sequence_header(&w.finish()).unwrap();
        assert_eq!((seq.seq_level_idx, seq.tier), (16, true));
        assert_eq!((seq.max_width, seq.max_height), (1920, 1080));
        assert_eq!(seq.fps, Some(120_000.0 / 2002.0));
        assert_eq!(seq.bit_depth, Some(12));
    }

    #[test]
    fn malformed_inputs() {
        assert!(av1c_params(&[]).is_err());
        assert!(av1c_params(&[0x82, 0, 0, 0]).is_err(), "version 2");
        assert!(av1c_params(&[0x81, 0, 0]).is_err());
        // OBU size running past the end, forbidden bit, oversize leb128.
        assert!(av1c_params(&[0x81, 0, 0, 0, 0x0A, 0x05, 0]).is_err());
        assert!(av1c_params(&[0x81, 0, 0, 0, 0x8A, 0x00]).is_err());
        let mut long = vec![0x81, 0, 0, 0, 0x0A];
        long.extend_from_slice(&[0xFF; 9]);
        assert!(av1c_params(&long).is_err());
        assert!(
            parse_sequence_header(&[0xE0, 0, 0, 0]).is_err(),
            "profile 7"
        );
        assert_eq!(level(0), Some(2.0));
        assert_eq!(level(23), Some(7.3));
        assert_eq!(level(31), None);
    }
}
