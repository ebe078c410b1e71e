//! Socket helpers shared by the outputs.

use std::future::Future;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Most buffers handed to one `writev`.
const MAX_IOVECS: usize = 64;

/// Writes every buffer with vectored writes: the shared frame bytes go to the socket as they are,
/// without being copied into a per-viewer buffer.
pub async fn write_all_vectored<W: AsyncWrite + Unpin>(
    w: &mut W,
    bufs: &mut [Bytes],
) -> std::io::Result<()> {
    let mut i = 0;
    while i < bufs.len() {
        if bufs[i].is_empty() {
            i += 1;
            continue;
        }
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let mut count = 0;
        for (slot, b) in slices.iter_mut().zip(&bufs[i..]) {
            *slot = IoSlice::new(b);
            count += 1;
        }
        let mut n = w.write_vectored(&slices[..count]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 && i < bufs.len() {
            let len = bufs[i].len();
            if n >= len {
                n -= len;
                i += 1;
            } else {
                bufs[i].advance(n);
                n = 0;
            }
        }
    }
    Ok(())
}

/// A handle on a connection's TCP socket (a duplicate descriptor) for changing TCP_NODELAY after
/// the connection has been split into halves or wrapped in TLS, and for the stream fan-out to
/// write to. Given up when not needed, so a viewer holds one descriptor, not two, unless a group
/// of the fan-out writes to it.
#[derive(Debug, Default)]
pub struct NodelaySwitch(Option<std::net::TcpStream>);

impl NodelaySwitch {
    pub fn new(socket: &TcpStream) -> Self {
        use std::os::fd::AsFd;
        NodelaySwitch(
            socket
                .as_fd()
                .try_clone_to_owned()
                .ok()
                .map(std::net::TcpStream::from),
        )
    }

    /// Media is flowing: from now on the socket has TCP_NODELAY = `nodelay`. The descriptor is
    /// kept for [`NodelaySwitch::take`] if `keep`.
    pub fn media_started(&mut self, nodelay: bool, keep: bool) {
        if let Some(s) = &self.0 {
            if !nodelay {
                let _ = s.set_nodelay(false);
            }
        }
        if !keep {
            self.0 = None;
        }
    }

    /// The descriptor, for the fan-out.
    pub fn take(&mut self) -> Option<std::net::TcpStream> {
        self.0.take()
    }

    /// The connection will not play (a publisher): keep the socket as it is.
    pub fn release(&mut self) {
        self.0 = None;
    }
}

/// Why [`write_all_timed`] failed.
#[derive(Debug)]
pub enum WriteError {
    Io(std::io::Error),
    /// The peer did not take the bytes within the limit (it stopped reading).
    TimedOut,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Io(e) => write!(f, "write error: {e}"),
            WriteError::TimedOut => f.write_str("write timed out: peer stopped reading"),
        }
    }
}

/// [`write_all_vectored`] bounded by `limit`. A timer is armed only when the socket cannot take
/// everything at once: the common write to a healthy viewer costs no timer (arming and cancelling
/// one per write was a measurable share of delivery).
pub async fn write_all_timed<W: AsyncWrite + Unpin>(
    w: &mut W,
    bufs: &mut [Bytes],
    limit: Duration,
) -> Result<(), WriteError> {
    let mut write = pin!(write_all_vectored(w, bufs));
    let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
    let done = match first {
        Poll::Ready(r) => r,
        Poll::Pending => match tokio::time::timeout(limit, write).await {
            Ok(r) => r,
            Err(_) => return Err(WriteError::TimedOut),
        },
    };
    done.map_err(WriteError::Io)
}

/// The next accepted connection with Nagle off, or `None` once `shutdown` is cancelled. Accept
/// errors (running out of descriptors) pause briefly instead of ending the listener.
pub async fn accept(
    listener: &TcpListener,
    shutdown: &CancellationToken,
    what: &str,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => return None,
        };
        match accepted {
            Ok((socket, peer)) => {
                // Nagle would hold back small handshake and command replies by ~40 ms.
                let _ = socket.set_nodelay(true);
                return Some((socket, peer));
            }
            Err(e) => {
                tracing::warn!(error = %e, "{what} accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_everything_in_order_through_partial_writes() {
        let (mut a, mut b) = tokio::io::duplex(7);
        let mut bufs: Vec<Bytes> = (0..100u8)
            .map(|i| Bytes::from(vec![i; (i % 5) as usize]))
            .collect();
        let expected: Vec<u8> = bufs.iter().flat_map(|b| b.to_vec()).collect();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut b, &mut got)
                .await
                .unwrap();
            got
        });
        write_all_vectored(&mut a, &mut bufs).await.unwrap();
        drop(a);
        assert_eq!(reader.await.unwrap(), expected);
    }

    #[tokio::test]
    async fn timed_write_completes_when_the_peer_reads_and_times_out_when_it_does_not() {
        let (mut a, mut b) = tokio::io::duplex(16);
        let mut bufs = vec![Bytes::from_static(b"0123456789"); 8];
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut b, &mut got)
                .await
                .unwrap();
            got.len()
        });
        write_all_timed(&mut a, &mut bufs, Duration::from_secs(5))
            .await
            .unwrap();
        drop(a);
        assert_eq!(reader.await.unwrap(), 80);

        let (mut a, _b) = tokio::io::duplex(16);
        let mut bufs = vec![Bytes::from_static(b"0123456789"); 8];
        let r = write_all_timed(&mut a, &mut bufs, Duration::from_millis(50)).await;
        assert!(matches!(r, Err(WriteError::TimedOut)));
    }
}
