//! One client, from greeting to goodbye.
//!
//! A connection is a single task: it asks for a name, joins the room, then
//! `select!`s over the shutdown signal, direct messages (private lines,
//! kicks), the room's broadcast queue and its own input. Output drains
//! everything already queued into one write. Input is read no faster than
//! `--rate` allows, so a flooder is slowed by TCP itself and loses nothing.
//! A reader that falls more than `--queue` lines behind skips ahead and is
//! told how many lines it missed; one that takes no bytes at all for
//! `--write-timeout` is disconnected.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chat_proto::{ChatCodec, Frame, Line, Name, Theme, sanitize_text};
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tracing::{debug, info};

use crate::backplane::wire::Wire;
use crate::command::{self, HELP, Input};
use crate::output::{Output, WriteError};
use crate::room::{ConnId, Direct, Event, Inbox, Membership, Online, RoomError, theme_index};
use crate::server::Context;
use crate::stats::Stats;
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
/// A reader whose write has waited this long steps out of the room's queue
/// until its output drains, so it holds back no sender.
const STEP_ASIDE_AFTER: Duration = Duration::from_millis(100);
/// How long a sender waits at most for the room's readers per line.
const MAX_PACING: Duration = Duration::from_secs(1);
/// How often a waiting sender looks at the queue again.
const PACING_POLL: Duration = Duration::from_millis(1);
/// Attempts at a free `guest-NNNN` name before giving up.
const GUEST_ATTEMPTS: usize = 50;

/// How a session ended; decides the goodbye line, the leave notice and the log.
#[derive(Debug)]
enum End {
    Quit(Option<String>),
    Closed,
    Lost(String),
    Stalled,
    Kicked(String),
    Shutdown,
    NameTimeout,
    Http,
}

impl End {
    fn goodbye(&self) -> Option<Line> {
        Some(match self {
            End::Quit(_) => Line::notice("Goodbye!"),
            End::Kicked(reason) => {
                Line::notice(&format!("You were removed by the operator: {reason}"))
            }
            End::Shutdown => Line::notice("The server is shutting down. Goodbye!"),
            End::NameTimeout => Line::notice("Timed out waiting for a name. Goodbye!"),
            End::Http => Line::plain(
                "This is a chat server, not a web server: connect with chat-client, nc or telnet.",
            ),
            End::Closed | End::Lost(_) | End::Stalled => return None,
        })
    }

    /// What the others read after the name: "alice left (bye)".
    fn leave_notice(&self) -> String {
        match self {
            End::Quit(Some(reason)) => format!("left ({reason})"),
            End::Quit(None) | End::Closed => "left".to_owned(),
            End::Lost(_) => "lost connection".to_owned(),
            End::Stalled => "was disconnected (not reading)".to_owned(),
            End::Kicked(reason) => format!("was kicked ({reason})"),
            End::Shutdown | End::NameTimeout | End::Http => "left".to_owned(),
        }
    }

    fn describe(&self) -> String {
        match self {
            End::Quit(reason) => format!("quit ({})", reason.as_deref().unwrap_or("no reason")),
            End::Closed => "closed by peer".to_owned(),
            End::Lost(error) => format!("lost: {error}"),
            End::Stalled => "not reading, write timed out".to_owned(),
            End::Kicked(reason) => format!("kicked: {reason}"),
            End::Shutdown => "server shutdown".to_owned(),
            End::NameTimeout => "no name in time".to_owned(),
            End::Http => "HTTP request".to_owned(),
        }
    }
}

impl From<WriteError> for End {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::Stalled => End::Stalled,
            WriteError::Io(e) => End::Lost(e.to_string()),
        }
    }
}

/// A named user's state on this connection.
struct Session {
    name: Name,
    theme: Theme,
    events: broadcast::Receiver<Arc<Event>>,
    inbox: Arc<Inbox>,
    throttle: Throttle,
}

