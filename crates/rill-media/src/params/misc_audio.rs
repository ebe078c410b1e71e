//! The audio codecs Enhanced RTMP added besides AAC and Opus: FLAC (the STREAMINFO metadata
//! block of a SequenceStart), AC-3 / E-AC-3 and MP3 (self-describing frames: the sample rate and
//! channels sit in every frame header, so a coded frame is as good as a config).

use super::{AudioParams, ParamsError};
use crate::codec::AudioCodec;

/// Reads STREAMINFO from a FLAC SequenceStart payload. Accepts the block with or without the
/// `fLaC` stream marker in front, and the `dfLa` full-box form (4 bytes of version and flags).
pub fn flac_params(payload: &[u8]) -> Result<AudioParams, ParamsError> {
    let malformed = || ParamsError::Malformed("FLAC");
    let mut data = payload.strip_prefix(b"fLaC").unwrap_or(payload);
    // A STREAMINFO block header is type 0 (bit 7 = last-block flag) and length 34.
    let is_streaminfo = |d: &[u8]| matches!(d, [0x00 | 0x80, 0, 0, 34, ..]);
    if !is_streaminfo(data) && data.get(..4) == Some(&[0, 0, 0, 0]) {
        data = &data[4..];
    }
    if !is_streaminfo(data) {
        return Err(malformed());
    }
    let info = data.get(4..4 + 34).ok_or_else(malformed)?;
    // After min/max block size (2 + 2) and min/max frame size (3 + 3): 20 bits of sample rate,
    // 3 of channels - 1, 5 of bits per sample - 1.
    let rate = (u32::from(info[10]) << 12) | (u32::from(info[11]) << 4) | u32::from(info[12] >> 4);
    let channels = ((info[12] >> 1) & 0x07) + 1;
    if rate == 0 {
        return Err(malformed());
    }
    Ok(AudioParams {
        codec: AudioCodec::Flac,
        profile: None,
        sample_rate: rate,
        channels,
        codec_string: Some("fLaC".to_owned()),
    })
}

/// Channels of an AC-3 acmod, before the LFE channel (ATSC A/52 Table 5.8).
const ACMOD_CHANNELS: [u8; 8] = [2, 1, 2, 3, 3, 4, 4, 5];

/// Reads the sync frame header at the start of an AC-3 or E-AC-3 payload. Without a sync word
/// the codec is still reported, with a zero sample rate and channel count.
pub fn ac3_params(payload: &[u8], codec: AudioCodec) -> Result<AudioParams, ParamsError> {
    let what = if codec == AudioCodec::Eac3 {
        "E-AC-3"
    } else {
        "AC-3"
    };
    let mut params = AudioParams {
        codec,
        profile: None,
        sample_rate: 0,
        channels: 0,
        codec_string: Some(
            if codec == AudioCodec::Eac3 {
                "ec-3"
            } else {
                "ac-3"
            }
            .to_owned(),
        ),
    };
    if payload.get(..2) != Some(&[0x0B, 0x77]) {
        return Ok(params);
    }
    let h = payload.get(..8).ok_or(ParamsError::Malformed(what))?;
    let bsid = h[5] >> 3;
    let (rate, acmod, lfe) = if bsid <= 10 {
        // AC-3: crc1, fscod/frmsizecod, bsid/bsmod, then acmod and optional mix levels.
        let rate = match h[4] >> 6 {
            0 => 48_000,
            1 => 44_100,
            2 => 32_000,
            _ => return Err(ParamsError::Malformed(what)),
        };
        let acmod = h[6] >> 5;
        let mut skip = 0;
        if acmod & 1 != 0 && acmod != 1 {
            skip += 2;
        }
        if acmod & 4 != 0 {
            skip += 2;
        }
        if acmod == 2 {
            skip += 2;
        }
        // lfeon follows acmod (3 bits) and the optional 2-bit fields, within bytes 6 and 7.
        let bits = u16::from_be_bytes([h[6], h[7]]);
        let lfe = (bits >> (15 - 3 - skip)) & 1 == 1;
        (rate, acmod, lfe)
    } else if bsid <= 16 {
        // E-AC-3: strmtyp/substreamid/frmsiz, then fscod, fscod2 or numblkscod, acmod, lfeon.
        let fscod = h[4] >> 6;
        let rate = match (fscod, (h[4] >> 4) & 3) {
            (0, _) => 48_000,
            (1, _) => 44_100,
            (2, _) => 32_000,
            (_, 0) => 24_000,
            (_, 1) => 22_050,
            (_, 2) => 16_000,
            _ => return Err(ParamsError::Malformed(what)),
        };
        (rate, (h[4] >> 1) & 7, h[4] & 1 == 1)
    } else {
        return Err(ParamsError::Malformed(what));
    };
    params.sample_rate = rate;
    params.channels = ACMOD_CHANNELS[usize::from(acmod & 7)] + u8::from(lfe);
    Ok(params)
}

