//! Session events (Node-Media-Server's nine: pre/post/done × connect/publish/play) delivered to
//! Rust handlers registered on the server builder and to HTTP webhooks.
//!
//! Every event goes through a bounded queue sharded by session id and worked off in order, so the
//! events of one session reach handlers and webhooks in order. `pre*` events are awaited: any
//! handler or webhook may refuse the session; a handler that panics or does not answer within the
//! timeout refuses it too (fail closed), and neither can hurt the server. `post*`/`done*` events
//! are not awaited, so a slow receiver never slows media.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::sessions::Protocol;
use super::webhooks::Webhooks;
use crate::config::HooksConfig;

/// The nine events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub enum EventKind {
    PreConnect,
    PostConnect,
    DoneConnect,
    PrePublish,
    PostPublish,
    DonePublish,
    PrePlay,
    PostPlay,
    DonePlay,
    /// A recording file was finished (or stopped on an error); `path` names it.
    DoneRecord,
}

impl EventKind {
    pub const ALL: [EventKind; 10] = [
        EventKind::PreConnect,
        EventKind::PostConnect,
        EventKind::DoneConnect,
        EventKind::PrePublish,
        EventKind::PostPublish,
        EventKind::DonePublish,
        EventKind::PrePlay,
        EventKind::PostPlay,
        EventKind::DonePlay,
        EventKind::DoneRecord,
    ];

    /// The name used in webhook bodies and config (`prePublish`, ...).
    pub fn name(self) -> &'static str {
        match self {
            EventKind::PreConnect => "preConnect",
            EventKind::PostConnect => "postConnect",
            EventKind::DoneConnect => "doneConnect",
            EventKind::PrePublish => "prePublish",
            EventKind::PostPublish => "postPublish",
            EventKind::DonePublish => "donePublish",
            EventKind::PrePlay => "prePlay",
            EventKind::PostPlay => "postPlay",
            EventKind::DonePlay => "donePlay",
            EventKind::DoneRecord => "doneRecord",
        }
    }

    pub fn is_pre(self) -> bool {
        matches!(
            self,
            EventKind::PreConnect | EventKind::PrePublish | EventKind::PrePlay
        )
    }
}

