//! Typed configuration. Key names follow Node-Media-Server (`[rtmp] port, chunk_size, gop_cache,
//! ping, ping_timeout`, `[http] port, mediaroot, allow_origin`), with Rill's own limits beside them.
//! Every key has a default, so no file at all is a working configuration.

use std::path::Path;

use serde::{Deserialize, Serialize};

mod relay;
mod trans;

pub use relay::{RelayConfig, RelayMode, RelayTask, RtspTransport, SourceKind};
pub use trans::{RecordFormat, SegmentFormat, SegmentSettings, Storage, TransConfig, TransTask};

/// What `--print-config` shows in place of a secret.
pub const MASK: &str = "***";

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub rtmp: RtmpConfig,
    pub http: HttpConfig,
    pub auth: AuthConfig,
    pub hooks: HooksConfig,
    pub https: HttpsConfig,
    pub rtmps: RtmpsConfig,
    pub trans: TransConfig,
    pub delivery: DeliveryConfig,
    pub relay: RelayConfig,
}

/// `[rtmp]`: the RTMP listener and sessions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RtmpConfig {
    /// Address to bind.
    pub host: String,
    pub port: u16,
    /// Outgoing chunk size (NMS default 60000).
    pub chunk_size: u32,
    /// Keep the last GOP so that viewers start at once.
    pub gop_cache: bool,
    /// Seconds between pings to each client (0 disables).
    pub ping: u64,
    /// Seconds of silence after which a client is dropped (0 disables).
    pub ping_timeout: u64,
    /// Seconds without media after which a publisher may be replaced by a newcomer.
    pub publisher_idle_timeout: u64,
    /// Seconds a client has to complete the handshake and connect.
    pub handshake_timeout: u64,
    /// Largest RTMP message accepted, in bytes.
    pub max_message_size: u32,
    /// Largest chunk size a peer may set.
    pub max_chunk_size: u32,
    /// Most simultaneous RTMP connections.
    pub max_connections: usize,
    /// Most simultaneous RTMP (and RTMPS) connections from one client address, so one host cannot
    /// take every slot. A load tool on one host needs more.
    pub max_connections_per_ip: usize,
    /// Upper bound of the GOP cache in bytes.
    pub gop_cache_max_bytes: usize,
    /// Upper bound of the GOP cache in frames.
    pub gop_cache_max_frames: usize,
    /// Frames a viewer may fall behind before it skips to the next keyframe.
    pub viewer_queue: usize,
}

impl Default for RtmpConfig {
    fn default() -> Self {
        RtmpConfig {
            host: "0.0.0.0".into(),
            port: 1935,
            chunk_size: 60000,
            gop_cache: true,
            ping: 30,
            ping_timeout: 60,
            publisher_idle_timeout: 5,
            handshake_timeout: 10,
            max_message_size: 16 * 1024 * 1024,
            max_chunk_size: 16 * 1024 * 1024,
            max_connections: 10_000,
            max_connections_per_ip: 1000,
            gop_cache_max_bytes: 64 * 1024 * 1024,
            gop_cache_max_frames: 8192,
            viewer_queue: 1024,
        }
    }
}

/// `[http]`: HTTP-FLV, WS-FLV (and later HLS, API).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub host: String,
    pub port: u16,
    /// Directory for files the server writes and serves (HLS, recordings).
    pub mediaroot: String,
    /// `Access-Control-Allow-Origin` on media responses (empty disables CORS headers).
    pub allow_origin: String,
    /// Most simultaneous HTTP connections.
    pub max_connections: usize,
    /// Most simultaneous HTTP (and HTTPS) connections from one client address. Players behind
    /// one NAT share an address; a load tool on one host needs more.
    pub max_connections_per_ip: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            host: "0.0.0.0".into(),
            port: 8000,
            mediaroot: "./media".into(),
            allow_origin: "*".into(),
            max_connections: 10_000,
            max_connections_per_ip: 1000,
        }
    }
}

/// How writes to viewers are batched (`[delivery]`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum WriteMode {
    /// Every frame leaves as it arrives.
    Frame,
    /// What is ready leaves in one write, waiting at most `coalesce_ms` so audio rides with video.
    #[default]
    Coalesced,
    /// One write per viewer every `merge_ms`.
    Merged,
}

