//! One room: its members, recent history, and the broadcast channel its
//! members' connections listen on.
//!
//! A room's state sits in one [`RoomState`] behind a `std::sync::Mutex`
//! that is held for a few map operations and never across an `.await`.
//! Publishing a line and recording it in history happen under that lock, and
//! so does subscribing a newcomer together with copying the history, so a
//! joining member sees every message exactly once: in the replay or live.
//! What happens travels as `Arc<Event>` (see [`crate::event`]): data,
//! shared by every recipient, rendered by each protocol at its edge and
//! cached on the event, so a line to a hundred readers is rendered once. An
//! event that concerns one person in several rooms (a rename, a departure,
//! an announcement to every room) carries the rooms it went to, its
//! [`Scope`], so a reader in several of them shows it once. The room also
//! owns the task that sends the joins and leaves a busy room gathered
//! (`presence.rs`), the signal that readers made progress, on which
//! waiting senders sleep (`pacing.rs`), and the signal of each
//! publication, on which readers in several rooms wait.
//!
//! Names and themes are the daemon's (see [`crate::people`]); a room only
//! lists who is in it. It knows other daemons only as [`NodeId`]s that
//! members belong to; how they are reached is the backplane's business.

mod pacing;
mod presence;

use presence::Gathering;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use chat_proto::vocabulary::room_tag;
use chat_proto::{Name, NameKey, RoomKey, RoomName, Theme};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::event::{ConnId, Event, Moderated, Presence, Said, Scope, What};
use crate::stats::Stats;

/// Another daemon sharing the rooms, as the backplane names it.
pub type NodeId = u64;

/// A newcomer is told the names of at most this many others (else a count).
const ONLINE_LIST_MAX: usize = 20;
/// Rooms smaller than this always announce joins and leaves at once.
const COALESCE_FROM_MEMBERS: usize = 32;
/// In a larger room, at most one presence notice per window; the rest are gathered.
pub const PRESENCE_WINDOW: Duration = Duration::from_secs(1);

/// A member of this room on this daemon.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: Name,
    pub theme: Theme,
    pub peer: SocketAddr,
}

/// A member as `/who` shows them, here or on another daemon.
#[derive(Debug, Clone)]
pub struct Listing {
    pub name: Name,
    pub theme: Theme,
    pub place: Place,
}

/// Where a member is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Here(SocketAddr),
    /// On another daemon sharing the room through the backplane.
    Node(NodeId),
}

/// A member connected to another daemon.
#[derive(Debug, Clone)]
struct RemoteMember {
    name: Name,
    theme: Theme,
    node: NodeId,
}

/// What a newly joined connection receives from the room.
pub struct Entry {
    /// Who else is here, or how many when they are too many to list.
    pub online: Online,
    pub history: Vec<Arc<Event>>,
    pub events: broadcast::Receiver<Arc<Event>>,
}

/// The newcomer's view of who is in the room.
#[derive(Debug, Clone)]
pub enum Online {
    Listed(Vec<Listing>),
    Many(usize),
}

impl Online {
    /// The line that tells a newcomer who else is here.
    pub fn describe(&self) -> String {
        let others = match self {
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomError {
    NameTaken,
    NoSuchUser,
    Busy,
    NoSuchRoom,
    NotInRoom,
    TooManyRooms {
        max: usize,
    },
    TooManyRoomsForYou {
        max: usize,
    },
    OnlyRoom,
    /// In no room (an IRC user may be), so there is no current room to use.
    InNoRoom,
    /// A registered name, and this is not its owner.
    Registered,
    /// Banned from the server (`room: None`) or from a room.
    Banned {
        room: Option<RoomName>,
        reason: String,
        until_ms: Option<i64>,
    },
    /// Muted everywhere: private lines are refused too.
    Muted {
        until_ms: Option<i64>,
    },
}

impl std::fmt::Display for RoomError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RoomError::NameTaken => {
                f.write_str("that name is taken (names ignore case and look-alike letters)")
            }
            RoomError::NoSuchUser => f.write_str("nobody by that name is here"),
            RoomError::Busy => f.write_str("that user is not keeping up; try again later"),
            RoomError::NoSuchRoom => f.write_str("there is no such room"),
            RoomError::NotInRoom => f.write_str("you are not in that room"),
            RoomError::TooManyRooms { max } => {
                write!(f, "this server has {max} rooms already, its limit; join one of them")
            }
            RoomError::TooManyRoomsForYou { max } => {
                write!(f, "you are in {max} rooms already, the limit; /part one first")
            }
            RoomError::OnlyRoom => f.write_str("that is your only room; /quit to leave the server"),
            RoomError::InNoRoom => f.write_str("you are in no room; join one first"),
            RoomError::Registered => {
                f.write_str("that name is registered (names ignore case and look-alike letters)")
            }
            RoomError::Muted { until_ms } => {
                write!(f, "you are muted everywhere {}", crate::moderation::until_text(*until_ms))
            }
            RoomError::Banned { room, reason, until_ms } => {
                match room {
                    Some(room) => write!(f, "you are banned from {room}")?,
                    None => f.write_str("that name is banned from this server")?,
                }
                write!(f, " {}", crate::moderation::until_text(*until_ms))?;
                if !reason.is_empty() {
                    write!(f, " ({reason})")?;
                }
                Ok(())
            }
        }
    }
}

