//! One client, from greeting to goodbye.
//!
//! A connection is a single task: it asks for a name, arrives in `#lobby`
//! through the [`Hub`](crate::hub::Hub), then `select!`s over the shutdown
//! signal, direct messages (private lines, server notices, kicks), the
//! queues of its rooms (its [`Memberships`]) and its own input, whose
//! lines [`command::execute`] carries out. Output drains everything already queued into one write.
//! Input is read no faster than `--rate` allows, so a flooder is slowed by
//! TCP itself and loses nothing. It ends with a goodbye that the kernel
//! cannot reset away.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chat_proto::{ChatCodec, Frame, Line, Name, vocabulary};
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tracing::info;

use crate::command;
use crate::context::Context;
use crate::hub::{Arrival, Speaker};
use crate::output::Output;
use crate::people::Direct;
use crate::room::{ConnId, Event, Online};
use crate::session::{End, Memberships, Session};
use crate::stats::Stats;
use crate::subscription::Subscription;
use crate::throttle::Throttle;

/// Initial read buffer: small, since most connections are idle most of the time.
const READ_BUFFER: usize = 256;
/// Read buffer of a client that sends several lines per read.
const BURST_READ_BUFFER: usize = 8 * 1024;
/// How long a goodbye may take before the socket is simply dropped.
const GOODBYE_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for the peer to close after we did, so our last line
/// is not destroyed by a reset.
const LINGER: Duration = Duration::from_secs(1);

/// What a newcomer is shown once: who is here, what was said, and whether
/// the room is whole.
struct Welcome {
    online: Online,
    history: Vec<Arc<Event>>,
    degraded: bool,
}

struct Connection<R, W> {
    id: ConnId,
    peer: SocketAddr,
    ctx: Arc<Context>,
    input: FramedRead<R, ChatCodec>,
    output: Output<W>,
}

/// Runs one connection to its end. Never fails: every way out is logged.
pub async fn serve<R, W>(ctx: Arc<Context>, id: ConnId, peer: SocketAddr, reader: R, writer: W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let limits = &ctx.limits;
    let input = FramedRead::with_capacity(reader, ChatCodec::new(limits.max_line), READ_BUFFER);
    let stats = Arc::clone(ctx.hub.stats());
    let output = Output::new(writer, limits.color, limits.write_timeout, stats);
    let mut connection = Connection { id, peer, ctx: Arc::clone(&ctx), input, output };
    info!(%peer, id, "connected");
    let (speaker, end) = connection.run().await;
    match speaker {
        Some(speaker) => {
            ctx.hub.leave(&speaker, end.leave_notice());
            let name = &speaker.name;
            info!(%peer, id, %name, reason = %end.describe(), "disconnected");
        }
        None => info!(%peer, id, reason = %end.describe(), "disconnected before choosing a name"),
    }
    if matches!(end, End::Stalled) {
        Stats::add(&ctx.hub.stats().slow_disconnects, 1);
    }
    connection.goodbye(&end).await;
}

