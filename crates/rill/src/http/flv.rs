//! HTTP-FLV (chunked response) and WS-FLV (binary WebSocket messages) viewers.
//!
//! Both send the FLV file header once the tracks are known (flags set for the tracks present), then
//! each frame's shared FLV tag. A viewer that joins before the publisher waits; viewers stay across
//! an unpublish and continue with the next publisher's sequence headers.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rill_media::flv;
use tokio_util::sync::CancellationToken;

use super::listener::Peer;
use crate::control::auth::{Action, SignError};
use crate::control::hooks::{Event, EventKind, Hooks};
use crate::control::sessions::{Protocol, Role, SessionGuard};
use crate::hub::{Packet, Subscription, ViewerEnd};
use crate::server::Context;

/// Most packets gathered per batch.
const MAX_BATCH: usize = 64;

/// `GET /{app}/{stream}.flv`, as HTTP-FLV or, with an Upgrade, as WS-FLV.
pub async fn play(
    State(ctx): State<Arc<Context>>,
    Path((app, file)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Some(name) = file.strip_suffix(".flv").filter(|n| !n.is_empty()) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let query = query.unwrap_or_default();
    let protocol = if ws.is_ok() {
        Protocol::WsFlv
    } else {
        Protocol::HttpFlv
    };
    if let Err(e) = ctx.sign.check(Action::Play, &app, name, &[&query]) {
        ctx.sessions
            .counters
            .refused
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(%peer, protocol = protocol.as_str(), stream = %format!("/{app}/{name}"), reason = %e, "play refused");
        let status = if e == SignError::Missing {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::FORBIDDEN
        };
        return (status, "unauthorized\n").into_response();
    }
    let session = ctx.sessions.register(protocol, peer);
    let ip = peer.ip().to_string();
    let connect = Event::new(
        EventKind::PreConnect,
        session.id,
        &app,
        "",
        &query,
        &ip,
        protocol,
    );
    let play = Event::new(
        EventKind::PrePlay,
        session.id,
        &app,
        name,
        &query,
        &ip,
        protocol,
    );
    for e in [&connect, &play] {
        if let Err(r) = ctx.hooks.pre(e).await {
            ctx.sessions
                .counters
                .refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(id = session.id, %peer, stream = %format!("/{app}/{name}"), reason = %r, "play refused by {}", e.event.name());
            return (StatusCode::FORBIDDEN, "forbidden\n").into_response();
        }
    }
    session.attach(&app, name, Some(Role::Player), &query);
    let sub = ctx.hub.subscribe(&app, name);
    ctx.hooks.notify(connect.as_kind(EventKind::PostConnect));
    ctx.hooks.notify(play.as_kind(EventKind::PostPlay));
    let done = DoneEvents {
        hooks: ctx.hooks.clone(),
        events: vec![play, connect],
    };
    let viewer = Viewer::new(FlvFeed::new(sub), session, ctx.shutdown.clone(), done);
    match ws {
        Ok(ws) => ws.on_upgrade(move |socket| ws_session(socket, viewer)),
        Err(_) => {
            let body = futures_util::stream::unfold(viewer, |mut viewer| async move {
                let chunk = viewer.next().await?;
                Some((Ok::<Bytes, std::convert::Infallible>(chunk), viewer))
            });
            Response::builder()
                .header(header::CONTENT_TYPE, "video/x-flv")
                .header(header::CACHE_CONTROL, "no-cache")
                .body(Body::from_stream(body))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}

async fn ws_session(socket: WebSocket, mut viewer: Viewer) {
    let (mut tx, mut rx) = socket.split();
    loop {
        tokio::select! {
            chunk = viewer.next() => {
                let Some(b) = chunk else { break };
                let mut batch = vec![b];
                viewer.drain_ready(&mut batch);
                let mut result = Ok(());
                for b in batch {
                    result = tx.feed(Message::Binary(b)).await;
                    if result.is_err() {
                        break;
                    }
                }
                if let Err(e) = result.and(tx.flush().await) {
                    viewer.end(format!("write error: {e}"));
                    break;
                }
            }
            msg = rx.next() => match msg {
                None | Some(Ok(Message::Close(_))) => {
                    viewer.end("peer closed".into());
                    break;
                }
                Some(Err(e)) => {
                    viewer.end(format!("read error: {e}"));
                    break;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = tx.close().await;
}

/// One HTTP-FLV/WS-FLV viewer: its feed, its registry entry, and its end. Logs its start when
/// created and its end (with the reason) when dropped.
struct Viewer {
    feed: FlvFeed,
    /// Held for its `Drop`: the done events fire when the viewer ends.
    _done: DoneEvents,
    session: SessionGuard,
    shutdown: CancellationToken,
    reason: String,
    path: String,
}

impl Viewer {
    fn new(
        feed: FlvFeed,
        session: SessionGuard,
        shutdown: CancellationToken,
        done: DoneEvents,
    ) -> Self {
        let path = feed.sub.stream().path();
        tracing::info!(
            id = session.id,
            peer = %session.peer,
            protocol = session.protocol.as_str(),
            stream = %path,
            live = feed.sub.stream().is_live(),
            "play start"
        );
        Viewer {
            feed,
            _done: done,
            session,
            shutdown,
            reason: "peer closed".into(),
            path,
        }
    }

    /// The next bytes to send; `None` once the viewer must end (the reason is recorded).
    async fn next(&mut self) -> Option<Bytes> {
        let r = tokio::select! {
            r = self.feed.next() => r,
            _ = self.session.kick.cancelled() => Err(if self.shutdown.is_cancelled() {
                "server shutting down".into()
            } else {
                "kicked".into()
            }),
        };
        match r {
            Ok(b) => {
                self.session.add_out(b.len());
                Some(b)
            }
            Err(reason) => {
                self.end(reason);
                None
            }
        }
    }

    /// Moves what is already prepared into `out`, counting it as sent.
    fn drain_ready(&mut self, out: &mut Vec<Bytes>) {
        let before = out.len();
        self.feed.drain_ready(out);
        self.session
            .add_out(out[before..].iter().map(Bytes::len).sum());
    }

    fn end(&mut self, reason: String) {
        self.reason = reason;
    }
}

/// `donePlay` then `doneConnect`, fired when the viewer ends however it ends.
struct DoneEvents {
    hooks: Arc<Hooks>,
    events: Vec<Event>,
}

impl Drop for DoneEvents {
    fn drop(&mut self) {
        for e in self.events.drain(..) {
            let kind = if e.event == EventKind::PrePlay {
                EventKind::DonePlay
            } else {
                EventKind::DoneConnect
            };
            self.hooks.notify(e.as_kind(kind));
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let s = &self.session;
        tracing::info!(
            id = s.id,
            peer = %s.peer,
            protocol = s.protocol.as_str(),
            stream = %self.path,
            reason = %self.reason,
            "session ended"
        );
    }
}

/// Turns a subscription into FLV bytes: the file header first, then one shared tag per frame.
struct FlvFeed {
    sub: Subscription,
    header_sent: bool,
    ready: VecDeque<Bytes>,
}

impl FlvFeed {
    fn new(sub: Subscription) -> Self {
        FlvFeed {
            sub,
            header_sent: false,
            ready: VecDeque::new(),
        }
    }

    /// The next chunk of bytes to send, waiting for the stream if needed.
    async fn next(&mut self) -> Result<Bytes, String> {
        loop {
            if let Some(b) = self.ready.pop_front() {
                return Ok(b);
            }
            // What is gathered leaves in one go (one write per batch for the server's I/O).
            let mut packets = Vec::new();
            self.sub
                .next_batch(MAX_BATCH, &mut packets)
                .await
                .map_err(end_reason)?;
            for p in packets {
                self.push(p);
            }
        }
    }

    /// Moves whatever is already prepared into `out`.
    fn drain_ready(&mut self, out: &mut Vec<Bytes>) {
        out.extend(self.ready.drain(..));
    }

    fn push(&mut self, p: Packet) {
        let Packet::Frame(f) = p else { return };
        if !self.header_sent {
            let t = self.sub.stream().tracks();
            // Before metadata or a sequence header says otherwise, assume what the frame shows.
            let kind = f.frame.kind;
            let audio = t.audio || kind == rill_media::FrameKind::Audio;
            let video = t.video || kind == rill_media::FrameKind::Video;
            let (audio, video) = if !audio && !video {
                (true, true)
            } else {
                (audio, video)
            };
            self.ready
                .push_back(Bytes::copy_from_slice(&flv::file_header(audio, video)));
            self.header_sent = true;
        }
        self.ready.push_back(f.flv_tag());
    }
}

fn end_reason(e: ViewerEnd) -> String {
    match e {
        ViewerEnd::TooSlow => "viewer too slow: kept falling behind".into(),
        ViewerEnd::Closed => "stream closed".into(),
    }
}