/// `[delivery]`: the trade between CPU (number of writes) and latency.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    pub write: WriteMode,
    pub coalesce_ms: u64,
    pub merge_ms: u64,
    /// TCP_NODELAY once a viewer is playing. `true`: every write leaves at once. `false`: the
    /// kernel may merge a small write with the next while earlier bytes are unacknowledged (Nagle),
    /// which saves most of the per-packet cost on the way to the viewer. Unset: `true` for `frame`,
    /// `false` for `coalesced` and `merged`. Handshakes and replies always go out at once.
    pub nodelay: Option<bool>,
    /// Once a plain-TCP viewer has caught up, its media is written by the stream's fan-out (a
    /// few group tasks per stream) instead of by its own task: one wake-up per group and batch,
    /// not one per viewer.
    pub direct: bool,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            write: WriteMode::Coalesced,
            coalesce_ms: 40,
            merge_ms: 100,
            nodelay: None,
            direct: true,
        }
    }
}

impl DeliveryConfig {
    /// Whether a playing viewer's socket keeps TCP_NODELAY (see [`DeliveryConfig::nodelay`]).
    pub fn media_nodelay(&self) -> bool {
        self.nodelay.unwrap_or(self.write == WriteMode::Frame)
    }

    pub fn batching(&self) -> crate::hub::Batching {
        use std::time::Duration;
        match self.write {
            WriteMode::Frame => crate::hub::Batching::Frame,
            WriteMode::Coalesced => crate::hub::Batching::Coalesced {
                wait: Duration::from_millis(self.coalesce_ms),
            },
            WriteMode::Merged => crate::hub::Batching::Merged {
                window: Duration::from_millis(self.merge_ms),
            },
        }
    }
}

/// `[https]`: the HTTP routes (HTTP-FLV, WS-FLV as wss, API) over TLS. Enabled when `cert` and `key`
/// (PEM files) are set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpsConfig {
    pub host: String,
    pub port: u16,
    pub cert: String,
    pub key: String,
}

impl Default for HttpsConfig {
    fn default() -> Self {
        HttpsConfig {
            host: "0.0.0.0".into(),
            port: 8443,
            cert: String::new(),
            key: String::new(),
        }
    }
}

/// `[rtmps]`: RTMP over TLS. Enabled when `cert` and `key` are set, or when `[https]` has them
/// and `enabled = true` (the https files are then shared).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RtmpsConfig {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    pub cert: String,
    pub key: String,
}

impl Default for RtmpsConfig {
    fn default() -> Self {
        RtmpsConfig {
            enabled: false,
            host: "0.0.0.0".into(),
            port: 1936,
            cert: String::new(),
            key: String::new(),
        }
    }
}

impl Config {
    /// The (cert, key) files of HTTPS, if it is enabled.
    pub fn https_files(&self) -> Option<(&str, &str)> {
        let h = &self.https;
        (!h.cert.is_empty() && !h.key.is_empty()).then_some((h.cert.as_str(), h.key.as_str()))
    }

    /// The (cert, key) files of RTMPS, if it is enabled.
    pub fn rtmps_files(&self) -> Option<(&str, &str)> {
        let r = &self.rtmps;
        if !r.cert.is_empty() && !r.key.is_empty() {
            return Some((r.cert.as_str(), r.key.as_str()));
        }
        if r.enabled {
            return self.https_files();
        }
        None
    }
}

/// `[auth]`: URL signing for publish/play, and Basic auth for the API (Node-Media-Server keys).
///
/// Reading the API (`GET`/`HEAD`) is open unless `api` is set, as in Node-Media-Server. Changing
/// things through it (any other method under `/api`: kicks, relays, recordings, and whatever is
/// added later) is refused with 403 unless `api` is set (then Basic auth decides), or the client
/// is on a loopback address and `api_loopback` is set (the default). Behind a reverse proxy on the
/// same host every request looks local: there set `api_loopback = false` and use `api`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Protect `/api/*` and `/metrics` (and the admin page) with HTTP Basic auth.
    pub api: bool,
    pub api_user: String,
    pub api_pass: String,
    /// Without `api`: let clients on a loopback address (127.0.0.0/8, ::1) change things through
    /// the API. Everyone else is refused.
    pub api_loopback: bool,
    /// Require a valid `sign` on play (RTMP, HTTP-FLV, WS-FLV, playlists).
    pub play: bool,
    /// Require a valid `sign` on publish.
    pub publish: bool,
    /// Secret of `sign=EXPIRES-md5("/app/stream-EXPIRES-SECRET")`.
    pub secret: String,
    /// More accepted secrets, for key rotation (old and new valid at once).
    pub secrets: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            api: false,
            api_user: String::new(),
            api_pass: String::new(),
            api_loopback: true,
            play: false,
            publish: false,
            secret: String::new(),
            secrets: Vec::new(),
        }
    }
}

