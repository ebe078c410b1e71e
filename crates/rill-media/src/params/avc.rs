//! H.264/AVC: the AVCDecoderConfigurationRecord (`avcC`, ISO/IEC 14496-15 §5.3.3) and the
//! sequence parameter set it carries (ITU-T H.264 §7.3.2.1.1), read far enough to get the
//! profile, level, cropped picture size, VUI frame rate and reorder depth.

use super::bits::{unescape_rbsp, BitReader};
use super::sps::{chroma_subsampling, cropped, skip_vui_description, usable_rate, vui_timing_info};
use super::{ParamsError, VideoParams};
use crate::codec::VideoCodec;

const WHAT: &str = "AVC";
/// The largest decoded picture buffer, and so reorder depth, any H.264 level allows (§A.3.1).
const MAX_DPB_FRAMES: u32 = 16;

/// What the first SPS of an `avcC` says.
#[derive(Debug, Clone, PartialEq)]
pub struct AvcSps {
    pub profile_idc: u8,
    /// The constraint_set0..5 flags and reserved bits, as the byte that follows profile_idc.
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub chroma_format_idc: u32,
    pub separate_colour_plane: bool,
    pub bit_depth_luma: u32,
    pub frame_mbs_only: bool,
    pub width: u32,
    pub height: u32,
    /// `time_scale / (2 * num_units_in_tick)` from the VUI, when present.
    pub fps: Option<f64>,
    pub pic_order_cnt_type: u32,
    /// `max_num_reorder_frames` from the VUI's bitstream restriction, when it has one.
    pub max_num_reorder_frames: Option<u32>,
    /// The VUI is cut short or invalid after its timing info (HRD parameters, bitstream
    /// restriction): the frame rate still counts, but `max_num_reorder_frames` is unknown.
    pub vui_truncated: bool,
}

impl AvcSps {
    /// The reorder depth: how many pictures may precede a picture in decode order and follow it
    /// in output order. `max_num_reorder_frames` when the VUI's bitstream restriction gives it;
    /// without one, 0 where the stream cannot reorder at all (Baseline-compatible profiles have
    /// no B slices, and `pic_order_cnt_type` 2 ties output order to decode order), else the
    /// largest value the DPB allows. Fails when the VUI is cut short before it could tell.
    pub fn reorder_depth(&self) -> Result<u32, ParamsError> {
        if self.vui_truncated {
            return Err(ParamsError::Malformed(WHAT));
        }
        if let Some(depth) = self.max_num_reorder_frames {
            return Ok(depth);
        }
        let baseline = self.profile_idc == 66 || self.constraint_flags & 0x40 != 0;
        if baseline || self.pic_order_cnt_type == 2 {
            return Ok(0);
        }
        Ok(MAX_DPB_FRAMES)
    }
}

/// Parses an `avcC` record (the body of a legacy AVC sequence header after its 5-byte header).
pub fn avcc_params(record: &[u8]) -> Result<VideoParams, ParamsError> {
    let sps = first_sps(record)?;
    let sps = parse_sps(&unescape_rbsp(sps))?;
    Ok(VideoParams {
        codec: VideoCodec::Avc,
        profile: profile_name(sps.profile_idc, sps.constraint_flags).map(str::to_owned),
        // level_idc is ten times the level (level 1b reads as 1.1 or 0.9, as its idc says).
        level: (sps.level_idc != 0).then(|| f64::from(sps.level_idc) / 10.0),
        width: sps.width,
        height: sps.height,
        fps: sps.fps,
        codec_string: Some(format!(
            "avc1.{:02x}{:02x}{:02x}",
            sps.profile_idc, sps.constraint_flags, sps.level_idc
        )),
    })
}

