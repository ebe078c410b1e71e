//! Typed configuration with Node-Media-Server compatible key names.

use serde::{Deserialize, Serialize};

/// The whole configuration. Every field has a default, so an empty file (or none) works.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub rtmp: RtmpConfig,
    pub http: HttpConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtmpConfig {
    /// Address to bind (default all interfaces).
    pub host: String,
    pub port: u16,
}

impl Default for RtmpConfig {
    fn default() -> Self {
        RtmpConfig { host: "0.0.0.0".into(), port: 1935 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub host: String,
    pub port: u16,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { host: "0.0.0.0".into(), port: 8000 }
    }
}

impl Config {
    /// Defaults bound to 127.0.0.1 on ephemeral ports: for tests and embedding.
    pub fn loopback_ephemeral() -> Config {
        let mut c = Config::default();
        c.rtmp.host = "127.0.0.1".into();
        c.rtmp.port = 0;
        c.http.host = "127.0.0.1".into();
        c.http.port = 0;
        c
    }
}
