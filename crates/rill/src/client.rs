//! Rill's own RTMP client (async shell over `rill_rtmp::session::client`): plays and publishes,
//! over TCP (`rtmp://`) or TLS (`rtmps://`). Used by the relays, tests and the benchmark.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rill_media::{Frame, FrameKind};
use rill_rtmp::session::client::{ClientEvent, ClientSession, ClientSessionConfig};
use rill_rtmp::session::MediaKind;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// A connection's byte stream: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How a client connects.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Longest the TCP connect, the TLS handshake and the RTMP handshake may take together.
    pub connect_timeout: Duration,
    /// For `rtmps://`: check the server's certificate against the web's root certificates.
    /// Off only for servers with a self-signed certificate the operator trusts.
    pub tls_verify: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            tls_verify: true,
        }
    }
}

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

/// The parts of `rtmp[s]://host[:port]/app/stream[?query]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    /// `rtmps://`.
    pub tls: bool,
    /// Without the brackets of an IPv6 literal.
    pub host: String,
    pub port: u16,
    pub app: String,
    /// Stream name with its query, as sent in publish/play.
    pub stream: String,
}

impl RtmpUrl {
    pub fn parse(url: &str) -> Result<RtmpUrl, ClientError> {
        let bad = || ClientError::BadUrl(redact(url));
        let (tls, rest) = match url.strip_prefix("rtmp://") {
            Some(rest) => (false, rest),
            None => (true, url.strip_prefix("rtmps://").ok_or_else(bad)?),
        };
        let (authority, path) = rest.split_once('/').ok_or_else(bad)?;
        let default_port = if tls { 443 } else { 1935 };
        let (host, port) = split_host_port(authority, default_port).ok_or_else(bad)?;
        let (app, stream) = path.split_once('/').ok_or_else(bad)?;
        if host.is_empty() || app.is_empty() || stream.is_empty() {
            return Err(bad());
        }
        Ok(RtmpUrl {
            tls,
            host: host.to_owned(),
            port,
            app: app.to_owned(),
            stream: stream.to_owned(),
        })
    }

    fn tc_url(&self) -> String {
        let scheme = if self.tls { "rtmps" } else { "rtmp" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{host}:{}/{}", self.port, self.app)
    }

    /// The stream name without its query.
    pub fn stream_name(&self) -> &str {
        self.stream.split('?').next().unwrap_or("")
    }
}

/// `host[:port]` or `[v6][:port]`.
fn split_host_port(authority: &str, default_port: u16) -> Option<(&str, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h, p.parse().ok()?)),
        None => Some((authority, default_port)),
    }
}

/// `url` without its query (where a `sign` or a token may be), for messages and logs.
pub fn redact(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_owned(),
    }
}

/// A connected client session over TCP.
struct Conn {
    socket: Box<dyn Io>,
    peer: std::net::SocketAddr,
    session: ClientSession,
    buf: BytesMut,
    events: VecDeque<ClientEvent>,
}

impl Conn {
    async fn open(url: &RtmpUrl, options: &ClientOptions) -> Result<Conn, ClientError> {
        let tcp = TcpStream::connect((url.host.as_str(), url.port)).await?;
        let _ = tcp.set_nodelay(true);
        let peer = tcp.peer_addr()?;
        let socket: Box<dyn Io> = if url.tls {
            Box::new(tls_connect(tcp, &url.host, options.tls_verify).await?)
        } else {
            Box::new(tcp)
        };
        let mut session =
            ClientSession::new(ClientSessionConfig::new(url.app.clone(), url.tc_url()));
        session.start();
        let mut conn = Conn {
            socket,
            peer,
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

    /// Takes in what the server has sent so far without waiting for more (a dropped read future
    /// consumes nothing, so this is safe at any time); answers pings and acknowledgements.
    /// `Ok(Some(_))` for an error-level status (the server refused or ended the stream).
    async fn poll_incoming(&mut self) -> Result<Option<String>, ClientError> {
        use futures_util::FutureExt;
        loop {
            if self.buf.capacity() - self.buf.len() < 4 * 1024 {
                self.buf.reserve(16 * 1024);
            }
            match self.socket.read_buf(&mut self.buf).now_or_never() {
                None => break,
                Some(Ok(0)) => return Err(ClientError::Refused("connection closed".into())),
                Some(Ok(_)) => {
                    let fed = self.session.feed(&mut self.buf);
                    while let Some(e) = self.session.poll_event() {
                        self.events.push_back(e);
                    }
                    fed.map_err(|e| ClientError::Protocol(e.to_string()))?;
                }
                Some(Err(e)) => return Err(e.into()),
            }
        }
        self.flush().await?;
        let mut refusal = None;
        for e in self.events.drain(..) {
            if let ClientEvent::Status {
                level,
                code,
                description,
                ..
            } = e
            {
                if level == "error" {
                    refusal = Some(format!("{code}: {description}"));
                }
            }
        }
        Ok(refusal)
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
    /// Connects to `rtmp[s]://host:port/app/stream` and sends play; returns once Play.Start
    /// arrives.
    pub async fn connect(url: &str) -> Result<RtmpPlayer, ClientError> {
        Self::connect_with(url, &ClientOptions::default()).await
    }

    /// [`RtmpPlayer::connect`] with options.
    pub async fn connect_with(
        url: &str,
        options: &ClientOptions,
    ) -> Result<RtmpPlayer, ClientError> {
        let url = RtmpUrl::parse(url)?;
        let open = async {
            let mut conn = Conn::open(&url, options).await?;
            conn.session.play(&url.stream);
            conn.flush().await?;
            conn.wait_status("NetStream.Play.Start").await?;
            Ok(conn)
        };
        let conn = within(options.connect_timeout, open).await?;
        Ok(RtmpPlayer { conn })
    }

    /// The server's address.
    pub fn peer_addr(&self) -> std::net::SocketAddr {
        self.conn.peer
    }

    /// The next media or metadata frame; `Ok(None)` when the server closed the connection.
    pub async fn next_frame(&mut self) -> Result<Option<Frame>, ClientError> {
        loop {
            match self.next_event().await? {
                None => return Ok(None),
                Some(PlayerEvent::Frame(f)) => return Ok(Some(f)),
                Some(PlayerEvent::Status(_)) => {}
            }
        }
    }

    /// The next status code (e.g. `NetStream.Play.UnpublishNotify`), skipping media.
    pub async fn next_status(&mut self) -> Result<Option<String>, ClientError> {
        loop {
            match self.next_event().await? {
                None => return Ok(None),
                Some(PlayerEvent::Status(code)) => return Ok(Some(code)),
                Some(PlayerEvent::Frame(_)) => {}
            }
        }
    }

    /// The next frame or status, in the order the server sent them; `Ok(None)` when it closed.
    pub async fn next_event(&mut self) -> Result<Option<PlayerEvent>, ClientError> {
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
                Some(ClientEvent::Status { code, .. }) => {
                    return Ok(Some(PlayerEvent::Status(code)))
                }
                Some(_) => continue,
            };
            // Empty media messages (keep-alives of some servers) carry nothing.
            if let Ok(frame) = Frame::from_flv_body(kind, timestamp, payload) {
                return Ok(Some(PlayerEvent::Frame(frame)));
            }
        }
    }
}

/// What a player receives.
#[derive(Debug, Clone, PartialEq)]
pub enum PlayerEvent {
    Frame(Frame),
    /// An `onStatus` code (`NetStream.Play.UnpublishNotify`, ...).
    Status(String),
}

/// An RTMP connection that publishes one stream.
pub struct RtmpPublisher {
    conn: Conn,
}

impl RtmpPublisher {
    /// Connects to `rtmp[s]://host:port/app/stream` and publishes; returns once Publish.Start
    /// arrives.
    pub async fn connect(url: &str) -> Result<RtmpPublisher, ClientError> {
        Self::connect_with(url, &ClientOptions::default()).await
    }

