//! Syntax the H.264 and H.265 sequence parameter sets share: chroma subsampling for cropping
//! (Table 6-1 of both specs) and the start of the VUI up to the timing info (H.264 §E.1.1,
//! H.265 §E.2.1), which the two codecs lay out identically up to the chroma location.

use super::bits::BitReader;
use super::ParamsError;

/// SubWidthC and SubHeightC: the size of one crop unit in luma samples. With separate colour
/// planes (ChromaArrayType 0) every plane is coded like luma, so the unit is a single sample.
pub(crate) fn chroma_subsampling(
    chroma_format_idc: u32,
    separate_colour_plane: bool,
) -> (u64, u64) {
    match (chroma_format_idc, separate_colour_plane) {
        (_, true) => (1, 1),
        (1, _) => (2, 2),
        (2, _) => (2, 1),
        _ => (1, 1),
    }
}

/// `full - unit * (start + end)`, the displayed size along one axis. Fails when the crop is as
/// large as the picture or the result does not fit a u32, both of which only hostile or broken
/// streams produce.
pub(crate) fn cropped(
    r: &BitReader<'_>,
    full: u64,
    unit: u64,
    start: u64,
    end: u64,
) -> Result<u32, ParamsError> {
    let size = full
        .checked_sub(unit * (start + end))
        .ok_or(r.malformed())?;
    match u32::try_from(size) {
        Ok(size) if size != 0 => Ok(size),
        _ => Err(r.malformed()),
    }
}

/// Skips aspect_ratio_info .. chroma_loc_info, the VUI fields H.264 and H.265 have in common.
pub(crate) fn skip_vui_description(r: &mut BitReader<'_>) -> Result<(), ParamsError> {
    // aspect_ratio_idc 255 is Extended_SAR with explicit 16-bit width and height.
    if r.flag()? && r.u8(8)? == 255 {
        r.skip(32)?;
    }
    if r.flag()? {
        let _overscan_appropriate = r.flag()?;
    }
    if r.flag()? {
        // video_format, video_full_range_flag, then optional primaries/transfer/matrix.
        r.skip(4)?;
        if r.flag()? {
            r.skip(24)?;
        }
    }
    if r.flag()? {
        // chroma_sample_loc_type_top_field, chroma_sample_loc_type_bottom_field.
        r.ue()?;
        r.ue()?;
    }
    Ok(())
}

/// timing_info_present_flag and, when set, (num_units_in_tick, time_scale) as coded.
pub(crate) fn vui_timing_info(r: &mut BitReader<'_>) -> Result<Option<(u32, u32)>, ParamsError> {
    if !r.flag()? {
        return Ok(None);
    }
    let num_units_in_tick = r.bits(32)?;
    let time_scale = r.bits(32)?;
    Ok(Some((num_units_in_tick, time_scale)))
}

/// The timing info as a rate: a zero in either value is treated as absent, since it gives no
/// usable rate. What a tick means differs per codec, so turning this into frames per second is
/// the caller's business.
pub(crate) fn usable_rate(timing: Option<(u32, u32)>) -> Option<(u32, u32)> {
    timing.filter(|&(num_units_in_tick, time_scale)| num_units_in_tick != 0 && time_scale != 0)
}

/// [`vui_timing_info`] as a [`usable_rate`].
pub(crate) fn vui_timing(r: &mut BitReader<'_>) -> Result<Option<(u32, u32)>, ParamsError> {
    Ok(usable_rate(vui_timing_info(r)?))
}
