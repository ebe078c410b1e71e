//! Sans-IO conversion of depacketised RTSP media (codec parameters and access units, as retina
//! hands them out) into Rill [`Frame`]s carrying FLV tag bodies.
//!
//! * H.264: legacy FLV AVC tags (`0x17`/`0x27`, AVCPacketType, 24-bit CTS, AVCC NALUs).
//! * H.265: Enhanced RTMP tags with FourCC `hvc1` (SequenceStart, CodedFrames with a CTS, or
//!   CodedFramesX when the CTS is zero).
//! * AAC: legacy FLV AAC tags (`0xAF`, AACPacketType).
//!
//! Timing: RTP timestamps are presentation times in each stream's clock. Both tracks are mapped
//! onto one millisecond timeline (elapsed time since the RTSP session's start, plus
//! [`TIMELINE_ORIGIN_MS`]) so audio and video stay in sync. FLV needs decode timestamps, which RTP
//! does not carry; [`Reorder`] derives them from the reorder depth the SPS declares (see there).
//! Nothing here touches a socket, so every path is unit tested with synthetic input.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use bytes::{BufMut, Bytes, BytesMut};
use rill_media::params::{avc, hevc, unescape_rbsp};
use rill_media::{Frame, FrameKind};

/// Added to every output timestamp. Streams with B-frames need decode timestamps a few frames
/// before the first presentation time, and some servers stamp the first packets slightly before
/// the RTP-Info origin; the headroom keeps both above zero without shifting one track against
/// the other. One second covers the deepest reordering H.264/H.265 allow (16 pictures) at 16 fps
/// and above.
pub const TIMELINE_ORIGIN_MS: i64 = 1000;

/// H.264 and H.265 both bound the decoded picture buffer, and so the reorder depth, by 16.
const MAX_REORDER_DEPTH: u32 = 16;

/// The largest composition offset the FLV CTS field (signed 24 bits) can carry.
const MAX_CTS: i64 = 0x7F_FFFF;

/// Why a stream cannot be converted. Never carries media bytes beyond a few numbers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error(
        "stream has B-frames (reordered pictures) deeper than its SPS declares \
         (declared reorder depth {declared}); decode timestamps cannot be derived"
    )]
    UndeclaredReordering { declared: u32 },
    #[error(
        "stream has B-frames (reordered pictures) and its new SPS raised the reorder depth \
         from {from} to {to} mid-stream; decode timestamps cannot stay monotonic"
    )]
    ReorderDepthGrew { from: u32, to: u32 },
    #[error("the video SPS declares a reorder depth of {0}, more than the codec allows")]
    BadReorderDepth(u32),
    #[error("the {0} SPS could not be parsed: {1}")]
    BadSps(&'static str, String),
    #[error("invalid clock rate 0 on the {0} stream")]
    ZeroClockRate(&'static str),
    #[error("a {0} access unit arrived before its codec parameters")]
    NoParameters(&'static str),
    #[error("a video access unit of {0} bytes is larger than an FLV tag can carry")]
    TooLarge(usize),
}

/// The video codecs this source converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    H265,
}

/// Clock ticks since the session start to milliseconds on the common timeline (floor division,
/// so two tracks with different clock rates round the same way).
pub fn ticks_to_ms(ticks: i64, clock_rate: u32) -> i64 {
    let ms = (i128::from(ticks) * 1000).div_euclid(i128::from(clock_rate.max(1)));
    // An i64 of ticks at >= 1 Hz always fits back in i64 milliseconds... except at 1 Hz near the
    // extremes; saturate rather than wrap there.
    let ms = i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX });
    ms.saturating_add(TIMELINE_ORIGIN_MS)
}

/// A timeline millisecond value as the 32-bit FLV timestamp. FLV timestamps wrap after ~49.7
/// days, like RTMP's; downstream treats them as wrapping, so wrapping (not saturating) keeps a
/// long-lived relay's clock moving. Values before the origin (pathological input) become 0.
pub fn flv_timestamp(ms: i64) -> u32 {
    if ms <= 0 {
        0
    } else {
        // Truncation to the low 32 bits is the wrap.
        (ms as u64 & 0xFFFF_FFFF) as u32
    }
}

/// Derives decode timestamps from presentation timestamps given a bound on reordering.
///
/// The reorder depth `R` (H.264 `max_num_reorder_frames`, H.265 `sps_max_num_reorder_pics`)
/// bounds how many pictures that come earlier in decode order may be displayed later than a
/// given picture. Hence the picture at decode index `k` has output rank `>= k - R`, and its
/// presentation time is at least the `(k - R)`-th smallest presentation time of the stream.
/// Using exactly that value as its DTS gives decode timestamps that are strictly increasing
/// (when PTSs are distinct), never after the PTS, and spaced like the frames themselves. It is
/// known as soon as picture `k` arrives: no later picture can rank that low. So after the first
/// `R` pictures there is no added latency; those first pictures are held until picture `R`
/// arrives and get DTSs extrapolated backwards by one frame duration each.
///
/// A picture whose PTS is earlier than a DTS already handed out proves the declared depth
/// wrong; that is an error rather than a silently wrong timestamp.
#[derive(Debug)]
pub struct Reorder {
    depth: u32,
    /// PTSs of received pictures not yet used as a DTS; at most `depth + 1` entries.
    heap: BinaryHeap<Reverse<i64>>,
    received: u64,
    last_dts: Option<i64>,
}

impl Reorder {
    pub fn new(depth: u32) -> Reorder {
        Reorder {
            depth,
            heap: BinaryHeap::new(),
            received: 0,
            last_dts: None,
        }
    }

    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// Adopts the depth of new parameters. A smaller declared depth keeps the current one (a
    /// larger bound stays correct); a larger one after pictures went out cannot be honoured
    /// without DTSs going backwards.
    pub fn set_depth(&mut self, depth: u32) -> Result<(), ConvertError> {
        if depth > MAX_REORDER_DEPTH {
            return Err(ConvertError::BadReorderDepth(depth));
        }
        if depth > self.depth {
            if self.received > 0 {
                return Err(ConvertError::ReorderDepthGrew {
                    from: self.depth,
                    to: depth,
                });
            }
            self.depth = depth;
        }
        Ok(())
    }

