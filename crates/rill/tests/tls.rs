//! End-to-end tests of TLS: HTTPS-FLV, WSS-FLV and RTMPS against a throwaway CA.
//!
//! - ffmpeg publishes over RTMPS; ffprobe plays HTTPS-FLV trusting only the test CA (and fails
//!   with another CA), and a plain-RTMP viewer gets the same stream;
//! - a WSS-FLV viewer built from tokio-rustls + tokio-tungstenite demuxes what it receives;
//! - plain-text clients and stalled TLS handshakes on the TLS ports are dropped without
//!   disturbing anyone else;
//! - certificates reload (explicitly and when the files change): new connections get the new
//!   certificate, open ones keep streaming;
//! - unusable certificate or key files are start-up errors that name the files.
//!
//! Everything runs on 127.0.0.1 and every wait is bounded.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rill_media::flv::{self, AudioPacket, VideoPacket};
use rill_media::VideoCodec;
use rill_rtmp::amf0::{self, Amf0Value};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// What the test stream is published as.
const APP: &str = "live";
const STREAM: &str = "secure";

/// `rtmp.handshake_timeout` in the tests that check it.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------------
// A throwaway PKI.

/// A test CA and a directory for the PEM files it issues.
struct Pki {
    dir: tempfile::TempDir,
    ca_der: CertificateDer<'static>,
    ca_path: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

/// A server certificate with its key.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("Rill test CA {name}"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2090, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_path = dir.path().join(format!("ca-{name}.pem"));
        std::fs::write(&ca_path, cert.pem()).unwrap();
        Pki {
            ca_der: cert.der().clone(),
            ca_path,
            issuer: Issuer::new(params, key),
            dir,
        }
    }

    /// A certificate for `localhost` and 127.0.0.1; `cn` and `serial` tell leaves apart.
    fn leaf(&self, cn: &str, serial: u64) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.serial_number = Some(SerialNumber::from(serial));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2080, 1, 1);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `leaf` to `server-cert.pem`/`server-key.pem` and returns their paths.
    fn install(&self, leaf: &Leaf) -> (PathBuf, PathBuf) {
        let (cert, key) = (self.path("server-cert.pem"), self.path("server-key.pem"));
        // Both files are staged first and then renamed in quick succession, so a reload that polls
        // in between has the smallest possible window to see a new cert with the old key.
        let (cert_tmp, key_tmp) = (self.path(".cert.tmp"), self.path(".key.tmp"));
        std::fs::write(&cert_tmp, &leaf.cert_pem).unwrap();
        std::fs::write(&key_tmp, &leaf.key_pem).unwrap();
        std::fs::rename(&cert_tmp, &cert).unwrap();
        std::fs::rename(&key_tmp, &key).unwrap();
        (cert, key)
    }
}

