//! `[[trans.tasks]]`: which apps get HLS/DASH (and, later, recordings), in Node-Media-Server's shape
//! (`hls`, `hlsFlags`, `dash`, `dashFlags`, `mp4`, `mp4Flags`) with native keys that say the same
//! plainly. The ffmpeg-style flag strings are read for the settings Rill has and the rest ignored.

use serde::{Deserialize, Serialize};

/// `[trans]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TransConfig {
    pub tasks: Vec<TransTask>,
}

/// Segment container for HLS.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SegmentFormat {
    #[default]
    Ts,
    Fmp4,
}

/// Where segments live.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// In memory only: served with no disk I/O.
    #[default]
    Memory,
    /// In memory and mirrored under `http.mediaroot/app/stream/`.
    Disk,
}

/// Recording container.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum RecordFormat {
    /// MP4 with `moov` first (fragmented while recording, rewritten when it ends).
    #[default]
    Mp4,
    /// Fragmented MP4, kept as recorded.
    Fmp4,
    Flv,
}

/// One task: an app and what to make of its streams.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TransTask {
    pub app: String,
    pub hls: bool,
    #[serde(rename = "hlsFlags", alias = "hls_flags")]
    pub hls_flags: String,
    pub dash: bool,
    #[serde(rename = "dashFlags", alias = "dash_flags")]
    pub dash_flags: String,
    /// Record every stream of the app (Node-Media-Server's switch, whatever the format).
    pub mp4: bool,
    #[serde(rename = "mp4Flags", alias = "mp4_flags")]
    pub mp4_flags: String,
    /// Target segment duration in seconds (`hls_time`).
    pub segment_duration: Option<f64>,
    /// Segments listed in the playlist/MPD (`hls_list_size`, `window_size`).
    pub playlist_length: Option<usize>,
    /// Segments kept beyond the playlist for late players (`extra_window_size`).
    pub extra_segments: Option<usize>,
    pub format: SegmentFormat,
    /// Low-Latency HLS (partial segments, blocking reload); needs `format = "fmp4"`.
    pub low_latency: bool,
    /// LL-HLS part duration in seconds.
    pub part_duration: f64,
    pub storage: Storage,
    /// Seconds after the stream ends before its segments are removed.
    pub cleanup_after: u64,
    pub record_format: RecordFormat,
    /// Start a new file after this many seconds (0: never).
    pub record_split_seconds: u64,
    /// Start a new file after this many bytes (0: never).
    pub record_split_bytes: u64,
    /// Keep writing the same file when the publisher comes back within `cleanup_after`.
    pub record_continue: bool,
}

impl Default for TransTask {
    fn default() -> Self {
        TransTask {
            app: String::new(),
            hls: false,
            hls_flags: String::new(),
            dash: false,
            dash_flags: String::new(),
            mp4: false,
            mp4_flags: String::new(),
            segment_duration: None,
            playlist_length: None,
            extra_segments: None,
            format: SegmentFormat::Ts,
            low_latency: false,
            part_duration: 0.5,
            storage: Storage::Memory,
            cleanup_after: 30,
            record_format: RecordFormat::Mp4,
            record_split_seconds: 0,
            record_split_bytes: 0,
            record_continue: false,
        }
    }
}

/// The settings a segmenter runs with, after flags and native keys are combined.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentSettings {
    pub hls: bool,
    pub dash: bool,
    pub segment_duration: f64,
    pub playlist_length: usize,
    pub extra_segments: usize,
    pub format: SegmentFormat,
    pub low_latency: bool,
    pub part_duration: f64,
    pub storage: Storage,
    pub cleanup_after: u64,
}

/// `[hls_time=2:hls_list_size=3:hls_flags=delete_segments]` → key/value pairs.
fn flag_pairs(flags: &str) -> impl Iterator<Item = (&str, &str)> {
    flags
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(':')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
}

