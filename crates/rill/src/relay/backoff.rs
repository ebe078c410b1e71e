//! Reconnect delays: exponential with jitter, capped, and forgotten after a healthy run.
//!
//! Jitter spreads the reconnects of many relays that lost the same upstream at once (a restarted
//! origin), so they do not all knock at the same instant.

use std::time::{Duration, Instant};

/// First delay.
pub const FIRST: Duration = Duration::from_secs(1);
/// Longest delay.
pub const CAP: Duration = Duration::from_secs(30);
/// A connection that stayed up this long resets the delays.
pub const HEALTHY: Duration = Duration::from_secs(30);

/// The delays of one relay.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    connected_at: Option<Instant>,
    seed: u64,
}

impl Backoff {
    pub fn new(seed: u64) -> Self {
        Backoff {
            next: FIRST,
            connected_at: None,
            seed: seed | 1,
        }
    }

    /// The upstream is up: if it stays up for [`HEALTHY`], the next failure starts from [`FIRST`].
    pub fn connected(&mut self, now: Instant) {
        self.connected_at = Some(now);
    }

    /// The upstream failed (or could not be reached): how long to wait before trying again.
    pub fn failed(&mut self, now: Instant) -> Duration {
        if let Some(at) = self.connected_at.take() {
            if now.duration_since(at) >= HEALTHY {
                self.next = FIRST;
            }
        }
        let base = self.next;
        self.next = (self.next * 2).min(CAP);
        // ±20 %: enough to spread a crowd, small enough that the doubling still shows.
        let spread = base.as_millis() as u64 / 5;
        let r = self.random() % (2 * spread + 1);
        (base + Duration::from_millis(r)).saturating_sub(Duration::from_millis(spread))
    }

    /// xorshift64: jitter needs no cryptographic randomness.
    fn random(&mut self) -> u64 {
        let mut x = self.seed;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(d: Duration, base: u64) -> bool {
        let ms = d.as_millis() as u64;
        ms >= base * 4 / 5 && ms <= base * 6 / 5
    }

    #[test]
    fn doubles_to_the_cap_with_jitter() {
        let mut b = Backoff::new(7);
        let now = Instant::now();
        for base in [1000, 2000, 4000, 8000, 16000, 30000, 30000] {
            let d = b.failed(now);
            assert!(within(d, base), "{d:?} vs {base} ms");
        }
    }

    #[test]
    fn a_healthy_run_resets_and_a_short_one_does_not() {
        let mut b = Backoff::new(3);
        let t0 = Instant::now();
        for _ in 0..4 {
            b.failed(t0);
        }
        b.connected(t0);
        assert!(within(b.failed(t0 + Duration::from_secs(5)), 16000));
        b.connected(t0);
        assert!(within(b.failed(t0 + HEALTHY), 1000));
    }

    #[test]
    fn jitter_differs_between_relays() {
        let now = Instant::now();
        let delays: std::collections::HashSet<_> = (1..20)
            .map(|s| Backoff::new(s * 7919).failed(now))
            .collect();
        assert!(delays.len() > 5, "{delays:?}");
    }
}