fn path_str(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// Loopback config with HTTPS on `cert`/`key` and RTMPS sharing them.
fn tls_config(cert: &Path, key: &Path) -> rill::Config {
    let mut config = rill::Config::loopback_ephemeral();
    config.https.cert = path_str(cert);
    config.https.key = path_str(key);
    config.rtmps.enabled = true;
    config.rtmp.handshake_timeout = HANDSHAKE_TIMEOUT.as_secs();
    config
}

fn https_port(server: &rill::ServerHandle) -> u16 {
    server.https_addr().expect("HTTPS is not enabled").port()
}

fn rtmps_url(server: &rill::ServerHandle) -> String {
    let port = server.rtmps_addr().expect("RTMPS is not enabled").port();
    format!("rtmps://127.0.0.1:{port}/{APP}/{STREAM}")
}

// ---------------------------------------------------------------------------------------------
// TLS clients.

fn connector(ca: &CertificateDer<'static>, alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

/// A verified TLS connection to `addr` presenting `name` (a DNS name or an IP address).
async fn tls_connect(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
    name: &str,
    alpn: &[&[u8]],
) -> TlsStream<TcpStream> {
    let tcp = timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .expect("TCP connect timed out")
        .expect("TCP connect failed");
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    timeout(
        Duration::from_secs(5),
        connector(ca, alpn).connect(server_name, tcp),
    )
    .await
    .unwrap_or_else(|_| panic!("TLS handshake with {addr} timed out"))
    .unwrap_or_else(|e| panic!("TLS handshake with {addr} failed: {e}"))
}

/// The DER of the end-entity certificate the server presented.
fn leaf_der(tls: &TlsStream<TcpStream>) -> Vec<u8> {
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("server presented no certificate")
        .to_vec()
}

/// The certificate a fresh connection to `addr` is served.
async fn served_cert(addr: SocketAddr, ca: &CertificateDer<'static>) -> Vec<u8> {
    let tls = tls_connect(addr, ca, "localhost", &[]).await;
    leaf_der(&tls)
}

/// An HTTP/1.1 FLV download over TLS, counting body bytes in the background.
struct HttpsFlvViewer {
    bytes: Arc<AtomicUsize>,
    /// Why the download stopped; `None` while it runs.
    ended: Arc<Mutex<Option<String>>>,
    /// The certificate this connection was served.
    cert: Vec<u8>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpsFlvViewer {
    async fn start(addr: SocketAddr, ca: &CertificateDer<'static>, name: &str) -> HttpsFlvViewer {
        let mut tls = tls_connect(addr, ca, name, &[b"http/1.1"]).await;
        let cert = leaf_der(&tls);
        let request =
            format!("GET /{APP}/{STREAM}.flv HTTP/1.1\r\nHost: {name}\r\nAccept: */*\r\n\r\n");
        tls.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        let body_start = timeout(Duration::from_secs(10), async {
            loop {
                let n = tls.read(&mut chunk).await.expect("HTTPS read failed");
                assert!(n > 0, "server closed before the response head");
                head.extend_from_slice(&chunk[..n]);
                if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                    return end + 4;
                }
                assert!(head.len() < 64 * 1024, "response head too long");
            }
        })
        .await
        .expect("no HTTPS response head within 10 s");
        let text = String::from_utf8_lossy(&head[..body_start]).to_string();
        assert!(
            text.starts_with("HTTP/1.1 200"),
            "HTTPS-FLV response: {text}"
        );
        let mut first = head[body_start..].to_vec();
        // The FLV signature is in the first (possibly chunk-framed) body bytes.
        while first.len() < 32 {
            let n = timeout(Duration::from_secs(10), tls.read(&mut chunk))
                .await
                .expect("no FLV body within 10 s")
                .expect("HTTPS read failed");
            assert!(n > 0, "server closed before the FLV header");
            first.extend_from_slice(&chunk[..n]);
        }
        assert!(
            first.windows(4).take(32).any(|w| w == b"FLV\x01"),
            "body does not start with an FLV header: {first:02x?}"
        );
        let bytes = Arc::new(AtomicUsize::new(first.len()));
        let ended = Arc::new(Mutex::new(None));
        let (count, why) = (bytes.clone(), ended.clone());
        let task = tokio::spawn(async move {
            loop {
                match tls.read(&mut chunk).await {
                    Ok(0) => {
                        *why.lock().unwrap() = Some("server closed the download".into());
                        return;
                    }
                    Ok(n) => {
                        count.fetch_add(n, Ordering::SeqCst);
                    }
                    Err(e) => {
                        *why.lock().unwrap() = Some(format!("read error: {e}"));
                        return;
                    }
                }
            }
        });
        HttpsFlvViewer {
            bytes,
            ended,
            cert,
            task,
        }
    }

    fn count(&self) -> usize {
        self.bytes.load(Ordering::SeqCst)
    }

    /// At least `min` more body bytes within `within`, and the download still open.
    async fn assert_flowing(&self, min: usize, within: Duration, what: &str) {
        let start = self.count();
        let arrived = wait_until(within, || self.count() >= start + min).await;
        let ended = self.ended.lock().unwrap().clone();
        assert!(
            ended.is_none(),
            "{what}: HTTPS-FLV download ended: {ended:?}"
        );
        assert!(
            arrived,
            "{what}: only {} bytes in {within:?}, expected {min}",
            self.count() - start
        );
    }
}

impl Drop for HttpsFlvViewer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// Raw sockets.

/// How a server ended a connection.
#[derive(Debug)]
struct Closed {
    after: Duration,
    /// Everything the server sent before closing.
    sent: Vec<u8>,
    how: String,
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "closed ({}) after {:?}, having sent {:02x?}",
            self.how, self.after, self.sent
        )
    }
}

