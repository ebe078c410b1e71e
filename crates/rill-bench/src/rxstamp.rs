//! Arrival times from the kernel: a TCP stream whose reads also return when the data reached the
//! socket (`SO_TIMESTAMPNS`), so that the latency a viewer reports is the server's, not the time
//! the load tool's own runtime took to get round to the read. With a thousand viewers on one
//! thread the tool reads a batch over several milliseconds; that delay is the tool's, and it used
//! to be counted against whatever server was measured.
//!
//! For TCP the kernel gives the arrival time of the last segment a read consumed, so a read that
//! also takes older segments reports them as late (never early): the figure errs against the
//! server.

use std::io;
use std::mem::{self, MaybeUninit};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{ready, Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::stats::now_us;

/// A TCP stream that remembers the kernel's arrival time of what it read last.
pub struct StampedStream {
    inner: TcpStream,
    /// Arrival of the last read's data, in [`now_us`]'s clock; 0 until a read carried one.
    last_us: u64,
}

impl StampedStream {
    /// Asks the kernel for receive timestamps on `inner`; without them the stream still works
    /// and [`StampedStream::arrival_us`] falls back to the time of the read.
    pub fn new(inner: TcpStream) -> Self {
        let on: libc::c_int = 1;
        // SAFETY: a valid descriptor and a c_int option value of the size given.
        let _ = unsafe {
            libc::setsockopt(
                inner.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        tie();
        StampedStream { inner, last_us: 0 }
    }

    /// When the data of the last read reached the socket (or now, if the kernel gave no time).
    /// Never later than now: the two clocks are tied once per process.
    pub fn arrival_us(&self) -> u64 {
        let now = now_us();
        if self.last_us == 0 {
            now
        } else {
            self.last_us.min(now)
        }
    }
}

/// One `recvmsg` into `dst` with room for the timestamp message.
fn recv_stamped(
    fd: libc::c_int,
    dst: &mut [MaybeUninit<u8>],
) -> io::Result<(usize, Option<libc::timespec>)> {
    let mut iov = libc::iovec {
        iov_base: dst.as_mut_ptr().cast(),
        iov_len: dst.len(),
    };
    // u64s keep the control buffer aligned for cmsghdr; 64 bytes hold one timespec message.
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = mem::size_of_val(&control) as _;
    // SAFETY: iov points into `dst` (writable, its length given) and the control buffer lives
    // until the parse below; the kernel writes at most the lengths given.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: the CMSG_* walk stays within msg_controllen, which the kernel set.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let data = libc::CMSG_DATA(c).cast::<libc::timespec>();
                stamp = Some(std::ptr::read_unaligned(data));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, stamp))
}

/// The two clocks read together once: (CLOCK_REALTIME µs, [`now_us`]).
fn tie() -> (i64, i64) {
    static TIE: OnceLock<(i64, i64)> = OnceLock::new();
    *TIE.get_or_init(|| {
        let mono = now_us() as i64;
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        (real, mono)
    })
}

/// Maps a CLOCK_REALTIME stamp onto [`now_us`]'s monotonic clock.
fn realtime_to_mono_us(ts: libc::timespec) -> u64 {
    let (real0, mono0) = tie();
    let real = ts
        .tv_sec
        .saturating_mul(1_000_000)
        .saturating_add(ts.tv_nsec / 1000);
    real.saturating_sub(real0).saturating_add(mono0).max(1) as u64
}

impl AsyncRead for StampedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            ready!(this.inner.poll_read_ready(cx))?;
            // SAFETY: recvmsg only writes initialized bytes, and only `n` of them are marked so.
            let dst = unsafe { buf.unfilled_mut() };
            let fd = this.inner.as_raw_fd();
            let r = this
                .inner
                .try_io(Interest::READABLE, || recv_stamped(fd, dst));
            match r {
                Ok((n, stamp)) => {
                    // A read without a stamp (the kernel turns stamping on a moment after the
                    // first socket asks) must not reuse an older one.
                    this.last_us = stamp.map_or(0, realtime_to_mono_us);
                    // SAFETY: the kernel wrote `n` bytes at the start of the unfilled part.
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for StampedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_carry_the_kernel_arrival_time() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move { TcpStream::connect(addr).await.unwrap() });
        let (mut server, _) = listener.accept().await.unwrap();
        let mut stream = StampedStream::new(client.await.unwrap());
        // The kernel enables receive stamping from a work queue, shortly after the first ask.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;

        let before = now_us();
        server.write_all(b"hello").await.unwrap();
        // Read well after the data arrived: the stamp must be the arrival, not the read.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let mut buf = [0u8; 16];
        let n = stream.read(&mut buf).await.unwrap();
        let read_at = now_us();
        assert_eq!(&buf[..n], b"hello");
        let arrival = stream.arrival_us();
        assert!(stream.last_us != 0, "the kernel gave no timestamp");
        // Clock tie error is a few microseconds; allow 2 ms either side of the write.
        assert!(arrival + 2_000 >= before, "{arrival} vs write at {before}");
        assert!(
            read_at - arrival >= 40_000,
            "arrival {arrival} should be ~50 ms before the read at {read_at}"
        );

        // Writes go through unchanged.
        stream.write_all(b"back").await.unwrap();
        let mut got = [0u8; 4];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"back");
    }
}
