//! The answers a session gives its own user, as data: every door renders
//! them its own way (see [`crate::protocol`]).
//!
//! The session (naming, login, commands, the goodbye) says what it means
//! with a [`Reply`]: a refusal with its reason, a member list, a page of
//! history, a welcome. Nothing here is worded: the text protocol words
//! each reply as the lines PRODUCT.md describes (through
//! `chat_proto::vocabulary`, which the client reads back), the JSON
//! protocol writes one object with a `type`.

use std::sync::Arc;

use chat_proto::{Name, RoomName, Theme};

use crate::event::{Event, Moderated};
use crate::moderation::{Ban, Topic};
use crate::room::{Listing, Online};
use crate::rooms::RoomListing;
use crate::store::Stored;

/// Something the server tells one user.
#[derive(Debug, Clone)]
pub enum Reply {
    /// The first words on connect.
    Greeting,
    /// Asks for a name; `again` after a refusal.
    NamePrompt { again: bool },
    /// The name chosen is registered: its password, please.
    PasswordPrompt { name: Name },
    /// What was asked is refused, and why.
    Refusal { reason: String },
    /// A line over `--max-line` was discarded.
    TooLong { bytes: usize, limit: usize },
    /// In, under this name and theme.
    Welcome { name: Name, theme: Theme },
    /// The room reaches only this daemon's users until the backplane is back.
    Degraded,
    /// The backplane is back: the room is whole again.
    WholeAgain,
    /// Who else is in the room just entered.
    Online { online: Online },
    /// The recent lines of a room just entered (`room`: named after `/join`).
    Recent { room: Option<RoomName>, lines: Vec<Arc<Event>> },
    /// The commands this user may use, for `/help`.
    Help { needs: chat_proto::command::Needs },
    /// `/who`: the members of a room, `me` marked.
    Members { room: String, members: Vec<Listing>, me: Name, topic: Option<Box<Topic>> },
    /// `/join` of a room not joined before.
    Joined { room: RoomName, online: Online },
    /// `/part`.
    Left { room: RoomName },
    /// Plain lines now go to this room.
    NowIn { room: RoomName },
    /// `/rooms`: the rooms with members, each marked when it is ours.
    Rooms { rooms: Vec<(RoomListing, Mine)> },
    /// `/history` or `/search`: a page of stored lines.
    Found { page: Page, lines: Vec<Stored> },
    /// `/history` or `/search` on a daemon that keeps no history (`--db none`).
    NoHistoryKept,
    /// The history could not answer.
    Unavailable { reason: String },
    /// A private message from someone.
    Private { from: Name, theme: Theme, text: String },
    /// Our own private message, as delivered.
    PrivateSent { to: Name, text: String },
    /// A private message that could not be delivered.
    NotDelivered { reason: String },
    /// Nobody else in the current room received that.
    Alone,
    /// Colour on or off for this connection (`asked`: `/color` alone).
    Colour { on: bool, asked: bool },
    /// How a command is used.
    Usage { usage: &'static str },
    /// `/search` with nothing searchable in it.
    NothingToSearch,
    /// No such command.
    Unknown { command: String },
    /// `/nick` took effect.
    Renamed { name: Name },
    /// `/register` took effect.
    Registered { name: Name },
    /// `/register` of a name that is the user's already.
    RegisteredAlready { name: Name },
    /// `/password` took effect.
    PasswordChanged,
    /// `/unregister` took effect.
    Unregistered { name: Name },
    /// What a returning registered user missed in one room.
    Missed { room: RoomName, count: u64, latest: Vec<Stored> },
    /// The reader fell behind and skipped this many lines (`room`: when
    /// it is not the reader's current one).
    Skipped { count: u64, room: Option<RoomName> },
    /// The last words before the server closes the connection.
    Goodbye(Farewell),
    /// A moderation action: the one who took it, or its target, is told.
    Moderated(Box<Moderated>),
    /// `/bans`: the bans of a room, or of the server (`room: None`).
    Bans { room: Option<RoomName>, bans: Vec<Ban> },
    /// A room's topic (on `/join`, or asked with `/topic` alone).
    Topic { room: RoomName, topic: Option<Box<Topic>> },
    /// A line refused because its sender is muted there (`room: None`: everywhere).
    Muted { room: Option<RoomName>, until_ms: Option<i64> },
    /// The server refuses the connection itself (full, too many from one address).
    Turned { reason: String },
    /// A console command a server operator typed (`/say`, `/stats`): the console's answer.
    Console { text: String },
}

/// Which of the listed rooms are the reader's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mine {
    No,
    Yes,
    Current,
}

/// What a page of stored lines answers.
#[derive(Debug, Clone)]
pub enum Page {
    /// `/history`: the last lines of a room.
    History { room: RoomName },
    /// `/search WORDS`.
    Search { room: RoomName, words: String },
}

/// Why the server is closing the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Farewell {
    /// The answer to `/quit`.
    Quit,
    Kicked {
        reason: String,
    },
    /// The registered name logged in on another connection.
    Replaced,
    Shutdown,
    NameTimeout,
    /// A web browser found the chat port.
    NotHttp,
}
