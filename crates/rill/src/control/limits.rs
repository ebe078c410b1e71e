//! Connection limits per client address, so one host cannot take every slot of
//! `max_connections` (and with them every viewer's and publisher's chance to connect).
//!
//! One [`PerIp`] counts the open connections of each address on a port family (RTMP and RTMPS
//! share one, HTTP and HTTPS another); a connection holds a [`PerIpPermit`] for as long as it is
//! open, and dropping it gives the slot back. Addresses are counted in their canonical form, so an
//! IPv4 client seen through a dual-stack socket (`::ffff:a.b.c.d`) is the same client.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections per client address, up to a limit.
#[derive(Debug, Clone)]
pub struct PerIp {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection of an address; gives its slot back when dropped.
#[derive(Debug)]
pub struct PerIpPermit {
    inner: Arc<Inner>,
    ip: IpAddr,
}

impl PerIp {
    /// At most `limit` open connections per address.
    pub fn new(limit: usize) -> Self {
        PerIp {
            inner: Arc::new(Inner {
                limit,
                open: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// A slot for one more connection of `ip`, or `None` when it already has `limit` open.
    pub fn try_acquire(&self, ip: IpAddr) -> Option<PerIpPermit> {
        let ip = ip.to_canonical();
        let mut open = lock(&self.inner.open);
        let n = open.entry(ip).or_insert(0);
        if *n >= self.inner.limit {
            return None;
        }
        *n += 1;
        Some(PerIpPermit {
            inner: self.inner.clone(),
            ip,
        })
    }

    /// Open connections of `ip` (for tests and statistics).
    pub fn open(&self, ip: IpAddr) -> usize {
        lock(&self.inner.open)
            .get(&ip.to_canonical())
            .copied()
            .unwrap_or(0)
    }

    /// Addresses with at least one open connection.
    pub fn addresses(&self) -> usize {
        lock(&self.inner.open).len()
    }
}

/// Counts and logs (one line) a connection refused by `limit`, the per-address limit of config
/// key `key`.
pub fn refused(
    counters: &crate::control::sessions::SessionCounters,
    limit: &PerIp,
    peer: std::net::SocketAddr,
    what: &str,
    key: &str,
) {
    counters
        .refused
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(
        %peer,
        limit = limit.limit(),
        "{what} connection refused: {key} reached for this address"
    );
}

impl Drop for PerIpPermit {
    fn drop(&mut self) {
        let mut open = lock(&self.inner.open);
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            // Forget addresses with nothing open, so the map stays as small as the set of
            // connected clients and does not grow with every address ever seen.
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The map is only ever left consistent (each change is one statement), so a panic elsewhere
/// while it was held does not make it unusable.
fn lock(m: &Mutex<HashMap<IpAddr, usize>>) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn counts_each_address_up_to_the_limit() {
        let l = PerIp::new(2);
        let a1 = l.try_acquire(ip("192.0.2.1")).unwrap();
        let _a2 = l.try_acquire(ip("192.0.2.1")).unwrap();
        assert!(
            l.try_acquire(ip("192.0.2.1")).is_none(),
            "third of one address"
        );
        let _b = l
            .try_acquire(ip("192.0.2.2"))
            .expect("another address has its own slots");
        assert_eq!(l.open(ip("192.0.2.1")), 2);
        drop(a1);
        assert_eq!(l.open(ip("192.0.2.1")), 1);
        assert!(
            l.try_acquire(ip("192.0.2.1")).is_some(),
            "a closed connection gives its slot back"
        );
    }

    #[test]
    fn mapped_ipv4_is_the_same_client() {
        let l = PerIp::new(1);
        let _a = l.try_acquire(ip("192.0.2.1")).unwrap();
        assert!(l.try_acquire(ip("::ffff:192.0.2.1")).is_none());
        assert!(l.try_acquire(ip("2001:db8::1")).is_some());
    }

    #[test]
    fn addresses_with_nothing_open_are_forgotten() {
        let l = PerIp::new(3);
        let permits: Vec<_> = (1..=50)
            .map(|i| l.try_acquire(ip(&format!("198.51.100.{i}"))).unwrap())
            .collect();
        assert_eq!(l.addresses(), 50);
        drop(permits);
        assert_eq!(l.addresses(), 0);
    }
}
