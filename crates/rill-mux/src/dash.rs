//! DASH MPD writer: a dynamic MPD with one adaptation set per track over CMAF segments
//! (SegmentTemplate with `$Number$` and a SegmentTimeline).

use crate::hls::iso8601_utc;

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
        let mut out = String::with_capacity(1024 + self.representations.len() * 512);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push_str(
            "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" \
             profiles=\"urn:mpeg:dash:profile:isoff-live:2011\"",
        );
        if self.ended {
            attr(&mut out, "type", "static");
            attr(
                &mut out,
                "mediaPresentationDuration",
                &xs_duration(self.presentation_duration_secs()),
            );
        } else {
            attr(&mut out, "type", "dynamic");
        }
        attr(
            &mut out,
            "availabilityStartTime",
            &iso8601_utc(self.availability_start_ms),
        );
        attr(&mut out, "publishTime", &iso8601_utc(self.publish_time_ms));
        if !self.ended {
            // Only meaningful for a dynamic MPD (ISO/IEC 23009-1 5.3.1.2).
            attr(
                &mut out,
                "minimumUpdatePeriod",
                &xs_duration(self.min_update_period_secs),
            );
            attr(
                &mut out,
                "timeShiftBufferDepth",
                &xs_duration(self.time_shift_depth_secs),
            );
            attr(
                &mut out,
                "suggestedPresentationDelay",
                &xs_duration(self.suggested_presentation_delay_secs),
            );
        }
        attr(
            &mut out,
            "minBufferTime",
            &xs_duration(self.min_buffer_secs),
        );
        attr(
            &mut out,
            "maxSegmentDuration",
            &xs_duration(self.max_segment_duration_secs),
        );
        out.push_str(">\n");
        out.push_str("  <Period id=\"0\" start=\"PT0S\">\n");
        for (index, rep) in self.representations.iter().enumerate() {
            render_adaptation_set(&mut out, index, rep);
        }
        out.push_str("  </Period>\n");
        // The schema puts UTCTiming after the Periods.
        if let Some(url) = &self.utc_timing_url {
            out.push_str("  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-iso:2014\"");
            attr(&mut out, "value", url);
            out.push_str("/>\n");
        }
        out.push_str("</MPD>\n");
        out
    }

    /// `mediaPresentationDuration` of the static MPD: the end of the latest segment listed
    /// (the Period starts at 0 and timelines count from the stream's time zero).
    pub fn presentation_duration_secs(&self) -> f64 {
        self.representations
            .iter()
            .filter(|r| r.timescale > 0)
            .filter_map(|r| {
                let (t, d) = r.timeline.last()?;
                Some(t.saturating_add(*d) as f64 / f64::from(r.timescale))
            })
            .fold(0.0, f64::max)
    }
}

fn render_adaptation_set(out: &mut String, index: usize, rep: &Representation) {
    let content_type = rep.mime_type.split('/').next().unwrap_or_default();
    let is_video = content_type == "video";
    let is_audio = content_type == "audio";
    out.push_str("    <AdaptationSet");
    attr(out, "id", &index.to_string());
    if is_video || is_audio {
        attr(out, "contentType", content_type);
    }
    attr(out, "segmentAlignment", "true");
    attr(out, "mimeType", &rep.mime_type);
    attr(out, "codecs", &rep.codecs);
    attr(out, "startWithSAP", "1");
    out.push_str(">\n      <Representation");
    attr(out, "id", &rep.id);
    attr(out, "bandwidth", &rep.bandwidth.to_string());
    if is_video && rep.width > 0 && rep.height > 0 {
        attr(out, "width", &rep.width.to_string());
        attr(out, "height", &rep.height.to_string());
    }
    if is_audio && rep.sample_rate > 0 {
        attr(out, "audioSamplingRate", &rep.sample_rate.to_string());
    }
    out.push_str(">\n        <SegmentTemplate");
    attr(out, "timescale", &rep.timescale.to_string());
    attr(out, "initialization", &rep.initialization);
    attr(out, "media", &rep.media);
    attr(out, "startNumber", &rep.start_number.to_string());
    out.push_str(">\n          <SegmentTimeline>\n");
    for run in timeline_runs(&rep.timeline) {
        out.push_str("            <S");
        if let Some(t) = run.t {
            attr(out, "t", &t.to_string());
        }
        attr(out, "d", &run.d.to_string());
        if run.r > 0 {
            attr(out, "r", &run.r.to_string());
        }
        out.push_str("/>\n");
    }
    out.push_str(
        "          </SegmentTimeline>\n        </SegmentTemplate>\n      \
         </Representation>\n    </AdaptationSet>\n",
    );
}

