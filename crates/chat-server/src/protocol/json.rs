//! JSON lines (`--listen-json`): one JSON object per line each way, for
//! programs that would rather not parse the text protocol's words.
//!
//! From the server, every event and reply is one object with a `type`
//! (`message`, `action`, `announcement`, `join`, `part`, `leave`,
//! `rename`, `presence` for gathered changes; `welcome`, `refusal`,
//! `members`, `rooms`, `found`, ... for replies; see `docs/json.md`).
//! Events carry the `room` they happened in. From the client, each line is
//! an object `{"line": "..."}` holding exactly what a netcat user would
//! type (`hello`, `/join #rust`, `/quit`), so every command works the same
//! through this door. An event's object is rendered once and shared by
//! every JSON reader, as the text protocol's line is.

use bytes::Bytes;
use chat_proto::{Name, RoomName, Theme};
use serde_json::{Value, json};

use super::text::PRESENCE_LINE_BYTES;
use super::{Protocol, Rendered, Sink};
use crate::event::{Event, Moderated, Presence, Said, What};
use crate::reply::{Farewell, Mine, Page, Reply};
use crate::room::{Listing, Online, Room};
use crate::store::Stored;

/// The JSON protocol, on a door of JSON lines or of WebSocket messages.
pub struct Json {
    /// Whether a line that is not a JSON object is taken as typed text (the
    /// WebSocket door, where a message is already one line) rather than
    /// refused (JSON lines, where everything must be an object).
    plain_text_input: bool,
}

/// The one instance every JSON-lines connection (`--listen-json`) uses.
pub static JSON: Json = Json { plain_text_input: false };

/// The one instance every WebSocket connection (`--listen-web`) uses: the
/// same objects, sharing each event's rendering with [`JSON`].
pub static WEB: Json = Json { plain_text_input: true };

impl Protocol for Json {
    fn event<'a>(
        &self,
        event: &'a Event,
        room: &'a Room,
        _current: bool,
        _color: bool,
    ) -> Rendered<'a> {
        let line = event.json_cache().get_or_init(|| line(&event_object(event, room.name())));
        Rendered { before: None, line }
    }

    fn reply(&self, reply: &Reply, sink: &mut dyn Sink) {
        sink.put(&line(&reply_object(reply)));
    }

    fn input(&self, line: String) -> Result<String, String> {
        if self.plain_text_input && !line.trim_start().starts_with('{') {
            return Ok(line);
        }
        let parsed: Value = serde_json::from_str(&line)
            .map_err(|e| format!("not a JSON object ({e}); send {{\"line\": \"hello\"}}"))?;
        match parsed.get("line").and_then(Value::as_str) {
            Some(text) => Ok(text.to_owned()),
            None => Err("a JSON object with a string \"line\" was expected".to_owned()),
        }
    }
}

/// One object as a line of its own.
fn line(value: &Value) -> Bytes {
    let mut bytes = value.to_string().into_bytes();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn who(name: &Name, theme: &Theme) -> Value {
    json!({ "name": name.as_str(), "emoji": theme.emoji, "colour": theme.colour, "css": theme.css })
}

fn event_object(event: &Event, room: &RoomName) -> Value {
    let mut object = timed_object(event);
    object["room"] = json!(room.as_str());
    object
}

/// What happened, and when (`at_ms`).
fn timed_object(event: &Event) -> Value {
    let mut object = what_object(&event.what);
    object["at_ms"] = json!(event.at_ms);
    object
}

fn what_object(what: &What) -> Value {
    match what {
        What::Said(said) => said_object(said),
        What::Presence(change) => presence_object(change),
        What::Moderated(what) => moderated_object(what),
        What::Gathered(gathered) => {
            gathered_object(gathered.changes().iter().map(|(change, _)| change))
        }
    }
}

/// Many joins and leaves in one object: each listed, up to an object of
/// about [`PRESENCE_LINE_BYTES`] (as the text protocol's line); past that,
/// `more` counts the rest (`/who` lists everyone).
fn gathered_object<'a>(changes: impl ExactSizeIterator<Item = &'a Presence>) -> Value {
    let total = changes.len();
    let (mut listed, mut bytes) = (Vec::new(), 0);
    for change in changes {
        let object = presence_object(change);
        let size = object.to_string().len() + 1;
        if !listed.is_empty() && bytes + size > PRESENCE_LINE_BYTES {
            break;
        }
        bytes += size;
        listed.push(object);
    }
    let more = total - listed.len();
    json!({ "type": "presence", "changes": listed, "more": more })
}

