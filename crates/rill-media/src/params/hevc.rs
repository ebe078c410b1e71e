//! H.265/HEVC: the HEVCDecoderConfigurationRecord (`hvcC`, ISO/IEC 14496-15 §8.3.3) and the
//! sequence parameter set found in its arrays (ITU-T H.265 §7.3.2.2), read far enough to get the
//! cropped picture size, the VUI frame rate and the reorder depth.

use super::bits::{unescape_rbsp, BitReader};
use super::sps::{chroma_subsampling, cropped, skip_vui_description, vui_timing};
use super::{ParamsError, VideoParams};
use crate::codec::VideoCodec;

const WHAT: &str = "HEVC";
/// nal_unit_type of a sequence parameter set.
const NAL_SPS: u8 = 33;
/// Size of the fixed part of `hvcC`, up to and including numOfArrays.
const HVCC_HEADER: usize = 23;

/// The general profile/tier/level fields shared by `hvcC` and profile_tier_level().
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HevcProfile {
    pub profile_space: u8,
    pub tier: bool,
    pub profile_idc: u8,
    pub compatibility_flags: u32,
    /// The 48 constraint indicator bits, in stream order.
    pub constraint_flags: [u8; 6],
    pub level_idc: u8,
}

/// What an HEVC SPS says.
#[derive(Debug, Clone, PartialEq)]
pub struct HevcSps {
    pub profile: HevcProfile,
    pub chroma_format_idc: u32,
    pub bit_depth_luma: u32,
    pub width: u32,
    pub height: u32,
    /// `time_scale / num_units_in_tick` from the VUI, when present.
    pub fps: Option<f64>,
    /// `sps_max_num_reorder_pics[HighestTid]`, the highest sub-layer's; `None` when the SPS ends
    /// (or is invalid) before it.
    pub max_num_reorder_pics: Option<u32>,
}

impl HevcSps {
    /// The reorder depth: how many pictures may precede a picture in decode order and follow it
    /// in output order, for the whole stream (its highest sub-layer).
    pub fn reorder_depth(&self) -> Result<u32, ParamsError> {
        self.max_num_reorder_pics
            .ok_or(ParamsError::Malformed(WHAT))
    }
}

/// Parses an `hvcC` record: profile, tier and level from its header, the picture size and frame
/// rate from the first SPS (nuh_layer_id 0) in its arrays.
pub fn hvcc_params(record: &[u8]) -> Result<VideoParams, ParamsError> {
    let header = record
        .get(..HVCC_HEADER)
        .ok_or(ParamsError::Malformed(WHAT))?;
    // configurationVersion is 1; some early muxers wrote 0, which is otherwise harmless.
    if header[0] > 1 {
        return Err(ParamsError::Malformed(WHAT));
    }
    let mut r = BitReader::new(&header[1..13], WHAT);
    let mut profile = read_general_profile(&mut r)?;
    let sps = find_sps(record)?.ok_or(ParamsError::Malformed(WHAT))?;
    let sps = parse_sps(&unescape_rbsp(sps))?;
    if profile.profile_idc == 0 && profile.compatibility_flags == 0 && profile.level_idc == 0 {
        // Some muxers leave the hvcC header zeroed; the SPS has the real values.
        profile = sps.profile;
    }
    Ok(VideoParams {
        codec: VideoCodec::Hevc,
        profile: profile_name(&profile).map(str::to_owned),
        level: (profile.level_idc != 0).then(|| f64::from(profile.level_idc) / 30.0),
        width: sps.width,
        height: sps.height,
        fps: sps.fps,
        codec_string: Some(codec_string(&profile)),
    })
}

