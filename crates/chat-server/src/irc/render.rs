//! The IRC door's edge: how each [`Event`] and [`Reply`] reads as IRC
//! messages and numerics.
//!
//! An event's messages are rendered once, by its first IRC reader, and
//! cached on the event with their `@time` tag and without it
//! ([`Tagged`]); which a reader gets, and whether history replayed on
//! joining comes as a `chathistory` batch, follows from the capabilities
//! it asked for ([`irc`]). Replies are addressed to
//! the reader's own nick ([`Sink::me`]). What IRC has no message for (a
//! `/help` page, a refusal) is the text protocol's wording, sent as
//! `NOTICE`s, so the words stay those of one place.

use std::fmt::Write as _;

use bytes::Bytes;
use chat_proto::{Name, RoomName};

use crate::event::{Event, Message, Moderated, Presence, Said, Tagged, What};
use crate::protocol::text::TEXT;
use crate::protocol::{Protocol, Rendered, Sink};
use crate::reply::Reply;
use crate::room::{Online, Room};
use crate::store::Stored;
use crate::utc::Utc;

/// The server's name in every message it sends, and the host of every user.
pub const SERVER: &str = "chat";
/// The network name (`NETWORK`).
pub const NETWORK: &str = "chat";

/// The IRC door's protocol; `tagged` readers get IRCv3 tags, `batched`
/// ones the history replayed on joining as a `chathistory` batch.
pub struct Irc {
    tagged: bool,
    batched: bool,
}

/// For clients that asked for no capabilities that change how lines read.
pub static IRC: Irc = Irc { tagged: false, batched: false };
static IRC_TAGGED: Irc = Irc { tagged: true, batched: false };
static IRC_BATCHED: Irc = Irc { tagged: false, batched: true };
static IRC_TAGGED_BATCHED: Irc = Irc { tagged: true, batched: true };

/// The protocol for a client that asked for tags (`server-time` or
/// `message-tags`) or not, and for `batch` or not.
pub fn irc(tagged: bool, batched: bool) -> &'static Irc {
    match (tagged, batched) {
        (false, false) => &IRC,
        (true, false) => &IRC_TAGGED,
        (false, true) => &IRC_BATCHED,
        (true, true) => &IRC_TAGGED_BATCHED,
    }
}

/// The batch reference of the history replayed on joining (one such batch
/// is open at a time, written whole).
const RECENT_BATCH: &str = "recent";

impl Protocol for Irc {
    fn event<'a>(
        &self,
        event: &'a Event,
        room: &'a Room,
        _current: bool,
        _color: bool,
    ) -> Rendered<'a> {
        let cached = event.irc_cache().get_or_init(|| render_event(event, room.name()));
        Rendered {
            before: None,
            line: if self.tagged { &cached.with_tags } else { &cached.without },
        }
    }

    fn reply(&self, reply: &Reply, sink: &mut dyn Sink) {
        let me = sink.me().map_or_else(|| "*".to_owned(), |name| name.to_string());
        let mut out =
            Out { me: &me, tagged: self.tagged, batched: self.batched, text: String::new() };
        out.reply(reply);
        if !out.text.is_empty() {
            sink.put(&Bytes::from(out.text));
        }
    }

    fn input(&self, line: String) -> Result<String, String> {
        Ok(line)
    }

    fn is_irc(&self) -> bool {
        true
    }
}

/// `nick!user@host` of a user; everyone's host is the server's name.
pub fn source(name: &str) -> String {
    let mut out = String::with_capacity(2 * name.len() + SERVER.len() + 2);
    push_source(&mut out, name);
    out
}

/// Appends `nick!user@host` of a user to `out`.
fn push_source(out: &mut String, name: &str) {
    out.push_str(name);
    out.push('!');
    push_user(out, name);
    out.push('@');
    out.push_str(SERVER);
}

/// The user part of a nick's mask (IRC user names are short ASCII words).
pub fn user_of(name: &str) -> String {
    let mut user = String::with_capacity(10);
    push_user(&mut user, name);
    user
}

fn push_user(out: &mut String, name: &str) {
    let start = out.len();
    out.extend(name.chars().filter(char::is_ascii_alphanumeric).take(10));
    if out.len() == start {
        out.push_str("user");
    }
}

/// Whose source a moderation action carries: the server's, or a person's.
fn source_of_actor(by: &str) -> String {
    if by == "server" { SERVER.to_owned() } else { source(by) }
}

/// Appends the `@time=...` tag of a line (and the space after it) to `out`.
pub fn push_time_tag(out: &mut String, at_ms: i64) {
    out.push_str("@time=");
    push_iso_time(out, at_ms);
    out.push(' ');
}

