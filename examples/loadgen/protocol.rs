//! The three protocols the load generator speaks: joining, framing a message, and the few
//! server lines that need an answer or a count.
//!
//! A client is in one or more channels (rooms) and speaks in the last of them:
//!
//! - `chat` (ours): send the name and a `/join` for each room but `#lobby` (where every user
//!   starts) in one write, then read the welcome and each room's current-room notice (read with
//!   chat-proto's `classify`): one round trip, as Redis's one SUBSCRIBE; `--join-in-turn` waits
//!   for each answer before the next line instead. A message is the token and `\n`, to the
//!   current room; the sender gets no echo; `You missed N messages` counts what a lagging reader
//!   skipped.
//! - `redis`: each client SUBSCRIBEs to its channels on its own connection; a sender PUBLISHes on
//!   another one, so every subscriber, the sender's own included, receives every message.
//! - `web` (ours, through the page's WebSocket at `/ws`): an HTTP upgrade, then the same session as
//!   `chat` in JSON: each message a WebSocket text frame (masked with a zero key, which leaves the
//!   bytes as they are), each object from the server a frame whose payload ends in `\n`, so the
//!   stream still reads as lines (a frame's header lands in front of its line, or, when a length
//!   byte happens to be `\n`, as a line of its own that holds no token); `skipped` counts what a
//!   lagging reader missed.
//! - `irc`: NICK/USER, wait for 001, optionally OPER and `MODE nick +F` (ngircd's relaxed flood
//!   protection), JOIN each channel and wait for the end of its NAMES; PRIVMSG to a channel
//!   reaches everyone in it but the sender; PING gets a PONG.

use std::borrow::Cow;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use chat_proto::command::JOIN;
use chat_proto::terminal::strip_escapes;
use chat_proto::{Heard, RoomKey, RoomName, classify};
use clap::ValueEnum;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;

use crate::wire::LineReader;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// Our chat server: name, then plain lines.
    Chat,
    /// Redis pub/sub (RESP): SUBSCRIBE per client, PUBLISH from senders on separate connections.
    Redis,
    /// Minimal IRC: NICK/USER, JOIN one channel, PRIVMSG to it.
    Irc,
    /// Our chat server's web door: a WebSocket at `/ws` (point --addr at --listen-web).
    Web,
}

/// How clients join: the rooms or channels, and IRC operator credentials.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// Channel (room) names without the `#`, joined in order; messages go to the last. Our chat
    /// server puts everyone in its lobby, which therefore needs no `/join`.
    pub channels: Vec<String>,
    /// IRC operator name and password; when given, each client OPERs and sets user mode +F.
    pub oper: Option<(String, String)>,
    /// Read buffer size of each connection.
    pub read_buffer: usize,
    /// Chat: the name and every `/join` go in one write, then the answers are read in order
    /// (one round trip, as Redis's one SUBSCRIBE for every channel); false: each waits for the
    /// answer to the one before.
    pub pipelined: bool,
}

impl JoinOptions {
    /// Where this client's messages go.
    pub fn speaks_in(&self) -> &str {
        self.channels.last().map_or("", String::as_str)
    }

    /// The same options with one more channel, which becomes the one spoken in.
    pub fn and_channel(&self, channel: String) -> Self {
        let mut options = self.clone();
        options.channels.push(channel);
        options
    }
}

