//! AAC: the AudioSpecificConfig of ISO/IEC 14496-3 §1.6.2.1, with explicit (hierarchical) and
//! backward-compatible (sync extension) signalling of SBR and PS, so HE-AAC and HE-AACv2 report
//! their output sample rate and channel count rather than those of the core AAC-LC layer.

use super::bits::BitReader;
use super::{AudioParams, ParamsError};
use crate::codec::AudioCodec;

const WHAT: &str = "AAC";
const AOT_SBR: u8 = 5;
const AOT_PS: u8 = 29;
const AOT_ER_BSAC: u8 = 22;
/// syncExtensionType announcing SBR after a GASpecificConfig.
const SYNC_SBR: u32 = 0x2B7;
/// syncExtensionType announcing PS after the SBR extension.
const SYNC_PS: u32 = 0x548;

const SAMPLE_RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

/// What an AudioSpecificConfig says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// The first audioObjectType (5 or 29 for explicit HE-AAC signalling).
    pub object_type: u8,
    /// The core codec's object type (2 for HE-AAC over AAC-LC).
    pub core_object_type: u8,
    pub sbr: bool,
    pub ps: bool,
    /// The output sample rate (the SBR rate when SBR is present).
    pub sample_rate: u32,
    /// Output channels (2 for PS over a mono core).
    pub channels: u8,
}

/// Parses an AudioSpecificConfig into [`AudioParams`].
pub fn asc_params(asc: &[u8]) -> Result<AudioParams, ParamsError> {
    let c = parse_asc(asc)?;
    let (profile, oti) = if c.ps {
        (Some("HE-AACv2"), AOT_PS)
    } else if c.sbr {
        (Some("HE-AAC"), AOT_SBR)
    } else {
        (profile_name(c.core_object_type), c.core_object_type)
    };
    Ok(AudioParams {
        codec: AudioCodec::Aac,
        profile: profile.map(str::to_owned),
        sample_rate: c.sample_rate,
        channels: c.channels,
        codec_string: Some(format!("mp4a.40.{oti}")),
    })
}

/// The profile name of an audioObjectType.
pub fn profile_name(object_type: u8) -> Option<&'static str> {
    Some(match object_type {
        1 => "Main",
        2 => "LC",
        3 => "SSR",
        4 => "LTP",
        5 => "HE-AAC",
        29 => "HE-AACv2",
        23 => "LD",
        39 => "ELD",
        _ => return None,
    })
}

fn object_type(r: &mut BitReader<'_>) -> Result<u8, ParamsError> {
    let aot = r.u8(5)?;
    if aot == 31 {
        Ok(32 + r.u8(6)?)
    } else {
        Ok(aot)
    }
}

fn sample_rate(r: &mut BitReader<'_>) -> Result<u32, ParamsError> {
    let index = r.bits(4)?;
    if index == 15 {
        return r.bits(24);
    }
    SAMPLE_RATES
        .get(index as usize)
        .copied()
        .ok_or(r.malformed())
}

/// Channels of a channelConfiguration (ISO/IEC 14496-3 Table 1.19 and its amendments).
fn config_channels(config: u8) -> Option<u8> {
    Some(match config {
        1..=6 => config,
        7 | 12 | 14 => 8,
        11 => 7,
        13 => 24,
        _ => return None,
    })
}

/// Object types whose config is a GASpecificConfig (§4.4.1).
fn is_ga(aot: u8) -> bool {
    matches!(aot, 1..=4 | 6 | 7 | 17 | 19..=23)
}

/// Parses an AudioSpecificConfig, following SBR/PS signalling to the output rate and channels.
pub fn parse_asc(asc: &[u8]) -> Result<AudioSpecificConfig, ParamsError> {
    let mut r = BitReader::new(asc, WHAT);
    let object = object_type(&mut r)?;
    if object == 0 {
        return Err(r.malformed());
    }
    let core_rate = sample_rate(&mut r)?;
    let channel_config = r.u8(4)?;
    let mut sbr = false;
    let mut ps = false;
    let mut ext_rate = None;
    let mut core = object;
    if object == AOT_SBR || object == AOT_PS {
        // Explicit hierarchical signalling: the extension rate, then the core's object type.
        sbr = true;
        ps = object == AOT_PS;
        ext_rate = Some(sample_rate(&mut r)?);
        core = object_type(&mut r)?;
        if core == AOT_ER_BSAC {
            r.skip(4)?;
        }
    }
    if core_rate == 0 {
        return Err(r.malformed());
    }

    let mut channels = config_channels(channel_config);
    if is_ga(core) {
        // A malformed tail after the fixed fields only costs us the extension info.
        if let Ok(pce_channels) = ga_specific_config(&mut r, core, channel_config) {
            if channels.is_none() {
                channels = pce_channels;
            }
            if !sbr {
                if let Ok(Some((rate, with_ps))) = sync_extension(&mut r) {
                    sbr = true;
                    ps = with_ps;
                    ext_rate = rate;
                }
            }
        }
    }
    let mut channels = channels.ok_or(r.malformed())?;
    if ps && channels == 1 {
        // Parametric stereo upmixes a mono core.
        channels = 2;
    }
    Ok(AudioSpecificConfig {
        object_type: object,
        core_object_type: core,
        sbr,
        ps,
        sample_rate: ext_rate.unwrap_or(core_rate),
        channels,
    })
}