/// Appends `2026-12-07T04:01:18.123Z` for a time in milliseconds since
/// 1970, digit by digit: it is on every tagged line, so it skips
/// `format!`'s machinery.
fn push_iso_time(out: &mut String, at_ms: i64) {
    let Utc { year, month, day, hour, minute, second, millisecond } = Utc::of(at_ms);
    if (0..10_000).contains(&year) {
        push_digits(out, year, 4);
    } else {
        let _ = write!(out, "{year:04}");
    }
    for (separator, value, width) in [
        ('-', month, 2),
        ('-', day, 2),
        ('T', hour, 2),
        (':', minute, 2),
        (':', second, 2),
        ('.', millisecond, 3),
    ] {
        out.push(separator);
        push_digits(out, value, width);
    }
    out.push('Z');
}

/// Appends the last `width` decimal digits of `value` (0 ≤ value), zero-padded.
fn push_digits(out: &mut String, value: i64, width: u32) {
    for place in (0..width).rev() {
        let digit = (value / 10_i64.pow(place)).rem_euclid(10) as u8;
        out.push(char::from(b'0' + digit));
    }
}

/// Reads a time as `server-time` writes it (fraction optional), to milliseconds since 1970.
pub fn parse_iso_time(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.splitn(3, '-').map(str::parse::<i64>);
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let (time, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut time = time.splitn(3, ':').map(str::parse::<i64>);
    let (hour, minute, second) = (time.next()?.ok()?, time.next()?.ok()?, time.next()?.ok()?);
    let millisecond: i64 = format!("{fraction:0<3}").get(..3)?.parse().ok()?;
    Utc { year, month, day, hour, minute, second, millisecond }.to_ms()
}

/// An event's messages, with and without their `@time` tag. A line said
/// (nearly every event) is written once, into one buffer, and read
/// without its tag as a slice of it.
fn render_event(event: &Event, room: &RoomName) -> Tagged {
    let mut out = String::with_capacity(128);
    push_time_tag(&mut out, event.at_ms);
    let tag_len = out.len();
    if let What::Said(said) = &event.what {
        push_said(&mut out, said, room.as_str());
        out.push_str("\r\n");
        let with_tags = Bytes::from(out);
        let without = with_tags.slice(tag_len..);
        return Tagged { with_tags, without };
    }
    let tag = out;
    let (mut with_tags, mut without) = (String::new(), String::new());
    for line in event_lines(&event.what, room) {
        with_tags.push_str(&tag);
        with_tags.push_str(&line);
        with_tags.push_str("\r\n");
        without.push_str(&line);
        without.push_str("\r\n");
    }
    Tagged { with_tags: Bytes::from(with_tags), without: Bytes::from(without) }
}

/// The messages (without line ends) that tell what happened in `room`.
fn event_lines(what: &What, room: &RoomName) -> Vec<String> {
    match what {
        What::Said(said) => vec![said_line(said, room.as_str())],
        What::Presence(change) => vec![presence_line(change, room)],
        What::Moderated(what) => moderated_lines(what, room.as_str()),
        What::Gathered(gathered) => {
            gathered.changes().iter().map(|(change, _)| presence_line(change, room)).collect()
        }
    }
}

/// A message, an action (CTCP ACTION) or an announcement, to `to`.
pub fn said_line(said: &Said, to: &str) -> String {
    let mut out = String::with_capacity(64);
    push_said(&mut out, said, to);
    out
}

/// Appends [`said_line`] to `out`.
fn push_said(out: &mut String, said: &Said, to: &str) {
    out.push(':');
    match said {
        Said::Message(Message { name, text, action, .. }) => {
            push_source(out, name.as_str());
            out.push_str(" PRIVMSG ");
            out.push_str(to);
            if *action {
                out.push_str(" :\u{1}ACTION ");
                out.push_str(text);
                out.push('\u{1}');
            } else {
                out.push_str(" :");
                out.push_str(text_param(text));
            }
        }
        Said::Announcement(text) => {
            out.push_str(SERVER);
            out.push_str(" NOTICE ");
            out.push_str(to);
            out.push_str(" :");
            out.push_str(text);
        }
    }
}

/// Text as a trailing parameter: never empty (some clients drop an empty one).
fn text_param(text: &str) -> &str {
    if text.is_empty() { " " } else { text }
}

fn presence_line(change: &Presence, room: &RoomName) -> String {
    match change {
        // Arriving on the server is entering `#lobby`, the room it came through.
        Presence::Arrived { who, .. } => format!(":{} JOIN {room}", source(who.as_str())),
        Presence::Joined { who, room, .. } => format!(":{} JOIN {room}", source(who.as_str())),
        Presence::Parted { who, room, .. } => format!(":{} PART {room}", source(who.as_str())),
        Presence::Departed { who, how, .. } => format!(":{} QUIT :{how}", source(who.as_str())),
        Presence::Renamed { old, new, .. } => format!(":{} NICK :{new}", source(old.as_str())),
    }
}

/// The ban mask a target reads as: an address or range as a host, a name as a nick.
pub fn ban_mask(target: &str) -> String {
    if target.parse::<std::net::IpAddr>().is_ok() || target.parse::<ipnet::IpNet>().is_ok() {
        format!("*!*@{target}")
    } else {
        format!("{target}!*@*")
    }
}

/// A moderation action as the messages that tell it; one without a room
/// (server-wide) is a notice to `to`.
fn moderated_lines(what: &Moderated, to: &str) -> Vec<String> {
    let mode = |by: &str, room: &RoomName, change: &str| {
        format!(":{} MODE {room} {change}", source_of_actor(by))
    };
    let line = match what {
        Moderated::Topic { room, by, text } => {
            format!(":{} TOPIC {room} :{text}", source_of_actor(by))
        }
        Moderated::Kicked { who, room: Some(room), by, reason } => {
            format!(":{} KICK {room} {who} :{}", source_of_actor(by), text_param(reason))
        }
        Moderated::Banned { target, room: Some(room), by, .. } => {
            mode(by, room, &format!("+b {}", ban_mask(target)))
        }
        Moderated::Unbanned { target, room: Some(room), by } => {
            mode(by, room, &format!("-b {}", ban_mask(target)))
        }
        Moderated::Muted { who, room: Some(room), by, .. } => {
            mode(by, room, &format!("+q {}", ban_mask(who.as_str())))
        }
        Moderated::Unmuted { who, room: Some(room), by } => {
            mode(by, room, &format!("-q {}", ban_mask(who.as_str())))
        }
        Moderated::Opped { who, room, by } => mode(by, room, &format!("+o {who}")),
        Moderated::Deopped { who, room, by } => mode(by, room, &format!("-o {who}")),
        server_wide => {
            let text = crate::protocol::text::moderated(server_wide);
            format!(":{SERVER} NOTICE {to} :{text}")
        }
    };
    vec![line]
}

/// The `ISUPPORT` tokens of 005.
pub fn isupport() -> String {
    let name = chat_proto::name::MAX_NAME_CHARS;
    format!(
        "CASEMAPPING=ascii CHANTYPES=# NICKLEN={name} CHANNELLEN={} TOPICLEN={} NETWORK={NETWORK} \
         UTF8ONLY PREFIX=(o)@ CHANMODES=bq,,,nt CHATHISTORY={} MSGREFTYPES=timestamp",
        chat_proto::room::MAX_ROOM_CHARS + 1,
        super::TOPIC_LEN,
        super::CHATHISTORY_MAX,
    )
}

/// A reply being written, addressed to `me`.
struct Out<'a> {
    me: &'a str,
    tagged: bool,
    batched: bool,
    text: String,
}

