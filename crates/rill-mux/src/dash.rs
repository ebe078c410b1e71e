//! DASH MPD writer: a dynamic MPD with one adaptation set per track over CMAF segments
//! (SegmentTemplate with `$Number$` and a SegmentTimeline).

/// One representation (track).
#[derive(Debug, Clone, PartialEq)]
pub struct Representation {
    pub id: String,
    /// `video/mp4` or `audio/mp4`.
    pub mime_type: String,
    pub codecs: String,
    pub bandwidth: u64,
    pub width: u32,
    pub height: u32,
    pub sample_rate: u32,
    pub timescale: u32,
    /// `init-$RepresentationID$.m4s`-style template for the init segment.
    pub initialization: String,
    /// `$Number$` template for media segments.
    pub media: String,
    /// (start time, duration) of each listed segment in `timescale` units.
    pub timeline: Vec<(u64, u64)>,
    pub start_number: u64,
}

/// A dynamic (live) or static (ended) MPD.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mpd {
    /// Unix milliseconds of the stream's time zero.
    pub availability_start_ms: u64,
    /// Unix milliseconds when the MPD was generated.
    pub publish_time_ms: u64,
    pub min_buffer_secs: f64,
    pub min_update_period_secs: f64,
    pub time_shift_depth_secs: f64,
    pub max_segment_duration_secs: f64,
    pub suggested_presentation_delay_secs: f64,
    /// URL for UTCTiming (`urn:mpeg:dash:utc:http-iso:2014`), so players sync to this server.
    pub utc_timing_url: Option<String>,
    pub representations: Vec<Representation>,
    /// Static MPD (stream ended).
    pub ended: bool,
}

impl Mpd {
    /// The MPD XML.
    pub fn render(&self) -> String {
        todo!()
    }
}