/// A client that has joined: its lines to read and its socket to write.
pub struct Joined {
    pub reader: LineReader<OwnedReadHalf>,
    pub writer: OwnedWriteHalf,
    /// From the first byte sent to the server's acceptance of the name (chat's welcome, IRC's
    /// 001; zero for Redis, which has no names); the rest of the join went to its channels.
    pub named_in: Duration,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Chat => "chat",
            Protocol::Redis => "redis",
            Protocol::Irc => "irc",
            Protocol::Web => "web",
        }
    }

    /// Whether a sender receives its own messages (its subscription sees its PUBLISHes).
    pub fn echoes_to_sender(self) -> bool {
        matches!(self, Protocol::Redis)
    }

    /// Whether messages go out on a separate connection from the one that receives.
    pub fn sends_separately(self) -> bool {
        matches!(self, Protocol::Redis)
    }

    /// Joins as `name` on a connected socket.
    pub async fn join(
        self,
        stream: TcpStream,
        name: &str,
        options: &JoinOptions,
    ) -> Result<Joined> {
        let (read, writer) = stream.into_split();
        let reader = LineReader::new(read, options.read_buffer);
        let mut joined = Joined { reader, writer, named_in: Duration::ZERO };
        let started = Instant::now();
        match self {
            Protocol::Chat => {
                let rooms = chat_rooms(&options.channels)?;
                if options.pipelined {
                    send(&mut joined, &chat_opening(name, &rooms)).await?;
                    await_welcome(&mut joined, name).await?;
                    joined.named_in = started.elapsed();
                    for room in &rooms {
                        await_current_room(&mut joined, room).await?;
                    }
                } else {
                    send(&mut joined, format!("{name}\n").as_bytes()).await?;
                    await_welcome(&mut joined, name).await?;
                    joined.named_in = started.elapsed();
                    for room in &rooms {
                        enter_room(&mut joined, room).await?;
                    }
                }
            }
            Protocol::Redis => join_redis(&mut joined, &options.channels).await?,
            Protocol::Irc => {
                name_irc(&mut joined, name, options).await?;
                joined.named_in = started.elapsed();
                join_irc_channels(&mut joined, &options.channels).await?;
            }
            Protocol::Web => {
                join_web(&mut joined, name, &options.channels).await?;
                joined.named_in = started.elapsed();
            }
        }
        Ok(joined)
    }

    /// Appends one message carrying `text` in this protocol's framing.
    pub fn frame_message(self, out: &mut Vec<u8>, channel: &str, text: &[u8]) {
        match self {
            Protocol::Chat => {
                out.extend_from_slice(text);
                out.push(b'\n');
            }
            Protocol::Redis => {
                out.extend_from_slice(b"*3\r\n$7\r\nPUBLISH\r\n");
                push_bulk(out, channel.as_bytes());
                push_bulk(out, text);
            }
            Protocol::Web => push_ws_text(out, text),
            Protocol::Irc => {
                out.extend_from_slice(b"PRIVMSG #");
                out.extend_from_slice(channel.as_bytes());
                out.extend_from_slice(b" :");
                out.extend_from_slice(text);
                out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// Joins one more room on a connection that has joined, and waits until the server has
    /// answered: chat's notice that the room is the current one, IRC's end of NAMES.
    pub async fn enter(self, joined: &mut Joined, room: &RoomName) -> Result<()> {
        match self {
            Protocol::Chat => enter_room(joined, room).await,
            Protocol::Irc => join_irc_channel(joined, &room.as_str()[1..]).await,
            Protocol::Redis | Protocol::Web => {
                bail!("joining one room at a time speaks chat or IRC, not {}", self.name())
            }
        }
    }

    /// Whether the server sends lines a client must answer (IRC PING).
    pub fn expects_answers(self) -> bool {
        matches!(self, Protocol::Irc)
    }

    /// A line the client must answer (IRC PING), with the answer.
    pub fn reply_to(self, line: &[u8]) -> Option<Vec<u8>> {
        match self {
            Protocol::Irc => pong_for(line),
            Protocol::Chat | Protocol::Redis | Protocol::Web => None,
        }
    }

    /// The count in a "you missed N messages" notice (our chat server's
    /// slow-reader notice), read through the server's own vocabulary.
    pub fn missed_count(self, line: &[u8]) -> Option<u64> {
        match self {
            Protocol::Chat => {}
            Protocol::Web => return skipped_count(line),
            Protocol::Redis | Protocol::Irc => return None,
        }
        let text = without_colour(std::str::from_utf8(line).ok()?);
        match classify(text.trim_end()) {
            Heard::Missed { count } => Some(count),
            _ => None,
        }
    }
}

/// A received line without its colour. A line with no escape in it (everything a `--no-color`
/// server sends) is read as it is: sanitising every line, 4 KiB presence notices included, took a
/// fifth of the load generator's CPU while 10,000 clients joined.
fn without_colour(line: &str) -> Cow<'_, str> {
    if line.contains('\x1b') { Cow::Owned(strip_escapes(line)) } else { Cow::Borrowed(line) }
}

fn push_bulk(out: &mut Vec<u8>, data: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(data.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

fn pong_for(line: &[u8]) -> Option<Vec<u8>> {
    let rest = line.strip_prefix(b"PING")?;
    let mut pong = b"PONG".to_vec();
    pong.extend_from_slice(rest);
    pong.extend_from_slice(b"\r\n");
    Some(pong)
}

/// Reads the next line as text, failing at the end of the stream.
async fn next_text(joined: &mut Joined, waiting_for: &str) -> Result<String> {
    loop {
        if let Some(line) = joined.reader.next_line() {
            return Ok(String::from_utf8_lossy(line).into_owned());
        }
        let (n, _) = joined
            .reader
            .fill()
            .await
            .with_context(|| format!("reading while waiting for {waiting_for}"))?;
        if n == 0 {
            bail!("the server closed the connection while we waited for {waiting_for}");
        }
    }
}

async fn send(joined: &mut Joined, bytes: &[u8]) -> Result<()> {
    joined.writer.write_all(bytes).await.context("writing to the server")
}

/// The rooms a chat client `/join`s: every channel but the lobby, where the server puts everyone.
fn chat_rooms(channels: &[String]) -> Result<Vec<RoomName>> {
    let lobby = RoomName::lobby().key();
    let mut rooms = Vec::new();
    for channel in channels {
        let room = RoomName::parse(channel)
            .map_err(|e| anyhow!("--channel or room {channel:?} is no room name: {e}"))?;
        if room.key() != lobby {
            rooms.push(room);
        }
    }
    Ok(rooms)
}

/// The name, then a `/join` per room, as one write. The name may go before the prompt arrives:
/// the server reads it after greeting, and the lines after it once the name is accepted.
fn chat_opening(name: &str, rooms: &[RoomName]) -> Vec<u8> {
    let mut opening = format!("{name}\n");
    for room in rooms {
        opening.push_str(&join_line(room));
    }
    opening.into_bytes()
}

fn join_line(room: &RoomName) -> String {
    format!("/{} {}\n", JOIN.name, room.as_str())
}

async fn await_welcome(joined: &mut Joined, name: &str) -> Result<()> {
    loop {
        let line = next_text(joined, "the welcome").await?;
        match classify(without_colour(&line).trim_end()) {
            Heard::Welcome { name: welcomed } if welcomed == name => return Ok(()),
            Heard::Refusal { reason } => bail!("name {name} refused: {reason}"),
            _ => {}
        }
    }
}

/// `/join`s a room on our chat server and waits until the server says it is the current one.
async fn enter_room(joined: &mut Joined, room: &RoomName) -> Result<()> {
    send(joined, join_line(room).as_bytes()).await?;
    await_current_room(joined, room).await
}

/// Reads until the server says `room` is the current one.
async fn await_current_room(joined: &mut Joined, room: &RoomName) -> Result<()> {
    let waiting_for = format!("the current room to become {}", room.as_str());
    loop {
        let line = next_text(joined, &waiting_for).await?;
        match classify(without_colour(&line).trim_end()) {
            Heard::CurrentRoom { room: now } if RoomKey::of(now) == room.key() => {
                return Ok(());
            }
            Heard::Refusal { reason } => bail!("joining {} refused: {reason}", room.as_str()),
            _ => {}
        }
    }
}

/// A client's WebSocket text frame: FIN, opcode 1, masked with a zero key.
fn push_ws_text(out: &mut Vec<u8>, payload: &[u8]) {
    out.push(0x81);
    match payload.len() {
        len @ 0..=125 => out.push(0x80 | len as u8),
        len @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(payload);
}

/// The count of a web door's `skipped` object (`{"count":N,...,"type":"skipped"}`).
fn skipped_count(line: &[u8]) -> Option<u64> {
    memchr::memmem::find(line, b"\"type\":\"skipped\"")?;
    let at = memchr::memmem::find(line, b"\"count\":")? + b"\"count\":".len();
    let digits = line[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&line[at..at + digits]).ok()?.parse().ok()
}

/// Upgrades to a WebSocket at `/ws`, takes `name`, and joins the rooms as `join_chat` does.
async fn join_web(joined: &mut Joined, name: &str, channels: &[String]) -> Result<()> {
    let host = joined.writer.peer_addr().context("the server's address")?;
    let upgrade = format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: bG9hZGdlbiBrZXkgMTIzNA==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    send(joined, upgrade.as_bytes()).await?;
    let status = next_text(joined, "the upgrade's answer").await?;
    if !status.contains(" 101 ") {
        bail!("the web door did not upgrade to a WebSocket: {status}");
    }
    while !next_text(joined, "the end of the upgrade's headers").await?.is_empty() {}
    let mut frame = Vec::new();
    push_ws_text(&mut frame, name.as_bytes());
    send(joined, &frame).await?;
    loop {
        let line = next_text(joined, "the welcome").await?;
        if line.contains("\"type\":\"welcome\"") {
            break;
        }
        if line.contains("\"type\":\"refusal\"") || line.contains("\"type\":\"refused\"") {
            bail!("name {name} refused: {line}");
        }
    }
    let lobby = RoomName::lobby().key();
    for channel in channels {
        let room = RoomName::parse(channel)
            .map_err(|e| anyhow!("--channel or room {channel:?} is no room name: {e}"))?;
        if room.key() == lobby {
            continue;
        }
        frame.clear();
        push_ws_text(&mut frame, format!("/{} {}", JOIN.name, room.as_str()).as_bytes());
        send(joined, &frame).await?;
        let current = format!("\"room\":\"{}\"", room.as_str());
        loop {
            let line = next_text(joined, "the joined room to become current").await?;
            if line.contains("\"type\":\"current\"") && line.contains(&current) {
                break;
            }
            if line.contains("\"type\":\"refusal\"") {
                bail!("joining {} refused: {line}", room.as_str());
            }
        }
    }
    Ok(())
}

/// SUBSCRIBEs to every channel at once and waits for the reply that counts them all.
async fn join_redis(joined: &mut Joined, channels: &[String]) -> Result<()> {
    send(joined, format!("SUBSCRIBE {}\r\n", channels.join(" ")).as_bytes()).await?;
    let mut confirmed = false;
    loop {
        let line = next_text(joined, "the SUBSCRIBE reply").await?;
        if line.starts_with('-') {
            bail!("SUBSCRIBE refused: {line}");
        }
        if line == "subscribe" {
            confirmed = true;
        } else if confirmed && let Some(count) = line.strip_prefix(':') {
            if count.parse() == Ok(channels.len()) {
                return Ok(());
            }
            confirmed = false;
        }
    }
}

async fn name_irc(joined: &mut Joined, nick: &str, options: &JoinOptions) -> Result<()> {
    send(joined, format!("NICK {nick}\r\nUSER {nick} 0 * :loadgen\r\n").as_bytes()).await?;
    irc_wait(joined, "001 (welcome)", |code, _| code == "001").await?;
    if let Some((name, password)) = &options.oper {
        send(joined, format!("OPER {name} {password}\r\n").as_bytes()).await?;
        irc_wait(joined, "381 (you are an operator)", |code, _| code == "381").await?;
        send(joined, format!("MODE {nick} +F\r\n").as_bytes()).await?;
        irc_wait(joined, "MODE +F", |code, line| code == "MODE" && line.contains("+F")).await?;
    }
    Ok(())
}

async fn join_irc_channels(joined: &mut Joined, channels: &[String]) -> Result<()> {
    for channel in channels {
        join_irc_channel(joined, channel).await?;
    }
    Ok(())
}

/// JOINs `#channel` and waits for the end of its NAMES, which a server sends once it has added
/// the client to the channel.
async fn join_irc_channel(joined: &mut Joined, channel: &str) -> Result<()> {
    send(joined, format!("JOIN #{channel}\r\n").as_bytes()).await?;
    irc_wait(joined, "366 (end of NAMES)", |code, _| code == "366").await
}

/// Reads IRC lines, answering PINGs, until `done(command, line)`; fails on an error numeric.
async fn irc_wait(
    joined: &mut Joined,
    what: &str,
    done: impl Fn(&str, &str) -> bool,
) -> Result<()> {
    loop {
        let line = next_text(joined, what).await?;
        if let Some(pong) = pong_for(line.as_bytes()) {
            send(joined, &pong).await?;
            continue;
        }
        if line.starts_with("ERROR") {
            bail!("the IRC server said: {line}");
        }
        let command = line.strip_prefix(':').and_then(|rest| rest.split(' ').nth(1)).unwrap_or("");
        if done(command, &line) {
            return Ok(());
        }
        // 4xx and 5xx numerics are errors (432 bad nick, 433 nick in use, 464 bad password...).
        if command.len() == 3 && matches!(command.as_bytes()[0], b'4' | b'5') {
            return Err(anyhow!("the IRC server refused while we waited for {what}: {line}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_replies() {
        let mut out = Vec::new();
        Protocol::Redis.frame_message(&mut out, "lg", b"hi there");
        assert_eq!(out, b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nlg\r\n$8\r\nhi there\r\n");
        assert_eq!(
            Protocol::Irc.reply_to(b"PING :irc.local"),
            Some(b"PONG :irc.local\r\n".to_vec())
        );
        let notice = chat_proto::Line::notice(&chat_proto::vocabulary::missed(1234));
        assert_eq!(Protocol::Chat.missed_count(notice.bytes(true)), Some(1234));
        assert_eq!(Protocol::Chat.missed_count(notice.bytes(false)), Some(1234));
        assert_eq!(Protocol::Chat.missed_count(b"*** You missed nothing"), None);
        let skipped = b"\x81\x2c{\"count\":42,\"room\":null,\"type\":\"skipped\"}";
        assert_eq!(Protocol::Web.missed_count(skipped), Some(42));
        let mut frame = Vec::new();
        Protocol::Web.frame_message(&mut frame, "", b"hi");
        assert_eq!(frame, b"\x81\x82\0\0\0\0hi");
        frame.clear();
        push_ws_text(&mut frame, &[b'x'; 300]);
        assert_eq!(&frame[..4], &[0x81, 0xFE, 0x01, 0x2C]);
    }
}
