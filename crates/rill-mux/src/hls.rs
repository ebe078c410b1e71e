//! HLS media playlists (RFC 8216, and RFC 8216bis for Low-Latency HLS: parts, preload hints,
//! server control).

/// One partial segment (LL-HLS).
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub uri: String,
    pub duration: f64,
    pub independent: bool,
}

/// One media segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub uri: String,
    pub duration: f64,
    pub sequence: u64,
    /// Wall-clock time of the first sample, Unix milliseconds (EXT-X-PROGRAM-DATE-TIME).
    pub program_date_time_ms: Option<u64>,
    /// EXT-X-DISCONTINUITY before this segment (republish, codec change).
    pub discontinuity: bool,
    /// Parts of this segment, for the last few segments in LL-HLS.
    pub parts: Vec<Part>,
}

/// A live media playlist.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaPlaylist {
    pub target_duration: u32,
    /// Media sequence of the first segment listed.
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    /// `EXT-X-MAP` URI for fMP4.
    pub map_uri: Option<String>,
    pub segments: Vec<Segment>,
    /// Parts of the segment in progress (LL-HLS).
    pub pending_parts: Vec<Part>,
    /// LL-HLS: part target duration (enables PART-INF, SERVER-CONTROL).
    pub part_target: Option<f64>,
    /// LL-HLS: URI of the next part (EXT-X-PRELOAD-HINT).
    pub preload_hint: Option<String>,
    pub ended: bool,
}

impl MediaPlaylist {
    /// The playlist text.
    pub fn render(&self) -> String {
        todo!()
    }
}