    /// Feeds the PTS of the next picture in decode order. Returns the DTSs of the pictures
    /// that can now be emitted, oldest first: none while the first `depth` pictures are held,
    /// then all held ones plus this one at once, then exactly this one.
    pub fn push(&mut self, pts: i64, frame_duration_hint: i64) -> Result<Vec<i64>, ConvertError> {
        if self.last_dts.is_some_and(|last| pts < last) {
            return Err(ConvertError::UndeclaredReordering {
                declared: self.depth,
            });
        }
        self.heap.push(Reverse(pts));
        self.received += 1;
        let depth = u64::from(self.depth);
        if self.received <= depth {
            return Ok(Vec::new());
        }
        // The heap holds depth + 1 PTSs; its minimum is the (k - R)-th smallest of the stream.
        let Some(Reverse(dts)) = self.heap.pop() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        if self.received == depth + 1 && depth > 0 {
            // The held pictures: step back from the first real DTS by one frame duration each:
            // the smaller of the hint (the declared frame rate) and the smallest gap between the
            // PTSs seen so far. Underestimating is safe (DTSs stay increasing and before every
            // PTS), only the spacing of these first few is then tighter than real.
            let mut seen: Vec<i64> = self.heap.iter().map(|r| r.0).collect();
            seen.push(dts);
            seen.sort_unstable();
            let gap = seen
                .windows(2)
                .map(|w| w[1] - w[0])
                .filter(|&g| g > 0)
                .min()
                .map_or(frame_duration_hint, |g| g.min(frame_duration_hint))
                .max(1);
            for back in (1..=depth).rev() {
                // depth <= 16, so the cast is exact.
                out.push(dts.saturating_sub(gap.saturating_mul(back as i64)));
            }
        }
        out.push(dts);
        self.last_dts = Some(dts);
        Ok(out)
    }
}

/// The reorder depth an H.264 SPS (NAL header included, emulation prevention in place) declares:
/// see [`AvcSps::reorder_depth`](rill_media::params::avc::AvcSps::reorder_depth).
pub fn h264_reorder_depth(sps_nal: &[u8]) -> Result<u32, ConvertError> {
    avc::parse_sps(&unescape_rbsp(sps_nal))
        .and_then(|sps| sps.reorder_depth())
        .map_err(|_| bad_sps("H.264"))
}

/// The reorder depth an H.265 SPS (2-byte NAL header included) declares:
/// `sps_max_num_reorder_pics` of the highest sub-layer, H.265 §7.3.2.2.1.
pub fn h265_reorder_depth(sps_nal: &[u8]) -> Result<u32, ConvertError> {
    hevc::parse_sps(&unescape_rbsp(sps_nal))
        .and_then(|sps| sps.reorder_depth())
        .map_err(|_| bad_sps("H.265"))
}

fn bad_sps(codec: &'static str) -> ConvertError {
    ConvertError::BadSps(codec, "truncated or malformed".into())
}

/// True if an HVCC access unit (4-byte length-prefixed NAL units) holds an IRAP picture: a VCL
/// NAL unit of type 16..=23 (BLA, IDR, CRA and the reserved IRAP types).
pub fn h265_has_irap(mut au: &[u8]) -> bool {
    while let Some((len, rest)) = au.split_first_chunk::<4>() {
        let len = u32::from_be_bytes(*len) as usize;
        let Some(nal) = rest.get(..len) else {
            return false;
        };
        if nal
            .first()
            .is_some_and(|h| (16..=23).contains(&((h >> 1) & 0x3F)))
        {
            return true;
        }
        au = &rest[len..];
    }
    false
}

/// A picture held until its DTS is known (the first `depth` pictures of a reordered stream).
#[derive(Debug)]
struct HeldPicture {
    pts: i64,
    keyframe: bool,
    data: Bytes,
    /// A sequence header to emit right before the picture (parameters that changed with it).
    sequence_header: Option<Bytes>,
}

#[derive(Debug)]
struct VideoTrack {
    codec: VideoCodec,
    clock_rate: u32,
    /// The configuration record last announced, to emit a new sequence header only on change.
    record: Option<Bytes>,
    /// Announced but not yet emitted: goes out with the next picture, so it takes its DTS.
    pending_header: Option<Bytes>,
    reorder: Reorder,
    /// One frame's duration in clock ticks (declared frame rate, else 25 fps), used only to
    /// space the DTSs of a reordered stream's first pictures.
    frame_duration: i64,
    held: VecDeque<HeldPicture>,
    last_dts_ms: Option<i64>,
}

#[derive(Debug)]
struct AudioTrack {
    clock_rate: u32,
    config: Option<Bytes>,
    pending_header: Option<Bytes>,
    last_ms: Option<i64>,
}

/// Converts one RTSP session's video and audio access units into FLV-body frames.
#[derive(Debug, Default)]
pub struct Converter {
    video: Option<VideoTrack>,
    audio: Option<AudioTrack>,
}

impl Converter {
    pub fn new() -> Converter {
        Converter::default()
    }

    /// Announces the video parameters (at the start, and whenever they change): the codec's
    /// configuration record (AVCDecoderConfigurationRecord / HEVCDecoderConfigurationRecord) and
    /// its SPS NAL unit, whose reorder depth drives DTS derivation. A changed record is sent as
    /// a sequence header before the next picture; an unchanged one is not repeated.
    /// `frame_rate` is retina's `(frame duration, time scale)` pair, when known.
    pub fn set_video_parameters(
        &mut self,
        codec: VideoCodec,
        clock_rate: u32,
        frame_rate: Option<(u32, u32)>,
        record: &[u8],
        sps_nal: &[u8],
    ) -> Result<(), ConvertError> {
        if clock_rate == 0 {
            return Err(ConvertError::ZeroClockRate("video"));
        }
        let depth = match codec {
            VideoCodec::H264 => h264_reorder_depth(sps_nal)?,
            VideoCodec::H265 => h265_reorder_depth(sps_nal)?,
        };
        if depth > MAX_REORDER_DEPTH {
            return Err(ConvertError::BadReorderDepth(depth));
        }
        let frame_duration = frame_rate
            .filter(|&(num, den)| num > 0 && den > 0)
            .map(|(num, den)| i64::from(clock_rate) * i64::from(num) / i64::from(den))
            .filter(|&d| d > 0)
            .unwrap_or(i64::from(clock_rate / 25));
        let track = match &mut self.video {
            Some(t) if t.codec == codec => {
                t.clock_rate = clock_rate;
                t
            }
            slot => {
                // A codec switch starts a new track; its DTSs still may not go back in time.
                let last_dts_ms = slot.as_ref().and_then(|t| t.last_dts_ms);
                slot.insert(VideoTrack {
                    codec,
                    clock_rate,
                    record: None,
                    pending_header: None,
                    reorder: Reorder::new(depth),
                    frame_duration,
                    held: VecDeque::new(),
                    last_dts_ms,
                })
            }
        };
        track.reorder.set_depth(depth)?;
        track.frame_duration = frame_duration;
        if track.record.as_deref() != Some(record) {
            let record = Bytes::copy_from_slice(record);
            track.pending_header = Some(video_sequence_header(codec, &record));
            track.record = Some(record);
        }
        Ok(())
    }

