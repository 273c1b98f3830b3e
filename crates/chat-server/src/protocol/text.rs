//! The text protocol's edge (netcat, telnet, TLS, the bundled client):
//! how each [`Event`] and [`Reply`] reads as lines.
//!
//! The core hands events and replies around as data; this is the one
//! place they become the lines PRODUCT.md describes. An event's line is
//! cached on the shared event ([`line`]), so a line to a hundred readers
//! is rendered once. The words a program must recognise come from
//! `chat_proto::vocabulary`, which the bundled client reads back.

use chat_proto::vocabulary::{self, room_tag};
use chat_proto::{Line, RoomName, command};

use super::{Protocol, Rendered, Sink};
use crate::event::{Event, Moderated, Presence, Said, What};
use crate::moderation::{Ban, Topic, until_text};
use crate::reply::{Farewell, Mine, Page, Reply};
use crate::room::{Listing, Room};
use crate::store::Stored;

/// The text protocol.
pub struct Text;

/// The one instance every text connection uses.
pub static TEXT: Text = Text;

impl Protocol for Text {
    fn event<'a>(
        &self,
        event: &'a Event,
        room: &'a Room,
        current: bool,
        color: bool,
    ) -> Rendered<'a> {
        Rendered { before: (!current).then(|| room.tag()), line: line(event).bytes(color) }
    }

    fn reply(&self, reply: &Reply, sink: &mut dyn Sink) {
        for line in reply_lines(reply) {
            put(sink, &line);
        }
    }

    fn input(&self, line: String) -> Result<String, String> {
        Ok(line)
    }

    fn is_text(&self) -> bool {
        true
    }
}

fn put(sink: &mut dyn Sink, line: &Line) {
    let color = sink.color();
    sink.put(line.bytes(color));
}

/// The line an event reads as, rendered by its first reader and shared by
/// the rest.
pub fn line(event: &Event) -> &Line {
    event.text_cache().get_or_init(|| render(&event.what))
}

/// Renders what an event is about as a line.
fn render(what: &What) -> Line {
    match what {
        What::Said(said) => said_line(said),
        What::Presence(change) => Line::notice(&presence(change)),
        What::Moderated(what) => Line::notice(&moderated(what)),
        What::Gathered(gathered) => Line::notice(&summarise_changes(
            gathered.changes().iter().map(|(change, _)| presence(change)),
        )),
    }
}

/// The line of something said, as it was shown live.
pub fn said_line(said: &Said) -> Line {
    match said {
        Said::Message(message) if message.action => {
            Line::action(message.theme(), &message.name, &message.text)
        }
        Said::Message(message) => Line::chat(message.theme(), &message.name, &message.text),
        Said::Announcement(text) => Line::announcement(text),
    }
}

/// A stored line with its UTC time in front: `[09:12] 🦊 alice: text`.
pub fn timed_line(stored: &Stored) -> Line {
    said_line(&stored.said).prefixed(&format!("{} ", crate::store::clock(stored.at_ms)))
}

/// The words of a presence notice: `🦊 alice joined #rust`.
pub fn presence(change: &Presence) -> String {
    match change {
        Presence::Arrived { who, theme } => format!("{} {who} joined", theme.emoji),
        Presence::Joined { who, theme, room } => format!("{} {who} joined {room}", theme.emoji),
        Presence::Parted { who, theme, room } => format!("{} {who} left {room}", theme.emoji),
        Presence::Departed { who, theme, how } => format!("{} {who} {how}", theme.emoji),
        Presence::Renamed { old, new, theme } => {
            format!("{} {old} is now known as {new}", theme.emoji)
        }
    }
}

