//! `/metrics` in the Prometheus text exposition format 0.0.4, written by hand: every family has its
//! `# HELP` and `# TYPE` lines, counters end in `_total`, sizes are in bytes and times in seconds,
//! and label values are escaped (`\\`, `\"`, `\n`) since app and stream names come from clients.
//!
//! The numbers come from [`crate::control::stats::Stats::metrics`], the same source as the API.

use std::fmt::Write;

use crate::control::stats::MetricsSnapshot;

/// The `Content-Type` of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escapes a label value: backslash, double quote and line feed.
pub fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes `# HELP` text: backslash and line feed.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Writes families one at a time.
struct Writer {
    out: String,
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label_value(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family with one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// Renders the exposition text.
pub fn render(m: &MetricsSnapshot) -> String {
    let mut w = Writer { out: String::new() };
    w.single(
        "rill_streams",
        "gauge",
        "Streams with a publisher.",
        m.live_streams,
    );
    w.family(
        "rill_sessions",
        "gauge",
        "Open sessions (connections and HTTP/WebSocket viewers) by protocol.",
    );
    for (protocol, n) in [
        ("rtmp", m.sessions_rtmp),
        ("http-flv", m.sessions_http_flv),
        ("ws-flv", m.sessions_ws_flv),
        ("relay", m.sessions_relay),
    ] {
        w.sample("rill_sessions", &[("protocol", protocol)], n);
    }
    w.single(
        "rill_connections_accepted_total",
        "counter",
        "Sessions accepted since start.",
        m.accepted,
    );
    w.single(
        "rill_connections_refused_total",
        "counter",
        "Connections refused since start (limits, auth, bad names).",
        m.refused,
    );
    w.single(
        "rill_received_bytes_total",
        "counter",
        "Bytes received from clients on the wire, ended sessions included.",
        m.received_bytes,
    );
    w.single(
        "rill_sent_bytes_total",
        "counter",
        "Bytes sent to clients on the wire, ended sessions included.",
        m.sent_bytes,
    );
    w.single(
        "rill_frames_dropped_total",
        "counter",
        "Frames skipped by viewers that fell behind.",
        m.frames_dropped,
    );
    w.single(
        "rill_viewers_dropped_total",
        "counter",
        "Viewers disconnected for staying behind.",
        m.viewers_dropped,
    );
    w.family(
        "rill_stream_viewers",
        "gauge",
        "Viewers of a stream (all protocols).",
    );
    for s in &m.streams {
        w.sample(
            "rill_stream_viewers",
            &[("app", &s.app), ("stream", &s.name)],
            s.viewers,
        );
    }
    w.family(
        "rill_stream_received_bytes_total",
        "counter",
        "Media payload bytes received for a stream since its current publish started.",
    );
    for s in &m.streams {
        w.sample(
            "rill_stream_received_bytes_total",
            &[("app", &s.app), ("stream", &s.name)],
            s.received_bytes,
        );
    }
    relays(&mut w, m);
    w.single(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        m.resident_memory_bytes,
    );
    w.single(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch in seconds.",
        m.start_time_seconds,
    );
    w.out
}

/// Relays: how many are in each mode and state (every pair, zeros included, so alerts on a
/// state have a series to watch), and each one's state, restarts and bytes.
fn relays(w: &mut Writer, m: &MetricsSnapshot) {
    use crate::config::RelayMode;
    use crate::relay::RelayState;
    w.family("rill_relays", "gauge", "Relays by mode and state.");
    for mode in [RelayMode::Static, RelayMode::Pull, RelayMode::Push] {
        for state in RelayState::ALL {
            let n = m
                .relays
                .iter()
                .filter(|r| r.mode == mode.as_str() && r.state == state.as_str())
                .count();
            let labels = [("mode", mode.as_str()), ("state", state.as_str())];
            w.sample("rill_relays", &labels, n);
        }
    }
    let labels = |r: &crate::relay::RelayView| {
        [
            ("id", r.id.clone()),
            ("mode", r.mode.to_owned()),
            ("app", r.app.clone()),
            ("stream", r.name.clone()),
        ]
    };
    type Value = fn(&crate::relay::RelayView) -> u64;
    let families: [(&str, &str, &str, Value); 3] = [
        (
            "rill_relay_up",
            "gauge",
            "1 while the relay's upstream or target is live.",
            |r| u64::from(r.state == "live"),
        ),
        (
            "rill_relay_restarts_total",
            "counter",
            "Times the relay reconnected.",
            |r| r.restarts,
        ),
        (
            "rill_relay_bytes_total",
            "counter",
            "Media payload bytes the relay carried.",
            |r| r.bytes,
        ),
    ];
    for (name, kind, help, value) in families {
        w.family(name, kind, help);
        for r in &m.relays {
            let l = labels(r);
            let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
            w.sample(name, &l, value(r));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::stats::StreamStats;

    fn stream(app: &str, name: &str, viewers: usize, bytes: u64) -> StreamStats {
        StreamStats {
            app: app.into(),
            name: name.into(),
            publisher: None,
            subscribers: Vec::new(),
            bitrate_in_kbps: 0,
            bitrate_out_kbps: 0,
            viewers,
            received_bytes: bytes,
            live: true,
        }
    }

    fn snapshot() -> MetricsSnapshot {
        MetricsSnapshot {
            live_streams: 2,
            sessions_rtmp: 3,
            sessions_http_flv: 1,
            sessions_ws_flv: 0,
            sessions_relay: 1,
            accepted: 10,
            refused: 4,
            received_bytes: 123_456,
            sent_bytes: 654_321,
            frames_dropped: 7,
            viewers_dropped: 1,
            streams: vec![
                stream("live", "cam", 2, 5000),
                stream("li\"ve", "a\\b\nc", 0, 0),
            ],
            relays: vec![crate::relay::RelayView {
                app: "live".into(),
                name: "cam".into(),
                path: "rtsp://cam/1".into(),
                url: "rtmp://127.0.0.1:1935/live/cam".into(),
                mode: "static",
                ts: 1,
                id: "ABCD1234".into(),
                state: "live",
                restarts: 2,
                last_error: String::new(),
                bytes: 99,
                started_at: 5,
            }],
            resident_memory_bytes: 4096,
            start_time_seconds: 1_700_000_000.5,
        }
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape_label_value(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label_value("x\ny"), "x\\ny");
        assert_eq!(escape_label_value("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn renders_every_family_with_help_and_type() {
        let text = render(&snapshot());
        let expected = [
            "rill_streams 2",
            "rill_sessions{protocol=\"rtmp\"} 3",
            "rill_sessions{protocol=\"http-flv\"} 1",
            "rill_sessions{protocol=\"ws-flv\"} 0",
            "rill_sessions{protocol=\"relay\"} 1",
            "rill_relays{mode=\"static\",state=\"live\"} 1",
            "rill_relays{mode=\"push\",state=\"backing_off\"} 0",
            "rill_relay_up{id=\"ABCD1234\",mode=\"static\",app=\"live\",stream=\"cam\"} 1",
            "rill_relay_restarts_total{id=\"ABCD1234\",mode=\"static\",app=\"live\",stream=\"cam\"} 2",
            "rill_relay_bytes_total{id=\"ABCD1234\",mode=\"static\",app=\"live\",stream=\"cam\"} 99",
            "rill_connections_accepted_total 10",
            "rill_connections_refused_total 4",
            "rill_received_bytes_total 123456",
            "rill_sent_bytes_total 654321",
            "rill_frames_dropped_total 7",
            "rill_viewers_dropped_total 1",
            "rill_stream_viewers{app=\"live\",stream=\"cam\"} 2",
            "rill_stream_viewers{app=\"li\\\"ve\",stream=\"a\\\\b\\nc\"} 0",
            "rill_stream_received_bytes_total{app=\"live\",stream=\"cam\"} 5000",
            "process_resident_memory_bytes 4096",
            "process_start_time_seconds 1700000000.5",
        ];
        for line in expected {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every family: HELP then TYPE right before its first sample, counters named *_total.
        let lines: Vec<&str> = text.lines().collect();
        let mut families = 0;
        for (i, l) in lines.iter().enumerate() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                families += 1;
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(lines[i - 1].starts_with(&format!("# HELP {name} ")));
                assert!(kind == "gauge" || kind == "counter");
                assert_eq!(kind == "counter", name.ends_with("_total"), "{name}");
            }
        }
        assert_eq!(families, 16);
        assert!(text.ends_with('\n'));
        // Label escaping keeps each sample on one line.
        assert_eq!(
            lines.iter().filter(|l| !l.starts_with('#')).count(),
            17 + 12 + 3
        );
    }

    #[test]
    fn no_streams_keeps_the_families() {
        let mut s = snapshot();
        s.streams.clear();
        let text = render(&s);
        assert!(text.contains("# TYPE rill_stream_viewers gauge\n"));
        assert!(!text.contains("rill_stream_viewers{"));
    }
}