/// What a newcomer is shown once: who is here and what was said.
struct Welcome {
    online: Online,
    history: Vec<Arc<Event>>,
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
    let stats = Arc::clone(&ctx.room.stats);
    let output = Output::new(writer, limits.color, limits.write_timeout, stats);
    let mut connection = Connection { id, peer, ctx: Arc::clone(&ctx), input, output };
    info!(%peer, id, "connected");
    let (who, end) = connection.run().await;
    if let Some((name, theme)) = who {
        let how = end.leave_notice();
        ctx.room.leave(id, &how);
        info!(%peer, id, %name, reason = %end.describe(), "disconnected");
        if let Some(bp) = &ctx.backplane {
            bp.forward(Wire::Leave { node: bp.node(), name: name.clone(), theme, how });
            bp.release(name);
        }
    } else {
        info!(%peer, id, reason = %end.describe(), "disconnected before choosing a name");
    }
    if matches!(end, End::Stalled) {
        Stats::add(&ctx.room.stats.slow_disconnects, 1);
    }
    connection.goodbye(&end).await;
}

impl<R, W> Connection<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    /// Runs the session; returns who it was (name, theme number) once named.
    async fn run(&mut self) -> (Option<(Name, usize)>, End) {
        let (mut session, welcome) = match self.choose_name().await {
            Ok(joined) => joined,
            Err(end) => return (None, end),
        };
        let end = match self.welcome(&session, welcome).await {
            Ok(()) => self.chat(&mut session).await,
            Err(end) => end,
        };
        (Some((session.name, theme_index(&session.theme))), end)
    }

    /// Greets, then reads lines until one is a name the room accepts.
    async fn choose_name(&mut self) -> Result<(Session, Welcome), End> {
        self.output.push(&Line::notice("Welcome to the chat server!"));
        self.output
            .say(&Line::notice("What is your name? (letters and digits, no spaces)"))
            .await?;
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
            let outcome = match raw.trim() {
                "" => self.join_as_guest().await,
                typed => match Name::parse(typed) {
                    Ok(name) => self.join_as(name).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                },
            };
            match outcome {
                Ok((name, membership)) => {
                    info!(peer = %self.peer, id = self.id, %name, "named");
                    let Membership { theme, online, history, events, inbox } = membership;
                    let throttle =
                        Throttle::new(self.ctx.limits.line_interval, self.ctx.limits.burst);
                    let session = Session { name, theme, events, inbox, throttle };
                    return Ok((session, Welcome { online, history }));
                }
                Err(reason) => {
                    self.output.push(&Line::notice(&format!("Sorry, {reason}.")));
                    self.output.say(&Line::notice("Choose another name:")).await?;
                }
            }
        }
    }

    /// Joins the room as `name`: free here, claimed across nodes, then admitted.
    async fn join_as(&self, name: Name) -> Result<(Name, Membership), RoomError> {
        let room = &self.ctx.room;
        if !room.is_name_free(&name) {
            return Err(RoomError::NameTaken);
        }
        let backplane = self.ctx.backplane.as_ref();
        if let Some(bp) = backplane
            && !bp.claim(&name).await
        {
            return Err(RoomError::NameTaken);
        }
        match room.join(self.id, name.clone(), self.peer) {
            Ok(membership) => {
                if let Some(bp) = backplane {
                    let theme = theme_index(&membership.theme);
                    bp.forward(Wire::Join { node: bp.node(), name: name.clone(), theme });
                }
                Ok((name, membership))
            }
            Err(error) => {
                if let Some(bp) = backplane {
                    bp.release(name);
                }
                Err(error)
            }
        }
    }

    async fn join_as_guest(&self) -> Result<(Name, Membership), String> {
        for _ in 0..GUEST_ATTEMPTS {
            let number: u32 = rand::random_range(1000..10_000);
            let Ok(name) = Name::parse(&format!("guest-{number}")) else {
                continue;
            };
            match self.join_as(name).await {
                Ok(joined) => return Ok(joined),
                Err(RoomError::NameTaken) => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
        Err("no guest name is free; please type a name".to_owned())
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
                Stats::add(&self.ctx.room.stats.too_long, 1);
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
        let Welcome { online, history } = welcome;
        let Session { name, theme, .. } = session;
        self.output.push(&Line::notice(&format!(
            "Welcome, {name}! You are {} {}. Type /help for commands.",
            theme.emoji, theme.colour
        )));
        self.output.push(&Line::notice(&online_line(&online)));
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
            if session.events.is_empty() {
                self.output.release();
            }
            let ready_at = session.throttle.ready_at();
            let step = tokio::select! {
                biased;
                _ = self.ctx.shutdown.cancelled() => {
                    self.drain_queued(&mut session.events);
                    return End::Shutdown;
                }
                direct = session.inbox.next() => self.on_direct(direct).await,
                event = session.events.recv() => self.on_events(event, session).await,
                frame = read_when_allowed(&mut self.input, ready_at) => {
                    session.throttle.took_line();
                    self.grow_read_buffer_for_bursts();
                    match self.line_or_end(frame).await {
                        Ok(Some(line)) => self.on_line(session, &line).await,
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

    /// Writes the event and everything else already queued, in one batch.
    async fn on_events(
        &mut self,
        first: Result<Arc<Event>, RecvError>,
        session: &mut Session,
    ) -> Result<(), End> {
        match first {
            Ok(event) => self.push_event(&event),
            Err(RecvError::Lagged(missed)) => self.push_missed(missed),
            Err(RecvError::Closed) => return Err(End::Shutdown),
        }
        self.take_queued(&mut session.events);
        self.flush_or_step_aside(session).await
    }

    /// Moves what is queued for us into the output buffer, up to one batch;
    /// returns whether there was anything.
    fn take_queued(&mut self, events: &mut broadcast::Receiver<Arc<Event>>) -> bool {
        let mut any = false;
        while !self.output.is_batch_full() {
            match events.try_recv() {
                Ok(event) => self.push_event(&event),
                Err(TryRecvError::Lagged(missed)) => self.push_missed(missed),
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
            any = true;
        }
        any
    }

    /// Flushes. While the socket is slow (no flush within [`STEP_ASIDE_AFTER`])
    /// and this reader is so far behind that senders wait for it, it leaves
    /// the room's queue until its output has drained, then rejoins and says
    /// how many lines went by meanwhile. A reader behind by less holds no one
    /// back and loses nothing.
    async fn flush_or_step_aside(&mut self, session: &mut Session) -> Result<(), End> {
        let mut last_progress = Instant::now();
        let mut pending = self.output.pending();
        loop {
            if let Ok(flushed) = tokio::time::timeout(STEP_ASIDE_AFTER, self.output.flush()).await {
                return Ok(flushed?);
            }
            if self.ctx.room.holds_back_senders(session.events.len()) {
                break;
            }
            if self.output.pending() < pending {
                (pending, last_progress) = (self.output.pending(), Instant::now());
            } else if last_progress.elapsed() >= self.ctx.limits.write_timeout {
                return Err(End::Stalled);
            }
        }
        let unread = session.events.len() as u64;
        let stepped_out_at = self.ctx.room.published();
        // A receiver of a channel nobody sends on: out of the room's queue.
        session.events = broadcast::channel(1).1;
        debug!(peer = %self.peer, id = self.id, "slow reader stepped out of the queue");
        self.output.flush().await?;
        let (events, published) = self.ctx.room.rejoin_queue();
        session.events = events;
        let missed = unread + published.saturating_sub(stepped_out_at);
        if missed > 0 {
            self.push_missed(missed);
        }
        Ok(self.output.flush().await?)
    }

    /// Waits while the room's readers are far behind, delivering our own
    /// queue meanwhile, so a flat-out sender moves at the readers' pace and
    /// nothing is lost. Bounded by [`MAX_PACING`].
    async fn pace(&mut self, session: &mut Session) -> Result<(), End> {
        let deadline = Instant::now() + MAX_PACING;
        while self.must_wait_for_readers() && Instant::now() < deadline {
            if self.take_queued(&mut session.events) {
                self.flush_or_step_aside(session).await?;
            } else {
                tokio::time::sleep(PACING_POLL).await;
            }
        }
        Ok(())
    }

    /// True while this room's readers, or the other daemons through the
    /// backplane, are far behind.
    fn must_wait_for_readers(&self) -> bool {
        self.ctx.room.is_backlogged()
            || self.ctx.backplane.as_ref().is_some_and(|bp| bp.is_backlogged())
    }

    /// Queues what the room had already accepted, for the last flush at shutdown.
    fn drain_queued(&mut self, events: &mut broadcast::Receiver<Arc<Event>>) {
        loop {
            match events.try_recv() {
                Ok(event) => self.push_event(&event),
                Err(TryRecvError::Lagged(missed)) => self.push_missed(missed),
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
    }

    fn push_event(&mut self, event: &Event) {
        if event.from != Some(self.id) {
            self.output.push(&event.line);
        }
    }

    fn push_missed(&mut self, missed: u64) {
        Stats::add(&self.ctx.room.stats.missed, missed);
        debug!(peer = %self.peer, id = self.id, missed, "slow reader skipped ahead");
        self.output.push(&Line::notice(&format!(
            "You missed {missed} messages: your connection is not keeping up."
        )));
    }

    async fn on_line(&mut self, session: &mut Session, raw: &str) -> Result<(), End> {
        let clean = sanitize_text(raw);
        let text = clean.trim();
        if text.is_empty() {
            return Ok(());
        }
        match command::parse(text) {
            Input::Message(message) => self.say(session, message, false).await,
            Input::Me(action) => self.say(session, action, true).await,
            Input::Help => {
                for line in HELP {
                    self.output.push(&Line::plain(line));
                }
                Ok(self.output.flush().await?)
            }
            Input::Who => {
                let members = self.ctx.room.who();
                self.output.push(&Line::notice(&format!("{} online:", members.len())));
                for member in members {
                    let you = if member.name == session.name { " (you)" } else { "" };
                    let entry = format!(
                        "  {} {} ({}){you}",
                        member.theme.emoji, member.name, member.theme.colour
                    );
                    self.output.push(&Line::plain(&entry));
                }
                Ok(self.output.flush().await?)
            }
            Input::Nick(new) => self.rename(session, new).await,
            Input::Msg { to, text } => self.whisper(session, to, text).await,
            Input::Color(Some(on)) => {
                self.output.color = on;
                let state = if on { "on" } else { "off" };
                Ok(self.output.say(&Line::notice(&format!("Colour is {state}."))).await?)
            }
            Input::Color(None) => {
                let state = if self.output.color { "on" } else { "off" };
                Ok(self
                    .output
                    .say(&Line::notice(&format!("Colour is {state}; /color on|off")))
                    .await?)
            }
            Input::Quit(reason) => Err(End::Quit(reason.map(str::to_owned))),
            Input::Usage(usage) => {
                Ok(self.output.say(&Line::notice(&format!("Usage: {usage}"))).await?)
            }
            Input::Unknown(command) => {
                let hint = format!("Unknown command /{command}; type /help for the list.");
                Ok(self.output.say(&Line::notice(&hint)).await?)
            }
        }
    }

    /// Sends a message (or a `/me` action) to the room, here and on other nodes.
    async fn say(&mut self, session: &mut Session, text: &str, action: bool) -> Result<(), End> {
        let (theme, name) = (&session.theme, &session.name);
        let line =
            if action { Line::action(theme, name, text) } else { Line::chat(theme, name, text) };
        let others = self.ctx.room.publish(Event { from: Some(self.id), line }, true);
        if let Some(bp) = &self.ctx.backplane {
            let (name, theme, text) = (name.clone(), theme_index(theme), text.to_owned());
            bp.forward_remembered(Wire::Message { node: bp.node(), name, theme, text, action });
        }
        Stats::add(&self.ctx.room.stats.messages, 1);
        if others == 0 {
            let alone = "You are alone here: nobody else received that.";
            self.output.say(&Line::notice(alone)).await?;
        }
        self.pace(session).await
    }

    async fn rename(&mut self, session: &mut Session, new: &str) -> Result<(), End> {
        let reply = match Name::parse(new) {
            Err(e) => format!("Sorry, {e}."),
            Ok(name) => match self.take_new_name(session, name).await {
                Ok(()) => format!("You are now known as {}.", session.name),
                Err(e) => format!("Sorry, {e}."),
            },
        };
        Ok(self.output.say(&Line::notice(&reply)).await?)
    }

    async fn take_new_name(&self, session: &mut Session, new: Name) -> Result<(), RoomError> {
        let room = &self.ctx.room;
        let backplane = self.ctx.backplane.as_ref();
        let same_person = new.key() == session.name.key();
        if !same_person && !room.is_name_free(&new) {
            return Err(RoomError::NameTaken);
        }
        if let Some(bp) = backplane
            && !same_person
            && !bp.claim(&new).await
        {
            return Err(RoomError::NameTaken);
        }
        let old = match room.rename(self.id, new.clone()) {
            Ok(old) => old,
            Err(error) => {
                if let Some(bp) = backplane.filter(|_| !same_person) {
                    bp.release(new);
                }
                return Err(error);
            }
        };
        info!(peer = %self.peer, id = self.id, %old, new = %new, "renamed");
        if let Some(bp) = backplane {
            let theme = theme_index(&session.theme);
            bp.forward(Wire::Rename { node: bp.node(), old: old.clone(), new: new.clone(), theme });
            if !same_person {
                bp.release(old);
            }
        }
        session.name = new;
        Ok(())
    }

    async fn whisper(&mut self, session: &Session, to: &str, text: &str) -> Result<(), End> {
        let line = Line::private(&session.theme, &session.name, text);
        let reply = match self.ctx.room.send_direct(to, Direct::Line(line)) {
            Ok(member) => Line::private_sent(&member.name, text),
            Err(RoomError::NoSuchUser) => match self.whisper_elsewhere(session, to, text) {
                Some(name) => Line::private_sent(&name, text),
                None => Line::notice(&format!("Not delivered: {}.", RoomError::NoSuchUser)),
            },
            Err(e) => Line::notice(&format!("Not delivered: {e}.")),
        };
        Ok(self.output.say(&reply).await?)
    }

    /// Sends a private message to a user on another node, if there is one by that name.
    fn whisper_elsewhere(&self, session: &Session, to: &str, text: &str) -> Option<Name> {
        let bp = self.ctx.backplane.as_ref()?;
        let (_, name) = self.ctx.room.remote_user(to)?;
        bp.forward(Wire::Private {
            node: bp.node(),
            to: name.clone(),
            from: session.name.clone(),
            theme: theme_index(&session.theme),
            text: text.to_owned(),
        });
        Some(name)
    }

    /// Says goodbye when there is someone to say it to, closes our side, and
    /// reads until the peer closes so the goodbye is not lost to a reset.
    async fn goodbye(&mut self, end: &End) {
        if let Some(line) = end.goodbye() {
            self.output.push(&line);
        }
        if matches!(end, End::Lost(_) | End::Stalled) {
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

fn online_line(online: &Online) -> String {
    let others = match online {
        Online::Many(count) => return format!("{count} others are online; /who lists them."),
        Online::Listed(others) => others,
    };
    if others.is_empty() {
        return "Nobody else is here yet.".to_owned();
    }
    let names: Vec<String> =
        others.iter().map(|m| format!("{} {}", m.theme.emoji, m.name)).collect();
    format!("Online: {}", names.join(", "))
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
