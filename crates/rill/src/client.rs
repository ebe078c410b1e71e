//! Rill's own RTMP client (async shell over `rill_rtmp::session::client`): plays and publishes.
//! Used by tests, relays and the benchmark.

use std::collections::VecDeque;

use bytes::BytesMut;
use rill_media::{Frame, FrameKind};
use rill_rtmp::session::client::{ClientEvent, ClientSession, ClientSessionConfig};
use rill_rtmp::session::MediaKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad RTMP URL: {0}")]
    BadUrl(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("refused: {0}")]
    Refused(String),
}

/// The parts of `rtmp://host[:port]/app/stream[?query]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    pub host: String,
    pub port: u16,
    pub app: String,
    /// Stream name with its query, as sent in publish/play.
    pub stream: String,
}

impl RtmpUrl {
    pub fn parse(url: &str) -> Result<RtmpUrl, ClientError> {
        let bad = || ClientError::BadUrl(url.to_owned());
        let rest = url.strip_prefix("rtmp://").ok_or_else(bad)?;
        let (authority, path) = rest.split_once('/').ok_or_else(bad)?;
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
            None => (authority, 1935),
        };
        let (app, stream) = path.split_once('/').ok_or_else(bad)?;
        if host.is_empty() || app.is_empty() || stream.is_empty() {
            return Err(bad());
        }
        Ok(RtmpUrl {
            host: host.to_owned(),
            port,
            app: app.to_owned(),
            stream: stream.to_owned(),
        })
    }

    fn tc_url(&self) -> String {
        format!("rtmp://{}:{}/{}", self.host, self.port, self.app)
    }
}

/// A connected client session over TCP.
struct Conn {
    socket: TcpStream,
    session: ClientSession,
    buf: BytesMut,
    events: VecDeque<ClientEvent>,
}

impl Conn {
    async fn open(url: &RtmpUrl) -> Result<Conn, ClientError> {
        let socket = TcpStream::connect((url.host.as_str(), url.port)).await?;
        let _ = socket.set_nodelay(true);
        let mut session =
            ClientSession::new(ClientSessionConfig::new(url.app.clone(), url.tc_url()));
        session.start();
        let mut conn = Conn {
            socket,
            session,
            buf: BytesMut::with_capacity(64 * 1024),
            events: VecDeque::new(),
        };
        conn.flush().await?;
        Ok(conn)
    }

    async fn flush(&mut self) -> Result<(), ClientError> {
        while let Some(out) = self.session.take_output() {
            self.socket.write_all(&out).await?;
        }
        Ok(())
    }

    /// The next event, reading as needed; `None` when the server closed.
    async fn event(&mut self) -> Result<Option<ClientEvent>, ClientError> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(Some(e));
            }
            if self.buf.capacity() - self.buf.len() < 16 * 1024 {
                self.buf.reserve(64 * 1024);
            }
            if self.socket.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
            let fed = self.session.feed(&mut self.buf);
            while let Some(e) = self.session.poll_event() {
                self.events.push_back(e);
            }
            self.flush().await?;
            fed.map_err(|e| ClientError::Protocol(e.to_string()))?;
        }
    }

    /// Reads until the status `ok` arrives; an error-level status is a refusal.
    async fn wait_status(&mut self, ok: &str) -> Result<(), ClientError> {
        loop {
            match self.event().await? {
                None => return Err(ClientError::Refused("connection closed".into())),
                Some(ClientEvent::Status {
                    code,
                    level,
                    description,
                    ..
                }) => {
                    if code == ok {
                        return Ok(());
                    }
                    if level == "error" {
                        return Err(ClientError::Refused(format!("{code}: {description}")));
                    }
                }
                Some(_) => {}
            }
        }
    }
}

/// An RTMP connection that plays one stream.
pub struct RtmpPlayer {
    conn: Conn,
}

impl RtmpPlayer {
    /// Connects to `rtmp://host:port/app/stream` and sends play; returns once Play.Start arrives.
    pub async fn connect(url: &str) -> Result<RtmpPlayer, ClientError> {
        let url = RtmpUrl::parse(url)?;
        let mut conn = Conn::open(&url).await?;
        conn.session.play(&url.stream);
        conn.flush().await?;
        conn.wait_status("NetStream.Play.Start").await?;
        Ok(RtmpPlayer { conn })
    }

    /// The next media or metadata frame; `Ok(None)` when the server closed the connection.
    pub async fn next_frame(&mut self) -> Result<Option<Frame>, ClientError> {
        loop {
            let (kind, timestamp, payload) = match self.conn.event().await? {
                None => return Ok(None),
                Some(ClientEvent::Media {
                    kind: MediaKind::Audio,
                    timestamp,
                    payload,
                }) => (FrameKind::Audio, timestamp, payload),
                Some(ClientEvent::Media {
                    kind: MediaKind::Video,
                    timestamp,
                    payload,
                }) => (FrameKind::Video, timestamp, payload),
                Some(ClientEvent::Metadata { timestamp, payload }) => {
                    (FrameKind::Metadata, timestamp, payload)
                }
                Some(_) => continue,
            };
            if let Ok(frame) = Frame::from_flv_body(kind, timestamp, payload) {
                return Ok(Some(frame));
            }
        }
    }

    /// The next status code (e.g. `NetStream.Play.UnpublishNotify`), skipping media.
    pub async fn next_status(&mut self) -> Result<Option<String>, ClientError> {
        loop {
            match self.conn.event().await? {
                None => return Ok(None),
                Some(ClientEvent::Status { code, .. }) => return Ok(Some(code)),
                Some(_) => {}
            }
        }
    }
}

/// An RTMP connection that publishes one stream.
pub struct RtmpPublisher {
    conn: Conn,
}

impl RtmpPublisher {
    /// Connects to `rtmp://host:port/app/stream` and publishes; returns once Publish.Start arrives.
    pub async fn connect(url: &str) -> Result<RtmpPublisher, ClientError> {
        let url = RtmpUrl::parse(url)?;
        let mut conn = Conn::open(&url).await?;
        conn.session.publish(&url.stream);
        conn.flush().await?;
        conn.wait_status("NetStream.Publish.Start").await?;
        Ok(RtmpPublisher { conn })
    }

    /// Sends one frame (metadata frames are sent as `@setDataFrame onMetaData`).
    pub async fn send_frame(&mut self, frame: &Frame) -> Result<(), ClientError> {
        match frame.kind {
            FrameKind::Audio => {
                self.conn
                    .session
                    .send_media(MediaKind::Audio, frame.timestamp, &frame.payload)
            }
            FrameKind::Video => {
                self.conn
                    .session
                    .send_media(MediaKind::Video, frame.timestamp, &frame.payload)
            }
            FrameKind::Metadata => self.conn.session.send_metadata(&frame.payload),
        }
        self.conn.flush().await
    }

    /// Sends FCUnpublish/deleteStream and closes.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.conn.session.close_stream();
        self.conn.flush().await?;
        self.conn.socket.shutdown().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = RtmpUrl::parse("rtmp://127.0.0.1:1936/live/cam1?sign=1-x").unwrap();
        assert_eq!(
            u,
            RtmpUrl {
                host: "127.0.0.1".into(),
                port: 1936,
                app: "live".into(),
                stream: "cam1?sign=1-x".into()
            }
        );
        assert_eq!(RtmpUrl::parse("rtmp://h/live/s").unwrap().port, 1935);
        for bad in [
            "http://h/a/b",
            "rtmp://h/a",
            "rtmp://h:x/a/b",
            "rtmp:///a/b",
            "rtmp://h/a/",
        ] {
            assert!(RtmpUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