/// The first SPS NAL unit (2-byte header included) of the base layer in the `hvcC` arrays.
fn find_sps(record: &[u8]) -> Result<Option<&[u8]>, ParamsError> {
    let malformed = || ParamsError::Malformed(WHAT);
    let num_arrays = *record.get(HVCC_HEADER - 1).ok_or_else(malformed)?;
    let mut pos = HVCC_HEADER;
    for _ in 0..num_arrays {
        let head = record.get(pos..pos + 3).ok_or_else(malformed)?;
        let nal_type = head[0] & 0x3F;
        let count = u16::from_be_bytes([head[1], head[2]]);
        pos += 3;
        for _ in 0..count {
            let len = record.get(pos..pos + 2).ok_or_else(malformed)?;
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            let nal = record.get(pos + 2..pos + 2 + len).ok_or_else(malformed)?;
            pos += 2 + len;
            // Trust the NAL header over the array type, and skip enhancement-layer SPSs whose
            // syntax differs (H.265 §F.7.3.2.2.1).
            if let [h0, h1, ..] = *nal {
                let layer_id = ((h0 & 1) << 5) | (h1 >> 3);
                if nal_type == NAL_SPS && (h0 >> 1) & 0x3F == NAL_SPS && layer_id == 0 {
                    return Ok(Some(nal));
                }
            }
        }
    }
    Ok(None)
}

/// general_profile_space .. general_level_idc: 96 bits, the same in `hvcC` and in
/// profile_tier_level().
fn read_general_profile(r: &mut BitReader<'_>) -> Result<HevcProfile, ParamsError> {
    let profile_space = r.u8(2)?;
    let tier = r.flag()?;
    let profile_idc = r.u8(5)?;
    let compatibility_flags = r.bits(32)?;
    let mut constraint_flags = [0u8; 6];
    for b in &mut constraint_flags {
        *b = r.u8(8)?;
    }
    let level_idc = r.u8(8)?;
    Ok(HevcProfile {
        profile_space,
        tier,
        profile_idc,
        compatibility_flags,
        constraint_flags,
        level_idc,
    })
}

/// profile_tier_level(1, max_sub_layers_minus1), H.265 §7.3.3.
fn profile_tier_level(
    r: &mut BitReader<'_>,
    max_sub_layers_minus1: u32,
) -> Result<HevcProfile, ParamsError> {
    let general = read_general_profile(r)?;
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(max_sub_layers_minus1 as usize) {
        *p = (r.flag()?, r.flag()?);
    }
    if max_sub_layers_minus1 > 0 {
        // reserved_zero_2bits for the unused slots up to eight.
        r.skip(2 * (8 - max_sub_layers_minus1 as usize))?;
    }
    for &(profile_present, level_present) in present.iter().take(max_sub_layers_minus1 as usize) {
        if profile_present {
            r.skip(88)?;
        }
        if level_present {
            r.skip(8)?;
        }
    }
    Ok(general)
}

/// Parses an SPS RBSP (emulation prevention removed), 2-byte NAL header included.
pub fn parse_sps(rbsp: &[u8]) -> Result<HevcSps, ParamsError> {
    let mut r = BitReader::new(rbsp, WHAT);
    let h0 = r.u8(8)?;
    let _h1 = r.u8(8)?;
    if (h0 >> 1) & 0x3F != NAL_SPS {
        return Err(r.malformed());
    }
    let _vps_id = r.bits(4)?;
    let max_sub_layers_minus1 = r.bits(3)?;
    if max_sub_layers_minus1 > 6 {
        return Err(r.malformed());
    }
    let _temporal_id_nesting = r.flag()?;
    let profile = profile_tier_level(&mut r, max_sub_layers_minus1)?;
    let _sps_id = r.ue()?;
    let chroma_format_idc = r.ue()?;
    if chroma_format_idc > 3 {
        return Err(r.malformed());
    }
    let separate_colour_plane = chroma_format_idc == 3 && r.flag()?;
    let pic_width = r.ue()?;
    let pic_height = r.ue()?;
    let mut window = [0u32; 4];
    if r.flag()? {
        for w in &mut window {
            *w = r.ue()?;
        }
    }
    // Conformance window offsets count chroma samples (H.265 equations 7-1, 7-2 and Table 6-1).
    let (sub_width, sub_height) = chroma_subsampling(chroma_format_idc, separate_colour_plane);
    let [left, right, top, bottom] = window.map(u64::from);
    let width = cropped(&r, u64::from(pic_width), sub_width, left, right)?;
    let height = cropped(&r, u64::from(pic_height), sub_height, top, bottom)?;

    let luma_minus8 = r.ue()?;
    let _chroma_minus8 = r.ue()?;
    if luma_minus8 > 8 {
        return Err(r.malformed());
    }
    // The reorder depth and the frame rate are not needed for the picture size: an SPS that
    // fails past this point still gives the size, and just lacks what comes after.
    let (max_num_reorder_pics, fps) = match sub_layer_ordering(&mut r, max_sub_layers_minus1) {
        Ok((log2_max_poc_lsb, reorder)) => (
            Some(reorder),
            rest_of_sps_fps(&mut r, log2_max_poc_lsb).unwrap_or(None),
        ),
        Err(_) => (None, None),
    };

    Ok(HevcSps {
        profile,
        chroma_format_idc,
        bit_depth_luma: 8 + luma_minus8,
        width,
        height,
        fps,
        max_num_reorder_pics,
    })
}

