//! Socket helpers shared by the outputs.

use std::io::IoSlice;

use std::net::SocketAddr;
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
        let slices: Vec<IoSlice<'_>> = bufs[i..]
            .iter()
            .take(MAX_IOVECS)
            .map(|b| IoSlice::new(b))
            .collect();
        let mut n = w.write_vectored(&slices).await?;
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
}
