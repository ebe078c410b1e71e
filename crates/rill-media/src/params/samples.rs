//! Real encoder output (Debian ffmpeg 5.1 with libx264, libx265 3.5, libaom, libsvtav1, libvpx,
//! libopus, libmp3lame, libspeex and ffmpeg's own AAC/Nellymoser/G.711 encoders), as hex, for the
//! parser tests. The expected values in the tests are what `ffprobe -show_streams` reported for
//! the same files.

/// x264 1280x720 30 fps, FLV video tag body.
pub(crate) const AVC_720P30_HIGH: &str = concat!(
    "17000000000164001fffe1001a6764001facd9405005bb0110000003001000000303c0f183196001",
    "000668ebe3cb22c0fdf8f800",
);

/// x264 -profile:v baseline 854x480 25 fps, FLV video tag body.
pub(crate) const AVC_480P25_BASELINE: &str = concat!(
    "17000000000142c01effe100196742c01ed900d83de6f011000003000100000300320f162e480100",
    "0568cb83cb20",
);

/// x264 -profile:v main 1920x1080 60 fps, FLV video tag body.
pub(crate) const AVC_1080P60_MAIN: &str = concat!(
    "1700000000014d402affe1001a674d402aeca03c0113f2e022000003000200000300f01e30632c01",
    "000568ebe3cb20",
);

/// x264 yuv444p 1920x1080 24000/1001 fps, FLV video tag body.
pub(crate) const AVC_1080P23_444: &str = concat!(
    "170000000001f40028ffe1001a67f40028919b280f0044fc4e022000007d2000177001e30632c001",
    "000668ebe3c44844fff8f800",
);

/// x264 yuv420p10le 854x480 30 fps, FLV video tag body.
pub(crate) const AVC_480P30_HIGH10: &str = concat!(
    "1700000000016e001fffe1001b676e001fa6cd940d83de6f0110000003001000000303c0f1831960",
    "01000668ebe3cb22c0fdfafa00",
);

/// x264 yuv422p 640x360 30 fps, FLV video tag body.
pub(crate) const AVC_360P30_422: &str = concat!(
    "1700000000017a001effe1001a677a001ebcd940a02ff89c0440000003004000000f03c58b658001",
    "000668ebe3cb22c0fef8f800",
);

/// x264 interlaced 1920x1080 25 fps, FLV video tag body.
pub(crate) const AVC_1080I25_HIGH: &str = concat!(
    "170000000001640028ffe1001a67640028acd94078044fde0220000003002000000643e2c5b2c001",
    "000668fba3cb22c0fdf8f800",
);

/// x265 1280x720 30 fps: hvcC from MP4 (VPS/SPS/PPS arrays; the SEI array dropped).
pub(crate) const HEVC_720P30_MAIN: &str = concat!(
    "0101600000009000000000005df000fcfdf8f800000f03200001001840010c01ffff016000000300",
    "90000003000003005d959809210001002b42010101600000030090000003000003005da00280802d",
    "165959a4932bc05a020000030002000003003c1022000100074401c172b46240",
);

/// x265 yuv420p10le 854x480 25 fps: hvcC (VPS/SPS/PPS).
pub(crate) const HEVC_480P25_MAIN10: &str = concat!(
    "0102200000009000000000005af000fcfdfafa00000f03200001001840010c01ffff022000000300",
    "90000003000003005a959809210001002c42010102200000030090000003000003005aa006b201e1",
    "d6d96566924caf016808000003000800000300c84022000100074401c172b46240",
);

/// x265 1920x1080 60 fps: hvcC (VPS/SPS/PPS).
pub(crate) const HEVC_1080P60_MAIN: &str = concat!(
    "0101600000009000000000007bf000fcfdf8f800000f03200001001840010c01ffff016000000300",
    "90000003000003007b959809210001002a42010101600000030090000003000003007ba003c08010",
    "e596566924caf0168080000003008000001e0422000100074401c172b46240",
);