/// The lines of a reply.
fn reply_lines(reply: &Reply) -> Vec<Line> {
    let notice = |text: &str| vec![Line::notice(text)];
    match reply {
        Reply::Greeting => notice(vocabulary::GREETING),
        Reply::NamePrompt { again: false } => notice(vocabulary::NAME_PROMPT),
        Reply::NamePrompt { again: true } => notice(vocabulary::ANOTHER_NAME_PROMPT),
        Reply::PasswordPrompt { name } => notice(&vocabulary::password_prompt(name)),
        Reply::Refusal { reason } | Reply::Unavailable { reason } => {
            notice(&vocabulary::refusal(reason))
        }
        Reply::TooLong { bytes, limit } => notice(&format!(
            "Your line ({bytes} bytes) was longer than {limit} bytes and was discarded."
        )),
        Reply::Welcome { name, theme } => notice(&vocabulary::welcome(name, theme)),
        Reply::Degraded => notice(vocabulary::DEGRADED),
        Reply::WholeAgain => notice(vocabulary::WHOLE_AGAIN),
        Reply::Online { online } => notice(&online.describe()),
        Reply::Recent { room, lines } => recent(room.as_ref(), lines),
        Reply::Help { needs } => {
            command::help_lines(*needs).iter().map(|line| Line::plain(line)).collect()
        }
        Reply::Members { room, members, me, topic } => {
            members_lines(room, members, me, topic.as_deref())
        }
        Reply::Joined { room, online } => notice(&vocabulary::joined(room, &online.describe())),
        Reply::Left { room } => notice(&vocabulary::left(room)),
        Reply::NowIn { room } => notice(&vocabulary::now_in(room)),
        Reply::Rooms { rooms } => rooms_lines(rooms),
        Reply::Found { page, lines } => found(page, lines),
        Reply::NoHistoryKept => {
            notice("This server keeps no history: /history and /search have nothing to show.")
        }
        Reply::Private { from, theme, text } => vec![Line::private(theme, from, text)],
        Reply::PrivateSent { to, text } => vec![Line::private_sent(to, text)],
        Reply::NotDelivered { reason } => notice(&format!("Not delivered: {reason}.")),
        Reply::Alone => notice(vocabulary::ALONE),
        Reply::Colour { on, asked } => {
            let state = if *on { "on" } else { "off" };
            match asked {
                false => notice(&format!("Colour is {state}.")),
                true => notice(&format!("Colour is {state}; /color on|off")),
            }
        }
        Reply::Usage { usage } => notice(&format!("Usage: {usage}")),
        Reply::NothingToSearch => {
            notice("Search for words made of letters or digits: /search WORDS")
        }
        Reply::Unknown { command } => {
            notice(&format!("Unknown command /{command}; type /help for the list."))
        }
        Reply::Renamed { name } => notice(&vocabulary::renamed(name)),
        Reply::Registered { name } => notice(&format!(
            "{name} is yours now: next time it asks for your password. \
             Without TLS, passwords cross the network in the clear."
        )),
        Reply::RegisteredAlready { name } => notice(&format!(
            "{name} is registered already; /password OLD NEW changes its password."
        )),
        Reply::PasswordChanged => notice("Your password is changed."),
        Reply::Unregistered { name } => notice(&format!("{name} is no longer registered.")),
        Reply::Missed { room, count, latest } => missed(room, *count, latest),
        Reply::Skipped { count, room } => {
            let line = Line::notice(&vocabulary::missed(*count));
            match room {
                None => vec![line],
                Some(room) => vec![line.prefixed(&room_tag(room))],
            }
        }
        Reply::Goodbye(farewell) => vec![goodbye(farewell)],
        Reply::Turned { reason } => notice(reason),
        Reply::Console { text } => text.lines().map(Line::notice).collect(),
        Reply::Moderated(what) => notice(&moderated(what)),
        Reply::Bans { room, bans } => bans_lines(room.as_ref(), bans),
        Reply::Topic { room, topic } => notice(&topic_text(room, topic.as_deref())),
        Reply::Muted { room, until_ms } => notice(&format!(
            "You are muted {} {}; your line was not sent.",
            place("in", room.as_ref()),
            until_text(*until_ms)
        )),
    }
}

/// `in #rust`, or `everywhere` for the whole server.
fn place(preposition: &str, room: Option<&RoomName>) -> String {
    match room {
        Some(room) => format!("{preposition} {room}"),
        None if preposition == "from" => "from the server".to_owned(),
        None => "everywhere".to_owned(),
    }
}

