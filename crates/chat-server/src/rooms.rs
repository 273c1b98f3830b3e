//! Which rooms exist on this daemon, and the rules for opening and closing them.
//!
//! [`Rooms`] maps each [`RoomKey`] to its open [`Room`]. A room opens when
//! its first member joins (at most `--max-rooms` at once) and closes when
//! its last member, here or on another daemon, leaves; its history is kept
//! for when it opens again. Entering and leaving happen under the map's
//! lock, so nobody joins a room that is closing. Lock order: the map, then
//! a room.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use chat_proto::{RoomKey, RoomName};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::room::{Event, Room, RoomError};
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
        Rooms { state: Mutex::default(), max_rooms, queue, history_len, stats, shutdown, tracker }
    }

    fn lock(&self) -> MutexGuard<'_, RoomsState> {
        // Each update is one insert or remove; a panic elsewhere leaves it consistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `enter` on the room called `name`, opening it if needed, under
    /// the map's lock so the room cannot close meanwhile.
    pub fn enter<T>(
        &self,
        name: &RoomName,
        enter: impl FnOnce(&Arc<Room>) -> T,
    ) -> Result<T, RoomError> {
        let mut state = self.lock();
        let key = name.key();
        if let Some(room) = state.open.get(&key) {
            return Ok(enter(room));
        }
        if state.open.len() >= self.max_rooms {
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
        self.tracker.spawn(Arc::clone(&room).announce_gathered_presence(self.shutdown.clone()));
        state.open.insert(key, Arc::clone(&room));
        Ok(enter(&room))
    }

    /// Runs `leave` on an open room under the map's lock, then closes the
    /// room if nobody is left in it. `None` when no such room is open.
    pub fn leave<T>(&self, key: &RoomKey, leave: impl FnOnce(&Room) -> T) -> Option<T> {
        let mut state = self.lock();
        let room = Arc::clone(state.open.get(key)?);
        let result = leave(&room);
        if room.is_empty() {
            self.close(&mut state, &room);
        }
        Some(result)
    }

    fn close(&self, state: &mut RoomsState, room: &Room) {
        state.open.remove(room.key());
        room.close();
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
