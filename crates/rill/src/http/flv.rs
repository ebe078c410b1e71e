//! HTTP-FLV (chunked response) and WS-FLV (binary WebSocket messages) viewers.
//!
//! Both send the FLV file header once the tracks are known (flags set for the tracks present), then
//! each frame's shared FLV tag. A viewer that joins before the publisher waits; viewers stay across
//! an unpublish and continue with the next publisher's sequence headers.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use rill_media::flv;
use tokio_util::sync::CancellationToken;

use super::conn::Peer;
use crate::control::gate::{Admission, Refusal, Viewing};
use crate::control::sessions::{Protocol, SessionGuard};
use crate::hub::{DirectViewer, Packet, Subscription, ViewerEnd};
use crate::server::Context;

/// Most packets gathered per batch.
const MAX_BATCH: usize = 64;
/// Packets a viewer keeps room for once live.
const KEEP_PACKETS: usize = 8;

/// `GET /{app}/{stream}.flv`, as HTTP-FLV or, with an Upgrade, as WS-FLV, through hyper: what
/// the direct path (`direct.rs`) leaves to it (HTTPS, HTTP/2, a second request on a kept-alive
/// connection).
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
    let viewer = match admit(&ctx, &app, name, &query, peer, protocol).await {
        Ok(v) => v,
        Err((status, body)) => return (status, body).into_response(),
    };
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
                // One message per batch: FLV players parse the byte stream across messages.
                if let Err(e) = tx.send(Message::Binary(b)).await {
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

/// Admits a viewer of `app/name` through the gate (signature, hooks, registration, subscription);
/// otherwise the HTTP status and body of the refusal.
pub(super) async fn admit(
    ctx: &Arc<Context>,
    app: &str,
    name: &str,
    query: &str,
    peer: SocketAddr,
    protocol: Protocol,
) -> Result<Viewer, (StatusCode, &'static str)> {
    match ctx
        .gate()
        .admit_viewer(protocol, peer, app, name, query)
        .await
    {
        Ok(Viewing { playing, session }) => Ok(Viewer::new(
            FlvFeed::new(playing.sub),
            playing.admission,
            session,
            ctx.shutdown.clone(),
        )),
        Err(r) => {
            ctx.sessions
                .counters
                .refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(%peer, protocol = protocol.as_str(), stream = %format!("/{app}/{name}"), reason = %r, "play refused");
            let status = r.http_status();
            let body = match status {
                StatusCode::UNAUTHORIZED => "unauthorized\n",
                StatusCode::NOT_FOUND => "not found\n",
                _ if matches!(r, Refusal::Sign(_)) => "unauthorized\n",
                _ => "forbidden\n",
            };
            Err((status, body))
        }
    }
}

/// One HTTP-FLV/WS-FLV viewer: its feed, its registry entry, and its end. Logs its start when
/// created and its end (with the reason) when dropped.
pub(super) struct Viewer {
    feed: FlvFeed,
    /// Held for its `Drop`: the done events fire when the viewer ends.
    _admission: Admission,
    pub session: SessionGuard,
    shutdown: CancellationToken,
    reason: String,
    path: String,
}

impl Viewer {
    fn new(
        feed: FlvFeed,
        admission: Admission,
        session: SessionGuard,
        shutdown: CancellationToken,
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
            _admission: admission,
            session,
            shutdown,
            reason: "peer closed".into(),
            path,
        }
    }

    /// The next bytes to send, in one piece; `None` once the viewer must end (the reason is
    /// recorded).
    async fn next(&mut self) -> Option<Bytes> {
        let mut parts = Vec::new();
        let kick = self.session.kick.clone();
        tokio::select! {
            n = self.next_parts(&mut parts) => n?,
            _ = kick.cancelled() => {
                let reason = self.kick_reason();
                self.end(reason);
                return None;
            }
        };
        if parts.len() == 1 {
            return parts.pop();
        }
        let mut all = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
        for b in parts {
            all.extend_from_slice(&b);
        }
        Some(all.freeze())
    }

    /// Appends the next bytes to send to `out` (the shared tags as they are) and returns their
    /// length; `None` once the stream ends this viewer (the reason is recorded). A kick is the
    /// caller's to watch.
    pub(super) async fn next_parts(&mut self, out: &mut Vec<Bytes>) -> Option<usize> {
        match self.feed.next(out).await {
            Ok(n) => {
                self.session.add_out(n);
                Some(n)
            }
            Err(reason) => {
                self.end(reason);
                None
            }
        }
    }

    /// Hands the viewer's media to the stream's fan-out if it has caught up.
    pub(super) fn go_direct(&mut self, viewer: &Arc<DirectViewer>) -> bool {
        self.feed.sub.go_direct(viewer)
    }

    /// Back from the fan-out (see [`Subscription::resume`]).
    pub(super) fn resume(&mut self, config: bool) {
        self.feed.sub.resume(config);
    }

    /// Gives back room the start-up burst needed.
    pub(super) fn shrink(&mut self) {
        self.feed.packets.shrink_to(KEEP_PACKETS);
    }

    /// Why the session's kick token fired.
    pub(super) fn kick_reason(&self) -> String {
        if self.shutdown.is_cancelled() {
            "server shutting down".into()
        } else {
            "kicked".into()
        }
    }

    pub(super) fn end(&mut self, reason: String) {
        self.reason = reason;
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

/// Turns a subscription into FLV bytes: the file header first, then one shared tag per frame;
/// everything a wake-up finds ready leaves in one write.
struct FlvFeed {
    sub: Subscription,
    header_sent: bool,
    packets: Vec<Packet>,
}

impl FlvFeed {
    fn new(sub: Subscription) -> Self {
        FlvFeed {
            sub,
            header_sent: false,
            packets: Vec::new(),
        }
    }

    /// Appends the next bytes to send to `out`, waiting for the stream if needed; returns their
    /// length.
    async fn next(&mut self, out: &mut Vec<Bytes>) -> Result<usize, String> {
        let before = out.len();
        loop {
            self.sub
                .next_batch(MAX_BATCH, &mut self.packets)
                .await
                .map_err(end_reason)?;
            let packets = std::mem::take(&mut self.packets);
            for p in &packets {
                self.push(p, out);
            }
            self.packets = packets;
            self.packets.clear();
            if out.len() > before {
                return Ok(out[before..].iter().map(Bytes::len).sum());
            }
        }
    }

    fn push(&mut self, p: &Packet, out: &mut Vec<Bytes>) {
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
            out.push(Bytes::copy_from_slice(&flv::file_header(audio, video)));
            self.header_sent = true;
        }
        out.push(f.flv_tag());
    }
}

fn end_reason(e: ViewerEnd) -> String {
    match e {
        ViewerEnd::TooSlow => "viewer too slow: kept falling behind".into(),
        ViewerEnd::Closed => "stream closed".into(),
    }
}
