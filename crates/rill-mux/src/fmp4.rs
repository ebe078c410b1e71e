//! Fragmented MP4 (CMAF) writer: an init segment (`ftyp` + `moov` with `mvex`) and fragments
//! (`moof` + `mdat`), for H.264, HEVC, AV1, VP9, AAC, Opus and MP3 tracks. Used for HLS fMP4
//! segments and LL-HLS parts, and DASH.

use bytes::Bytes;

use crate::sample::Sample;
use crate::track::TrackInfo;
use crate::MuxError;

/// Samples of one track for one fragment.
#[derive(Debug, Clone, Copy)]
pub struct TrackRun<'a> {
    /// Index into the writer's tracks (track id is index + 1).
    pub track: usize,
    /// In decode order.
    pub samples: &'a [Sample],
    /// Decode time (ms) where the next fragment's first sample of this track starts: gives the
    /// last sample its duration.
    pub end_dts_ms: u64,
}

/// Writes an fMP4 presentation.
pub struct Fmp4Writer {
    _private: (),
}

impl Fmp4Writer {
    pub fn new(tracks: Vec<TrackInfo>) -> Result<Fmp4Writer, MuxError> {
        let _ = tracks;
        todo!()
    }

    pub fn tracks(&self) -> &[TrackInfo] {
        todo!()
    }

    /// `ftyp` + `moov`.
    pub fn init_segment(&self) -> Bytes {
        todo!()
    }

    /// One `moof` + `mdat` with the given runs; sequence numbers increase by one per call.
    pub fn fragment(&mut self, runs: &[TrackRun<'_>]) -> Result<Bytes, MuxError> {
        let _ = runs;
        todo!()
    }
}
