//! When received bytes reached this host: reads that carry the kernel's receive timestamp.
//!
//! One load-generator thread reads hundreds of sockets one after another, so the time at which it
//! gets round to a socket says more about the load generator than about the server. With
//! `SO_TIMESTAMPNS` set, each `recvmsg` on a TCP socket also returns when the kernel received the
//! newest of the bytes it hands over, which is the moment a dedicated client would have seen them.
//! The stamp is wall-clock time and is converted to the process clock of `metrics::now_nanos`.
//! Reads from memory (the parse bench) simply carry no stamp.

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;

use crate::metrics::from_wall_clock;

/// Something lines are read from.
pub trait Source: Unpin + Send {
    /// Reads into `buf`: the byte count (0 at the end) and, when the kernel stamped the data,
    /// its arrival on the process clock. Cancel-safe.
    fn read_stamped(
        &mut self,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<(usize, Option<u64>)>> + Send;
}

impl Source for &[u8] {
    async fn read_stamped(&mut self, buf: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
        let n = buf.len().min(self.len());
        buf[..n].copy_from_slice(&self[..n]);
        *self = &self[n..];
        Ok((n, None))
    }
}

impl Source for OwnedReadHalf {
    async fn read_stamped(&mut self, buf: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
        let stream: &TcpStream = self.as_ref();
        let fd = stream.as_raw_fd();
        loop {
            stream.readable().await?;
            match stream.try_io(Interest::READABLE, || receive_stamped(fd, buf)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                result => return result,
            }
        }
    }
}

/// Asks the kernel to stamp what this socket receives.
pub fn request_timestamps(stream: &TcpStream) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: the descriptor is open for the stream's lifetime; the option value is a c_int that
    // outlives the call, and its size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// One non-blocking `recvmsg`, returning the `SCM_TIMESTAMPNS` stamp if there was one.
fn receive_stamped(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // u64 words keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 16];
    // SAFETY: msghdr is plain data for which all-zeroes is a valid (empty) value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg points at the iovec (over `buf`) and the control buffer, both alive and
    // exclusively borrowed for the duration of the call; their lengths are set above.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: the CMSG_* helpers walk the control buffer the kernel filled in, bounded by
    // msg_controllen; each header found lies inside `control`, and the timespec is read
    // unaligned from the data of a header whose level and type say it holds one.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                stamp = from_wall_clock(ts.tv_sec as i64, ts.tv_nsec as i64);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n as usize, stamp))
}