/// log2_max_pic_order_cnt_lsb_minus4 and the sub-layer ordering info: returns
/// Log2MaxPicOrderCntLsb and the highest sub-layer's `sps_max_num_reorder_pics`.
fn sub_layer_ordering(
    r: &mut BitReader<'_>,
    max_sub_layers_minus1: u32,
) -> Result<(u32, u32), ParamsError> {
    // ue() can be up to 2^32 - 2: add without overflowing, the bound below rejects it.
    let log2_max_poc_lsb = r.ue()?.saturating_add(4);
    if log2_max_poc_lsb > 16 {
        return Err(r.malformed());
    }
    let ordering_info_present = r.flag()?;
    let first = if ordering_info_present {
        0
    } else {
        max_sub_layers_minus1
    };
    let mut max_num_reorder_pics = 0;
    for _ in first..=max_sub_layers_minus1 {
        let _max_dec_pic_buffering_minus1 = r.ue()?;
        max_num_reorder_pics = r.ue()?;
        let _max_latency_increase_plus1 = r.ue()?;
    }
    Ok((log2_max_poc_lsb, max_num_reorder_pics))
}

/// Walks the SPS from the coding block sizes to the VUI timing info. The frame rate is a nicety,
/// so the caller treats a failure here as "no frame rate", not as a bad SPS.
fn rest_of_sps_fps(
    r: &mut BitReader<'_>,
    log2_max_poc_lsb: u32,
) -> Result<Option<f64>, ParamsError> {
    for _ in 0..6 {
        // log2_min_luma_coding_block_size_minus3 .. max_transform_hierarchy_depth_intra
        r.ue()?;
    }
    if r.flag()? && r.flag()? {
        skip_scaling_list_data(r)?;
    }
    let _amp = r.flag()?;
    let _sao = r.flag()?;
    if r.flag()? {
        // pcm bit depths (4 + 4), then two ue sizes and the loop filter flag.
        r.skip(8)?;
        r.ue()?;
        r.ue()?;
        r.skip(1)?;
    }
    let num_short_term_ref_pic_sets = r.ue()?;
    if num_short_term_ref_pic_sets > 64 {
        return Err(r.malformed());
    }
    let mut num_delta_pocs = [0u32; 64];
    for idx in 0..num_short_term_ref_pic_sets as usize {
        num_delta_pocs[idx] = st_ref_pic_set(r, idx, &num_delta_pocs)?;
    }
    if r.flag()? {
        let num_long_term = r.ue()?;
        if num_long_term > 32 {
            return Err(r.malformed());
        }
        for _ in 0..num_long_term {
            r.skip(log2_max_poc_lsb as usize + 1)?;
        }
    }
    let _temporal_mvp = r.flag()?;
    let _strong_intra_smoothing = r.flag()?;
    if !r.flag()? {
        return Ok(None);
    }
    vui_fps(r)
}

/// scaling_list_data(), H.265 §7.3.4: parsed only to get past it.
fn skip_scaling_list_data(r: &mut BitReader<'_>) -> Result<(), ParamsError> {
    for size_id in 0..4u32 {
        let step = if size_id == 3 { 3 } else { 1 };
        for _ in (0..6).step_by(step) {
            if !r.flag()? {
                r.ue()?;
            } else {
                let coefs = 64.min(1 << (4 + (size_id << 1)));
                if size_id > 1 {
                    r.se()?;
                }
                for _ in 0..coefs {
                    r.se()?;
                }
            }
        }
    }
    Ok(())
}

