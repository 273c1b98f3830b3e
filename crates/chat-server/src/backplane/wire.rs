//! What daemons tell each other through Redis, and how it is spelled.
//!
//! One Redis message is one [`Wire`] event: a tag, the sending node's id, and
//! tab-separated fields, the free text last. Sanitised text holds no tab or
//! newline, so no escaping is needed. Decoding trusts nothing: names and
//! room names are validated again, themes are bounds-checked, text is
//! sanitised again, so a stranger with access to Redis cannot make a node
//! emit an escape sequence.

use chat_proto::{Name, RoomName, THEMES, sanitize_text};

use crate::moderation::{Change, Row};

/// A daemon's identity on the backplane, random per process.
pub use crate::room::NodeId;

/// The spelling of [`Wire::Moderation`]'s row this version writes and
/// reads; a row of another version is refused (and so logged and ignored).
pub const MODERATION_VERSION: &str = "1";

/// Members listed per roster message, so one message stays small.
pub const ROSTER_CHUNK: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    /// A chat line (`action`: from `/me`) in a room.
    Message {
        node: NodeId,
        room: RoomName,
        name: Name,
        theme: usize,
        text: String,
        action: bool,
    },
    /// A user entered a room: by `/join`, or (`arrival`) by arriving on
    /// their server, which means entering `#lobby`.
    Join {
        node: NodeId,
        name: Name,
        theme: usize,
        room: RoomName,
        arrival: bool,
    },
    /// A user left one room.
    Part {
        node: NodeId,
        name: Name,
        room: RoomName,
    },
    /// A user left their server, so every room.
    Leave {
        node: NodeId,
        name: Name,
        theme: usize,
        how: String,
    },
    Rename {
        node: NodeId,
        old: Name,
        new: Name,
        theme: usize,
    },
    /// An operator's `/say`, to these rooms.
    Announcement {
        node: NodeId,
        rooms: Vec<RoomName>,
        text: String,
    },
    /// A private message for a user on the receiving node.
    Private {
        node: NodeId,
        to: Name,
        from: Name,
        theme: usize,
        text: String,
    },
    /// The owner of a registered name logged in on the sending node: the
    /// node where `name` is connected closes that older connection.
    Replace {
        node: NodeId,
        name: Name,
    },
    /// "I am alive"; a node silent for a few heartbeats is gone.
    Heartbeat {
        node: NodeId,
    },
    /// A node (re)joined the backplane and asks the others for their rosters.
    Hello {
        node: NodeId,
    },
    /// Some of a node's users and their rooms (one chunk of at most [`ROSTER_CHUNK`]).
    Roster {
        node: NodeId,
        first: bool,
        members: Vec<RosterEntry>,
    },
    /// A node is shutting down; its members are gone.
    Goodbye {
        node: NodeId,
    },
    /// `who` kicked out of `room` (or, `None`, off the server) on the
    /// sending node: the node where they are puts them out, and every node
    /// tells its members of the room.
    Kick {
        node: NodeId,
        who: Name,
        room: Option<RoomName>,
        by: String,
        reason: String,
    },
    /// A moderation change made on the sending node (a ban, a mute, an
    /// owner, a room operator, a topic, or its removal), already kept in
    /// the shared store: every other node applies it.
    Moderation {
        node: NodeId,
        change: Change,
    },
}

/// One user of a node's roster: name, theme and rooms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterEntry {
    pub name: Name,
    pub theme: usize,
    pub rooms: Vec<RoomName>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub String);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed backplane message: {}", self.0)
    }
}

impl Wire {
    pub fn node(&self) -> NodeId {
        match self {
            Wire::Message { node, .. }
            | Wire::Join { node, .. }
            | Wire::Part { node, .. }
            | Wire::Leave { node, .. }
            | Wire::Rename { node, .. }
            | Wire::Announcement { node, .. }
            | Wire::Private { node, .. }
            | Wire::Replace { node, .. }
            | Wire::Heartbeat { node }
            | Wire::Hello { node }
            | Wire::Roster { node, .. }
            | Wire::Goodbye { node }
            | Wire::Kick { node, .. }
            | Wire::Moderation { node, .. } => *node,
        }
    }

