//! A named user's state on one connection, and how a session ends.
//!
//! [`Session`] is what a connection holds once its user is in: who they
//! are ([`Speaker`]), their rooms ([`Memberships`]: a place in each room's
//! queue, and which room is current), their direct-message inbox and their
//! input rate. [`End`] is every way a session can end; it decides the
//! goodbye line, the leave notice the others read, and the log.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;

use chat_proto::{Line, RoomKey, vocabulary};
use tokio::io::AsyncWrite;

use crate::hub::Speaker;
use crate::output::{Output, WriteError};
use crate::people::Inbox;
use crate::room::Room;
use crate::subscription::{Delivery, Drain, Subscription, View};
use crate::throttle::Throttle;

/// A named user's state on this connection.
pub struct Session {
    pub speaker: Speaker,
    pub rooms: Memberships,
    pub inbox: Arc<Inbox>,
    pub throttle: Throttle,
}

/// The rooms a connection is in, each with its place in the room's queue,
/// and the current one, where plain lines and `/me` go.
pub struct Memberships {
    /// Sorted by room key.
    list: Vec<Subscription>,
    /// The keys of `list`, in the same order.
    keys: Vec<RoomKey>,
    current: RoomKey,
    /// Where the next wait starts looking, so no room starves the others.
    turn: usize,
}

impl Memberships {
    /// In one room, which is current.
    pub fn new(first: Subscription) -> Self {
        let key = first.room().key().clone();
        Memberships { list: vec![first], keys: vec![key.clone()], current: key, turn: 0 }
    }

    /// The room plain lines go to.
    pub fn current(&self) -> &Arc<Room> {
        self.list[self.index(&self.current).unwrap_or(0)].room()
    }

    pub fn contains(&self, key: &RoomKey) -> bool {
        self.index(key).is_some()
    }

    /// Makes a room this connection is in the current one.
    pub fn set_current(&mut self, key: &RoomKey) {
        if self.contains(key) {
            self.current = key.clone();
        }
    }

    /// Adds a room (the caller then makes it current if it wants).
    pub fn add(&mut self, subscription: Subscription) {
        let key = subscription.room().key().clone();
        if let Err(at) = self.keys.binary_search(&key) {
            self.keys.insert(at, key);
            self.list.insert(at, subscription);
        }
    }

    /// Drops a room; if it was current, `#lobby` or else the first room
    /// becomes current, which is returned.
    pub fn remove(&mut self, key: &RoomKey) -> Option<&Arc<Room>> {
        let at = self.index(key)?;
        self.keys.remove(at);
        self.list.remove(at);
        if self.current == *key {
            let lobby = RoomKey::of(chat_proto::LOBBY);
            let next = if self.contains(&lobby) { lobby } else { self.keys.first()?.clone() };
            self.current = next;
            return Some(self.current());
        }
        None
    }

    fn index(&self, key: &RoomKey) -> Option<usize> {
        self.keys.binary_search(key).ok()
    }

    /// True when nothing is queued in any room.
    pub fn is_idle(&self) -> bool {
        self.list.iter().all(Subscription::is_empty)
    }

    /// The next delivery from any room, with the room's position. Cancel-safe.
    pub async fn next(&mut self) -> (usize, Delivery) {
        if let [only] = self.list.as_mut_slice() {
            return (0, only.next().await);
        }
        let start = self.turn % self.list.len();
        self.turn = self.turn.wrapping_add(1);
        let mut waiting: Vec<_> = self.list.iter_mut().map(|s| Box::pin(s.next())).collect();
        let count = waiting.len();
        std::future::poll_fn(|cx| {
            for offset in 0..count {
                let at = (start + offset) % count;
                if let Poll::Ready(delivery) = waiting[at].as_mut().poll(cx) {
                    return Poll::Ready((at, delivery));
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Shows a delivery from the room at `at` and what else that room has
    /// queued, then writes it all (or steps aside while the socket is slow).
    /// `Ok(false)` when the room is gone.
    pub async fn deliver<W: AsyncWrite + Unpin>(
        &mut self,
        at: usize,
        delivery: Delivery,
        out: &mut Output<W>,
    ) -> Result<bool, WriteError> {
        let view = View { current: self.keys[at] == self.current, rooms: &self.keys };
        let subscription = &mut self.list[at];
        if !subscription.push(delivery, out, view) {
            return Ok(false);
        }
        subscription.drain_into(out, Drain::Batch, view);
        subscription.flush_or_step_aside(out, view).await?;
        Ok(true)
    }

    /// Puts everything queued in every room into `out` (the last flush).
    pub fn drain_all<W: AsyncWrite + Unpin>(&mut self, out: &mut Output<W>) {
        for at in 0..self.list.len() {
            let view = View { current: self.keys[at] == self.current, rooms: &self.keys };
            self.list[at].drain_into(out, Drain::All, view);
        }
    }

    /// Waits while the current room is backlogged (see
    /// [`Subscription::pace`]).
    pub async fn pace<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut Output<W>,
        backlogged: impl Fn(&Room) -> bool,
    ) -> Result<(), WriteError> {
        let Some(at) = self.index(&self.current) else { return Ok(()) };
        let view = View { current: true, rooms: &self.keys };
        let subscription = &mut self.list[at];
        let room = Arc::clone(subscription.room());
        subscription.pace(out, view, || backlogged(&room)).await
    }
}

/// How a session ended.
#[derive(Debug)]
pub enum End {
    Quit(Option<String>),
    Closed,
    Lost(String),
    Stalled,
    Kicked(String),
    /// The registered name logged in on another connection.
    Replaced,
    Shutdown,
    NameTimeout,
    Http,
}

impl End {
    /// The last line the client gets, if there is anyone to say it to.
    pub fn goodbye(&self) -> Option<Line> {
        Some(match self {
            End::Quit(_) => Line::notice(vocabulary::GOODBYE),
            End::Kicked(reason) => Line::notice(&vocabulary::kicked(reason)),
            End::Replaced => Line::notice(vocabulary::REPLACED_GOODBYE),
            End::Shutdown => Line::notice(vocabulary::SHUTDOWN_GOODBYE),
            End::NameTimeout => Line::notice(vocabulary::NAME_TIMEOUT_GOODBYE),
            End::Http => Line::plain(vocabulary::NOT_HTTP),
            End::Closed | End::Lost(_) | End::Stalled => return None,
        })
    }

    /// Whether the peer can still read a goodbye.
    pub fn peer_is_listening(&self) -> bool {
        !matches!(self, End::Lost(_) | End::Stalled)
    }

    /// What the others read after the name: "alice left (bye)".
    pub fn leave_notice(&self) -> String {
        match self {
            End::Quit(Some(reason)) => format!("left ({reason})"),
            End::Quit(None) | End::Closed => "left".to_owned(),
            End::Lost(_) => "lost connection".to_owned(),
            End::Stalled => "was disconnected (not reading)".to_owned(),
            End::Kicked(reason) => format!("was kicked ({reason})"),
            End::Replaced => "left (logged in again)".to_owned(),
            End::Shutdown | End::NameTimeout | End::Http => "left".to_owned(),
        }
    }

    /// For the log.
    pub fn describe(&self) -> String {
        match self {
            End::Quit(reason) => format!("quit ({})", reason.as_deref().unwrap_or("no reason")),
            End::Closed => "closed by peer".to_owned(),
            End::Lost(error) => format!("lost: {error}"),
            End::Stalled => "not reading, write timed out".to_owned(),
            End::Kicked(reason) => format!("kicked: {reason}"),
            End::Replaced => "replaced by a new login".to_owned(),
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
