//! The seam between the one session and the doors it is reached through.
//!
//! A session (naming and login, commands, rooms, pacing, stepping aside,
//! the goodbye) is written once, in `connection`, `command`, `session` and
//! `subscription`, and speaks in [`Event`]s and [`Reply`]s. A door
//! implements [`Protocol`]: how an event delivered from a room and a reply
//! read on its wire, and how a line the user sent reads as the chat's
//! commands. The session writes what a protocol renders into its output
//! ([`Sink`]), which batches and writes the bytes.
//!
//! Doors: [`text::TEXT`], the text protocol of netcat, telnet, TLS and the
//! bundled client (`--listen`, `--listen-tls`); [`json::JSON`], one JSON
//! object per line for programs (`--listen-json`); `crate::irc::IRC`, IRC
//! messages and numerics (`--listen-irc`).

pub mod json;
pub mod text;

use bytes::Bytes;

use crate::event::Event;
use crate::reply::Reply;
use crate::room::Room;

/// An event as one reader is shown it: the line, and a part in front of it
/// (the text protocol's `[#room] ` tag for a room that is not current).
pub struct Rendered<'a> {
    pub before: Option<&'a Bytes>,
    pub line: &'a Bytes,
}

/// Where a protocol puts what it renders: the connection's output.
pub trait Sink {
    /// Appends one whole line (or message), ending as the wire wants.
    fn put(&mut self, line: &Bytes);
    /// Whether this reader wants colour (`--no-color`, `/color`).
    fn color(&self) -> bool;
    /// The reader's own name once it has one: IRC addresses every reply to it.
    fn me(&self) -> Option<&chat_proto::Name> {
        None
    }
}

/// How one door shows events and replies, and reads what its user sends.
pub trait Protocol: Send + Sync + 'static {
    /// `event`, delivered from `room`, as this reader is shown it
    /// (`current`: that is the reader's current room; `color`: the reader
    /// wants colour). The bytes are the event's cached rendering, shared by
    /// every reader: the hot path of every delivery, so one call, no copy.
    fn event<'a>(
        &self,
        event: &'a Event,
        room: &'a Room,
        current: bool,
        color: bool,
    ) -> Rendered<'a>;

    /// Appends `reply`.
    fn reply(&self, reply: &Reply, sink: &mut dyn Sink);

    /// A line the user sent, as the chat's commands read it (`/join
    /// #rust`, or a message), or why it is not one.
    fn input(&self, line: String) -> Result<String, String>;

    /// True for the text protocol (whose listeners the log names as chat listeners).
    fn is_text(&self) -> bool {
        false
    }

    /// True for the IRC door, whose registration and commands are its own
    /// (see `crate::irc`) over the same session.
    fn is_irc(&self) -> bool {
        false
    }
}

/// A reply rendered on its own, for a connection refused before any
/// session starts (the server is full, say): no colour.
pub fn standalone(protocol: &dyn Protocol, reply: &Reply) -> Bytes {
    let mut bytes = bytes::BytesMut::new();
    protocol.reply(reply, &mut Collected(&mut bytes));
    bytes.freeze()
}

/// Collects what a protocol renders into one buffer.
struct Collected<'a>(&'a mut bytes::BytesMut);

impl Sink for Collected<'_> {
    fn put(&mut self, line: &Bytes) {
        self.0.extend_from_slice(line);
    }

    fn color(&self) -> bool {
        false
    }
}
