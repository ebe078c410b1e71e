//! A pull relay's task: open the upstream, publish what it sends as a local stream through the
//! gate, and when it fails, wait (with backoff) and open it again — for as long as the relay
//! lives (static) or somebody watches (pull on play).
//!
//! Each upstream connection is one local publish: a reconnect is an unpublish and a republish,
//! which viewers already ride through (they stay, and the hub continues their timestamps).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::RelayMode;
use crate::control::gate::Publishing;
use crate::control::sessions::Protocol;
use crate::server::Context;

use super::backoff::Backoff;
use super::retry::{self, End};
use super::source::{Source, Upstream};
use super::{Relay, RelayState};

/// An upstream that sends nothing for this long is dead.
const MEDIA_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a pull on play looks whether anybody still watches.
const WATCH_EVERY: Duration = Duration::from_millis(250);

pub(super) async fn run(ctx: Arc<Context>, relay: Arc<Relay>, source: Source) {
    let pull = Pull {
        ctx: &ctx,
        relay: &relay,
        source: &source,
        unwatched_since: None,
    };
    retry::run(&ctx, &relay, pull).await;
}

struct Pull<'a> {
    ctx: &'a Arc<Context>,
    relay: &'a Arc<Relay>,
    source: &'a Source,
    /// Since when a pull on play has had no viewer (kept across reconnects).
    unwatched_since: Option<Instant>,
}

impl retry::Connect for Pull<'_> {
    fn connect(&mut self, backoff: &mut Backoff) -> impl Future<Output = End> + Send {
        session(
            self.ctx,
            self.relay,
            self.source,
            backoff,
            &mut self.unwatched_since,
        )
    }

    /// No retries while nobody watches a stream pulled on play.
    fn give_up(&mut self) -> bool {
        self.relay.mode == RelayMode::Pull
            && self
                .ctx
                .relays
                .retire_if_unwatched(self.ctx, self.relay, &mut None::<()>)
    }
}

/// One upstream connection, published as the relay's stream until it ends.
async fn session(
    ctx: &Arc<Context>,
    relay: &Arc<Relay>,
    source: &Source,
    backoff: &mut Backoff,
    unwatched_since: &mut Option<Instant>,
) -> End {
    if source.loops_back(ctx, &relay.app, &relay.name).await {
        relay.failed("relay loop: the upstream is this server's own stream".into());
        tracing::warn!(relay = %relay.id, stream = %relay.stream(), "relay refused: it would pull its own stream");
        return End::Stop;
    }
    let mut upstream = match Upstream::open(ctx, source).await {
        Ok(u) => u,
        Err(e) => return End::Retry(format!("upstream: {e}")),
    };
    let session = ctx.sessions.register(Protocol::Relay, upstream.peer());
    // Published at the first frame: an upstream that accepts the play of a stream it does not
    // have yet (Rill, SRS) is no live stream here either.
    let mut publishing: Option<Publishing> = None;
    let on_demand = relay.mode == RelayMode::Pull;
    let mut watch = tokio::time::interval(WATCH_EVERY);
    let idle = Duration::from_secs(ctx.config.relay.idle_timeout);
    loop {
        tokio::select! {
            next = tokio::time::timeout(MEDIA_TIMEOUT, upstream.next_frame()) => {
                let frame = match next {
                    Err(_) => return End::Retry(format!("no media for {} s", MEDIA_TIMEOUT.as_secs())),
                    Ok(Err(e)) => return End::Retry(format!("upstream: {e}")),
                    Ok(Ok(None)) => return End::Retry("upstream ended the stream".into()),
                    Ok(Ok(Some(f))) => f,
                };
                relay.add_bytes(frame.payload.len());
                session.add_in(frame.payload.len());
                if publishing.is_none() {
                    match ctx.gate().admit_publish(&session, &relay.app, &relay.name, &[]).await {
                        Ok(p) => publishing = Some(p),
                        Err(e) => return End::Retry(format!("publish refused: {e}")),
                    }
                    backoff.connected(Instant::now());
                    relay.set_state(RelayState::Live);
                }
                let Some(p) = publishing.as_ref() else { return End::Stop };
                if !p.publisher.push(frame) {
                    return End::Retry("the stream was taken over by another publisher".into());
                }
            }
            _ = session.kick.cancelled() => {
                return if ctx.shutdown.is_cancelled() { End::Stop } else { End::Retry("kicked".into()) };
            }
            _ = watch.tick(), if on_demand => {
                let watched = ctx
                    .hub
                    .stream(&relay.app, &relay.name)
                    .is_some_and(|s| s.viewer_count() > 0)
                    || ctx.relays.hls_watched(&relay.app, &relay.name);
                if watched {
                    *unwatched_since = None;
                    continue;
                }
                let since = *unwatched_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= idle
                    && ctx.relays.retire_if_unwatched(ctx, relay, &mut publishing)
                {
                    tracing::info!(relay = %relay.id, stream = %relay.stream(), "pull stopped: nobody watched for {} s", idle.as_secs());
                    return End::Stop;
                }
            }
        }
    }
}
