//! Who is connected: names, themes and inboxes, here and on other daemons.
//!
//! Names and themes belong to the whole daemon (and, with a backplane, to
//! every daemon), not to a room: a name is unique ignoring case and
//! look-alikes, and themes are unique while the pool lasts. [`People`]
//! keeps them behind one `std::sync::Mutex`, never held across an
//! `.await`, together with each local person's rooms (so a departure or a
//! rename reaches each room once), their direct-message [`Inbox`], the
//! users of other daemons, and whether the other daemons are reachable: a
//! change of that is told to every local person through their inbox, and a
//! newcomer reads it under the same lock, so each person hears it once. A
//! name freed here (a departure, a rename) is signalled, for a login that
//! replaces the connection holding it.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use chat_proto::{Name, NameKey, RoomKey, RoomName, THEMES, Theme};
use rand::Rng;
use tokio::sync::Notify;

use crate::event::ConnId;
use crate::reply::Reply;
use crate::room::{NodeId, RoomError};

/// Direct messages a connection may have waiting before more are refused.
const DIRECT_QUEUE: usize = 64;

/// Something addressed to one connection rather than to a room.
#[derive(Debug)]
pub enum Direct {
    /// What only this user is told (a private message, the room degraded).
    Reply(Reply),
    /// The operator removes this user.
    Kick { reason: String },
    /// The owner of this registered name logged in on another connection.
    Replaced,
    /// Put out of one room (kicked or banned from it), with what they are told.
    Removed { room: RoomKey, notice: Box<Reply> },
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

/// A person connected to this daemon.
#[derive(Debug, Clone)]
pub struct Person {
    pub name: Name,
    pub theme: Theme,
    pub peer: SocketAddr,
    /// The rooms they are in, sorted.
    pub rooms: Vec<RoomKey>,
    inbox: Arc<Inbox>,
}

/// A person connected to another daemon.
#[derive(Debug, Clone)]
struct RemotePerson {
    name: Name,
    theme: Theme,
    node: NodeId,
    rooms: Vec<RoomName>,
}

/// What a person of another daemon was, when they leave or change.
#[derive(Debug, Clone)]
pub struct Departed {
    pub theme: Theme,
    /// Their rooms, sorted by key.
    pub rooms: Vec<RoomKey>,
}

/// What a newly admitted person receives.
pub struct Admitted {
    pub theme: Theme,
    pub inbox: Arc<Inbox>,
    /// True while other daemons are out of reach.
    pub degraded: bool,
}

#[derive(Debug, Default)]
struct PeopleState {
    local: HashMap<ConnId, Person>,
    by_key: HashMap<NameKey, ConnId>,
    remote: HashMap<NameKey, RemotePerson>,
    /// How many people wear each theme of [`THEMES`].
    theme_use: [u32; THEMES.len()],
    degraded: bool,
}

#[derive(Default)]
pub struct People {
    state: Mutex<PeopleState>,
    /// Told whenever a name is freed: a user here or on another daemon left or renamed.
    name_freed: Notify,
}

impl People {
    fn lock(&self) -> MutexGuard<'_, PeopleState> {
        // Every update is a few inserts and removes that leave the maps
        // consistent, so a panic elsewhere never poisons them for good.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Admits `name` (unless taken here or elsewhere) and gives it a theme.
    pub fn admit(&self, id: ConnId, name: Name, peer: SocketAddr) -> Result<Admitted, RoomError> {
        let mut state = self.lock();
        let key = name.key();
        if state.is_taken(&key) {
            return Err(RoomError::NameTaken);
        }
        let theme = THEMES[state.pick_theme()];
        state.use_theme(&theme);
        let inbox = Arc::new(Inbox::default());
        let person = Person { name, theme, peer, rooms: Vec::new(), inbox: Arc::clone(&inbox) };
        state.by_key.insert(key, id);
        state.local.insert(id, person);
        Ok(Admitted { theme, inbox, degraded: state.degraded })
    }