/// The words of a moderation notice: `bob is banned from #rust by alice until lifted: spam`.
pub fn moderated(what: &Moderated) -> String {
    let because =
        |reason: &str| if reason.is_empty() { String::new() } else { format!(": {reason}") };
    match what {
        Moderated::Topic { room, by, text } if text.is_empty() => {
            format!("{by} cleared the topic of {room}")
        }
        Moderated::Topic { room, by, text } => format!("{by} set the topic of {room}: {text}"),
        Moderated::Kicked { who, room, by, reason } => {
            format!("{who} was kicked {} by {by}{}", place("from", room.as_ref()), because(reason))
        }
        Moderated::Banned { target, room, by, reason, until_ms } => format!(
            "{target} is banned {} by {by} {}{}",
            place("from", room.as_ref()),
            until_text(*until_ms),
            because(reason)
        ),
        Moderated::Unbanned { target, room, by } => {
            format!("{target} is no longer banned {} ({by})", place("from", room.as_ref()))
        }
        Moderated::Muted { who, room, by, until_ms } => format!(
            "{who} is muted {} by {by} {}",
            place("in", room.as_ref()),
            until_text(*until_ms)
        ),
        Moderated::Unmuted { who, room, by } => {
            format!("{who} may speak again {} ({by})", place("in", room.as_ref()))
        }
        Moderated::Opped { who, room, by } => format!("{who} is now an operator of {room} ({by})"),
        Moderated::Deopped { who, room, by } => {
            format!("{who} is no longer an operator of {room} ({by})")
        }
    }
}

fn topic_text(room: &RoomName, topic: Option<&Topic>) -> String {
    match topic {
        Some(topic) => format!("Topic of {room}: {} (set by {})", topic.text, topic.by),
        None => format!("{room} has no topic."),
    }
}

fn bans_lines(room: Option<&RoomName>, bans: &[Ban]) -> Vec<Line> {
    let heading = match bans.len() {
        0 => format!("Nobody is banned {}.", place("from", room)),
        n => format!("{n} banned {}:", place("from", room)),
    };
    let entries = bans.iter().map(|ban| {
        let reason =
            if ban.reason.is_empty() { String::new() } else { format!(": {}", ban.reason) };
        let set = crate::store::clock(ban.set_ms);
        let until = until_text(ban.until_ms);
        Line::plain(&format!("  {} by {} {set} {until}{reason}", ban.target, ban.by))
    });
    std::iter::once(Line::notice(&heading)).chain(entries).collect()
}

fn recent(room: Option<&RoomName>, lines: &[std::sync::Arc<Event>]) -> Vec<Line> {
    if lines.is_empty() {
        return Vec::new();
    }
    let heading = match room {
        None => "Recent messages:".to_owned(),
        Some(room) => format!("Recent messages in {room}:"),
    };
    let replayed = lines.iter().map(|event| line(event).clone());
    std::iter::once(Line::notice(&heading)).chain(replayed).collect()
}

fn members_lines(
    room: &str,
    members: &[Listing],
    me: &chat_proto::Name,
    topic: Option<&Topic>,
) -> Vec<Line> {
    let heading = Line::notice(&format!("{} online in {room}:", members.len()));
    let topic = topic.map(|topic| {
        Line::notice(&format!("Topic of {room}: {} (set by {})", topic.text, topic.by))
    });
    let entries = members.iter().map(|member| {
        let you = if member.name == *me { " (you)" } else { "" };
        let (emoji, colour) = (member.theme.emoji, member.theme.colour);
        Line::plain(&format!("  {emoji} {} ({colour}){you}", member.name))
    });
    std::iter::once(heading).chain(topic).chain(entries).collect()
}

fn rooms_lines(rooms: &[(crate::rooms::RoomListing, Mine)]) -> Vec<Line> {
    let heading = Line::notice(&format!("{} rooms:", rooms.len()));
    let entries = rooms.iter().map(|(room, mine)| {
        let mark = match mine {
            Mine::Current => " (yours, current)",
            Mine::Yes => " (yours)",
            Mine::No => "",
        };
        let topic = room.topic.as_ref().map(|topic| format!(": {topic}")).unwrap_or_default();
        Line::plain(&format!("  {} ({}){mark}{topic}", room.name, room.users))
    });
    std::iter::once(heading).chain(entries).collect()
}

/// "1 message", "2 messages".
fn messages(n: usize) -> String {
    if n == 1 { "1 message".to_owned() } else { format!("{n} messages") }
}

fn found(page: &Page, lines: &[Stored]) -> Vec<Line> {
    let n = lines.len();
    let heading = match (page, n) {
        (Page::History { room }, 0) => format!("No messages in {room} yet."),
        (Page::History { room }, n) => {
            format!("The last {} in {room} (times in UTC):", messages(n))
        }
        (Page::Search { room, words }, 0) => format!("No messages in {room} contain {words}."),
        (Page::Search { room, words }, n) => {
            format!("{} in {room} with {words} (latest last, times in UTC):", messages(n))
        }
    };
    std::iter::once(Line::notice(&heading)).chain(lines.iter().map(timed_line)).collect()
}

