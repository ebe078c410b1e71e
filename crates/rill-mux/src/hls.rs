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

/// Lowest `EXT-X-VERSION` for a playlist without `EXT-X-MAP`: decimal `EXTINF` durations need 3.
const VERSION_TS: u32 = 3;
/// RFC 8216 section 7: `EXT-X-MAP` in a playlist that is not I-frames-only needs version 6.
/// The LL-HLS tags (PART, PART-INF, SERVER-CONTROL, PRELOAD-HINT) raise no version of their
/// own in RFC 8216bis; only EXT-X-SKIP (delta updates, not written here) would need 9.
const VERSION_MAP: u32 = 6;

impl MediaPlaylist {
    /// The playlist text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(256 + self.segments.len() * 96);
        let target = self.effective_target_duration();
        out.push_str("#EXTM3U\n");
        push_line(&mut out, format_args!("#EXT-X-VERSION:{}", self.version()));
        push_line(&mut out, format_args!("#EXT-X-TARGETDURATION:{target}"));
        if let Some(part_target_ms) = self.effective_part_target_ms() {
            // RFC 8216bis 4.4.3.8: PART-HOLD-BACK at least twice the part target (three times
            // recommended); HOLD-BACK at least three target durations.
            push_line(
                &mut out,
                format_args!(
                    "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={},HOLD-BACK={}",
                    Millis(part_target_ms.saturating_mul(3)),
                    Millis(u64::from(target).saturating_mul(3000)),
                ),
            );
            push_line(
                &mut out,
                format_args!("#EXT-X-PART-INF:PART-TARGET={}", Millis(part_target_ms)),
            );
        }
        push_line(
            &mut out,
            format_args!("#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence),
        );
        if self.discontinuity_sequence != 0 {
            push_line(
                &mut out,
                format_args!(
                    "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                    self.discontinuity_sequence
                ),
            );
        }
        // Segments are cut on key frames (and audio frames are all sync samples).
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        if let Some(map) = &self.map_uri {
            push_line(
                &mut out,
                format_args!("#EXT-X-MAP:URI=\"{}\"", QuotedUri(map)),
            );
        }
        for segment in &self.segments {
            if segment.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if let Some(ms) = segment.program_date_time_ms {
                push_line(
                    &mut out,
                    format_args!("#EXT-X-PROGRAM-DATE-TIME:{}", iso8601_utc(ms)),
                );
            }
            for part in &segment.parts {
                push_part(&mut out, part);
            }
            push_line(
                &mut out,
                format_args!("#EXTINF:{},", Millis(duration_ms(segment.duration))),
            );
            push_line(&mut out, format_args!("{}", LineUri(&segment.uri)));
        }
        for part in &self.pending_parts {
            push_part(&mut out, part);
        }
        if !self.ended {
            // A hint for a part that will never come would leave blocking clients waiting.
            if let Some(hint) = &self.preload_hint {
                push_line(
                    &mut out,
                    format_args!("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"", QuotedUri(hint)),
                );
            }
        } else {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }

    /// The `EXT-X-VERSION` written: the lowest one the tags used require.
    pub fn version(&self) -> u32 {
        if self.map_uri.is_some() {
            VERSION_MAP
        } else {
            VERSION_TS
        }
    }

    /// The `EXT-X-TARGETDURATION` written: `target_duration`, raised to the longest `EXTINF`
    /// rounded to the nearest second, which is how RFC 8216 (4.3.3.1) compares them, so the
    /// playlist stays valid when a segment overran (a late key frame) without the target changing
    /// for every few milliseconds of overrun.
    pub fn effective_target_duration(&self) -> u32 {
        let longest_ms = self
            .segments
            .iter()
            .map(|s| duration_ms(s.duration))
            .max()
            .unwrap_or(0);
        let rounded_secs = u32::try_from(longest_ms.saturating_add(500) / 1000).unwrap_or(u32::MAX);
        self.target_duration.max(rounded_secs)
    }

    /// The `PART-TARGET` written, in milliseconds: `part_target` rounded up to the millisecond
    /// and raised to the longest part listed, since RFC 8216bis requires every part duration to
    /// be at most the part target. `None` without LL-HLS.
    pub fn effective_part_target_ms(&self) -> Option<u64> {
        let target = self.part_target?;
        let target_ms = if target.is_finite() && target > 0.0 {
            // Tolerance so that 0.334 (stored as 0.33400000000000002) does not become 0.335.
            (target * 1000.0 - 1e-6).ceil() as u64
        } else {
            0
        };
        let longest = self
            .segments
            .iter()
            .flat_map(|s| s.parts.iter())
            .chain(self.pending_parts.iter())
            .map(|p| duration_ms(p.duration))
            .max()
            .unwrap_or(0);
        Some(target_ms.max(longest))
    }
}

fn push_line(out: &mut String, args: std::fmt::Arguments<'_>) {
    use std::fmt::Write as _;
    // Writing into a String cannot fail.
    let _ = out.write_fmt(args);
    out.push('\n');
}

fn push_part(out: &mut String, part: &Part) {
    push_line(
        out,
        format_args!(
            "#EXT-X-PART:DURATION={},URI=\"{}\"{}",
            Millis(duration_ms(part.duration)),
            QuotedUri(&part.uri),
            if part.independent {
                ",INDEPENDENT=YES"
            } else {
                ""
            }
        ),
    );
}

/// Seconds to whole milliseconds; negative and NaN durations become 0 (the cast saturates).
fn duration_ms(secs: f64) -> u64 {
    (secs * 1000.0).round() as u64
}

/// Milliseconds written as decimal seconds with three decimals (`2.000`, `0.333`).
struct Millis(u64);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

/// Percent-encodes what a playlist line may not hold: control characters (RFC 8216 4.1 forbids
/// U+0000-U+001F and U+007F-U+009F) and, inside a quoted-string, `"`. URIs can carry stream
/// names chosen by a publisher, so this keeps a hostile name from injecting tags.
fn write_uri(f: &mut std::fmt::Formatter<'_>, uri: &str, quoted: bool) -> std::fmt::Result {
    use std::fmt::Write as _;
    for (i, c) in uri.chars().enumerate() {
        // A line starting with `#` would read as a comment or tag instead of a URI.
        let forbidden = c.is_control() || (quoted && c == '"') || (!quoted && i == 0 && c == '#');
        if forbidden {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                write!(f, "%{b:02X}")?;
            }
        } else {
            f.write_char(c)?;
        }
    }
    Ok(())
}

/// A URI inside an attribute's quoted-string.
struct QuotedUri<'a>(&'a str);

