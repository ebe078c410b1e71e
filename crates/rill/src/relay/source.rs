//! The upstreams a pull relay reads: another RTMP server, an RTSP camera, a file. Each gives
//! Rill frames (FLV tag bodies) one at a time; the pull loop does not care which it has.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rill_media::Frame;

use crate::client::{ClientOptions, PlayerEvent, RtmpPlayer, RtmpUrl};
use crate::config::{RtspTransport, SourceKind};
use crate::server::Context;

/// Where a pull relay reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Rtmp(String),
    Rtsp {
        url: String,
        transport: RtspTransport,
    },
    /// A file (FLV natively, anything else through ffmpeg).
    File(String),
}

impl Source {
    /// Classifies `edge`; `None` for a scheme Rill cannot pull.
    pub fn parse(edge: &str, transport: RtspTransport) -> Option<Source> {
        Some(match SourceKind::of(edge)? {
            SourceKind::Rtmp => Source::Rtmp(edge.to_owned()),
            SourceKind::Rtsp => Source::Rtsp {
                url: edge.to_owned(),
                transport,
            },
            SourceKind::Flv | SourceKind::OtherFile => Source::File(edge.to_owned()),
        })
    }

    pub fn url(&self) -> &str {
        match self {
            Source::Rtmp(u) | Source::File(u) => u,
            Source::Rtsp { url, .. } => url,
        }
    }

    pub fn kind(&self) -> SourceKind {
        SourceKind::of(self.url()).unwrap_or(SourceKind::OtherFile)
    }

    /// The stream this source would read, if it is this server's own (a relay loop).
    pub async fn loops_back(&self, ctx: &Context, app: &str, name: &str) -> bool {
        let Source::Rtmp(url) = self else {
            return false;
        };
        let Ok(u) = RtmpUrl::parse(url) else {
            return false;
        };
        u.app == app && u.stream_name() == name && ctx.is_own_rtmp(&u.host, u.port).await
    }
}

/// An open upstream.
pub enum Upstream {
    Rtmp(Box<RtmpPlayer>),
    Rtsp(Box<super::rtsp::RtspSource>),
    File(Box<super::file::FileSource>),
}

/// Longest an upstream may take to connect and start.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

impl Upstream {
    pub async fn open(ctx: &Context, source: &Source) -> Result<Upstream, String> {
        let open = async {
            match source {
                Source::Rtmp(url) => {
                    let options = ClientOptions {
                        connect_timeout: OPEN_TIMEOUT,
                        tls_verify: ctx.config.relay.tls_verify,
                    };
                    RtmpPlayer::connect_with(url, &options)
                        .await
                        .map(|p| Upstream::Rtmp(Box::new(p)))
                        .map_err(|e| e.to_string())
                }
                Source::Rtsp { url, transport } => {
                    let transport = match transport {
                        RtspTransport::Tcp => super::rtsp::Transport::Tcp,
                        RtspTransport::Udp => super::rtsp::Transport::Udp,
                    };
                    super::rtsp::RtspSource::connect(url, transport)
                        .await
                        .map(|s| Upstream::Rtsp(Box::new(s)))
                        .map_err(|e| e.to_string())
                }
                Source::File(path) => {
                    let ffmpeg: Option<PathBuf> = ctx.config.relay.ffmpeg_path();
                    super::file::FileSource::open(path, ffmpeg.as_deref())
                        .await
                        .map(|f| Upstream::File(Box::new(f)))
                        .map_err(|e| e.to_string())
                }
            }
        };
        tokio::time::timeout(OPEN_TIMEOUT + Duration::from_secs(1), open)
            .await
            .unwrap_or_else(|_| Err(format!("not open within {} s", OPEN_TIMEOUT.as_secs())))
    }

    /// The next frame; `Ok(None)` when the upstream ended.
    pub async fn next_frame(&mut self) -> Result<Option<Frame>, String> {
        match self {
            Upstream::Rtmp(p) => loop {
                match p.next_event().await.map_err(|e| e.to_string())? {
                    None => return Ok(None),
                    Some(PlayerEvent::Frame(f)) => return Ok(Some(f)),
                    // The upstream's publisher left: so does this relay's publish, at once, so
                    // that viewers here hear of it too (and HLS ends its playlist).
                    Some(PlayerEvent::Status(code))
                        if code == "NetStream.Play.UnpublishNotify"
                            || code == "NetStream.Play.Stop" =>
                    {
                        return Ok(None)
                    }
                    Some(PlayerEvent::Status(_)) => {}
                }
            },
            Upstream::Rtsp(s) => s.next_frame().await.map_err(|e| e.to_string()),
            Upstream::File(f) => f.next_frame().await.map_err(|e| e.to_string()),
        }
    }

    /// The address the session shows as its peer.
    pub fn peer(&self) -> SocketAddr {
        match self {
            Upstream::Rtmp(p) => p.peer_addr(),
            _ => SocketAddr::from(([0, 0, 0, 0], 0)),
        }
    }
}
