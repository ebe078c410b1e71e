//! Relays, natively (no ffmpeg per relay): streams pulled from other servers, cameras and files,
//! and streams pushed to other servers.
//!
//! - **static** (`[[relay.tasks]] mode = "static"`, and `POST /api/relay/pull`): a source kept
//!   alive from start-up (or creation) until it is deleted, published here as `app/name`.
//! - **pull** (`mode = "pull"`): a play of a stream of `app` that nobody publishes here starts one
//!   upstream play of it, shared by every viewer, and stopped `relay.idle_timeout` after the last
//!   viewer left (see [`Relays::demand`]).
//! - **push** (`mode = "push"`, and `POST /api/relay/push`): a stream published here is sent to
//!   another server while it lives.
//!
//! Every relay is a task with a [`Relay`] entry: its state, restarts, last error and byte count are
//! what the API and the metrics show. A relay publishes through the same gate as any publisher
//! (hooks, outputs, stats), as a session whose protocol marks it internal; a lost upstream or
//! target is retried with [`backoff`] while somebody needs it.

pub mod backoff;
pub mod child;
pub mod file;
mod pull;
mod push;
mod retry;
pub mod rtsp;
pub mod rtsp_frames;
mod source;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::{RelayMode, RtspTransport, SourceKind};
use crate::server::Context;

pub use source::Source;

/// What a relay is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RelayState {
    Connecting,
    Live,
    BackingOff,
    Stopped,
}

impl RelayState {
    pub fn as_str(self) -> &'static str {
        match self {
            RelayState::Connecting => "connecting",
            RelayState::Live => "live",
            RelayState::BackingOff => "backing_off",
            RelayState::Stopped => "stopped",
        }
    }

    pub const ALL: [RelayState; 4] = [
        RelayState::Connecting,
        RelayState::Live,
        RelayState::BackingOff,
        RelayState::Stopped,
    ];
}

#[derive(Debug)]
struct Status {
    state: RelayState,
    last_error: String,
    /// Unix ms when the current upstream/target connection went live (0: not live).
    started_at: u64,
}

/// One relay.
#[derive(Debug)]
pub struct Relay {
    /// 8 characters, `[A-Z0-9]`, as Node-Media-Server's.
    pub id: String,
    /// The local stream.
    pub app: String,
    pub name: String,
    pub mode: RelayMode,
    /// What it reads (Node-Media-Server's `inPath`): the source, or the local stream's URL.
    pub path: String,
    /// Where it goes (`ouPath`): the local stream's URL, or the target.
    pub url: String,
    /// Unix seconds of creation.
    pub ts: u64,
    status: Mutex<Status>,
    restarts: AtomicU64,
    bytes: AtomicU64,
    stop: CancellationToken,
}

/// A relay as the API shows it: Node-Media-Server's fields, then Rill's.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RelayView {
    pub app: String,
    pub name: String,
    pub path: String,
    pub url: String,
    pub mode: &'static str,
    pub ts: u64,
    pub id: String,
    pub state: &'static str,
    pub restarts: u64,
    pub last_error: String,
    pub bytes: u64,
    pub started_at: u64,
}

impl Relay {
    fn status(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state(&self) -> RelayState {
        self.status().state
    }

    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Moves to `state`, with one log line when it changes.
    fn set_state(&self, state: RelayState) {
        let mut s = self.status();
        if s.state == state {
            return;
        }
        s.state = state;
        s.started_at = if state == RelayState::Live {
            crate::outputs::now_ms()
        } else {
            0
        };
        let error = s.last_error.clone();
        drop(s);
        match state {
            RelayState::BackingOff => {
                tracing::warn!(relay = %self.id, mode = self.mode.as_str(), stream = %self.stream(), %error, "relay {}", state.as_str())
            }
            _ => {
                tracing::info!(relay = %self.id, mode = self.mode.as_str(), stream = %self.stream(), "relay {}", state.as_str())
            }
        }
    }

    fn failed(&self, error: String) {
        self.status().last_error = error;
    }

    fn add_bytes(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn stream(&self) -> String {
        format!("/{}/{}", self.app, self.name)
    }

    /// Stops the relay (its task ends within a moment).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    pub fn view(&self) -> RelayView {
        let s = self.status();
        RelayView {
            app: self.app.clone(),
            name: self.name.clone(),
            path: masked(&self.path),
            url: masked(&self.url),
            mode: self.mode.as_str(),
            ts: self.ts,
            id: self.id.clone(),
            state: s.state.as_str(),
            restarts: self.restarts(),
            last_error: s.last_error.clone(),
            bytes: self.bytes(),
            started_at: s.started_at,
        }
    }
}

/// Why a relay could not be created.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RelayError {
    #[error("{0}")]
    Invalid(String),
}

