//! Secure defaults of the API, against a real server on loopback:
//!
//! - with the defaults, a loopback client may change things (kick a publisher, add and delete a
//!   relay) without a login;
//! - with `auth.api_loopback = false` and no `auth.api`, every mutating route (kicks, relays,
//!   recordings, and routes nobody registered) is refused with 403 naming the keys to set, over
//!   HTTP and HTTPS alike, while reads stay open;
//! - with `auth.api = true`, Basic auth decides: 401 without credentials, 2xx with.
//!
//! Clients off the host cannot be simulated here (all of 127.0.0.0/8 is loopback); the rule for
//! them is unit-tested in `http::api_guard`.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::relay_peers::{http_request, Body, HttpReply};
use common::*;
use rill::client::RtmpPublisher;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const LOGIN: (&str, &str) = ("admin", "s3cret");

async fn get(addr: SocketAddr, path: &str) -> HttpReply {
    http_request(addr, "GET", path, None, Body::None).await
}

/// A publisher of `live/{name}`, live once this returns.
async fn publish(server: &rill::ServerHandle, name: &str) -> RtmpPublisher {
    let publisher = RtmpPublisher::connect(&rtmp_url(server, "live", name))
        .await
        .expect("publish");
    assert!(
        wait_until(Duration::from_secs(5), || server
            .is_publishing("live", name))
        .await,
        "live/{name} did not go live"
    );
    publisher
}