impl TransTask {
    /// Combines flags and native keys (native keys win).
    pub fn settings(&self) -> SegmentSettings {
        let mut duration = 2.0;
        let mut length = 3;
        let mut extra = 5;
        for (k, v) in flag_pairs(&self.hls_flags).chain(flag_pairs(&self.dash_flags)) {
            match k {
                "hls_time" | "seg_duration" => duration = v.parse().unwrap_or(duration),
                "hls_list_size" | "window_size" => length = v.parse().unwrap_or(length),
                "extra_window_size" => extra = v.parse().unwrap_or(extra),
                _ => {}
            }
        }
        SegmentSettings {
            hls: self.hls,
            dash: self.dash,
            segment_duration: self.segment_duration.unwrap_or(duration),
            playlist_length: self.playlist_length.unwrap_or(length),
            extra_segments: self.extra_segments.unwrap_or(extra),
            format: if self.low_latency {
                SegmentFormat::Fmp4
            } else {
                self.format
            },
            low_latency: self.low_latency,
            part_duration: self.part_duration,
            storage: self.storage,
            cleanup_after: self.cleanup_after,
        }
    }

    /// A problem with this task, as (key, message).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let s = self.settings();
        if self.app.is_empty() {
            return Some(("trans.tasks.app", "must name an app".into()));
        }
        if !(0.2..=60.0).contains(&s.segment_duration) {
            return Some((
                "trans.tasks.segment_duration",
                format!("must be 0.2..=60 seconds, not {}", s.segment_duration),
            ));
        }
        if s.playlist_length == 0 || s.playlist_length > 1000 {
            return Some(("trans.tasks.playlist_length", "must be 1..=1000".into()));
        }
        if s.low_latency && !(0.1..=s.segment_duration).contains(&s.part_duration) {
            return Some((
                "trans.tasks.part_duration",
                "must be 0.1 s up to the segment duration".into(),
            ));
        }
        if self.low_latency && self.format == SegmentFormat::Ts {
            return Some((
                "trans.tasks.format",
                "low_latency needs format = \"fmp4\"".into(),
            ));
        }
        None
    }
}

impl TransConfig {
    /// The task of `app`, if it records.
    pub fn recording(&self, app: &str) -> Option<&TransTask> {
        self.tasks.iter().find(|t| t.app == app && t.mp4)
    }

    /// The task of `app`, if any has HLS or DASH on.
    pub fn segmenting(&self, app: &str) -> Option<&TransTask> {
        self.tasks
            .iter()
            .find(|t| t.app == app && (t.hls || t.dash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nms_flags_map_to_settings() {
        let t: TransConfig = toml::from_str(
            "[[tasks]]\napp = \"live\"\nhls = true\nhlsFlags = \"[hls_time=4:hls_list_size=5:hls_flags=delete_segments]\"\n\
             dash = true\ndashFlags = \"[f=dash:window_size=6:extra_window_size=7]\"\n",
        )
        .unwrap();
        let s = t.segmenting("live").unwrap().settings();
        assert_eq!(
            (s.segment_duration, s.playlist_length, s.extra_segments),
            (4.0, 6, 7)
        );
        assert!(s.hls && s.dash);
        assert!(t.segmenting("other").is_none());
    }

    #[test]
    fn native_keys_win_and_problems_name_the_key() {
        let t = TransTask {
            app: "live".into(),
            hls: true,
            hls_flags: "[hls_time=4]".into(),
            segment_duration: Some(1.0),
            ..TransTask::default()
        };
        assert_eq!(t.settings().segment_duration, 1.0);
        assert!(t.problem().is_none());
        let bad = TransTask {
            low_latency: true,
            format: SegmentFormat::Ts,
            ..t.clone()
        };
        assert_eq!(bad.problem().unwrap().0, "trans.tasks.format");
        let bad = TransTask {
            segment_duration: Some(100.0),
            ..t
        };
        assert_eq!(bad.problem().unwrap().0, "trans.tasks.segment_duration");
    }
}
