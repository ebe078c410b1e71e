//! `[relay]` and `[[relay.tasks]]`: Node-Media-Server's relay configuration (`app`, `mode`,
//! `edge`, `name`, `rtsp_transport`, `appendName`), with Rill's own timings beside it.

use serde::{Deserialize, Serialize};

/// `[relay]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// ffmpeg, for file sources that are not FLV (MP4, MKV, TS…). Empty: looked up on PATH when
    /// such a source is configured.
    pub ffmpeg: String,
    /// Seconds a pulled stream keeps running after its last viewer left.
    pub idle_timeout: u64,
    /// Seconds a viewer of a stream being pulled is held for its first picture before it is told
    /// the stream does not exist.
    pub play_wait: u64,
    /// Check the certificates of `rtmps://` upstreams against the web's root certificates.
    pub tls_verify: bool,
    pub tasks: Vec<RelayTask>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            ffmpeg: String::new(),
            idle_timeout: 10,
            play_wait: 10,
            tls_verify: true,
            tasks: Vec::new(),
        }
    }
}

/// What a relay task does.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default, Hash)]
#[serde(rename_all = "lowercase")]
pub enum RelayMode {
    /// Pulled from `edge` at start-up and kept alive, as `app/name`.
    #[default]
    Static,
    /// Pulled from `edge` when somebody plays a stream of `app` that is not here.
    Pull,
    /// Every stream published in `app` is pushed to `edge`.
    Push,
}

impl RelayMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RelayMode::Static => "static",
            RelayMode::Pull => "pull",
            RelayMode::Push => "push",
        }
    }
}

/// How RTSP media travels.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum RtspTransport {
    /// Interleaved in the RTSP connection: passes firewalls and NAT, never loses packets.
    #[default]
    Tcp,
    Udp,
}

/// One `[[relay.tasks]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RelayTask {
    pub app: String,
    pub mode: RelayMode,
    /// static: the source (`rtmp://`, `rtmps://`, `rtsp://` URL or a file); pull: the server to
    /// pull from (`rtmp://host[:port][/app]`); push: the server to push to.
    pub edge: String,
    /// static: the local stream name.
    pub name: String,
    pub rtsp_transport: RtspTransport,
    /// push: append the stream name to `edge` (NMS's default).
    #[serde(rename = "appendName", alias = "append_name")]
    pub append_name: bool,
}

impl Default for RelayTask {
    fn default() -> Self {
        RelayTask {
            app: String::new(),
            mode: RelayMode::Static,
            edge: String::new(),
            name: String::new(),
            rtsp_transport: RtspTransport::Tcp,
            append_name: true,
        }
    }
}

/// What kind of source an upstream address is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Rtmp,
    Rtsp,
    /// A file read natively.
    Flv,
    /// A file ffmpeg reads for us.
    OtherFile,
}

impl SourceKind {
    /// Classifies `edge`; `None` for a URL scheme Rill cannot pull.
    pub fn of(edge: &str) -> Option<SourceKind> {
        let lower = edge.to_ascii_lowercase();
        if lower.starts_with("rtmp://") || lower.starts_with("rtmps://") {
            Some(SourceKind::Rtmp)
        } else if lower.starts_with("rtsp://") {
            Some(SourceKind::Rtsp)
        } else if lower.contains("://") && !lower.starts_with("file://") {
            None
        } else if lower.ends_with(".flv") {
            Some(SourceKind::Flv)
        } else {
            Some(SourceKind::OtherFile)
        }
    }
}

impl RelayConfig {
    /// The ffmpeg to use: the configured one, else the one on PATH.
    pub fn ffmpeg_path(&self) -> Option<std::path::PathBuf> {
        if !self.ffmpeg.is_empty() {
            return Some(self.ffmpeg.clone().into());
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join("ffmpeg"))
            .find(|p| p.is_file())
    }