    /// Removes a person; returns them as they were (with their rooms).
    pub fn remove(&self, id: ConnId) -> Option<Person> {
        let mut state = self.lock();
        let person = state.local.remove(&id)?;
        state.by_key.remove(&person.name.key());
        state.release_theme(&person.theme);
        drop(state);
        self.name_freed.notify_waiters();
        Some(person)
    }

    /// Waits until `name` is free (here and on the other daemons we know
    /// of), at most until `deadline`; true if it is.
    pub async fn until_name_free(&self, name: &Name, deadline: tokio::time::Instant) -> bool {
        loop {
            let freed = self.name_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.is_name_free(name) {
                return true;
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return self.is_name_free(name);
            }
        }
    }

    /// Changes a person's name; returns the old one and their rooms.
    pub fn rename(&self, id: ConnId, new: Name) -> Result<(Name, Vec<RoomKey>), RoomError> {
        let mut state = self.lock();
        let key = new.key();
        let others_hold_it = state.by_key.get(&key).is_some_and(|&owner| owner != id)
            || state.remote.contains_key(&key);
        if others_hold_it {
            return Err(RoomError::NameTaken);
        }
        let person = state.local.get_mut(&id).ok_or(RoomError::NoSuchUser)?;
        let old = std::mem::replace(&mut person.name, new);
        let rooms = person.rooms.clone();
        state.by_key.remove(&old.key());
        state.by_key.insert(key, id);
        drop(state);
        self.name_freed.notify_waiters();
        Ok((old, rooms))
    }

    /// Records that a person entered or left a room.
    pub fn set_in_room(&self, id: ConnId, room: &RoomKey, inside: bool) {
        let mut state = self.lock();
        let Some(person) = state.local.get_mut(&id) else { return };
        match (person.rooms.binary_search(room), inside) {
            (Err(at), true) => person.rooms.insert(at, room.clone()),
            (Ok(at), false) => {
                person.rooms.remove(at);
            }
            _ => {}
        }
    }

    /// Whether a local person is in `room`, and how many rooms they are in.
    pub fn membership(&self, id: ConnId, room: &RoomKey) -> (bool, usize) {
        let state = self.lock();
        let rooms = state.local.get(&id).map_or(&[][..], |p| p.rooms.as_slice());
        (rooms.binary_search(room).is_ok(), rooms.len())
    }

    /// Delivers something to one local person by name (any case or look-alike spelling).
    pub fn send_direct(&self, to: &str, what: Direct) -> Result<Person, RoomError> {
        let state = self.lock();
        let id = state.by_key.get(&NameKey::of(to.trim())).ok_or(RoomError::NoSuchUser)?;
        let person = state.local.get(id).ok_or(RoomError::NoSuchUser)?;
        person.inbox.push(what)?;
        Ok(person.clone())
    }

    /// True when nobody here or on another daemon has this name (or a look-alike).
    pub fn is_name_free(&self, name: &Name) -> bool {
        !self.lock().is_taken(&name.key())
    }

    /// People connected to this daemon.
    pub fn local_count(&self) -> usize {
        self.lock().local.len()
    }

    /// People connected here and to other daemons.
    pub fn count(&self) -> usize {
        let state = self.lock();
        state.local.len() + state.remote.len()
    }

    /// This daemon's people, their theme numbers and rooms, for the backplane.
    pub fn local_roster(&self) -> Vec<(Name, usize, Vec<RoomKey>)> {
        let state = self.lock();
        let roster = state.local.values();
        roster.map(|p| (p.name.clone(), theme_index(&p.theme), p.rooms.clone())).collect()
    }

    /// This daemon's people's names.
    pub fn local_names(&self) -> Vec<Name> {
        self.lock().local.values().map(|p| p.name.clone()).collect()
    }

