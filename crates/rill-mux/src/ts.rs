//! MPEG-TS muxer for HLS segments: PAT/PMT, PES packetisation with PCR, continuity counters and
//! stuffing; H.264/HEVC converted from length-prefixed NAL units to Annex B (parameter sets
//! repeated before each keyframe, access unit delimiters), AAC wrapped in ADTS, MP3 as is.

use bytes::BytesMut;

use crate::sample::Sample;
use crate::track::TrackInfo;
use crate::MuxError;

/// A TS muxer for one video and/or one audio track.
pub struct TsMuxer {
    _private: (),
}

impl TsMuxer {
    /// Fails for codecs TS cannot carry here (AV1, VP9, Opus: use fMP4).
    pub fn new(video: Option<&TrackInfo>, audio: Option<&TrackInfo>) -> Result<TsMuxer, MuxError> {
        let _ = (video, audio);
        todo!()
    }

    /// Writes PAT and PMT; call at the start of every segment so each one decodes on its own.
    pub fn write_tables(&mut self, out: &mut BytesMut) {
        let _ = out;
        todo!()
    }

    /// Writes one sample as a PES packet split into 188-byte TS packets.
    pub fn write_sample(&mut self, sample: &Sample, out: &mut BytesMut) -> Result<(), MuxError> {
        let _ = (sample, out);
        todo!()
    }
}
