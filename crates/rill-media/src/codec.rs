//! Codec identifiers: the legacy FLV ids and the FourCCs of Enhanced RTMP.
//!
//! Both signalling schemes map onto the same enums so that the rest of the server never has to
//! care whether a publisher used the legacy header or the Enhanced RTMP one.

/// A video codec as signalled in an FLV/RTMP video tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// Legacy id 2.
    SorensonH263,
    /// Legacy id 3.
    ScreenVideo,
    /// Legacy id 4.
    Vp6,
    /// Legacy id 5.
    Vp6Alpha,
    /// Legacy id 6.
    ScreenVideo2,
    /// Legacy id 7, or FourCC `avc1`.
    Avc,
    /// Legacy id 12 (the Chinese CDN convention), or FourCC `hvc1`.
    Hevc,
    /// FourCC `av01`.
    Av1,
    /// FourCC `vp09`.
    Vp9,
    /// FourCC `vp08`.
    Vp8,
    /// Any other legacy id.
    Legacy(u8),
    /// Any other FourCC.
    FourCc(u32),
}

/// An audio codec as signalled in an FLV/RTMP audio tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// Sound format 0.
    LinearPcmPlatform,
    /// Sound format 1.
    Adpcm,
    /// Sound format 2 (and 14, MP3 8 kHz).
    Mp3,
    /// Sound format 3.
    LinearPcmLe,
    /// Sound formats 4, 5, 6.
    Nellymoser,
    /// Sound format 7.
    G711A,
    /// Sound format 8.
    G711U,
    /// Sound format 10, or FourCC `mp4a`.
    Aac,
    /// Sound format 11.
    Speex,
    /// FourCC `Opus`.
    Opus,
    /// FourCC `fLaC`.
    Flac,
    /// FourCC `ac-3`.
    Ac3,
    /// FourCC `ec-3`.
    Eac3,
    /// Any other legacy sound format.
    Legacy(u8),
    /// Any other FourCC.
    FourCc(u32),
}

/// The codec of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Video(VideoCodec),
    Audio(AudioCodec),
    /// Script data (metadata).
    Data,
}

impl Codec {
    /// Short lowercase name for logs and the API; `"data"` for script data.
    pub fn name(&self) -> &'static str {
        match self {
            Codec::Video(v) => v.name(),
            Codec::Audio(a) => a.name(),
            Codec::Data => "data",
        }
    }
}

impl VideoCodec {
    /// Short lowercase name for logs and the API (`"h264"`, `"hevc"`, `"av1"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            VideoCodec::SorensonH263 => "h263",
            VideoCodec::ScreenVideo => "screen",
            VideoCodec::Vp6 => "vp6",
            VideoCodec::Vp6Alpha => "vp6a",
            VideoCodec::ScreenVideo2 => "screen2",
            VideoCodec::Avc => "h264",
            VideoCodec::Hevc => "hevc",
            VideoCodec::Av1 => "av1",
            VideoCodec::Vp9 => "vp9",
            VideoCodec::Vp8 => "vp8",
            VideoCodec::Legacy(_) | VideoCodec::FourCc(_) => "unknown",
        }
    }

    /// Maps the 4-bit CodecID of a legacy VideoTagHeader. Id 12 is HEVC: not in Adobe's spec, but
    /// the de facto convention of Chinese CDNs and the encoders that feed them.
    pub fn from_legacy_id(id: u8) -> VideoCodec {
        forward(&VIDEO_LEGACY_IDS, id).unwrap_or(VideoCodec::Legacy(id))
    }

    /// The legacy CodecID for this codec, if it has one.
    pub fn legacy_id(&self) -> Option<u8> {
        match self {
            VideoCodec::Legacy(id) => Some(*id),
            codec => backward(&VIDEO_LEGACY_IDS, *codec),
        }
    }

    /// Maps an Enhanced RTMP VideoFourCc.
    pub fn from_fourcc(fourcc: [u8; 4]) -> VideoCodec {
        forward(&VIDEO_FOURCCS, fourcc).unwrap_or(VideoCodec::FourCc(u32::from_be_bytes(fourcc)))
    }

    /// The Enhanced RTMP FourCC for this codec; `None` for codecs only the legacy header can carry.
    pub fn fourcc(&self) -> Option<[u8; 4]> {
        match self {
            VideoCodec::FourCc(v) => Some(v.to_be_bytes()),
            codec => backward(&VIDEO_FOURCCS, *codec),
        }
    }
}