impl std::fmt::Display for QuotedUri<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_uri(f, self.0, true)
    }
}

/// A URI on its own line (a segment).
struct LineUri<'a>(&'a str);

impl std::fmt::Display for LineUri<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_uri(f, self.0, false)
    }
}

/// Unix milliseconds as an ISO 8601 / RFC 3339 UTC date-time with milliseconds
/// (`2017-08-23T03:25:21.000Z`), for `EXT-X-PROGRAM-DATE-TIME` and the MPD's times.
pub fn iso8601_utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let ms = unix_ms % 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day). Works in 400-year eras
/// (146097 days each) counted from 0000-03-01, so the leap day falls at the end of a year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // 719468 days from 0000-03-01 to 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March: 0 = March ... 11 = February.
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use m3u8_rs::MediaPlaylist as Parsed;

    /// Parses strictly: the whole text must be consumed by the media playlist grammar.
    fn parse(text: &str) -> Parsed {
        assert!(text.starts_with("#EXTM3U\n"));
        assert!(text.ends_with('\n'));
        assert!(!m3u8_rs::is_master_playlist(text.as_bytes()));
        let (rest, parsed) = m3u8_rs::parse_media_playlist(text.as_bytes()).unwrap();
        assert!(
            rest.is_empty(),
            "unparsed: {:?}",
            String::from_utf8_lossy(rest)
        );
        parsed
    }

    fn seg(seq: u64, duration: f64) -> Segment {
        Segment {
            uri: format!("seg{seq}.ts"),
            duration,
            sequence: seq,
            program_date_time_ms: None,
            discontinuity: false,
            parts: Vec::new(),
        }
    }

    fn part(uri: &str, duration: f64, independent: bool) -> Part {
        Part {
            uri: uri.to_string(),
            duration,
            independent,
        }
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    fn ts_playlist() -> MediaPlaylist {
        MediaPlaylist {
            target_duration: 4,
            media_sequence: 17,
            segments: vec![seg(17, 4.0), seg(18, 3.966), seg(19, 2.5)],
            ..Default::default()
        }
    }

    #[test]
    fn ts_playlist_exact_text() {
        let text = ts_playlist().render();
        assert_eq!(
            text,
            "#EXTM3U\n\
             #EXT-X-VERSION:3\n\
             #EXT-X-TARGETDURATION:4\n\
             #EXT-X-MEDIA-SEQUENCE:17\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXTINF:4.000,\nseg17.ts\n\
             #EXTINF:3.966,\nseg18.ts\n\
             #EXTINF:2.500,\nseg19.ts\n"
        );
    }

    #[test]
    fn ts_playlist_round_trips() {
        let pl = ts_playlist();
        let parsed = parse(&pl.render());
        assert_eq!(parsed.version, Some(3));
        assert_eq!(parsed.target_duration, 4);
        assert_eq!(parsed.media_sequence, 17);
        assert_eq!(parsed.discontinuity_sequence, 0);
        assert!(parsed.independent_segments);
        assert!(!parsed.end_list);
        assert_eq!(parsed.segments.len(), 3);
        for (p, s) in parsed.segments.iter().zip(&pl.segments) {
            assert_eq!(p.uri, s.uri);
            assert!((f64::from(p.duration) - s.duration).abs() < 1e-4);
            assert!(p.map.is_none());
            assert!(!p.discontinuity);
            assert!(p.program_date_time.is_none());
            assert!(p.unknown_tags.is_empty());
            // RFC 8216 4.3.3.1: target duration >= every EXTINF.
            assert!(u64::from(p.duration.round() as u32) <= parsed.target_duration);
        }
    }

    #[test]
    fn fmp4_playlist_round_trips() {
        let pl = MediaPlaylist {
            target_duration: 2,
            media_sequence: 0,
            map_uri: Some("init.mp4".into()),
            segments: vec![seg(0, 2.0), seg(1, 2.0)],
            ..Default::default()
        };
        let text = pl.render();
        assert!(text.contains("\n#EXT-X-MAP:URI=\"init.mp4\"\n"));
        let parsed = parse(&text);
        assert_eq!(parsed.version, Some(6));
        assert_eq!(parsed.target_duration, 2);
        assert_eq!(parsed.segments.len(), 2);
        // m3u8-rs attaches the map to the segment following the tag.
        assert_eq!(parsed.segments[0].map.as_ref().unwrap().uri, "init.mp4");
        assert_eq!(parsed.segments[1].uri, "seg1.ts");
    }

    #[test]
    fn ended_playlist_round_trips() {
        let mut pl = ts_playlist();
        pl.ended = true;
        pl.preload_hint = Some("never.ts".into());
        let text = pl.render();
        assert!(text.ends_with("seg19.ts\n#EXT-X-ENDLIST\n"));
        assert!(!text.contains("PRELOAD-HINT"));
        let parsed = parse(&text);
        assert!(parsed.end_list);
        assert_eq!(parsed.segments.len(), 3);
    }

    #[test]
    fn discontinuity_and_program_date_time_round_trip() {
        let mut pl = ts_playlist();
        pl.discontinuity_sequence = 3;
        pl.segments[0].program_date_time_ms = Some(1_503_458_721_000);
        pl.segments[1].discontinuity = true;
        pl.segments[1].program_date_time_ms = Some(1_503_458_800_123);
        let text = pl.render();
        assert!(text.contains(
            "#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2017-08-23T03:26:40.123Z\n#EXTINF:3.966,\nseg18.ts\n"
        ));
        let parsed = parse(&text);
        assert_eq!(parsed.discontinuity_sequence, 3);
        let flags: Vec<bool> = parsed.segments.iter().map(|s| s.discontinuity).collect();
        assert_eq!(flags, [false, true, false]);
        let pdt: Vec<Option<i64>> = parsed
            .segments
            .iter()
            .map(|s| s.program_date_time.map(|d| d.timestamp_millis()))
            .collect();
        assert_eq!(
            pdt,
            [Some(1_503_458_721_000), Some(1_503_458_800_123), None]
        );
    }

    fn ll_playlist() -> MediaPlaylist {
        let mut s0 = seg(266, 2.0);
        s0.uri = "seg266.m4s".into();
        let mut s1 = seg(267, 2.0);
        s1.uri = "seg267.m4s".into();
        s1.parts = (0..6)
            .map(|i| part(&format!("part267.{i}.m4s"), 1.0 / 3.0, i == 0))
            .collect();
        MediaPlaylist {
            target_duration: 2,
            media_sequence: 266,
            map_uri: Some("init.mp4".into()),
            segments: vec![s0, s1],
            pending_parts: vec![
                part("part268.0.m4s", 1.0 / 3.0, true),
                part("part268.1.m4s", 0.32, false),
            ],
            part_target: Some(1.0 / 3.0),
            preload_hint: Some("part268.2.m4s".into()),
            ..Default::default()
        }
    }

    #[test]
    fn ll_hls_exact_lines() {
        let text = ll_playlist().render();
        let l = lines(&text);
        assert_eq!(
            &l[..8],
            [
                "#EXTM3U",
                "#EXT-X-VERSION:6",
                "#EXT-X-TARGETDURATION:2",
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.002,HOLD-BACK=6.000",
                "#EXT-X-PART-INF:PART-TARGET=0.334",
                "#EXT-X-MEDIA-SEQUENCE:266",
                "#EXT-X-INDEPENDENT-SEGMENTS",
                "#EXT-X-MAP:URI=\"init.mp4\"",
            ]
        );
        assert_eq!(&l[8..10], ["#EXTINF:2.000,", "seg266.m4s"]);
        assert_eq!(
            l[10],
            "#EXT-X-PART:DURATION=0.333,URI=\"part267.0.m4s\",INDEPENDENT=YES"
        );
        assert_eq!(l[11], "#EXT-X-PART:DURATION=0.333,URI=\"part267.1.m4s\"");
        assert_eq!(&l[16..18], ["#EXTINF:2.000,", "seg267.m4s"]);
        assert_eq!(
            &l[18..],
            [
                "#EXT-X-PART:DURATION=0.333,URI=\"part268.0.m4s\",INDEPENDENT=YES",
                "#EXT-X-PART:DURATION=0.320,URI=\"part268.1.m4s\"",
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part268.2.m4s\"",
            ]
        );
    }

    #[test]
    fn ll_hls_parses_with_unknown_tags() {
        let pl = ll_playlist();
        let parsed = parse(&pl.render());
        assert_eq!(parsed.version, Some(6));
        assert_eq!(parsed.media_sequence, 266);
        // The trailing parts and hint belong to no complete segment: m3u8-rs drops them.
        assert_eq!(parsed.segments.len(), 2);
        let names = |s: &m3u8_rs::MediaSegment| -> Vec<String> {
            s.unknown_tags.iter().map(|t| t.tag.clone()).collect()
        };
        // Header LL-HLS tags come back as unknown tags of the first segment.
        assert_eq!(
            names(&parsed.segments[0]),
            ["X-SERVER-CONTROL", "X-PART-INF"]
        );
        assert_eq!(
            parsed.segments[0].unknown_tags[1].rest.as_deref(),
            Some("PART-TARGET=0.334")
        );
        assert_eq!(names(&parsed.segments[1]), vec!["X-PART".to_string(); 6]);
        assert_eq!(
            parsed.segments[1].unknown_tags[5].rest.as_deref(),
            Some("DURATION=0.333,URI=\"part267.5.m4s\"")
        );
        assert_eq!(parsed.segments[1].uri, "seg267.m4s");
    }

    #[test]
    fn part_target_rounds_up_and_covers_longest_part() {
        let mut pl = ll_playlist();
        assert_eq!(pl.effective_part_target_ms(), Some(334));
        pl.part_target = Some(0.334);
        assert_eq!(pl.effective_part_target_ms(), Some(334));
        pl.part_target = Some(0.5);
        assert_eq!(pl.effective_part_target_ms(), Some(500));
        pl.part_target = Some(0.2);
        // The longest part listed (0.333) wins.
        assert_eq!(pl.effective_part_target_ms(), Some(333));
        pl.part_target = None;
        assert_eq!(pl.effective_part_target_ms(), None);
        let text = pl.render();
        assert!(!text.contains("PART-INF") && !text.contains("SERVER-CONTROL"));
    }

    #[test]
    fn target_duration_follows_rounded_long_segments() {
        let mut pl = ts_playlist();
        pl.segments.push(seg(20, 4.2));
        assert_eq!(
            pl.effective_target_duration(),
            4,
            "4.2 rounds to 4: no change"
        );
        pl.segments.push(seg(21, 4.6));
        assert_eq!(pl.effective_target_duration(), 5);
        let parsed = parse(&pl.render());
        assert_eq!(parsed.target_duration, 5);
        for s in &parsed.segments {
            assert!(f64::from(s.duration).round() as u64 <= parsed.target_duration);
        }
        // The half-second boundary (after millisecond rounding) decides.
        pl.segments.truncate(pl.segments.len() - 2);
        pl.segments.push(seg(20, 4.4994));
        assert_eq!(pl.effective_target_duration(), 4);
        pl.segments.push(seg(21, 4.5));
        assert_eq!(pl.effective_target_duration(), 5);
        // A larger configured target is kept.
        pl.target_duration = 10;
        assert_eq!(pl.effective_target_duration(), 10);
        // No segments yet: the configured value.
        let empty = MediaPlaylist {
            target_duration: 6,
            ..Default::default()
        };
        assert_eq!(empty.effective_target_duration(), 6);
        assert_eq!(parse(&empty.render()).target_duration, 6);
        // HOLD-BACK follows the raised target.
        let mut ll = ll_playlist();
        ll.segments[0].duration = 2.5;
        assert!(ll.render().contains("HOLD-BACK=9.000\n"));
    }

    #[test]
    fn program_date_time_format() {
        assert_eq!(iso8601_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_utc(1_503_458_721_000), "2017-08-23T03:25:21.000Z");
        assert_eq!(iso8601_utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601_utc(951_868_799_999), "2000-02-29T23:59:59.999Z");
        assert_eq!(iso8601_utc(1_709_164_800_000), "2024-02-29T00:00:00.000Z");
        assert_eq!(iso8601_utc(4_107_542_399_000), "2100-02-28T23:59:59.000Z");
        assert_eq!(iso8601_utc(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
        assert_eq!(iso8601_utc(1_798_156_800_000), "2026-12-25T00:00:00.000Z");
        assert_eq!(iso8601_utc(1_795_471_200_000), "2026-11-23T22:00:00.000Z");
    }

    #[test]
    fn hostile_uris_cannot_inject_tags() {
        let mut pl = ts_playlist();
        pl.segments[0].uri = "a\n#EXT-X-ENDLIST\nb.ts".into();
        pl.segments[1].uri = "#x.ts".into();
        pl.map_uri = Some("i\"nit\r.mp4".into());
        let text = pl.render();
        assert!(text.contains("a%0A#EXT-X-ENDLIST%0Ab.ts\n"));
        assert!(text.contains("\n%23x.ts\n"));
        assert!(text.contains("#EXT-X-MAP:URI=\"i%22nit%0D.mp4\"\n"));
        let parsed = parse(&text);
        assert!(!parsed.end_list);
        assert_eq!(parsed.segments.len(), 3);
        assert_eq!(
            parsed.segments[0].map.as_ref().unwrap().uri,
            "i%22nit%0D.mp4"
        );
    }

    #[test]
    fn odd_durations_do_not_panic() {
        let mut pl = ts_playlist();
        pl.segments[0].duration = f64::NAN;
        pl.segments[1].duration = -1.0;
        pl.segments[2].duration = f64::INFINITY;
        pl.part_target = Some(f64::NAN);
        let text = pl.render();
        assert!(text.contains("#EXTINF:0.000,\nseg17.ts"));
        assert!(text.contains("#EXTINF:0.000,\nseg18.ts"));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn civil_dates_round_trip_through_chrono(ms in 0u64..253_402_300_800_000) {
                let text = iso8601_utc(ms);
                let parsed = m3u8_rs::parse_media_playlist_res(
                    format!("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-PROGRAM-DATE-TIME:{text}\n#EXTINF:1.000,\na.ts\n").as_bytes(),
                ).unwrap();
                let pdt = parsed.segments[0].program_date_time.unwrap();
                prop_assert_eq!(pdt.timestamp_millis(), ms as i64);
            }

            #[test]
            fn any_playlist_parses(
                durs in proptest::collection::vec(0.0f64..12.0, 0..8),
                target in 0u32..8,
                seq in any::<u32>(),
                disc in 0u64..5,
                ended in any::<bool>(),
                fmp4 in any::<bool>(),
            ) {
                let pl = MediaPlaylist {
                    target_duration: target,
                    media_sequence: u64::from(seq),
                    discontinuity_sequence: disc,
                    map_uri: fmp4.then(|| "init.mp4".to_string()),
                    segments: durs.iter().enumerate().map(|(i, d)| {
                        let mut s = seg(u64::from(seq) + i as u64, *d);
                        s.discontinuity = i % 3 == 1;
                        s
                    }).collect(),
                    ended,
                    ..Default::default()
                };
                let parsed = parse(&pl.render());
                prop_assert_eq!(parsed.media_sequence, u64::from(seq));
                prop_assert_eq!(parsed.discontinuity_sequence, disc);
                prop_assert_eq!(parsed.end_list, ended);
                prop_assert_eq!(parsed.segments.len(), durs.len());
                prop_assert!(parsed.target_duration >= u64::from(target));
                for (p, d) in parsed.segments.iter().zip(&durs) {
                    prop_assert!((f64::from(p.duration) - d).abs() < 1e-3);
                    prop_assert!(f64::from(p.duration).round() as u64 <= parsed.target_duration);
                }
            }
        }
    }
}
