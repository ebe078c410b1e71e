//! HTTP-FLV (chunked response) and WS-FLV (binary WebSocket messages) viewers.
//!
//! Both send the FLV file header once the tracks are known (flags set for the tracks present), then
//! each frame's shared FLV tag. A viewer that joins before the publisher waits; viewers stay across
//! an unpublish and continue with the next publisher's sequence headers.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rill_media::flv;
use tokio_util::sync::CancellationToken;

use super::listener::Peer;
use crate::hub::{Packet, Subscription, ViewerEnd};
use crate::server::Context;

/// Most packets gathered per batch.
const MAX_BATCH: usize = 64;

/// `GET /{app}/{stream}.flv`, as HTTP-FLV or, with an Upgrade, as WS-FLV.
pub async fn play(
    State(ctx): State<Arc<Context>>,
    Path((app, file)): Path<(String, String)>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Some(name) = file.strip_suffix(".flv").filter(|n| !n.is_empty()) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let id = ctx.next_session_id();
    let sub = ctx.hub.subscribe(&app, name);
    let shutdown = ctx.shutdown.clone();
    match ws {
        Ok(ws) => {
            let log = ViewerLog::new(id, peer, "ws-flv", &sub);
            ws.on_upgrade(move |socket| ws_session(socket, FlvFeed::new(sub), shutdown, log))
        }
        Err(_) => {
            let log = ViewerLog::new(id, peer, "http-flv", &sub);
            let feed = FlvFeed::new(sub);
            let body = futures_util::stream::unfold(
                (feed, shutdown, log),
                |(mut feed, shutdown, mut log)| async move {
                    let chunk = tokio::select! {
                        c = feed.next() => c,
                        _ = shutdown.cancelled() => Err("server shutting down".into()),
                    };
                    match chunk {
                        Ok(b) => Some((
                            Ok::<Bytes, std::convert::Infallible>(b),
                            (feed, shutdown, log),
                        )),
                        Err(reason) => {
                            log.end(reason);
                            None
                        }
                    }
                },
            );
            Response::builder()
                .header(header::CONTENT_TYPE, "video/x-flv")
                .header(header::CACHE_CONTROL, "no-cache")
                .body(Body::from_stream(body))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}

async fn ws_session(
    socket: WebSocket,
    mut feed: FlvFeed,
    shutdown: CancellationToken,
    mut log: ViewerLog,
) {
    let (mut tx, mut rx) = socket.split();
    let reason = loop {
        tokio::select! {
            chunk = feed.next() => match chunk {
                Ok(b) => {
                    let mut batch = vec![b];
                    feed.drain_ready(&mut batch);
                    let mut failed = None;
                    for b in batch {
                        if let Err(e) = tx.feed(Message::Binary(b)).await {
                            failed = Some(format!("write error: {e}"));
                            break;
                        }
                    }
                    if let Some(f) = failed {
                        break f;
                    }
                    if let Err(e) = tx.flush().await {
                        break format!("write error: {e}");
                    }
                }
                Err(reason) => break reason,
            },
            msg = rx.next() => match msg {
                None | Some(Ok(Message::Close(_))) => break "peer closed".into(),
                Some(Err(e)) => break format!("read error: {e}"),
                Some(Ok(_)) => {}
            },
            _ = shutdown.cancelled() => break "server shutting down".into(),
        }
    };
    log.end(reason);
    let _ = tx.close().await;
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
            let p = self.sub.recv().await.map_err(end_reason)?;
            self.push(p);
            // Take what else is ready now, so that the writer sends it in one go.
            while self.ready.len() < MAX_BATCH {
                match self.sub.try_recv().map_err(end_reason)? {
                    Some(p) => self.push(p),
                    None => break,
                }
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

/// Logs a viewer's start now and its end (with the reason) when dropped.
struct ViewerLog {
    id: u64,
    peer: SocketAddr,
    protocol: &'static str,
    path: String,
    reason: String,
}

impl ViewerLog {
    fn new(id: u64, peer: SocketAddr, protocol: &'static str, sub: &Subscription) -> Self {
        let path = sub.stream().path();
        tracing::info!(id, %peer, protocol, stream = %path, live = sub.stream().is_live(), "play start");
        ViewerLog {
            id,
            peer,
            protocol,
            path,
            reason: "peer closed".into(),
        }
    }

    /// Records why the viewer ended (logged on drop).
    fn end(&mut self, reason: String) {
        self.reason = reason;
    }
}

impl Drop for ViewerLog {
    fn drop(&mut self) {
        tracing::info!(id = self.id, peer = %self.peer, protocol = self.protocol, stream = %self.path, reason = %self.reason, "session ended");
    }
}