fn said_object(said: &Said) -> Value {
    match said {
        Said::Message(message) => {
            let kind = if message.action { "action" } else { "message" };
            let mut object = json!({ "type": kind, "text": message.text });
            object["from"] = who(&message.name, message.theme());
            object
        }
        Said::Announcement(text) => json!({ "type": "announcement", "text": text }),
    }
}

fn stored_object(stored: &Stored) -> Value {
    let mut object = said_object(&stored.said);
    object["at_ms"] = json!(stored.at_ms);
    object
}

fn presence_object(change: &Presence) -> Value {
    match change {
        Presence::Arrived { who: name, theme } => {
            json!({ "type": "join", "who": who(name, theme), "arrival": true })
        }
        Presence::Joined { who: name, theme, room } => {
            json!({ "type": "join", "who": who(name, theme), "arrival": false, "to": room.as_str() })
        }
        Presence::Parted { who: name, theme, room } => {
            json!({ "type": "part", "who": who(name, theme), "from": room.as_str() })
        }
        Presence::Departed { who: name, theme, how } => {
            json!({ "type": "leave", "who": who(name, theme), "how": how })
        }
        Presence::Renamed { old, new, theme } => {
            json!({ "type": "rename", "old": old.as_str(), "who": who(new, theme) })
        }
    }
}

fn listing(member: &Listing) -> Value {
    who(&member.name, &member.theme)
}

fn online(online: &Online) -> Value {
    match online {
        Online::Listed(members) => json!(members.iter().map(listing).collect::<Vec<_>>()),
        Online::Many(count) => json!({ "count": count }),
    }
}