impl<R, W> Connection<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    /// Runs the session; returns who it was once named, and how it ended.
    async fn run(&mut self) -> (Option<Speaker>, End) {
        let (mut session, welcome) = match self.choose_name().await {
            Ok(joined) => joined,
            Err(end) => return (None, end),
        };
        let end = match self.welcome(&session, welcome).await {
            Ok(()) => self.chat(&mut session).await,
            Err(end) => end,
        };
        (Some(session.speaker), end)
    }

    /// Greets, then reads lines until one is a name the room accepts.
    async fn choose_name(&mut self) -> Result<(Session, Welcome), End> {
        self.output.push(&Line::notice(vocabulary::GREETING));
        self.output.say(&Line::notice(vocabulary::NAME_PROMPT)).await?;
        let deadline = Instant::now() + self.ctx.limits.name_timeout;
        let mut first_line = true;
        loop {
            let raw = tokio::select! {
                _ = self.ctx.shutdown.cancelled() => return Err(End::Shutdown),
                frame = tokio::time::timeout_at(deadline, self.input.next()) => match frame {
                    Err(_) => return Err(End::NameTimeout),
                    Ok(frame) => self.line_or_end(frame).await?,
                },
            };
            let Some(raw) = raw else { continue };
            if std::mem::take(&mut first_line) && looks_like_http(&raw) {
                return Err(End::Http);
            }
            let hub = &self.ctx.hub;
            let outcome = match raw.trim() {
                "" => hub.arrive_as_guest(self.id, self.peer).await,
                typed => match Name::parse(typed) {
                    Ok(name) => {
                        hub.arrive(self.id, name, self.peer).await.map_err(|e| e.to_string())
                    }
                    Err(e) => Err(e.to_string()),
                },
            };
            match outcome {
                Ok((name, arrival)) => {
                    info!(peer = %self.peer, id = self.id, %name, "named");
                    return Ok(self.start_session(name, arrival));
                }
                Err(reason) => {
                    self.output.push(&Line::notice(&vocabulary::refusal(&reason)));
                    self.output.say(&Line::notice(vocabulary::ANOTHER_NAME_PROMPT)).await?;
                }
            }
        }
    }

    fn start_session(&self, name: Name, arrival: Arrival) -> (Session, Welcome) {
        let Arrival { theme, inbox, degraded, lobby } = arrival;
        let limits = &self.ctx.limits;
        let entry = lobby.entry;
        let session = Session {
            speaker: Speaker { id: self.id, name, theme, peer: self.peer },
            rooms: Memberships::new(Subscription::new(lobby.room, entry.events, self.id)),
            inbox,
            throttle: Throttle::new(limits.line_interval, limits.burst),
        };
        (session, Welcome { online: entry.online, history: entry.history, degraded })
    }

    /// Turns one read into a line (`None` for an overlong line, already answered)
    /// or the end of the session.
    async fn line_or_end(
        &mut self,
        frame: Option<Result<Frame, std::io::Error>>,
    ) -> Result<Option<String>, End> {
        match frame {
            None => Err(End::Closed),
            Some(Err(e)) => Err(End::Lost(e.to_string())),
            Some(Ok(Frame::Line(line))) => Ok(Some(line)),
            Some(Ok(Frame::TooLong { bytes })) => {
                Stats::add(&self.ctx.hub.stats().too_long, 1);
                let limit = self.ctx.limits.max_line;
                let notice = format!(
                    "Your line ({bytes} bytes) was longer than {limit} bytes and was discarded."
                );
                self.output.say(&Line::notice(&notice)).await?;
                Ok(None)
            }
        }
    }

    async fn welcome(&mut self, session: &Session, welcome: Welcome) -> Result<(), End> {
        let Welcome { online, history, degraded } = welcome;
        let Speaker { name, theme, .. } = &session.speaker;
        self.output.push(&Line::notice(&vocabulary::welcome(name, theme)));
        if degraded {
            self.output.push(&Line::notice(vocabulary::DEGRADED));
        }
        self.output.push(&Line::notice(&online.describe()));
        if !history.is_empty() {
            self.output.push(&Line::notice("Recent messages:"));
            for event in &history {
                self.output.push(&event.line);
            }
        }
        self.output.flush().await?;
        Ok(())
    }

    async fn chat(&mut self, session: &mut Session) -> End {
        loop {
            if session.rooms.is_idle() {
                self.output.release();
            }
            let ready_at = session.throttle.ready_at();
            let step = tokio::select! {
                biased;
                _ = self.ctx.shutdown.cancelled() => {
                    session.rooms.drain_all(&mut self.output);
                    return End::Shutdown;
                }
                direct = session.inbox.next() => self.on_direct(direct).await,
                (at, delivery) = session.rooms.next() => {
                    match session.rooms.deliver(at, delivery, &mut self.output).await {
                        Ok(true) => Ok(()),
                        Ok(false) => return End::Shutdown,
                        Err(error) => Err(End::from(error)),
                    }
                }
                frame = read_when_allowed(&mut self.input, ready_at) => {
                    session.throttle.took_line();
                    self.grow_read_buffer_for_bursts();
                    match self.line_or_end(frame).await {
                        Ok(Some(line)) => {
                            command::execute(&self.ctx, session, &mut self.output, &line).await
                        }
                        Ok(None) => Ok(()),
                        Err(end) => Err(end),
                    }
                }
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// A read that brought more than one line means a client that sends in
    /// bursts: give it a larger read buffer (once) so it costs fewer reads.
    /// Clients that send a line at a time keep the small one.
    fn grow_read_buffer_for_bursts(&mut self) {
        let buffer = self.input.read_buffer_mut();
        if !buffer.is_empty() && buffer.capacity() < BURST_READ_BUFFER {
            buffer.reserve(BURST_READ_BUFFER - buffer.len());
        }
    }

    async fn on_direct(&mut self, direct: Direct) -> Result<(), End> {
        match direct {
            Direct::Line(line) => Ok(self.output.say(&line).await?),
            Direct::Kick { reason } => Err(End::Kicked(reason)),
        }
    }

    /// Says goodbye when there is someone to say it to, closes our side, and
    /// reads until the peer closes so the goodbye is not lost to a reset.
    async fn goodbye(&mut self, end: &End) {
        if let Some(line) = end.goodbye() {
            self.output.push(&line);
        }
        if !end.peer_is_listening() {
            return;
        }
        self.output.close(GOODBYE_GRACE).await;
        let _ = tokio::time::timeout(LINGER, async {
            while let Some(Ok(_)) = self.input.next().await {}
        })
        .await;
    }
}

/// Waits for the rate limit, then for the next frame. Cancel-safe: dropping it
/// loses neither a frame nor a token.
async fn read_when_allowed<R: AsyncRead + Unpin>(
    input: &mut FramedRead<R, ChatCodec>,
    ready_at: Option<Instant>,
) -> Option<Result<Frame, std::io::Error>> {
    if let Some(at) = ready_at {
        tokio::time::sleep_until(at).await;
    }
    input.next().await
}

/// A first line like `GET / HTTP/1.1`: a browser or HTTP client that found our port.
fn looks_like_http(line: &str) -> bool {
    let mut parts = line.split_whitespace();
    let (Some(method), Some(_target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    method.len() <= 10
        && method.bytes().all(|b| b.is_ascii_uppercase())
        && version.starts_with("HTTP/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_http_request_lines() {
        assert!(looks_like_http("GET / HTTP/1.1"));
        assert!(looks_like_http("POST /x HTTP/1.0"));
        assert!(!looks_like_http("alice"));
        assert!(!looks_like_http("get / http/1.1"));
        assert!(!looks_like_http("GET lost HTTPS"));
    }
}