/// GASpecificConfig (§4.4.1) and, for channelConfiguration 0, the channel count of its
/// program_config_element.
fn ga_specific_config(
    r: &mut BitReader<'_>,
    aot: u8,
    channel_config: u8,
) -> Result<Option<u8>, ParamsError> {
    let _frame_length = r.flag()?;
    if r.flag()? {
        // coreCoderDelay
        r.skip(14)?;
    }
    let extension = r.flag()?;
    let channels = if channel_config == 0 {
        Some(program_config_channels(r)?)
    } else {
        None
    };
    if aot == 6 || aot == 20 {
        r.skip(3)?;
    }
    if extension {
        if aot == AOT_ER_BSAC {
            r.skip(5 + 11)?;
        }
        if matches!(aot, 17 | 19 | 20 | 23) {
            r.skip(3)?;
        }
        r.skip(1)?;
    }
    if matches!(aot, 17..=27) {
        // epConfig of error-resilient object types.
        r.skip(2)?;
    }
    Ok(channels)
}

/// Counts the channels of a program_config_element (§4.4.1.1) and skips the rest of it up to
/// its comment, as the config must be walked past it.
fn program_config_channels(r: &mut BitReader<'_>) -> Result<u8, ParamsError> {
    // element_instance_tag, object_type, sampling_frequency_index.
    r.skip(4 + 2 + 4)?;
    let front = r.bits(4)?;
    let side = r.bits(4)?;
    let back = r.bits(4)?;
    let lfe = r.bits(2)?;
    let assoc = r.bits(3)?;
    let cc = r.bits(4)?;
    // Mono and stereo mixdown element numbers, then the matrix mixdown index and pseudo-surround
    // flag, each behind a presence flag.
    for size in [4, 4, 3] {
        if r.flag()? {
            r.skip(size)?;
        }
    }
    let mut channels = 0u32;
    for _ in 0..front + side + back {
        let is_cpe = r.flag()?;
        r.skip(4)?;
        channels += if is_cpe { 2 } else { 1 };
    }
    r.skip(4 * lfe as usize)?;
    channels += lfe;
    r.skip(4 * assoc as usize + 5 * cc as usize)?;
    // byte_alignment() is relative to the start of the ASC; the comment field follows.
    let misalign = r.bits_left() % 8;
    r.skip(misalign)?;
    let comment = r.bits(8)?;
    r.skip(8 * comment as usize)?;
    // At most 15 * 3 * 2 + 3 = 93 channels: always fits.
    u8::try_from(channels).map_err(|_| r.malformed())
}

/// The backward-compatible SBR/PS signalling that may follow the core config (§1.6.5.2): returns
/// the SBR output rate (when given) and whether PS is present, or `None` without SBR.
fn sync_extension(r: &mut BitReader<'_>) -> Result<Option<(Option<u32>, bool)>, ParamsError> {
    if r.bits_left() < 16 || r.bits(11)? != SYNC_SBR {
        return Ok(None);
    }
    if object_type(r)? != AOT_SBR || !r.flag()? {
        return Ok(None);
    }
    let rate = sample_rate(r)?;
    let mut ps = false;
    if r.bits_left() >= 12 && r.bits(11)? == SYNC_PS {
        ps = r.flag()?;
    }
    Ok(Some((Some(rate), ps)))
}

#[cfg(test)]
mod tests {
    use super::super::bits::tests::{hex, BitWriter};
    use super::super::samples;
    use super::*;

    fn asc_of(body_hex: &str) -> Vec<u8> {
        hex(body_hex)[2..].to_vec()
    }

    // ffprobe: aac, LC, 22050 Hz, 1 channel / LC, 44100 Hz, 2 channels.

    #[test]
    fn ffmpeg_aac_22k_mono_with_sbr_absent_sync_extension() {
        // ffmpeg writes a 0x2B7 sync extension saying "no SBR" after the LC config.
        let p = asc_params(&asc_of(samples::AAC_22K_MONO)).unwrap();
        assert_eq!(p.codec, AudioCodec::Aac);
        assert_eq!(p.profile.as_deref(), Some("LC"));
        assert_eq!((p.sample_rate, p.channels), (22_050, 1));
        assert_eq!(p.codec_string.as_deref(), Some("mp4a.40.2"));
    }