    /// The reorder depth in use (0 until video parameters arrive).
    pub fn video_reorder_depth(&self) -> u32 {
        self.video.as_ref().map_or(0, |t| t.reorder.depth())
    }

    /// Converts one video access unit (AVCC/HVCC: 4-byte length-prefixed NAL units) with its
    /// presentation time in clock ticks since the session start. Frames that became ready are
    /// appended to `out` in decode order.
    pub fn push_video(
        &mut self,
        pts_ticks: i64,
        keyframe: bool,
        data: &[u8],
        out: &mut Vec<Frame>,
    ) -> Result<(), ConvertError> {
        let track = self
            .video
            .as_mut()
            .ok_or(ConvertError::NoParameters("video"))?;
        // The FLV body adds at most 8 header bytes; the whole tag body must fit in 24 bits.
        if data.len() + 8 > rill_media::flv::MAX_TAG_BODY_SIZE {
            return Err(ConvertError::TooLarge(data.len()));
        }
        // retina flags only IDR pictures of H.265 as random access points; CRA (and BLA) are
        // IRAP pictures too, where decoders start (dropping the leading RASL pictures), and the
        // only keyframes of open-GOP encoders such as x265's default.
        let keyframe = keyframe || (track.codec == VideoCodec::H265 && h265_has_irap(data));
        let dts = track.reorder.push(pts_ticks, track.frame_duration.max(1))?;
        track.held.push_back(HeldPicture {
            pts: pts_ticks,
            keyframe,
            data: Bytes::copy_from_slice(data),
            sequence_header: track.pending_header.take(),
        });
        // Reorder returns as many DTSs as pictures became ready: the oldest held ones.
        for dts in dts {
            let Some(pic) = track.held.pop_front() else {
                break;
            };
            let pts_ms = ticks_to_ms(pic.pts, track.clock_rate);
            // Before the timeline origin only if the stream starts with more reordering than
            // the origin's headroom covers (deep reordering at a low frame rate): such DTSs are
            // raised to 0 here, where the composition offset still sees them, so the PTS stays
            // right.
            let mut dts_ms = ticks_to_ms(dts, track.clock_rate).max(0);
            if let Some(last) = track.last_dts_ms {
                dts_ms = dts_ms.max(last);
            }
            track.last_dts_ms = Some(dts_ms);
            let cts = (pts_ms - dts_ms).clamp(-MAX_CTS, MAX_CTS) as i32;
            let ts = flv_timestamp(dts_ms);
            if let Some(header) = pic.sequence_header {
                push_frame(out, FrameKind::Video, ts, header);
            }
            let body = video_coded_frame(track.codec, pic.keyframe, cts, &pic.data);
            push_frame(out, FrameKind::Video, ts, body);
        }
        Ok(())
    }

    /// Announces the AAC AudioSpecificConfig; a changed one goes out before the next frame.
    pub fn set_aac_config(&mut self, clock_rate: u32, config: &[u8]) -> Result<(), ConvertError> {
        if clock_rate == 0 {
            return Err(ConvertError::ZeroClockRate("audio"));
        }
        let track = self.audio.get_or_insert(AudioTrack {
            clock_rate,
            config: None,
            pending_header: None,
            last_ms: None,
        });
        track.clock_rate = clock_rate;
        if track.config.as_deref() != Some(config) {
            let mut body = BytesMut::with_capacity(2 + config.len());
            body.put_slice(&[0xAF, 0x00]);
            body.put_slice(config);
            track.pending_header = Some(body.freeze());
            track.config = Some(Bytes::copy_from_slice(config));
        }
        Ok(())
    }

    /// Converts one raw AAC access unit stamped in clock ticks since the session start.
    pub fn push_aac(
        &mut self,
        ticks: i64,
        data: &[u8],
        out: &mut Vec<Frame>,
    ) -> Result<(), ConvertError> {
        let track = self
            .audio
            .as_mut()
            .ok_or(ConvertError::NoParameters("audio"))?;
        let mut ms = ticks_to_ms(ticks, track.clock_rate);
        // Audio needs no reordering; a timestamp going backwards (a server hiccup) is held at
        // the last one so the track's DTS stays monotonic.
        if let Some(last) = track.last_ms {
            ms = ms.max(last);
        }
        track.last_ms = Some(ms);
        let ts = flv_timestamp(ms);
        if let Some(header) = track.pending_header.take() {
            push_frame(out, FrameKind::Audio, ts, header);
        }
        let mut body = BytesMut::with_capacity(2 + data.len());
        body.put_slice(&[0xAF, 0x01]);
        body.put_slice(data);
        push_frame(out, FrameKind::Audio, ts, body.freeze());
        Ok(())
    }
}

/// Classifies a body we built; the bodies are well-formed by construction, so a failure would
/// be a bug here, and dropping the frame (with a log line) beats panicking on a live relay.
fn push_frame(out: &mut Vec<Frame>, kind: FrameKind, ts: u32, body: Bytes) {
    match Frame::from_flv_body(kind, ts, body) {
        Ok(f) => out.push(f),
        Err(e) => tracing::warn!("relay/rtsp: dropping a {kind:?} frame we built: {e}"),
    }
}