fn missed(room: &RoomName, count: u64, latest: &[Stored]) -> Vec<Line> {
    if count == 0 {
        return vec![Line::notice(&format!("Nothing new in {room} since you left."))];
    }
    let heading = format!(
        "While you were away: {count} new in {room}; the latest {} (UTC; /history for more):",
        latest.len()
    );
    std::iter::once(Line::notice(&heading)).chain(latest.iter().map(timed_line)).collect()
}

fn goodbye(farewell: &Farewell) -> Line {
    match farewell {
        Farewell::Quit => Line::notice(vocabulary::GOODBYE),
        Farewell::Kicked { reason } => Line::notice(&vocabulary::kicked(reason)),
        Farewell::Replaced => Line::notice(vocabulary::REPLACED_GOODBYE),
        Farewell::Shutdown => Line::notice(vocabulary::SHUTDOWN_GOODBYE),
        Farewell::NameTimeout => Line::notice(vocabulary::NAME_TIMEOUT_GOODBYE),
        Farewell::NotHttp => Line::plain(vocabulary::NOT_HTTP),
    }
}

/// A gathered presence notice names everyone up to about this many bytes;
/// only past it does it say "and N more".
pub const PRESENCE_LINE_BYTES: usize = 4000;

/// One line for many joins and leaves: everyone named, up to a line of about
/// [`PRESENCE_LINE_BYTES`]; only past that, a count of the rest.
pub fn summarise_changes(changes: impl ExactSizeIterator<Item = String>) -> String {
    let total = changes.len();
    let mut line = String::new();
    for (listed, change) in changes.enumerate() {
        if !line.is_empty() && line.len() + change.len() + 2 > PRESENCE_LINE_BYTES {
            let more = total - listed;
            line.push_str(&format!(" and {more} more joined or left (/who lists everyone)"));
            return line;
        }
        if !line.is_empty() {
            line.push_str(", ");
        }
        line.push_str(&change);
    }
    line
}

#[cfg(test)]
mod tests {
    use chat_proto::{Name, RoomName, THEMES};

    use super::*;
    use crate::event::Scope;

    fn name(text: &str) -> Name {
        Name::parse(text).expect("valid name")
    }

    #[test]
    fn an_event_is_rendered_once_however_many_read_it() {
        let said = Said::Announcement("hello".to_owned());
        let event = Event::new(None, What::Said(said), Scope::Room);
        let first: *const Line = line(&event);
        let again: *const Line = line(&event);
        assert_eq!(first, again, "the cached rendering, not a second one");
    }

    #[test]
    fn an_arrival_is_told_without_a_room_and_a_join_with_one() {
        let (who, theme) = (name("alice"), THEMES[0]);
        let emoji = theme.emoji;
        let lobby = RoomName::lobby();
        let arrived = Presence::Arrived { who: who.clone(), theme };
        assert_eq!(presence(&arrived), format!("{emoji} alice joined"));
        let joined = Presence::Joined { who: who.clone(), theme, room: lobby.clone() };
        assert_eq!(presence(&joined), format!("{emoji} alice joined #lobby"));
        let parted = Presence::Parted { who, theme, room: lobby };
        assert_eq!(presence(&parted), format!("{emoji} alice left #lobby"));
    }

    #[test]
    fn a_gathered_notice_names_everyone_up_to_about_four_kilobytes() {
        let changes = (0..48).map(|i| format!("🦊 user{i} joined"));
        let line = summarise_changes(changes);
        for i in 0..48 {
            assert!(line.contains(&format!("user{i} joined")), "user{i} missing from {line}");
        }
        assert!(!line.contains("more"), "{line}");
    }

    #[test]
    fn only_past_the_limit_does_it_count_the_rest() {
        let line = summarise_changes((0..1000).map(|i| format!("🦊 user{i} joined")));
        assert!(line.len() <= PRESENCE_LINE_BYTES + 64, "{} bytes", line.len());
        let named = line.matches(" joined").count() - 1;
        assert!(named > 100, "only {named} named");
        let rest = format!("and {} more joined or left (/who lists everyone)", 1000 - named);
        assert!(line.ends_with(&rest), "{line}");
    }
}
