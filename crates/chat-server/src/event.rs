//! What happened, as data: the events a room hands its readers, kept by
//! the store and carried by the backplane.
//!
//! An [`Event`] says what happened ([`What`]: something said, a change of
//! presence, several changes gathered), who caused it, and which rooms it
//! went to ([`Scope`]). It holds no text of any protocol: each door
//! renders it at its own edge, and the rendering is cached on the shared
//! event, so a line read by a hundred readers of one protocol is still
//! rendered once (each protocol's cache on the event, filled by the first
//! reader of that protocol: see `protocol::text::line`). The hub builds a [`Presence`] for a local change and
//! the backplane builds the same one for a change it hears of from another
//! daemon, so a join reads the same wherever the joiner is connected.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use chat_proto::{Line, Name, RoomKey, RoomName, THEMES, Theme};

use crate::store::{Stored, now_ms};

/// Identifies one connection for the lifetime of the process.
pub type ConnId = u64;

/// Something that happened in a room, on its way to the room's readers.
#[derive(Debug)]
pub struct Event {
    /// The connection that caused it, which does not receive it.
    pub from: Option<ConnId>,
    pub what: What,
    pub scope: Scope,
    /// When it happened here, in milliseconds since 1970-01-01 UTC (for a
    /// line replayed from the store, when it was said).
    pub at_ms: i64,
    /// The text protocol's rendering, made by the first reader that needs it.
    text: OnceLock<Line>,
    /// The JSON protocol's rendering, likewise.
    json: OnceLock<Bytes>,
    /// The IRC door's rendering, likewise: with its `@time` tag, and the
    /// same bytes without it.
    irc: OnceLock<Tagged>,
}

/// A rendering that starts with IRCv3 tags, and the same without them (a
/// slice of the first: one copy serves both kinds of reader).
#[derive(Debug)]
pub struct Tagged {
    pub with_tags: Bytes,
    pub without: Bytes,
}

impl Event {
    pub fn new(from: Option<ConnId>, what: What, scope: Scope) -> Event {
        Event::at(now_ms(), from, what, scope)
    }

    /// An event that happened at `at_ms`.
    pub fn at(at_ms: i64, from: Option<ConnId>, what: What, scope: Scope) -> Event {
        Event {
            from,
            what,
            scope,
            at_ms,
            text: OnceLock::new(),
            json: OnceLock::new(),
            irc: OnceLock::new(),
        }
    }

    /// Something said, recalled from the store to be replayed to newcomers.
    pub fn recalled(stored: Stored) -> Arc<Event> {
        Arc::new(Event::at(stored.at_ms, None, What::Said(stored.said), Scope::Room))
    }

    /// Where the text protocol keeps its rendering of this event.
    pub fn text_cache(&self) -> &OnceLock<Line> {
        &self.text
    }

    /// Where the JSON protocol keeps its rendering of this event.
    pub fn json_cache(&self) -> &OnceLock<Bytes> {
        &self.json
    }

    /// Where the IRC door keeps its rendering of this event.
    pub fn irc_cache(&self) -> &OnceLock<Tagged> {
        &self.irc
    }
}

/// Joins and leaves of a busy room gathered into one notice, each with its
/// own scope.
#[derive(Debug, Clone)]
pub struct Gathered {
    changes: Arc<[(Presence, Scope)]>,
    /// Whether some change went to several rooms. When none did (joins and
    /// leaves of one room), every reader shows them all, and a notice of
    /// thousands of changes to thousands of readers is not looked through
    /// once per reader.
    across_rooms: bool,
}

impl Gathered {
    pub fn new(changes: Vec<(Presence, Scope)>) -> Self {
        let across_rooms = changes.iter().any(|(_, scope)| matches!(scope, Scope::Rooms(_)));
        Gathered { changes: changes.into(), across_rooms }
    }

    pub fn changes(&self) -> &[(Presence, Scope)] {
        &self.changes
    }

    /// True when a reader in `mine` (sorted) shows every change through room `via`.
    pub fn all_shown(&self, via: &RoomKey, mine: &[RoomKey]) -> bool {
        !self.across_rooms || self.changes.iter().all(|(_, scope)| scope.shows(via, mine))
    }

    /// For a reader who saw some of the changes through another room: an
    /// event of the rest, if any are left.
    pub fn rest(&self, via: &RoomKey, mine: &[RoomKey]) -> Option<Event> {
        let kept: Vec<(Presence, Scope)> =
            self.changes.iter().filter(|(_, scope)| scope.shows(via, mine)).cloned().collect();
        (!kept.is_empty())
            .then(|| Event::new(None, What::Gathered(Gathered::new(kept)), Scope::Room))
    }
}

/// What an event is about.
#[derive(Debug, Clone)]
pub enum What {
    /// A chat line, a `/me` action or an announcement: what history keeps.
    Said(Said),
    /// Someone came, went, moved or was renamed.
    Presence(Presence),
    /// A moderation action or a new topic, told to the room it concerns.
    Moderated(Box<Moderated>),
    /// Joins and leaves of a busy room gathered into one notice, each with
    /// its own scope: a reader that saw some of them through another room
    /// is shown the rest only.
    Gathered(Gathered),
}

/// The kinds of thing said in a room, as history keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// A chat line or a `/me` action.
    Message(Message),
    /// The operator's `/say`.
    Announcement(String),
}

