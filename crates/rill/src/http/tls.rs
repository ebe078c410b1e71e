//! HTTPS/WSS: the same router as plain HTTP, behind a TLS accept loop. The TLS handshake runs in
//! each connection's own task, bounded in time, so a stalled or garbage handshake never holds up
//! `accept` or anyone else.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::server::Context;

/// Serves HTTPS until shutdown.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>, acceptor: TlsAcceptor) {
    let app = super::router(ctx.clone());
    let slots = Arc::new(Semaphore::new(ctx.config.http.max_connections));
    let handshake = Duration::from_secs(ctx.config.rtmp.handshake_timeout);
    while let Some((socket, peer)) = crate::io::accept(&listener, &ctx.shutdown, "https").await {
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            ctx.sessions
                .counters
                .refused
                .fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let Some(per_ip) = ctx.http_per_ip.try_acquire(peer.ip()) else {
            super::conn::refused_per_ip(&ctx, peer, "https");
            continue;
        };
        let (app, acceptor, ctx2) = (app.clone(), acceptor.clone(), ctx.clone());
        ctx.tasks.spawn(async move {
            let tls = match crate::tls::accept(&acceptor, socket, handshake, &ctx2.shutdown).await {
                Ok(s) => s,
                Err(e) => return refused(&ctx2, peer, &e),
            };
            super::conn::hyper_connection(tls, peer, app, &ctx2.shutdown).await;
            drop((permit, per_ip));
        });
    }
}

fn refused(ctx: &Context, peer: std::net::SocketAddr, reason: &str) {
    ctx.sessions
        .counters
        .refused
        .fetch_add(1, Ordering::Relaxed);
    tracing::info!(%peer, %reason, "https connection refused");
}
