//! A push relay's task: send a local stream to another RTMP server while it is published, and
//! reconnect (with backoff) when the target goes away.
//!
//! The relay reads the stream like the server's own outputs do (an internal subscription, so it
//! is no viewer), one subscription per target connection: a reconnect starts with the stream's
//! codec configuration and its cached GOP, so the target gets a decodable stream at once. A slow
//! target only makes this subscription skip frames; the publisher never waits for it.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rill_media::FrameKind;

use crate::client::{ClientOptions, RtmpPublisher, RtmpUrl};
use crate::hub::{Packet, ViewerEnd};
use crate::server::Context;

use super::backoff::Backoff;
use super::retry::{self, End};
use super::{Relay, RelayState};

/// Longest one frame may take to leave for the target.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the target's messages (pings, errors) are read.
const READ_EVERY: Duration = Duration::from_millis(500);
/// How often a push that waits for its stream to be published looks again.
const WAIT_EVERY: Duration = Duration::from_millis(200);

/// Pushes `app/name` to `target`; with `until_unpublish` (a push task of the app), the relay ends
/// with the publish, otherwise (created by the API) it waits for the next one.
pub(super) async fn run(
    ctx: Arc<Context>,
    relay: Arc<Relay>,
    target: String,
    until_unpublish: bool,
) {
    let push = Push {
        ctx: &ctx,
        relay: &relay,
        target: &target,
        until_unpublish,
    };
    retry::run(&ctx, &relay, push).await;
}

struct Push<'a> {
    ctx: &'a Arc<Context>,
    relay: &'a Arc<Relay>,
    target: &'a str,
    until_unpublish: bool,
}

impl retry::Connect for Push<'_> {
    fn connect(&mut self, backoff: &mut Backoff) -> impl Future<Output = End> + Send {
        push_once(
            self.ctx,
            self.relay,
            self.target,
            self.until_unpublish,
            backoff,
        )
    }

    /// A push of a publish that ended has nothing left to retry for.
    async fn gone(&self) {
        loop {
            tokio::time::sleep(WAIT_EVERY).await;
            if self.until_unpublish && !is_live(self.ctx, self.relay) {
                return;
            }
        }
    }
}

fn is_live(ctx: &Context, relay: &Relay) -> bool {
    ctx.hub
        .stream(&relay.app, &relay.name)
        .is_some_and(|s| s.is_live())
}

async fn push_once(
    ctx: &Arc<Context>,
    relay: &Arc<Relay>,
    target: &str,
    until_unpublish: bool,
    backoff: &mut Backoff,
) -> End {
    let url = match RtmpUrl::parse(target) {
        Ok(u) => u,
        Err(e) => {
            relay.failed(e.to_string());
            return End::Stop;
        }
    };
    if url.app == relay.app
        && url.stream_name() == relay.name
        && ctx.is_own_rtmp(&url.host, url.port).await
    {
        relay.failed("relay loop: the target is this server's own stream".into());
        tracing::warn!(relay = %relay.id, stream = %relay.stream(), "relay refused: it would push the stream onto itself");
        return End::Stop;
    }
    while !is_live(ctx, relay) {
        if until_unpublish {
            return End::Stop;
        }
        tokio::time::sleep(WAIT_EVERY).await;
    }
    let options = ClientOptions {
        connect_timeout: Duration::from_secs(10),
        tls_verify: ctx.config.relay.tls_verify,
    };
    let mut publisher = match RtmpPublisher::connect_with(target, &options).await {
        Ok(p) => p,
        Err(e) => return End::Retry(format!("target: {e}")),
    };
    let mut sub = ctx.hub.subscribe_internal(&relay.app, &relay.name);
    let mut read = tokio::time::interval(READ_EVERY);
    let mut live = false;
    loop {
        tokio::select! {
            p = sub.recv() => {
                let frame = match p {
                    Ok(Packet::Frame(f)) => f,
                    Ok(Packet::Unpublish) if until_unpublish => {
                        let _ = tokio::time::timeout(Duration::from_secs(1), publisher.close()).await;
                        return End::Stop;
                    }
                    Ok(Packet::Unpublish) | Ok(Packet::Publish) => continue,
                    Err(ViewerEnd::TooSlow) => return End::Retry("the target is too slow".into()),
                    Err(ViewerEnd::Closed) => return End::Stop,
                };
                if frame.frame.kind == FrameKind::Metadata && frame.frame.payload.is_empty() {
                    continue;
                }
                match tokio::time::timeout(WRITE_TIMEOUT, publisher.send_frame(&frame.frame)).await {
                    Err(_) => return End::Retry(format!("target took over {} s to take a frame", WRITE_TIMEOUT.as_secs())),
                    Ok(Err(e)) => return End::Retry(format!("target: {e}")),
                    Ok(Ok(())) => {}
                }
                relay.add_bytes(frame.frame.payload.len());
                if !live {
                    live = true;
                    backoff.connected(Instant::now());
                    relay.set_state(RelayState::Live);
                }
            }
            _ = read.tick() => {
                match publisher.poll_incoming().await {
                    Ok(None) => {}
                    Ok(Some(refusal)) => return End::Retry(format!("target: {refusal}")),
                    Err(e) => return End::Retry(format!("target: {e}")),
                }
            }
        }
    }
}
