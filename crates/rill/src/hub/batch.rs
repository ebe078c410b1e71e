//! Write batching for viewers. The cost of delivery is the number of writes, not the bytes, so
//! gathering a little saves most of the CPU; the policy bounds what that costs in latency.
//!
//! The policy is applied once per stream (the stream holds frames back and releases them as one
//! ring entry, see `stream.rs`), so a viewer simply takes everything that is ready when it wakes.

use std::time::Duration;

use super::{Packet, Subscription, ViewerEnd};

/// When the frames of a stream leave for its viewers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batching {
    /// Each frame as soon as it arrives.
    Frame,
    /// With the next video frame (or a publish change), or `wait` after the first frame held back:
    /// audio rides along with the next picture.
    Coalesced { wait: Duration },
    /// Every `window` after the first frame held back.
    Merged { window: Duration },
}

impl Subscription {
    /// Waits for the next packet, then appends it and whatever else is ready (at most `max` in
    /// all) to `out`: one wake-up, one write.
    ///
    /// Cancel-safe: nothing is taken from the subscription before the first packet is there.
    pub async fn next_batch(&mut self, max: usize, out: &mut Vec<Packet>) -> Result<(), ViewerEnd> {
        let first = self.recv().await?;
        out.push(first);
        for _ in 1..max {
            match self.try_recv()? {
                Some(p) => out.push(p),
                None => break,
            }
        }
        Ok(())
    }
}