/// `[hooks]`: HTTP webhooks per event (URL lists; camelCase names accepted too).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HooksConfig {
    /// How long a `pre*` handler or webhook may take before the session is refused.
    pub timeout_ms: u64,
    /// Capacity of the post/done event queue; events beyond it are dropped (and counted).
    pub queue: usize,
    /// Key of the `X-Rill-Signature` HMAC-SHA256 header (empty: unsigned).
    pub secret: String,
    #[serde(alias = "preConnect")]
    pub pre_connect: Vec<String>,
    #[serde(alias = "postConnect")]
    pub post_connect: Vec<String>,
    #[serde(alias = "doneConnect")]
    pub done_connect: Vec<String>,
    #[serde(alias = "prePublish")]
    pub pre_publish: Vec<String>,
    #[serde(alias = "postPublish")]
    pub post_publish: Vec<String>,
    #[serde(alias = "donePublish")]
    pub done_publish: Vec<String>,
    #[serde(alias = "prePlay")]
    pub pre_play: Vec<String>,
    #[serde(alias = "postPlay")]
    pub post_play: Vec<String>,
    #[serde(alias = "donePlay")]
    pub done_play: Vec<String>,
    #[serde(alias = "doneRecord")]
    pub done_record: Vec<String>,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            timeout_ms: 3000,
            queue: 1024,
            secret: String::new(),
            pre_connect: Vec::new(),
            post_connect: Vec::new(),
            done_connect: Vec::new(),
            pre_publish: Vec::new(),
            post_publish: Vec::new(),
            done_publish: Vec::new(),
            pre_play: Vec::new(),
            post_play: Vec::new(),
            done_play: Vec::new(),
            done_record: Vec::new(),
        }
    }
}

impl HooksConfig {
    /// The webhook URLs of one event.
    pub fn urls(&self, kind: crate::control::hooks::EventKind) -> &[String] {
        use crate::control::hooks::EventKind as K;
        match kind {
            K::PreConnect => &self.pre_connect,
            K::PostConnect => &self.post_connect,
            K::DoneConnect => &self.done_connect,
            K::PrePublish => &self.pre_publish,
            K::PostPublish => &self.post_publish,
            K::DonePublish => &self.done_publish,
            K::PrePlay => &self.pre_play,
            K::PostPlay => &self.post_play,
            K::DonePlay => &self.done_play,
            K::DoneRecord => &self.done_record,
        }
    }

    fn urls_mut(&mut self, kind: crate::control::hooks::EventKind) -> &mut Vec<String> {
        use crate::control::hooks::EventKind as K;
        match kind {
            K::PreConnect => &mut self.pre_connect,
            K::PostConnect => &mut self.post_connect,
            K::DoneConnect => &mut self.done_connect,
            K::PrePublish => &mut self.pre_publish,
            K::PostPublish => &mut self.post_publish,
            K::DonePublish => &mut self.done_publish,
            K::PrePlay => &mut self.pre_play,
            K::PostPlay => &mut self.post_play,
            K::DonePlay => &mut self.done_play,
            K::DoneRecord => &mut self.done_record,
        }
    }
}

/// A configuration that cannot be used, with the key it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: `{key}` {problem}")]
    Invalid {
        path: String,
        key: &'static str,
        problem: String,
    },
}

impl Config {
    /// Defaults bound to 127.0.0.1 on ephemeral ports: for tests and embedding.
    pub fn loopback_ephemeral() -> Config {
        let mut c = Config::default();
        c.rtmp.host = "127.0.0.1".into();
        c.rtmp.port = 0;
        c.http.host = "127.0.0.1".into();
        c.http.port = 0;
        c.https.host = "127.0.0.1".into();
        c.https.port = 0;
        c.rtmps.host = "127.0.0.1".into();
        c.rtmps.port = 0;
        c
    }

    /// Reads and validates a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Config::from_toml(&text, &shown)
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    /// The default configuration as TOML (what `rill --print-config` shows without `--config`).
    pub fn default_toml() -> String {
        toml::to_string_pretty(&Config::default()).unwrap_or_default()
    }

