//! The reconnect loop of the pull and push relays: connect, and when the connection fails,
//! record the error, count a restart and wait (with [`Backoff`]) before trying again, until the
//! relay is stopped or has nothing left to retry for.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::server::Context;

use super::backoff::Backoff;
use super::{Relay, RelayState};

/// How one connection ended.
pub(super) enum End {
    /// Try again after the backoff.
    Retry(String),
    /// The relay is over (deleted, shut down, retired, or it would loop).
    Stop,
}

/// What the reconnect loop runs, one connection at a time.
pub(super) trait Connect {
    /// One connection, until it ends; it tells `backoff` when it is up.
    fn connect(&mut self, backoff: &mut Backoff) -> impl Future<Output = End> + Send;

    /// Asked after a failed connection, before backing off: true ends the relay instead.
    fn give_up(&mut self) -> bool {
        false
    }

    /// Completes when there is nothing left to retry for; raced against the backoff delay.
    fn gone(&self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }
}

/// Runs `conn` again and again until it returns [`End::Stop`] or the relay is stopped, then
/// marks the relay stopped and removes it from the registry.
///
/// After a failed connection the error is recorded and a restart counted; then
/// [`Connect::give_up`] may end the relay, else it backs off, unless [`Connect::gone`] completes
/// first.
pub(super) async fn run(ctx: &Context, relay: &Arc<Relay>, mut conn: impl Connect) {
    let mut backoff = Backoff::new(seed(&relay.id));
    loop {
        relay.set_state(RelayState::Connecting);
        let end = tokio::select! {
            end = conn.connect(&mut backoff) => end,
            _ = relay.stop.cancelled() => End::Stop,
        };
        let error = match end {
            End::Stop => break,
            End::Retry(e) => e,
        };
        relay.failed(error);
        relay.restarts.fetch_add(1, Ordering::Relaxed);
        if conn.give_up() {
            break;
        }
        relay.set_state(RelayState::BackingOff);
        let delay = backoff.failed(Instant::now());
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = conn.gone() => break,
            _ = relay.stop.cancelled() => break,
        }
    }
    relay.set_state(RelayState::Stopped);
    ctx.relays.map().retain(|_, r| !Arc::ptr_eq(r, relay));
}

/// A small hash of the id, to seed the jitter differently for every relay.
fn seed(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}