/// st_ref_pic_set(idx) as it appears in the SPS (H.265 §7.3.7); returns NumDeltaPocs[idx].
fn st_ref_pic_set(
    r: &mut BitReader<'_>,
    idx: usize,
    num_delta_pocs: &[u32; 64],
) -> Result<u32, ParamsError> {
    let inter_rps_pred = idx != 0 && r.flag()?;
    if inter_rps_pred {
        // In the SPS, delta_idx_minus1 is absent and the reference set is the previous one.
        let _delta_rps_sign = r.flag()?;
        let _abs_delta_rps_minus1 = r.ue()?;
        let ref_pocs = num_delta_pocs[idx - 1];
        let mut count = 0;
        for _ in 0..=ref_pocs {
            let used_by_curr = r.flag()?;
            // use_delta_flag is inferred to be 1 when absent.
            let use_delta = used_by_curr || r.flag()?;
            if use_delta {
                count += 1;
            }
        }
        Ok(count)
    } else {
        let negative = r.ue()?;
        let positive = r.ue()?;
        // sps_max_dec_pic_buffering bounds both by 16.
        if negative > 16 || positive > 16 {
            return Err(r.malformed());
        }
        for _ in 0..negative + positive {
            r.ue()?;
            r.skip(1)?;
        }
        Ok(negative + positive)
    }
}

/// vui_parameters() up to the timing info, H.265 §E.2.1.
fn vui_fps(r: &mut BitReader<'_>) -> Result<Option<f64>, ParamsError> {
    skip_vui_description(r)?;
    // neutral_chroma_indication, field_seq, frame_field_info_present.
    r.skip(3)?;
    if r.flag()? {
        // default_display_window offsets.
        for _ in 0..4 {
            r.ue()?;
        }
    }
    // Unlike H.264, an HEVC tick is a whole picture period.
    Ok(vui_timing(r)?.map(|(num_units_in_tick, time_scale)| {
        f64::from(time_scale) / f64::from(num_units_in_tick)
    }))
}

/// The profile name, ffprobe-style. A zero profile_idc defers to the compatibility flags.
pub fn profile_name(p: &HevcProfile) -> Option<&'static str> {
    let idc = if p.profile_idc == 0 {
        (1..32).find(|j| p.compatibility_flags & (1 << (31 - j)) != 0)?
    } else {
        u32::from(p.profile_idc)
    };
    Some(match idc {
        1 => "Main",
        2 => "Main 10",
        3 => "Main Still Picture",
        4 => "Range Extensions",
        5 => "High Throughput",
        6 => "Multiview Main",
        7 => "Scalable Main",
        8 => "3D Main",
        9 => "Screen Content Coding",
        _ => return None,
    })
}

/// `hvc1.` codec string of ISO/IEC 14496-15 Annex E: profile space letter and profile, the
/// compatibility flags bit-reversed in hex, tier letter and level, then the constraint bytes with
/// trailing zero bytes dropped (one is kept, as common parsers want at least one).
pub fn codec_string(p: &HevcProfile) -> String {
    let space = match p.profile_space {
        1 => "A",
        2 => "B",
        3 => "C",
        _ => "",
    };
    let tier = if p.tier { 'H' } else { 'L' };
    let mut s = format!(
        "hvc1.{space}{}.{:X}.{tier}{}",
        p.profile_idc,
        p.compatibility_flags.reverse_bits(),
        p.level_idc
    );
    let keep = p
        .constraint_flags
        .iter()
        .rposition(|&b| b != 0)
        .map_or(1, |i| i + 1);
    for b in &p.constraint_flags[..keep] {
        s.push_str(&format!(".{b:X}"));
    }
    s
}

#[cfg(test)]
mod tests {

