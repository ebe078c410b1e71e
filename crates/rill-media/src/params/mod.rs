//! Stream facts read from sequence headers: codec, profile, level, resolution, frame rate, sample
//! rate and channels, for every codec Rill ingests. Sans-IO; each parser runs once per sequence
//! header, so correctness matters more than speed, and none may panic on hostile input.

pub mod aac;
pub mod av1;
pub mod avc;
mod bits;
pub mod hevc;
pub mod misc_audio;
pub mod opus;
#[cfg(test)]
mod samples;
mod sps;
pub mod vp9;

pub use bits::unescape_rbsp;

use crate::codec::{AudioCodec, VideoCodec};
use crate::flv::{parse_audio_header, parse_video_header, AudioPacket, VideoPacket};

/// What a video sequence header says.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoParams {
    pub codec: VideoCodec,
    /// Profile name as players show it (`"High"`, `"Main"`, `"Main 10"`, `"Profile 0"`, ...).
    pub profile: Option<String>,
    /// Level as a number (`3.1`, `4.0`, `5.1`, ...).
    pub level: Option<f64>,
    /// Displayed size (after cropping).
    pub width: u32,
    pub height: u32,
    /// Frames per second from the bitstream's timing info, when present.
    pub fps: Option<f64>,
    /// RFC 6381 codec string (`avc1.64001f`, `hvc1.1.6.L93.B0`, `av01.0.05M.08`, `vp09.00.10.08`).
    pub codec_string: Option<String>,
}