fn relay_body() -> serde_json::Value {
    serde_json::json!({"url": "rtmp://127.0.0.1:1/up/x", "app": "live", "name": "pushed"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defaults_let_loopback_clients_change_things() {
    bounded(async {
        let server = start_server_from(rill::Config::loopback_ephemeral()).await;
        let http = server.http_addr();
        let _publisher = publish(&server, "cam").await;

        let r = http_request(http, "DELETE", "/api/streams/live/cam", None, Body::None).await;
        assert_eq!(r.status, 204, "{}", r.text());
        assert!(
            wait_until(Duration::from_secs(5), || !server
                .is_publishing("live", "cam"))
            .await,
            "the publisher was not kicked"
        );

        let body = relay_body();
        let r = http_request(http, "POST", "/api/relay/push", None, Body::Json(&body)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let id = r.text();
        let r = http_request(
            http,
            "DELETE",
            &format!("/api/relay/{id}"),
            None,
            Body::None,
        )
        .await;
        assert_eq!((r.status, r.text().as_str()), (200, "OK"));

        // Not a 403: the guard let it through to the handler, which knows no such session.
        let r = http_request(http, "DELETE", "/api/sessions/999999", None, Body::None).await;
        assert_eq!(r.status, 404, "{}", r.text());
        server.shutdown().await;
    })
    .await;
}

fn assert_refused(r: &HttpReply, what: &str) {
    assert_eq!(r.status, 403, "{what}: {}", r.text());
    let text = r.text();
    assert!(
        text.contains("auth.api") && text.contains("auth.api_loopback"),
        "{what}: the refusal names the keys: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_loopback_trust_every_change_is_refused_and_reads_stay_open() {
    bounded(async {
        let mut config = rill::Config::loopback_ephemeral();
        config.auth.api_loopback = false;
        let server = start_server_from(config).await;
        let http = server.http_addr();
        let _publisher = publish(&server, "cam").await;
        let sessions_before = server.sessions().list().len();

        let body = relay_body();
        let pull =
            serde_json::json!({"url": "rtmp://127.0.0.1:1/up/x", "app": "live", "name": "p"});
        let task = serde_json::json!({"path": "/live/cam", "url": "rtmp://127.0.0.1:1/up/x"});
        let changes: [(&str, &str, Body); 9] = [
            ("DELETE", "/api/streams/live/cam", Body::None),
            ("DELETE", "/api/sessions/1", Body::None),
            ("POST", "/api/relay/pull", Body::Json(&pull)),
            ("POST", "/api/relay/push", Body::Json(&body)),
            ("POST", "/api/relay/task", Body::Json(&task)),
            ("DELETE", "/api/relay/abcdefgh", Body::None),
            ("POST", "/api/recordings/live/cam", Body::None),
            ("DELETE", "/api/recordings/live/cam", Body::None),
            // A route nobody registered is covered too (so will be one added later).
            ("PUT", "/api/admin/anything", Body::None),
        ];
        for (method, path, body) in changes {
            let r = http_request(http, method, path, None, body).await;
            assert_refused(&r, &format!("{method} {path}"));
        }
        assert!(server.is_publishing("live", "cam"), "nothing was kicked");
        assert_eq!(server.sessions().list().len(), sessions_before);
        let relays = get(http, "/api/relay").await;
        assert_eq!((relays.status, relays.json()), (200, serde_json::json!({})));

        for path in [
            "/api/server",
            "/api/streams",
            "/api/streams/live/cam",
            "/api/sessions",
        ] {
            assert_eq!(get(http, path).await.status, 200, "GET {path}");
        }
        assert_eq!(get(http, "/metrics").await.status, 200);
        let head = http_request(http, "HEAD", "/api/streams", None, Body::None).await;
        assert_eq!(head.status, 200);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_api_auth_basic_auth_decides() {
    bounded(async {
        let mut config = rill::Config::loopback_ephemeral();
        config.auth.api = true;
        config.auth.api_user = LOGIN.0.into();
        config.auth.api_pass = LOGIN.1.into();
        // Loopback trust off too: with auth.api, the login alone decides.
        config.auth.api_loopback = false;
        let server = start_server_from(config).await;
        let http = server.http_addr();
        let _publisher = publish(&server, "cam").await;

        let body = relay_body();
        let r = http_request(http, "POST", "/api/relay/push", None, Body::Json(&body)).await;
        assert_eq!(r.status, 401, "{}", r.text());
        assert!(r.header("www-authenticate").is_some());
        let wrong = Some((LOGIN.0, "nope"));
        let r = http_request(http, "DELETE", "/api/streams/live/cam", wrong, Body::None).await;
        assert_eq!(r.status, 401);
        assert!(server.is_publishing("live", "cam"));

        // A route without a login of its own (nobody registered it) still asks for one.
        let r = http_request(http, "PUT", "/api/admin/anything", None, Body::None).await;
        assert_eq!(r.status, 401, "{}", r.text());
        let r = http_request(http, "PUT", "/api/admin/anything", Some(LOGIN), Body::None).await;
        // Through to the router, which has no such route (405: it matches a media path).
        assert!(matches!(r.status, 404 | 405), "{}: {}", r.status, r.text());
        let r = http_request(
            http,
            "POST",
            "/api/relay/push",
            Some(LOGIN),
            Body::Json(&body),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let path = format!("/api/relay/{}", r.text());
        let r = http_request(http, "DELETE", &path, Some(LOGIN), Body::None).await;
        assert_eq!((r.status, r.text().as_str()), (200, "OK"));
        let r = http_request(
            http,
            "DELETE",
            "/api/streams/live/cam",
            Some(LOGIN),
            Body::None,
        )
        .await;
        assert_eq!(r.status, 204, "{}", r.text());
        server.shutdown().await;
    })
    .await;
}

/// `method path` over HTTPS to `addr`, trusting only `cert`; the status line's code.
async fn https_status(
    addr: SocketAddr,
    cert: &CertificateDer<'static>,
    method: &str,
    path: &str,
) -> u16 {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let exchange = async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        let req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        tls.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        // A peer that closes without close_notify is fine here: the head has arrived by then.
        let _ = tls.read_to_end(&mut raw).await;
        raw
    };
    let raw = timeout(Duration::from_secs(10), exchange)
        .await
        .expect("HTTPS exchange timed out");
    let head = String::from_utf8_lossy(&raw);
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_holds_over_https_too() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, key.cert.pem()).unwrap();
        std::fs::write(&key_path, key.signing_key.serialize_pem()).unwrap();
        let der = key.cert.der().clone();

        for loopback in [false, true] {
            let mut config = rill::Config::loopback_ephemeral();
            config.https.cert = cert_path.display().to_string();
            config.https.key = key_path.display().to_string();
            config.auth.api_loopback = loopback;
            let server = start_server_from(config).await;
            let https = server.https_addr().expect("https listening");
            assert_eq!(https_status(https, &der, "GET", "/api/sessions").await, 200);
            let status = https_status(https, &der, "DELETE", "/api/sessions/999999").await;
            // Refused without loopback trust; with it, through to the handler (no such session).
            assert_eq!(
                status,
                if loopback { 404 } else { 403 },
                "api_loopback = {loopback}"
            );
            server.shutdown().await;
        }
    })
    .await;
}