    #[test]
    fn ffmpeg_aac_44k_stereo() {
        let p = asc_params(&asc_of(samples::AAC_44K_STEREO)).unwrap();
        assert_eq!(p.profile.as_deref(), Some("LC"));
        assert_eq!((p.sample_rate, p.channels), (44_100, 2));
    }

    #[test]
    fn explicit_he_aac_and_he_aac_v2() {
        // aot 5, 24 kHz core, stereo, 48 kHz SBR, core LC.
        let p = asc_params(&[0x2B, 0x11, 0x88, 0x00]).unwrap();
        assert_eq!(p.profile.as_deref(), Some("HE-AAC"));
        assert_eq!((p.sample_rate, p.channels), (48_000, 2));
        assert_eq!(p.codec_string.as_deref(), Some("mp4a.40.5"));
        // aot 29, 24 kHz core, mono, 48 kHz SBR, core LC: PS makes it stereo.
        let p = asc_params(&[0xEB, 0x09, 0x88, 0x00]).unwrap();
        assert_eq!(p.profile.as_deref(), Some("HE-AACv2"));
        assert_eq!((p.sample_rate, p.channels), (48_000, 2));
        assert_eq!(p.codec_string.as_deref(), Some("mp4a.40.29"));
    }

    #[test]
    fn backward_compatible_sbr_and_ps() {
        let mut w = BitWriter::new();
        w.bits(5, 2).bits(4, 6).bits(4, 1).bits(3, 0); // LC 24 kHz mono
        w.bits(11, 0x2B7).bits(5, 5).bit(true).bits(4, 3); // SBR at 48 kHz
        w.bits(11, 0x548).bit(true); // PS
        let c = parse_asc(&w.finish()).unwrap();
        assert!(c.sbr && c.ps);
        assert_eq!((c.object_type, c.core_object_type), (2, 2));
        assert_eq!((c.sample_rate, c.channels), (48_000, 2));
        let p = asc_params(&w.finish()).unwrap();
        assert_eq!(p.profile.as_deref(), Some("HE-AACv2"));
    }

    #[test]
    fn escapes_explicit_rate_and_pce() {
        // aot 31 escape -> 32 + 1 = 33 (not GA): fixed fields only; explicit 24-bit rate.
        let mut w = BitWriter::new();
        w.bits(5, 31)
            .bits(6, 1)
            .bits(4, 15)
            .bits(24, 37_800)
            .bits(4, 2);
        let c = parse_asc(&w.finish()).unwrap();
        assert_eq!((c.object_type, c.sample_rate, c.channels), (33, 37_800, 2));

        // LC with channelConfiguration 0 and a PCE: 1 SCE + 2 CPE front, 1 CPE back, 1 LFE.
        let mut w = BitWriter::new();
        w.bits(5, 2).bits(4, 3).bits(4, 0).bits(3, 0);
        w.bits(4, 0).bits(2, 1).bits(4, 3);
        w.bits(4, 3)
            .bits(4, 0)
            .bits(4, 1)
            .bits(2, 1)
            .bits(3, 0)
            .bits(4, 0);
        w.bit(false).bit(false).bit(true).bits(3, 0);
        w.bit(false)
            .bits(4, 0)
            .bit(true)
            .bits(4, 1)
            .bit(true)
            .bits(4, 2);
        w.bit(true).bits(4, 3);
        w.bits(4, 0);
        let pad = (8 - w.bit_len() % 8) % 8;
        w.bits(pad as u32, 0).bits(8, 0);
        let p = asc_params(&w.finish()).unwrap();
        assert_eq!((p.sample_rate, p.channels), (48_000, 8));

        assert_eq!(config_channels(7), Some(8));
        assert_eq!(config_channels(11), Some(7));
        assert_eq!(config_channels(15), None);
    }

    #[test]
    fn rejects_bad_configs() {
        assert!(parse_asc(&[]).is_err());
        assert!(parse_asc(&[0x12]).is_err());
        assert!(parse_asc(&[0x00, 0x10]).is_err(), "object type 0");
        assert!(parse_asc(&[0x16, 0x90]).is_err(), "sample rate index 13");
        assert!(parse_asc(&[0x12, 0x78]).is_err(), "channel config 15");
        // LC with channel config 0 and no room for a PCE.
        assert!(parse_asc(&[0x12, 0x00]).is_err());
        // Explicit rate 0.
        let mut w = BitWriter::new();
        w.bits(5, 2).bits(4, 15).bits(24, 0).bits(4, 2);
        assert!(parse_asc(&w.finish()).is_err());
        assert_eq!(profile_name(39), Some("ELD"));
        assert_eq!(profile_name(23), Some("LD"));
        assert_eq!(profile_name(40), None);
    }
}