/// libaom 1280x720 30 fps 8-bit: av1C from MP4.
pub(crate) const AV1_720P30_AOM: &str = "81050c000a0b0000002d4cffb3ccaf9004";

/// libsvtav1 854x480 25 fps 8-bit: av1C.
pub(crate) const AV1_480P25_SVT: &str = "81040c000a0b00000024c6abdf00be0010";

/// libaom -aom-params timing-info=constant 854x480 25 fps: av1C.
pub(crate) const AV1_480P25_AOM_TIMING: &str =
    "81040c000a14040000000400000067400004bcc6abdf36be4010";

/// libaom yuv420p10le 1920x1080 60 fps: av1C.
pub(crate) const AV1_1080P60_AOM_10BIT: &str = "81094c000a0b0000004aabbfc3732be501";

/// libvpx-vp9 1280x720 yuv420p: vpcC from MP4.
pub(crate) const VP9_720P30: &str = "01000000001f820202020000";

/// libvpx-vp9 854x480 yuv444p: vpcC.
pub(crate) const VP9_480P25_444: &str = "01000000011e860202020000";

/// ffmpeg aac -ac 1 -ar 22050, FLV audio tag body.
pub(crate) const AAC_22K_MONO: &str = "af00138856e500";

/// ffmpeg aac -ac 2 -ar 44100, FLV audio tag body.
pub(crate) const AAC_44K_STEREO: &str = "af00121056e500";

/// libopus -ac 2: OpusHead from Ogg.
pub(crate) const OPUS_HEAD_STEREO: &str = "4f707573486561640102380180bb0000000000";

/// libopus -ac 1 -ar 24000: OpusHead from Ogg.
pub(crate) const OPUS_HEAD_MONO_24K: &str = "4f7075734865616401013801c05d0000000000";

/// libmp3lame 44100 stereo, first 8 bytes of the FLV audio tag body.
pub(crate) const MP3_44K_STEREO: &str = "2ffffb9064000002";

/// libmp3lame 22050 mono, first 8 bytes of the FLV audio tag body.
pub(crate) const MP3_22K_MONO: &str = "2afff340c4001330";

/// libspeex 16000 mono, first 8 bytes of the FLV audio tag body.
pub(crate) const SPEEX_16K: &str = "b630549822d20000";

/// nellymoser 8000 mono, first 8 bytes of the FLV audio tag body.
pub(crate) const NELLYMOSER_8K: &str = "52a28c73d23dc962";

/// nellymoser 16000 mono, first 8 bytes of the FLV audio tag body.
pub(crate) const NELLYMOSER_16K: &str = "42aabcbb20d6dc6b";

/// pcm_alaw 8000 mono, first 8 bytes of the FLV audio tag body.
pub(crate) const G711A_8K: &str = "72d5e0919e9a9a99";

/// pcm_mulaw 8000 mono, first 8 bytes of the FLV audio tag body.
pub(crate) const G711U_8K: &str = "82ffc8bab3afafb2";

/// ffmpeg -c:a flac, 44100 Hz stereo: the STREAMINFO block (header + 34 bytes) of the .flac file.
pub(crate) const FLAC_STREAMINFO_44K_STEREO: &str =
    "00000022120012000004d20004d20ac442f00000113aa7e129326b5bc5ac89a7bee277e87424";

/// ffmpeg -c:a ac3 -ac 6, 48000 Hz: the first 12 bytes of the first sync frame.
pub(crate) const AC3_48K_51: &str = "0b77b50b1e40ebf8403eff99";

/// ffmpeg -c:a eac3 -ac 6, 48000 Hz: the first 12 bytes of the first sync frame.
pub(crate) const EAC3_48K_51: &str = "0b77037f3f87c00020f82000";

/// ffmpeg -c:a eac3 -ac 1 -ar 32000: the first 12 bytes of the first sync frame.
pub(crate) const EAC3_32K_MONO: &str = "0b77011fb287c00021066078";