/// Reads from `sock` until the server closes it (EOF or reset), at most `limit`.
async fn until_closed(mut sock: TcpStream, started: Instant, limit: Duration) -> Closed {
    let mut sent = Vec::new();
    let mut buf = [0u8; 4096];
    let how = timeout(limit, async {
        loop {
            match sock.read(&mut buf).await {
                Ok(0) => return "EOF".to_owned(),
                Ok(n) => {
                    sent.extend_from_slice(&buf[..n]);
                    assert!(sent.len() < 64 * 1024, "server keeps sending: {sent:02x?}");
                }
                Err(e) => return format!("error: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("connection still open after {limit:?}"));
    Closed {
        after: started.elapsed(),
        sent,
        how,
    }
}

async fn raw_connect(addr: SocketAddr) -> TcpStream {
    timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .expect("TCP connect timed out")
        .expect("TCP connect failed")
}

/// Sends `bytes` on a fresh connection, then waits for the server to close it.
async fn send_and_wait_close(addr: SocketAddr, bytes: Vec<u8>, limit: Duration) -> Closed {
    let mut sock = raw_connect(addr).await;
    let started = Instant::now();
    sock.write_all(&bytes).await.unwrap();
    until_closed(sock, started, limit).await
}

/// A server that refuses a plain-text peer may send a TLS alert, never anything else.
fn assert_only_tls_alert(closed: &Closed, what: &str) {
    if let Some(&first) = closed.sent.first() {
        assert_eq!(
            first, 0x15,
            "{what}: server answered with something other than a TLS alert: {:02x?}",
            closed.sent
        );
        assert!(
            closed.sent.len() <= 64,
            "{what}: long answer {:02x?}",
            closed.sent
        );
    }
}

// ---------------------------------------------------------------------------------------------
// ffprobe.

/// ffprobe on `url` trusting only `ca_file`, with certificate and host verification on.
async fn ffprobe_tls(url: &str, ca_file: &Path, read_seconds: u32) -> std::process::Output {
    let options = [
        "-ca_file".as_ref(),
        ca_file.as_os_str(),
        "-tls_verify".as_ref(),
        "1".as_ref(),
    ];
    let (mut cmd, limit) = ffprobe_frames_command(url, read_seconds, options);
    output_within(&mut cmd, limit, &format!("ffprobe on {url}")).await
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmps_publish_https_flv_and_plain_rtmp_play() {
    if !require_ffmpeg() {
        return;
    }
    let _turn = serial().await;
    bounded(async {
        let t0 = Instant::now();
        let pki = Pki::new("main");
        let (cert, key) = pki.install(&pki.leaf("rill-test-server", 1));
        let server = start_server_from(tls_config(&cert, &key)).await;

        let mut publisher = spawn_ffmpeg_publisher(&rtmps_url(&server), 40);
        wait_publishing(&server, APP, STREAM, &mut publisher).await;
        eprintln!("[tls] RTMPS publish live after {:?}", t0.elapsed());

        let viewer = BackgroundViewer::start(&rtmp_url(&server, APP, STREAM)).await;

        // The certificate names both localhost and 127.0.0.1; GnuTLS (Debian's ffmpeg TLS backend)
        // checks the IP against the iPAddress SAN, so the IP URL is verified as it stands.
        let url = format!(
            "https://127.0.0.1:{}/{APP}/{STREAM}.flv",
            https_port(&server)
        );
        let t = Instant::now();
        let output = ffprobe_tls(&url, &pki.ca_path, 3).await;
        assert!(
            output.status.success(),
            "ffprobe on {url} trusting the test CA failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let probe: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("ffprobe printed invalid JSON");
        check_test_stream(&probe, 60, "ffprobe over HTTPS");
        eprintln!(
            "[tls] ffprobe over HTTPS: {} video frames in {:?}",
            video_frames(&probe).len(),
            t.elapsed()
        );

        // Verification is real: the same URL with another CA is refused by ffprobe.
        let stranger = Pki::new("stranger");
        let t = Instant::now();
        let output = ffprobe_tls(&url, &stranger.ca_path, 1).await;
        assert!(
            !output.status.success(),
            "ffprobe accepted the server with an unrelated CA: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        eprintln!(
            "[tls] ffprobe with a foreign CA refused in {:?}: {}",
            t.elapsed(),
            String::from_utf8_lossy(&output.stderr).trim()
        );

        viewer
            .assert_flowing(30, Duration::from_secs(5), "plain RTMP viewer")
            .await;
        assert!(server.is_publishing(APP, STREAM));
        eprintln!("[tls] test 2 total {:?}", t0.elapsed());

        drop(viewer);
        drop(publisher);
        let t = Instant::now();
        server.shutdown().await;
        eprintln!(
            "[tls] shutdown without stalled handshakes took {:?}",
            t.elapsed()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_flv_viewer_demuxes_the_stream() {
    if !require_tool("ffmpeg") {
        return;
    }
    let _turn = serial().await;
    bounded(async {
        let t0 = Instant::now();
        let pki = Pki::new("wss");
        let (cert, key) = pki.install(&pki.leaf("rill-test-wss", 2));
        let server = start_server_from(tls_config(&cert, &key)).await;
        let mut publisher = spawn_ffmpeg_publisher(&rtmps_url(&server), 30);
        wait_publishing(&server, APP, STREAM, &mut publisher).await;

        let addr = server.https_addr().unwrap();
        // An IP server name: rustls checks it against the certificate's iPAddress SAN.
        let tls = tls_connect(addr, &pki.ca_der, "127.0.0.1", &[b"http/1.1"]).await;
        assert_eq!(
            tls.get_ref().1.alpn_protocol(),
            Some(&b"http/1.1"[..]),
            "ALPN"
        );
        let url = format!("wss://127.0.0.1:{}/{APP}/{STREAM}.flv", addr.port());
        let (mut ws, response) = timeout(
            Duration::from_secs(10),
            tokio_tungstenite::client_async(url.as_str(), tls),
        )
        .await
        .expect("WebSocket handshake timed out")
        .expect("WebSocket handshake failed");
        assert_eq!(response.status().as_u16(), 101);

        let (header, tags) = read_ws_flv(&mut ws, 30, "over WSS").await;

        assert_eq!(header, Some((true, true)), "FLV header flags");
        assert_eq!(tags[0].tag_type, 18, "first tag must be script data");
        let meta = amf0::decode_all(&tags[0].body).expect("metadata is not AMF0");
        assert_eq!(
            meta.first().and_then(Amf0Value::as_str),
            Some("onMetaData"),
            "{meta:?}"
        );
        let props = meta.get(1).expect("onMetaData without properties");
        assert_eq!(props.get("width").and_then(Amf0Value::as_f64), Some(1280.0));
        assert_eq!(props.get("height").and_then(Amf0Value::as_f64), Some(720.0));

        let avc_header = tags
            .iter()
            .position(|t| {
                t.tag_type == 9 && {
                    let h = flv::parse_video_header(&t.body).unwrap();
                    h.packet == VideoPacket::SequenceStart && h.codec == VideoCodec::Avc
                }
            })
            .expect("no AVC sequence header");
        let first_video = tags
            .iter()
            .position(is_coded_video)
            .expect("no coded video");
        assert!(
            avc_header < first_video,
            "AVC sequence header (tag {avc_header}) after the first coded video (tag {first_video})"
        );
        assert!(
            flv::parse_video_header(&tags[first_video].body)
                .unwrap()
                .keyframe,
            "first coded video tag is not a keyframe"
        );
        let first_audio = tags.iter().position(|t| {
            t.tag_type == 8
                && flv::parse_audio_header(&t.body).unwrap().packet == AudioPacket::CodedFrames
        });
        if let Some(first_audio) = first_audio {
            assert!(
                tags[..first_audio].iter().any(|t| t.tag_type == 8
                    && flv::parse_audio_header(&t.body).unwrap().packet
                        == AudioPacket::SequenceStart),
                "coded audio before the AAC sequence header"
            );
        }
        eprintln!(
            "[tls] WSS: {} tags (AVC header #{avc_header}, first keyframe #{first_video}) in {:?}",
            tags.len(),
            t0.elapsed()
        );

        drop(ws);
        drop(publisher);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_and_stalled_clients_on_tls_ports_are_dropped() {
    if !require_tool("ffmpeg") {
        return;
    }
    let _turn = serial().await;
    bounded(async {
        let t0 = Instant::now();
        let pki = Pki::new("refuse");
        let (cert, key) = pki.install(&pki.leaf("rill-test-refuse", 3));
        let server = start_server_from(tls_config(&cert, &key)).await;
        let https = server.https_addr().unwrap();
        let rtmps = server.rtmps_addr().unwrap();
        let mut publisher = spawn_ffmpeg_publisher(&rtmps_url(&server), 40);
        wait_publishing(&server, APP, STREAM, &mut publisher).await;

        let rtmp_viewer = BackgroundViewer::start(&rtmp_url(&server, APP, STREAM)).await;
        let https_viewer = HttpsFlvViewer::start(https, &pki.ca_der, "localhost").await;
        rtmp_viewer
            .assert_flowing(10, Duration::from_secs(5), "RTMP viewer before")
            .await;
        https_viewer
            .assert_flowing(10_000, Duration::from_secs(5), "HTTPS viewer before")
            .await;
        let refused_before = server.sessions().counters.refused.load(Ordering::SeqCst);

        // Plain RTMP (C0 + C1) on the RTMPS port: 0x03 is no TLS record type, so the handshake
        // fails on the first byte, long before the handshake timeout.
        let mut c0c1 = vec![3u8];
        c0c1.extend((0..1536u32).map(|i| (i % 251) as u8));
        let rtmp_on_rtmps = send_and_wait_close(rtmps, c0c1, Duration::from_secs(5)).await;
        // Plain HTTP on the HTTPS port.
        let http_on_https = send_and_wait_close(
            https,
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            Duration::from_secs(5),
        )
        .await;
        eprintln!("[tls] RTMP C0+C1 on RTMPS: {rtmp_on_rtmps}");
        eprintln!("[tls] plain GET on HTTPS: {http_on_https}");
        for (closed, what) in [
            (&rtmp_on_rtmps, "RTMP on the RTMPS port"),
            (&http_on_https, "HTTP on the HTTPS port"),
        ] {
            assert!(
                closed.after < Duration::from_secs(1),
                "{what}: closed only after {:?}",
                closed.after
            );
            assert_only_tls_alert(closed, what);
        }
        assert!(
            !http_on_https.sent.windows(5).any(|w| w == b"HTTP/"),
            "the HTTPS port answered plain HTTP"
        );

        // Stalled handshakes: nothing at all, or a TLS record header that promises a ClientHello
        // that never comes. Each must be dropped after the handshake timeout, and meanwhile a real
        // client must get through at once.
        let started = Instant::now();
        let mut stalled = Vec::new();
        for addr in [https, rtmps] {
            stalled.push(raw_connect(addr).await);
            let mut partial = raw_connect(addr).await;
            partial
                .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
                .await
                .unwrap();
            stalled.push(partial);
        }
        let t = Instant::now();
        let fresh_https = tls_connect(https, &pki.ca_der, "localhost", &[]).await;
        let fresh_rtmps = tls_connect(rtmps, &pki.ca_der, "localhost", &[]).await;
        let fresh = t.elapsed();
        assert!(
            fresh < Duration::from_secs(1),
            "TLS handshakes took {fresh:?} beside stalled ones"
        );
        drop((fresh_https, fresh_rtmps));
        let closes = futures_util::future::join_all(
            stalled
                .into_iter()
                .map(|s| until_closed(s, started, HANDSHAKE_TIMEOUT + Duration::from_secs(4))),
        )
        .await;
        for (i, closed) in closes.iter().enumerate() {
            eprintln!("[tls] stalled handshake #{i}: {closed}");
            assert!(
                closed.after >= HANDSHAKE_TIMEOUT - Duration::from_millis(300),
                "stalled handshake #{i} dropped too early: {closed:?}"
            );
            assert!(
                closed.after <= HANDSHAKE_TIMEOUT + Duration::from_millis(1500),
                "stalled handshake #{i} dropped too late: {closed:?}"
            );
            assert_only_tls_alert(closed, "stalled handshake");
        }
        eprintln!("[tls] fresh TLS handshakes beside stalled ones: {fresh:?}");

        let refused = server.sessions().counters.refused.load(Ordering::SeqCst) - refused_before;
        assert!(
            refused >= 6,
            "only {refused} TLS refusals counted, expected 6"
        );
        rtmp_viewer
            .assert_flowing(30, Duration::from_secs(5), "RTMP viewer after")
            .await;
        https_viewer
            .assert_flowing(10_000, Duration::from_secs(5), "HTTPS viewer after")
            .await;
        assert!(
            server.is_publishing(APP, STREAM),
            "the RTMPS publisher went away"
        );
        eprintln!("[tls] test 4 total {:?}", t0.elapsed());

        // Shutdown with a handshake still stalled: the connection must not hold the server up
        // beyond its own handshake timeout.
        drop((rtmp_viewer, https_viewer, publisher));
        let stalled_https = raw_connect(https).await;
        let stalled_rtmps = raw_connect(rtmps).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = Instant::now();
        server.shutdown().await;
        let took = t.elapsed();
        eprintln!("[tls] shutdown with two stalled TLS handshakes took {took:?}");
        assert!(
            took <= HANDSHAKE_TIMEOUT + Duration::from_secs(1),
            "shutdown took {took:?}"
        );
        drop((stalled_https, stalled_rtmps));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reload_for_new_connections_only() {
    if !require_tool("ffmpeg") {
        return;
    }
    let _turn = serial().await;
    bounded(async {
        let t0 = Instant::now();
        let pki = Pki::new("reload");
        let (a, b, c) = (
            pki.leaf("rill-test-A", 0xa1),
            pki.leaf("rill-test-B", 0xb2),
            pki.leaf("rill-test-C", 0xc3),
        );
        assert!(a.der != b.der && b.der != c.der && a.der != c.der);
        let (cert, key) = pki.install(&a);
        let server = start_server_from(tls_config(&cert, &key)).await;
        let https = server.https_addr().unwrap();
        let rtmps = server.rtmps_addr().unwrap();
        let publisher = publish_live(&server, APP, STREAM, 50).await;

        let first = HttpsFlvViewer::start(https, &pki.ca_der, "localhost").await;
        assert!(first.cert == a.der, "connection #1 was not served cert A");
        assert!(
            served_cert(rtmps, &pki.ca_der).await == a.der,
            "RTMPS with A"
        );
        first
            .assert_flowing(
                10_000,
                Duration::from_secs(5),
                "connection #1 before reload",
            )
            .await;

        // Explicit reload.
        pki.install(&b);
        let t = Instant::now();
        server
            .reload_certificates()
            .expect("reload with cert B failed");
        eprintln!("[tls] reload_certificates() took {:?}", t.elapsed());
        assert!(
            served_cert(https, &pki.ca_der).await == b.der,
            "HTTPS after reload is not B"
        );
        assert!(
            served_cert(rtmps, &pki.ca_der).await == b.der,
            "RTMPS after reload is not B"
        );
        first
            .assert_flowing(10_000, Duration::from_secs(5), "connection #1 after reload")
            .await;

        // The file watcher: no call, just new files.
        pki.install(&c);
        let t = Instant::now();
        for (addr, what) in [(https, "HTTPS"), (rtmps, "RTMPS")] {
            let seen = {
                let deadline = Instant::now() + Duration::from_secs(12);
                loop {
                    if served_cert(addr, &pki.ca_der).await == c.der {
                        break true;
                    }
                    if Instant::now() >= deadline {
                        break false;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            };
            assert!(
                seen,
                "{what}: cert C not served within 12 s of the file change"
            );
            eprintln!(
                "[tls] {what} serves cert C {:?} after the file change",
                t.elapsed()
            );
        }
        first
            .assert_flowing(
                10_000,
                Duration::from_secs(5),
                "connection #1 after the watcher",
            )
            .await;

        // A broken file on reload: an error naming it, and C stays in use.
        std::fs::write(&cert, "not a certificate\n").unwrap();
        let err = server
            .reload_certificates()
            .expect_err("reload of a broken certificate succeeded")
            .to_string();
        assert!(
            err.contains(&path_str(&cert)),
            "error does not name the file: {err}"
        );
        assert!(
            served_cert(https, &pki.ca_der).await == c.der,
            "a failed reload replaced the certificate"
        );
        first
            .assert_flowing(10_000, Duration::from_secs(5), "connection #1 at the end")
            .await;
        eprintln!("[tls] test 5 total {:?}", t0.elapsed());

        drop((first, publisher));
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_certificate_files_fail_start_up_naming_them() {
    bounded(async {
        let t0 = Instant::now();
        let pki = Pki::new("errors");
        let (cert, key) = pki.install(&pki.leaf("rill-test-E", 5));
        let other = pki.leaf("rill-test-F", 6);
        let other_key = pki.path("other-key.pem");
        std::fs::write(&other_key, &other.key_pem).unwrap();
        let garbage = pki.path("garbage.pem");
        std::fs::write(&garbage, "this is no PEM\n").unwrap();
        let missing = pki.path("does-not-exist.pem");

        async fn start_error(config: rill::Config) -> String {
            match timeout(
                Duration::from_secs(10),
                rill::Server::builder(config).start(),
            )
            .await
            .expect("server start timed out")
            {
                Ok(server) => {
                    server.shutdown().await;
                    panic!("server started with unusable certificate files")
                }
                Err(e) => e.to_string(),
            }
        }

        let https = |c: &Path, k: &Path| {
            let mut config = rill::Config::loopback_ephemeral();
            config.https.cert = path_str(c);
            config.https.key = path_str(k);
            config
        };
        let rtmps = |c: &Path, k: &Path| {
            let mut config = rill::Config::loopback_ephemeral();
            config.rtmps.cert = path_str(c);
            config.rtmps.key = path_str(k);
            config
        };

        let cases = [
            ("missing https.cert", https(&missing, &key), &missing),
            ("missing https.key", https(&cert, &missing), &missing),
            ("missing rtmps.cert", rtmps(&missing, &key), &missing),
            ("missing rtmps.key", rtmps(&cert, &missing), &missing),
            ("garbage https.cert", https(&garbage, &key), &garbage),
            ("garbage https.key", https(&cert, &garbage), &garbage),
        ];
        for (what, config, named) in cases {
            let e = start_error(config).await;
            eprintln!("[tls] {what}: {e}");
            assert!(e.contains(&path_str(named)), "{what}: {e}");
        }

        for config in [https(&cert, &other_key), rtmps(&cert, &other_key)] {
            let e = start_error(config).await;
            assert!(
                e.contains(&path_str(&cert)) && e.contains(&path_str(&other_key)),
                "mismatched key: {e}"
            );
            eprintln!("[tls] mismatch error: {e}");
        }
        // And with the right files it starts.
        let server = start_server_from(https(&cert, &key)).await;
        assert!(server.https_addr().is_some() && server.rtmps_addr().is_none());
        server.shutdown().await;
        eprintln!("[tls] test 6 total {:?}", t0.elapsed());
    })
    .await;
}
