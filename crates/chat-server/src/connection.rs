//! One client, from greeting to goodbye, whatever door it came through.
//!
//! This is the session written once: the door (the text protocol, JSON
//! lines) only renders what the session says and reads what the user
//! sends, through the connection's [`Protocol`]. A connection is a single
//! task: it asks for a name, arrives in `#lobby`
//! through the [`Hub`](crate::hub::Hub), then `select!`s over the shutdown
//! signal, direct messages (private lines, server notices, kicks), the
//! queues of its rooms (its [`Memberships`]) and its own input, whose
//! lines [`command::execute`] carries out. Output drains everything already queued into one write,
//! and answers to lines the client sent together (a name and a `/join`, say) go out in one write:
//! pending output is written only when no further line is already waiting to be answered.
//! Input is read no faster than `--rate` allows, so a flooder is slowed by
//! TCP itself and loses nothing. It ends with a goodbye that the kernel
//! cannot reset away.

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use chat_proto::{ChatCodec, Frame, Name, RoomName, sanitize_text};
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tracing::info;

use crate::command;
use crate::context::Context;
use crate::event::{ConnId, Event};
use crate::hub::{Arrival, Joined, NameRight, Speaker};
use crate::irc;
use crate::login::{self, Denied};
use crate::output::Output;
use crate::people::Direct;
use crate::protocol::Protocol;
use crate::reply::Reply;
use crate::room::Online;
use crate::session::{End, LastRoom, Memberships, Session};
use crate::stats::Stats;
use crate::store::Account;
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

/// A name's arrival, with the account of a returning owner; or why not.
pub(crate) type Arrived = Result<((Name, Arrival), Option<Account>), String>;

/// What a newcomer is shown once: who is here, what was said, and whether
/// the room is whole.
pub(crate) struct Welcome {
    online: Online,
    history: Vec<Arc<Event>>,
    degraded: bool,
}

pub(crate) struct Connection<R, W> {
    pub(crate) id: ConnId,
    pub(crate) peer: SocketAddr,
    pub(crate) ctx: Arc<Context>,
    pub(crate) input: FramedRead<R, ChatCodec>,
    pub(crate) output: Output<W>,
    /// What an IRC client asked for and how it is doing (`None` on other
    /// doors): its registration and commands are the IRC door's own.
    pub(crate) irc: Option<Box<irc::Client>>,
}

