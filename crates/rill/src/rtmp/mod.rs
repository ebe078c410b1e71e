//! The RTMP listener: accepts connections (bounded in number, in all and per client address) and
//! runs one session task each.

mod play;
mod session;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::server::Context;

/// Accepts until shutdown; with `tls`, every connection is RTMPS.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>, tls: Option<TlsAcceptor>) {
    let limit = Arc::new(Semaphore::new(ctx.config.rtmp.max_connections));
    while let Some((socket, peer)) = crate::io::accept(&listener, &ctx.shutdown, "rtmp").await {
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            ctx.sessions
                .counters
                .refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(%peer, "rtmp connection refused: max_connections reached");
            continue;
        };
        let Some(per_ip) = ctx.rtmp_per_ip.try_acquire(peer.ip()) else {
            let what = if tls.is_some() { "rtmps" } else { "rtmp" };
            let key = "rtmp.max_connections_per_ip";
            crate::control::limits::refused(
                &ctx.sessions.counters,
                &ctx.rtmp_per_ip,
                peer,
                what,
                key,
            );
            continue;
        };
        let ctx2 = ctx.clone();
        let tls = tls.clone();
        let nodelay = crate::io::NodelaySwitch::new(&socket);
        ctx.tasks.spawn(async move {
            match tls {
                None => session::run(socket, nodelay, peer, ctx2, false).await,
                Some(acceptor) => {
                    let limit = std::time::Duration::from_secs(ctx2.config.rtmp.handshake_timeout);
                    match crate::tls::accept(&acceptor, socket, limit, &ctx2.shutdown).await {
                        Ok(stream) => session::run(stream, nodelay, peer, ctx2, true).await,
                        Err(e) => tls_refused(&ctx2, peer, &e),
                    }
                }
            }
            drop((permit, per_ip));
        });
    }
}

fn tls_refused(ctx: &Context, peer: std::net::SocketAddr, reason: &str) {
    ctx.sessions
        .counters
        .refused
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(%peer, %reason, "rtmps connection refused");
}
