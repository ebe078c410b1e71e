//! The one admission path: who may publish or play a stream, and what follows when they may.
//!
//! Every publisher (RTMP sessions, relay pulls, later transcoder outputs) and every viewer (RTMP,
//! HTTP-FLV, WS-FLV) comes in through [`Gate`]: the signature check, the `pre*` hooks, the hub,
//! the session's attachment, the `post*` hooks and, on publish, the outputs. What it hands back
//! are guards: dropping one leaves the hub and fires the matching `done*` hook, however the
//! session ended, so no caller can forget either.
//!
//! Sessions of the server's own relays are internal (their protocol says so, never their
//! address): they skip the signature check, which is for clients, but go through the hooks like
//! anyone, so an operator's `prePublish` sees relayed streams too.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::control::auth::{Action, SignError};
use crate::control::hooks::{Event, EventKind, Hooks};
use crate::control::sessions::{Protocol, Role, SessionGuard, SessionInfo};
use crate::hub::{PublishError, Publisher, Subscription};
use crate::server::Context;

/// How often a held viewer looks whether its pulled stream has started.
const DEMAND_POLL: Duration = Duration::from_millis(50);

/// Why the gate refused a publish or a play.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("signature: {0}")]
    Sign(SignError),
    #[error("{hook} refused: {reason}")]
    Hook { hook: &'static str, reason: String },
    #[error("{0}")]
    Busy(PublishError),
    /// A pulled stream that did not start within `relay.play_wait`.
    #[error("stream not found: {0}")]
    NotFound(String),
}

impl Refusal {
    /// The HTTP status of this refusal: 401 without a signature, 404 for a stream that never came,
    /// 403 otherwise.
    pub fn http_status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            Refusal::Sign(SignError::Missing) => StatusCode::UNAUTHORIZED,
            Refusal::NotFound(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::FORBIDDEN,
        }
    }
}

/// A `done*` event due when its guard drops.
#[derive(Debug)]
struct Done {
    hooks: Arc<Hooks>,
    event: Option<Event>,
}

impl Done {
    fn new(hooks: &Arc<Hooks>, event: Event) -> Self {
        Done {
            hooks: hooks.clone(),
            event: Some(event),
        }
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        if let Some(e) = self.event.take() {
            let kind = match e.event {
                EventKind::PrePublish => EventKind::DonePublish,
                EventKind::PrePlay => EventKind::DonePlay,
                _ => EventKind::DoneConnect,
            };
            self.hooks.notify(e.as_kind(kind));
        }
    }
}

/// What an admission leaves behind: the `done*` hooks (`donePlay` and, for protocols whose play
/// is also their connect, `doneConnect`; `donePublish`; `doneConnect`), fired when it drops. Keep
/// it beside the publisher or subscription it came with, declared after it, so the hub is left
/// before the hook says so.
#[derive(Debug)]
pub struct Admission {
    _done: Done,
    _connect: Option<Done>,
}

/// An admitted publisher.
#[derive(Debug)]
pub struct Publishing {
    pub publisher: Publisher,
    pub admission: Admission,
}

/// An admitted viewer.
#[derive(Debug)]
pub struct Playing {
    pub sub: Subscription,
    pub admission: Admission,
}

/// An HTTP-FLV/WS-FLV viewer the gate registered: its session and its place in the stream.
#[derive(Debug)]
pub struct Viewing {
    pub playing: Playing,
    pub session: SessionGuard,
}

/// The admission path of one server.
pub struct Gate<'a> {
    ctx: &'a Arc<Context>,
}

impl Context {
    /// The admission path (see [`Gate`]).
    pub fn gate(self: &Arc<Self>) -> Gate<'_> {
        Gate { ctx: self }
    }
}