    /// Found by the `params` fuzz target: a huge log2_max_pic_order_cnt_lsb_minus4 overflowed.
    #[test]
    fn huge_poc_lsb_field_is_an_error_not_an_overflow() {
        let crash = "2c00fe2f00000000002600000000f4f4f4f4f4f4d6f421000000f4f4a100140040c200000000000000002600000048c2c22d00c200000000ffffffffffffff76a70000f7ffffffff3a003307ff01a700ffa7a70000000000400000b80000f4f400000000f4f474f4f4";
        let bytes: Vec<u8> = (0..crash.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&crash[i..i + 2], 16).unwrap())
            .collect();
        let _ = crate::params::video_params(&bytes);
        let _ = crate::params::audio_params(&bytes);
    }

    use super::super::bits::tests::{escape_rbsp, facts, hex, BitWriter};
    use super::super::samples;
    use super::*;

    fn params(hex_record: &str) -> VideoParams {
        hvcc_params(&hex(hex_record)).unwrap()
    }

    // Expected values from ffprobe -show_streams on the MP4 files (ffprobe's level is level_idc).

    #[test]
    fn x265_720p30_main() {
        let p = params(samples::HEVC_720P30_MAIN);
        assert_eq!(p.codec, VideoCodec::Hevc);
        // ffmpeg 5.1's DASH muxer only writes "hev1" here, so the codec string follows ISO/IEC
        // 14496-15 Annex E: no profile space, profile 1, flags 0x60000000 reversed, Main tier,
        // 93, 0x90.
        assert_eq!(
            facts(&p),
            (
                Some("Main"),
                Some(3.1),
                (1280, 720),
                Some(30.0),
                Some("hvc1.1.6.L93.90")
            )
        );
    }

    #[test]
    fn x265_854x480_main10_cropped() {
        let p = params(samples::HEVC_480P25_MAIN10);
        assert_eq!(
            facts(&p),
            (
                Some("Main 10"),
                Some(3.0),
                (854, 480),
                Some(25.0),
                Some("hvc1.2.4.L90.90")
            )
        );
        let sps = parse_sps(&unescape_rbsp(
            find_sps(&hex(samples::HEVC_480P25_MAIN10))
                .unwrap()
                .unwrap(),
        ))
        .unwrap();
        assert_eq!(sps.bit_depth_luma, 10);
        assert_eq!(sps.chroma_format_idc, 1);
        assert_eq!(sps.profile.profile_idc, 2);
    }

    #[test]
    fn x265_1080p60_cropped_from_1088() {
        let p = params(samples::HEVC_1080P60_MAIN);
        assert_eq!(
            facts(&p),
            (
                Some("Main"),
                Some(4.1),
                (1920, 1080),
                Some(60.0),
                Some("hvc1.1.6.L123.90")
            )
        );
    }

    #[test]
    fn levels() {
        for (idc, level) in [(93u8, 3.1), (120, 4.0), (90, 3.0), (153, 5.1), (186, 6.2)] {
            assert!((f64::from(idc) / 30.0 - level).abs() < 1e-9);
        }
    }

    #[test]
    fn codec_strings() {
        let mut p = HevcProfile {
            profile_space: 0,
            tier: false,
            profile_idc: 1,
            compatibility_flags: 0x6000_0000,
            constraint_flags: [0xB0, 0, 0, 0, 0, 0],
            level_idc: 93,
        };
        assert_eq!(codec_string(&p), "hvc1.1.6.L93.B0");
        p.profile_space = 1;
        p.tier = true;
        p.level_idc = 120;
        p.constraint_flags = [0xB0, 0, 0x12, 0, 0, 0];
        assert_eq!(codec_string(&p), "hvc1.A1.6.H120.B0.0.12");
        p.constraint_flags = [0; 6];
        assert_eq!(codec_string(&p), "hvc1.A1.6.H120.0");
        p.profile_idc = 0;
        p.compatibility_flags = 0x2000_0000;
        assert_eq!(profile_name(&p), Some("Main 10"));
    }

    /// A hand-written SPS exercising sub-layers, scaling lists, PCM, inter-predicted reference
    /// sets, long-term references and a 4:2:2 conformance window.
    fn hand_sps() -> Vec<u8> {
        let mut w = BitWriter::new();
        w.bits(16, 0x4201);
        w.bits(4, 0).bits(3, 2).bit(true); // two sub-layers above the base
        w.bits(2, 0)
            .bit(true)
            .bits(5, 4)
            .bits(32, 0x0800_0000)
            .bits(48, 0x9000_0000_0000);
        w.bits(8, 153);
        w.bit(true).bit(true).bit(false).bit(true); // sub-layer 0 both, sub-layer 1 level only
        w.bits(2 * 6, 0);
        w.bits(88, 0).bits(8, 120).bits(8, 90);
        w.ue(0).ue(2); // sps id, 4:2:2
        w.ue(1928).ue(1088).bit(true).ue(2).ue(2).ue(0).ue(8);
        w.ue(2).ue(2).ue(4); // 10-bit, log2_max_poc_lsb 8
        w.bit(true);
        for _ in 0..3 {
            w.ue(4).ue(2).ue(1);
        }
        w.ue(0).ue(3).ue(0).ue(3).ue(1).ue(1);
        w.bit(true).bit(true); // scaling list data present
        for size_id in 0..4u32 {
            let step = if size_id == 3 { 3 } else { 1 };
            for m in (0..6).step_by(step) {
                if m % 2 == 0 {
                    w.bit(false).ue(0);
                } else {
                    w.bit(true);
                    let coefs = 64.min(1 << (4 + (size_id << 1)));
                    if size_id > 1 {
                        w.se(8);
                    }
                    for _ in 0..coefs {
                        w.se(-1);
                    }
                }
            }
        }
        w.bit(true).bit(true); // amp, sao
        w.bit(true).bits(4, 7).bits(4, 7).ue(0).ue(1).bit(false); // pcm
        w.ue(3);
        w.ue(2)
            .ue(1)
            .ue(0)
            .bit(true)
            .ue(1)
            .bit(true)
            .ue(0)
            .bit(true); // set 0: 3 pocs
        w.bit(true).bit(false).ue(0); // set 1 predicted from set 0 (4 entries)
        w.bit(true)
            .bit(false)
            .bit(true)
            .bit(false)
            .bit(false)
            .bit(true); // -> 3 pocs
        w.bit(false).ue(1).ue(0).ue(2).bit(false); // set 2 explicit: 1 poc
        w.bit(true).ue(2).bits(8, 5).bit(true).bits(8, 9).bit(false); // long term
        w.bit(true).bit(true);
        w.bit(true); // vui
        w.bit(true)
            .bits(8, 1)
            .bit(false)
            .bit(true)
            .bits(4, 0b1011)
            .bit(true)
            .bits(24, 0x090909);
        w.bit(false).bits(3, 0).bit(true).ue(0).ue(0).ue(0).ue(0);
        w.bit(true).bits(32, 1001).bits(32, 50_000);
        w.finish_rbsp()
    }

    #[test]
    fn hand_built_sps_with_every_optional_part() {
        let sps = parse_sps(&hand_sps()).unwrap();
        assert_eq!(sps.chroma_format_idc, 2);
        // 4:2:2: SubWidthC 2, SubHeightC 1.
        assert_eq!((sps.width, sps.height), (1928 - 8, 1088 - 8));
        assert_eq!(sps.bit_depth_luma, 10);
        assert_eq!(sps.fps, Some(50_000.0 / 1001.0));
        assert_eq!(sps.profile.profile_idc, 4);
        assert!(sps.profile.tier);
        assert_eq!(sps.profile.level_idc, 153);
        assert_eq!(sps.reorder_depth(), Ok(2));

        // The same SPS inside an hvcC, after a VPS array, with emulation prevention.
        let nal = escape_rbsp(&hand_sps());
        let mut rec = hex(samples::HEVC_720P30_MAIN)[..22].to_vec();
        rec.push(2);
        rec.extend_from_slice(&[0x20, 0, 1, 0, 2, 0x40, 0x01]);
        rec.extend_from_slice(&[0xA1, 0, 1]);
        rec.extend_from_slice(&(nal.len() as u16).to_be_bytes());
        rec.extend_from_slice(&nal);
        let p = hvcc_params(&rec).unwrap();
        assert_eq!((p.width, p.height), (1920, 1080));
        assert_eq!(p.fps, Some(50_000.0 / 1001.0));
        // Profile and level come from the hvcC header...
        assert_eq!(p.profile.as_deref(), Some("Main"));
        // ... unless a muxer left it zeroed.
        rec[1..13].fill(0);
        let p = hvcc_params(&rec).unwrap();
        assert_eq!(p.profile.as_deref(), Some("Range Extensions"));
        assert_eq!(p.level, Some(5.1));
        assert_eq!(p.codec_string.as_deref(), Some("hvc1.4.10.H153.90"));
    }

    #[test]
    fn reorder_depth_of_x265_samples() {
        for sample in [
            samples::HEVC_720P30_MAIN,
            samples::HEVC_480P25_MAIN10,
            samples::HEVC_1080P60_MAIN,
        ] {
            let record = hex(sample);
            let nal = find_sps(&record).unwrap().unwrap();
            let sps = parse_sps(&unescape_rbsp(nal)).unwrap();
            // x265's default B-pyramid: two reordered pictures.
            assert_eq!(sps.reorder_depth(), Ok(2), "{sample}");
        }
    }

    /// A 16x16 SPS with `max_sub_layers_minus1` sub-layers and the given sub-layer ordering
    /// entries `(max_dec_pic_buffering_minus1, max_num_reorder_pics, max_latency_increase_plus1)`,
    /// ending right after them.
    fn sps_with_ordering(
        max_sub_layers_minus1: u32,
        all: bool,
        entries: &[(u32, u32, u32)],
    ) -> Vec<u8> {
        let mut w = BitWriter::new();
        w.bits(16, 0x4201)
            .bits(4, 0)
            .bits(3, u64::from(max_sub_layers_minus1))
            .bit(true);
        w.bits(96, 0);
        if max_sub_layers_minus1 > 0 {
            // No sub-layer profile or level, then the reserved bits up to eight.
            w.bits(2 * max_sub_layers_minus1, 0)
                .bits(2 * (8 - max_sub_layers_minus1), 0);
        }
        w.ue(0)
            .ue(1)
            .ue(16)
            .ue(16)
            .bit(false)
            .ue(0)
            .ue(0)
            .ue(4)
            .bit(all);
        for &(dec, reorder, latency) in entries {
            w.ue(dec).ue(reorder).ue(latency);
        }
        w.finish_rbsp()
    }

    #[test]
    fn reorder_depth_is_the_highest_sub_layers() {
        let sps = parse_sps(&sps_with_ordering(
            2,
            true,
            &[(1, 0, 0), (2, 1, 0), (4, 3, 0)],
        ))
        .unwrap();
        assert_eq!(sps.max_num_reorder_pics, Some(3));
        assert_eq!(sps.reorder_depth(), Ok(3));
        // Without sub_layer_ordering_info_present_flag only the highest sub-layer is coded.
        let sps = parse_sps(&sps_with_ordering(2, false, &[(3, 2, 0)])).unwrap();
        assert_eq!(sps.reorder_depth(), Ok(2));
        // Cut short in the ordering info: the size is known, the reorder depth is not.
        let sps = parse_sps(&sps_with_ordering(2, true, &[(1, 0, 0)])).unwrap();
        assert_eq!((sps.width, sps.height), (16, 16));
        assert_eq!(sps.max_num_reorder_pics, None);
        assert_eq!(sps.reorder_depth(), Err(ParamsError::Malformed("HEVC")));
    }

    /// A 4:2:0 SPS without sub-layers, written up to its picture size.
    fn minimal_sps_start(width: u32, height: u32) -> BitWriter {
        let mut w = BitWriter::new();
        w.bits(16, 0x4201)
            .bits(8, 1)
            .bits(96, 0)
            .ue(0)
            .ue(1)
            .ue(width)
            .ue(height);
        w
    }

    #[test]
    fn missing_sps_and_bad_windows() {
        let mut rec = hex(samples::HEVC_720P30_MAIN)[..22].to_vec();
        rec.push(0);
        assert_eq!(hvcc_params(&rec), Err(ParamsError::Malformed("HEVC")));
        // Array claiming more NAL units than present.
        rec[22] = 1;
        rec.extend_from_slice(&[0xA1, 0, 2, 0, 1, 0x42]);
        assert!(hvcc_params(&rec).is_err());
        // Conformance window wider than the picture.
        let mut w = minimal_sps_start(16, 16);
        w.bit(true).ue(5).ue(4).ue(0).ue(0);
        assert!(parse_sps(&w.finish_rbsp()).is_err());
        // ... or exactly as wide: nothing left to show.
        let mut w = minimal_sps_start(16, 16);
        w.bit(true).ue(4).ue(4).ue(0).ue(0);
        assert!(parse_sps(&w.finish_rbsp()).is_err());
        // Truncated VUI: size still known, frame rate unknown.
        let mut w = minimal_sps_start(64, 32);
        w.bit(false).ue(0).ue(0);
        let sps = parse_sps(&w.finish_rbsp()).unwrap();
        assert_eq!((sps.width, sps.height, sps.fps), (64, 32, None));
    }
}