/// Every relay of the server.
#[derive(Debug, Default)]
pub struct Relays {
    map: Mutex<HashMap<String, Arc<Relay>>>,
    /// Until when a pulled stream counts as watched by HLS/DASH clients (by `app/name`): they
    /// are no subscribers, only requests now and then.
    hls_seen: Mutex<HashMap<String, Instant>>,
    counter: AtomicU64,
}

/// An HLS/DASH request keeps a pulled stream watched for this many target durations: a player
/// asks for the playlist at least once per target duration.
const HLS_LINGER_SEGMENTS: f64 = 3.0;

impl Relays {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Relay>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the configured static relays.
    pub fn start(ctx: &Arc<Context>) {
        for task in &ctx.config.relay.tasks {
            if task.mode != RelayMode::Static {
                continue;
            }
            let source = Source::parse(&task.edge, task.rtsp_transport);
            let Some(source) = source else { continue };
            if let Err(e) = Self::spawn_pull(ctx, &task.app, &task.name, source, RelayMode::Static)
            {
                tracing::warn!(app = %task.app, name = %task.name, error = %e, "static relay not started");
            }
        }
    }

    /// Every relay.
    pub fn list(&self) -> Vec<Arc<Relay>> {
        let mut v: Vec<_> = self.map().values().cloned().collect();
        v.sort_by_key(|r| (r.ts, r.id.clone()));
        v
    }

    pub fn get(&self, id: &str) -> Option<Arc<Relay>> {
        self.map().get(id).cloned()
    }

    /// Stops and forgets relay `id`; false if there is none.
    pub fn remove(&self, id: &str) -> bool {
        match self.map().remove(id) {
            Some(r) => {
                r.stop();
                true
            }
            None => false,
        }
    }

    /// Pulls `url` (RTMP, RTSP, a file) into `app/name`, kept alive until deleted.
    pub fn add_pull(
        ctx: &Arc<Context>,
        url: &str,
        app: &str,
        name: &str,
        transport: RtspTransport,
    ) -> Result<String, RelayError> {
        check_names(app, name)?;
        let source = Source::parse(url, transport).ok_or_else(|| {
            RelayError::Invalid(format!(
                "{} is not an rtmp://, rtmps://, rtsp:// URL or a file",
                masked(url)
            ))
        })?;
        if source.kind() == SourceKind::OtherFile && ctx.config.relay.ffmpeg_path().is_none() {
            return Err(RelayError::Invalid(
                "a non-FLV file needs ffmpeg: set relay.ffmpeg or put ffmpeg on PATH".into(),
            ));
        }
        Self::spawn_pull(ctx, app, name, source, RelayMode::Static)
    }

    /// Pushes the local `app/name` to `url` whenever it is published, until deleted.
    pub fn add_push(
        ctx: &Arc<Context>,
        app: &str,
        name: &str,
        url: &str,
    ) -> Result<String, RelayError> {
        check_names(app, name)?;
        crate::client::RtmpUrl::parse(url).map_err(|e| RelayError::Invalid(e.to_string()))?;
        Ok(Self::spawn_push(ctx, app, name, url, false))
    }

    /// A publish started in `app`: the app's push tasks send it on until it ends.
    pub fn on_publish(ctx: &Arc<Context>, app: &str, name: &str, query: &str) {
        for task in &ctx.config.relay.tasks {
            if task.mode == RelayMode::Push && task.app == app {
                let url = push_target(&task.edge, app, name, task.append_name, query);
                Self::spawn_push(ctx, app, name, &url, true);
            }
        }
    }

    /// A viewer wants `app/name`, which may not be published here: if a pull task covers the app,
    /// makes sure one upstream pull of it runs (a new one carries this viewer's `query` to the
    /// upstream) and returns true (the viewer waits for it).
    /// Called after the viewer subscribed, so a pull that is retiring either sees the viewer and
    /// stays, or is gone (its publish ended) before this looks — never in between; a stream
    /// published here by anyone else is left alone.
    pub fn demand(&self, ctx: &Arc<Context>, app: &str, name: &str, query: &str) -> bool {
        let Some(task) = ctx
            .config
            .relay
            .tasks
            .iter()
            .find(|t| t.mode == RelayMode::Pull && t.app == app)
        else {
            return false;
        };
        let mut map = self.map();
        let running = map
            .values()
            .any(|r| r.mode == RelayMode::Pull && r.app == app && r.name == name);
        if !running {
            if ctx.hub.stream(app, name).is_some_and(|s| s.is_live()) {
                // Published here by somebody else: nothing to pull.
                return false;
            }
            let mut url = pull_source(&task.edge, app, name);
            if !query.is_empty() {
                url.push('?');
                url.push_str(query);
            }
            let local = ctx.local_url(app, name);
            let relay = Self::entry(
                &mut map,
                ctx,
                app,
                name,
                RelayMode::Pull,
                url.clone(),
                local,
            );
            drop(map);
            tracing::info!(relay = %relay.id, stream = %relay.stream(), upstream = %masked(&url), "pull on play");
            let source = Source::Rtmp(url);
            ctx.tasks.spawn(pull::run(ctx.clone(), relay, source));
        }
        true
    }