    pub fn encode(&self) -> String {
        match self {
            Wire::Message { node, room, name, theme, text, action } => {
                let tag = if *action { "A" } else { "M" };
                format!("{tag}\t{node:x}\t{room}\t{name}\t{theme}\t{text}")
            }
            Wire::Join { node, name, theme, room, arrival } => {
                let tag = if *arrival { "E" } else { "J" };
                format!("{tag}\t{node:x}\t{name}\t{theme}\t{room}")
            }
            Wire::Part { node, name, room } => format!("D\t{node:x}\t{name}\t{room}"),
            Wire::Leave { node, name, theme, how } => {
                format!("L\t{node:x}\t{name}\t{theme}\t{how}")
            }
            Wire::Rename { node, old, new, theme } => format!("N\t{node:x}\t{old}\t{new}\t{theme}"),
            Wire::Announcement { node, rooms, text } => {
                format!("S\t{node:x}\t{}\t{text}", room_list(rooms))
            }
            Wire::Private { node, to, from, theme, text } => {
                format!("P\t{node:x}\t{to}\t{from}\t{theme}\t{text}")
            }
            Wire::Replace { node, name } => format!("X\t{node:x}\t{name}"),
            Wire::Heartbeat { node } => format!("H\t{node:x}"),
            Wire::Hello { node } => format!("O\t{node:x}"),
            Wire::Roster { node, first, members } => {
                let list: Vec<String> = members
                    .iter()
                    .map(|m| format!("{} {} {}", m.name, m.theme, room_list(&m.rooms)))
                    .collect();
                format!("R\t{node:x}\t{}\t{}", u8::from(*first), list.join("\t"))
            }
            Wire::Goodbye { node } => format!("G\t{node:x}"),
            Wire::Kick { node, who, room, by, reason } => {
                let room = room.as_ref().map(RoomName::as_str).unwrap_or_default();
                format!("K\t{node:x}\t{who}\t{room}\t{by}\t{reason}")
            }
            Wire::Moderation { node, change } => {
                let op = if matches!(change, Change::Put(_)) { "+" } else { "-" };
                let row = change.row().encode();
                format!("C\t{node:x}\t{MODERATION_VERSION}\t{op}\t{row}")
            }
        }
    }

    /// The sending node, read without decoding the rest (so a node can skip
    /// its own events cheaply).
    pub fn peek_node(bytes: &[u8]) -> Option<NodeId> {
        let mut fields = bytes.split(|&b| b == b'\t');
        fields.next()?;
        let node = std::str::from_utf8(fields.next()?).ok()?;
        NodeId::from_str_radix(node, 16).ok()
    }

    pub fn decode(bytes: &[u8]) -> Result<Wire, WireError> {
        let text = std::str::from_utf8(bytes).map_err(|_| WireError("not UTF-8".into()))?;
        let mut fields = Fields(text.split('\t'));
        let tag = fields.next("tag")?;
        let node = NodeId::from_str_radix(fields.next("node")?, 16)
            .map_err(|_| WireError("bad node id".into()))?;
        let wire = match tag {
            "M" | "A" => Wire::Message {
                node,
                room: fields.room()?,
                name: fields.name()?,
                theme: fields.theme()?,
                text: fields.rest(),
                action: tag == "A",
            },
            "J" | "E" => Wire::Join {
                node,
                name: fields.name()?,
                theme: fields.theme()?,
                room: fields.room()?,
                arrival: tag == "E",
            },
            "D" => Wire::Part { node, name: fields.name()?, room: fields.room()? },
            "L" => Wire::Leave {
                node,
                name: fields.name()?,
                theme: fields.theme()?,
                how: fields.rest(),
            },
            "N" => Wire::Rename {
                node,
                old: fields.name()?,
                new: fields.name()?,
                theme: fields.theme()?,
            },
            "S" => Wire::Announcement {
                node,
                rooms: parse_rooms(fields.next("rooms")?)?,
                text: fields.rest(),
            },
            "P" => Wire::Private {
                node,
                to: fields.name()?,
                from: fields.name()?,
                theme: fields.theme()?,
                text: fields.rest(),
            },
            "X" => Wire::Replace { node, name: fields.name()? },
            "H" => Wire::Heartbeat { node },
            "O" => Wire::Hello { node },
            "R" => {
                let first = fields.next("first")? == "1";
                let entries = fields.0.filter(|entry| !entry.is_empty());
                let members = entries.map(parse_member).collect::<Result<_, _>>()?;
                Wire::Roster { node, first, members }
            }
            "G" => Wire::Goodbye { node },
            "K" => Wire::Kick {
                node,
                who: fields.name()?,
                room: match fields.next("room")? {
                    "" => None,
                    room => Some(parse_room(room)?),
                },
                by: sanitize_text(fields.next("by")?),
                reason: fields.rest(),
            },
            "C" => {
                let version = fields.next("version")?;
                if version != MODERATION_VERSION {
                    return Err(WireError(format!("moderation row of version {version:?}")));
                }
                let put = match fields.next("change")? {
                    "+" => true,
                    "-" => false,
                    other => return Err(WireError(format!("bad change {other:?}"))),
                };
                let row = fields.0.by_ref().collect::<Vec<_>>().join("\t");
                let row = Row::decode(&row).map_err(|e| WireError(format!("bad row: {e}")))?;
                let change = if put { Change::Put(row) } else { Change::Remove(row) };
                Wire::Moderation { node, change }
            }
            other => return Err(WireError(format!("unknown tag {other:?}"))),
        };
        Ok(wire)
    }
}