/// One event about one session.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    pub event: EventKind,
    /// Session id (as in the API; kick it with `ServerHandle::kick`).
    pub id: u64,
    pub app: String,
    /// Empty for connect events.
    pub stream: String,
    /// Query arguments (`?sign=...&token=...`), decoded into pairs.
    pub args: BTreeMap<String, String>,
    pub ip: String,
    pub protocol: Protocol,
    /// Unix time in milliseconds.
    pub time: u64,
    /// The file, for `doneRecord`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What went wrong, for a `doneRecord` that stopped on an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Event {
    pub fn new(
        event: EventKind,
        id: u64,
        app: &str,
        stream: &str,
        query: &str,
        ip: &str,
        protocol: Protocol,
    ) -> Self {
        let args = query
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect();
        Event {
            event,
            id,
            app: app.to_owned(),
            stream: stream.to_owned(),
            args,
            ip: ip.to_owned(),
            protocol,
            time: now_ms(),
            path: None,
            error: None,
        }
    }

    /// The same session and stream, as another event, now.
    pub fn as_kind(&self, event: EventKind) -> Event {
        Event {
            event,
            time: now_ms(),
            ..self.clone()
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Why a `pre*` handler refused a session (logged; never sent to the client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rejection(pub String);

impl Rejection {
    pub fn new(reason: impl Into<String>) -> Self {
        Rejection(reason.into())
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A handler: `pre*` handlers' `Err` refuses the session; other events ignore the result.
pub type Handler = Arc<dyn Fn(Event) -> BoxFuture<Result<(), Rejection>> + Send + Sync>;

/// Wraps an async closure as a [`Handler`].
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Rejection>> + Send + 'static,
{
    Arc::new(move |e| Box::pin(f(e)))
}

/// Handlers registered by an embedding program, per event.
#[derive(Clone, Default)]
pub struct HandlerSet {
    handlers: BTreeMap<EventKind, Vec<Handler>>,
}

impl std::fmt::Debug for HandlerSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let counts: BTreeMap<_, _> = self
            .handlers
            .iter()
            .map(|(k, v)| (k.name(), v.len()))
            .collect();
        f.debug_struct("HandlerSet")
            .field("handlers", &counts)
            .finish()
    }
}

impl HandlerSet {
    pub fn add(&mut self, kind: EventKind, h: Handler) {
        self.handlers.entry(kind).or_default().push(h);
    }

    fn get(&self, kind: EventKind) -> &[Handler] {
        self.handlers
            .get(&kind)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// Shards of the event queue (events of one session always land in the same shard, in order).
const SHARDS: usize = 16;

/// Work for a shard: a `post*`/`done*` to deliver, or a `pre*` whose answer someone awaits.
enum Job {
    Notify(Event),
    Pre(Event, oneshot::Sender<Result<(), Rejection>>),
}

/// The event dispatcher the sessions call.
#[derive(Debug)]
pub struct Hooks {
    handlers: Arc<HandlerSet>,
    webhooks: Arc<Webhooks>,
    timeout: Duration,
    queues: Vec<mpsc::Sender<Job>>,
    /// post/done events dropped because the queue was full.
    pub dropped: AtomicU64,
}

impl Hooks {
    /// Builds the dispatcher and starts its queue workers (they end when `Hooks` is dropped).
    pub fn new(handlers: HandlerSet, config: &HooksConfig) -> Arc<Hooks> {
        let handlers = Arc::new(handlers);
        let webhooks = Arc::new(Webhooks::new(config));
        let timeout = Duration::from_millis(config.timeout_ms);
        let per_shard = (config.queue / SHARDS).max(1);
        let mut queues = Vec::with_capacity(SHARDS);
        for _ in 0..SHARDS {
            let (tx, mut rx) = mpsc::channel::<Job>(per_shard);
            let (h, w) = (handlers.clone(), webhooks.clone());
            tokio::spawn(async move {
                while let Some(job) = rx.recv().await {
                    match job {
                        // Results of post/done handlers are not used; each is bounded by the timeout.
                        Job::Notify(event) => {
                            let _ = run_handlers(&h, &w, &event, timeout).await;
                        }
                        Job::Pre(event, answer) => {
                            let _ = answer.send(run_handlers(&h, &w, &event, timeout).await);
                        }
                    }
                }
            });
            queues.push(tx);
        }
        Arc::new(Hooks {
            handlers,
            webhooks,
            timeout,
            queues,
            dropped: AtomicU64::new(0),
        })
    }

    /// True when nobody listens to `kind` (lets sessions skip building events).
    pub fn is_idle(&self, kind: EventKind) -> bool {
        self.handlers.get(kind).is_empty() && !self.webhooks.has(kind)
    }

    /// Runs a `pre*` event: every handler, then every webhook; the first refusal wins. It goes
    /// through the session's queue shard, after the session's earlier events, so a receiver sees
    /// one session's events in order. A queue too busy to answer in time refuses the session.
    pub async fn pre(&self, event: &Event) -> Result<(), Rejection> {
        if self.is_idle(event.event) {
            return Ok(());
        }
        let Some(queue) = self.queues.get(self.shard(event.id)) else {
            return run_handlers(&self.handlers, &self.webhooks, event, self.timeout).await;
        };
        let (tx, rx) = oneshot::channel();
        let asked = async {
            queue
                .send(Job::Pre(event.clone(), tx))
                .await
                .map_err(|_| Rejection::new("event queue closed"))?;
            rx.await.map_err(|_| Rejection::new("event queue closed"))?
        };
        // The handlers have their own timeout; this bounds the wait in the queue before them.
        match tokio::time::timeout(self.timeout * 2, asked).await {
            Ok(r) => r,
            Err(_) => Err(Rejection::new(format!(
                "{} not answered in time (event queue busy)",
                event.event.name()
            ))),
        }
    }

    fn shard(&self, id: u64) -> usize {
        (id as usize) % self.queues.len().max(1)
    }

    /// Queues a `post*`/`done*` event; never waits.
    pub fn notify(&self, event: Event) {
        if self.is_idle(event.event) {
            return;
        }
        if let Some(q) = self.queues.get(self.shard(event.id)) {
            if q.try_send(Job::Notify(event)).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("event queue full: an event was dropped");
            }
        }
    }
}

async fn run_handlers(
    handlers: &HandlerSet,
    webhooks: &Webhooks,
    event: &Event,
    timeout: Duration,
) -> Result<(), Rejection> {
    for h in handlers.get(event.event) {
        // Each handler runs in its own task, so a panic is caught as a JoinError.
        let task = tokio::spawn(h(event.clone()));
        let abort = task.abort_handle();
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(r))) => return Err(r),
            Ok(Err(_)) => {
                return Err(Rejection::new(format!(
                    "{} handler panicked",
                    event.event.name()
                )))
            }
            Err(_) => {
                abort.abort();
                return Err(Rejection::new(format!(
                    "{} handler timed out",
                    event.event.name()
                )));
            }
        }
    }
    webhooks.call(event, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind) -> Event {
        Event::new(
            kind,
            7,
            "live",
            "cam",
            "sign=1-x&token=abc&flag",
            "127.0.0.1",
            Protocol::Rtmp,
        )
    }

    #[test]
    fn args_are_split() {
        let e = ev(EventKind::PrePublish);
        assert_eq!(e.args.get("token").map(String::as_str), Some("abc"));
        assert_eq!(e.args.get("flag").map(String::as_str), Some(""));
        assert_eq!(
            e.as_kind(EventKind::PostPublish).event,
            EventKind::PostPublish
        );
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["event"], "prePublish");
        assert_eq!(json["protocol"], "rtmp");
    }

    #[tokio::test]
    async fn pre_handlers_refuse_panic_and_hang_safely() {
        let mut set = HandlerSet::default();
        set.add(
            EventKind::PrePublish,
            handler(|e: Event| async move {
                if e.stream == "cam" {
                    Ok(())
                } else {
                    Err(Rejection::new("not allowed"))
                }
            }),
        );
        set.add(
            EventKind::PrePlay,
            handler(|_e: Event| async move { panic!("boom") }),
        );
        set.add(
            EventKind::PreConnect,
            handler(|_e: Event| async move {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(())
            }),
        );
        let config = HooksConfig {
            timeout_ms: 200,
            ..HooksConfig::default()
        };
        let hooks = Hooks::new(set, &config);
        assert_eq!(hooks.pre(&ev(EventKind::PrePublish)).await, Ok(()));
        let mut other = ev(EventKind::PrePublish);
        other.stream = "x".into();
        assert_eq!(hooks.pre(&other).await, Err(Rejection::new("not allowed")));
        assert!(hooks
            .pre(&ev(EventKind::PrePlay))
            .await
            .unwrap_err()
            .0
            .contains("panicked"));
        assert!(hooks
            .pre(&ev(EventKind::PreConnect))
            .await
            .unwrap_err()
            .0
            .contains("timed out"));
    }

    #[tokio::test]
    async fn post_and_done_run_in_order_per_session() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut set = HandlerSet::default();
        for kind in [EventKind::PostPublish, EventKind::DonePublish] {
            let seen = seen.clone();
            set.add(
                kind,
                handler(move |e: Event| {
                    let seen = seen.clone();
                    async move {
                        if e.event == EventKind::PostPublish {
                            // A slow first handler must not let the done event overtake it.
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        seen.lock().unwrap().push(e.event);
                        Ok(())
                    }
                }),
            );
        }
        let hooks = Hooks::new(set, &HooksConfig::default());
        hooks.notify(ev(EventKind::PostPublish));
        hooks.notify(ev(EventKind::DonePublish));
        for _ in 0..50 {
            if seen.lock().unwrap().len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            *seen.lock().unwrap(),
            vec![EventKind::PostPublish, EventKind::DonePublish]
        );
    }
}