    /// An HLS/DASH client asked for `app/name`'s files; for a pulled stream, also what
    /// [`Relays::demand`] does.
    pub fn touch(&self, ctx: &Arc<Context>, app: &str, name: &str, query: &str) -> bool {
        if !self.demand(ctx, app, name, query) {
            return false;
        }
        let target = ctx
            .config
            .trans
            .segmenting(app)
            .map_or(2.0, |t| t.settings().segment_duration);
        let linger = Duration::from_secs_f64((target * HLS_LINGER_SEGMENTS).clamp(1.0, 60.0));
        let now = Instant::now();
        let mut seen = self.hls_seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|_, until| *until > now);
        seen.insert(format!("{app}/{name}"), now + linger);
        true
    }

    fn hls_watched(&self, app: &str, name: &str) -> bool {
        let seen = self.hls_seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(&format!("{app}/{name}"))
            .is_some_and(|until| *until > Instant::now())
    }

    /// Retires the pull `relay` if nobody watches its stream: under the registry's lock, its
    /// publish ends (`publishing` is dropped) and it leaves the registry, so that a viewer's
    /// [`Relays::demand`] sees either this pull still serving or no pull at all.
    fn retire_if_unwatched<T>(
        &self,
        ctx: &Context,
        relay: &Relay,
        publishing: &mut Option<T>,
    ) -> bool {
        let mut map = self.map();
        let watched = ctx
            .hub
            .stream(&relay.app, &relay.name)
            .is_some_and(|s| s.viewer_count() > 0)
            || self.hls_watched(&relay.app, &relay.name);
        if watched {
            return false;
        }
        publishing.take();
        map.remove(&relay.id);
        true
    }

    fn spawn_pull(
        ctx: &Arc<Context>,
        app: &str,
        name: &str,
        source: Source,
        mode: RelayMode,
    ) -> Result<String, RelayError> {
        let relays = &ctx.relays;
        let local = ctx.local_url(app, name);
        let relay = Self::entry(
            &mut relays.map(),
            ctx,
            app,
            name,
            mode,
            source.url().to_owned(),
            local,
        );
        let id = relay.id.clone();
        ctx.tasks.spawn(pull::run(ctx.clone(), relay, source));
        Ok(id)
    }

    fn spawn_push(
        ctx: &Arc<Context>,
        app: &str,
        name: &str,
        url: &str,
        until_unpublish: bool,
    ) -> String {
        let relays = &ctx.relays;
        let local = ctx.local_url(app, name);
        let relay = Self::entry(
            &mut relays.map(),
            ctx,
            app,
            name,
            RelayMode::Push,
            local,
            url.to_owned(),
        );
        let id = relay.id.clone();
        tracing::info!(relay = %id, stream = %relay.stream(), target = %masked(url), "push started");
        ctx.tasks.spawn(push::run(
            ctx.clone(),
            relay,
            url.to_owned(),
            until_unpublish,
        ));
        id
    }

    /// A new entry with a fresh id, registered, reading `path` and writing `url`.
    fn entry(
        map: &mut HashMap<String, Arc<Relay>>,
        ctx: &Context,
        app: &str,
        name: &str,
        mode: RelayMode,
        path: String,
        url: String,
    ) -> Arc<Relay> {
        let relay = Arc::new(Relay {
            id: ctx.relays.new_id(map),
            app: app.to_owned(),
            name: name.to_owned(),
            mode,
            path,
            url,
            ts: crate::outputs::now_ms() / 1000,
            status: Mutex::new(Status {
                state: RelayState::Connecting,
                last_error: String::new(),
                started_at: 0,
            }),
            restarts: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            stop: ctx.shutdown.child_token(),
        });
        map.insert(relay.id.clone(), relay.clone());
        relay
    }

    /// An id no relay has: 8 characters of `[A-Z0-9]`, from a counter and the clock mixed so
    /// that ids do not look sequential.
    fn new_id(&self, taken: &HashMap<String, Arc<Relay>>) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        loop {
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let mut x = (crate::outputs::now_ms() ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
                .wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let mut id = String::with_capacity(8);
            for _ in 0..8 {
                id.push(ALPHABET[(x % 36) as usize] as char);
                x /= 36;
                x ^= x.rotate_left(29).wrapping_mul(0x94D0_49BB_1331_11EB);
            }
            if !taken.contains_key(&id) {
                return id;
            }
        }
    }
}