fn parse_member(entry: &str) -> Result<RosterEntry, WireError> {
    let mut parts = entry.split(' ');
    let (Some(name), Some(theme), Some(rooms), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(WireError("bad roster entry".into()));
    };
    Ok(RosterEntry {
        name: parse_name(name)?,
        theme: parse_theme(theme)?,
        rooms: parse_rooms(rooms)?,
    })
}

/// Rooms as one field: `#a,#b` (room names hold no commas).
fn room_list(rooms: &[RoomName]) -> String {
    rooms.iter().map(RoomName::as_str).collect::<Vec<_>>().join(",")
}

fn parse_rooms(field: &str) -> Result<Vec<RoomName>, WireError> {
    field.split(',').filter(|r| !r.is_empty()).map(parse_room).collect()
}

fn parse_room(field: &str) -> Result<RoomName, WireError> {
    if !field.starts_with('#') {
        return Err(WireError(format!("bad room {field:?}")));
    }
    RoomName::parse(field).map_err(|e| WireError(format!("bad room {field:?}: {e}")))
}

fn parse_name(field: &str) -> Result<Name, WireError> {
    Name::parse(field).map_err(|e| WireError(format!("bad name {field:?}: {e}")))
}

fn parse_theme(field: &str) -> Result<usize, WireError> {
    field
        .parse::<usize>()
        .ok()
        .filter(|&t| t < THEMES.len())
        .ok_or_else(|| WireError(format!("bad theme {field:?}")))
}

struct Fields<'a>(std::str::Split<'a, char>);