    /// The daemon and spelling of a person on another daemon, if there is one by that name.
    pub fn remote_person(&self, name: &str) -> Option<(NodeId, Name)> {
        let state = self.lock();
        let remote = state.remote.get(&NameKey::of(name.trim()))?;
        Some((remote.node, remote.name.clone()))
    }

    /// A person of another daemon entered `room` (arriving there first, if
    /// new), or is known to be there in no room (`None`: an IRC user may
    /// be); their theme, or `None` when the name is ours here (both
    /// daemons admitted it while Redis could not arbitrate).
    pub fn remote_enter(
        &self,
        node: NodeId,
        name: Name,
        theme: usize,
        room: Option<&RoomName>,
    ) -> Option<Theme> {
        let mut state = self.lock();
        let key = name.key();
        if state.by_key.contains_key(&key) {
            return None;
        }
        let known = state.remote.get(&key).is_some_and(|p| p.node == node);
        if !known {
            let theme = THEMES[theme.min(THEMES.len() - 1)];
            let person = RemotePerson { name, theme, node, rooms: Vec::new() };
            if let Some(old) = state.remote.insert(key.clone(), person) {
                state.release_theme(&old.theme);
            }
            state.use_theme(&theme);
        }
        let person = state.remote.get_mut(&key)?;
        if let Some(room) = room
            && !person.rooms.iter().any(|r| r.key() == room.key())
        {
            person.rooms.push(room.clone());
        }
        Some(person.theme)
    }

    /// A person of another daemon left one room; their theme, if known there.
    pub fn remote_part(&self, node: NodeId, name: &Name, room: &RoomKey) -> Option<Theme> {
        let mut state = self.lock();
        let person = state.remote.get_mut(&name.key()).filter(|p| p.node == node)?;
        let before = person.rooms.len();
        person.rooms.retain(|r| r.key() != *room);
        (person.rooms.len() < before).then_some(person.theme)
    }

    /// A person of another daemon left their server.
    pub fn remote_leave(&self, node: NodeId, name: &Name) -> Option<Departed> {
        let mut state = self.lock();
        let key = name.key();
        if state.remote.get(&key).is_none_or(|p| p.node != node) {
            return None;
        }
        let person = state.remote.remove(&key)?;
        state.release_theme(&person.theme);
        drop(state);
        self.name_freed.notify_waiters();
        Some(departed(&person))
    }

    /// A person of another daemon changed name.
    pub fn remote_rename(&self, node: NodeId, old: &Name, new: Name) -> Option<Departed> {
        let mut state = self.lock();
        let mut person = state.remote.remove(&old.key()).filter(|p| p.node == node)?;
        person.name = new;
        let was = departed(&person);
        state.remote.insert(person.name.key(), person);
        drop(state);
        self.name_freed.notify_waiters();
        Some(was)
    }

    /// The people of another daemon, all removed (it shut down or went
    /// silent), with what they were.
    pub fn remote_node_gone(&self, node: NodeId) -> Vec<(Name, Departed)> {
        let mut state = self.lock();
        let keys: Vec<NameKey> =
            state.remote.iter().filter(|(_, p)| p.node == node).map(|(k, _)| k.clone()).collect();
        let mut gone = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(person) = state.remote.remove(&key) {
                state.release_theme(&person.theme);
                gone.push((person.name.clone(), departed(&person)));
            }
        }
        drop(state);
        self.name_freed.notify_waiters();
        gone
    }

    /// The people of other daemons in `room`: name, theme, daemon.
    pub fn remote_in(&self, room: &RoomKey) -> Vec<(Name, Theme, NodeId)> {
        let state = self.lock();
        let inside = state.remote.values().filter(|p| p.rooms.iter().any(|r| r.key() == *room));
        inside.map(|p| (p.name.clone(), p.theme, p.node)).collect()
    }