fn check_names(app: &str, name: &str) -> Result<(), RelayError> {
    let ok = |s: &str| !s.is_empty() && !s.contains('/') && !s.contains('?');
    if ok(app) && ok(name) {
        Ok(())
    } else {
        Err(RelayError::Invalid(format!(
            "bad app/name {app:?}/{name:?}"
        )))
    }
}

/// Whether `rtmp[s]://host[:port]/app…` names an app (Node-Media-Server's test for whether the
/// stream name is appended, or app and name).
fn has_app(edge: &str) -> bool {
    let rest = edge.split_once("://").map_or(edge, |(_, r)| r);
    rest.split_once('/')
        .is_some_and(|(_, path)| !path.trim_matches('/').is_empty())
}

/// The upstream of a pulled `app/name`: `edge/name` when `edge` names an app, `edge/app/name`
/// otherwise.
pub fn pull_source(edge: &str, app: &str, name: &str) -> String {
    let base = edge.trim_end_matches('/');
    if has_app(edge) {
        format!("{base}/{name}")
    } else {
        format!("{base}/{app}/{name}")
    }
}

/// The target of a pushed `app/name`, as Node-Media-Server composes it, with the publish's query.
pub fn push_target(edge: &str, app: &str, name: &str, append_name: bool, query: &str) -> String {
    let base = edge.trim_end_matches('/');
    let mut url = match (has_app(edge), append_name) {
        (true, true) => format!("{base}/{name}"),
        (true, false) => base.to_owned(),
        (false, _) => format!("{base}/{app}/{name}"),
    };
    if !query.is_empty() {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// `url` with the password of its user info and its query hidden: for the API and logs.
pub fn masked(url: &str) -> String {
    let url = crate::client::redact(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        return url;
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url;
    };
    let user = userinfo.split(':').next().unwrap_or("");
    let slash = if rest.contains('/') { "/" } else { "" };
    format!("{scheme}://{user}:***@{host}{slash}{path}")
}

impl Context {
    /// `rtmp://127.0.0.1:PORT/app/name`: the local stream's URL, as Node-Media-Server shows it.
    pub fn local_url(&self, app: &str, name: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{app}/{name}", self.rtmp_addr.port())
    }

    /// Whether `host:port` is this server's RTMP listener: a relay to it would come back here.
    pub async fn is_own_rtmp(&self, host: &str, port: u16) -> bool {
        if port != self.rtmp_addr.port() {
            return false;
        }
        let Ok(addrs) = tokio::net::lookup_host((host, port)).await else {
            return false;
        };
        let own = self.rtmp_addr.ip();
        addrs.map(|a: SocketAddr| a.ip()).any(|ip: IpAddr| {
            ip.is_loopback()
                || ip.is_unspecified()
                || ip == own
                || own.is_unspecified() && is_local(ip)
        })
    }
}

/// Whether `ip` is one of this machine's addresses (a listener on 0.0.0.0 answers on all).
fn is_local(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_composed_as_node_media_server_does() {
        assert_eq!(
            pull_source("rtmp://o:1935", "live", "s"),
            "rtmp://o:1935/live/s"
        );
        assert_eq!(
            pull_source("rtmp://o:1935/", "live", "s"),
            "rtmp://o:1935/live/s"
        );
        assert_eq!(pull_source("rtmp://o/src", "live", "s"), "rtmp://o/src/s");
        assert_eq!(
            push_target("rtmp://t", "live", "s", true, ""),
            "rtmp://t/live/s"
        );
        assert_eq!(
            push_target("rtmp://t/in", "live", "s", true, "k=1"),
            "rtmp://t/in/s?k=1"
        );
        assert_eq!(
            push_target("rtmp://t/in/key", "live", "s", false, ""),
            "rtmp://t/in/key"
        );
        assert_eq!(
            push_target("rtmp://t", "live", "s", false, ""),
            "rtmp://t/live/s"
        );
    }

    #[test]
    fn secrets_are_masked() {
        assert_eq!(
            masked("rtsp://admin:pw@cam:554/ch1"),
            "rtsp://admin:***@cam:554/ch1"
        );
        assert_eq!(masked("rtsp://admin@cam"), "rtsp://admin:***@cam");
        assert_eq!(masked("rtmp://h/a/b?sign=x"), "rtmp://h/a/b?…");
        assert_eq!(masked("/data/a.flv"), "/data/a.flv");
    }

    #[test]
    fn ids_are_eight_distinct_characters() {
        let r = Relays::default();
        let none = HashMap::new();
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| r.new_id(&none)).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(id.len(), 8);
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        }
    }
}