impl<'a> Fields<'a> {
    fn next(&mut self, what: &str) -> Result<&'a str, WireError> {
        self.0.next().ok_or_else(|| WireError(format!("missing {what}")))
    }

    fn name(&mut self) -> Result<Name, WireError> {
        let field = self.next("name")?;
        parse_name(field)
    }

    fn room(&mut self) -> Result<RoomName, WireError> {
        let field = self.next("room")?;
        parse_room(field)
    }

    fn theme(&mut self) -> Result<usize, WireError> {
        let field = self.next("theme")?;
        parse_theme(field)
    }

    /// The remaining fields as one sanitised text (tabs could only come from a forger).
    fn rest(&mut self) -> String {
        let rest: Vec<&str> = self.0.by_ref().collect();
        sanitize_text(&rest.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::parse(s).expect("valid")
    }

    fn room(s: &str) -> RoomName {
        RoomName::parse(s).expect("valid")
    }

    fn row(s: &str) -> Row {
        Row::decode(s).expect("a row")
    }

    #[test]
    fn every_event_survives_a_round_trip() {
        let node = 0xdead_beef;
        let events = [
            Wire::Message {
                node,
                room: room("#lobby"),
                name: name("alice"),
                theme: 3,
                text: "hi: there".into(),
                action: false,
            },
            Wire::Message {
                node,
                room: room("#rust"),
                name: name("alice"),
                theme: 3,
                text: "waves".into(),
                action: true,
            },
            Wire::Join { node, name: name("bob"), theme: 0, room: room("#lobby"), arrival: true },
            Wire::Join { node, name: name("bob"), theme: 0, room: room("#lobby"), arrival: false },
            Wire::Part { node, name: name("bob"), room: room("#go") },
            Wire::Leave { node, name: name("bob"), theme: 0, how: "left (bye now)".into() },
            Wire::Rename { node, old: name("bob"), new: name("robert"), theme: 0 },
            Wire::Announcement {
                node,
                rooms: vec![room("#a"), room("#b")],
                text: "maintenance".into(),
            },
            Wire::Replace { node, name: name("alice") },
            Wire::Private {
                node,
                to: name("carol"),
                from: name("bob"),
                theme: 1,
                text: "psst".into(),
            },
            Wire::Heartbeat { node },
            Wire::Hello { node },
            Wire::Roster {
                node,
                first: true,
                members: vec![
                    RosterEntry { name: name("a"), theme: 1, rooms: vec![room("#lobby")] },
                    RosterEntry { name: name("b"), theme: 2, rooms: vec![room("#x"), room("#y")] },
                ],
            },
            Wire::Roster { node, first: false, members: vec![] },
            Wire::Goodbye { node },
            Wire::Kick {
                node,
                who: name("bob"),
                room: Some(room("#den")),
                by: "owen".into(),
                reason: "calm down".into(),
            },
            Wire::Kick {
                node,
                who: name("bob"),
                room: None,
                by: "server".into(),
                reason: "".into(),
            },
            Wire::Moderation {
                node,
                change: Change::Put(row("ban\t#rust\tmallory\towen\t5\t9\tspam")),
            },
            Wire::Moderation {
                node,
                change: Change::Remove(row("address-ban\t\t10.0.0.0/8\tserver\t6\t\t")),
            },
        ];
        for event in events {
            assert_eq!(Wire::peek_node(event.encode().as_bytes()), Some(node));
            assert_eq!(Wire::decode(event.encode().as_bytes()), Ok(event.clone()));
        }
    }

    #[test]
    fn forged_messages_are_refused_or_sanitised() {
        assert!(Wire::decode(b"M\t1\t#lobby\tserver\t0\thi").is_err(), "reserved name");
        assert!(Wire::decode(b"M\t1\t#lobby\talice\t99\thi").is_err(), "theme out of range");
        assert!(Wire::decode(b"M\t1\tlobby\talice\t0\thi").is_err(), "room without #");
        assert!(Wire::decode(b"M\t1\t#a b\talice\t0\thi").is_err(), "bad room");
        assert!(Wire::decode(b"X\t1").is_err());
        assert!(Wire::decode(b"K\t1\tbob\tden\towen\tbye").is_err(), "room without #");
        assert!(Wire::decode(b"K\t1\tserver\t\towen\tbye").is_err(), "reserved name");
        assert!(Wire::decode(b"M\tzz\t#lobby\talice\t0\thi").is_err());
        assert!(Wire::decode(b"\xff").is_err());
        let forged = Wire::decode(b"M\t1\t#lobby\talice\t0\t\x1b[2Jboom\tmore").expect("decodes");
        let Wire::Message { text, .. } = forged else { panic!("a message") };
        assert_eq!(text, "[2Jboom more");
        for forged in [
            &b"C\t1\t2\t+\tban\t#rust\tmallory\towen\t5\t\tspam"[..],
            b"C\t1\t1\t*\tban\t#rust\tmallory\towen\t5\t\tspam",
            b"C\t1\t1\t+\tban\t#rust\tserver\towen\t5\t\tspam",
            b"C\t1\t1\t+\tnuke\t#rust\tmallory\towen\t5\t\t",
            b"C\t1\t1\t+",
            b"C\t1",
            b"Q\t1\tsomething new",
        ] {
            assert!(Wire::decode(forged).is_err(), "{:?}", String::from_utf8_lossy(forged));
        }
        let forged = Wire::decode(b"C\t1\t1\t+\ttopic\t#rust\t\towen\t5\t\t\x1b[2Jhi\tthere")
            .expect("decodes");
        let Wire::Moderation { change: Change::Put(row), .. } = forged else { panic!("a row put") };
        assert_eq!(row.reason, "[2Jhi there");
    }
}
