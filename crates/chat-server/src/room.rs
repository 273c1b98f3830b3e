//! The room: who is here, their themes, recent history, and the broadcast
//! channel every connection listens on.
//!
//! All shared state sits in one [`RoomState`] behind a `std::sync::Mutex`
//! that is held for a few map operations and never across an `.await`.
//! Publishing a line and recording it in history happen under that lock, and
//! so does subscribing a newcomer together with copying the history, so a
//! joining user sees every message exactly once: in the replay or live.
//! Lines travel as `Arc<Event>`: rendered once, shared by every recipient.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chat_proto::{Line, Name, NameKey, THEMES, Theme};
use rand::Rng;
use tokio::sync::{Notify, broadcast, mpsc};
use tokio::time::Instant;

/// Identifies one connection for the lifetime of the process.
pub type ConnId = u64;

/// Direct messages a connection may have waiting before more are refused.
const DIRECT_QUEUE: usize = 64;
/// A newcomer is told the names of at most this many others (else a count).
const ONLINE_LIST_MAX: usize = 20;
/// Rooms smaller than this always announce joins and leaves at once.
const COALESCE_FROM_MEMBERS: usize = 32;
/// In a larger room, at most one presence notice per window; the rest are gathered.
pub const PRESENCE_WINDOW: Duration = Duration::from_secs(1);
/// How many gathered changes a presence notice spells out.
const CHANGES_LISTED: usize = 8;

/// A line on its way to the room, with its origin so the sender can skip it.
#[derive(Debug)]
pub struct Event {
    pub from: Option<ConnId>,
    pub line: Line,
}

/// Something addressed to one connection rather than to the room.
#[derive(Debug)]
pub enum Direct {
    /// A line only this user sees (a private message).
    Line(Line),
    /// The operator removes this user.
    Kick { reason: String },
}

/// A user in the room as others see them.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: Name,
    pub theme: Theme,
    pub peer: SocketAddr,
    /// Boxed so the channel's preallocated slots stay small on idle connections.
    direct: mpsc::Sender<Box<Direct>>,
}

/// What a newly joined connection receives.
pub struct Membership {
    pub theme: Theme,
    /// Who else is here, or how many when they are too many to list.
    pub online: Online,
    pub history: Vec<Arc<Event>>,
    pub events: broadcast::Receiver<Arc<Event>>,
    pub direct: mpsc::Receiver<Box<Direct>>,
}

/// The newcomer's view of who is online.
#[derive(Debug, Clone)]
pub enum Online {
    Listed(Vec<Member>),
    Many(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomError {
    NameTaken,
    NoSuchUser,
    Busy,
}

impl std::fmt::Display for RoomError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RoomError::NameTaken => "that name is taken (names ignore case and look-alike letters)",
            RoomError::NoSuchUser => "nobody by that name is here",
            RoomError::Busy => "that user is not keeping up; try again later",
        })
    }
}

/// Counters for `/stats`, updated without the lock.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub messages: AtomicU64,
    pub missed: AtomicU64,
    pub too_long: AtomicU64,
    pub slow_disconnects: AtomicU64,
    pub refused: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
struct RoomState {
    members: HashMap<ConnId, Member>,
    by_key: HashMap<NameKey, ConnId>,
    /// How many members wear each theme of [`THEMES`].
    theme_use: [u32; THEMES.len()],
    history: VecDeque<Arc<Event>>,
    presence: Presence,
}

/// Joins and leaves waiting to be announced together.
#[derive(Debug, Default)]
struct Presence {
    last_sent: Option<Instant>,
    pending: Vec<String>,
}

pub struct Room {
    state: Mutex<RoomState>,
    presence_due: Notify,
    events: broadcast::Sender<Arc<Event>>,
    history_len: usize,
    pub stats: Stats,
}