impl Out<'_> {
    fn line(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push_str("\r\n");
    }

    /// A line with the `@time` tag when the reader takes tags.
    fn timed(&mut self, at_ms: i64, line: &str) {
        if self.tagged {
            push_time_tag(&mut self.text, at_ms);
        }
        self.line(line);
    }

    fn numeric(&mut self, code: &str, rest: &str) {
        let line = format!(":{SERVER} {code} {} {rest}", self.me);
        self.line(&line);
    }

    fn notice(&mut self, text: &str) {
        let line = format!(":{SERVER} NOTICE {} :{}", self.me, text_param(text));
        self.line(&line);
    }

    /// The text protocol's lines for `reply`, each a notice.
    fn as_notices(&mut self, reply: &Reply) {
        let text = crate::protocol::standalone(&TEXT, reply);
        for line in String::from_utf8_lossy(&text).split("\r\n").filter(|l| !l.is_empty()) {
            self.notice(line.strip_prefix("*** ").unwrap_or(line));
        }
    }

    /// JOIN, then the names of the room (the reader among them).
    fn joined(&mut self, room: &RoomName, online: &Online) {
        let line = format!(":{} JOIN {room}", source(self.me));
        self.line(&line);
        let mut names = vec![self.me.to_owned()];
        if let Online::Listed(others) = online {
            names.extend(others.iter().map(|l| l.name.to_string()));
        }
        self.names(room.as_str(), &names);
    }

    /// 353s of at most about 400 bytes of names each, then 366.
    pub fn names(&mut self, room: &str, names: &[String]) {
        for chunk in chunk_names(names, 400) {
            self.numeric("353", &format!("= {room} :{chunk}"));
        }
        self.numeric("366", &format!("{room} :End of /NAMES list."));
    }

    fn stored(&mut self, to: &str, stored: &Stored) {
        let line = said_line(&stored.said, to);
        self.timed(stored.at_ms, &line);
    }

    fn reply(&mut self, reply: &Reply) {
        match reply {
            Reply::Greeting
            | Reply::NamePrompt { .. }
            | Reply::PasswordPrompt { .. }
            | Reply::NowIn { .. }
            | Reply::Alone
            | Reply::PrivateSent { .. } => {}
            Reply::Welcome { name, theme } => self.welcome(name, theme),
            // The names follow from the door itself, complete however many
            // are online (`Connection::names_of`).
            Reply::Online { .. } => {
                let line = format!(":{} JOIN {}", source(self.me), RoomName::lobby());
                self.line(&line);
            }
            Reply::Joined { room, online } => self.joined(room, online),
            Reply::Recent { room, lines } => {
                let room = room.clone().unwrap_or_else(RoomName::lobby);
                let batch = (self.batched && !lines.is_empty()).then_some(RECENT_BATCH);
                let lines = lines.iter().flat_map(|event| {
                    event_lines(&event.what, &room).into_iter().map(|line| (event.at_ms, line))
                });
                push_history(&mut self.text, batch, self.tagged, room.as_str(), lines);
            }
            Reply::Left { room } => {
                let line = format!(":{} PART {room}", source(self.me));
                self.line(&line);
            }
            Reply::Renamed { name } => {
                let line = format!(":{} NICK :{name}", source(self.me));
                self.line(&line);
            }
            Reply::Private { from, text, .. } => {
                let line =
                    format!(":{} PRIVMSG {} :{}", source(from.as_str()), self.me, text_param(text));
                self.timed(crate::store::now_ms(), &line);
            }
            Reply::Missed { room, count, latest } => {
                self.as_notices(&Reply::Missed {
                    room: room.clone(),
                    count: *count,
                    latest: Vec::new(),
                });
                for stored in latest {
                    self.stored(room.as_str(), stored);
                }
            }
            Reply::TooLong { .. } => self.numeric("417", ":Input line was too long"),
            Reply::Goodbye(_) | Reply::Turned { .. } => {
                let text = crate::protocol::standalone(&TEXT, reply);
                let text = String::from_utf8_lossy(&text);
                let line = format!("ERROR :Closing link: {}", text.trim_end());
                self.line(&line);
            }
            Reply::Moderated(what) => {
                for line in moderated_lines(what, self.me) {
                    self.line(&line);
                }
            }
            Reply::Bans { room: Some(room), bans } => {
                for ban in bans {
                    let mask = ban_mask(&ban.target.to_string());
                    let set = ban.set_ms / 1000;
                    self.numeric("367", &format!("{room} {mask} {} {set}", ban.by));
                }
                self.numeric("368", &format!("{room} :End of channel ban list"));
            }
            Reply::Topic { room, topic: Some(topic) } => {
                self.numeric("332", &format!("{room} :{}", topic.text));
                let by = source_of_actor(&topic.by);
                self.numeric("333", &format!("{room} {by} {}", topic.set_ms / 1000));
            }
            Reply::Topic { room, topic: None } => {
                self.numeric("331", &format!("{room} :No topic is set"))
            }
            Reply::Muted { room: Some(room), .. } => {
                let text = crate::protocol::standalone(&TEXT, reply);
                let text = String::from_utf8_lossy(&text);
                self.numeric("404", &format!("{room} :{}", text.trim_end()));
            }
            other => self.as_notices(other),
        }
    }

    /// 001 to 005, then the message of the day, which says the reader's theme.
    fn welcome(&mut self, name: &Name, theme: &chat_proto::Theme) {
        let version = env!("CARGO_PKG_VERSION");
        self.numeric("001", &format!(":Welcome to the {NETWORK} network, {name}"));
        self.numeric("002", &format!(":Your host is {SERVER}, running chat-server {version}"));
        self.numeric(
            "003",
            ":This server keeps its rooms for people on IRC, the web and netcat alike",
        );
        self.numeric("004", &format!("{SERVER} chat-server-{version} i bnoqt bqo"));
        self.numeric("005", &format!("{} :are supported by this server", isupport()));
        self.numeric("375", &format!(":- {SERVER} Message of the day -"));
        self.numeric("372", &format!(":- Others see your lines as {} {name}.", theme.emoji));
        self.numeric("372", ":- Rooms are channels; /join #room creates one. /quote HELP lists the chat's own commands.");
        self.numeric("376", ":End of /MOTD command.");
    }
}

