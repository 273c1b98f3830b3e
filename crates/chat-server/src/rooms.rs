//! Which rooms exist on this daemon, and the rules for opening and closing them.
//!
//! [`Rooms`] maps each [`RoomKey`] to its open [`Room`]. A room opens when
//! its first member joins (at most `--max-rooms` at once), with the recent
//! lines it replays read from the store by the caller, and closes when its
//! last member here leaves. When every line of the room passes through this
//! daemon (no backplane), a closed room's recent lines stay in memory for
//! when it opens again, so a quick return needs no read from the store. Entering and leaving happen under the map's
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

use crate::event::Event;
use crate::room::{Room, RoomError};
use crate::stats::Stats;
use crate::store::Stored;

/// Closed rooms whose history is kept; past this, the oldest is forgotten.
const KEPT_HISTORIES: usize = 10_000;

/// A room as `/rooms` lists it.
#[derive(Debug, Clone)]
pub struct RoomListing {
    pub name: RoomName,
    pub key: RoomKey,
    /// Members here and on other daemons.
    pub users: usize,
    /// The room's topic, if it has one.
    pub topic: Option<String>,
}

#[derive(Default)]
struct RoomsState {
    open: HashMap<RoomKey, Arc<Room>>,
    /// Recent lines of closed rooms, and the order they closed in.
    kept: HashMap<RoomKey, VecDeque<Arc<Event>>>,
    kept_order: VecDeque<RoomKey>,
}

impl RoomsState {
    /// Open rooms that count against `--max-rooms`: every one but
    /// `#lobby`, where everyone arrives.
    fn rooms_besides_lobby(&self) -> usize {
        self.open.len() - usize::from(self.open.contains_key(&RoomKey::lobby()))
    }
}

pub struct Rooms {
    state: Mutex<RoomsState>,
    max_rooms: usize,
    queue: usize,
    history_len: usize,
    /// Whether closed rooms' recent lines are kept (see the module's doc).
    keep_closed: bool,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    changed: Notify,
}

impl Rooms {
    /// No room open yet; rooms get a queue of `queue` lines and replay
    /// `history_len` messages; closed rooms' lines are kept when
    /// `keep_closed`. Each open room's presence task is tracked by
    /// `tracker` and ends at `shutdown`.
    pub fn new(
        max_rooms: usize,
        queue: usize,
        history_len: usize,
        keep_closed: bool,
        stats: Arc<Stats>,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        Rooms {
            state: Mutex::default(),
            max_rooms,
            queue,
            history_len,
            keep_closed,
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
    /// with the lines kept since it closed, else `recalled` from the store,
    /// and `open` first, to fill it in), under the map's lock so the room
    /// cannot close meanwhile.
    pub fn enter<T>(
        &self,
        name: &RoomName,
        recalled: Option<Vec<Stored>>,
        open: impl FnOnce(&Room),
        enter: impl FnOnce(&Arc<Room>) -> T,
    ) -> Result<T, RoomError> {
        let mut state = self.lock();
        let key = name.key();
        if let Some(room) = state.open.get(&key) {
            return Ok(enter(room));
        }
        if key != RoomKey::lobby() && state.rooms_besides_lobby() >= self.max_rooms {
            return Err(RoomError::TooManyRooms { max: self.max_rooms });
        }
        let history = match state.kept.remove(&key) {
            Some(kept) => {
                state.kept_order.retain(|k| *k != key);
                kept
            }
            None => recalled.into_iter().flatten().map(Event::recalled).collect(),
        };
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
        if !self.keep_closed {
            return;
        }
        let history = room.take_history();
        if state.kept_order.len() >= KEPT_HISTORIES
            && let Some(oldest) = state.kept_order.pop_front()
        {
            state.kept.remove(&oldest);
        }
        state.kept_order.push_back(room.key().clone());
        state.kept.insert(room.key().clone(), history);
    }

    /// True when opening the room would replay lines already in memory
    /// (it is open, or closed with its lines kept): no need to read the store.
    pub fn remembers(&self, key: &RoomKey) -> bool {
        let state = self.lock();
        state.open.contains_key(key) || state.kept.contains_key(key)
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
                topic: None,
            })
            .filter(|listing| listing.users > 0)
            .collect();
        listings.sort_by(|a, b| a.key.cmp(&b.key));
        listings
    }
}