/// A member here, with the key their name sorts by, computed once on
/// entry rather than for every listing a newcomer is shown.
#[derive(Debug)]
struct Here {
    member: Member,
    key: NameKey,
}

#[derive(Debug, Default)]
struct RoomState {
    members: HashMap<ConnId, Here>,
    /// Members of other daemons, known from the backplane; empty without one.
    remote: HashMap<NameKey, RemoteMember>,
    history: VecDeque<Arc<Event>>,
    presence: Gathering,
    /// Events published since the room opened; a reader that steps out of
    /// the queue uses it to count what it missed.
    published: u64,
}

pub struct Room {
    name: RoomName,
    key: RoomKey,
    /// `[#rust] `, put before this room's lines for readers elsewhere.
    tag: Bytes,
    state: Mutex<RoomState>,
    /// Senders wait while readers are this many lines behind.
    high_water: usize,
    presence_due: Notify,
    /// Readers took lines off the queue (see [`Room::wait_for_readers`]).
    readers_progressed: Notify,
    /// Senders waiting on `readers_progressed`; readers signal only then.
    senders_waiting: AtomicUsize,
    events: broadcast::Sender<Arc<Event>>,
    /// Told of every publication, for readers waiting on several rooms at
    /// once (see `session::Memberships`), which cannot keep a `recv` each.
    publications: Arc<Notify>,
    history_len: usize,
    /// Ends the room's presence task when the room closes.
    closed: CancellationToken,
    pub stats: Arc<Stats>,
}

impl Room {
    /// A room whose slowest reader may fall `queue` lines behind, replaying
    /// the last `history_len` messages (starting from `history`) to newcomers.
    pub fn new(
        name: RoomName,
        queue: usize,
        history_len: usize,
        history: VecDeque<Arc<Event>>,
        stats: Arc<Stats>,
        closed: CancellationToken,
    ) -> Self {
        let (events, _) = broadcast::channel(queue.max(1));
        let tag = Bytes::from(room_tag(&name));
        let state = RoomState { history, ..RoomState::default() };
        Room {
            key: name.key(),
            name,
            tag,
            state: Mutex::new(state),
            high_water: (queue / 2).max(1),
            presence_due: Notify::new(),
            readers_progressed: Notify::new(),
            senders_waiting: AtomicUsize::new(0),
            events,
            publications: Arc::default(),
            history_len,
            closed,
            stats,
        }
    }

    pub fn name(&self) -> &RoomName {
        &self.name
    }

    pub fn key(&self) -> &RoomKey {
        &self.key
    }

    /// The tag for this room's lines shown outside it.
    pub fn tag(&self) -> &Bytes {
        &self.tag
    }

    fn lock(&self) -> MutexGuard<'_, RoomState> {
        // A panic while holding the lock leaves maps that are still consistent
        // (every update is a single insert or remove), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a member, subscribes them, and tells the others `notice`.
    pub fn join(&self, id: ConnId, member: Member, notice: &Presence) -> Entry {
        let mut state = self.lock();
        let online = state.online_summary();
        let history = state.history.iter().cloned().collect();
        let events = self.events.subscribe();
        let key = member.name.key();
        state.members.insert(id, Here { member, key });
        self.announce_presence(&mut state, Some(id), notice.clone(), Scope::Room);
        Entry { online, history, events }
    }

