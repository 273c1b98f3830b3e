//! The sending side of one connection: what waits to be written, and the writer.
//!
//! What is written is rendered by the connection's [`Protocol`]: the
//! session hands its output events and replies, the protocol turns them
//! into bytes (through [`Sink`]), and the output batches and writes them.
//!
//! Small lines are copied into one reusable buffer; a long line (a gathered
//! presence notice of a few KiB, say) is queued by reference to the one
//! copy every recipient shares, so a notice to 19,000 readers costs 19,000
//! handles rather than 19,000 copies. Everything pending is written with as
//! few (vectored) syscalls as the socket allows; a write that makes no
//! progress for the write timeout ends the connection, so a client that
//! stops reading costs the server one bounded queue and no more. The buffer
//! is released when it grew large, and whenever the connection is idle, so
//! idle connections stay small.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::event::Event;
use crate::protocol::{Protocol, Sink};
use crate::reply::Reply;
use crate::room::Room;
use crate::stats::Stats;

/// Stop draining the room's queue into the buffer past this many bytes.
pub const BATCH_BYTES: usize = 64 * 1024;
/// A buffer that grew beyond this is dropped after a flush instead of kept.
const RETAINED_CAPACITY: usize = 4 * 1024;
/// Lines at least this long are queued by reference instead of copied.
const SHARED_FROM: usize = 512;
/// Slices handed to one vectored write at most.
const MAX_SLICES: usize = 64;

/// Why output could not be delivered.
#[derive(Debug)]
pub enum WriteError {
    /// The peer accepted no bytes for the whole write timeout.
    Stalled,
    /// The peer closed or reset the connection.
    Io(std::io::Error),
}

pub struct Output<W> {
    writer: W,
    /// Written before `tail`, in order: earlier small lines, frozen, and
    /// long lines shared with every other recipient.
    queue: VecDeque<Bytes>,
    /// Small lines being gathered after everything in `queue`.
    tail: BytesMut,
    /// Bytes in `queue` and `tail`.
    pending: usize,
    /// Lines pending, counted into `stats` once written.
    lines: u64,
    /// Bytes were written since the writer was last flushed (a TLS
    /// writer holds them until then).
    unflushed: bool,
    stats: Arc<Stats>,
    pub color: bool,
    write_timeout: Duration,
    protocol: &'static dyn Protocol,
    /// The reader's name, for a door that addresses replies to it (IRC);
    /// boxed, as other doors never set it.
    pub me: Option<Box<chat_proto::Name>>,
}

impl<W: AsyncWrite + Unpin> Output<W> {
    pub fn new(
        writer: W,
        protocol: &'static dyn Protocol,
        color: bool,
        write_timeout: Duration,
        stats: Arc<Stats>,
    ) -> Self {
        Output {
            protocol,
            writer,
            queue: VecDeque::new(),
            tail: BytesMut::new(),
            pending: 0,
            lines: 0,
            unflushed: false,
            stats,
            color,
            write_timeout,
            me: None,
        }
    }

    /// Speaks `protocol` from now on (an IRC client that asked for
    /// message tags, say).
    pub fn set_protocol(&mut self, protocol: &'static dyn Protocol) {
        self.protocol = protocol;
    }

