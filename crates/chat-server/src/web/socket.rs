//! A WebSocket as the byte stream the session reads and writes.
//!
//! The session ([`crate::connection`]) is written once, over bytes: it
//! reads lines and writes lines. [`WsIo`] makes a WebSocket look like
//! that stream, so the web door runs the very same session as netcat's:
//! each message from the browser is read as one line (a line break inside
//! a message reads as a space, so a message is never two commands), and
//! each line the session writes (one JSON object and its line end) goes
//! out as one text message. Backpressure is the WebSocket's: a write waits while the
//! socket is full, so the session's write timeout and slow-reader rules
//! apply unchanged.
//!
//! Keeping idle connections honest: when nothing has been heard from the
//! peer for [`PING_EVERY`], it is pinged; when nothing at all (not even
//! the pong) comes for twice that, reading fails and the session ends as
//! for a lost connection.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use bytes::{Buf, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::admission::{Admission, Refusal};
use crate::connection;
use crate::context::Context;
use crate::event::ConnId;
use crate::protocol::json::WEB;

/// Quiet time after which the peer is pinged; twice this without a word
/// from it ends the connection.
pub const PING_EVERY: Duration = Duration::from_secs(30);

/// Runs the session of one upgraded WebSocket, holding its admission.
pub async fn serve(ctx: Arc<Context>, id: ConnId, peer: SocketAddr, ws: WebSocket, _a: Admission) {
    let (reader, writer) = tokio::io::split(WsIo::new(ws));
    connection::serve(ctx, id, peer, &WEB, reader, writer).await;
}

/// Tells a WebSocket the server turned it away (as one `refused` object),
/// then closes it.
pub async fn refuse(mut ws: WebSocket, refusal: Refusal) {
    let rendered = crate::protocol::standalone(&WEB, &refusal.reply());
    if let Ok(text) = Utf8Bytes::try_from(rendered) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = ws.send(Message::Text(text)).await;
            let _ = ws.close().await;
        })
        .await;
    }
}

/// A WebSocket read and written as lines of bytes.
pub struct WsIo {
    ws: WebSocket,
    /// What is left of the message being read.
    reading: Bytes,
    /// Whether the message being read still owes its line end.
    line_end_due: bool,
    /// A line written in part: its end has not come yet.
    partial: BytesMut,
    /// When the peer was last heard from.
    heard_at: Instant,
    keepalive: Pin<Box<Sleep>>,
}

impl WsIo {
    pub fn new(ws: WebSocket) -> WsIo {
        let now = Instant::now();
        WsIo {
            ws,
            reading: Bytes::new(),
            line_end_due: false,
            partial: BytesMut::new(),
            heard_at: now,
            keepalive: Box::pin(tokio::time::sleep_until(now + PING_EVERY)),
        }
    }

    /// Takes a message as the next line.
    fn take_line(&mut self, message: Bytes) {
        self.reading = if message.iter().any(|&b| b == b'\n' || b == b'\r') {
            let spaced: Vec<u8> =
                message.iter().map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }).collect();
            Bytes::from(spaced)
        } else {
            message
        };
        self.line_end_due = true;
    }

    /// Pings a quiet peer; fails when it stayed silent for two rounds.
    /// Pending otherwise (the timer will wake the task).
    fn poll_keepalive(&mut self, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        while self.keepalive.as_mut().poll(cx).is_ready() {
            let quiet = self.heard_at.elapsed();
            if quiet >= PING_EVERY * 2 {
                let silent = format!("no answer to pings for {} s", quiet.as_secs());
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, silent)));
            }
            if quiet >= PING_EVERY && self.ws.poll_ready_unpin(cx).is_ready() {
                // A peer that takes no bytes is the write timeout's business.
                let _ = self.ws.start_send_unpin(Message::Ping(Bytes::new()));
                let _ = self.ws.poll_flush_unpin(cx);
            }
            let next = Instant::now() + PING_EVERY;
            self.keepalive.as_mut().reset(next);
        }
        Poll::Pending
    }
}

impl AsyncRead for WsIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.reading.is_empty() {
                let n = buf.remaining().min(this.reading.len());
                buf.put_slice(&this.reading[..n]);
                this.reading.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.line_end_due && buf.remaining() > 0 {
                buf.put_slice(b"\n");
                this.line_end_due = false;
                return Poll::Ready(Ok(()));
            }
            match this.ws.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(message))) => {
                    this.heard_at = Instant::now();
                    match message {
                        Message::Text(_) | Message::Binary(_) => {
                            this.take_line(message.into_data())
                        }
                        Message::Ping(_) | Message::Pong(_) => {}
                        // The end of input, as a closed TCP stream reads.
                        Message::Close(_) => return Poll::Ready(Ok(())),
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, error)));
                }
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    ready!(this.poll_keepalive(cx))?;
                    return Poll::Pending;
                }
            }
        }
    }
}

impl AsyncWrite for WsIo {
    /// Sends each whole line in `buf` as one text message, and keeps a
    /// line's start until its end comes.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut taken = 0;
        while let Some(end) = buf[taken..].iter().position(|&b| b == b'\n') {
            match this.ws.poll_ready_unpin(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => return Poll::Ready(Err(io::Error::other(error))),
                Poll::Pending if taken == 0 => return Poll::Pending,
                Poll::Pending => return Poll::Ready(Ok(taken)),
            }
            // With its line end, as on the JSON-lines door: one object per
            // message, and the messages of a stream read as lines too.
            let line = &buf[taken..=taken + end];
            let message = if this.partial.is_empty() {
                Bytes::copy_from_slice(line)
            } else {
                this.partial.extend_from_slice(line);
                this.partial.split().freeze()
            };
            let text = Utf8Bytes::try_from(message)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            this.ws.start_send_unpin(Message::Text(text)).map_err(io::Error::other)?;
            taken += end + 1;
        }
        this.partial.extend_from_slice(&buf[taken..]);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        self.get_mut().ws.poll_flush_unpin(cx).map_err(io::Error::other)
    }

    /// Closes the WebSocket (a close frame), as shutting down TCP's sending side would.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        self.get_mut().ws.poll_close_unpin(cx).map_err(io::Error::other)
    }
}
