//! Progressive MP4 with faststart (`ftyp`, `moov`, then `mdat`), for finished recordings: the
//! sample tables (stts, ctts, stss, stsz, stsc, stco/co64) and an edit list, built from an index of
//! chunks whose bytes the caller copies into `mdat` in the same order.

use bytes::Bytes;

use crate::track::TrackInfo;
use crate::MuxError;

/// One sample of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleEntry {
    pub dts_ms: u64,
    pub cts_ms: i32,
    pub size: u32,
    pub sync: bool,
}

/// Collects chunks, then writes the header that goes before their bytes.
pub struct Mp4Builder {
    _private: (),
}

impl Mp4Builder {
    pub fn new(tracks: Vec<TrackInfo>) -> Result<Mp4Builder, MuxError> {
        let _ = tracks;
        todo!()
    }

    /// Records a chunk: consecutive samples of track `track` (index into the tracks), whose bytes
    /// will follow the previous chunk's in `mdat`. `end_dts_ms` gives the last sample its duration.
    pub fn add_chunk(&mut self, track: usize, samples: &[SampleEntry], end_dts_ms: u64) {
        let _ = (track, samples, end_dts_ms);
        todo!()
    }

    /// Total bytes of all chunks (the `mdat` payload size).
    pub fn data_size(&self) -> u64 {
        todo!()
    }

    /// `ftyp` + `moov` + the `mdat` box header: write this, then every chunk's bytes in order.
    pub fn header(&self) -> Result<Bytes, MuxError> {
        todo!()
    }
}