    /// The protocol this connection speaks.
    pub fn protocol(&self) -> &'static dyn Protocol {
        self.protocol
    }

    /// Appends an event delivered from `room` (`current`: the reader's current room).
    #[inline(always)]
    pub fn event(&mut self, event: &Event, room: &Room, current: bool) {
        let rendered = self.protocol.event(event, room, current, self.color);
        if let Some(before) = rendered.before {
            self.append(before);
        }
        self.put(rendered.line);
    }

    /// Appends a reply.
    pub fn reply(&mut self, reply: &Reply) {
        self.protocol.reply(reply, self);
    }

    #[inline(always)]
    fn append(&mut self, bytes: &Bytes) {
        self.pending += bytes.len();
        if bytes.len() < SHARED_FROM {
            self.tail.extend_from_slice(bytes);
            return;
        }
        if !self.tail.is_empty() {
            self.queue.push_back(self.tail.split().freeze());
        }
        self.queue.push_back(bytes.clone());
    }

    /// Frees the buffers; called when nothing is queued, so idle connections hold none.
    pub fn release(&mut self) {
        if self.pending == 0 {
            if self.tail.capacity() > 0 {
                self.tail = BytesMut::new();
            }
            if self.queue.capacity() > 0 {
                self.queue = VecDeque::new();
            }
        }
    }

    /// How long a write may make no progress before the peer counts as stalled.
    pub fn write_timeout(&self) -> Duration {
        self.write_timeout
    }

    /// Bytes waiting to be written.
    pub fn pending(&self) -> usize {
        self.pending
    }

    pub fn is_batch_full(&self) -> bool {
        self.pending >= BATCH_BYTES
    }

    /// Appends a reply and writes everything pending.
    pub async fn say(&mut self, reply: &Reply) -> Result<(), WriteError> {
        self.reply(reply);
        self.flush().await
    }

    /// Writes everything pending; fails if the peer takes no bytes for the write timeout.
    /// With nothing to write it returns at once, reading no clock.
    pub async fn flush(&mut self) -> Result<(), WriteError> {
        if self.pending == 0 && !self.unflushed {
            return Ok(());
        }
        Stats::add(&self.stats.lines_out, std::mem::take(&mut self.lines));
        Stats::add(&self.stats.bytes_out, self.pending as u64);
        while self.pending > 0 {
            let written = if self.queue.is_empty() {
                // The common case (short lines only): one plain write, no slice list.
                tokio::time::timeout(self.write_timeout, self.writer.write(&self.tail)).await
            } else {
                let slices = slices(&self.queue, &self.tail);
                tokio::time::timeout(self.write_timeout, self.writer.write_vectored(&slices)).await
            };
            match written {
                Err(_) => return Err(WriteError::Stalled),
                Ok(Err(e)) => return Err(WriteError::Io(e)),
                Ok(Ok(0)) => return Err(WriteError::Io(std::io::ErrorKind::WriteZero.into())),
                Ok(Ok(n)) => {
                    self.unflushed = true;
                    self.advance(n);
                }
            }
        }
        tokio::time::timeout(self.write_timeout, self.writer.flush())
            .await
            .map_err(|_| WriteError::Stalled)?
            .map_err(WriteError::Io)?;
        self.unflushed = false;
        if self.tail.capacity() > RETAINED_CAPACITY {
            self.tail = BytesMut::new();
        }
        Ok(())
    }

    /// Drops `written` bytes from the front of what is pending.
    fn advance(&mut self, mut written: usize) {
        self.pending -= written;
        while written > 0 {
            let Some(front) = self.queue.front_mut() else {
                self.tail.advance(written);
                return;
            };
            let taken = written.min(front.len());
            front.advance(taken);
            written -= taken;
            if front.is_empty() {
                self.queue.pop_front();
            }
        }
    }

    /// Closes the sending direction after what is pending, within `grace`.
    pub async fn close(&mut self, grace: Duration) {
        let _ = tokio::time::timeout(grace, async {
            if self.flush().await.is_ok() {
                let _ = self.writer.shutdown().await;
            }
        })
        .await;
    }
}

impl<W: AsyncWrite + Unpin> Sink for Output<W> {
    #[inline]
    fn put(&mut self, line: &Bytes) {
        self.append(line);
        self.lines += 1;
    }

    fn color(&self) -> bool {
        self.color
    }

    fn me(&self) -> Option<&chat_proto::Name> {
        self.me.as_deref()
    }
}

/// What is pending, in order, as slices for one vectored write.
fn slices<'a>(queue: &'a VecDeque<Bytes>, tail: &'a BytesMut) -> Vec<IoSlice<'a>> {
    let queued = queue.iter().take(MAX_SLICES).map(|b| IoSlice::new(b));
    // The tail comes after every queued slice, so only once they all fit.
    let tail = (queue.len() < MAX_SLICES && !tail.is_empty()).then(|| IoSlice::new(tail));
    queued.chain(tail).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::text::TEXT;

    /// A writer that takes at most `chunk` bytes per call, vectored or not.
    struct Trickle {
        written: Vec<u8>,
        chunk: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let n = buf.len().min(self.chunk);
            self.written.extend_from_slice(&buf[..n]);
            std::task::Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            slices: &[IoSlice<'_>],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let mut taken = 0;
            for slice in slices {
                let n = slice.len().min(self.chunk - taken);
                self.written.extend_from_slice(&slice[..n]);
                taken += n;
                if taken == self.chunk {
                    break;
                }
            }
            std::task::Poll::Ready(Ok(taken))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn short_and_shared_lines_go_out_in_order_whatever_the_write_sizes() {
        for chunk in [1, 7, 100, 5000, 1 << 20] {
            let writer = Trickle { written: Vec::new(), chunk };
            let mut out = Output::new(writer, &TEXT, false, Duration::from_secs(1), Arc::default());
            let long = "x".repeat(SHARED_FROM * 3);
            let tag = Bytes::from_static(b"[#rust] ");
            let mut expected = String::new();
            for i in 0..(MAX_SLICES * 5) {
                let text = if i % 3 == 0 { long.clone() } else { format!("line {i}") };
                if i % 2 == 0 {
                    out.append(&tag);
                }
                out.put(&Bytes::from(format!("{text}\r\n")));
                if i % 2 == 0 {
                    expected.push_str("[#rust] ");
                }
                expected.push_str(&format!("{text}\r\n"));
            }
            assert_eq!(out.pending(), expected.len());
            out.flush().await.expect("flushed");
            assert_eq!(out.pending(), 0);
            assert_eq!(String::from_utf8(out.writer.written.clone()).expect("utf-8"), expected);
        }
    }
}