/// The first SPS NAL unit of an `avcC`, header byte included.
fn first_sps(record: &[u8]) -> Result<&[u8], ParamsError> {
    let malformed = ParamsError::Malformed(WHAT);
    // configurationVersion, profile, compatibility, level, lengthSizeMinusOne, numOfSPS.
    let header = record.get(..6).ok_or(ParamsError::Malformed(WHAT))?;
    if header[0] != 1 {
        return Err(malformed);
    }
    if header[5] & 0x1F == 0 {
        return Err(malformed);
    }
    let len_bytes = record.get(6..8).ok_or(ParamsError::Malformed(WHAT))?;
    let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
    let nal = record.get(8..8 + len).ok_or(ParamsError::Malformed(WHAT))?;
    if nal.first().map(|b| b & 0x1F) != Some(7) {
        return Err(malformed);
    }
    Ok(nal)
}

/// Profiles whose SPS carries chroma format, bit depths and scaling matrices (H.264 §7.3.2.1.1).
fn has_chroma_info(profile_idc: u8) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

/// Parses an SPS RBSP (emulation prevention already removed), NAL header byte included.
pub fn parse_sps(rbsp: &[u8]) -> Result<AvcSps, ParamsError> {
    let mut r = BitReader::new(rbsp, WHAT);
    let nal_header = r.u8(8)?;
    if nal_header & 0x1F != 7 {
        return Err(r.malformed());
    }
    let profile_idc = r.u8(8)?;
    let constraint_flags = r.u8(8)?;
    let level_idc = r.u8(8)?;
    let _sps_id = r.ue()?;

    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    let mut bit_depth_luma = 8;
    if has_chroma_info(profile_idc) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return Err(r.malformed());
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.flag()?;
        }
        let luma_minus8 = r.ue()?;
        let _chroma_minus8 = r.ue()?;
        if luma_minus8 > 6 {
            return Err(r.malformed());
        }
        bit_depth_luma = 8 + luma_minus8;
        let _qpprime_y_zero_transform_bypass = r.flag()?;
        if r.flag()? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }

    let _log2_max_frame_num_minus4 = r.ue()?;
    let pic_order_cnt_type = r.ue()?;
    match pic_order_cnt_type {
        0 => {
            let _log2_max_poc_lsb_minus4 = r.ue()?;
        }
        1 => {
            let _delta_pic_order_always_zero = r.flag()?;
            let _offset_for_non_ref_pic = r.se()?;
            let _offset_for_top_to_bottom_field = r.se()?;
            let cycle = r.ue()?;
            // The spec caps the cycle at 255 entries; a larger count is garbage.
            if cycle > 255 {
                return Err(r.malformed());
            }
            for _ in 0..cycle {
                r.se()?;
            }
        }
        2 => {}
        _ => return Err(r.malformed()),
    }
    let max_num_ref_frames = r.ue()?;
    let _gaps_in_frame_num_allowed = r.flag()?;
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.flag()?;
    if !frame_mbs_only {
        let _mb_adaptive_frame_field = r.flag()?;
    }
    let _direct_8x8_inference = r.flag()?;
    let (mut crop_left, mut crop_right, mut crop_top, mut crop_bottom) = (0, 0, 0, 0);
    if r.flag()? {
        crop_left = u64::from(r.ue()?);
        crop_right = u64::from(r.ue()?);
        crop_top = u64::from(r.ue()?);
        crop_bottom = u64::from(r.ue()?);
    }

    // Cropping is counted in chroma sample units (H.264 equations 7-19 to 7-22); a field-coded
    // stream's map units are field macroblock pairs, hence the factor of two.
    let (sub_width, sub_height) = chroma_subsampling(chroma_format_idc, separate_colour_plane);
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let width = cropped(&r, width_mbs * 16, sub_width, crop_left, crop_right)?;
    let height = cropped(
        &r,
        height_map_units * 16 * field_factor,
        sub_height * field_factor,
        crop_top,
        crop_bottom,
    )?;

    let (fps, max_num_reorder_frames) = if r.flag()? {
        read_vui(&mut r, max_num_ref_frames)?
    } else {
        (None, Ok(None))
    };

    Ok(AvcSps {
        profile_idc,
        constraint_flags,
        level_idc,
        chroma_format_idc,
        separate_colour_plane,
        bit_depth_luma,
        frame_mbs_only,
        width,
        height,
        fps,
        pic_order_cnt_type,
        vui_truncated: max_num_reorder_frames.is_err(),
        max_num_reorder_frames: max_num_reorder_frames.unwrap_or(None),
    })
}

