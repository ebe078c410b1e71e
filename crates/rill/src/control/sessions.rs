//! The registry of live sessions (every RTMP connection and every HTTP-FLV/WS-FLV viewer): who is
//! connected, over what, doing what, with byte counters, and a token to end any of them by id.
//!
//! The REST API, the metrics and hooks read it; sessions register themselves and are removed when
//! their [`SessionGuard`] drops, so the registry cannot outlive a session.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// How a session talks to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    Rtmp,
    HttpFlv,
    WsFlv,
    /// The server's own relay (pull, push, file source): internal by what it is, never by its
    /// address.
    Relay,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::HttpFlv => "http-flv",
            Protocol::WsFlv => "ws-flv",
            Protocol::Relay => "relay",
        }
    }

    /// A session the server runs itself: trusted with its own configuration (no signature).
    pub fn is_internal(self) -> bool {
        self == Protocol::Relay
    }

    /// The name Node-Media-Server gives a subscriber's protocol in `/api/streams` (`rtmp`, `http`
    /// or `ws`), so dashboards written for it read Rill's answer unchanged.
    pub fn nms_name(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::HttpFlv => "http",
            Protocol::WsFlv => "ws",
            Protocol::Relay => "relay",
        }
    }
}

/// What a session does with a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Publisher,
    Player,
}

/// The stream a session is attached to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attachment {
    pub app: String,
    pub stream: String,
    pub role: Option<Role>,
    /// Query string of the connect/publish/play (for auth and hooks).
    pub query: String,
}

/// One session, shared between the session task and readers.
#[derive(Debug)]
pub struct SessionInfo {
    pub id: u64,
    pub protocol: Protocol,
    pub peer: SocketAddr,
    /// Unix time in milliseconds.
    pub created_ms: u64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Cancelled to end the session; also cancelled when the server shuts down.
    pub kick: CancellationToken,
    attachment: Mutex<Attachment>,
}

impl SessionInfo {
    pub fn attachment(&self) -> Attachment {
        self.attachment
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn attach(&self, app: &str, stream: &str, role: Option<Role>, query: &str) {
        *self.attachment.lock().unwrap_or_else(|p| p.into_inner()) = Attachment {
            app: app.to_owned(),
            stream: stream.to_owned(),
            role,
            query: query.to_owned(),
        };
    }

    pub fn add_in(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn add_out(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Server-wide connection counters.
#[derive(Debug, Default)]
pub struct SessionCounters {
    pub accepted: AtomicU64,
    /// Connections refused (limits, auth, bad names).
    pub refused: AtomicU64,
    /// Bytes of sessions that have ended (live sessions hold their own counters).
    pub closed_bytes_in: AtomicU64,
    pub closed_bytes_out: AtomicU64,
}

/// The registry.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<u64, Arc<SessionInfo>>>,
    next_id: AtomicU64,
    pub counters: SessionCounters,
    /// The server's shutdown: every session's `kick` is a child of it.
    shutdown: CancellationToken,
}

impl Sessions {
    /// A registry whose sessions are also kicked when `shutdown` is cancelled: a session then
    /// waits on its own token only (a shared token's waiter list is a lock every session would
    /// take on every poll).
    pub fn new(shutdown: CancellationToken) -> Self {
        Sessions {
            shutdown,
            ..Sessions::default()
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<SessionInfo>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new session; it is removed when the guard drops.
    pub fn register(self: &Arc<Self>, protocol: Protocol, peer: SocketAddr) -> SessionGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let created_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let info = Arc::new(SessionInfo {
            id,
            protocol,
            peer,
            created_ms,
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            kick: self.shutdown.child_token(),
            attachment: Mutex::new(Attachment::default()),
        });
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        self.map().insert(id, info.clone());
        SessionGuard {
            sessions: self.clone(),
            info,
        }
    }

    /// Every live session, by id.
    pub fn list(&self) -> Vec<Arc<SessionInfo>> {
        let mut v: Vec<_> = self.map().values().cloned().collect();
        v.sort_by_key(|s| s.id);
        v
    }

    pub fn get(&self, id: u64) -> Option<Arc<SessionInfo>> {
        self.map().get(&id).cloned()
    }

    /// Ends session `id`; false if there is none.
    pub fn kick(&self, id: u64) -> bool {
        match self.get(id) {
            Some(s) => {
                s.kick.cancel();
                true
            }
            None => false,
        }
    }

    /// Total bytes in and out, ended sessions included.
    pub fn total_bytes(&self) -> (u64, u64) {
        let c = &self.counters;
        let (mut i, mut o) = (
            c.closed_bytes_in.load(Ordering::Relaxed),
            c.closed_bytes_out.load(Ordering::Relaxed),
        );
        for s in self.map().values() {
            i += s.bytes_in.load(Ordering::Relaxed);
            o += s.bytes_out.load(Ordering::Relaxed);
        }
        (i, o)
    }
}

/// Keeps a session registered while alive.
#[derive(Debug)]
pub struct SessionGuard {
    sessions: Arc<Sessions>,
    info: Arc<SessionInfo>,
}

impl std::ops::Deref for SessionGuard {
    type Target = Arc<SessionInfo>;
    fn deref(&self) -> &Self::Target {
        &self.info
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let c = &self.sessions.counters;
        // Move the bytes to the closed totals under the map lock, so a concurrent total never
        // counts them twice or not at all.
        let mut map = self.sessions.map();
        map.remove(&self.info.id);
        c.closed_bytes_in.fetch_add(
            self.info.bytes_in.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        c.closed_bytes_out.fetch_add(
            self.info.bytes_out.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_list_kick_and_remove() {
        let s = Arc::new(Sessions::default());
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let a = s.register(Protocol::Rtmp, peer);
        let b = s.register(Protocol::HttpFlv, peer);
        a.attach("live", "cam", Some(Role::Publisher), "k=v");
        assert_eq!(s.list().len(), 2);
        assert_eq!(s.get(a.id).unwrap().attachment().stream, "cam");
        a.add_in(100);
        b.add_out(50);
        assert_eq!(s.total_bytes(), (100, 50));
        assert!(s.kick(b.id));
        assert!(b.kick.is_cancelled());
        drop(a);
        assert_eq!(s.list().len(), 1);
        assert_eq!(s.total_bytes(), (100, 50), "ended sessions still count");
        assert!(!s.kick(999));
        assert_eq!(s.counters.accepted.load(Ordering::Relaxed), 2);
    }
}