    /// Removes a member, telling the others `notice` with its scope; false
    /// when they were not a member.
    pub fn leave(&self, id: ConnId, notice: &Presence, scope: Scope) -> bool {
        let mut state = self.lock();
        if state.members.remove(&id).is_none() {
            return false;
        }
        self.announce_presence(&mut state, Some(id), notice.clone(), scope);
        true
    }

    /// A member changed name: the room's list follows, and `notice` goes out
    /// with its scope.
    pub fn rename(&self, id: ConnId, new: &Name, notice: &Presence, scope: Scope) {
        let mut state = self.lock();
        let Some(here) = state.members.get_mut(&id) else { return };
        here.member.name = new.clone();
        here.key = new.key();
        let event = Event::new(Some(id), What::Presence(notice.clone()), scope);
        self.publish_locked(&mut state, event, false);
    }

    /// Takes the history out of a closing room (it outlives the room).
    pub fn take_history(&self) -> VecDeque<Arc<Event>> {
        std::mem::take(&mut self.lock().history)
    }

    /// Ends the room's background task.
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Sends a chat message said at `at_ms` (the time its stored copy
    /// keeps too) to everyone but its author (`from`, when local) and keeps
    /// it in history. Returns how many others are in the room.
    pub fn say(&self, from: Option<ConnId>, said: Said, at_ms: i64) -> usize {
        self.publish(Event::at(at_ms, from, What::Said(said), Scope::Room), true)
    }

    /// An operator's announcement made at `at_ms`, kept in history; `scope`
    /// says which other rooms it went to. Returns how many members it
    /// reached here.
    pub fn announce(&self, text: &str, scope: Scope, at_ms: i64) -> usize {
        let said = Said::Announcement(text.to_owned());
        self.publish(Event::at(at_ms, None, What::Said(said), scope), true)
    }

    /// Tells everyone in the room but `from` of a moderation action (not kept in history).
    pub fn moderated(&self, from: Option<ConnId>, what: Moderated) -> usize {
        self.publish(Event::new(from, What::Moderated(Box::new(what)), Scope::Room), false)
    }

    fn remember_locked(&self, state: &mut RoomState, event: Arc<Event>) {
        if self.history_len == 0 {
            return;
        }
        if state.history.len() == self.history_len {
            state.history.pop_front();
        }
        state.history.push_back(event);
    }

    /// Sends a line to everyone but its author; messages go into history.
    /// Returns how many other members are in the room.
    fn publish(&self, event: Event, keep_in_history: bool) -> usize {
        let mut state = self.lock();
        self.publish_locked(&mut state, event, keep_in_history)
    }

    fn publish_locked(&self, state: &mut RoomState, event: Event, keep_in_history: bool) -> usize {
        let event = Arc::new(event);
        if keep_in_history {
            self.remember_locked(state, Arc::clone(&event));
        }
        let others = state.members.len() + state.remote.len()
            - usize::from(event.from.is_some_and(|id| state.members.contains_key(&id)));
        state.published += 1;
        // An error only means nobody is subscribed, which is no failure.
        let _ = self.events.send(event);
        self.publications.notify_waiters();
        others
    }

    /// Notified after each publication.
    pub fn publications(&self) -> Arc<Notify> {
        Arc::clone(&self.publications)
    }

    /// Events published since the room opened.
    pub fn published(&self) -> u64 {
        self.lock().published
    }

    /// A fresh place in the queue for a reader that stepped out, and the
    /// number of events published so far.
    pub fn rejoin_queue(&self) -> (broadcast::Receiver<Arc<Event>>, u64) {
        let state = self.lock();
        (self.events.subscribe(), state.published)
    }

    /// A receiver of a channel nobody sends on: a place outside the room's
    /// queue, for a reader stepping aside or going.
    pub fn idle_receiver(&self) -> broadcast::Receiver<Arc<Event>> {
        broadcast::channel(1).1
    }

    /// Everyone in the room, on every daemon, sorted by name.
    pub fn who(&self) -> Vec<Listing> {
        let keyed: Vec<(NameKey, Listing)> = {
            let state = self.lock();
            state.keyed_listings().map(|(key, listing)| (key.clone(), listing)).collect()
        };
        // Sorted outside the lock: a big room's list is long.
        sorted(keyed)
    }

    /// How many members the room has, here and on other daemons.
    pub fn user_count(&self) -> usize {
        let state = self.lock();
        state.members.len() + state.remote.len()
    }

    /// Members connected to this daemon.
    pub fn member_count(&self) -> usize {
        self.lock().members.len()
    }

    /// A member of another daemon joined; `notice` (if any) tells everyone here.
    pub fn remote_join(&self, node: NodeId, name: Name, theme: Theme, notice: Option<&Presence>) {
        let mut state = self.lock();
        state.remote.insert(name.key(), RemoteMember { name, theme, node });
        if let Some(notice) = notice {
            self.announce_presence(&mut state, None, notice.clone(), Scope::Room);
        }
    }

    /// A member of another daemon left; `notice` tells everyone here, with its scope.
    pub fn remote_leave(&self, node: NodeId, name: &Name, notice: &Presence, scope: Scope) {
        let mut state = self.lock();
        let key = name.key();
        if state.remote.get(&key).is_none_or(|m| m.node != node) {
            return;
        }
        state.remote.remove(&key);
        self.announce_presence(&mut state, None, notice.clone(), scope);
    }

    /// A member of another daemon changed name; `notice` tells everyone here.
    pub fn remote_rename(&self, node: NodeId, notice: &Presence, scope: Scope) {
        let Presence::Renamed { old, new, .. } = notice else { return };
        let mut state = self.lock();
        let Some(mut member) = state.remote.remove(&old.key()).filter(|m| m.node == node) else {
            return;
        };
        member.name = new.clone();
        state.remote.insert(member.name.key(), member);
        let event = Event::new(None, What::Presence(notice.clone()), scope);
        self.publish_locked(&mut state, event, false);
    }

    /// Forgets the members of another daemon without announcing (before its
    /// roster is read afresh).
    pub fn forget_remote_node(&self, node: NodeId) {
        self.lock().remote.retain(|_, m| m.node != node);
    }
}

impl RoomState {
    /// Everyone, here and elsewhere, each with the key their name sorts by
    /// (kept with each member, not computed again).
    fn keyed_listings(&self) -> impl Iterator<Item = (&NameKey, Listing)> {
        let here = self.members.values().map(|Here { member: m, key }| {
            let place = Place::Here(m.peer);
            (key, Listing { name: m.name.clone(), theme: m.theme, place })
        });
        let elsewhere = self.remote.iter().map(|(key, m)| {
            let place = Place::Node(m.node);
            (key, Listing { name: m.name.clone(), theme: m.theme, place })
        });
        here.chain(elsewhere)
    }