impl Said {
    /// The words said, as `/search` reads them.
    pub fn text(&self) -> &str {
        match self {
            Said::Message(message) => &message.text,
            Said::Announcement(text) => text,
        }
    }
}

/// A chat message or `/me` action, as said by someone here or elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub name: Name,
    /// Position of the speaker's theme in [`THEMES`].
    pub theme: usize,
    pub text: String,
    pub action: bool,
}

impl Message {
    /// The speaker's theme (the last one for an index out of range).
    pub fn theme(&self) -> &'static Theme {
        &THEMES[self.theme.min(THEMES.len() - 1)]
    }
}

/// A change of who is where, as a room's members are told of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// Came onto the server (and so into `#lobby`).
    Arrived { who: Name, theme: Theme },
    /// Joined a room with `/join`.
    Joined { who: Name, theme: Theme, room: RoomName },
    /// Left one room with `/part`.
    Parted { who: Name, theme: Theme, room: RoomName },
    /// Left the server, `how` ("left (bye)", "lost connection", ...).
    Departed { who: Name, theme: Theme, how: String },
    /// Changed name.
    Renamed { old: Name, new: Name, theme: Theme },
}

/// A moderation action, as its target, its room and the one who took it are
/// told of it. `room: None` is the whole server; `by` is a name, or
/// `server` for the console and the control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moderated {
    Topic {
        room: RoomName,
        by: String,
        text: String,
    },
    Kicked {
        who: Name,
        room: Option<RoomName>,
        by: String,
        reason: String,
    },
    Banned {
        target: String,
        room: Option<RoomName>,
        by: String,
        reason: String,
        until_ms: Option<i64>,
    },
    Unbanned {
        target: String,
        room: Option<RoomName>,
        by: String,
    },
    Muted {
        who: Name,
        room: Option<RoomName>,
        by: String,
        until_ms: Option<i64>,
    },
    Unmuted {
        who: Name,
        room: Option<RoomName>,
        by: String,
    },
    Opped {
        who: Name,
        room: RoomName,
        by: String,
    },
    Deopped {
        who: Name,
        room: RoomName,
        by: String,
    },
}

/// Which readers of a room show an event.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Everyone in this room.
    Room,
    /// One event sent to several rooms (sorted): a reader shows it only
    /// through the first of them it is in, so it sees it once.
    Rooms(Arc<[RoomKey]>),
}

impl Scope {
    /// The scope of one event sent to each of `rooms` (sorted): with one
    /// room there is nothing to show once, and readers skip the check.
    pub fn across(rooms: &[RoomKey]) -> Scope {
        match rooms {
            [] | [_] => Scope::Room,
            several => Scope::Rooms(several.into()),
        }
    }

    /// True when a reader in `mine` (sorted) shows this through room `via`.
    /// Asked for every delivery: the one-room answer is inlined.
    #[inline(always)]
    pub fn shows(&self, via: &RoomKey, mine: &[RoomKey]) -> bool {
        match self {
            Scope::Room => true,
            Scope::Rooms(rooms) => first_of_mine_is(rooms, via, mine),
        }
    }
}

/// Whether the first of `rooms` the reader is in (`mine`, sorted) is `via`.
fn first_of_mine_is(rooms: &[RoomKey], via: &RoomKey, mine: &[RoomKey]) -> bool {
    rooms.iter().find(|room| mine.binary_search(room).is_ok()) == Some(via)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_for_several_rooms_shows_through_the_first_one_the_reader_is_in() {
        let [a, b, c] = ["#a", "#b", "#c"].map(RoomKey::of);
        let scope = Scope::Rooms(vec![a.clone(), b.clone(), c.clone()].into());
        assert!(scope.shows(&a, &[a.clone(), b.clone()]));
        assert!(!scope.shows(&b, &[a.clone(), b.clone()]));
        assert!(scope.shows(&b, &[b.clone(), c.clone()]));
        assert!(scope.shows(&c, std::slice::from_ref(&c)));
        assert!(Scope::Room.shows(&b, &[a, b.clone()]));
    }

    #[test]
    fn gathered_changes_seen_through_another_room_are_left_out_and_the_rest_shown() {
        let [a, b] = ["#a", "#b"].map(RoomKey::of);
        let change = |name: &str| Presence::Arrived {
            who: Name::parse(name).expect("valid name"),
            theme: THEMES[0],
        };
        let one_room =
            Gathered::new(vec![(change("ann"), Scope::Room), (change("bo"), Scope::Room)]);
        assert!(one_room.all_shown(&b, &[a.clone(), b.clone()]));
        let both = Scope::Rooms(vec![a.clone(), b.clone()].into());
        let mixed = Gathered::new(vec![(change("ann"), Scope::Room), (change("cy"), both)]);
        assert!(mixed.all_shown(&a, &[a.clone(), b.clone()]));
        assert!(!mixed.all_shown(&b, &[a.clone(), b.clone()]));
        let rest = mixed.rest(&b, &[a, b.clone()]).expect("ann is left");
        let What::Gathered(rest) = rest.what else { panic!("{rest:?}") };
        assert_eq!(
            rest.changes().iter().map(|(c, _)| c.clone()).collect::<Vec<_>>(),
            [change("ann")]
        );
    }
}
