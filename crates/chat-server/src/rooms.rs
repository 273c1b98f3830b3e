//! Which rooms exist on this daemon, and the rules for opening and closing them.
//!
//! [`Rooms`] maps each [`RoomKey`] to its open [`Room`]. A room opens when
//! its first member joins (at most `--max-rooms` at once) and closes when
//! its last member, here or on another daemon, leaves; its history is kept
//! for when it opens again. Entering and leaving happen under the map's
//! lock, so nobody joins a room that is closing. Lock order: the map, then
//! a room (or the people). A room is open only while someone on this
//! daemon is in it, which is what the backplane follows to carry a room's
//! traffic only then ([`Rooms::changed`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use chat_proto::{RoomKey, RoomName};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::room::{Event, Room, RoomError, Scope};
use crate::stats::Stats;

/// Closed rooms whose history is kept; past this, the oldest is forgotten.
const KEPT_HISTORIES: usize = 10_000;

/// A room as `/rooms` lists it.
#[derive(Debug, Clone)]
pub struct RoomListing {
    pub name: RoomName,
    pub key: RoomKey,
    /// Members here and on other daemons.
    pub users: usize,
}

#[derive(Default)]
struct RoomsState {
    open: HashMap<RoomKey, Arc<Room>>,
    /// Histories of closed rooms, and the order they closed in.
    kept: HashMap<RoomKey, VecDeque<Arc<Event>>>,
    kept_order: VecDeque<RoomKey>,
}

pub struct Rooms {
    state: Mutex<RoomsState>,
    max_rooms: usize,
    queue: usize,
    history_len: usize,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    changed: Notify,
}

impl Rooms {
    /// No room open yet; rooms get a queue of `queue` lines and replay
    /// `history_len` messages. Each open room's presence task is tracked
    /// by `tracker` and ends at `shutdown`.
    pub fn new(
        max_rooms: usize,
        queue: usize,
        history_len: usize,
        stats: Arc<Stats>,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        Rooms {
            state: Mutex::default(),
            max_rooms,
            queue,
            history_len,
            stats,
            shutdown,
            tracker,
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RoomsState> {
        // Each update is one insert or remove; a panic elsewhere leaves it consistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `enter` on the room called `name`, opening it if needed (then
    /// `open` first, to fill it in), under the map's lock so the room cannot
    /// close meanwhile.
    pub fn enter<T>(
        &self,
        name: &RoomName,
        open: impl FnOnce(&Room),
        enter: impl FnOnce(&Arc<Room>) -> T,
    ) -> Result<T, RoomError> {
        let mut state = self.lock();
        let key = name.key();
        if let Some(room) = state.open.get(&key) {
            return Ok(enter(room));
        }
        // #lobby is where everyone arrives: it never counts against the limit.
        if state.open.len() >= self.max_rooms && name.as_str() != chat_proto::LOBBY {
            return Err(RoomError::TooManyRooms { max: self.max_rooms });
        }
        let history = state.kept.remove(&key).unwrap_or_default();
        state.kept_order.retain(|k| *k != key);
        let closed = self.shutdown.child_token();
        let room = Arc::new(Room::new(
            name.clone(),
            self.queue,
            self.history_len,
            history,
            Arc::clone(&self.stats),
            closed,
        ));
        open(&room);
        self.tracker.spawn(Arc::clone(&room).announce_gathered_presence(self.shutdown.clone()));
        state.open.insert(key, Arc::clone(&room));
        self.changed.notify_one();
        Ok(enter(&room))
    }

    /// Runs `leave` on an open room under the map's lock, then closes the
    /// room if nobody is left in it. `None` when no such room is open.
    pub fn leave<T>(&self, key: &RoomKey, leave: impl FnOnce(&Room) -> T) -> Option<T> {
        let mut state = self.lock();
        let room = Arc::clone(state.open.get(key)?);
        let result = leave(&room);
        if room.member_count() == 0 {
            self.close(&mut state, &room);
        }
        Some(result)
    }

    fn close(&self, state: &mut RoomsState, room: &Room) {
        state.open.remove(room.key());
        room.close();
        self.changed.notify_one();
        let history = room.take_history();
        if history.is_empty() {
            return;
        }
        if state.kept_order.len() >= KEPT_HISTORIES
            && let Some(oldest) = state.kept_order.pop_front()
        {
            state.kept.remove(&oldest);
        }
        state.kept_order.push_back(room.key().clone());
        state.kept.insert(room.key().clone(), history);
    }

    /// Adds lines to a room's history without sending them: to the room if
    /// open, else to what it replays when it opens.
    pub fn remember(&self, key: &RoomKey, lines: impl Iterator<Item = chat_proto::Line>) {
        let mut state = self.lock();
        if let Some(room) = state.open.get(key) {
            room.remember_lines(lines);
            return;
        }
        if self.history_len == 0 {
            return;
        }
        if !state.kept.contains_key(key) {
            state.kept_order.push_back(key.clone());
        }
        let kept = state.kept.entry(key.clone()).or_default();
        for line in lines {
            if kept.len() == self.history_len {
                kept.pop_front();
            }
            kept.push_back(Arc::new(Event { from: None, line, scope: Scope::Room }));
        }
    }

    /// Resolves when a room opened or closed since the last call.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// The keys of the open rooms.
    pub fn open_keys(&self) -> Vec<RoomKey> {
        self.lock().open.keys().cloned().collect()
    }

    /// The open room with this key.
    pub fn get(&self, key: &RoomKey) -> Option<Arc<Room>> {
        self.lock().open.get(key).cloned()
    }

    /// Every open room.
    pub fn all(&self) -> Vec<Arc<Room>> {
        self.lock().open.values().cloned().collect()
    }

    /// Rooms open right now.
    pub fn count(&self) -> usize {
        self.lock().open.len()
    }

    /// The rooms that have members, with their counts, sorted by name.
    pub fn list(&self) -> Vec<RoomListing> {
        let rooms = self.all();
        let mut listings: Vec<RoomListing> = rooms
            .iter()
            .map(|room| RoomListing {
                name: room.name().clone(),
                key: room.key().clone(),
                users: room.user_count(),
            })
            .filter(|listing| listing.users > 0)
            .collect();
        listings.sort_by(|a, b| a.key.cmp(&b.key));
        listings
    }
}