impl Room {
    /// A room whose slowest reader may fall `queue` lines behind, replaying
    /// the last `history_len` messages to newcomers.
    pub fn new(queue: usize, history_len: usize) -> Self {
        let (events, _) = broadcast::channel(queue.max(1));
        Room {
            state: Mutex::default(),
            presence_due: Notify::new(),
            events,
            history_len,
            stats: Stats::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RoomState> {
        // A panic while holding the lock leaves maps that are still consistent
        // (every update is a single insert or remove), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Admits `name`, picks a theme, subscribes, and announces the join.
    pub fn join(&self, id: ConnId, name: Name, peer: SocketAddr) -> Result<Membership, RoomError> {
        let mut state = self.lock();
        let key = name.key();
        if state.by_key.contains_key(&key) {
            return Err(RoomError::NameTaken);
        }
        let theme_index = state.pick_theme();
        let theme = THEMES[theme_index];
        state.theme_use[theme_index] += 1;
        let (direct_tx, direct_rx) = mpsc::channel(DIRECT_QUEUE);
        let online = state.online_summary();
        let history = state.history.iter().cloned().collect();
        let events = self.events.subscribe();
        let change = format!("{} {name} joined", theme.emoji);
        state.by_key.insert(key, id);
        let member = Member { name, theme, peer, direct: direct_tx };
        state.members.insert(id, member);
        self.announce_presence(&mut state, id, change);
        Ok(Membership { theme, online, history, events, direct: direct_rx })
    }

    /// Removes a member and tells the others, with the reason if any.
    pub fn leave(&self, id: ConnId, how: &str) {
        let mut state = self.lock();
        let Some(member) = state.remove(id) else {
            return;
        };
        let change = format!("{} {} {how}", member.theme.emoji, member.name);
        self.announce_presence(&mut state, id, change);
    }

    /// Publishes a join or leave at once in a small or quiet room; otherwise
    /// gathers it into one notice sent when the window ends, so that N joins
    /// cost O(N) deliveries per window instead of O(N) each.
    fn announce_presence(&self, state: &mut RoomState, id: ConnId, change: String) {
        let now = Instant::now();
        let quiet = state.presence.pending.is_empty()
            && state.presence.last_sent.is_none_or(|at| now.duration_since(at) >= PRESENCE_WINDOW);
        if quiet || state.members.len() < COALESCE_FROM_MEMBERS {
            state.presence.last_sent = Some(now);
            let line = Line::notice(&change);
            self.publish_locked(state, Event { from: Some(id), line }, false);
            return;
        }
        if state.presence.pending.is_empty() {
            self.presence_due.notify_one();
        }
        state.presence.pending.push(change);
    }

    /// When gathered presence changes are due, if any are waiting.
    pub fn presence_due(&self) -> Option<Instant> {
        let state = self.lock();
        if state.presence.pending.is_empty() {
            return None;
        }
        let last = state.presence.last_sent.unwrap_or_else(Instant::now);
        Some(last + PRESENCE_WINDOW)
    }

    /// Resolves once presence changes start waiting (see [`Room::presence_due`]).
    pub async fn presence_waiting(&self) {
        self.presence_due.notified().await;
    }

    /// Publishes the gathered joins and leaves as one notice.
    pub fn flush_presence(&self) {
        let mut state = self.lock();
        let pending = std::mem::take(&mut state.presence.pending);
        if pending.is_empty() {
            return;
        }
        state.presence.last_sent = Some(Instant::now());
        let line = Line::notice(&summarise_changes(&pending));
        self.publish_locked(&mut state, Event { from: None, line }, false);
    }

    /// Sends a line to everyone but its author; messages go into history.
    /// Returns how many other members are in the room.
    pub fn publish(&self, event: Event, keep_in_history: bool) -> usize {
        let mut state = self.lock();
        self.publish_locked(&mut state, event, keep_in_history)
    }

    fn publish_locked(&self, state: &mut RoomState, event: Event, keep_in_history: bool) -> usize {
        let event = Arc::new(event);
        if keep_in_history && self.history_len > 0 {
            if state.history.len() == self.history_len {
                state.history.pop_front();
            }
            state.history.push_back(Arc::clone(&event));
        }
        let others = state.members.len()
            - usize::from(event.from.is_some_and(|id| state.members.contains_key(&id)));
        // An error only means nobody is subscribed, which is no failure.
        let _ = self.events.send(event);
        others
    }

    /// Changes a member's name; returns the old one.
    pub fn rename(&self, id: ConnId, new: Name) -> Result<Name, RoomError> {
        let mut state = self.lock();
        let key = new.key();
        if state.by_key.get(&key).is_some_and(|&owner| owner != id) {
            return Err(RoomError::NameTaken);
        }
        let member = state.members.get_mut(&id).ok_or(RoomError::NoSuchUser)?;
        let old = std::mem::replace(&mut member.name, new.clone());
        let emoji = member.theme.emoji;
        state.by_key.remove(&old.key());
        state.by_key.insert(key, id);
        let notice = Line::notice(&format!("{emoji} {old} is now known as {new}"));
        self.publish_locked(&mut state, Event { from: Some(id), line: notice }, false);
        Ok(old)
    }

    /// Delivers something to one member by name (any case or look-alike spelling).
    pub fn send_direct(&self, to: &str, what: Direct) -> Result<Member, RoomError> {
        let state = self.lock();
        let member = state.find(to).ok_or(RoomError::NoSuchUser)?;
        member.direct.try_send(Box::new(what)).map_err(|_| RoomError::Busy)?;
        Ok(member.clone())
    }

    /// Everyone in the room, sorted by name.
    pub fn who(&self) -> Vec<Member> {
        let mut members: Vec<Member> = self.lock().members.values().cloned().collect();
        members.sort_by_key(|m| m.name.key());
        members
    }

    pub fn member_count(&self) -> usize {
        self.lock().members.len()
    }
}

impl RoomState {
    fn remove(&mut self, id: ConnId) -> Option<Member> {
        let member = self.members.remove(&id)?;
        self.by_key.remove(&member.name.key());
        if let Some(index) = THEMES.iter().position(|t| *t == member.theme) {
            self.theme_use[index] = self.theme_use[index].saturating_sub(1);
        }
        Some(member)
    }

    fn online_summary(&self) -> Online {
        if self.members.len() > ONLINE_LIST_MAX {
            return Online::Many(self.members.len());
        }
        let mut members: Vec<Member> = self.members.values().cloned().collect();
        members.sort_by_key(|m| m.name.key());
        Online::Listed(members)
    }

    fn find(&self, name: &str) -> Option<&Member> {
        let id = self.by_key.get(&NameKey::of(name.trim()))?;
        self.members.get(id)
    }

    /// A random theme among the least used, so themes are unique while the pool lasts.
    fn pick_theme(&self) -> usize {
        let fewest = self.theme_use.iter().copied().min().unwrap_or(0);
        let candidates: Vec<usize> =
            (0..THEMES.len()).filter(|&i| self.theme_use[i] == fewest).collect();
        candidates[rand::rng().random_range(0..candidates.len())]
    }
}

/// One line for many joins and leaves: the first few spelled out, then a count.
fn summarise_changes(changes: &[String]) -> String {
    let listed = changes.iter().take(CHANGES_LISTED).cloned().collect::<Vec<_>>().join(", ");
    match changes.len().saturating_sub(CHANGES_LISTED) {
        0 => listed,
        more => format!("{listed} and {more} more joined or left (/who lists everyone)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9))
    }

    fn name(s: &str) -> Name {
        Name::parse(s).expect("valid name")
    }

    #[test]
    fn themes_are_unique_while_the_pool_lasts() {
        let room = Room::new(16, 0);
        let themes: HashSet<&str> = (0..THEMES.len() as u64)
            .map(|i| room.join(i, name(&format!("user{i}")), peer()).expect("joins").theme.emoji)
            .collect();
        assert_eq!(themes.len(), THEMES.len());
    }

    #[test]
    fn names_clash_ignoring_case_and_lookalikes() {
        let room = Room::new(16, 0);
        room.join(1, name("alice"), peer()).expect("joins");
        assert_eq!(room.join(2, name("ALICE"), peer()).err(), Some(RoomError::NameTaken));
        assert_eq!(room.join(3, name("\u{0430}lice"), peer()).err(), Some(RoomError::NameTaken));
        room.leave(1, "left");
        assert!(room.join(4, name("Alice"), peer()).is_ok());
    }

    #[test]
    fn history_keeps_only_the_last_messages() {
        let room = Room::new(16, 2);
        for text in ["one", "two", "three"] {
            room.publish(Event { from: None, line: Line::plain(text) }, true);
        }
        let joined = room.join(1, name("late"), peer()).expect("joins");
        let replay: Vec<_> = joined.history.iter().map(|e| e.line.bytes(false).clone()).collect();
        assert_eq!(replay, vec![&b"two\r\n"[..], &b"three\r\n"[..]]);
    }

    #[test]
    fn rename_frees_the_old_name() {
        let room = Room::new(16, 0);
        room.join(1, name("alice"), peer()).expect("joins");
        assert_eq!(room.rename(1, name("alicia")), Ok(name("alice")));
        assert!(room.join(2, name("alice"), peer()).is_ok());
        assert_eq!(room.rename(1, name("ALICE")), Err(RoomError::NameTaken));
    }
}
