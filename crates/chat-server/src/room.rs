//! The room: who is here, their themes, recent history, and the broadcast
//! channel every connection listens on.
//!
//! All shared state sits in one [`RoomState`] behind a `std::sync::Mutex`
//! that is held for a few map operations and never across an `.await`.
//! Publishing a line and recording it in history happen under that lock, and
//! so does subscribing a newcomer together with copying the history, so a
//! joining user sees every message exactly once: in the replay or live. The
//! same holds for the room's degraded state: a newcomer is told in the
//! welcome or by the live notice, never both, never neither.
//! Lines travel as `Arc<Event>`: rendered once (here, for every chat line,
//! local or remote), shared by every recipient. The room also owns the task
//! that sends the joins and leaves a busy room gathered, and the signal that
//! readers made progress, on which waiting senders sleep.
//!
//! The room knows other daemons only as [`NodeId`]s that users belong to;
//! how they are reached is the backplane's business.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chat_proto::vocabulary::{DEGRADED, WHOLE_AGAIN};
use chat_proto::{Line, Name, NameKey, THEMES, Theme};
use rand::Rng;
use tokio::sync::{Notify, broadcast};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::stats::Stats;

/// Another daemon sharing the room, as the backplane names it.
pub type NodeId = u64;

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
/// A gathered presence notice names everyone up to about this many bytes;
/// only past it does it say "and N more".
const PRESENCE_LINE_BYTES: usize = 4000;

/// A line on its way to the room, with its origin so the sender can skip it.
#[derive(Debug)]
pub struct Event {
    pub from: Option<ConnId>,
    pub line: Line,
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
    /// The one place a chat line is rendered.
    pub fn line(&self) -> Line {
        let theme = &THEMES[self.theme.min(THEMES.len() - 1)];
        if self.action {
            Line::action(theme, &self.name, &self.text)
        } else {
            Line::chat(theme, &self.name, &self.text)
        }
    }
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
    inbox: Arc<Inbox>,
}

/// A connection's direct messages: a short queue and a wake-up. Lighter than
/// an mpsc channel, whose first block of slots every idle connection would
/// carry; this allocates nothing until a message arrives.
#[derive(Debug, Default)]
pub struct Inbox {
    queue: Mutex<VecDeque<Direct>>,
    ready: Notify,
}

impl Inbox {
    /// Queues `what` unless [`DIRECT_QUEUE`] messages are already waiting.
    fn push(&self, what: Direct) -> Result<(), RoomError> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if queue.len() >= DIRECT_QUEUE {
            return Err(RoomError::Busy);
        }
        queue.push_back(what);
        drop(queue);
        self.ready.notify_one();
        Ok(())
    }

    /// The next direct message. Cancel-safe: a message is only taken when returned.
    pub async fn next(&self) -> Direct {
        loop {
            if let Some(what) = self.queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front() {
                return what;
            }
            self.ready.notified().await;
        }
    }
}

/// A user as `/who` shows them, here or on another node.
#[derive(Debug, Clone)]
pub struct Listing {
    pub name: Name,
    pub theme: Theme,
    pub place: Place,
}

/// Where a user is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Here(SocketAddr),
    /// On another daemon sharing the room through the backplane.
    Node(NodeId),
}

/// A user connected to another daemon of the room.
#[derive(Debug, Clone)]
struct RemoteMember {
    name: Name,
    theme: Theme,
    node: NodeId,
}

/// What a newly joined connection receives.
pub struct Membership {
    pub theme: Theme,
    /// Who else is here, or how many when they are too many to list.
    pub online: Online,
    pub history: Vec<Arc<Event>>,
    /// True while other daemons of the room are out of reach.
    pub degraded: bool,
    pub events: broadcast::Receiver<Arc<Event>>,
    pub inbox: Arc<Inbox>,
}

