//! One RTMP connection: the async shell around `rill_rtmp::session::server::ServerSession`.
//!
//! It moves bytes, asks the hub for publish/play rights, and writes frames to players in batches
//! (one vectored write for whatever is ready). Every way out of [`run`] ends in one log line with
//! the reason; dropping the publisher/subscription handles unpublishes and leaves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rill_media::{Frame, FrameKind};
use rill_rtmp::chunk::ChunkLimits;
use rill_rtmp::session::server::{ServerEvent, ServerSession, ServerSessionConfig};
use rill_rtmp::session::MediaKind;
use tokio::io::AsyncReadExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio_util::sync::CancellationToken;

use super::play::Player;
use crate::control::gate::{Admission, Publishing, Refusal};
use crate::control::sessions::{Protocol, SessionGuard};
use crate::hub::{DirectViewer, Framing, HandBack, Packet, ViewerEnd};
use crate::io::{write_all_timed, NodelaySwitch};
use crate::server::Context;

/// Most packets gathered into one write.
const MAX_BATCH: usize = 64;
/// Entries kept in a player's batch vectors once the start-up burst is out.
const KEEP_BATCH: usize = 8;
/// Read buffer of a connection in its handshake and commands.
const READ_SMALL: usize = 4 * 1024;
/// Read buffer of a player once it plays: it only sends acknowledgements and the odd command, and
/// a viewer must cost little memory.
const READ_PLAYER: usize = 256;
/// Read buffer of a publisher: large reads mean few syscalls for the ingest.
const READ_LARGE: usize = 64 * 1024;

/// Runs a connection to its end and logs why it ended.
pub async fn run<S>(
    socket: S,
    nodelay: NodelaySwitch,
    peer: SocketAddr,
    ctx: Arc<Context>,
    tls: bool,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let info = ctx.sessions.register(Protocol::Rtmp, peer);
    // The span is the parent of the session's log lines, not entered on every poll: a viewer is
    // polled for every batch, and entering a span each time was a measurable share of delivery.
    let span = tracing::info_span!("rtmp", id = info.id, %peer, tls);
    tracing::debug!(parent: &span, "connection accepted");
    let mut conn = Conn::new(info, ctx, span, nodelay);
    conn.tls = tls;
    let reason = conn.serve(socket).await;
    tracing::info!(parent: &conn.span, %reason, session = %conn.label, "rtmp session ended");
}

struct Conn {
    info: SessionGuard,
    span: tracing::Span,
    /// Used once media starts flowing to a player (see `delivery.nodelay`), and its descriptor
    /// for the fan-out.
    nodelay: NodelaySwitch,
    /// The player as the stream's fan-out sees it, and whether a group writes its media now.
    direct: Option<Arc<DirectViewer>>,
    grouped: bool,
    /// Back from the fan-out: the subscription resumes (with the codec configuration if true)
    /// once what the group left unwritten is out.
    resume: Option<bool>,
    tls: bool,
    ctx: Arc<Context>,
    session: ServerSession,
    app: Option<String>,
    publishing: Option<(u32, Publishing)>,
    player: Option<Player>,
    kick: CancellationToken,
    /// Set when a refusal was sent: flush, then close.
    closing: Option<String>,
    /// What the session did, for its last log line.
    label: String,
    /// Query of the connect (the tcUrl's or app's `?...`), where a `sign` may also be.
    connect_query: String,
    /// The admitted connect, whose `doneConnect` is due when the session ends.
    connected: Option<Admission>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // `done*` always fires, whatever ended the session, innermost first.
        self.publishing = None;
        self.player = None;
        self.connected = None;
    }
}

impl Conn {
    fn new(
        info: SessionGuard,
        ctx: Arc<Context>,
        span: tracing::Span,
        nodelay: NodelaySwitch,
    ) -> Self {
        let id = info.id;
        let r = &ctx.config.rtmp;
        let config = ServerSessionConfig {
            out_chunk_size: r.chunk_size,
            limits: ChunkLimits {
                max_message_size: r.max_message_size,
                max_chunk_size: r.max_chunk_size,
                ..ChunkLimits::default()
            },
            seed: id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5,
            ..ServerSessionConfig::default()
        };
        Conn {
            kick: info.kick.clone(),
            info,
            span,
            nodelay,
            direct: None,
            grouped: false,
            resume: None,
            tls: false,
            session: ServerSession::new(config),
            app: None,
            publishing: None,
            player: None,
            closing: None,
            label: "before connect".into(),
            connect_query: String::new(),
            connected: None,
            ctx,
        }
    }