    /// The rooms people of other daemons are in, with how many of them.
    pub fn remote_rooms(&self) -> Vec<(RoomName, usize)> {
        let state = self.lock();
        let mut counts: HashMap<RoomKey, (RoomName, usize)> = HashMap::new();
        for room in state.remote.values().flat_map(|p| &p.rooms) {
            counts.entry(room.key()).or_insert_with(|| (room.clone(), 0)).1 += 1;
        }
        counts.into_values().collect()
    }

    /// Marks the other daemons unreachable (or reachable again), telling
    /// every local person once per change. Newcomers learn it from
    /// [`Admitted::degraded`].
    pub fn set_degraded(&self, degraded: bool) {
        let mut state = self.lock();
        if state.degraded == degraded {
            return;
        }
        state.degraded = degraded;
        let reply = if degraded { Reply::Degraded } else { Reply::WholeAgain };
        for person in state.local.values() {
            // A person whose inbox is full is not reading; they miss this notice only.
            let _ = person.inbox.push(Direct::Reply(reply.clone()));
        }
    }

    /// Every person here, with their address, for the console.
    pub fn local_people(&self) -> Vec<Person> {
        self.lock().local.values().cloned().collect()
    }
}

impl PeopleState {
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

    /// A random theme among the least used, so themes are unique while the pool lasts.
    fn pick_theme(&self) -> usize {
        let fewest = self.theme_use.iter().copied().min().unwrap_or(0);
        let candidates: Vec<usize> =
            (0..THEMES.len()).filter(|&i| self.theme_use[i] == fewest).collect();
        candidates[rand::rng().random_range(0..candidates.len())]
    }
}

fn departed(person: &RemotePerson) -> Departed {
    let mut rooms: Vec<RoomKey> = person.rooms.iter().map(RoomName::key).collect();
    rooms.sort();
    Departed { theme: person.theme, rooms }
}

/// The position of a theme in [`THEMES`].
pub fn theme_index(theme: &Theme) -> usize {
    THEMES.iter().position(|t| t == theme).unwrap_or(0)
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
        let people = People::default();
        let themes: HashSet<&str> = (0..THEMES.len() as u64)
            .map(|i| {
                people.admit(i, name(&format!("user{i}")), peer()).expect("admitted").theme.emoji
            })
            .collect();
        assert_eq!(themes.len(), THEMES.len());
    }

    #[test]
    fn names_clash_ignoring_case_and_lookalikes() {
        let people = People::default();
        people.admit(1, name("alice"), peer()).expect("admitted");
        assert_eq!(people.admit(2, name("ALICE"), peer()).err(), Some(RoomError::NameTaken));
        assert_eq!(people.admit(3, name("\u{0430}lice"), peer()).err(), Some(RoomError::NameTaken));
        people.remove(1);
        assert!(people.admit(4, name("Alice"), peer()).is_ok());
    }

    #[test]
    fn rename_frees_the_old_name_and_keeps_the_rooms() {
        let people = People::default();
        people.admit(1, name("alice"), peer()).expect("admitted");
        let rust = RoomKey::of("#rust");
        people.set_in_room(1, &rust, true);
        assert_eq!(people.rename(1, name("alicia")), Ok((name("alice"), vec![rust])));
        assert!(people.admit(2, name("alice"), peer()).is_ok());
        assert_eq!(people.rename(1, name("ALICE")), Err(RoomError::NameTaken));
    }

    #[test]
    fn a_remote_name_is_taken_here_too() {
        let people = People::default();
        let lobby = RoomName::lobby();
        assert!(people.remote_enter(7, name("bob"), 2, Some(&lobby)).is_some());
        assert_eq!(people.admit(1, name("Bob"), peer()).err(), Some(RoomError::NameTaken));
        assert!(people.remote_leave(8, &name("bob")).is_none(), "only bob's own daemon");
        assert!(people.remote_leave(7, &name("bob")).is_some());
        assert!(people.admit(1, name("Bob"), peer()).is_ok());
    }
}