/// One `<S>` element: `r + 1` consecutive segments of duration `d`, the first at `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineRun {
    /// Written only where the timeline does not simply continue from the previous run (the
    /// first run, or after a gap or overlap); a player then derives it from the previous end.
    pub t: Option<u64>,
    pub d: u64,
    /// Repeat count: the number of segments after the first.
    pub r: u64,
}

/// Run-length codes a `(start, duration)` list into `<S>` elements: consecutive segments of
/// equal duration that follow each other without a gap share one element.
pub fn timeline_runs(timeline: &[(u64, u64)]) -> Vec<TimelineRun> {
    let mut runs: Vec<TimelineRun> = Vec::new();
    let mut expected_next: Option<u64> = None;
    for &(t, d) in timeline {
        let contiguous = expected_next == Some(t);
        match runs.last_mut() {
            Some(last) if contiguous && last.d == d => last.r += 1,
            _ => runs.push(TimelineRun {
                t: (!contiguous).then_some(t),
                d,
                r: 0,
            }),
        }
        // On overflow the next run simply carries an explicit t.
        expected_next = t.checked_add(d);
    }
    runs
}

/// Writes ` name="value"` with the value escaped for an XML attribute.
fn attr(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Attribute-value normalisation would turn raw whitespace controls into spaces.
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            // Other C0 controls, U+FFFE and U+FFFF are not XML 1.0 characters at all, not even
            // as references: drop them rather than emit a document no parser accepts.
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Seconds as an `xs:duration` with millisecond precision (`PT1.500S`). Negative and NaN values
/// are written as zero, since a duration attribute cannot be negative here.
pub fn xs_duration(secs: f64) -> String {
    let ms = (secs * 1000.0).round() as u64;
    format!("PT{}.{:03}S", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = "urn:mpeg:dash:schema:mpd:2011";

    fn video() -> Representation {
        Representation {
            id: "video".into(),
            mime_type: "video/mp4".into(),
            codecs: "avc1.64001f".into(),
            bandwidth: 2_500_000,
            width: 1280,
            height: 720,
            sample_rate: 0,
            timescale: 90_000,
            initialization: "init-$RepresentationID$.m4s".into(),
            media: "seg-$RepresentationID$-$Number$.m4s".into(),
            // Three 2 s segments, a 1.5 s one (key frame came early), then two more of 2 s.
            timeline: vec![
                (900_000, 180_000),
                (1_080_000, 180_000),
                (1_260_000, 180_000),
                (1_440_000, 135_000),
                (1_575_000, 180_000),
                (1_755_000, 180_000),
            ],
            start_number: 5,
        }
    }

    fn audio() -> Representation {
        Representation {
            id: "audio".into(),
            mime_type: "audio/mp4".into(),
            codecs: "mp4a.40.2".into(),
            bandwidth: 128_000,
            width: 0,
            height: 0,
            sample_rate: 48_000,
            timescale: 48_000,
            initialization: "init-$RepresentationID$.m4s".into(),
            media: "seg-$RepresentationID$-$Number$.m4s".into(),
            timeline: vec![(480_000, 96_000), (576_000, 96_000)],
            start_number: 5,
        }
    }

    fn live() -> Mpd {
        Mpd {
            availability_start_ms: 1_795_471_200_000,
            publish_time_ms: 1_795_471_219_500,
            min_buffer_secs: 2.0,
            min_update_period_secs: 2.0,
            time_shift_depth_secs: 30.0,
            max_segment_duration_secs: 2.0,
            suggested_presentation_delay_secs: 1.5,
            utc_timing_url: Some("https://example.test/time?iso&ms".into()),
            representations: vec![video(), audio()],
            ended: false,
        }
    }

    fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> roxmltree::Node<'a, 'i> {
        node.children()
            .find(|n| n.has_tag_name((NS, name)))
            .unwrap_or_else(|| panic!("no {name} under {:?}", node.tag_name()))
    }

    fn children<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Vec<roxmltree::Node<'a, 'i>> {
        node.children()
            .filter(|n| n.has_tag_name((NS, name)))
            .collect()
    }

    /// Expands `<S>` elements back into `(t, d)` pairs per ISO/IEC 23009-1 5.3.9.6.
    fn expand(timeline: roxmltree::Node<'_, '_>) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut next = 0u64;
        for s in children(timeline, "S") {
            let t = s.attribute("t").map_or(next, |t| t.parse().unwrap());
            let d: u64 = s.attribute("d").unwrap().parse().unwrap();
            let r: u64 = s.attribute("r").map_or(0, |r| r.parse().unwrap());
            for i in 0..=r {
                out.push((t + i * d, d));
            }
            next = t + (r + 1) * d;
        }
        out
    }

    #[test]
    fn dynamic_mpd_attributes() {
        let xml = live().render();
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"));
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let mpd = doc.root_element();
        assert!(mpd.has_tag_name((NS, "MPD")));
        let a = |n: &str| mpd.attribute(n);
        assert_eq!(a("profiles"), Some("urn:mpeg:dash:profile:isoff-live:2011"));
        assert_eq!(a("type"), Some("dynamic"));
        assert_eq!(a("availabilityStartTime"), Some("2026-11-23T22:00:00.000Z"));
        assert_eq!(a("publishTime"), Some("2026-11-23T22:00:19.500Z"));
        assert_eq!(a("minimumUpdatePeriod"), Some("PT2.000S"));
        assert_eq!(a("minBufferTime"), Some("PT2.000S"));
        assert_eq!(a("timeShiftBufferDepth"), Some("PT30.000S"));
        assert_eq!(a("maxSegmentDuration"), Some("PT2.000S"));
        assert_eq!(a("suggestedPresentationDelay"), Some("PT1.500S"));
        assert_eq!(a("mediaPresentationDuration"), None);

        let period = child(mpd, "Period");
        assert_eq!(period.attribute("id"), Some("0"));
        assert_eq!(period.attribute("start"), Some("PT0S"));
        assert_eq!(children(mpd, "Period").len(), 1);

        let utc = child(mpd, "UTCTiming");
        assert_eq!(
            utc.attribute("schemeIdUri"),
            Some("urn:mpeg:dash:utc:http-iso:2014")
        );
        // Escaped on the way out, unescaped by the parser.
        assert_eq!(
            utc.attribute("value"),
            Some("https://example.test/time?iso&ms")
        );
        assert!(xml.contains("time?iso&amp;ms"));
        // UTCTiming comes after the Period in the MPD schema's sequence.
        let order: Vec<&str> = mpd
            .children()
            .filter(|n| n.is_element())
            .map(|n| n.tag_name().name())
            .collect();
        assert_eq!(order, ["Period", "UTCTiming"]);
    }

    #[test]
    fn adaptation_sets_and_representations() {
        let xml = live().render();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let sets = children(child(doc.root_element(), "Period"), "AdaptationSet");
        assert_eq!(sets.len(), 2);

        let v = sets[0];
        assert_eq!(v.attribute("id"), Some("0"));
        assert_eq!(v.attribute("contentType"), Some("video"));
        assert_eq!(v.attribute("mimeType"), Some("video/mp4"));
        assert_eq!(v.attribute("codecs"), Some("avc1.64001f"));
        assert_eq!(v.attribute("segmentAlignment"), Some("true"));
        assert_eq!(v.attribute("startWithSAP"), Some("1"));
        let vr = child(v, "Representation");
        assert_eq!(vr.attribute("id"), Some("video"));
        assert_eq!(vr.attribute("bandwidth"), Some("2500000"));
        assert_eq!(vr.attribute("width"), Some("1280"));
        assert_eq!(vr.attribute("height"), Some("720"));
        assert_eq!(vr.attribute("audioSamplingRate"), None);
        let tpl = child(vr, "SegmentTemplate");
        assert_eq!(tpl.attribute("timescale"), Some("90000"));
        assert_eq!(
            tpl.attribute("initialization"),
            Some("init-$RepresentationID$.m4s")
        );
        assert_eq!(
            tpl.attribute("media"),
            Some("seg-$RepresentationID$-$Number$.m4s")
        );
        assert_eq!(tpl.attribute("startNumber"), Some("5"));

        let a = sets[1];
        assert_eq!(a.attribute("id"), Some("1"));
        assert_eq!(a.attribute("contentType"), Some("audio"));
        assert_eq!(a.attribute("mimeType"), Some("audio/mp4"));
        assert_eq!(a.attribute("codecs"), Some("mp4a.40.2"));
        let ar = child(a, "Representation");
        assert_eq!(ar.attribute("audioSamplingRate"), Some("48000"));
        assert_eq!(ar.attribute("width"), None);
        assert_eq!(ar.attribute("height"), None);
        assert_eq!(
            child(ar, "SegmentTemplate").attribute("timescale"),
            Some("48000")
        );
    }

    #[test]
    fn segment_timeline_math() {
        let xml = live().render();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let sets = children(child(doc.root_element(), "Period"), "AdaptationSet");
        fn tl<'a, 'i>(set: roxmltree::Node<'a, 'i>) -> roxmltree::Node<'a, 'i> {
            child(
                child(child(set, "Representation"), "SegmentTemplate"),
                "SegmentTimeline",
            )
        }
        let s: Vec<(Option<&str>, Option<&str>, Option<&str>)> = children(tl(sets[0]), "S")
            .iter()
            .map(|s| (s.attribute("t"), s.attribute("d"), s.attribute("r")))
            .collect();
        assert_eq!(
            s,
            [
                (Some("900000"), Some("180000"), Some("2")),
                (None, Some("135000"), None),
                (None, Some("180000"), Some("1")),
            ]
        );
        assert_eq!(expand(tl(sets[0])), video().timeline);
        assert_eq!(expand(tl(sets[1])), audio().timeline);
        assert!(xml.contains("<S t=\"480000\" d=\"96000\" r=\"1\"/>"));
    }

    #[test]
    fn timeline_runs_handle_gaps_and_overlaps() {
        assert_eq!(timeline_runs(&[]), []);
        let runs = timeline_runs(&[(0, 10), (10, 10), (25, 10), (35, 10), (40, 5)]);
        assert_eq!(
            runs,
            [
                TimelineRun {
                    t: Some(0),
                    d: 10,
                    r: 1
                },
                // Gap 20..25: a new run with an explicit t, even though d is unchanged.
                TimelineRun {
                    t: Some(25),
                    d: 10,
                    r: 1
                },
                // Overlap (40 < 45): explicit t again.
                TimelineRun {
                    t: Some(40),
                    d: 5,
                    r: 0
                },
            ]
        );
        assert_eq!(
            timeline_runs(&[(u64::MAX - 1, 5), (u64::MAX, 5)]),
            [
                TimelineRun {
                    t: Some(u64::MAX - 1),
                    d: 5,
                    r: 0
                },
                TimelineRun {
                    t: Some(u64::MAX),
                    d: 5,
                    r: 0
                },
            ]
        );
    }

    #[test]
    fn static_mpd_when_ended() {
        let mut mpd = live();
        mpd.ended = true;
        let xml = mpd.render();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let root = doc.root_element();
        assert_eq!(root.attribute("type"), Some("static"));
        // Video ends at 1_935_000 / 90_000 = 21.5 s, audio at 672_000 / 48_000 = 14 s.
        assert_eq!(
            root.attribute("mediaPresentationDuration"),
            Some("PT21.500S")
        );
        assert_eq!(root.attribute("minimumUpdatePeriod"), None);
        assert_eq!(root.attribute("timeShiftBufferDepth"), None);
        assert_eq!(root.attribute("suggestedPresentationDelay"), None);
        assert_eq!(root.attribute("minBufferTime"), Some("PT2.000S"));
        assert_eq!(children(child(root, "Period"), "AdaptationSet").len(), 2);
    }

    #[test]
    fn durations_format() {
        assert_eq!(xs_duration(1.5), "PT1.500S");
        assert_eq!(xs_duration(0.0), "PT0.000S");
        assert_eq!(xs_duration(2.0), "PT2.000S");
        assert_eq!(xs_duration(0.0333), "PT0.033S");
        assert_eq!(xs_duration(3600.25), "PT3600.250S");
        assert_eq!(xs_duration(-1.0), "PT0.000S");
        assert_eq!(xs_duration(f64::NAN), "PT0.000S");
    }

    #[test]
    fn hostile_values_are_escaped() {
        let mut mpd = live();
        mpd.representations[0].id = "a\"b<c>&'d\n\u{1}e".into();
        mpd.representations[0].media = "x\"/><Evil/>".into();
        let xml = mpd.render();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let set = children(child(doc.root_element(), "Period"), "AdaptationSet")[0];
        let rep = child(set, "Representation");
        assert_eq!(rep.attribute("id"), Some("a\"b<c>&'d\ne"));
        assert_eq!(
            child(rep, "SegmentTemplate").attribute("media"),
            Some("x\"/><Evil/>")
        );
        assert!(doc.descendants().all(|n| n.tag_name().name() != "Evil"));
    }

    #[test]
    fn empty_and_odd_inputs_still_parse() {
        let mpd = Mpd::default();
        let xml = mpd.render();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        assert_eq!(
            doc.root_element().attribute("availabilityStartTime"),
            Some("1970-01-01T00:00:00.000Z")
        );
        assert!(children(doc.root_element(), "UTCTiming").is_empty());
        let mut ended = Mpd {
            ended: true,
            ..Mpd::default()
        };
        let mut rep = video();
        rep.timescale = 0;
        ended.representations.push(rep);
        let mut other = audio();
        other.mime_type = "application/mp4".into();
        other.timeline.clear();
        ended.representations.push(other);
        let xml = ended.render();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        assert_eq!(
            doc.root_element().attribute("mediaPresentationDuration"),
            Some("PT0.000S")
        );
        let sets = children(child(doc.root_element(), "Period"), "AdaptationSet");
        assert_eq!(sets[1].attribute("contentType"), None);
        assert_eq!(
            child(sets[1], "Representation").attribute("audioSamplingRate"),
            None
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn timeline_expands_back(
                start in 0u64..1_000_000,
                steps in proptest::collection::vec((0u64..3, 1u64..4), 0..40),
            ) {
                // Mostly contiguous, with some gaps (kind 2), drawn from a few durations so runs form.
                let mut timeline = Vec::new();
                let mut t = start;
                for (kind, d) in steps {
                    if kind == 2 { t += 7; }
                    let d = d * 1000;
                    timeline.push((t, d));
                    t += d;
                }
                let mut rep = video();
                rep.timeline = timeline.clone();
                let mpd = Mpd { representations: vec![rep], ..Mpd::default() };
                let xml = mpd.render();
                let doc = roxmltree::Document::parse(&xml).unwrap();
                let set = child(child(doc.root_element(), "Period"), "AdaptationSet");
                let tl = child(child(child(set, "Representation"), "SegmentTemplate"), "SegmentTimeline");
                prop_assert_eq!(expand(tl), timeline.clone());
                // Maximal runs: two adjacent contiguous runs never share a duration.
                let runs = timeline_runs(&timeline);
                for w in runs.windows(2) {
                    prop_assert!(w[1].t.is_some() || w[0].d != w[1].d);
                }
            }

            #[test]
            fn any_attribute_text_stays_well_formed(id in any::<String>()) {
                let mut rep = audio();
                rep.id = id;
                let mpd = Mpd { representations: vec![rep], ..Mpd::default() };
                let xml = mpd.render();
                prop_assert!(roxmltree::Document::parse(&xml).is_ok());
            }
        }
    }
}