fn reply_object(reply: &Reply) -> Value {
    match reply {
        Reply::Greeting => json!({ "type": "greeting" }),
        Reply::NamePrompt { again } => json!({ "type": "name_prompt", "again": again }),
        Reply::PasswordPrompt { name } => {
            json!({ "type": "password_prompt", "name": name.as_str() })
        }
        Reply::Refusal { reason } => json!({ "type": "refusal", "reason": reason }),
        Reply::Unavailable { reason } => json!({ "type": "unavailable", "reason": reason }),
        Reply::NoHistoryKept => json!({ "type": "no_history_kept" }),
        Reply::TooLong { bytes, limit } => {
            json!({ "type": "too_long", "bytes": bytes, "limit": limit })
        }
        Reply::Welcome { name, theme } => {
            let mut object = json!({ "type": "welcome" });
            object["you"] = who(name, theme);
            object
        }
        Reply::Degraded => json!({ "type": "degraded" }),
        Reply::WholeAgain => json!({ "type": "whole_again" }),
        Reply::Online { online: members } => {
            json!({ "type": "online", "members": online(members) })
        }
        Reply::Recent { room, lines } => {
            let lines: Vec<Value> = lines.iter().map(|e| timed_object(e)).collect();
            json!({ "type": "recent", "room": room.as_ref().map(RoomName::as_str), "lines": lines })
        }
        Reply::Help { needs } => {
            json!({ "type": "help", "lines": chat_proto::command::help_lines(*needs) })
        }
        Reply::Members { room, members, me, topic } => json!({
            "type": "members",
            "room": room,
            "topic": topic.as_ref().map(|t| t.text.as_str()),
            "members": members.iter().map(listing).collect::<Vec<_>>(),
            "you": me.as_str(),
        }),
        Reply::Joined { room, online: members } => {
            json!({ "type": "joined", "room": room.as_str(), "members": online(members) })
        }
        Reply::Left { room } => json!({ "type": "left", "room": room.as_str() }),
        Reply::NowIn { room } => json!({ "type": "current", "room": room.as_str() }),
        Reply::Rooms { rooms } => {
            let rooms: Vec<Value> = rooms
                .iter()
                .map(|(room, mine)| {
                    json!({
                        "room": room.name.as_str(),
                        "users": room.users,
                        "topic": room.topic,
                        "yours": *mine != Mine::No,
                        "current": *mine == Mine::Current,
                    })
                })
                .collect();
            json!({ "type": "rooms", "rooms": rooms })
        }
        Reply::Found { page, lines } => {
            let lines: Vec<Value> = lines.iter().map(stored_object).collect();
            match page {
                Page::History { room } => {
                    json!({ "type": "history", "room": room.as_str(), "lines": lines })
                }
                Page::Search { room, words } => {
                    json!({ "type": "search", "room": room.as_str(), "words": words, "lines": lines })
                }
            }
        }
        Reply::Private { from, theme, text } => {
            let mut object = json!({ "type": "private", "text": text });
            object["from"] = who(from, theme);
            object
        }
        Reply::PrivateSent { to, text } => {
            json!({ "type": "private_sent", "to": to.as_str(), "text": text })
        }
        Reply::NotDelivered { reason } => json!({ "type": "not_delivered", "reason": reason }),
        Reply::Alone => json!({ "type": "alone" }),
        Reply::Colour { on, .. } => json!({ "type": "colour", "on": on }),
        Reply::Usage { usage } => json!({ "type": "usage", "usage": usage }),
        Reply::NothingToSearch => json!({ "type": "usage", "usage": "/search WORDS" }),
        Reply::Unknown { command } => json!({ "type": "unknown_command", "command": command }),
        Reply::Renamed { name } => json!({ "type": "renamed", "name": name.as_str() }),
        Reply::Registered { name } => json!({ "type": "registered", "name": name.as_str() }),
        Reply::RegisteredAlready { name } => {
            json!({ "type": "registered", "name": name.as_str(), "already": true })
        }
        Reply::PasswordChanged => json!({ "type": "password_changed" }),
        Reply::Unregistered { name } => json!({ "type": "unregistered", "name": name.as_str() }),
        Reply::Missed { room, count, latest } => json!({
            "type": "catch_up",
            "room": room.as_str(),
            "count": count,
            "lines": latest.iter().map(stored_object).collect::<Vec<_>>(),
        }),
        Reply::Skipped { count, room } => json!({
            "type": "skipped",
            "count": count,
            "room": room.as_ref().map(RoomName::as_str),
        }),
        Reply::Goodbye(farewell) => {
            let (reason, detail) = match farewell {
                Farewell::Quit => ("quit", None),
                Farewell::Kicked { reason } => ("kicked", Some(reason.as_str())),
                Farewell::Replaced => ("replaced", None),
                Farewell::Shutdown => ("shutdown", None),
                Farewell::NameTimeout => ("name_timeout", None),
                Farewell::NotHttp => ("not_http", None),
            };
            json!({ "type": "goodbye", "reason": reason, "detail": detail })
        }
        Reply::Turned { reason } => json!({ "type": "refused", "reason": reason }),
        Reply::Console { text } => json!({ "type": "console", "text": text }),
        Reply::Moderated(what) => moderated_object(what),
        Reply::Bans { room, bans } => {
            let bans: Vec<Value> = bans
                .iter()
                .map(|ban| {
                    json!({
                        "target": ban.target.to_string(),
                        "by": ban.by,
                        "reason": ban.reason,
                        "set_ms": ban.set_ms,
                        "until_ms": ban.until_ms,
                    })
                })
                .collect();
            json!({ "type": "bans", "room": room.as_ref().map(RoomName::as_str), "bans": bans })
        }
        Reply::Topic { room, topic } => json!({
            "type": "topic",
            "room": room.as_str(),
            "text": topic.as_ref().map(|t| t.text.as_str()),
            "by": topic.as_ref().map(|t| t.by.as_str()),
            "set_ms": topic.as_ref().map(|t| t.set_ms),
        }),
        Reply::Muted { room, until_ms } => json!({
            "type": "muted",
            "room": room.as_ref().map(RoomName::as_str),
            "until_ms": until_ms,
        }),
    }
}