impl Gate<'_> {
    fn event(kind: EventKind, s: &SessionInfo, app: &str, stream: &str, query: &str) -> Event {
        let ip = s.peer.ip().to_string();
        Event::new(kind, s.id, app, stream, query, &ip, s.protocol)
    }

    fn check_sign(
        &self,
        action: Action,
        s: &SessionInfo,
        app: &str,
        name: &str,
        queries: &[&str],
    ) -> Result<(), Refusal> {
        if s.protocol.is_internal() {
            return Ok(());
        }
        self.ctx
            .sign
            .check(action, app, name, queries)
            .map_err(Refusal::Sign)
    }

    async fn pre(&self, event: &Event) -> Result<(), Refusal> {
        self.ctx.hooks.pre(event).await.map_err(|r| Refusal::Hook {
            hook: event.event.name(),
            reason: r.to_string(),
        })
    }

    /// The signature (from the first of `queries` that has one), then the `pre*` hook `kind`
    /// with the first query, which it returns with the event.
    async fn signed_pre<'q>(
        &self,
        action: Action,
        kind: EventKind,
        s: &SessionInfo,
        app: &str,
        name: &str,
        queries: &[&'q str],
    ) -> Result<(&'q str, Event), Refusal> {
        self.check_sign(action, s, app, name, queries)?;
        let query = queries.first().copied().unwrap_or("");
        let event = Self::event(kind, s, app, name, query);
        self.pre(&event).await?;
        Ok((query, event))
    }

    /// The admission whose drop fires the `done*` hook of `event`.
    fn admission(&self, event: Event) -> Admission {
        Admission {
            _done: Done::new(&self.ctx.hooks, event),
            _connect: None,
        }
    }

    /// `preConnect`, then `postConnect`; `doneConnect` when the admission drops.
    pub async fn admit_connect(
        &self,
        s: &SessionInfo,
        app: &str,
        query: &str,
    ) -> Result<Admission, Refusal> {
        let event = Self::event(EventKind::PreConnect, s, app, "", query);
        self.pre(&event).await?;
        s.attach(app, "", None, query);
        self.ctx.hooks.notify(event.as_kind(EventKind::PostConnect));
        Ok(self.admission(event))
    }

    /// Signature (from the first of `queries` that has one), `prePublish`, the hub's publisher
    /// slot, the outputs of the app, `postPublish`; `donePublish` when the guard drops.
    pub async fn admit_publish(
        &self,
        s: &SessionInfo,
        app: &str,
        name: &str,
        queries: &[&str],
    ) -> Result<Publishing, Refusal> {
        let (query, event) = self
            .signed_pre(
                Action::Publish,
                EventKind::PrePublish,
                s,
                app,
                name,
                queries,
            )
            .await?;
        let publisher = self
            .ctx
            .hub
            .publish(app, name, s.id, s.kick.clone())
            .map_err(Refusal::Busy)?;
        // Registered as the publisher first: whoever sees the stream live finds it.
        s.attach(app, name, Some(Role::Publisher), query);
        crate::outputs::Outputs::on_publish(self.ctx, app, name);
        crate::relay::Relays::on_publish(self.ctx, app, name, query);
        self.ctx.hooks.notify(event.as_kind(EventKind::PostPublish));
        Ok(Publishing {
            publisher,
            admission: self.admission(event),
        })
    }

    /// Signature, `prePlay`, the subscription (waiting for a pulled stream to start, see
    /// [`crate::relay`]), `postPlay`; `donePlay` when the guard drops.
    pub async fn admit_play(
        &self,
        s: &SessionInfo,
        app: &str,
        name: &str,
        queries: &[&str],
    ) -> Result<Playing, Refusal> {
        let (query, event) = self
            .signed_pre(Action::Play, EventKind::PrePlay, s, app, name, queries)
            .await?;
        let sub = self.subscribe(app, name, query).await?;
        s.attach(app, name, Some(Role::Player), query);
        self.ctx.hooks.notify(event.as_kind(EventKind::PostPlay));
        Ok(Playing {
            sub,
            admission: self.admission(event),
        })
    }

    /// A viewer whose play is also its connect (HTTP-FLV, WS-FLV): the signature before anything
    /// else (a refused viewer is never registered), then the session, `preConnect` and `prePlay`,
    /// the subscription, `postConnect` and `postPlay`.
    pub async fn admit_viewer(
        &self,
        protocol: Protocol,
        peer: SocketAddr,
        app: &str,
        name: &str,
        query: &str,
    ) -> Result<Viewing, Refusal> {
        self.ctx
            .sign
            .check(Action::Play, app, name, &[query])
            .map_err(Refusal::Sign)?;
        let session = self.ctx.sessions.register(protocol, peer);
        let connect = Self::event(EventKind::PreConnect, &session, app, "", query);
        let play = Self::event(EventKind::PrePlay, &session, app, name, query);
        for e in [&connect, &play] {
            self.pre(e).await?;
        }
        let sub = self.subscribe(app, name, query).await?;
        session.attach(app, name, Some(Role::Player), query);
        let hooks = &self.ctx.hooks;
        hooks.notify(connect.as_kind(EventKind::PostConnect));
        hooks.notify(play.as_kind(EventKind::PostPlay));
        Ok(Viewing {
            playing: Playing {
                sub,
                admission: Admission {
                    _done: Done::new(hooks, play),
                    _connect: Some(Done::new(hooks, connect)),
                },
            },
            session,
        })
    }

    /// Subscribes; a stream that nobody publishes here but a pull relay can bring is started
    /// (with this viewer's query, where an upstream's `sign` or token rides) and waited for (up
    /// to `relay.play_wait`), so the viewer starts on a picture or gets a clean "not found".
    async fn subscribe(&self, app: &str, name: &str, query: &str) -> Result<Subscription, Refusal> {
        let sub = self.ctx.hub.subscribe(app, name);
        if !self.ctx.relays.demand(self.ctx, app, name, query) {
            return Ok(sub);
        }
        let limit = Duration::from_secs(self.ctx.config.relay.play_wait);
        let started = Instant::now();
        while !sub.stream().has_start() {
            if started.elapsed() >= limit || self.ctx.shutdown.is_cancelled() {
                return Err(Refusal::NotFound(format!(
                    "/{app}/{name} did not start within {} s",
                    limit.as_secs()
                )));
            }
            tokio::time::sleep(DEMAND_POLL).await;
        }
        Ok(sub)
    }
}