    fn online_summary(&self) -> Online {
        let count = self.members.len() + self.remote.len();
        if count > ONLINE_LIST_MAX {
            return Online::Many(count);
        }
        Online::Listed(sorted(self.keyed_listings().collect()))
    }
}

/// Listings in the order of their names' keys.
fn sorted<K: Ord>(mut keyed: Vec<(K, Listing)>) -> Vec<Listing> {
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.into_iter().map(|(_, listing)| listing).collect()
}

#[cfg(test)]
mod tests {
    use chat_proto::{Line, THEMES};

    use super::*;

    fn room(history_len: usize) -> Room {
        let stats = Arc::new(Stats::default());
        Room::new(RoomName::lobby(), 16, history_len, VecDeque::new(), stats, Default::default())
    }

    fn member(name: &str) -> Member {
        let name = Name::parse(name).expect("valid name");
        Member { name, theme: THEMES[0], peer: SocketAddr::from(([127, 0, 0, 1], 9)) }
    }

    #[test]
    fn history_keeps_only_the_last_messages() {
        let room = room(2);
        for text in ["one", "two", "three"] {
            room.announce(text, Scope::Room, crate::store::now_ms());
        }
        let late = member("late");
        let notice = Presence::Arrived { who: late.name.clone(), theme: late.theme };
        let entry = room.join(1, late, &notice);
        let replay: Vec<_> = entry
            .history
            .iter()
            .map(|e| crate::protocol::text::line(e).bytes(false).clone())
            .collect();
        let expected: Vec<_> =
            ["two", "three"].map(|t| Line::announcement(t).bytes(false).clone()).into();
        assert_eq!(replay, expected);
    }
}