/// The newcomer's view of who is online.
#[derive(Debug, Clone)]
pub enum Online {
    Listed(Vec<Listing>),
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

#[derive(Debug, Default)]
struct RoomState {
    members: HashMap<ConnId, Member>,
    by_key: HashMap<NameKey, ConnId>,
    /// How many members wear each theme of [`THEMES`].
    theme_use: [u32; THEMES.len()],
    history: VecDeque<Arc<Event>>,
    presence: Presence,
    /// Events published since start; a reader that steps out of the queue
    /// uses it to count what it missed.
    published: u64,
    /// Users of other nodes, known from the backplane; empty without one.
    remote: HashMap<NameKey, RemoteMember>,
    /// True while other daemons of the room cannot be reached.
    degraded: bool,
}

/// Joins and leaves waiting to be announced together.
#[derive(Debug, Default)]
struct Presence {
    last_sent: Option<Instant>,
    pending: Vec<String>,
}

pub struct Room {
    state: Mutex<RoomState>,
    /// Senders wait while readers are this many lines behind.
    high_water: usize,
    presence_due: Notify,
    /// Readers took lines off the queue (see [`Room::wait_for_readers`]).
    readers_progressed: Notify,
    /// Senders waiting on `readers_progressed`; readers signal only then.
    senders_waiting: AtomicUsize,
    events: broadcast::Sender<Arc<Event>>,
    history_len: usize,
    pub stats: Arc<Stats>,
}

impl Room {
    /// A room whose slowest reader may fall `queue` lines behind, replaying
    /// the last `history_len` messages to newcomers.
    pub fn new(queue: usize, history_len: usize) -> Self {
        let (events, _) = broadcast::channel(queue.max(1));
        Room {
            state: Mutex::default(),
            high_water: (queue / 2).max(1),
            presence_due: Notify::new(),
            readers_progressed: Notify::new(),
            senders_waiting: AtomicUsize::new(0),
            events,
            history_len,
            stats: Arc::default(),
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
        if state.is_taken(&key) {
            return Err(RoomError::NameTaken);
        }
        let theme_index = state.pick_theme();
        let theme = THEMES[theme_index];
        state.theme_use[theme_index] += 1;
        let inbox = Arc::new(Inbox::default());
        let online = state.online_summary();
        let history = state.history.iter().cloned().collect();
        let events = self.events.subscribe();
        let change = format!("{} {name} joined", theme.emoji);
        state.by_key.insert(key, id);
        let member = Member { name, theme, peer, inbox: Arc::clone(&inbox) };
        state.members.insert(id, member);
        self.announce_presence(&mut state, Some(id), change);
        let degraded = state.degraded;
        Ok(Membership { theme, online, history, degraded, events, inbox })
    }

    /// Removes a member and tells the others, with the reason if any.
    pub fn leave(&self, id: ConnId, how: &str) {
        let mut state = self.lock();
        let Some(member) = state.remove(id) else {
            return;
        };
        let change = format!("{} {} {how}", member.theme.emoji, member.name);
        self.announce_presence(&mut state, Some(id), change);
    }

    /// Publishes a join or leave at once in a small or quiet room; otherwise
    /// gathers it into one notice sent when the window ends, so that N joins
    /// cost O(N) deliveries per window instead of O(N) each.
    fn announce_presence(&self, state: &mut RoomState, from: Option<ConnId>, change: String) {
        let now = Instant::now();
        let quiet = state.presence.pending.is_empty()
            && state.presence.last_sent.is_none_or(|at| now.duration_since(at) >= PRESENCE_WINDOW);
        if quiet || state.members.len() < COALESCE_FROM_MEMBERS {
            state.presence.last_sent = Some(now);
            let line = Line::notice(&change);
            self.publish_locked(state, Event { from, line }, false);
            return;
        }
        if state.presence.pending.is_empty() {
            self.presence_due.notify_one();
        }
        state.presence.pending.push(change);
    }

    /// Sends the joins and leaves this room gathered, each batch when its
    /// window ends, until `shutdown`.
    pub async fn announce_gathered_presence(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let wait = async {
                match self.presence_due() {
                    Some(due) => tokio::time::sleep_until(due).await,
                    None => self.presence_due.notified().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = wait => {}
            }
            if self.presence_due().is_some_and(|due| due <= Instant::now()) {
                self.flush_presence();
            }
        }
    }

    /// When gathered presence changes are due, if any are waiting.
    fn presence_due(&self) -> Option<Instant> {
        let state = self.lock();
        if state.presence.pending.is_empty() {
            return None;
        }
        let last = state.presence.last_sent.unwrap_or_else(Instant::now);
        Some(last + PRESENCE_WINDOW)
    }

    /// Publishes the gathered joins and leaves as one notice.
    fn flush_presence(&self) {
        let mut state = self.lock();
        let pending = std::mem::take(&mut state.presence.pending);
        if pending.is_empty() {
            return;
        }
        state.presence.last_sent = Some(Instant::now());
        let line = Line::notice(&summarise_changes(&pending));
        self.publish_locked(&mut state, Event { from: None, line }, false);
    }

    /// Adds a message to history without sending it (history from other nodes at start-up).
    pub fn remember(&self, message: &Message) {
        let mut state = self.lock();
        let event = Event { from: None, line: message.line() };
        self.remember_locked(&mut state, Arc::new(event));
    }

    /// Adds an announcement to history without sending it.
    pub fn remember_announcement(&self, text: &str) {
        let mut state = self.lock();
        let event = Event { from: None, line: Line::announcement(text) };
        self.remember_locked(&mut state, Arc::new(event));
    }

    /// Sends a chat message to everyone but its author (`from`, when local)
    /// and keeps it in history. Returns how many others are in the room.
    pub fn say(&self, from: Option<ConnId>, message: &Message) -> usize {
        self.publish(Event { from, line: message.line() }, true)
    }

    /// An operator's announcement to everyone, kept in history.
    pub fn announce(&self, text: &str) -> usize {
        self.publish(Event { from: None, line: Line::announcement(text) }, true)
    }

    /// Marks the room degraded (other daemons out of reach) or whole again,
    /// telling everyone here once per change. Newcomers learn it from
    /// [`Membership::degraded`].
    pub fn set_degraded(&self, degraded: bool) {
        let mut state = self.lock();
        if state.degraded == degraded {
            return;
        }
        state.degraded = degraded;
        let text = if degraded { DEGRADED } else { WHOLE_AGAIN };
        self.publish_locked(&mut state, Event { from: None, line: Line::notice(text) }, false);
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
        others
    }

    /// Events published since start.
    pub fn published(&self) -> u64 {
        self.lock().published
    }

    /// A fresh place in the queue for a reader that stepped out, and the
    /// number of events published so far.
    pub fn rejoin_queue(&self) -> (broadcast::Receiver<Arc<Event>>, u64) {
        let state = self.lock();
        (self.events.subscribe(), state.published)
    }

    /// True while the slowest reader in the queue is past the high-water
    /// mark: local senders then wait (see `subscription`), so readers that
    /// keep up lose nothing. Readers blocked on their sockets step out of
    /// the queue, so they never hold senders back for long.
    pub fn is_backlogged(&self) -> bool {
        self.events.len() > self.high_water
    }

    /// True when a reader this many lines behind makes senders wait.
    pub fn holds_back_senders(&self, behind: usize) -> bool {
        behind > self.high_water
    }

    /// Called by a reader that took lines off the queue: wakes the senders
    /// waiting in [`Room::wait_for_readers`], if any (an atomic load otherwise).
    pub fn note_reader_progress(&self) {
        if self.senders_waiting.load(Ordering::Acquire) > 0 {
            self.readers_progressed.notify_waiters();
        }
    }

    /// Waits until readers make progress or `deadline` passes. The caller
    /// checks its condition again afterwards; a wake-up may be early.
    pub async fn wait_for_readers(&self, deadline: Instant) {
        let progressed = self.readers_progressed.notified();
        tokio::pin!(progressed);
        progressed.as_mut().enable();
        self.senders_waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = WaitingSender(&self.senders_waiting);
        tokio::select! {
            _ = progressed => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
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
        member.inbox.push(what)?;
        Ok(member.clone())
    }

    /// Everyone in the room, on every node, sorted by name.
    pub fn who(&self) -> Vec<Listing> {
        let mut listings = self.lock().unsorted_listings();
        // Sorted outside the lock, each name's key computed once.
        listings.sort_by_cached_key(|l| l.name.key());
        listings
    }

    /// How many users the room has, here and on other nodes.
    pub fn user_count(&self) -> usize {
        let state = self.lock();
        state.members.len() + state.remote.len()
    }

    /// Users connected to this node.
    pub fn member_count(&self) -> usize {
        self.lock().members.len()
    }

    /// True when no user here or on another node has this name (or a look-alike).
    pub fn is_name_free(&self, name: &Name) -> bool {
        !self.lock().is_taken(&name.key())
    }

    /// This node's users and their theme numbers, for the backplane.
    pub fn local_roster(&self) -> Vec<(Name, usize)> {
        let state = self.lock();
        state.members.values().map(|m| (m.name.clone(), theme_index(&m.theme))).collect()
    }

    /// The node and spelling of a user on another node, if there is one by that name.
    pub fn remote_user(&self, name: &str) -> Option<(NodeId, Name)> {
        let state = self.lock();
        let remote = state.remote.get(&NameKey::of(name.trim()))?;
        Some((remote.node, remote.name.clone()))
    }

    /// A user joined on another node; `announce` says whether to tell everyone here.
    pub fn remote_join(&self, node: NodeId, name: Name, theme: usize, announce: bool) {
        let mut state = self.lock();
        let key = name.key();
        if state.by_key.contains_key(&key) {
            // Both nodes admitted the name while Redis could not arbitrate; ours stays local.
            return;
        }
        let theme = THEMES[theme];
        let change = format!("{} {name} joined", theme.emoji);
        if let Some(old) = state.remote.insert(key, RemoteMember { name, theme, node }) {
            state.release_theme(&old.theme);
        }
        state.use_theme(&theme);
        if announce {
            self.announce_presence(&mut state, None, change);
        }
    }

    /// A user of another node left.
    pub fn remote_leave(&self, node: NodeId, name: &Name, how: &str) {
        let mut state = self.lock();
        let Some(member) = state.remove_remote(node, &name.key()) else { return };
        let change = format!("{} {} {how}", member.theme.emoji, member.name);
        self.announce_presence(&mut state, None, change);
    }

    /// A user of another node changed name.
    pub fn remote_rename(&self, node: NodeId, old: &Name, new: Name) {
        let mut state = self.lock();
        let Some(mut member) = state.remote.remove(&old.key()).filter(|m| m.node == node) else {
            return;
        };
        let notice = format!("{} {old} is now known as {new}", member.theme.emoji);
        member.name = new;
        state.remote.insert(member.name.key(), member);
        self.publish_locked(&mut state, Event { from: None, line: Line::notice(&notice) }, false);
    }

    /// Another node's users, as it listed them; `first` starts its list afresh.
    pub fn remote_roster(&self, node: NodeId, first: bool, members: Vec<(Name, usize)>) {
        if first {
            let mut state = self.lock();
            for key in state.remote_keys_of(node) {
                state.remove_remote(node, &key);
            }
        }
        for (name, theme) in members {
            self.remote_join(node, name, theme, false);
        }
    }

    /// Another node is gone (shut down or silent): its users leave the room.
    pub fn remote_node_gone(&self, node: NodeId, how: &str) {
        let mut state = self.lock();
        for key in state.remote_keys_of(node) {
            if let Some(member) = state.remove_remote(node, &key) {
                let change = format!("{} {} {how}", member.theme.emoji, member.name);
                self.announce_presence(&mut state, None, change);
            }
        }
    }
}

impl RoomState {
    fn remove(&mut self, id: ConnId) -> Option<Member> {
        let member = self.members.remove(&id)?;
        self.by_key.remove(&member.name.key());
        self.release_theme(&member.theme);
        Some(member)
    }

    fn remove_remote(&mut self, node: NodeId, key: &NameKey) -> Option<RemoteMember> {
        if self.remote.get(key).is_none_or(|m| m.node != node) {
            return None;
        }
        let member = self.remote.remove(key)?;
        self.release_theme(&member.theme);
        Some(member)
    }

    fn remote_keys_of(&self, node: NodeId) -> Vec<NameKey> {
        self.remote.iter().filter(|(_, m)| m.node == node).map(|(k, _)| k.clone()).collect()
    }

    fn is_taken(&self, key: &NameKey) -> bool {
        self.by_key.contains_key(key) || self.remote.contains_key(key)
    }

    fn use_theme(&mut self, theme: &Theme) {
        self.theme_use[theme_index(theme)] += 1;
    }

    fn release_theme(&mut self, theme: &Theme) {
        let index = theme_index(theme);
        self.theme_use[index] = self.theme_use[index].saturating_sub(1);
    }

    fn unsorted_listings(&self) -> Vec<Listing> {
        let here = self.members.values().map(|m| Listing {
            name: m.name.clone(),
            theme: m.theme,
            place: Place::Here(m.peer),
        });
        let elsewhere = self.remote.values().map(|m| Listing {
            name: m.name.clone(),
            theme: m.theme,
            place: Place::Node(m.node),
        });
        here.chain(elsewhere).collect()
    }

    fn online_summary(&self) -> Online {
        let count = self.members.len() + self.remote.len();
        if count > ONLINE_LIST_MAX {
            return Online::Many(count);
        }
        let mut listings = self.unsorted_listings();
        listings.sort_by_cached_key(|l| l.name.key());
        Online::Listed(listings)
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

/// The position of a theme in [`THEMES`].
pub fn theme_index(theme: &Theme) -> usize {
    THEMES.iter().position(|t| t == theme).unwrap_or(0)
}

/// Decrements the count of waiting senders when a wait ends, however it ends.
struct WaitingSender<'a>(&'a AtomicUsize);

impl Drop for WaitingSender<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One line for many joins and leaves: everyone named, up to a line of about
/// [`PRESENCE_LINE_BYTES`]; only past that, a count of the rest.
fn summarise_changes(changes: &[String]) -> String {
    let mut line = String::new();
    for (listed, change) in changes.iter().enumerate() {
        if !line.is_empty() && line.len() + change.len() + 2 > PRESENCE_LINE_BYTES {
            let more = changes.len() - listed;
            line.push_str(&format!(" and {more} more joined or left (/who lists everyone)"));
            return line;
        }
        if !line.is_empty() {
            line.push_str(", ");
        }
        line.push_str(change);
    }
    line
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
            room.announce(text);
        }
        let joined = room.join(1, name("late"), peer()).expect("joins");
        let replay: Vec<_> = joined.history.iter().map(|e| e.line.bytes(false).clone()).collect();
        let expected: Vec<_> =
            ["two", "three"].map(|t| Line::announcement(t).bytes(false).clone()).into();
        assert_eq!(replay, expected.iter().collect::<Vec<_>>());
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

#[cfg(test)]
mod presence_tests {
    use super::*;

    #[test]
    fn a_gathered_notice_names_everyone_up_to_about_four_kilobytes() {
        let changes: Vec<String> = (0..48).map(|i| format!("🦊 user{i} joined")).collect();
        let line = summarise_changes(&changes);
        for i in 0..48 {
            assert!(line.contains(&format!("user{i} joined")), "user{i} missing from {line}");
        }
        assert!(!line.contains("more"), "{line}");
    }

    #[test]
    fn only_past_the_limit_does_it_count_the_rest() {
        let changes: Vec<String> = (0..1000).map(|i| format!("🦊 user{i} joined")).collect();
        let line = summarise_changes(&changes);
        assert!(line.len() <= PRESENCE_LINE_BYTES + 64, "{} bytes", line.len());
        let named = line.matches(" joined").count() - 1;
        assert!(named > 100, "only {named} named");
        let rest = format!("and {} more joined or left (/who lists everyone)", 1000 - named);
        assert!(line.ends_with(&rest), "{line}");
    }
}