impl AudioCodec {
    /// Short lowercase name for logs and the API (`"aac"`, `"mp3"`, `"opus"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            AudioCodec::LinearPcmPlatform => "pcm",
            AudioCodec::Adpcm => "adpcm",
            AudioCodec::Mp3 => "mp3",
            AudioCodec::LinearPcmLe => "pcm_le",
            AudioCodec::Nellymoser => "nellymoser",
            AudioCodec::G711A => "g711a",
            AudioCodec::G711U => "g711u",
            AudioCodec::Aac => "aac",
            AudioCodec::Speex => "speex",
            AudioCodec::Opus => "opus",
            AudioCodec::Flac => "flac",
            AudioCodec::Ac3 => "ac3",
            AudioCodec::Eac3 => "eac3",
            AudioCodec::Legacy(_) | AudioCodec::FourCc(_) => "unknown",
        }
    }

    /// Maps the 4-bit SoundFormat of a legacy AudioTagHeader. Format 9 is not a codec (it announces
    /// the Enhanced RTMP ExAudioTagHeader), so it maps to `Legacy(9)`.
    pub fn from_sound_format(format: u8) -> AudioCodec {
        // Formats that share a codec with the canonical one in the table: MP3 8 kHz, and
        // Nellymoser 16 kHz mono and 8 kHz mono.
        let canonical = match format {
            14 => 2,
            4 | 5 => 6,
            other => other,
        };
        forward(&AUDIO_SOUND_FORMATS, canonical).unwrap_or(AudioCodec::Legacy(format))
    }

    /// The legacy SoundFormat for this codec, if it has one (Nellymoser maps to 6, the generic
    /// variant; MP3 to 2).
    pub fn sound_format(&self) -> Option<u8> {
        match self {
            AudioCodec::Legacy(f) => Some(*f),
            codec => backward(&AUDIO_SOUND_FORMATS, *codec),
        }
    }

    /// Maps an Enhanced RTMP AudioFourCc.
    pub fn from_fourcc(fourcc: [u8; 4]) -> AudioCodec {
        forward(&AUDIO_FOURCCS, fourcc).unwrap_or(AudioCodec::FourCc(u32::from_be_bytes(fourcc)))
    }

    /// The Enhanced RTMP FourCC for this codec; `None` for codecs only the legacy header can carry.
    pub fn fourcc(&self) -> Option<[u8; 4]> {
        match self {
            AudioCodec::FourCc(v) => Some(v.to_be_bytes()),
            codec => backward(&AUDIO_FOURCCS, *codec),
        }
    }
}

/// Legacy VideoTagHeader CodecIDs. One table serves both directions so they cannot drift apart.
const VIDEO_LEGACY_IDS: [(u8, VideoCodec); 7] = [
    (2, VideoCodec::SorensonH263),
    (3, VideoCodec::ScreenVideo),
    (4, VideoCodec::Vp6),
    (5, VideoCodec::Vp6Alpha),
    (6, VideoCodec::ScreenVideo2),
    (7, VideoCodec::Avc),
    (12, VideoCodec::Hevc),
];

/// Enhanced RTMP VideoFourCcs.
const VIDEO_FOURCCS: [([u8; 4], VideoCodec); 5] = [
    (*b"avc1", VideoCodec::Avc),
    (*b"hvc1", VideoCodec::Hevc),
    (*b"av01", VideoCodec::Av1),
    (*b"vp09", VideoCodec::Vp9),
    (*b"vp08", VideoCodec::Vp8),
];

/// Legacy AudioTagHeader SoundFormats, one canonical format per codec (the aliases are folded in
/// [`AudioCodec::from_sound_format`]).
const AUDIO_SOUND_FORMATS: [(u8, AudioCodec); 9] = [
    (0, AudioCodec::LinearPcmPlatform),
    (1, AudioCodec::Adpcm),
    (2, AudioCodec::Mp3),
    (3, AudioCodec::LinearPcmLe),
    (6, AudioCodec::Nellymoser),
    (7, AudioCodec::G711A),
    (8, AudioCodec::G711U),
    (10, AudioCodec::Aac),
    (11, AudioCodec::Speex),
];

/// Enhanced RTMP AudioFourCcs.
const AUDIO_FOURCCS: [([u8; 4], AudioCodec); 6] = [
    (*b"Opus", AudioCodec::Opus),
    (*b"fLaC", AudioCodec::Flac),
    (*b"ac-3", AudioCodec::Ac3),
    (*b"ec-3", AudioCodec::Eac3),
    (*b"mp4a", AudioCodec::Aac),
    (*b".mp3", AudioCodec::Mp3),
];

/// The codec a table gives for a wire value.
fn forward<K: PartialEq, C: Copy>(table: &[(K, C)], key: K) -> Option<C> {
    table.iter().find(|(k, _)| *k == key).map(|&(_, c)| c)
}

