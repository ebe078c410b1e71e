//! The RTMP listener: accepts connections (bounded in number) and runs one session task each.

mod play;
mod session;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::server::Context;

/// Accepts until shutdown.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>) {
    let limit = Arc::new(Semaphore::new(ctx.config.rtmp.max_connections));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = ctx.shutdown.cancelled() => break,
        };
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Running out of descriptors must not end the listener: pause briefly and go on.
                tracing::warn!(error = %e, "rtmp accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            ctx.sessions
                .counters
                .refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(%peer, "rtmp connection refused: max_connections reached");
            continue;
        };
        // Nagle would hold back the small handshake and command replies by ~40 ms.
        let _ = socket.set_nodelay(true);
        let ctx2 = ctx.clone();
        ctx.tasks.spawn(async move {
            session::run(socket, peer, ctx2).await;
            drop(permit);
        });
    }
}
