//! The TCP connection to the server, shared by the terminal and piped modes.
//!
//! [`Connection`] owns the socket: connecting (with a timeout), reading the
//! server's lines (framed by [`ChatCodec`], so invalid UTF-8 and overlong
//! lines never end the stream), sending lines, and the goodbye: `/quit`,
//! then `shutdown(Write)`, then reading until the server closes. It also
//! remembers whether we said `/quit` (or `/exit`, `/leave`, in any case) or
//! the server said its goodbye to one, which decides if the server closing
//! the connection is the clean end of a session or a connection lost, and
//! which goodbye the server said, which decides if coming back makes sense.

use std::io;
use std::time::Duration;

use chat_proto::command::is_quit;
use chat_proto::terminal::strip_escapes;
use chat_proto::vocabulary::Goodbye;
use chat_proto::{ChatCodec, Frame, Heard};
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use crate::args::ServerAddr;
use crate::error::Error;
use crate::tls::Tls;

/// A byte stream to the server: plain TCP or TLS over it.
trait Transport: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Transport for T {}
type Stream = Box<dyn Transport>;

/// How long connecting may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long we wait for the server to close after our goodbye.
pub const GOODBYE_TIMEOUT: Duration = Duration::from_secs(3);

/// The longest line we accept from a server; longer ones are dropped whole.
const MAX_SERVER_LINE: usize = 64 * 1024;

/// The command that ends a session.
const QUIT: &str = "/quit";

/// An open connection to the chat server.
pub struct Connection {
    addr: ServerAddr,
    lines: FramedRead<ReadHalf<Stream>, ChatCodec>,
    writer: WriteHalf<Stream>,
    /// We said `/quit` or the server answered one: a close is clean.
    quit_sent: bool,
    /// The last goodbye the server said, if any.
    goodbye: Option<Goodbye>,
}

impl Connection {
    /// Connects to `addr` (with TLS when `tls` is given), failing with
    /// [`Error::Connect`] naming the address and the reason.
    pub async fn connect(addr: &ServerAddr, tls: Option<&Tls>) -> Result<Self, Error> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, open_stream(addr, tls))
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")))
            .map_err(|reason| Error::Connect { addr: addr.to_string(), reason })?;
        let (reader, writer) = tokio::io::split(stream);
        Ok(Connection {
            addr: addr.clone(),
            lines: FramedRead::new(reader, ChatCodec::new(MAX_SERVER_LINE)),
            writer,
            quit_sent: false,
            goodbye: None,
        })
    }

    /// The next line from the server, without its line ending; `None` once
    /// the server has closed. Cancel-safe, so it can sit in a `select!`.
    pub async fn next_line(&mut self) -> Result<Option<String>, Error> {
        loop {
            match self.lines.next().await {
                Some(Ok(Frame::Line(line))) => {
                    self.note_goodbye(&line);
                    return Ok(Some(line));
                }
                // A hostile or broken server; the line is not worth ending the session for.
                Some(Ok(Frame::TooLong { .. })) => continue,
                Some(Err(_)) if self.quit_sent => return Ok(None),
                Some(Err(reason)) => return Err(self.lost(reason.to_string())),
                None => return Ok(None),
            }
        }
    }

    /// The server's goodbye to a quit (typed by anyone, in any spelling)
    /// makes its close the clean end of the session.
    fn note_goodbye(&mut self, line: &str) {
        if let Heard::Goodbye(goodbye) = chat_proto::classify(&strip_escapes(line)) {
            self.quit_sent |= goodbye == Goodbye::Quit;
            self.goodbye = Some(goodbye);
        }
    }

    /// Whether connecting again could bring the session back: not after the
    /// operator removed us, our name logged in elsewhere (coming back would
    /// throw that session out in turn), or we never gave a name in time.
    pub fn worth_coming_back(&self) -> bool {
        !matches!(
            self.goodbye,
            Some(Goodbye::Kicked | Goodbye::Replaced | Goodbye::NameTimeout | Goodbye::Quit)
        )
    }

    /// Sends one line. Sending `/quit` (or an alias) makes the server's close expected.
    pub async fn send(&mut self, text: &str) -> Result<(), Error> {
        let mut line = String::with_capacity(text.len() + 1);
        line.push_str(text);
        line.push('\n');
        if let Err(reason) = self.writer.write_all(line.as_bytes()).await {
            return Err(self.lost(reason.to_string()));
        }
        if is_quit(text) {
            self.quit_sent = true;
        }
        Ok(())
    }

    /// Starts the goodbye: `/quit` unless already said, then `shutdown(Write)`,
    /// so the server sees the end of our input. Closing with unread input
    /// would make the kernel reset the connection and lose the server's last
    /// words, so the caller goes on reading until [`Self::next_line`] gives
    /// `None` or [`GOODBYE_TIMEOUT`] passes.
    pub async fn say_goodbye(&mut self) {
        if !self.quit_sent && self.send(QUIT).await.is_err() {
            // The connection is gone already; the goodbye has nobody to reach.
            self.quit_sent = true;
        }
        let _ = self.writer.shutdown().await;
    }

    /// What the server closing the connection means now: the clean end of a
    /// session after our `/quit`, a lost connection otherwise.
    pub fn closed_by_server(&self) -> Result<(), Error> {
        if self.quit_sent {
            return Ok(());
        }
        let reason = match self.goodbye {
            Some(Goodbye::Shutdown) => "the server shut down",
            Some(Goodbye::Kicked) => "removed by the operator",
            Some(Goodbye::Replaced) => "the name logged in from another connection",
            Some(Goodbye::NameTimeout) => "no name given in time",
            Some(Goodbye::Quit) | None => "closed by the server",
        };
        Err(self.lost(reason.into()))
    }

    fn lost(&self, reason: String) -> Error {
        Error::Lost { addr: self.addr.to_string(), reason }
    }
}

async fn open_stream(addr: &ServerAddr, tls: Option<&Tls>) -> io::Result<Stream> {
    let stream = TcpStream::connect((addr.host(), addr.port())).await?;
    // Chat lines are small and typed by people: Nagle would only add delay.
    let _ = stream.set_nodelay(true);
    match tls {
        None => Ok(Box::new(stream)),
        Some(tls) => Ok(Box::new(tls.handshake(addr.host(), stream).await?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_goodbye_to_a_quit_is_recognised_in_colour_too() {
        let goodbye = chat_proto::Line::notice(chat_proto::vocabulary::GOODBYE);
        let line = String::from_utf8_lossy(goodbye.bytes(true)).trim_end().to_owned();
        assert_eq!(chat_proto::classify(&strip_escapes(&line)), Heard::Goodbye(Goodbye::Quit));
    }
}
