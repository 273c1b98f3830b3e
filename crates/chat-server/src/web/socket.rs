//! A WebSocket as the byte stream the session reads and writes.
//!
//! The session ([`crate::connection`]) is written once, over bytes: it
//! reads lines and writes lines. [`WsIo`] makes a WebSocket look like
//! that stream, so the web door runs the very same session as netcat's:
//! each message from the browser is read as one line (a line break inside
//! a message reads as a space, so a message is never two commands), and
//! each line the session writes (one JSON object and its line end) goes
//! out as one text message.
//!
//! Reading, and the control frames (pong, close), are tungstenite's. The
//! data frames are framed here, straight into [`Outgoing`], the buffer in
//! front of the socket that tungstenite also writes its own frames to
//! (whole, so frames never interleave): a batch of lines costs one copy
//! and one write, as on TCP, and the buffer is given back once written, so
//! an idle connection holds no output buffer at all. tungstenite keeps
//! nothing of its own to send but a control frame now and then. Past
//! [`HIGH_WATER`] unwritten bytes, writing waits for the socket: the
//! session's write timeout and slow-reader rules apply unchanged.
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

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::admission::{Admission, Refusal};
use crate::connection;
use crate::context::Context;
use crate::event::ConnId;
use crate::protocol::json::WEB;

/// Quiet time after which the peer is pinged; twice this without a word
/// from it ends the connection.
pub const PING_EVERY: Duration = Duration::from_secs(30);
/// Unwritten bytes past which writing more waits for the socket.
const HIGH_WATER: usize = 64 * 1024;

/// The socket under a WebSocket, with the frames waiting to be written.
pub struct Outgoing<S> {
    io: S,
    frames: BytesMut,
}

impl<S> Outgoing<S> {
    pub fn new(io: S) -> Outgoing<S> {
        Outgoing { io, frames: BytesMut::new() }
    }
}