/// Reads the MPEG audio frame header at the start of a payload (ISO/IEC 11172-3 §2.4.2.3).
pub fn mp3_frame_params(payload: &[u8]) -> Result<AudioParams, ParamsError> {
    let malformed = || ParamsError::Malformed("MP3");
    let h = payload.get(..4).ok_or_else(malformed)?;
    if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
        return Err(malformed());
    }
    let base = match (h[2] >> 2) & 3 {
        0 => 44_100,
        1 => 48_000,
        2 => 32_000,
        _ => return Err(malformed()),
    };
    let rate = match (h[1] >> 3) & 3 {
        3 => base,
        2 => base / 2,
        0 => base / 4,
        _ => return Err(malformed()),
    };
    if (h[1] >> 1) & 3 == 0 {
        return Err(malformed());
    }
    Ok(AudioParams {
        codec: AudioCodec::Mp3,
        profile: None,
        sample_rate: rate,
        channels: if h[3] >> 6 == 3 { 1 } else { 2 },
        codec_string: Some(super::MP3_CODEC_STRING.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::super::bits::tests::hex;
    use super::super::samples;
    use super::*;

    fn streaminfo(rate: u32, channels: u8, bits: u8) -> Vec<u8> {
        let mut b = vec![0x80, 0, 0, 34, 0x10, 0, 0x10, 0, 0, 0, 0, 0, 0, 0];
        b.push((rate >> 12) as u8);
        b.push((rate >> 4) as u8);
        b.push(((rate as u8 & 0x0F) << 4) | ((channels - 1) << 1) | ((bits - 1) >> 4));
        b.push((bits - 1) << 4);
        b.extend_from_slice(&[0; 20]);
        b
    }

    #[test]
    fn flac_streaminfo_from_ffmpeg() {
        // ffmpeg -c:a flac -ac 2 (44100 Hz): ffprobe says 44100 Hz, 2 channels.
        let p = flac_params(&hex(samples::FLAC_STREAMINFO_44K_STEREO)).unwrap();
        assert_eq!((p.sample_rate, p.channels), (44_100, 2));
        assert_eq!(p.codec, AudioCodec::Flac);
    }

    #[test]
    fn flac_streaminfo_forms() {
        let block = streaminfo(96_000, 6, 24);
        let p = flac_params(&block).unwrap();
        assert_eq!((p.sample_rate, p.channels), (96_000, 6));
        assert_eq!(p.codec_string.as_deref(), Some("fLaC"));
        let mut marked = b"fLaC".to_vec();
        marked.extend_from_slice(&streaminfo(44_100, 2, 16));
        assert_eq!(flac_params(&marked).unwrap().sample_rate, 44_100);
        let mut dfla = vec![0, 0, 0, 0];
        dfla.extend_from_slice(&streaminfo(48_000, 1, 16));
        assert_eq!(flac_params(&dfla).unwrap().channels, 1);
        assert!(flac_params(&block[..20]).is_err());
        assert!(flac_params(&[0x84, 0, 0, 10]).is_err(), "not STREAMINFO");
        assert!(flac_params(&streaminfo(0, 2, 16)).is_err());
    }

    #[test]
    fn ac3_and_eac3_headers() {
        // Real ffmpeg frames; ffprobe: 48000 Hz 6 channels (AC-3 and E-AC-3), 32000 Hz mono.
        let p = ac3_params(&hex(samples::AC3_48K_51), AudioCodec::Ac3).unwrap();
        assert_eq!((p.sample_rate, p.channels), (48_000, 6));
        let p = ac3_params(&hex(samples::EAC3_48K_51), AudioCodec::Eac3).unwrap();
        assert_eq!((p.sample_rate, p.channels), (48_000, 6));
        let p = ac3_params(&hex(samples::EAC3_32K_MONO), AudioCodec::Eac3).unwrap();
        assert_eq!((p.sample_rate, p.channels), (32_000, 1));
        // Hand-built: 0B77, crc, fscod 0, bsid 8, acmod 7 with both mix levels, then lfeon.
        let ac3 = [0x0B, 0x77, 0x12, 0x34, 0x1C, 0x40, 0xE1, 0x40];
        let p = ac3_params(&ac3, AudioCodec::Ac3).unwrap();
        assert_eq!((p.sample_rate, p.channels), (48_000, 6));
        // Stereo 44.1 kHz: acmod 2 has dsurmod before lfeon (off).
        let ac3 = [0x0B, 0x77, 0, 0, 0x40 | 0x0E, 0x40, 0x40, 0x00];
        let p = ac3_params(&ac3, AudioCodec::Ac3).unwrap();
        assert_eq!((p.sample_rate, p.channels), (44_100, 2));
        // E-AC-3 bsid 16, 48 kHz, acmod 7 + lfe.
        let eac3 = [0x0B, 0x77, 0x00, 0xFF, 0x3F, 0x80, 0, 0];
        let p = ac3_params(&eac3, AudioCodec::Eac3).unwrap();
        assert_eq!((p.sample_rate, p.channels), (48_000, 6));
        assert_eq!(p.codec_string.as_deref(), Some("ec-3"));
        // E-AC-3 reduced rate: fscod 3, fscod2 1 -> 22050, mono.
        let eac3 = [0x0B, 0x77, 0x00, 0xFF, 0xD2, 0x80, 0, 0];
        assert_eq!(
            ac3_params(&eac3, AudioCodec::Eac3).unwrap().sample_rate,
            22_050
        );
        // No sync word: codec only.
        let p = ac3_params(&[1, 2, 3], AudioCodec::Ac3).unwrap();
        assert_eq!((p.sample_rate, p.channels), (0, 0));
        assert!(ac3_params(&[0x0B, 0x77, 0], AudioCodec::Ac3).is_err());
        assert!(ac3_params(&[0x0B, 0x77, 0, 0, 0xC0, 0x40, 0, 0], AudioCodec::Ac3).is_err());
        assert!(ac3_params(&[0x0B, 0x77, 0, 0, 0, 0xF8, 0, 0], AudioCodec::Ac3).is_err());
    }

    #[test]
    fn mp3_frame_headers_from_libmp3lame() {
        // ffprobe: mp3, 44100 Hz, 2 channels / 22050 Hz, 1 channel.
        let p = mp3_frame_params(&hex(samples::MP3_44K_STEREO)[1..]).unwrap();
        assert_eq!((p.sample_rate, p.channels), (44_100, 2));
        let p = mp3_frame_params(&hex(samples::MP3_22K_MONO)[1..]).unwrap();
        assert_eq!((p.sample_rate, p.channels), (22_050, 1));
        assert_eq!(p.codec_string.as_deref(), Some("mp4a.40.34"));
        assert!(
            mp3_frame_params(&[0xFF, 0xFB, 0x9C, 0]).is_err(),
            "rate index 3"
        );
        assert!(
            mp3_frame_params(&[0xFF, 0xEB, 0x90, 0]).is_err(),
            "version 01"
        );
        assert!(
            mp3_frame_params(&[0xFF, 0xF9, 0x90, 0]).is_err(),
            "layer 00"
        );
        assert!(mp3_frame_params(&[0xFE, 0xFB, 0x90, 0]).is_err());
        assert!(mp3_frame_params(&[0xFF, 0xFB]).is_err());
    }
}