    /// The problem with the section, as (key, problem).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if self.play_wait == 0 {
            return Some(("relay.play_wait", "must be at least 1 second".into()));
        }
        for (i, t) in self.tasks.iter().enumerate() {
            let at = format!("relay.tasks[{i}]");
            if t.app.is_empty() || t.app.contains('/') {
                return Some(("relay.tasks.app", format!("{at}: must be an app name")));
            }
            if t.edge.is_empty() {
                return Some(("relay.tasks.edge", format!("{at}: must be set")));
            }
            let Some(kind) = SourceKind::of(&t.edge) else {
                return Some((
                    "relay.tasks.edge",
                    format!(
                        "{at}: {:?} is not an rtmp://, rtmps://, rtsp:// URL or a file",
                        t.edge
                    ),
                ));
            };
            match t.mode {
                RelayMode::Static => {
                    if t.name.is_empty() || t.name.contains('/') {
                        return Some((
                            "relay.tasks.name",
                            format!("{at}: a static relay needs the local stream name"),
                        ));
                    }
                    if kind == SourceKind::OtherFile && self.ffmpeg_path().is_none() {
                        return Some((
                            "relay.ffmpeg",
                            format!(
                                "{at}: the file {:?} is not FLV and needs ffmpeg: set relay.ffmpeg or put ffmpeg on PATH",
                                t.edge
                            ),
                        ));
                    }
                }
                RelayMode::Pull | RelayMode::Push if kind != SourceKind::Rtmp => {
                    return Some((
                        "relay.tasks.edge",
                        format!(
                            "{at}: a {} relay needs an rtmp:// or rtmps:// server",
                            t.mode.as_str()
                        ),
                    ));
                }
                _ => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<crate::Config, crate::config::ConfigError> {
        crate::Config::from_toml(text, "t.toml")
    }

    #[test]
    fn nms_shaped_tasks_are_read() {
        let c = parse(
            r#"
            [relay]
            ffmpeg = "/usr/bin/ffmpeg"
            [[relay.tasks]]
            app = "cctv"
            mode = "static"
            edge = "rtsp://admin:pw@192.0.2.1:554/ch1"
            name = "door"
            rtsp_transport = "udp"
            [[relay.tasks]]
            app = "live"
            mode = "push"
            edge = "rtmp://192.0.2.2/hls"
            appendName = false
            [[relay.tasks]]
            app = "edge"
            mode = "pull"
            edge = "rtmp://192.0.2.3:1935"
            "#,
        )
        .unwrap();
        let t = &c.relay.tasks;
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].rtsp_transport, RtspTransport::Udp);
        assert_eq!(t[0].mode, RelayMode::Static);
        assert!(!t[1].append_name);
        assert_eq!(t[2].mode, RelayMode::Pull);
        assert!(t[2].append_name, "appendName defaults to true");
        assert_eq!(c.relay.idle_timeout, 10);
        assert_eq!(c.relay.play_wait, 10);
    }

    #[test]
    fn bad_tasks_name_the_key() {
        let cases = [
            (
                "app = \"a\"\nmode = \"static\"\nedge = \"rtmp://h/a/b\"",
                "relay.tasks.name",
            ),
            ("app = \"a\"\nmode = \"pull\"", "relay.tasks.edge"),
            (
                "app = \"a\"\nmode = \"push\"\nedge = \"rtsp://h/x\"",
                "relay.tasks.edge",
            ),
            (
                "app = \"a\"\nmode = \"static\"\nname = \"n\"\nedge = \"http://h/x\"",
                "relay.tasks.edge",
            ),
            ("app = \"\"\nedge = \"rtmp://h\"", "relay.tasks.app"),
        ];
        for (task, key) in cases {
            let e = parse(&format!("[[relay.tasks]]\n{task}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{task}: {e}");
        }
        let e = parse("[[relay.tasks]]\napp = \"a\"\nedge = \"rtsp://h/x\"\nname = \"n\"\nrtsp_transport = \"udp-multicast\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rtsp_transport"), "{e}");
        let e = parse("[[relay.tasks]]\napp = \"a\"\nmode = \"sideways\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mode"), "{e}");
    }

    #[test]
    fn a_non_flv_file_needs_ffmpeg() {
        let e = parse(
            "[relay]\nffmpeg = \"\"\n[[relay.tasks]]\napp = \"a\"\nname = \"n\"\nedge = \"/x/movie.mp4\"\n",
        );
        // Found on PATH, or refused naming the key.
        if let Err(e) = e {
            assert!(e.to_string().contains("relay.ffmpeg"), "{e}");
        }
        assert_eq!(SourceKind::of("/x/a.FLV"), Some(SourceKind::Flv));
        assert_eq!(
            SourceKind::of("file:///x/a.mp4"),
            Some(SourceKind::OtherFile)
        );
        assert_eq!(SourceKind::of("rtmps://h/a/b"), Some(SourceKind::Rtmp));
        assert_eq!(SourceKind::of("srt://h"), None);
    }
}