/// FourCC of HEVC in Enhanced RTMP.
const FOURCC_HVC1: &[u8; 4] = b"hvc1";
/// Enhanced RTMP: the IsExHeader bit of the first video byte.
const EX_HEADER: u8 = 0x80;
/// VideoFrameType values (bits 4-6 of the first byte).
const FRAME_KEY: u8 = 1;
const FRAME_INTER: u8 = 2;
/// Enhanced RTMP VideoPacketType values (low nibble).
const PACKET_SEQUENCE_START: u8 = 0;
const PACKET_CODED_FRAMES: u8 = 1;
const PACKET_CODED_FRAMES_X: u8 = 3;

/// The sequence-header body for a configuration record.
pub fn video_sequence_header(codec: VideoCodec, record: &[u8]) -> Bytes {
    let mut body = BytesMut::with_capacity(5 + record.len());
    match codec {
        VideoCodec::H264 => body.put_slice(&[0x17, 0x00, 0, 0, 0]),
        VideoCodec::H265 => {
            body.put_u8(EX_HEADER | (FRAME_KEY << 4) | PACKET_SEQUENCE_START);
            body.put_slice(FOURCC_HVC1);
        }
    }
    body.put_slice(record);
    body.freeze()
}

/// The coded-frame body for one access unit with its composition offset in milliseconds.
pub fn video_coded_frame(codec: VideoCodec, keyframe: bool, cts: i32, data: &[u8]) -> Bytes {
    let frame_type = if keyframe { FRAME_KEY } else { FRAME_INTER };
    let cts_bytes = cts.to_be_bytes();
    let mut body = BytesMut::with_capacity(8 + data.len());
    match codec {
        VideoCodec::H264 => {
            body.put_u8((frame_type << 4) | 7);
            body.put_u8(1);
            body.put_slice(&cts_bytes[1..]);
        }
        VideoCodec::H265 if cts == 0 => {
            // CodedFramesX exists to omit a zero CTS.
            body.put_u8(EX_HEADER | (frame_type << 4) | PACKET_CODED_FRAMES_X);
            body.put_slice(FOURCC_HVC1);
        }
        VideoCodec::H265 => {
            body.put_u8(EX_HEADER | (frame_type << 4) | PACKET_CODED_FRAMES);
            body.put_slice(FOURCC_HVC1);
            body.put_slice(&cts_bytes[1..]);
        }
    }
    body.put_slice(data);
    body.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_media::codec::{AudioCodec, Codec, VideoCodec as FlvVideo};

    // Real SPSs, captured from Debian GStreamer 1.22 encoding 640x360 I420 at 25 fps:
    // `x264enc tune=zerolatency bframes=0` and `bframes=2` (High profile, VUI with
    // bitstream_restriction), `x265enc tune=zerolatency` and `option-string=bframes=2`.
    const H264_SPS_NO_B: &[u8] = &[
        0x67, 0x64, 0x00, 0x1e, 0xac, 0xb2, 0x01, 0x40, 0x5f, 0xf2, 0xe0, 0x2d, 0x41, 0x81, 0x81,
        0xa9, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x0c, 0xa3, 0xc5, 0x8b, 0x92,
    ];
    const H264_PPS_NO_B: &[u8] = &[0x68, 0xeb, 0xcc, 0xb2, 0x2c];
    const H264_SPS_B2: &[u8] = &[
        0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x16, 0xa0, 0xc0, 0xc0,
        0xd4, 0xa0, 0x00, 0x00, 0x03, 0x00, 0x20, 0x00, 0x00, 0x06, 0x51, 0xe2, 0xc5, 0xb2, 0xc0,
    ];
    const H265_SPS_NO_B: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x3f, 0xa0, 0x05, 0x02, 0x01, 0x69, 0x65, 0x92, 0xa4, 0x93, 0x2b, 0xff, 0xc0,
        0x00, 0x40, 0x00, 0x5a, 0x83, 0x03, 0x03, 0x02, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00,
        0x03, 0x00, 0x32, 0x10,
    ];
    const H265_SPS_B2: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x3f, 0xa0, 0x05, 0x02, 0x01, 0x69, 0x65, 0x95, 0x92, 0x49, 0x32, 0xbf, 0xfc,
        0x00, 0x04, 0x00, 0x05, 0xa8, 0x30, 0x30, 0x30, 0x20, 0x00, 0x00, 0x03, 0x00, 0x20, 0x00,
        0x00, 0x03, 0x03, 0x21,
    ];

    /// A minimal Baseline SPS without VUI: 16x16, POC type 0.
    fn baseline_sps() -> Vec<u8> {
        // profile 66, constraints 0xC0, level 30, then ue fields:
        // sps_id=0 (1), log2_max_frame_num_minus4=0 (1), poc_type=0 (1),
        // log2_max_poc_lsb_minus4=0 (1), max_num_ref_frames=1 (010), gaps=0,
        // width_mbs_minus1=0 (1), height_map_units_minus1=0 (1), frame_mbs_only=1,
        // direct_8x8=1, cropping=0, vui=0, stop bit.
        bits_to_nal(&[0x67, 66, 0xC0, 30], "1 1 1 1 010 0 1 1 1 1 0 0 1")
    }

    /// A High-profile SPS without VUI (so no bitstream restriction): POC type 0 or 2.
    fn high_sps_no_vui(poc_type_two: bool) -> Vec<u8> {
        // High profile adds chroma_format_idc=1 (010), bit depths 0 0 (1 1),
        // qpprime=0, seq_scaling_matrix=0.
        let poc = if poc_type_two { "011" } else { "1 1" };
        let bits = format!("1 010 1 1 0 0 1 {poc} 010 0 1 1 1 1 0 0 1");
        bits_to_nal(&[0x67, 100, 0x00, 30], &bits)
    }

    fn bits_to_nal(head: &[u8], bits: &str) -> Vec<u8> {
        let mut out = head.to_vec();
        let bits: Vec<u8> = bits
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| u8::from(c == '1'))
            .collect();
        for chunk in bits.chunks(8) {
            let mut b = 0u8;
            for (i, &bit) in chunk.iter().enumerate() {
                b |= bit << (7 - i);
            }
            out.push(b);
        }
        out
    }

    /// An HEVC SPS with one sub-layer and the given sps_max_num_reorder_pics, 640x368.
    fn hevc_sps(reorder: u32) -> Vec<u8> {
        let ue = |v: u32| {
            let v = v + 1;
            let n = 32 - v.leading_zeros();
            format!(
                "{}{:0width$b} ",
                "0".repeat(n as usize - 1),
                v,
                width = n as usize
            )
        };
        let mut bits = String::new();
        bits += "0000 000 1 "; // vps id, max_sub_layers_minus1 = 0, temporal nesting
        bits += &"0".repeat(88); // general profile
        bits += "00000000 "; // level
        bits += &ue(0); // sps id
        bits += &ue(1); // chroma 4:2:0
        bits += &ue(640);
        bits += &ue(368);
        bits += "0 "; // no conformance window
        bits += &ue(0);
        bits += &ue(0);
        bits += &ue(4); // log2_max_poc_lsb_minus4
        bits += "1 "; // sub_layer_ordering_info_present
        bits += &ue(reorder + 1);
        bits += &ue(reorder);
        bits += &ue(0);
        bits += "1";
        // NAL header: type 33 (SPS) -> 0x42 0x01.
        bits_to_nal(&[0x42, 0x01], &bits)
    }

    #[test]
    fn h264_reorder_depth_from_sps() {
        assert_eq!(h264_reorder_depth(H264_SPS_NO_B), Ok(0));
        // x264 with bframes=2 and its default B-pyramid: two reordered pictures.
        assert_eq!(h264_reorder_depth(H264_SPS_B2), Ok(2));
        assert_eq!(h264_reorder_depth(&baseline_sps()), Ok(0));
        assert_eq!(h264_reorder_depth(&high_sps_no_vui(true)), Ok(0));
        // No bitstream restriction on a profile with B slices: the spec's upper bound.
        assert_eq!(h264_reorder_depth(&high_sps_no_vui(false)), Ok(16));
        assert!(matches!(
            h264_reorder_depth(&[0x67, 0x64]),
            Err(ConvertError::BadSps("H.264", _))
        ));
    }

    #[test]
    fn h265_reorder_depth_from_sps() {
        assert_eq!(h265_reorder_depth(H265_SPS_NO_B), Ok(0));
        assert_eq!(h265_reorder_depth(H265_SPS_B2), Ok(2));
        assert_eq!(h265_reorder_depth(&hevc_sps(0)), Ok(0));
        assert_eq!(h265_reorder_depth(&hevc_sps(2)), Ok(2));
        let sps = hevc_sps(3);
        assert!(h265_reorder_depth(&sps[..10]).is_err());
    }

    #[test]
    fn timestamps_map_to_one_millisecond_timeline() {
        assert_eq!(ticks_to_ms(0, 90_000), TIMELINE_ORIGIN_MS);
        assert_eq!(ticks_to_ms(90_000, 90_000), TIMELINE_ORIGIN_MS + 1000);
        assert_eq!(ticks_to_ms(48_000, 48_000), TIMELINE_ORIGIN_MS + 1000);
        // Floor, also below zero, so tracks with different rates round alike.
        assert_eq!(ticks_to_ms(89, 90_000), TIMELINE_ORIGIN_MS);
        assert_eq!(ticks_to_ms(-1, 90_000), TIMELINE_ORIGIN_MS - 1);
        assert_eq!(ticks_to_ms(-90_000 * 5, 90_000), TIMELINE_ORIGIN_MS - 5000);
        // Hours of 90 kHz ticks past the 32-bit RTP wrap (retina extends them to i64).
        let day = 90_000i64 * 3600 * 24;
        assert!(day > i64::from(u32::MAX));
        assert_eq!(ticks_to_ms(day, 90_000), TIMELINE_ORIGIN_MS + 86_400_000);
        assert_eq!(ticks_to_ms(i64::MAX, 1), i64::MAX);
    }

    #[test]
    fn flv_timestamps_wrap_and_clamp() {
        assert_eq!(flv_timestamp(-5), 0);
        assert_eq!(flv_timestamp(0), 0);
        assert_eq!(flv_timestamp(1234), 1234);
        assert_eq!(flv_timestamp(i64::from(u32::MAX)), u32::MAX);
        assert_eq!(flv_timestamp(i64::from(u32::MAX) + 11), 10);
    }

    #[test]
    fn reorder_depth_zero_is_pass_through() {
        let mut r = Reorder::new(0);
        for pts in [0, 3600, 7200, 7200, 10800] {
            assert_eq!(r.push(pts, 3600), Ok(vec![pts]));
        }
        // A picture shown before one already sent: B-frames the SPS did not declare.
        let err = r.push(7000, 3600).unwrap_err();
        assert_eq!(err, ConvertError::UndeclaredReordering { declared: 0 });
        assert!(err
            .to_string()
            .starts_with("stream has B-frames (reordered pictures)"));
    }

    /// I P B B P B B ... in decode order (one B-frame pair per P), 40 ms frames at 90 kHz.
    fn ibbp_pts(n: usize) -> Vec<i64> {
        let d = 3600;
        let mut pts = vec![0];
        let mut base = 0;
        while pts.len() < n {
            pts.extend([base + 3 * d, base + d, base + 2 * d]);
            base += 3 * d;
        }
        pts.truncate(n);
        pts
    }

    fn check_dts(pts: &[i64], depth: u32) -> Vec<i64> {
        let mut r = Reorder::new(depth);
        let mut dts = Vec::new();
        for &p in pts {
            dts.extend(r.push(p, 3600).unwrap());
        }
        // Every picture is out once the first `depth + 1` arrived.
        assert_eq!(dts.len(), pts.len());
        for (i, w) in dts.windows(2).enumerate() {
            assert!(w[0] < w[1], "DTS not increasing at {i}: {dts:?}");
        }
        for (d, p) in dts.iter().zip(pts) {
            assert!(d <= p, "DTS {d} after PTS {p}");
        }
        dts
    }

    #[test]
    fn reorder_b_frames_get_spaced_monotonic_dts() {
        let pts = ibbp_pts(13);
        let dts = check_dts(&pts, 1);
        // One frame of lag: DTS is the sorted PTS shifted by one frame.
        let expected: Vec<i64> = (0..13).map(|k| (k - 1) * 3600).collect();
        assert_eq!(dts, expected);
        // CTS: I/P pictures carry the reorder delay, B pictures none.
        let cts: Vec<i64> = pts.iter().zip(&dts).map(|(p, d)| p - d).collect();
        assert_eq!(&cts[..4], &[3600, 10800, 0, 0]);
    }

    #[test]
    fn reorder_pyramid_b_frames() {
        // I0 P8 B4 b2 b1 b3 b6 b5 b7: depth 3 (hierarchical B pyramid).
        let d = 3600;
        let gop = [0, 8, 4, 2, 1, 3, 6, 5, 7];
        let mut pts: Vec<i64> = gop.iter().map(|&x| x * d).collect();
        pts.extend(gop[1..].iter().map(|&x| (x + 8) * d));
        check_dts(&pts, 3);
        // A larger declared depth than needed is still correct, only more delayed.
        check_dts(&pts, 5);
        // A smaller one is caught, never papered over.
        let mut r = Reorder::new(1);
        let res: Result<Vec<_>, _> = pts.iter().map(|&p| r.push(p, d)).collect();
        assert_eq!(res, Err(ConvertError::UndeclaredReordering { declared: 1 }));
    }

    #[test]
    fn reorder_holds_only_the_first_pictures() {
        let mut r = Reorder::new(2);
        assert_eq!(r.push(0, 3600), Ok(vec![]));
        assert_eq!(r.push(7200, 3600), Ok(vec![]));
        // Third picture: all three out, the held two extrapolated one gap (3600) apart.
        assert_eq!(r.push(3600, 3600), Ok(vec![-7200, -3600, 0]));
        assert_eq!(r.push(14400, 3600), Ok(vec![3600]));
    }

    #[test]
    fn reorder_depth_changes() {
        let mut r = Reorder::new(0);
        assert_eq!(r.set_depth(2), Ok(()));
        assert_eq!(r.depth(), 2);
        r.push(0, 1).unwrap();
        assert_eq!(r.set_depth(1), Ok(()));
        assert_eq!(r.depth(), 2, "a smaller bound keeps the larger one");
        assert_eq!(
            r.set_depth(3),
            Err(ConvertError::ReorderDepthGrew { from: 2, to: 3 })
        );
        assert_eq!(r.set_depth(17), Err(ConvertError::BadReorderDepth(17)));
    }

    fn avcc() -> Vec<u8> {
        let mut rec = vec![1, 0x64, 0x00, 0x1e, 0xff, 0xe1];
        rec.extend((H264_SPS_NO_B.len() as u16).to_be_bytes());
        rec.extend(H264_SPS_NO_B);
        rec.push(1);
        rec.extend((H264_PPS_NO_B.len() as u16).to_be_bytes());
        rec.extend(H264_PPS_NO_B);
        rec
    }

    #[test]
    fn h264_sequence_header_and_frames() {
        let mut c = Converter::new();
        c.set_video_parameters(VideoCodec::H264, 90_000, None, &avcc(), H264_SPS_NO_B)
            .unwrap();
        let mut out = Vec::new();
        let idr = [0, 0, 0, 2, 0x65, 0x88];
        c.push_video(0, true, &idr, &mut out).unwrap();
        c.push_video(3600, false, &[0, 0, 0, 2, 0x41, 0x9a], &mut out)
            .unwrap();
        assert_eq!(out.len(), 3);
        let seq = &out[0];
        assert!(seq.sequence_header);
        assert_eq!(seq.codec, Codec::Video(FlvVideo::Avc));
        assert_eq!(&seq.payload[..5], &[0x17, 0, 0, 0, 0]);
        assert_eq!(&seq.payload[5..], &avcc()[..]);
        let p = rill_media::params::video_params(&seq.payload).unwrap();
        assert_eq!((p.width, p.height), (640, 360));
        assert_eq!(seq.timestamp, 1000);
        assert!(out[1].is_video_keyframe());
        assert_eq!(
            &out[1].payload[..],
            &[0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88]
        );
        assert_eq!(out[1].timestamp, 1000);
        assert!(!out[2].keyframe);
        assert_eq!(out[2].payload[0], 0x27);
        assert_eq!(out[2].timestamp, 1040);
        assert_eq!(out[2].composition_offset, 0);
    }

    #[test]
    fn h264_parameter_change_emits_a_new_sequence_header() {
        let mut c = Converter::new();
        let mut out = Vec::new();
        c.set_video_parameters(VideoCodec::H264, 90_000, None, &avcc(), H264_SPS_NO_B)
            .unwrap();
        c.push_video(0, true, &[0, 0, 0, 1, 0x65], &mut out)
            .unwrap();
        // The same parameters again (retina reports them per keyframe sometimes): no repeat.
        c.set_video_parameters(VideoCodec::H264, 90_000, None, &avcc(), H264_SPS_NO_B)
            .unwrap();
        c.push_video(3600, true, &[0, 0, 0, 1, 0x65], &mut out)
            .unwrap();
        assert_eq!(out.iter().filter(|f| f.sequence_header).count(), 1);
        // Changed parameters: a new sequence header right before the picture, same timestamp.
        let mut changed = avcc();
        if let Some(last) = changed.last_mut() {
            *last ^= 1;
        }
        c.set_video_parameters(VideoCodec::H264, 90_000, None, &changed, H264_SPS_NO_B)
            .unwrap();
        c.push_video(7200, true, &[0, 0, 0, 1, 0x65], &mut out)
            .unwrap();
        assert_eq!(out.len(), 5);
        assert!(out[3].sequence_header);
        assert_eq!(&out[3].payload[5..], &changed[..]);
        assert_eq!(out[3].timestamp, out[4].timestamp);
        assert!(out[4].is_video_keyframe());
    }

    #[test]
    fn h264_b_frames_carry_composition_offsets() {
        let mut c = Converter::new();
        c.set_video_parameters(VideoCodec::H264, 90_000, None, &avcc(), H264_SPS_NO_B)
            .unwrap();
        // Pretend the SPS declared one reordered picture (set before any picture goes out).
        c.video.as_mut().unwrap().reorder.set_depth(1).unwrap();
        let mut out = Vec::new();
        let pts = ibbp_pts(7);
        for (i, &p) in pts.iter().enumerate() {
            c.push_video(p, i == 0, &[0, 0, 0, 1, 0x41], &mut out)
                .unwrap();
        }
        let pics: Vec<&Frame> = out.iter().filter(|f| !f.sequence_header).collect();
        assert_eq!(pics.len(), 7);
        let dts: Vec<u32> = pics.iter().map(|f| f.timestamp).collect();
        assert_eq!(dts, vec![960, 1000, 1040, 1080, 1120, 1160, 1200]);
        let cts: Vec<i32> = pics.iter().map(|f| f.composition_offset).collect();
        assert_eq!(cts, vec![40, 120, 0, 0, 120, 0, 0]);
        for (f, p) in pics.iter().zip(&pts) {
            let pts_ms = i64::from(f.timestamp) + i64::from(f.composition_offset);
            assert_eq!(pts_ms, ticks_to_ms(*p, 90_000));
        }
        // The sequence header goes out first, with the first picture's DTS.
        assert!(out[0].sequence_header);
        assert_eq!(out[0].timestamp, 960);
    }

    #[test]
    fn real_b_frame_sps_and_frame_rate_space_the_first_pictures() {
        let mut c = Converter::new();
        // x264 bframes=2 declares two reordered pictures; 25 fps as retina reports it.
        c.set_video_parameters(
            VideoCodec::H264,
            90_000,
            Some((1, 25)),
            &avcc(),
            H264_SPS_B2,
        )
        .unwrap();
        assert_eq!(c.video_reorder_depth(), 2);
        let mut out = Vec::new();
        // I0 P3 B1 B2 P6: the first two pictures are held until the third arrives.
        c.push_video(0, true, &[0, 0, 0, 1, 0x65], &mut out)
            .unwrap();
        c.push_video(10_800, false, &[0, 0, 0, 1, 0x41], &mut out)
            .unwrap();
        assert!(out.is_empty());
        c.push_video(3600, false, &[0, 0, 0, 1, 0x01], &mut out)
            .unwrap();
        c.push_video(7200, false, &[0, 0, 0, 1, 0x01], &mut out)
            .unwrap();
        c.push_video(21_600, false, &[0, 0, 0, 1, 0x41], &mut out)
            .unwrap();
        let pics: Vec<(u32, i32)> = out
            .iter()
            .filter(|f| !f.sequence_header)
            .map(|f| (f.timestamp, f.composition_offset))
            .collect();
        // DTS two frames (80 ms) behind the sorted PTS, one frame apart from the start.
        assert_eq!(
            pics,
            vec![(920, 80), (960, 160), (1000, 40), (1040, 40), (1080, 160)]
        );
    }

    #[test]
    fn dts_before_the_timeline_origin_is_raised_keeping_the_pts() {
        let mut c = Converter::new();
        c.set_video_parameters(VideoCodec::H264, 90_000, Some((1, 1)), &avcc(), H264_SPS_B2)
            .unwrap();
        let mut out = Vec::new();
        // 1 fps with two reordered pictures: the first DTSs would be 2 s before the origin.
        for pts in [0, 2, 1, 3] {
            c.push_video(pts * 90_000, pts == 0, &[0, 0, 0, 1, 0x41], &mut out)
                .unwrap();
        }
        let pics: Vec<&Frame> = out.iter().filter(|f| !f.sequence_header).collect();
        let dts: Vec<u32> = pics.iter().map(|f| f.timestamp).collect();
        assert_eq!(dts, vec![0, 0, 1000, 2000]);
        let pts: Vec<i64> = pics
            .iter()
            .map(|f| i64::from(f.timestamp) + i64::from(f.composition_offset))
            .collect();
        assert_eq!(pts, vec![1000, 3000, 2000, 4000]);
    }

    #[test]
    fn undeclared_b_frames_are_refused() {
        let mut c = Converter::new();
        c.set_video_parameters(VideoCodec::H264, 90_000, None, &avcc(), H264_SPS_NO_B)
            .unwrap();
        let mut out = Vec::new();
        c.push_video(0, true, &[0, 0, 0, 1, 0x65], &mut out)
            .unwrap();
        c.push_video(10800, false, &[0, 0, 0, 1, 0x41], &mut out)
            .unwrap();
        let err = c
            .push_video(3600, false, &[0, 0, 0, 1, 0x01], &mut out)
            .unwrap_err();
        assert!(err.to_string().contains("stream has B-frames"));
    }

    #[test]
    fn h265_frames_use_enhanced_rtmp_hvc1() {
        let mut record = vec![1u8; 23];
        record[0] = 1;
        let mut c = Converter::new();
        c.set_video_parameters(VideoCodec::H265, 90_000, None, &record, &hevc_sps(0))
            .unwrap();
        let mut out = Vec::new();
        c.push_video(0, true, &[0, 0, 0, 1, 0x26], &mut out)
            .unwrap();
        c.push_video(3600, false, &[0, 0, 0, 1, 0x02], &mut out)
            .unwrap();
        assert_eq!(out.len(), 3);
        assert!(out[0].sequence_header && !out[0].keyframe);
        assert_eq!(out[0].codec, Codec::Video(FlvVideo::Hevc));
        assert_eq!(&out[0].payload[..5], b"\x90hvc1");
        assert_eq!(&out[0].payload[5..], &record[..]);
        // Zero CTS: CodedFramesX (type 3), keyframe flag 1 then inter flag 2.
        assert_eq!(&out[1].payload[..5], b"\x93hvc1");
        assert!(out[1].is_video_keyframe());
        assert_eq!(&out[2].payload[..5], b"\xA3hvc1");
        assert!(!out[2].keyframe && !out[2].sequence_header);
        assert_eq!(out[2].codec, Codec::Video(FlvVideo::Hevc));
    }

    #[test]
    fn h265_cra_pictures_are_keyframes() {
        // Prefix SEI (39), then a CRA slice (21): 0x2A = 21 << 1.
        let cra = [0, 0, 0, 2, 0x4E, 0x01, 0, 0, 0, 3, 0x2A, 0x01, 0xAF];
        assert!(h265_has_irap(&cra));
        // TRAIL_R (1) only; truncated and empty units.
        assert!(!h265_has_irap(&[0, 0, 0, 2, 0x02, 0x01]));
        assert!(!h265_has_irap(&[0, 0, 0, 9, 0x2A]));
        assert!(!h265_has_irap(&[0, 0]));
        assert!(!h265_has_irap(&[]));
        let mut c = Converter::new();
        c.set_video_parameters(VideoCodec::H265, 90_000, None, &[1; 23], H265_SPS_NO_B)
            .unwrap();
        let mut out = Vec::new();
        c.push_video(0, false, &cra, &mut out).unwrap();
        assert!(out[1].is_video_keyframe());
        assert_eq!(out[1].payload[0], 0x93);
        // H.264 data is never reinterpreted as H.265.
        let mut c = Converter::new();
        c.set_video_parameters(VideoCodec::H264, 90_000, None, &avcc(), H264_SPS_NO_B)
            .unwrap();
        let mut out = Vec::new();
        c.push_video(0, false, &cra, &mut out).unwrap();
        assert!(!out[1].keyframe);
    }

    #[test]
    fn h265_b_frames_use_coded_frames_with_cts() {
        let mut c = Converter::new();
        c.set_video_parameters(VideoCodec::H265, 90_000, None, &[1; 23], &hevc_sps(1))
            .unwrap();
        assert_eq!(c.video_reorder_depth(), 1);
        let mut out = Vec::new();
        for (i, &p) in ibbp_pts(4).iter().enumerate() {
            c.push_video(p, i == 0, &[0, 0, 0, 1, 0x02], &mut out)
                .unwrap();
        }
        let pics: Vec<&Frame> = out.iter().filter(|f| !f.sequence_header).collect();
        // I (CTS 40) and P (CTS 120): CodedFrames (type 1) with the CTS; B: CodedFramesX.
        assert_eq!(&pics[0].payload[..8], b"\x91hvc1\x00\x00\x28");
        assert!(pics[0].is_video_keyframe());
        assert_eq!(pics[0].composition_offset, 40);
        assert_eq!(&pics[1].payload[..8], b"\xA1hvc1\x00\x00\x78");
        assert_eq!(pics[1].composition_offset, 120);
        assert_eq!(&pics[2].payload[..5], b"\xA3hvc1");
        assert_eq!(pics[2].composition_offset, 0);
    }

    #[test]
    fn coded_frame_negative_cts_is_24_bit_signed() {
        let body = video_coded_frame(VideoCodec::H264, false, -10, &[]);
        assert_eq!(&body[..], &[0x27, 1, 0xFF, 0xFF, 0xF6]);
        let f = Frame::from_flv_body(FrameKind::Video, 0, body).unwrap();
        assert_eq!(f.composition_offset, -10);
        let body = video_coded_frame(VideoCodec::H265, true, -10, &[]);
        let f = Frame::from_flv_body(FrameKind::Video, 0, body).unwrap();
        assert_eq!(f.composition_offset, -10);
        assert!(f.is_video_keyframe());
    }

    #[test]
    fn aac_sequence_header_and_frames() {
        let mut c = Converter::new();
        let mut out = Vec::new();
        assert_eq!(
            c.push_aac(0, &[1], &mut out),
            Err(ConvertError::NoParameters("audio"))
        );
        let asc = [0x12, 0x10]; // AAC-LC 44.1 kHz stereo
        c.set_aac_config(44_100, &asc).unwrap();
        c.push_aac(0, &[0x21, 0x00], &mut out).unwrap();
        c.push_aac(1024, &[0x21, 0x01], &mut out).unwrap();
        assert_eq!(out.len(), 3);
        assert!(out[0].sequence_header);
        assert_eq!(out[0].codec, Codec::Audio(AudioCodec::Aac));
        assert_eq!(&out[0].payload[..], &[0xAF, 0, 0x12, 0x10]);
        let p = rill_media::params::audio_params(&out[0].payload).unwrap();
        assert_eq!(p.sample_rate, 44_100);
        assert!(out[1].keyframe && !out[1].sequence_header);
        assert_eq!(&out[1].payload[..], &[0xAF, 1, 0x21, 0x00]);
        assert_eq!(out[1].timestamp, 1000);
        // 1024 samples at 44.1 kHz = 23.2 ms, floored.
        assert_eq!(out[2].timestamp, 1023);
        // Backwards audio is held at the last timestamp.
        c.push_aac(0, &[0x21], &mut out).unwrap();
        assert_eq!(out[3].timestamp, 1023);
        // A new config is announced once, before the next frame.
        c.set_aac_config(48_000, &[0x11, 0x90]).unwrap();
        c.set_aac_config(48_000, &[0x11, 0x90]).unwrap();
        c.push_aac(96_000, &[0x21], &mut out).unwrap();
        assert!(out[4].sequence_header);
        assert_eq!(out[4].timestamp, 3000);
        assert!(!out[5].sequence_header);
    }

    #[test]
    fn audio_and_video_share_the_timeline() {
        let mut c = Converter::new();
        c.set_video_parameters(VideoCodec::H264, 90_000, None, &avcc(), H264_SPS_NO_B)
            .unwrap();
        c.set_aac_config(48_000, &[0x11, 0x90]).unwrap();
        let mut out = Vec::new();
        // Two seconds into the session on both clocks.
        c.push_video(180_000, true, &[0, 0, 0, 1, 0x65], &mut out)
            .unwrap();
        c.push_aac(96_000, &[0x21], &mut out).unwrap();
        let ts: Vec<u32> = out.iter().map(|f| f.timestamp).collect();
        assert_eq!(ts, vec![3000, 3000, 3000, 3000]);
    }

    #[test]
    fn video_errors() {
        let mut c = Converter::new();
        let mut out = Vec::new();
        assert_eq!(
            c.push_video(0, true, &[], &mut out),
            Err(ConvertError::NoParameters("video"))
        );
        assert_eq!(
            c.set_video_parameters(VideoCodec::H264, 0, None, &avcc(), H264_SPS_NO_B),
            Err(ConvertError::ZeroClockRate("video"))
        );
        assert!(c
            .set_video_parameters(VideoCodec::H265, 90_000, None, &[1], &[0x42, 0x01])
            .is_err());
    }
}