/// Runs one connection speaking `protocol` to its end. Never fails: every
/// way out is logged.
pub async fn serve<R, W>(
    ctx: Arc<Context>,
    id: ConnId,
    peer: SocketAddr,
    protocol: &'static dyn Protocol,
    reader: R,
    writer: W,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let limits = &ctx.limits;
    let irc = protocol.is_irc().then(|| Box::new(irc::Client::new(limits.irc_ping)));
    let max_line = if irc.is_some() { irc::MAX_LINE } else { limits.max_line };
    let input = FramedRead::with_capacity(reader, ChatCodec::new(max_line), READ_BUFFER);
    let stats = Arc::clone(ctx.hub.stats());
    let output = Output::new(writer, protocol, limits.color, limits.write_timeout, stats);
    let mut connection = Connection { id, peer, ctx: Arc::clone(&ctx), input, output, irc };
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
        // Boxed, as is the owner's return: they run once, and inline their
        // state would make every connection's task larger for its whole life.
        let (mut session, welcome, returning) = match Box::pin(self.named()).await {
            Ok(joined) => joined,
            Err(end) => return (None, end),
        };
        let mut greeted = self.welcome(&session, welcome).await;
        if let (Ok(()), Some(account)) = (&greeted, returning) {
            greeted = Box::pin(self.come_back(&mut session, account)).await;
        }
        let end = match greeted {
            Ok(()) => self.chat(&mut session).await,
            Err(end) => end,
        };
        (Some(session.speaker), end)
    }

    /// The name phase of this connection's door: the name prompt, or an
    /// IRC client's registration.
    async fn named(&mut self) -> Result<(Session, Welcome, Option<Account>), End> {
        match self.irc {
            Some(_) => self.register().await,
            None => self.choose_name().await,
        }
    }

    /// Greets, then reads lines until one is a name the room accepts (for
    /// a registered name, with its password). A returning owner's account
    /// comes back with the session.
    async fn choose_name(&mut self) -> Result<(Session, Welcome, Option<Account>), End> {
        self.output.reply(&Reply::Greeting);
        self.output.reply(&Reply::NamePrompt { again: false });
        let deadline = Instant::now() + self.ctx.limits.name_timeout;
        let mut first_line = true;
        loop {
            let Some(raw) = self.read_before(deadline).await? else { continue };
            if std::mem::take(&mut first_line) && looks_like_http(&raw) {
                return Err(End::Http);
            }
            let ctx = Arc::clone(&self.ctx);
            let hub = &ctx.hub;
            let outcome = match raw.trim() {
                "" => hub.arrive_as_guest(self.id, self.peer).await.map(|a| (a, None)),
                typed => match Name::parse(typed) {
                    Ok(name) => self.arrive_as(name, deadline).await?,
                    Err(e) => Err(e.to_string()),
                },
            };
            match outcome {
                Ok(((name, arrival), account)) => {
                    info!(peer = %self.peer, id = self.id, %name, "named");
                    let (session, welcome) = self.start_session(name, arrival, account.is_some());
                    return Ok((session, welcome, account));
                }
                Err(reason) => {
                    self.output.reply(&Reply::Refusal { reason });
                    self.output.say(&Reply::NamePrompt { again: true }).await?;
                }
            }
        }
    }

    /// The next line before `deadline` (`None` for an overlong one, already
    /// answered). What is pending goes out first, unless the line is here already.
    pub(crate) async fn read_before(&mut self, deadline: Instant) -> Result<Option<String>, End> {
        if let Some(frame) = self.flush_unless_input_waits(true).await? {
            return self.line_or_end(frame).await;
        }
        tokio::select! {
            _ = self.ctx.shutdown.cancelled() => Err(End::Shutdown),
            frame = tokio::time::timeout_at(deadline, self.input.next()) => match frame {
                Err(_) => Err(End::NameTimeout),
                Ok(frame) => self.line_or_end(frame).await,
            },
        }
    }

    /// Arrives as `name`; a registered one first asks its password (each
    /// attempt in turn behind the name's throttle) and replaces a
    /// connection already using it.
    async fn arrive_as(&mut self, name: Name, deadline: Instant) -> Result<Arrived, End> {
        let ctx = Arc::clone(&self.ctx);
        let Some(account) = login::account_of(&ctx, &name).await else {
            // Looked up just now: the hub need not ask the store again.
            let arrived = ctx.hub.arrive(self.id, name, self.peer, NameRight::Free).await;
            return Ok(arrived.map(|a| (a, None)).map_err(|e| e.to_string()));
        };
        self.output.say(&Reply::PasswordPrompt { name: name.clone() }).await?;
        let password = loop {
            if let Some(line) = self.read_before(deadline).await? {
                break sanitize_text(&line).trim().to_owned();
            }
        };
        let who = login::Who { id: self.id, peer: self.peer };
        match login::log_in(&ctx, who, name, &account, password).await {
            Ok(arrived) => Ok(Ok((arrived, Some(account)))),
            Err(Denied::Refused(reason)) => Ok(Err(reason)),
            Err(Denied::Stopping) => Err(End::Shutdown),
        }
    }

    /// A returning owner is put back in the rooms they were in and told,
    /// room by room, what came while they were away.
    async fn come_back(&mut self, session: &mut Session, account: Account) -> Result<(), End> {
        let ctx = Arc::clone(&self.ctx);
        let hub = &ctx.hub;
        let mut rooms = Vec::new();
        for typed in &account.rooms {
            let Ok(name) = RoomName::parse(typed) else { continue };
            if !session.rooms.contains(&name.key()) {
                match hub.join_room(&session.speaker, &name).await {
                    Ok(Some(Joined { room, entry })) => {
                        // An IRC client is told of each channel it is put in.
                        if self.irc.is_some() {
                            let joined = room.name().clone();
                            self.joined_channel(&joined);
                        }
                        session.rooms.add(Subscription::new(
                            room,
                            entry.events,
                            session.speaker.id,
                        ));
                    }
                    Ok(None) => {}
                    // A room over the limits (lowered since they left, say)
                    // is refused as a /join would be, and they are told.
                    Err(error) => {
                        let reason = format!("you were not put back in {name}: {error}");
                        self.output.reply(&Reply::Refusal { reason });
                    }
                }
            }
            if session.rooms.contains(&name.key()) {
                rooms.push(name);
            }
        }
        let Some(left_at) = account.left_at_ms.filter(|_| hub.history().keeps_history()) else {
            return Ok(self.output.flush().await?);
        };
        let limit = self.ctx.limits.history.max(1);
        for room in rooms {
            let reply = match hub.history().since(&room.key(), left_at, limit).await {
                Ok((count, latest)) => Reply::Missed { room, count, latest },
                Err(error) => Reply::Unavailable { reason: error.to_string() },
            };
            self.output.reply(&reply);
        }
        Ok(self.output.flush().await?)
    }

    pub(crate) fn start_session(
        &mut self,
        name: Name,
        arrival: Arrival,
        registered: bool,
    ) -> (Session, Welcome) {
        let Arrival { theme, inbox, degraded, lobby } = arrival;
        if self.irc.is_some() {
            self.output.me = Some(Box::new(name.clone()));
        }
        let limits = &self.ctx.limits;
        let entry = lobby.entry;
        let last = if self.irc.is_some() { LastRoom::MayLeave } else { LastRoom::Kept };
        let first = Subscription::new(lobby.room, entry.events, self.id);
        let session = Session {
            speaker: Speaker { id: self.id, name, theme, peer: self.peer, registered },
            rooms: Memberships::new(first, last),
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
            Some(Ok(Frame::Line(line))) => match self.output.protocol().input(line) {
                Ok(line) => Ok(Some(line)),
                Err(reason) => {
                    self.output.say(&Reply::Refusal { reason }).await?;
                    Ok(None)
                }
            },
            Some(Ok(Frame::TooLong { bytes })) => {
                Stats::add(&self.ctx.hub.stats().too_long, 1);
                let limit = self.ctx.limits.max_line;
                self.output.say(&Reply::TooLong { bytes, limit }).await?;
                Ok(None)
            }
        }
    }

    /// Puts the welcome in the output; it goes out with the answer to the
    /// next line if the client sent one along with its name.
    async fn welcome(&mut self, session: &Session, welcome: Welcome) -> Result<(), End> {
        let Welcome { online, history, degraded } = welcome;
        let Speaker { name, theme, .. } = &session.speaker;
        self.output.reply(&Reply::Welcome { name: name.clone(), theme: *theme });
        if degraded {
            self.output.reply(&Reply::Degraded);
        }
        self.output.reply(&Reply::Online { online });
        if self.irc.is_some() {
            self.names_of(chat_proto::LOBBY);
        }
        self.output.reply(&Reply::Recent { room: None, lines: history });
        Ok(())
    }

    /// Writes what is pending, unless the client's next frame is here
    /// already (sent along with the line just answered, as a client that
    /// types ahead or a script does) and may be read now (`allowed`): that
    /// frame is returned, and its answer goes out in the same write, so a
    /// name and a `/join` sent together cost one write, not two.
    async fn flush_unless_input_waits(
        &mut self,
        allowed: bool,
    ) -> Result<Option<Option<Result<Frame, std::io::Error>>>, End> {
        if self.output.pending() == 0 {
            return Ok(None);
        }
        if allowed {
            let input = &mut self.input;
            let waiting = std::future::poll_fn(|cx| {
                Poll::Ready(match input.poll_next_unpin(cx) {
                    Poll::Ready(frame) => Some(frame),
                    Poll::Pending => None,
                })
            })
            .await;
            if waiting.is_some() {
                return Ok(waiting);
            }
        }
        self.output.flush().await?;
        // Nothing is pending now: an idle connection holds no buffer while it waits.
        self.output.release();
        Ok(None)
    }

    async fn chat(&mut self, session: &mut Session) -> End {
        loop {
            if session.rooms.is_idle() {
                self.output.release();
            }
            let ready_at = session.throttle.ready_at();
            let waiting = match self.flush_unless_input_waits(ready_at.is_none()).await {
                Ok(waiting) => waiting,
                Err(end) => return end,
            };
            // A line is carried out in a future of its own (boxed): a
            // command's state is large, and inline every connection's task
            // would carry it for its whole life, idle or not.
            if let Some(frame) = waiting {
                session.throttle.took_line();
                if let Err(end) = Box::pin(self.on_frame(session, frame)).await {
                    return end;
                }
                continue;
            }
            let step = tokio::select! {
                biased;
                _ = self.ctx.shutdown.cancelled() => {
                    session.rooms.drain_all(&mut self.output);
                    return End::Shutdown;
                }
                direct = session.inbox.next() => self.on_direct(session, direct).await,
                (at, delivery) = session.rooms.next() => {
                    match session.rooms.deliver(at, delivery, &mut self.output).await {
                        Ok(true) => Ok(()),
                        Ok(false) => return End::Shutdown,
                        Err(error) => Err(End::from(error)),
                    }
                }
                frame = read_when_allowed(&mut self.input, ready_at) => {
                    session.throttle.took_line();
                    Box::pin(self.on_frame(session, frame)).await
                }
                () = irc::keepalive_due(self.irc.as_deref_mut()) => Box::pin(self.keep_alive()).await,
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// Carries out what one read brought: a line, an overlong line, or the end.
    async fn on_frame(
        &mut self,
        session: &mut Session,
        frame: Option<Result<Frame, std::io::Error>>,
    ) -> Result<(), End> {
        self.grow_read_buffer_for_bursts();
        match self.line_or_end(frame).await? {
            Some(line) if self.irc.is_some() => self.irc_line(session, &line).await,
            Some(line) => command::execute(&self.ctx, session, &mut self.output, &line).await,
            None => Ok(()),
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

    async fn on_direct(&mut self, session: &mut Session, direct: Direct) -> Result<(), End> {
        match direct {
            Direct::Reply(reply) => Ok(self.output.say(&reply).await?),
            Direct::Kick { reason } => Err(End::Kicked(reason)),
            Direct::Replaced => Err(End::Replaced),
            Direct::Removed { room, notice } => {
                // Boxed: rare, and inline its state would enlarge every connection's task.
                let removed = command::removed(&self.ctx, session, &mut self.output, room, notice);
                Box::pin(removed).await
            }
        }
    }

    /// Says goodbye when there is someone to say it to, closes our side, and
    /// reads until the peer closes so the goodbye is not lost to a reset.
    async fn goodbye(&mut self, end: &End) {
        if let Some(goodbye) = end.goodbye() {
            self.output.reply(&goodbye);
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
pub(crate) fn looks_like_http(line: &str) -> bool {
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