/// Lines of history to `channel`, each with its time when the reader
/// takes tags, inside a `chathistory` batch when one is given.
pub fn push_history(
    out: &mut String,
    batch: Option<&str>,
    tagged: bool,
    channel: &str,
    lines: impl IntoIterator<Item = (i64, String)>,
) {
    if let Some(id) = batch {
        let _ = write!(out, ":{SERVER} BATCH +{id} chathistory {channel}\r\n");
    }
    for (at_ms, line) in lines {
        match (batch, tagged) {
            (Some(id), true) => {
                let _ = write!(out, "@batch={id};time=");
                push_iso_time(out, at_ms);
                out.push(' ');
            }
            (Some(id), false) => {
                let _ = write!(out, "@batch={id} ");
            }
            (None, true) => push_time_tag(out, at_ms),
            (None, false) => {}
        }
        out.push_str(&line);
        out.push_str("\r\n");
    }
    if let Some(id) = batch {
        let _ = write!(out, ":{SERVER} BATCH -{id}\r\n");
    }
}

/// Names joined by spaces into chunks of at most about `max` bytes.
pub fn chunk_names(names: &[String], max: usize) -> Vec<String> {
    let mut chunks = vec![String::new()];
    for name in names {
        let last = chunks.last().map_or(0, String::len);
        if last > 0 && last + name.len() + 1 > max {
            chunks.push(String::new());
        }
        if let Some(chunk) = chunks.last_mut() {
            if !chunk.is_empty() {
                chunk.push(' ');
            }
            chunk.push_str(name);
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Scope;

    fn iso_time(at_ms: i64) -> String {
        let mut out = String::new();
        push_iso_time(&mut out, at_ms);
        out
    }

    #[test]
    fn times_read_back_as_written() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_time(1_796_616_078_123), "2026-12-07T04:01:18.123Z");
        assert_eq!(parse_iso_time("2026-12-07T04:01:18.123Z"), Some(1_796_616_078_123));
        assert_eq!(parse_iso_time("2024-02-29T23:59:59Z"), Some(1_709_251_199_000));
        assert_eq!(parse_iso_time("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_iso_time("yesterday"), None);
        assert_eq!(iso_time(253_402_300_800_000), "10000-01-01T00:00:00.000Z");
        for at in [0, 951_782_400_000, 1_709_251_199_999, 4_102_444_800_000] {
            assert_eq!(parse_iso_time(&iso_time(at)), Some(at));
        }
    }

    #[test]
    fn events_render_with_their_time_tag_and_without() {
        let said = |text: &str, action| {
            let name = Name::parse("Zoë_9").expect("name");
            let message = Message { name, theme: 0, text: text.to_owned(), action };
            Event::at(1_796_616_078_123, None, What::Said(Said::Message(message)), Scope::Room)
        };
        let room = RoomName::parse("#den").expect("room");
        let cases = [
            (said("hi there", false), ":Zoë_9!Zo9@chat PRIVMSG #den :hi there\r\n"),
            (said("waves", true), ":Zoë_9!Zo9@chat PRIVMSG #den :\u{1}ACTION waves\u{1}\r\n"),
            (said("", false), ":Zoë_9!Zo9@chat PRIVMSG #den : \r\n"),
        ];
        for (event, without) in cases {
            let Tagged { with_tags, without: plain } = render_event(&event, &room);
            assert_eq!(plain, without.as_bytes());
            let tagged = format!("@time=2026-12-07T04:01:18.123Z {without}");
            assert_eq!(with_tags, tagged.as_bytes());
        }
        let announced = Said::Announcement("maintenance at noon".to_owned());
        assert_eq!(said_line(&announced, "#den"), ":chat NOTICE #den :maintenance at noon");
        assert_eq!(source("ß"), "ß!user@chat");
    }

    #[test]
    fn names_are_chunked_under_the_line_limit() {
        let names: Vec<String> = (0..200).map(|i| format!("name{i:03}")).collect();
        let chunks = chunk_names(&names, 400);
        assert!(chunks.len() > 1 && chunks.iter().all(|c| c.len() <= 400));
        assert_eq!(chunks.join(" ").split(' ').count(), 200);
    }

    #[test]
    fn addresses_ban_as_hosts_and_names_as_nicks() {
        assert_eq!(ban_mask("10.0.0.0/8"), "*!*@10.0.0.0/8");
        assert_eq!(ban_mask("::1"), "*!*@::1");
        assert_eq!(ban_mask("bob"), "bob!*@*");
    }
}