/// scaling_list() of H.264 §7.3.2.1.1.1: only the syntax matters here, not the values.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), ParamsError> {
    let mut last = 8i64;
    let mut next = 8i64;
    for _ in 0..size {
        if next != 0 {
            let delta = i64::from(r.se()?);
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// Reads the VUI (H.264 §E.1.1): the frame rate from its timing info, then
/// `max_num_reorder_frames` from its bitstream restriction. A VUI cut short (or invalid) after the
/// timing info still gives the frame rate; only the second value is then an error.
#[allow(clippy::type_complexity)]
fn read_vui(
    r: &mut BitReader<'_>,
    max_num_ref_frames: u32,
) -> Result<(Option<f64>, Result<Option<u32>, ParamsError>), ParamsError> {
    skip_vui_description(r)?;
    let timing = vui_timing_info(r)?;
    // A tick is a field period (H.264 §E.2.1), so a frame lasts two of them.
    let fps = usable_rate(timing).map(|(num_units_in_tick, time_scale)| {
        f64::from(time_scale) / (2.0 * f64::from(num_units_in_tick))
    });
    Ok((
        fps,
        vui_reorder_frames(r, timing.is_some(), max_num_ref_frames),
    ))
}

/// The VUI after the timing's two numbers: fixed_frame_rate_flag, the HRD parameters, and the
/// bitstream restriction with `max_num_reorder_frames`.
fn vui_reorder_frames(
    r: &mut BitReader<'_>,
    timing_present: bool,
    max_num_ref_frames: u32,
) -> Result<Option<u32>, ParamsError> {
    if timing_present {
        let _fixed_frame_rate = r.flag()?;
    }
    let nal_hrd = r.flag()?;
    if nal_hrd {
        skip_hrd_parameters(r)?;
    }
    let vcl_hrd = r.flag()?;
    if vcl_hrd {
        skip_hrd_parameters(r)?;
    }
    if nal_hrd || vcl_hrd {
        let _low_delay_hrd = r.flag()?;
    }
    let _pic_struct_present = r.flag()?;
    if !r.flag()? {
        return Ok(None);
    }
    let _motion_vectors_over_pic_boundaries = r.flag()?;
    // max_bytes_per_pic_denom, max_bits_per_mb_denom, log2_max_mv_length_{horizontal,vertical}.
    for _ in 0..4 {
        r.ue()?;
    }
    let max_num_reorder_frames = r.ue()?;
    let max_dec_frame_buffering = r.ue()?;
    // §E.2.1: max_num_reorder_frames <= max_dec_frame_buffering, which is >= max_num_ref_frames.
    if max_num_reorder_frames > max_dec_frame_buffering
        || max_dec_frame_buffering < max_num_ref_frames
    {
        return Err(r.malformed());
    }
    Ok(Some(max_num_reorder_frames))
}

/// hrd_parameters(), H.264 §E.1.2: parsed only to get past it.
fn skip_hrd_parameters(r: &mut BitReader<'_>) -> Result<(), ParamsError> {
    let cpb_cnt_minus1 = r.ue()?;
    if cpb_cnt_minus1 > 31 {
        return Err(r.malformed());
    }
    r.skip(8)?; // bit_rate_scale, cpb_size_scale
    for _ in 0..=cpb_cnt_minus1 {
        r.ue()?; // bit_rate_value_minus1
        r.ue()?; // cpb_size_value_minus1
        r.skip(1)?; // cbr_flag
    }
    // initial_cpb_removal_delay_length_minus1, cpb_removal_delay_length_minus1,
    // dpb_output_delay_length_minus1, time_offset_length: 5 bits each.
    r.skip(20)
}

/// The profile name players show, ffprobe-style.
pub fn profile_name(profile_idc: u8, constraint_flags: u8) -> Option<&'static str> {
    let set1 = constraint_flags & 0x40 != 0;
    let set3 = constraint_flags & 0x10 != 0;
    Some(match profile_idc {
        66 if set1 => "Constrained Baseline",
        66 => "Baseline",
        77 => "Main",
        88 => "Extended",
        100 => "High",
        110 if set3 => "High 10 Intra",
        110 => "High 10",
        122 if set3 => "High 4:2:2 Intra",
        122 => "High 4:2:2",
        244 if set3 => "High 4:4:4 Intra",
        244 => "High 4:4:4 Predictive",
        44 => "CAVLC 4:4:4",
        118 => "Multiview High",
        128 => "Stereo High",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::bits::tests::{escape_rbsp, facts, hex, BitWriter};
    use super::super::samples;
    use super::*;

    fn record(body_hex: &str) -> Vec<u8> {
        hex(body_hex)[5..].to_vec()
    }

    fn params(body_hex: &str) -> VideoParams {
        avcc_params(&record(body_hex)).unwrap()
    }

    // Expected values are ffprobe -show_streams on the FLV files the samples came from; the codec
    // strings are those ffmpeg's DASH muxer wrote for the same streams.

    #[test]
    fn x264_720p30_high() {
        let p = params(samples::AVC_720P30_HIGH);
        assert_eq!(p.codec, VideoCodec::Avc);
        assert_eq!(
            facts(&p),
            (
                Some("High"),
                Some(3.1),
                (1280, 720),
                Some(30.0),
                Some("avc1.64001f")
            )
        );
    }

    #[test]
    fn x264_854x480_constrained_baseline() {
        let p = params(samples::AVC_480P25_BASELINE);
        assert_eq!(
            facts(&p),
            (
                Some("Constrained Baseline"),
                Some(3.0),
                (854, 480),
                Some(25.0),
                Some("avc1.42c01e")
            )
        );
    }

    #[test]
    fn x264_1080p60_main_is_cropped_from_1088() {
        let p = params(samples::AVC_1080P60_MAIN);
        assert_eq!(
            facts(&p),
            (
                Some("Main"),
                Some(4.2),
                (1920, 1080),
                Some(60.0),
                Some("avc1.4d402a")
            )
        );
    }

    #[test]
    fn x264_1080_444_ntsc_rate() {
        let p = params(samples::AVC_1080P23_444);
        assert_eq!(
            facts(&p),
            (
                Some("High 4:4:4 Predictive"),
                Some(4.0),
                (1920, 1080),
                Some(24000.0 / 1001.0),
                Some("avc1.f40028")
            )
        );
        let sps = parse_sps(&unescape_rbsp(
            first_sps(&record(samples::AVC_1080P23_444)).unwrap(),
        ))
        .unwrap();
        assert_eq!(sps.chroma_format_idc, 3);
        assert!(!sps.separate_colour_plane);
    }

    #[test]
    fn x264_480p30_high10_and_422() {
        let p = params(samples::AVC_480P30_HIGH10);
        assert_eq!(p.profile.as_deref(), Some("High 10"));
        assert_eq!(p.level, Some(3.1));
        assert_eq!((p.width, p.height), (854, 480));
        assert_eq!(p.fps, Some(30.0));
        let sps = parse_sps(&unescape_rbsp(
            first_sps(&record(samples::AVC_480P30_HIGH10)).unwrap(),
        ))
        .unwrap();
        assert_eq!(sps.bit_depth_luma, 10);

        let p = params(samples::AVC_360P30_422);
        assert_eq!(p.profile.as_deref(), Some("High 4:2:2"));
        assert_eq!(p.level, Some(3.0));
        assert_eq!((p.width, p.height), (640, 360));
        assert_eq!(p.fps, Some(30.0));
    }

    #[test]
    fn x264_1080i25_field_coded() {
        let p = params(samples::AVC_1080I25_HIGH);
        assert_eq!(p.profile.as_deref(), Some("High"));
        assert_eq!(p.level, Some(4.0));
        assert_eq!((p.width, p.height), (1920, 1080));
        // ffprobe's r_frame_rate is 25/1: x264 signals the field rate as ticks.
        assert_eq!(p.fps, Some(25.0));
        let sps = parse_sps(&unescape_rbsp(
            first_sps(&record(samples::AVC_1080I25_HIGH)).unwrap(),
        ))
        .unwrap();
        assert!(!sps.frame_mbs_only);
    }

    /// Builds an avcC around a hand-written SPS.
    fn avcc_with(sps_rbsp: &[u8]) -> Vec<u8> {
        let nal = escape_rbsp(sps_rbsp);
        let mut rec = vec![1, sps_rbsp[1], sps_rbsp[2], sps_rbsp[3], 0xFF, 0xE1];
        rec.extend_from_slice(&(nal.len() as u16).to_be_bytes());
        rec.extend_from_slice(&nal);
        rec.extend_from_slice(&[1, 0, 2, 0x68, 0xCE]);
        rec
    }

    #[test]
    fn hand_built_high_sps_with_scaling_lists_poc1_and_vui() {
        let mut w = BitWriter::new();
        w.bits(8, 0x67).bits(8, 100).bits(8, 0).bits(8, 40).ue(0);
        w.ue(1).ue(0).ue(0).bit(false); // 4:2:0, 8-bit, no bypass
        w.bit(true); // seq_scaling_matrix_present_flag
        for i in 0..8 {
            if i == 2 {
                w.bit(false);
                continue;
            }
            w.bit(true);
            let size = if i < 6 { 16 } else { 64 };
            if i == 7 {
                // delta -8 makes nextScale 0 at once: "use the default list", one code only.
                w.se(-8);
            } else {
                for j in 0..size {
                    w.se(if j % 2 == 0 { 3 } else { -2 });
                }
            }
        }
        w.ue(0); // log2_max_frame_num_minus4
        w.ue(1).bit(false).se(-3).se(2).ue(3).se(1).se(-1).se(5); // poc type 1
        w.ue(4).bit(false);
        w.ue(119).ue(67); // 1920 x 1088
        w.bit(true).bit(true); // frame_mbs_only, direct_8x8
        w.bit(true).ue(0).ue(0).ue(0).ue(4); // crop bottom 4 * 2
        w.bit(true); // vui
        w.bit(true).bits(8, 255).bits(16, 4).bits(16, 3); // extended SAR
        w.bit(true).bit(false); // overscan
        w.bit(true)
            .bits(3, 5)
            .bit(false)
            .bit(true)
            .bits(24, 0x010101);
        w.bit(true).ue(0).ue(0); // chroma loc
        w.bit(true).bits(32, 1001).bits(32, 60000).bit(true);
        let rbsp = w.finish_rbsp();
        let p = avcc_params(&avcc_with(&rbsp)).unwrap();
        assert_eq!((p.width, p.height), (1920, 1080));
        assert_eq!(p.fps, Some(60000.0 / 2002.0));
        assert_eq!(p.level, Some(4.0));
        assert_eq!(p.codec_string.as_deref(), Some("avc1.640028"));
        // The VUI ends after the timing info: the frame rate counts, the reorder depth is unknown.
        let sps = parse_sps(&rbsp).unwrap();
        assert!(sps.vui_truncated);
        assert_eq!(sps.reorder_depth(), Err(ParamsError::Malformed("AVC")));
    }

    #[test]
    fn reorder_depth_of_x264_samples() {
        // x264's B-pyramid declares two reordered pictures; Baseline has no B-frames.
        for (sample, depth) in [
            (samples::AVC_720P30_HIGH, 2),
            (samples::AVC_480P25_BASELINE, 0),
            (samples::AVC_1080P60_MAIN, 2),
            (samples::AVC_1080P23_444, 2),
            (samples::AVC_1080I25_HIGH, 2),
        ] {
            let sps = parse_sps(&unescape_rbsp(first_sps(&record(sample)).unwrap())).unwrap();
            assert!(sps.max_num_reorder_frames.is_some(), "{sample}");
            assert_eq!(sps.reorder_depth(), Ok(depth), "{sample}");
        }
    }

    /// A 16x16 SPS of `profile_idc`/`constraint_flags` with POC type `poc_type` (0 or 2) and
    /// `max_num_ref_frames` 1, written up to the vui_parameters_present_flag (not included).
    fn sps_before_vui(profile_idc: u64, constraint_flags: u64, poc_type: u32) -> BitWriter {
        let mut w = BitWriter::new();
        w.bits(8, 0x67)
            .bits(8, profile_idc)
            .bits(8, constraint_flags)
            .bits(8, 30)
            .ue(0);
        if has_chroma_info(profile_idc as u8) {
            w.ue(1).ue(0).ue(0).bit(false).bit(false);
        }
        w.ue(0).ue(poc_type);
        if poc_type == 0 {
            w.ue(0);
        }
        w.ue(1)
            .bit(false)
            .ue(0)
            .ue(0)
            .bit(true)
            .bit(true)
            .bit(false);
        w
    }

    /// A VUI with only timing info, two NAL HRD CPB specs, and a bitstream restriction.
    fn vui_with_restriction(w: &mut BitWriter, reorder: u32, dec_buffering: u32) {
        w.bit(true); // vui_parameters_present_flag
        w.bits(4, 0).bit(true).bits(32, 1).bits(32, 50).bit(true); // timing, fixed rate
        w.bit(true).ue(1).bits(4, 2).bits(4, 3); // NAL HRD: two CPB specs
        for _ in 0..2 {
            w.ue(5000).ue(8000).bit(false);
        }
        w.bits(20, 0x8421).bit(false); // four lengths, no VCL HRD
        w.bit(true).bit(false); // low_delay_hrd, pic_struct_present
        w.bit(true).bit(true).ue(2).ue(1).ue(16).ue(16); // bitstream_restriction
        w.ue(reorder).ue(dec_buffering);
    }

    #[test]
    fn reorder_depth_from_the_bitstream_restriction_past_hrd_parameters() {
        let mut w = sps_before_vui(100, 0, 0);
        vui_with_restriction(&mut w, 3, 4);
        let sps = parse_sps(&w.finish_rbsp()).unwrap();
        assert_eq!(sps.fps, Some(25.0));
        assert_eq!(sps.max_num_reorder_frames, Some(3));
        assert_eq!(sps.reorder_depth(), Ok(3));
        // More reordered pictures than the buffer holds, or a buffer smaller than the
        // references: the restriction is invalid, so the depth is unknown (the rate still counts).
        for (reorder, dec_buffering) in [(3, 2), (0, 0)] {
            let mut w = sps_before_vui(100, 0, 0);
            vui_with_restriction(&mut w, reorder, dec_buffering);
            let sps = parse_sps(&w.finish_rbsp()).unwrap();
            assert_eq!(sps.fps, Some(25.0));
            assert!(sps.reorder_depth().is_err(), "{reorder} {dec_buffering}");
        }
    }

    #[test]
    fn reorder_depth_without_a_bitstream_restriction() {
        for (profile_idc, constraint_flags, poc_type, depth) in [
            // Baseline, and anything Baseline-compatible (constraint_set1): no B slices.
            (66, 0, 0, 0),
            (77, 0x40, 0, 0),
            // POC type 2: output order is decode order.
            (100, 0, 2, 0),
            // Otherwise the spec's bound.
            (77, 0, 0, 16),
            (100, 0, 0, 16),
        ] {
            let mut w = sps_before_vui(profile_idc, constraint_flags, poc_type);
            w.bit(false);
            let sps = parse_sps(&w.finish_rbsp()).unwrap();
            assert_eq!(sps.max_num_reorder_frames, None);
            assert_eq!(sps.reorder_depth(), Ok(depth), "{profile_idc} {poc_type}");
        }
        // A VUI that says it has no restriction.
        let mut w = sps_before_vui(100, 0, 0);
        w.bit(true).bits(5, 0).bits(4, 0); // no description or timing; no HRD, pic_struct, restriction
        let sps = parse_sps(&w.finish_rbsp()).unwrap();
        assert!(!sps.vui_truncated);
        assert_eq!(sps.reorder_depth(), Ok(16));
    }

    #[test]
    fn hand_built_444_separate_planes_and_fields() {
        let mut w = BitWriter::new();
        w.bits(8, 0x67).bits(8, 244).bits(8, 0x10).bits(8, 51).ue(3);
        w.ue(3).bit(true).ue(2).ue(2).bit(true).bit(false); // 4:4:4, separate planes, 10-bit
        w.ue(2).ue(2); // poc type 2
                       // 1280 x (2 * 23 * 16 = 736), field coded.
        w.ue(1)
            .bit(false)
            .ue(79)
            .ue(22)
            .bit(false)
            .bit(true)
            .bit(true);
        // ChromaArrayType 0: crop units are 1 x 2.
        w.bit(true).ue(1).ue(2).ue(3).ue(5);
        w.bit(false);
        let rbsp = w.finish_rbsp();
        let sps = parse_sps(&rbsp).unwrap();
        assert!(sps.separate_colour_plane);
        assert!(!sps.frame_mbs_only);
        assert_eq!((sps.width, sps.height), (1280 - 3, 736 - 16));
        assert_eq!(sps.fps, None);
        let p = avcc_params(&avcc_with(&rbsp)).unwrap();
        assert_eq!(p.profile.as_deref(), Some("High 4:4:4 Intra"));
        assert_eq!(p.level, Some(5.1));
    }

    #[test]
    fn rejects_nonsense() {
        let good = record(samples::AVC_720P30_HIGH);
        let mut bad = good.clone();
        bad[0] = 0;
        assert_eq!(avcc_params(&bad), Err(ParamsError::Malformed("AVC")));
        let mut no_sps = good.clone();
        no_sps[5] = 0xE0;
        assert!(avcc_params(&no_sps).is_err());
        let mut not_sps = good.clone();
        not_sps[8] = 0x68;
        assert!(avcc_params(&not_sps).is_err());
        // Cropping as large as (8 units = 16 pixels) or larger than (9) the picture.
        for crop in [8, 9] {
            let mut w = BitWriter::new();
            w.bits(8, 0x67).bits(8, 66).bits(8, 0).bits(8, 30).ue(0);
            w.ue(0)
                .ue(0)
                .ue(0)
                .ue(1)
                .bit(false)
                .ue(0)
                .ue(0)
                .bit(true)
                .bit(true);
            w.bit(true).ue(0).ue(crop).ue(0).ue(0).bit(false);
            assert!(parse_sps(&w.finish_rbsp()).is_err(), "{crop}");
        }
        // A POC cycle longer than the spec allows.
        let mut w = BitWriter::new();
        w.bits(8, 0x67).bits(8, 66).bits(8, 0).bits(8, 30).ue(0);
        w.ue(0).ue(1).bit(false).se(0).se(0).ue(256);
        assert!(parse_sps(&w.finish_rbsp()).is_err());
    }

    #[test]
    fn profile_names() {
        assert_eq!(profile_name(66, 0), Some("Baseline"));
        assert_eq!(profile_name(66, 0x40), Some("Constrained Baseline"));
        assert_eq!(profile_name(77, 0x40), Some("Main"));
        assert_eq!(profile_name(88, 0), Some("Extended"));
        assert_eq!(profile_name(110, 0x10), Some("High 10 Intra"));
        assert_eq!(profile_name(122, 0), Some("High 4:2:2"));
        assert_eq!(profile_name(1, 0), None);
    }
}