/// What an audio tag (sequence header or legacy flags) says.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioParams {
    pub codec: AudioCodec,
    /// Profile name (`"LC"`, `"HE-AAC"`, `"HE-AACv2"`, ...), where the codec has one.
    pub profile: Option<String>,
    pub sample_rate: u32,
    pub channels: u8,
    /// RFC 6381 codec string (`mp4a.40.2`, `opus`, `mp4a.40.34` for MP3, ...).
    pub codec_string: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParamsError {
    #[error("not a sequence header")]
    NotSequenceHeader,
    #[error("{0} configuration is truncated or malformed")]
    Malformed(&'static str),
    #[error("codec {0} has no parser")]
    Unsupported(&'static str),
}

/// Parses the FLV video tag body of a sequence header (legacy AVC/HEVC-id-12, or Enhanced RTMP
/// SequenceStart for avc1/hvc1/av01/vp09).
///
/// VP9 and VP8 (`vpcC`), and an AV1 `av1C` without a sequence header OBU, report a 0x0 size: their
/// records do not carry one. Multitrack bodies are `Unsupported`.
pub fn video_params(body: &[u8]) -> Result<VideoParams, ParamsError> {
    let (codec, record) = locate_video_record(body)?;
    match codec {
        VideoCodec::Avc => avc::avcc_params(record),
        VideoCodec::Hevc => hevc::hvcc_params(record),
        VideoCodec::Av1 => av1::av1c_params(record),
        VideoCodec::Vp9 | VideoCodec::Vp8 => vp9::vpcc_params(record, codec),
        other => Err(ParamsError::Unsupported(other.name())),
    }
}

/// Parses an FLV audio tag body: the AAC AudioSpecificConfig / Opus head of a sequence header, or
/// the legacy sound rate/size/type flags for codecs without one (MP3, Speex, Nellymoser, G.711).
pub fn audio_params(body: &[u8]) -> Result<AudioParams, ParamsError> {
    let header = parse_audio_header(body).map_err(|_| ParamsError::Malformed("FLV audio tag"))?;
    if !header.enhanced {
        return legacy_audio(body, header.codec, header.packet);
    }
    let (packet_type, codec, payload) = locate_ex_audio(body)?;
    let sequence_start = packet_type == EX_SEQUENCE_START;
    match codec {
        AudioCodec::Aac if sequence_start => aac::asc_params(payload),
        AudioCodec::Opus if sequence_start => opus::opus_head_params(payload),
        AudioCodec::Flac if sequence_start => misc_audio::flac_params(payload),
        AudioCodec::Aac | AudioCodec::Opus | AudioCodec::Flac => {
            Err(ParamsError::NotSequenceHeader)
        }
        // AC-3 and E-AC-3 describe themselves in every sync frame; other packets give the codec.
        AudioCodec::Ac3 | AudioCodec::Eac3 => match packet_type {
            EX_SEQUENCE_START | EX_CODED_FRAMES => misc_audio::ac3_params(payload, codec),
            _ => misc_audio::ac3_params(&[], codec),
        },
        AudioCodec::Mp3 if packet_type == EX_CODED_FRAMES => misc_audio::mp3_frame_params(payload),
        AudioCodec::Mp3 => Err(ParamsError::NotSequenceHeader),
        other => Err(ParamsError::Unsupported(other.name())),
    }
}

/// RFC 6381 codec string used for MP3 (MPEG-4 audio object type 34, Layer-3).
pub(crate) const MP3_CODEC_STRING: &str = "mp4a.40.34";

/// Enhanced RTMP packet types (shared by audio and video) that the locators act on.
const EX_SEQUENCE_START: u8 = 0;
const EX_CODED_FRAMES: u8 = 1;
const EX_MOD_EX: u8 = 7;
const EX_VIDEO_MULTITRACK: u8 = 6;
const EX_AUDIO_MULTITRACK: u8 = 5;
/// Bytes before the record of a legacy AVC/HEVC sequence header: flags, packet type, CTS.
const LEGACY_AVC_HEADER: usize = 5;

/// Codecs whose parameters only a sequence header carries.
fn video_needs_config(codec: VideoCodec) -> bool {
    matches!(
        codec,
        VideoCodec::Avc | VideoCodec::Hevc | VideoCodec::Av1 | VideoCodec::Vp9 | VideoCodec::Vp8
    )
}

/// Finds the decoder configuration record in a video tag body.
fn locate_video_record(body: &[u8]) -> Result<(VideoCodec, &[u8]), ParamsError> {
    let header = parse_video_header(body).map_err(|_| ParamsError::Malformed("FLV video tag"))?;
    let codec = header.codec;
    let not_config = || {
        if video_needs_config(codec) {
            ParamsError::NotSequenceHeader
        } else {
            ParamsError::Unsupported(codec.name())
        }
    };
    if header.packet == VideoPacket::Command {
        return Err(not_config());
    }
    if !header.enhanced {
        if !matches!(codec, VideoCodec::Avc | VideoCodec::Hevc) {
            return Err(ParamsError::Unsupported(codec.name()));
        }
        if header.packet != VideoPacket::SequenceStart {
            return Err(ParamsError::NotSequenceHeader);
        }
        // parse_video_header checked that the five header bytes are there.
        let record = body.get(LEGACY_AVC_HEADER..).unwrap_or_default();
        return Ok((codec, record));
    }
    let (packet_type, rest) = skip_mod_ex(body, "FLV video tag")?;
    if packet_type == EX_VIDEO_MULTITRACK {
        return Err(ParamsError::Unsupported("multitrack"));
    }
    if packet_type != EX_SEQUENCE_START {
        return Err(not_config());
    }
    if !video_needs_config(codec) {
        return Err(ParamsError::Unsupported(codec.name()));
    }
    let record = rest
        .get(4..)
        .ok_or(ParamsError::Malformed("FLV video tag"))?;
    Ok((codec, record))
}

/// The packet type, codec and payload of an Enhanced RTMP audio body (not multitrack).
fn locate_ex_audio(body: &[u8]) -> Result<(u8, AudioCodec, &[u8]), ParamsError> {
    let (packet_type, rest) = skip_mod_ex(body, "FLV audio tag")?;
    if packet_type == EX_AUDIO_MULTITRACK {
        return Err(ParamsError::Unsupported("multitrack"));
    }
    match rest {
        [a, b, c, d, payload @ ..] => Ok((
            packet_type,
            AudioCodec::from_fourcc([*a, *b, *c, *d]),
            payload,
        )),
        _ => Err(ParamsError::Malformed("FLV audio tag")),
    }
}

/// Returns the real packet type of an Enhanced RTMP body and what follows it, past any ModEx
/// blocks (whose data, sub-millisecond timestamp offsets, does not matter here). Each block is
/// at least two bytes, so the loop ends with the input.
fn skip_mod_ex<'a>(body: &'a [u8], what: &'static str) -> Result<(u8, &'a [u8]), ParamsError> {
    let malformed = ParamsError::Malformed(what);
    let (&b0, mut rest) = body.split_first().ok_or(malformed)?;
    let mut packet_type = b0 & 0x0F;
    while packet_type == EX_MOD_EX {
        let (&size, tail) = rest.split_first().ok_or(ParamsError::Malformed(what))?;
        let mut size = usize::from(size) + 1;
        let mut tail = tail;
        if size == 256 {
            let (wide, t) = tail
                .split_at_checked(2)
                .ok_or(ParamsError::Malformed(what))?;
            size = usize::from(u16::from_be_bytes([wide[0], wide[1]])) + 1;
            tail = t;
        }
        let tail = tail.get(size..).ok_or(ParamsError::Malformed(what))?;
        let (&next, tail) = tail.split_first().ok_or(ParamsError::Malformed(what))?;
        packet_type = next & 0x0F;
        rest = tail;
    }
    Ok((packet_type, rest))
}

/// SoundRate of the legacy AudioTagHeader, in Hz.
const LEGACY_RATES: [u32; 4] = [5_512, 11_025, 22_050, 44_100];

fn legacy_audio(
    body: &[u8],
    codec: AudioCodec,
    packet: AudioPacket,
) -> Result<AudioParams, ParamsError> {
    // parse_audio_header succeeded, so there is a first byte.
    let b0 = body.first().copied().unwrap_or_default();
    let format = b0 >> 4;
    match codec {
        AudioCodec::Aac if packet == AudioPacket::SequenceStart => {
            aac::asc_params(body.get(2..).unwrap_or_default())
        }
        AudioCodec::Aac => Err(ParamsError::NotSequenceHeader),
        AudioCodec::Legacy(_) | AudioCodec::FourCc(_) => {
            Err(ParamsError::Unsupported(codec.name()))
        }
        _ => {
            // Codecs with fixed rates ignore the SoundRate bits (Adobe's FLV spec, E.4.2.1):
            // format 4 is Nellymoser 16 kHz, 5 Nellymoser 8 kHz, 14 MP3 8 kHz.
            let sample_rate = match format {
                4 | 11 => 16_000,
                5 | 7 | 8 | 14 => 8_000,
                _ => LEGACY_RATES[usize::from((b0 >> 2) & 3)],
            };
            Ok(AudioParams {
                codec,
                profile: None,
                sample_rate,
                channels: 1 + (b0 & 1),
                codec_string: (codec == AudioCodec::Mp3).then(|| MP3_CODEC_STRING.to_owned()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bits::tests::hex;
    use super::*;
    use proptest::prelude::*;

    fn ex(packet_type: u8, fourcc: &[u8; 4], record: &[u8]) -> Vec<u8> {
        let mut body = vec![0x90 | packet_type];
        body.extend_from_slice(fourcc);
        body.extend_from_slice(record);
        body
    }

    fn legacy(b0: u8, record: &[u8]) -> Vec<u8> {
        let mut body = vec![b0, 0, 0, 0, 0];
        body.extend_from_slice(record);
        body
    }

    /// Every video body built from the real samples, with the size ffprobe reported.
    fn video_samples() -> Vec<(Vec<u8>, (u32, u32))> {
        let avc = [
            (samples::AVC_720P30_HIGH, (1280, 720)),
            (samples::AVC_480P25_BASELINE, (854, 480)),
            (samples::AVC_1080P60_MAIN, (1920, 1080)),
            (samples::AVC_1080P23_444, (1920, 1080)),
            (samples::AVC_480P30_HIGH10, (854, 480)),
            (samples::AVC_360P30_422, (640, 360)),
            (samples::AVC_1080I25_HIGH, (1920, 1080)),
        ];
        let mut out = Vec::new();
        for (h, size) in avc {
            let body = hex(h);
            out.push((ex(0, b"avc1", &body[5..]), size));
            out.push((body, size));
        }
        for (h, size) in [
            (samples::HEVC_720P30_MAIN, (1280, 720)),
            (samples::HEVC_480P25_MAIN10, (854, 480)),
            (samples::HEVC_1080P60_MAIN, (1920, 1080)),
        ] {
            out.push((legacy(0x1C, &hex(h)), size));
            out.push((ex(0, b"hvc1", &hex(h)), size));
        }
        for (h, size) in [
            (samples::AV1_720P30_AOM, (1280, 720)),
            (samples::AV1_480P25_SVT, (854, 480)),
            (samples::AV1_480P25_AOM_TIMING, (854, 480)),
            (samples::AV1_1080P60_AOM_10BIT, (1920, 1080)),
        ] {
            out.push((ex(0, b"av01", &hex(h)), size));
        }
        for h in [samples::VP9_720P30, samples::VP9_480P25_444] {
            out.push((ex(0, b"vp09", &hex(h)), (0, 0)));
        }
        out
    }

    fn audio_samples() -> Vec<(Vec<u8>, u32, u8)> {
        let mut out = vec![
            (hex(samples::AAC_22K_MONO), 22_050, 1),
            (hex(samples::AAC_44K_STEREO), 44_100, 2),
            (ex(0, b"mp4a", &hex(samples::AAC_22K_MONO)[2..]), 22_050, 1),
            (ex(0, b"Opus", &hex(samples::OPUS_HEAD_STEREO)), 48_000, 2),
            (ex(0, b"Opus", &hex(samples::OPUS_HEAD_MONO_24K)), 48_000, 1),
            (
                ex(0, b"fLaC", &hex(samples::FLAC_STREAMINFO_44K_STEREO)),
                44_100,
                2,
            ),
            (ex(1, b"ac-3", &hex(samples::AC3_48K_51)), 48_000, 6),
            (ex(1, b"ec-3", &hex(samples::EAC3_32K_MONO)), 32_000, 1),
            (
                ex(1, b".mp3", &hex(samples::MP3_44K_STEREO)[1..]),
                44_100,
                2,
            ),
        ];
        for (h, rate, channels) in [
            (samples::MP3_44K_STEREO, 44_100, 2),
            (samples::MP3_22K_MONO, 22_050, 1),
            (samples::SPEEX_16K, 16_000, 1),
            (samples::NELLYMOSER_8K, 8_000, 1),
            (samples::NELLYMOSER_16K, 16_000, 1),
            (samples::G711A_8K, 8_000, 1),
            (samples::G711U_8K, 8_000, 1),
        ] {
            out.push((hex(h), rate, channels));
        }
        out
    }

    #[test]
    fn every_video_sample_through_both_header_forms() {
        for (body, size) in video_samples() {
            let p = video_params(&body).unwrap_or_else(|e| panic!("{e} for {:02x?}", &body[..5]));
            assert_eq!((p.width, p.height), size, "{:02x?}", &body[..5]);
            assert!(p.codec_string.is_some());
            assert!(p.profile.is_some());
        }
    }

    #[test]
    fn legacy_and_enhanced_agree() {
        let body = hex(samples::AVC_720P30_HIGH);
        assert_eq!(
            video_params(&body).unwrap(),
            video_params(&ex(0, b"avc1", &body[5..])).unwrap()
        );
        let rec = hex(samples::HEVC_720P30_MAIN);
        let p = video_params(&legacy(0x1C, &rec)).unwrap();
        assert_eq!(p, video_params(&ex(0, b"hvc1", &rec)).unwrap());
        assert_eq!(p.codec, VideoCodec::Hevc);
        assert_eq!(p.codec_string.as_deref(), Some("hvc1.1.6.L93.90"));
        let p = video_params(&ex(0, b"vp09", &hex(samples::VP9_720P30))).unwrap();
        assert_eq!(p.codec_string.as_deref(), Some("vp09.00.31.08"));
        let p = video_params(&ex(0, b"vp08", &hex(samples::VP9_720P30))).unwrap();
        assert_eq!(p.codec, VideoCodec::Vp8);
        let p = video_params(&ex(0, b"av01", &hex(samples::AV1_720P30_AOM))).unwrap();
        assert_eq!(p.codec_string.as_deref(), Some("av01.0.05M.08"));
    }

    #[test]
    fn mod_ex_before_sequence_start() {
        let rec = hex(samples::AV1_480P25_SVT);
        // One ModEx block of 3 bytes, then packet type 0.
        let mut body = vec![0x97, 0x02, 0, 0, 1, 0x00];
        body.extend_from_slice(b"av01");
        body.extend_from_slice(&rec);
        assert_eq!(video_params(&body).unwrap().width, 854);
        // A ModEx block with the 16-bit size escape (300 bytes), then SequenceStart.
        let mut body = vec![0x97, 0xFF, 0x01, 0x2B];
        body.extend_from_slice(&[0; 300]);
        body.push(0x00);
        body.extend_from_slice(b"av01");
        body.extend_from_slice(&rec);
        assert_eq!(video_params(&body).unwrap().height, 480);
        // Audio too.
        let mut body = vec![0x97, 0x00, 0xAA, 0x00];
        body.extend_from_slice(b"Opus");
        body.extend_from_slice(&hex(samples::OPUS_HEAD_STEREO));
        assert_eq!(audio_params(&body).unwrap().channels, 2);
    }

    #[test]
    fn not_sequence_headers() {
        let nsh = Err(ParamsError::NotSequenceHeader);
        let nsh_audio = Err(ParamsError::NotSequenceHeader);
        assert_eq!(video_params(&[0x17, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x65]), nsh);
        assert_eq!(video_params(&[0x27, 0x02, 0, 0, 0]), nsh);
        assert_eq!(video_params(&[0x2C, 0x01, 0, 0, 0, 0]), nsh);
        assert_eq!(video_params(&[0x57, 0x00, 0, 0, 0, 1]), nsh);
        assert_eq!(video_params(b"\x91hvc1\x00\x00\x00\x00"), nsh);
        assert_eq!(video_params(b"\x93av01\x12\x00"), nsh);
        assert_eq!(video_params(b"\x92vp09"), nsh);
        assert_eq!(video_params(b"\x94av01\x02\x00"), nsh);
        assert_eq!(audio_params(&[0xAF, 0x01, 0x21, 0x10]), nsh_audio);
        assert_eq!(audio_params(b"\x91Opus\xFC"), nsh_audio);
        assert_eq!(audio_params(b"\x91mp4a\x21"), nsh_audio);
        assert_eq!(audio_params(b"\x91fLaC\xFF\xF8"), nsh_audio);
        assert_eq!(audio_params(b"\x90.mp3"), nsh_audio);
    }

    #[test]
    fn unsupported_and_malformed() {
        assert_eq!(
            video_params(&[0x12, 0, 0, 0]),
            Err(ParamsError::Unsupported("h263"))
        );
        assert_eq!(
            video_params(&[0x14, 0]),
            Err(ParamsError::Unsupported("vp6"))
        );
        assert_eq!(
            video_params(b"\x90abcd\x01"),
            Err(ParamsError::Unsupported("unknown"))
        );
        let mut multi = b"\x96\x00hvc1\x00".to_vec();
        multi.extend_from_slice(&hex(samples::HEVC_720P30_MAIN));
        assert_eq!(
            video_params(&multi),
            Err(ParamsError::Unsupported("multitrack"))
        );
        assert_eq!(
            audio_params(b"\x95\x00Opus\x00OpusHead"),
            Err(ParamsError::Unsupported("multitrack"))
        );
        assert_eq!(
            audio_params(b"\x90abcd"),
            Err(ParamsError::Unsupported("unknown"))
        );
        assert_eq!(
            audio_params(&[0xD2, 0]),
            Err(ParamsError::Unsupported("unknown"))
        );
        assert_eq!(
            video_params(&[]),
            Err(ParamsError::Malformed("FLV video tag"))
        );
        assert_eq!(
            audio_params(&[]),
            Err(ParamsError::Malformed("FLV audio tag"))
        );
        assert_eq!(
            video_params(&[0x17, 0, 0, 0, 0]),
            Err(ParamsError::Malformed("AVC"))
        );
        assert_eq!(
            video_params(b"\x90hvc1"),
            Err(ParamsError::Malformed("HEVC"))
        );
        assert_eq!(audio_params(&[0xAF, 0]), Err(ParamsError::Malformed("AAC")));
    }

    #[test]
    fn every_audio_sample() {
        for (body, rate, channels) in audio_samples() {
            let p = audio_params(&body).unwrap_or_else(|e| panic!("{e} for {:02x?}", &body[..2]));
            assert_eq!(
                (p.sample_rate, p.channels),
                (rate, channels),
                "{:02x?}",
                &body[..5]
            );
        }
    }

    #[test]
    fn legacy_flags() {
        // ffprobe on the real files: mp3 44100/2 and 22050/1, speex 16000/1, nellymoser
        // 8000/1 and 16000/1, pcm_alaw and pcm_mulaw 8000/1.
        let p = audio_params(&hex(samples::MP3_44K_STEREO)).unwrap();
        assert_eq!(p.codec, AudioCodec::Mp3);
        assert_eq!(p.codec_string.as_deref(), Some("mp4a.40.34"));
        assert_eq!(p.profile, None);
        assert_eq!(
            audio_params(&hex(samples::SPEEX_16K)).unwrap().codec,
            AudioCodec::Speex
        );
        assert_eq!(
            audio_params(&hex(samples::G711U_8K)).unwrap().codec_string,
            None
        );
        // The SoundRate bits for everything else, 5.5 kHz included, and MP3 8 kHz.
        let p = audio_params(&[0x03, 0]).unwrap();
        assert_eq!(
            (p.codec, p.sample_rate, p.channels),
            (AudioCodec::LinearPcmPlatform, 5_512, 2)
        );
        let p = audio_params(&[0x36, 0]).unwrap();
        assert_eq!(
            (p.codec, p.sample_rate, p.channels),
            (AudioCodec::LinearPcmLe, 11_025, 1)
        );
        let p = audio_params(&[0x1F, 0]).unwrap();
        assert_eq!((p.codec, p.sample_rate), (AudioCodec::Adpcm, 44_100));
        let p = audio_params(&[0xEF, 0]).unwrap();
        assert_eq!(
            (p.codec, p.sample_rate, p.channels),
            (AudioCodec::Mp3, 8_000, 2)
        );
        let p = audio_params(&[0x6A, 0]).unwrap();
        assert_eq!((p.codec, p.sample_rate), (AudioCodec::Nellymoser, 22_050));
    }

    #[test]
    fn enhanced_audio_codecs() {
        let p = audio_params(&ex(0, b"mp4a", &[0x2B, 0x11, 0x88, 0x00])).unwrap();
        assert_eq!(p.profile.as_deref(), Some("HE-AAC"));
        assert_eq!(p.sample_rate, 48_000);
        let p = audio_params(&ex(0, b"ac-3", &[])).unwrap();
        assert_eq!((p.codec, p.sample_rate), (AudioCodec::Ac3, 0));
        let p = audio_params(&ex(4, b"ec-3", &[0, 2])).unwrap();
        assert_eq!((p.codec, p.channels), (AudioCodec::Eac3, 0));
        let p = audio_params(&ex(1, b"ec-3", &hex(samples::EAC3_48K_51))).unwrap();
        assert_eq!(p.channels, 6);
    }

    /// Every record the tests know, with the function that parses it directly.
    fn raw_records() -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = video_samples().into_iter().map(|(b, _)| b).collect();
        v.extend(audio_samples().into_iter().map(|(b, _, _)| b));
        v
    }

    #[test]
    fn every_prefix_of_every_sample_is_handled() {
        for body in raw_records() {
            for len in 0..=body.len() {
                let _ = video_params(&body[..len]);
                let _ = audio_params(&body[..len]);
            }
            // The records on their own, through each codec parser.
            let rec = if body.len() > 5 {
                &body[5..]
            } else {
                &body[..]
            };
            for len in 0..=rec.len() {
                let r = &rec[..len];
                let _ = avc::avcc_params(r);
                let _ = hevc::hvcc_params(r);
                let _ = av1::av1c_params(r);
                let _ = vp9::vpcc_params(r, VideoCodec::Vp9);
                let _ = aac::asc_params(r);
                let _ = opus::opus_head_params(r);
                let _ = misc_audio::flac_params(r);
                let _ = misc_audio::ac3_params(r, AudioCodec::Ac3);
                let _ = misc_audio::mp3_frame_params(r);
            }
        }
    }

    #[test]
    fn truncated_samples_are_errors_not_garbage() {
        // Cutting a video record anywhere before the SPS / sequence header ends must not yield
        // a different, plausible-looking size; 0x0 (unknown) is fine for an av1C cut before its
        // configOBUs, which the format allows to be empty.
        for (body, size) in video_samples() {
            for len in 0..body.len() {
                if let Ok(p) = video_params(&body[..len]) {
                    let got = (p.width, p.height);
                    assert!(
                        got == size || got == (0, 0),
                        "prefix {len} of {:02x?}",
                        &body[..5]
                    );
                }
            }
        }
    }

    proptest! {
        #[test]
        fn prop_random_bodies_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = video_params(&body);
            let _ = audio_params(&body);
        }

        #[test]
        fn prop_random_records_behind_valid_headers(
            prefix in prop::sample::select(vec![
                &b"\x17\x00\x00\x00\x00"[..], b"\x1c\x00\x00\x00\x00", b"\x90avc1", b"\x90hvc1",
                b"\x90av01", b"\x90vp09", b"\xaf\x00", b"\x90mp4a", b"\x90Opus", b"\x90fLaC",
                b"\x91ac-3", b"\x91ec-3", b"\x91.mp3", b"\x90av01\x81",
            ]),
            record in prop::collection::vec(any::<u8>(), 0..128),
        ) {
            let mut body = prefix.to_vec();
            body.extend_from_slice(&record);
            let _ = video_params(&body);
            let _ = audio_params(&body);
        }

        #[test]
        fn prop_mutated_samples_never_panic(
            pick in any::<prop::sample::Index>(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        ) {
            let records = raw_records();
            let mut body = records[pick.index(records.len())].clone();
            for (at, x) in flips {
                let i = at.index(body.len());
                body[i] ^= x;
            }
            let _ = video_params(&body);
            let _ = audio_params(&body);
        }
    }
}