/// The wire value a table gives for a codec.
fn backward<K: Copy, C: PartialEq>(table: &[(K, C)], codec: C) -> Option<K> {
    table.iter().find(|(_, c)| *c == codec).map(|&(k, _)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_names() {
        let cases = [
            (VideoCodec::SorensonH263, "h263"),
            (VideoCodec::ScreenVideo, "screen"),
            (VideoCodec::Vp6, "vp6"),
            (VideoCodec::Vp6Alpha, "vp6a"),
            (VideoCodec::ScreenVideo2, "screen2"),
            (VideoCodec::Avc, "h264"),
            (VideoCodec::Hevc, "hevc"),
            (VideoCodec::Av1, "av1"),
            (VideoCodec::Vp9, "vp9"),
            (VideoCodec::Vp8, "vp8"),
            (VideoCodec::Legacy(9), "unknown"),
            (VideoCodec::FourCc(0x6162_6364), "unknown"),
        ];
        for (codec, name) in cases {
            assert_eq!(codec.name(), name, "{codec:?}");
        }
    }

    #[test]
    fn audio_names() {
        let cases = [
            (AudioCodec::LinearPcmPlatform, "pcm"),
            (AudioCodec::Adpcm, "adpcm"),
            (AudioCodec::Mp3, "mp3"),
            (AudioCodec::LinearPcmLe, "pcm_le"),
            (AudioCodec::Nellymoser, "nellymoser"),
            (AudioCodec::G711A, "g711a"),
            (AudioCodec::G711U, "g711u"),
            (AudioCodec::Aac, "aac"),
            (AudioCodec::Speex, "speex"),
            (AudioCodec::Opus, "opus"),
            (AudioCodec::Flac, "flac"),
            (AudioCodec::Ac3, "ac3"),
            (AudioCodec::Eac3, "eac3"),
            (AudioCodec::Legacy(13), "unknown"),
            (AudioCodec::FourCc(1), "unknown"),
        ];
        for (codec, name) in cases {
            assert_eq!(codec.name(), name, "{codec:?}");
        }
    }

    #[test]
    fn codec_names() {
        assert_eq!(Codec::Video(VideoCodec::Avc).name(), "h264");
        assert_eq!(Codec::Audio(AudioCodec::Opus).name(), "opus");
        assert_eq!(Codec::Data.name(), "data");
    }

    #[test]
    fn legacy_video_ids() {
        assert_eq!(VideoCodec::from_legacy_id(2), VideoCodec::SorensonH263);
        assert_eq!(VideoCodec::from_legacy_id(3), VideoCodec::ScreenVideo);
        assert_eq!(VideoCodec::from_legacy_id(4), VideoCodec::Vp6);
        assert_eq!(VideoCodec::from_legacy_id(5), VideoCodec::Vp6Alpha);
        assert_eq!(VideoCodec::from_legacy_id(6), VideoCodec::ScreenVideo2);
        assert_eq!(VideoCodec::from_legacy_id(7), VideoCodec::Avc);
        assert_eq!(VideoCodec::from_legacy_id(12), VideoCodec::Hevc);
        assert_eq!(VideoCodec::from_legacy_id(0), VideoCodec::Legacy(0));
        assert_eq!(VideoCodec::from_legacy_id(13), VideoCodec::Legacy(13));
        for id in 0..16u8 {
            assert_eq!(VideoCodec::from_legacy_id(id).legacy_id(), Some(id));
        }
        assert_eq!(VideoCodec::Av1.legacy_id(), None);
    }

    #[test]
    fn video_fourccs_round_trip() {
        for (cc, codec) in [
            (*b"avc1", VideoCodec::Avc),
            (*b"hvc1", VideoCodec::Hevc),
            (*b"av01", VideoCodec::Av1),
            (*b"vp09", VideoCodec::Vp9),
            (*b"vp08", VideoCodec::Vp8),
            (*b"xyz1", VideoCodec::FourCc(0x7879_7A31)),
        ] {
            assert_eq!(VideoCodec::from_fourcc(cc), codec);
            assert_eq!(codec.fourcc(), Some(cc));
        }
        assert_eq!(VideoCodec::Vp6.fourcc(), None);
        assert_eq!(VideoCodec::Legacy(1).fourcc(), None);
    }

    #[test]
    fn sound_formats() {
        let cases = [
            (0, AudioCodec::LinearPcmPlatform),
            (1, AudioCodec::Adpcm),
            (2, AudioCodec::Mp3),
            (3, AudioCodec::LinearPcmLe),
            (4, AudioCodec::Nellymoser),
            (5, AudioCodec::Nellymoser),
            (6, AudioCodec::Nellymoser),
            (7, AudioCodec::G711A),
            (8, AudioCodec::G711U),
            (9, AudioCodec::Legacy(9)),
            (10, AudioCodec::Aac),
            (11, AudioCodec::Speex),
            (12, AudioCodec::Legacy(12)),
            (13, AudioCodec::Legacy(13)),
            (14, AudioCodec::Mp3),
            (15, AudioCodec::Legacy(15)),
        ];
        for (format, codec) in cases {
            assert_eq!(AudioCodec::from_sound_format(format), codec, "{format}");
            let back = codec.sound_format().unwrap();
            assert_eq!(AudioCodec::from_sound_format(back), codec);
        }
        assert_eq!(AudioCodec::Opus.sound_format(), None);
    }

    #[test]
    fn audio_fourccs_round_trip() {
        for (cc, codec) in [
            (*b"Opus", AudioCodec::Opus),
            (*b"fLaC", AudioCodec::Flac),
            (*b"ac-3", AudioCodec::Ac3),
            (*b"ec-3", AudioCodec::Eac3),
            (*b"mp4a", AudioCodec::Aac),
            (*b".mp3", AudioCodec::Mp3),
            (*b"opus", AudioCodec::FourCc(0x6F70_7573)),
        ] {
            assert_eq!(AudioCodec::from_fourcc(cc), codec);
            assert_eq!(codec.fourcc(), Some(cc));
        }
        assert_eq!(AudioCodec::Speex.fourcc(), None);
    }
}