/// A moderation action: `action` says which, `room` is null for the whole server.
fn moderated_object(what: &Moderated) -> Value {
    let room = |room: &Option<RoomName>| room.as_ref().map(|r| r.as_str().to_owned());
    match what {
        Moderated::Topic { room, by, text } => {
            json!({ "type": "topic", "room": room.as_str(), "by": by, "text": text })
        }
        Moderated::Kicked { who, room: r, by, reason } => json!({
            "type": "moderation", "action": "kick", "who": who.as_str(), "room": room(r),
            "by": by, "reason": reason,
        }),
        Moderated::Banned { target, room: r, by, reason, until_ms } => json!({
            "type": "moderation", "action": "ban", "who": target, "room": room(r),
            "by": by, "reason": reason, "until_ms": until_ms,
        }),
        Moderated::Unbanned { target, room: r, by } => json!({
            "type": "moderation", "action": "unban", "who": target, "room": room(r), "by": by,
        }),
        Moderated::Muted { who, room: r, by, until_ms } => json!({
            "type": "moderation", "action": "mute", "who": who.as_str(), "room": room(r),
            "by": by, "until_ms": until_ms,
        }),
        Moderated::Unmuted { who, room: r, by } => json!({
            "type": "moderation", "action": "unmute", "who": who.as_str(), "room": room(r),
            "by": by,
        }),
        Moderated::Opped { who, room: r, by } => json!({
            "type": "moderation", "action": "op", "who": who.as_str(), "room": r.as_str(),
            "by": by,
        }),
        Moderated::Deopped { who, room: r, by } => json!({
            "type": "moderation", "action": "deop", "who": who.as_str(), "room": r.as_str(),
            "by": by,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Message, Scope};

    /// What a JSON client sent, as the session reads it.
    fn typed(line: &str) -> Result<String, String> {
        JSON.input(line.to_owned())
    }

    #[test]
    fn a_line_is_read_from_its_object_and_anything_else_is_refused_with_a_reason() {
        assert_eq!(typed(r#"{"line": "/join #rust"}"#), Ok("/join #rust".to_owned()));
        assert!(typed("hello").is_err_and(|e| e.contains("JSON")));
        assert!(typed(r#"{"text": "hi"}"#).is_err_and(|e| e.contains("\"line\"")));
    }

    #[test]
    fn many_gathered_changes_are_listed_up_to_a_bound_and_the_rest_counted() {
        let theme = chat_proto::THEMES[0];
        let changes: Vec<Presence> = (0..1000)
            .map(|i| Presence::Arrived {
                who: Name::parse(&format!("user{i}")).expect("a name"),
                theme,
            })
            .collect();
        let object = gathered_object(changes.iter());
        let listed = object["changes"].as_array().expect("a list").len();
        assert!(listed > 10 && listed < 1000, "{listed} listed");
        assert_eq!(object["more"], 1000 - listed);
        assert!(
            object.to_string().len() <= PRESENCE_LINE_BYTES + 200,
            "bounded like the text line"
        );
        let few = gathered_object(changes[..3].iter());
        assert_eq!((few["changes"].as_array().map(Vec::len), &few["more"]), (Some(3), &json!(0)));
    }

    #[test]
    fn a_message_names_its_room_speaker_and_text() {
        let name = Name::parse("alice").expect("valid name");
        let message = Message { name, theme: 0, text: "<b>hi</b>".to_owned(), action: false };
        let event = Event::new(None, What::Said(Said::Message(message)), Scope::Room);
        let object = event_object(&event, &RoomName::lobby());
        assert_eq!(object["type"], "message");
        assert_eq!(object["room"], "#lobby");
        assert_eq!(object["from"]["name"], "alice");
        assert_eq!(object["text"], "<b>hi</b>", "text as text, never markup");
    }
}
