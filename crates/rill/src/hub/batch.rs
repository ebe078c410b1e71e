//! Write batching for viewers: how long a viewer's packets may wait so that they leave in one
//! vectored write. The cost of delivery is the number of writes, not the bytes, so gathering a
//! little saves most of the CPU; the policy bounds what that costs in latency.

use std::time::Duration;

use rill_media::FrameKind;
use tokio::time::Instant;

use super::{Packet, Subscription, ViewerEnd};

/// When a viewer's gathered packets are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batching {
    /// As soon as anything is ready (whatever else is ready goes along).
    Frame,
    /// When a video frame (or a publish change) is in the batch, or `wait` after the first packet:
    /// audio rides along with the next picture.
    Coalesced { wait: Duration },
    /// Every `window` after the first packet.
    Merged { window: Duration },
}

fn flushes(p: &Packet) -> bool {
    match p {
        Packet::Frame(f) => f.frame.kind == FrameKind::Video,
        Packet::Publish | Packet::Unpublish => true,
    }
}

impl Subscription {
    /// The next batch of packets, at most `max`, gathered as `policy` says.
    ///
    /// Cancel-safe: packets gathered before a cancellation stay in the subscription and lead the
    /// next batch, with the batch's start time kept.
    pub async fn next_batch(
        &mut self,
        policy: Batching,
        max: usize,
    ) -> Result<Vec<Packet>, ViewerEnd> {
        if self.batch.is_empty() {
            let first = self.recv().await?;
            self.batch_started = Instant::now();
            self.batch.push(first);
        }
        loop {
            while self.batch.len() < max {
                match self.try_recv()? {
                    Some(p) => self.batch.push(p),
                    None => break,
                }
            }
            let deadline = match policy {
                _ if self.batch.len() >= max => break,
                Batching::Frame => break,
                Batching::Coalesced { .. } if self.batch.iter().any(flushes) => break,
                Batching::Coalesced { wait } => self.batch_started + wait,
                Batching::Merged { window } => self.batch_started + window,
            };
            match tokio::time::timeout_at(deadline, self.recv()).await {
                Ok(Ok(p)) => self.batch.push(p),
                Ok(Err(e)) => return Err(e),
                Err(_) => break,
            }
        }
        Ok(std::mem::take(&mut self.batch))
    }
}