impl<S: AsyncWrite + Unpin> Outgoing<S> {
    /// Writes what waits, until done or the socket is full.
    fn poll_write_out(&mut self, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        while !self.frames.is_empty() {
            let written = ready!(Pin::new(&mut self.io).poll_write(cx, &self.frames))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.frames.advance(written);
        }
        // Nothing waits: give the buffer back (idle connections are many; a
        // busy one gets a new buffer with its next batch).
        if self.frames.capacity() > 0 {
            self.frames = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }

    /// Appends one text message holding `payload`, framed whole (a server's
    /// frames are not masked).
    fn push_text(&mut self, payload: &[u8]) {
        self.frames.reserve(payload.len() + 10);
        self.frames.put_u8(0x81); // FIN, text
        match payload.len() {
            len @ 0..=125 => self.frames.put_u8(len as u8),
            len @ 126..=0xFFFF => {
                self.frames.put_u8(126);
                self.frames.put_u16(len as u16);
            }
            len => {
                self.frames.put_u8(127);
                self.frames.put_u64(len as u64);
            }
        }
        self.frames.extend_from_slice(payload);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Outgoing<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Outgoing<S> {
    /// tungstenite's own frames: taken whole, so they never split ours.
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().frames.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// Runs the session of one upgraded WebSocket, holding its admission.
pub async fn serve<S>(
    ctx: Arc<Context>,
    id: ConnId,
    peer: SocketAddr,
    ws: WebSocketStream<Outgoing<S>>,
    _admission: Admission,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (reader, writer) = tokio::io::split(WsIo::new(ws));
    connection::serve(ctx, id, peer, &WEB, reader, writer).await;
}

/// Tells a WebSocket the server turned it away (as one `refused` object),
/// then closes it.
pub async fn refuse<S>(mut ws: WebSocketStream<Outgoing<S>>, refusal: Refusal)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let rendered = crate::protocol::standalone(&WEB, &refusal.reply());
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        ws.get_mut().push_text(&rendered);
        let _ = ws.close(None).await;
    })
    .await;
}

/// A WebSocket read and written as lines of bytes.
pub struct WsIo<S> {
    ws: WebSocketStream<Outgoing<S>>,
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

impl<S: AsyncRead + AsyncWrite + Unpin> WsIo<S> {
    pub fn new(ws: WebSocketStream<Outgoing<S>>) -> WsIo<S> {
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

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsIo<S> {
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
                if this.reading.is_empty() {
                    // Let go of the message's buffer, not only of its bytes.
                    this.reading = Bytes::new();
                }
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
                        // The end of input, as a closed TCP stream reads.
                        Message::Close(_) => return Poll::Ready(Ok(())),
                        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
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

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsIo<S> {
    /// Frames each whole line in `buf` as one text message, and keeps a
    /// line's start until its end comes. Past [`HIGH_WATER`] unwritten
    /// bytes it first writes them out, and waits while the socket is full.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let outgoing = this.ws.get_mut();
        if outgoing.frames.len() >= HIGH_WATER {
            ready!(outgoing.poll_write_out(cx))?;
        }
        let mut taken = 0;
        while let Some(end) = memchr::memchr(b'\n', &buf[taken..]) {
            // With its line end, as on the JSON-lines door: one object per
            // message, and the messages of a stream read as lines too.
            let line = &buf[taken..=taken + end];
            if this.partial.is_empty() {
                this.ws.get_mut().push_text(line);
            } else {
                this.partial.extend_from_slice(line);
                let whole = this.partial.split();
                this.ws.get_mut().push_text(&whole);
            }
            taken += end + 1;
            if this.ws.get_mut().frames.len() >= HIGH_WATER {
                return Poll::Ready(Ok(taken));
            }
        }
        this.partial.extend_from_slice(&buf[taken..]);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().ws.get_mut()).poll_flush(cx)
    }

    /// Closes the WebSocket (a close frame after what waits), as shutting
    /// down TCP's sending side would.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(this.ws.get_mut()).poll_flush(cx))?;
        this.ws.poll_close_unpin(cx).map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio_tungstenite::tungstenite::protocol::Role;

    /// A server-side `WsIo` and the client's end of the same stream.
    async fn pair() -> (WsIo<tokio::io::DuplexStream>, WebSocketStream<tokio::io::DuplexStream>) {
        let (server, client) = tokio::io::duplex(64 * 1024);
        let server = WebSocketStream::from_raw_socket(Outgoing::new(server), Role::Server, None);
        let client = WebSocketStream::from_raw_socket(client, Role::Client, None);
        (WsIo::new(server.await), client.await)
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_peer_is_pinged_and_one_that_stays_silent_is_let_go() {
        let (mut io, mut client) = pair().await;
        let mut byte = [0u8; 1];
        // Quiet for a round: pinged, and still connected.
        let read = tokio::time::timeout(PING_EVERY + Duration::from_secs(1), io.read(&mut byte));
        assert!(read.await.is_err(), "nothing to read yet, and no error");
        let ping = tokio::time::timeout(Duration::from_secs(1), client.next()).await;
        assert!(matches!(ping, Ok(Some(Ok(Message::Ping(_))))), "{ping:?}");
        // The client answered the ping (tungstenite does, when it reads): a
        // word from the peer, so another quiet round is not the end.
        let _ = client.flush().await;
        let read = tokio::time::timeout(PING_EVERY + Duration::from_secs(1), io.read(&mut byte));
        assert!(read.await.is_err(), "an answering peer stays");
        // Then silence for two rounds: reading fails, as for a lost connection.
        let silent = tokio::time::timeout(PING_EVERY * 3, io.read(&mut byte)).await;
        let error = silent.expect("ended within three rounds").expect_err("ended with an error");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
    }

    #[tokio::test]
    async fn each_line_written_is_one_text_message_and_each_message_read_one_line() {
        let (mut io, mut client) = pair().await;
        let written = b"{\"a\":1}\n{\"b\":2}\n{\"c\"";
        let n = std::future::poll_fn(|cx| Pin::new(&mut io).poll_write(cx, written)).await;
        assert_eq!(n.expect("taken"), written.len());
        let rest = std::future::poll_fn(|cx| Pin::new(&mut io).poll_write(cx, b":3}\n")).await;
        assert_eq!(rest.expect("taken"), 4);
        std::future::poll_fn(|cx| Pin::new(&mut io).poll_flush(cx)).await.expect("flushed");
        for expected in ["{\"a\":1}\n", "{\"b\":2}\n", "{\"c\":3}\n"] {
            let message = client.next().await.expect("a message").expect("readable");
            assert_eq!(message, Message::text(expected));
        }
        client.send(Message::text("two\nlines")).await.expect("sent");
        let mut line = [0u8; 10];
        let mut got = Vec::new();
        while !got.ends_with(b"\n") {
            let n = io.read(&mut line).await.expect("read");
            got.extend_from_slice(&line[..n]);
        }
        assert_eq!(got, b"two lines\n", "a message is one line, never two");
    }
}