    /// This configuration as TOML with its secrets hidden (what `rill --print-config` shows): safe
    /// to paste into a bug report, not to run with.
    pub fn redacted_toml(&self) -> String {
        toml::to_string_pretty(&self.redacted()).unwrap_or_default()
    }

    /// A copy with every secret that is set replaced by `***`: the signing secrets, the API
    /// password, the webhook key, and passwords and queries in relay and webhook URLs (an RTSP
    /// camera's `user:pass@`, a `?token=`). Empty values stay empty, so the output still shows
    /// what is not set.
    pub fn redacted(&self) -> Config {
        fn hide(s: &mut String) {
            if !s.is_empty() {
                *s = MASK.to_owned();
            }
        }
        let mut c = self.clone();
        hide(&mut c.auth.secret);
        c.auth.secrets.iter_mut().for_each(hide);
        hide(&mut c.auth.api_pass);
        hide(&mut c.hooks.secret);
        for kind in crate::control::hooks::EventKind::ALL {
            for url in c.hooks.urls_mut(kind) {
                *url = crate::relay::masked(url);
            }
        }
        for task in &mut c.relay.tasks {
            task.edge = crate::relay::masked(&task.edge);
        }
        c
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |key: &'static str, problem: String| {
            Err(ConfigError::Invalid {
                path: origin.to_owned(),
                key,
                problem,
            })
        };
        let r = &self.rtmp;
        if !(128..=16_777_215).contains(&r.chunk_size) {
            return bad(
                "rtmp.chunk_size",
                format!("must be 128..=16777215, not {}", r.chunk_size),
            );
        }
        if r.max_message_size < 1024 {
            return bad("rtmp.max_message_size", "must be at least 1024".into());
        }
        if r.max_chunk_size < 128 {
            return bad("rtmp.max_chunk_size", "must be at least 128".into());
        }
        if r.viewer_queue < 16 {
            return bad("rtmp.viewer_queue", "must be at least 16".into());
        }
        if r.ping_timeout != 0 && r.ping != 0 && r.ping_timeout <= r.ping {
            return bad("rtmp.ping_timeout", "must be longer than rtmp.ping".into());
        }
        if r.handshake_timeout == 0 {
            return bad("rtmp.handshake_timeout", "must be at least 1 second".into());
        }
        if r.max_connections == 0 {
            return bad("rtmp.max_connections", "must be at least 1".into());
        }
        if self.http.max_connections == 0 {
            return bad("http.max_connections", "must be at least 1".into());
        }
        if r.max_connections_per_ip == 0 {
            return bad("rtmp.max_connections_per_ip", "must be at least 1".into());
        }
        if self.http.max_connections_per_ip == 0 {
            return bad("http.max_connections_per_ip", "must be at least 1".into());
        }
        let a = &self.auth;
        if a.api && (a.api_user.is_empty() || a.api_pass.is_empty()) {
            return bad(
                "auth.api_user",
                "and auth.api_pass must be set when auth.api is true".into(),
            );
        }
        if (a.play || a.publish) && a.secret.is_empty() && a.secrets.is_empty() {
            return bad(
                "auth.secret",
                "must be set when auth.play or auth.publish is true".into(),
            );
        }
        if self.hooks.timeout_ms == 0 {
            return bad("hooks.timeout_ms", "must be at least 1".into());
        }
        if self.hooks.queue == 0 {
            return bad("hooks.queue", "must be at least 1".into());
        }
        for kind in crate::control::hooks::EventKind::ALL {
            if let Some(url) = self
                .hooks
                .urls(kind)
                .iter()
                .find(|u| !u.starts_with("http://"))
            {
                return bad(
                    "hooks",
                    format!("{} URL {url:?} must start with http://", kind.name()),
                );
            }
        }
        if self.https.cert.is_empty() != self.https.key.is_empty() {
            return bad("https.cert", "and https.key must be set together".into());
        }
        if self.rtmps.cert.is_empty() != self.rtmps.key.is_empty() {
            return bad("rtmps.cert", "and rtmps.key must be set together".into());
        }
        if self.rtmps.enabled && self.rtmps_files().is_none() {
            return bad(
                "rtmps.enabled",
                "needs rtmps.cert/key or https.cert/key".into(),
            );
        }
        if self.delivery.coalesce_ms > 1000 || self.delivery.merge_ms > 1000 {
            return bad(
                "delivery.merge_ms",
                "delivery waits are at most 1000 ms".into(),
            );
        }
        if let Some((key, problem)) = self.relay.problem() {
            return bad(key, problem);
        }
        for task in &self.trans.tasks {
            if let Some((key, problem)) = task.problem() {
                return bad(key, format!("(app {:?}) {problem}", task.app));
            }
        }
        let hosts = [
            ("rtmp.host", &r.host),
            ("http.host", &self.http.host),
            ("https.host", &self.https.host),
            ("rtmps.host", &self.rtmps.host),
        ];
        for (key, host) in hosts {
            if host.parse::<std::net::IpAddr>().is_err() {
                return bad(key, format!("must be an IP address, not {host:?}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(Config::from_toml("", "t").unwrap(), Config::default());
        assert_eq!(Config::default().rtmp.port, 1935);
        assert_eq!(Config::default().http.port, 8000);
    }

    #[test]
    fn nms_keys_are_read() {
        let c = Config::from_toml(
            "[rtmp]\nport = 1936\nchunk_size = 4096\ngop_cache = false\nping = 10\nping_timeout = 20\n\
             [http]\nport = 8080\nmediaroot = \"/tmp/m\"\nallow_origin = \"https://a.example\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(
            (c.rtmp.port, c.rtmp.chunk_size, c.rtmp.gop_cache),
            (1936, 4096, false)
        );
        assert_eq!((c.rtmp.ping, c.rtmp.ping_timeout), (10, 20));
        assert_eq!((c.http.port, c.http.mediaroot.as_str()), (8080, "/tmp/m"));
        assert_eq!(c.http.allow_origin, "https://a.example");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let e = Config::from_toml("[rtmp]\nchunksize = 4096\n", "rill.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("chunksize") && e.contains("rill.toml"), "{e}");
        let e = Config::from_toml("[rtmp]\nport = \"x\"\n", "rill.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("port"), "{e}");
        let e = Config::from_toml("[rtmp]\nchunk_size = 1\n", "rill.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rtmp.chunk_size"), "{e}");
        let e = Config::from_toml("[http]\nhost = \"nowhere\"\n", "rill.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("http.host"), "{e}");
        let e = Config::from_toml("[rtmp]\nping = 30\nping_timeout = 10\n", "r")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rtmp.ping_timeout"), "{e}");
    }

    #[test]
    fn redacted_hides_every_secret_that_is_set() {
        let c = Config::from_toml(
            r#"
[auth]
api = true
api_user = "admin"
api_pass = "pass-1"
publish = true
secret = "sign-2"
secrets = ["old-3", ""]
[hooks]
secret = "hmac-4"
pre_publish = ["http://u:hook-5@127.0.0.1:9000/p?token=tok-6"]
[[relay.tasks]]
app = "cam"
mode = "static"
edge = "rtsp://admin:cam-7@192.0.2.10:554/ch1"
name = "door"
"#,
            "t",
        )
        .unwrap();
        let text = c.redacted_toml();
        for secret in [
            "pass-1", "sign-2", "old-3", "hmac-4", "hook-5", "tok-6", "cam-7",
        ] {
            assert!(!text.contains(secret), "{secret} shown:\n{text}");
        }
        let r = c.redacted();
        assert_eq!(r.auth.api_pass, MASK);
        assert_eq!(r.auth.secret, MASK);
        assert_eq!(r.auth.secrets, [MASK, ""], "an empty entry stays empty");
        assert_eq!(r.hooks.secret, MASK);
        assert_eq!(r.auth.api_user, "admin", "not a secret");
        assert_eq!(r.relay.tasks[0].edge, "rtsp://admin:***@192.0.2.10:554/ch1");
        assert!(r.hooks.pre_publish[0].starts_with("http://u:***@127.0.0.1:9000/p"));
        // Nothing set, nothing masked: the defaults print as they are.
        assert_eq!(Config::default().redacted(), Config::default());
    }

    #[test]
    fn api_loopback_is_on_by_default() {
        let c = Config::default();
        assert!(!c.auth.api && c.auth.api_loopback);
        let c = Config::from_toml("[auth]\napi_loopback = false\n", "t").unwrap();
        assert!(!c.auth.api_loopback);
    }

    #[test]
    fn default_toml_round_trips() {
        assert_eq!(
            Config::from_toml(&Config::default_toml(), "t").unwrap(),
            Config::default()
        );
    }
}
