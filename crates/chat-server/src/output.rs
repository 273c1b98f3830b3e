//! The sending side of one connection: a reusable buffer and a writer.
//!
//! Lines are appended to one buffer and written with as few syscalls as the
//! socket allows; a write that makes no progress for the write timeout ends
//! the connection, so a client that stops reading costs the server one
//! bounded buffer and no more. The buffer is released when it grew large, so
//! idle connections stay small.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use chat_proto::Line;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::stats::Stats;

/// Stop draining the room's queue into the buffer past this many bytes.
pub const BATCH_BYTES: usize = 64 * 1024;
/// A buffer that grew beyond this is dropped after a flush instead of kept.
const RETAINED_CAPACITY: usize = 4 * 1024;

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
    buf: BytesMut,
    /// Lines in `buf`, counted into `stats` once written.
    lines: u64,
    stats: Arc<Stats>,
    pub color: bool,
    write_timeout: Duration,
}

impl<W: AsyncWrite + Unpin> Output<W> {
    pub fn new(writer: W, color: bool, write_timeout: Duration, stats: Arc<Stats>) -> Self {
        Output { writer, buf: BytesMut::new(), lines: 0, stats, color, write_timeout }
    }

    /// Appends a line in this connection's colour setting.
    pub fn push(&mut self, line: &Line) {
        self.buf.extend_from_slice(line.bytes(self.color));
        self.lines += 1;
    }

    /// Appends a line after a room tag (plain text, as `[#rust] `), if any.
    pub fn push_tagged(&mut self, tag: Option<&Bytes>, line: &Line) {
        if let Some(tag) = tag {
            self.buf.extend_from_slice(tag);
        }
        self.push(line);
    }

    /// Frees the buffer; called when nothing is queued, so idle connections hold none.
    pub fn release(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
    }

    /// How long a write may make no progress before the peer counts as stalled.
    pub fn write_timeout(&self) -> Duration {
        self.write_timeout
    }

    /// Bytes waiting to be written.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    pub fn is_batch_full(&self) -> bool {
        self.buf.len() >= BATCH_BYTES
    }

    /// Appends a line and writes everything pending.
    pub async fn say(&mut self, line: &Line) -> Result<(), WriteError> {
        self.push(line);
        self.flush().await
    }

    /// Writes everything pending; fails if the peer takes no bytes for the write timeout.
    pub async fn flush(&mut self) -> Result<(), WriteError> {
        Stats::add(&self.stats.lines_out, std::mem::take(&mut self.lines));
        Stats::add(&self.stats.bytes_out, self.buf.len() as u64);
        while !self.buf.is_empty() {
            match tokio::time::timeout(self.write_timeout, self.writer.write(&self.buf)).await {
                Err(_) => return Err(WriteError::Stalled),
                Ok(Err(e)) => return Err(WriteError::Io(e)),
                Ok(Ok(0)) => return Err(WriteError::Io(std::io::ErrorKind::WriteZero.into())),
                Ok(Ok(n)) => self.buf.advance(n),
            }
        }
        tokio::time::timeout(self.write_timeout, self.writer.flush())
            .await
            .map_err(|_| WriteError::Stalled)?
            .map_err(WriteError::Io)?;
        if self.buf.capacity() > RETAINED_CAPACITY {
            self.buf = BytesMut::new();
        }
        Ok(())
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