    /// [`RtmpPublisher::connect`] with options.
    pub async fn connect_with(
        url: &str,
        options: &ClientOptions,
    ) -> Result<RtmpPublisher, ClientError> {
        let url = RtmpUrl::parse(url)?;
        let open = async {
            let mut conn = Conn::open(&url, options).await?;
            conn.session.publish(&url.stream);
            conn.flush().await?;
            conn.wait_status("NetStream.Publish.Start").await?;
            Ok(conn)
        };
        let conn = within(options.connect_timeout, open).await?;
        Ok(RtmpPublisher { conn })
    }

    /// Reads what the server has sent so far without waiting (see `Conn::poll_incoming`), so a
    /// publisher that only sends still answers pings; `Ok(Some(_))` when the server refused or
    /// ended the stream.
    pub async fn poll_incoming(&mut self) -> Result<Option<String>, ClientError> {
        self.conn.poll_incoming().await
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

async fn within<T>(
    limit: Duration,
    f: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    tokio::time::timeout(limit, f).await.unwrap_or_else(|_| {
        Err(ClientError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("not connected within {} s", limit.as_secs()),
        )))
    })
}

/// The TLS client side of `rtmps://`.
async fn tls_connect(
    tcp: TcpStream,
    host: &str,
    verify: bool,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ClientError> {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    /// Accepts any certificate: `relay.tls_verify = false`, for a self-signed upstream.
    #[derive(Debug)]
    struct AnyCert(Arc<rustls::crypto::CryptoProvider>);
    impl ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Protocol(format!("TLS: {e}")))?;
    let config = if verify {
        let roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
            .with_no_client_auth()
    };
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| ClientError::BadUrl(format!("{host} is not a TLS server name")))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    Ok(connector.connect(name, tcp).await?)
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
                tls: false,
                host: "127.0.0.1".into(),
                port: 1936,
                app: "live".into(),
                stream: "cam1?sign=1-x".into()
            }
        );
        assert_eq!(RtmpUrl::parse("rtmp://h/live/s").unwrap().port, 1935);
        let u = RtmpUrl::parse("rtmps://[::1]/live/s").unwrap();
        assert!(u.tls);
        assert_eq!((u.host.as_str(), u.port), ("::1", 443));
        assert_eq!(u.tc_url(), "rtmps://[::1]:443/live");
        assert_eq!(RtmpUrl::parse("rtmp://[::1]:1936/a/b").unwrap().port, 1936);
        assert_eq!(
            RtmpUrl::parse("rtmp://h/a/b?x=1").unwrap().stream_name(),
            "b"
        );
        assert_eq!(redact("rtmp://h/a/b?sign=secret"), "rtmp://h/a/b?…");
        for bad in [
            "http://h/a/b",
            "rtmp://h/a",
            "rtmp://h:x/a/b",
            "rtmp:///a/b",
            "rtmp://h/a/",
            "rtmp://[::1/a/b",
            "rtmp://[::1]x/a/b",
        ] {
            assert!(RtmpUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
