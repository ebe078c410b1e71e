//! The plain HTTP port: an accept loop bounded in open connections, in all and per client address. A connection whose first
//! request is a `GET` of an `.flv` stream (HTTP-FLV or WS-FLV) is served directly on the socket
//! ([`super::direct`]); every other one goes to hyper and the router (HTTP/1.1, h2c).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::direct;
use crate::server::Context;

/// The peer address, as the HTTP handlers see it.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// How long an open connection may take to finish after shutdown starts.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves plain HTTP until shutdown. Beyond `http.max_connections` open connections, new ones
/// wait in the kernel's backlog.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>) {
    let app = super::router(ctx.clone());
    let slots = Arc::new(Semaphore::new(ctx.config.http.max_connections));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = ctx.shutdown.cancelled() => return,
        };
        let Some((socket, peer)) = crate::io::accept(&listener, &ctx.shutdown, "http").await else {
            return;
        };
        let Some(per_ip) = ctx.http_per_ip.try_acquire(peer.ip()) else {
            // A fresh socket's send buffer is empty, so this never blocks; the answer is best
            // effort (the client may already have sent its request, or gone).
            let _ = socket.try_write(TOO_MANY_FROM_PEER);
            refused_per_ip(&ctx, peer, "http");
            continue;
        };
        let (app, ctx2) = (app.clone(), ctx.clone());
        ctx.tasks.spawn(async move {
            match direct::detect(&socket).await {
                Some(request) => direct::serve(socket, peer, ctx2, request).await,
                None => hyper_connection(socket, peer, app, &ctx2.shutdown).await,
            }
            drop((permit, per_ip));
        });
    }
}

/// What a client over `http.max_connections_per_ip` gets before its connection is closed.
const TOO_MANY_FROM_PEER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
Content-Length: 56\r\nConnection: close\r\n\r\ntoo many connections from your address, try again later\n";

/// Counts and logs a connection refused by the per-address limit (one line per refusal).
pub(super) fn refused_per_ip(ctx: &Context, peer: SocketAddr, port: &'static str) {
    let key = "http.max_connections_per_ip";
    crate::control::limits::refused(&ctx.sessions.counters, &ctx.http_per_ip, peer, port, key);
}

/// Serves one connection with hyper and the router until it ends, or until shortly after
/// `shutdown` (requests in flight may finish).
pub(super) async fn hyper_connection<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    shutdown: &CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(Peer(peer)));
        app.clone().oneshot(req)
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "http connection ended with an error");
            }
        }
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN, conn).await;
        }
    }
}