    async fn serve<S: AsyncRead + AsyncWrite + Send + 'static>(&mut self, socket: S) -> String {
        match self.serve_inner(socket).await {
            Ok(reason) => reason,
            Err(reason) => reason,
        }
    }

    async fn serve_inner<S: AsyncRead + AsyncWrite + Send + 'static>(
        &mut self,
        socket: S,
    ) -> Result<String, String> {
        let ctx = self.ctx.clone();
        let rtmp = &ctx.config.rtmp;
        let (mut rd, mut wr) = tokio::io::split(socket);
        let mut buf = BytesMut::with_capacity(READ_SMALL);
        let connect_deadline =
            tokio::time::Instant::now() + Duration::from_secs(rtmp.handshake_timeout);
        let ping_every = Duration::from_secs(if rtmp.ping == 0 { 3600 } else { rtmp.ping });
        let ping_timeout = Duration::from_secs(rtmp.ping_timeout);
        let write_timeout = Duration::from_secs(rtmp.ping_timeout.max(10));
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
        let started = Instant::now();
        let mut last_rx = Instant::now();
        // The session's own token (a child of the server's shutdown), registered once.
        let kick = self.kick.clone();
        let mut kicked = std::pin::pin!(kick.cancelled());
        // Grown to what batches need (a few entries), not to the most they may hold.
        let mut batch: Vec<Bytes> = Vec::new();
        let mut packets: Vec<Packet> = Vec::new();
        let media_nodelay = ctx.config.delivery.media_nodelay();
        // Only a plain TCP socket can be written by someone else; TLS records are this task's.
        let direct = ctx.config.delivery.direct && !self.tls;
        let mut media_sent = false;
        let r = loop {
            let output = self.session.take_output();
            if self.grouped && (output.is_some() || !self.direct_eligible()) {
                // A reply to a command, or a change of what the player wants: its own task
                // delivers again, after what the group left unwritten.
                self.take_back(&mut batch)?;
            }
            batch.extend(output);
            if !batch.is_empty() {
                self.write(&mut wr, &mut batch, write_timeout).await?;
                if media_sent {
                    // The start-up burst has left at once; from here on the mode's setting holds.
                    self.nodelay.media_started(media_nodelay, direct);
                }
                if batch.capacity() > KEEP_BATCH {
                    // The start-up burst needed room that live batches never will.
                    batch.shrink_to(KEEP_BATCH);
                    packets.shrink_to(KEEP_BATCH);
                }
            }
            if let Some(reason) = self.closing.take() {
                break Ok(reason);
            }
            if let (Some(config), Some(player)) = (self.resume.take(), self.player.as_mut()) {
                player.sub.resume(config);
            }
            if direct && media_sent && !self.grouped {
                self.go_direct();
            }
            let connected = self.app.is_some();
            let can_play = !self.grouped && self.player.as_ref().is_some_and(|p| !p.paused);
            let grouped = self.grouped;
            let read_step = self.read_step();
            tokio::select! {
                // Media first: it is what a viewer's loop wakes for nearly every time.
                biased;
                r = next_batch(self.player.as_mut(), &mut packets), if can_play => {
                    let Some(player) = self.player.as_mut() else { continue };
                    if let Err(e) = r {
                        break Ok(viewer_end(e));
                    }
                    for p in packets.drain(..) {
                        player.deliver(p, &mut self.session, &mut batch);
                    }
                    media_sent = true;
                }
                _ = DirectViewer::handed_back(self.direct.as_ref()), if grouped => {
                    self.take_back(&mut batch)?;
                }
                r = read_some(&mut rd, &mut buf, read_step) => {
                    match r {
                        Ok(0) => break Ok("peer closed".into()),
                        Ok(n) => self.info.add_in(n),
                        Err(e) => break Err(format!("read error: {e}")),
                    }
                    last_rx = Instant::now();
                    let fed = self.session.feed(&mut buf);
                    self.handle_events().await;
                    if let Err(e) = fed {
                        if self.grouped {
                            self.take_back(&mut batch)?;
                        }
                        // Flush what the session had to say (e.g. an error reply) before closing.
                        batch.extend(self.session.take_output());
                        let _ = self.write(&mut wr, &mut batch, write_timeout).await;
                        break Err(format!("protocol error: {e}"));
                    }
                }
                _ = &mut kicked => {
                    break Ok(if ctx.shutdown.is_cancelled() {
                        "server shutting down".into()
                    } else {
                        "replaced by a new publisher or kicked".into()
                    });
                }
                _ = tokio::time::sleep_until(connect_deadline), if !connected => {
                    break Err("handshake/connect timeout".into());
                }
                _ = ping.tick() => {
                    if ping_timeout > Duration::ZERO && last_rx.elapsed() > ping_timeout {
                        break Err(format!("no data for {} s (ping timeout)", ping_timeout.as_secs()));
                    }
                    if rtmp.ping != 0 && self.session.handshake_done() {
                        self.session.ping(started.elapsed().as_millis() as u32);
                        if let (true, Some(dv)) = (self.grouped, self.direct.as_ref()) {
                            // The group writes the ping before its next batch.
                            if let Some(b) = self.session.take_output() {
                                if !dv.queue_control(b.clone()) {
                                    batch.push(b);
                                }
                            }
                        }
                    }
                }
            }
        };
        if let Some(dv) = self.direct.take() {
            // Nothing more of this connection's may be written by a group.
            dv.close();
        }
        r
    }

    /// Whether the player may be written to by the stream's fan-out.
    fn direct_eligible(&self) -> bool {
        self.player.as_ref().is_some_and(|p| {
            p.can_go_direct()
                && self.session.encoder().chunk_size() == self.ctx.config.rtmp.chunk_size
        })
    }

    /// Hands the player's media to the stream's fan-out if it is eligible and caught up.
    fn go_direct(&mut self) {
        if !self.direct_eligible() {
            return;
        }
        if self.direct.is_none() {
            let Some(fd) = self.nodelay.take() else {
                return;
            };
            self.direct = Some(DirectViewer::new(fd, Framing::Rtmp, (*self.info).clone()));
        }
        let (Some(player), Some(dv)) = (self.player.as_mut(), self.direct.as_ref()) else {
            return;
        };
        self.grouped = player.sub.go_direct(dv);
    }

    /// Takes the player back from the fan-out: what the group left unwritten goes first, then
    /// what the reason calls for; its own subscription delivers again.
    fn take_back(&mut self, batch: &mut Vec<Bytes>) -> Result<(), String> {
        self.grouped = false;
        let Some(dv) = self.direct.as_ref() else {
            return Ok(());
        };
        let (rest, reason) = dv.reclaim();
        batch.extend(rest);
        let Some(player) = self.player.as_mut() else {
            return Ok(());
        };
        match &reason {
            Some(HandBack::Failed(e)) => return Err(e.clone()),
            Some(HandBack::Publish) => {
                self.session.publish_notify(player.stream_id, &player.name);
                batch.extend(self.session.take_output());
            }
            Some(HandBack::Unpublish) => {
                self.session
                    .unpublish_notify(player.stream_id, &player.name);
                batch.extend(self.session.take_output());
            }
            _ => {}
        }
        // The subscription takes over once that is written: a receiver made now would hold on
        // to the ring's entries for as long as a stalled peer takes to read.
        self.resume = Some(HandBack::resends_config(reason.as_ref()));
        Ok(())
    }

    /// How much to read at a time: a publisher a lot, a player very little.
    fn read_step(&self) -> usize {
        if self.publishing.is_some() {
            READ_LARGE
        } else if self.player.is_some() {
            READ_PLAYER
        } else {
            READ_SMALL
        }
    }

    /// Writes `batch` (emptied either way) and counts what left.
    async fn write(
        &self,
        wr: &mut WriteHalf<impl AsyncWrite>,
        batch: &mut Vec<Bytes>,
        limit: Duration,
    ) -> Result<(), String> {
        let total: usize = batch.iter().map(Bytes::len).sum();
        let r = write_all_timed(wr, batch, limit).await;
        batch.clear();
        r.map_err(|e| e.to_string())?;
        self.info.add_out(total);
        Ok(())
    }

    async fn handle_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            if self.closing.is_some() {
                // Refused: nothing this client sent after that counts.
                continue;
            }
            self.handle_event(event).await;
        }
    }

    async fn handle_event(&mut self, event: ServerEvent) {
        match event {
            ServerEvent::Connect {
                app, tc_url, query, ..
            } => self.connect(app, tc_url, query).await,
            ServerEvent::Publish {
                stream_id,
                name,
                query,
                ..
            } => self.publish(stream_id, name, &query).await,
            ServerEvent::Play {
                stream_id,
                name,
                query,
                reset,
                ..
            } => self.play(stream_id, name, &query, reset).await,
            ServerEvent::Unpublish { stream_id } => {
                if self
                    .publishing
                    .as_ref()
                    .is_some_and(|(sid, _)| *sid == stream_id)
                {
                    if let Some((_, p)) = self.publishing.take() {
                        tracing::info!(parent: &self.span, stream = %p.publisher.stream().path(), "unpublish");
                    }
                }
            }
            ServerEvent::StopPlay { stream_id } => {
                if self
                    .player
                    .as_ref()
                    .is_some_and(|p| p.stream_id == stream_id)
                {
                    self.player = None;
                }
            }
            ServerEvent::Media {
                kind,
                stream_id,
                timestamp,
                payload,
            } => {
                let kind = match kind {
                    MediaKind::Audio => FrameKind::Audio,
                    MediaKind::Video => FrameKind::Video,
                };
                self.push(stream_id, kind, timestamp, payload);
            }
            ServerEvent::Metadata {
                stream_id,
                timestamp,
                payload,
            } => self.push(stream_id, FrameKind::Metadata, timestamp, payload),
            ServerEvent::Pause {
                stream_id, pause, ..
            } => {
                if let Some(p) = self.player.as_mut().filter(|p| p.stream_id == stream_id) {
                    p.set_paused(pause);
                }
            }
            ServerEvent::ReceiveAudio { stream_id, enabled } => {
                if let Some(p) = self.player.as_mut().filter(|p| p.stream_id == stream_id) {
                    p.audio = enabled;
                }
            }
            ServerEvent::ReceiveVideo { stream_id, enabled } => {
                if let Some(p) = self.player.as_mut().filter(|p| p.stream_id == stream_id) {
                    p.video = enabled;
                }
            }
            ServerEvent::PingResponse(_) => {}
        }
    }

    async fn connect(&mut self, app: String, tc_url: Option<String>, query: String) {
        if app.is_empty() {
            self.session
                .reject_connect("an application name is required");
            self.refuse("connect without app".into());
            return;
        }
        let ctx = self.ctx.clone();
        match ctx.gate().admit_connect(&self.info, &app, &query).await {
            Ok(admission) => {
                tracing::info!(parent: &self.span, %app, tc_url = tc_url.as_deref().unwrap_or(""), "rtmp connect");
                self.session.accept_connect(0.0);
                self.label = format!("connected to app {app}");
                self.connected = Some(admission);
                self.connect_query = query;
                self.app = Some(app);
            }
            Err(r) => {
                self.session.reject_connect("connection rejected");
                self.refuse(r.to_string());
            }
        }
    }

    async fn publish(&mut self, stream_id: u32, name: String, query: &str) {
        let Some(app) = self.app.clone() else { return };
        if name.is_empty()
            || name.contains('/')
            || self.publishing.is_some()
            || self.player.is_some()
        {
            self.session.reject_publish(
                stream_id,
                "NetStream.Publish.BadName",
                "invalid stream name",
            );
            self.refuse(format!("bad publish name {name:?}"));
            return;
        }
        let ctx = self.ctx.clone();
        let queries = [query, self.connect_query.as_str()];
        match ctx
            .gate()
            .admit_publish(&self.info, &app, &name, &queries)
            .await
        {
            Ok(p) => {
                self.nodelay.release();
                let path = p.publisher.stream().path();
                tracing::info!(parent: &self.span, stream = %path, "publish start");
                self.session.accept_publish(stream_id, &name);
                self.label = format!("publisher of {path}");
                self.publishing = Some((stream_id, p));
            }
            Err(r) => {
                let (code, text) = match &r {
                    Refusal::Busy(_) => ("NetStream.Publish.BadName", "Stream already publishing"),
                    Refusal::Sign(_) => ("NetStream.Publish.Unauthorized", "unauthorized"),
                    _ => ("NetStream.Publish.Unauthorized", "rejected"),
                };
                if matches!(r, Refusal::Busy(_)) {
                    tracing::warn!(parent: &self.span, error = %r, "publish refused");
                }
                self.session.reject_publish(stream_id, code, text);
                self.refuse(format!("publish of /{app}/{name} refused: {r}"));
            }
        }
    }

    async fn play(&mut self, stream_id: u32, name: String, query: &str, reset: bool) {
        let Some(app) = self.app.clone() else { return };
        if name.is_empty() || self.player.is_some() || self.publishing.is_some() {
            self.session.reject_play(
                stream_id,
                "NetStream.Play.StreamNotFound",
                "invalid stream name",
            );
            self.refuse(format!("bad play name {name:?}"));
            return;
        }
        let ctx = self.ctx.clone();
        let queries = [query, self.connect_query.as_str()];
        match ctx
            .gate()
            .admit_play(&self.info, &app, &name, &queries)
            .await
        {
            Ok(playing) => {
                let path = playing.sub.stream().path();
                tracing::info!(parent: &self.span, stream = %path, live = playing.sub.stream().is_live(), "play start");
                self.session.accept_play(stream_id, &name, reset);
                self.label = format!("player of {path}");
                self.player = Some(Player::new(stream_id, name, playing));
            }
            Err(r) => {
                let (code, text) = match &r {
                    Refusal::NotFound(_) => ("NetStream.Play.StreamNotFound", "stream not found"),
                    Refusal::Sign(_) => ("NetStream.Play.Failed", "unauthorized"),
                    _ => ("NetStream.Play.Failed", "rejected"),
                };
                self.session.reject_play(stream_id, code, text);
                self.refuse(format!("play of /{app}/{name} refused: {r}"));
            }
        }
    }

    /// Closes the connection after the refusal already queued has been sent.
    fn refuse(&mut self, reason: String) {
        self.ctx
            .sessions
            .counters
            .refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.closing = Some(reason);
    }

    fn push(&mut self, stream_id: u32, kind: FrameKind, timestamp: u32, payload: Bytes) {
        let Some((sid, publisher)) = &self.publishing else {
            return;
        };
        if *sid != stream_id {
            return;
        }
        // Empty media messages (some encoders send them as keep-alives) carry nothing to forward.
        let Ok(frame) = Frame::from_flv_body(kind, timestamp, payload) else {
            return;
        };
        if !publisher.publisher.push(frame) {
            self.closing = Some("stream taken over by another publisher".into());
        }
    }
}

fn viewer_end(e: ViewerEnd) -> String {
    match e {
        ViewerEnd::TooSlow => "viewer too slow: kept falling behind".into(),
        ViewerEnd::Closed => "stream closed".into(),
    }
}

async fn next_batch(player: Option<&mut Player>, out: &mut Vec<Packet>) -> Result<(), ViewerEnd> {
    match player {
        Some(p) => p.sub.next_batch(MAX_BATCH, out).await,
        None => std::future::pending().await,
    }
}

async fn read_some(
    rd: &mut ReadHalf<impl AsyncRead>,
    buf: &mut BytesMut,
    step: usize,
) -> std::io::Result<usize> {
    if buf.is_empty() && buf.capacity() > 4 * step {
        // A player past its handshake gives the handshake-sized buffer back.
        *buf = BytesMut::with_capacity(step);
    } else if buf.capacity() - buf.len() < step / 4 {
        buf.reserve(step);
    }
    rd.read_buf(buf).await
}
