//! Connection limits per client address, against a real server on loopback:
//! `rtmp.max_connections_per_ip` and `http.max_connections_per_ip` refuse the connection over the
//! limit (RTMP: closed at once; HTTP: a 503, then closed) and give the slot back when a
//! connection closes. Every wait is bounded.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const LIMIT: usize = 2;

async fn start_limited() -> rill::ServerHandle {
    let mut config = rill::Config::loopback_ephemeral();
    config.rtmp.max_connections_per_ip = LIMIT;
    config.http.max_connections_per_ip = LIMIT;
    start_server_from(config).await
}

/// What the server does with a connection that sends nothing: `Some(bytes)` if it closed it
/// within `within` (after sending those bytes), `None` if it kept it open.
async fn closed_by_server(sock: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let deadline = Instant::now() + within;
    loop {
        let mut buf = [0u8; 512];
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, sock.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

async fn connect(addr: SocketAddr) -> TcpStream {
    timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .expect("connect timed out")
        .expect("connect")
}

/// Connects until the server keeps a connection open (a slot came free), within 5 s.
async fn connect_kept(addr: SocketAddr) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut sock = connect(addr).await;
        if closed_by_server(&mut sock, Duration::from_millis(300))
            .await
            .is_none()
        {
            return sock;
        }
        assert!(Instant::now() < deadline, "no slot came free at {addr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_connections_per_address_are_limited() {
    bounded(async {
        let server = start_limited().await;
        let addr = server.rtmp_addr();
        let mut held = Vec::new();
        for _ in 0..LIMIT {
            held.push(connect(addr).await);
        }
        let mut third = connect(addr).await;
        assert!(
            closed_by_server(&mut third, Duration::from_secs(5))
                .await
                .is_some(),
            "the connection over the limit was closed"
        );
        for sock in &mut held {
            assert!(
                closed_by_server(sock, Duration::from_millis(200))
                    .await
                    .is_none(),
                "those within the limit stay open"
            );
        }
        drop(held.pop());
        let _again = connect_kept(addr).await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_connections_per_address_are_limited() {
    bounded(async {
        let server = start_limited().await;
        let addr = server.http_addr();
        let mut held = Vec::new();
        for _ in 0..LIMIT {
            held.push(connect(addr).await);
        }
        let mut third = connect(addr).await;
        let answer = closed_by_server(&mut third, Duration::from_secs(5))
            .await
            .expect("the connection over the limit was closed");
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 503 "), "{text:?}");
        assert!(text.contains("too many connections"), "{text:?}");

        // A slot given back is usable again, for a request as for anything.
        drop(held.pop());
        let mut sock = connect_kept(addr).await;
        sock.write_all(b"GET /api/server HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut raw = Vec::new();
        timeout(Duration::from_secs(10), sock.read_to_end(&mut raw))
            .await
            .expect("response timed out")
            .unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 200 "), "{text:?}");
        server.shutdown().await;
    })
    .await;
}
