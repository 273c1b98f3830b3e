//! The one door to the shared state: every change a user or the operator
//! makes goes through [`Hub`].
//!
//! Arriving, joining and parting rooms, renaming, saying, acting,
//! whispering, leaving, announcing and kicking each apply the change to
//! [`People`] and the [`Rooms`] involved and, when a backplane is
//! configured, hand it on to the other daemons (claiming and releasing
//! names there too). Connection and console code call the hub and never
//! the rooms' writers or the backplane directly, so no call site has to
//! remember to tell another daemon. A change that concerns one person in
//! several rooms (a rename, a departure) goes to each of their rooms with
//! the list of them, so someone who shares several sees it once. Every
//! message and announcement is also handed to the [`Store`] (never
//! waiting), and a room that opens replays what the history recalls of it.

mod moderate;
mod remote;

pub use moderate::{Action, Actor, TOPIC_MAX, needs_of};

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_proto::{Name, RoomKey, RoomName, Theme};
use tracing::{info, warn};

use crate::backplane::Backplane;
use crate::backplane::wire::Wire;
use crate::event::{ConnId, Message, Presence, Said, Scope};
use crate::moderation::{Ban, Change, Moderation, Mute};
use crate::people::{Admitted, Direct, Inbox, People, theme_index};
use crate::reply::Reply;
use crate::room::{Entry, Listing, Member, Place, Room, RoomError};
use crate::rooms::{RoomListing, Rooms};
use crate::session::LastRoom;
use crate::stats::Stats;
use crate::store::{Accounts, History, Store, Stored, now_ms};

/// Attempts at a free `guest-NNNN` name before giving up.
const GUEST_ATTEMPTS: usize = 50;
/// How long a new login waits for the connection it replaces to leave.
const REPLACE_WAIT: Duration = Duration::from_secs(5);

/// Who a local user is, as the hub needs to know to speak for them.
#[derive(Debug, Clone)]
pub struct Speaker {
    pub id: ConnId,
    pub name: Name,
    pub theme: Theme,
    pub peer: SocketAddr,
    /// Logged in as the owner of a registered name (or registered it now).
    pub registered: bool,
}

impl Speaker {
    fn member(&self) -> Member {
        Member { name: self.name.clone(), theme: self.theme, peer: self.peer }
    }

    fn arrived(&self) -> Presence {
        Presence::Arrived { who: self.name.clone(), theme: self.theme }
    }

    fn joined(&self, room: &RoomName) -> Presence {
        Presence::Joined { who: self.name.clone(), theme: self.theme, room: room.clone() }
    }

    fn parted(&self, room: &RoomName) -> Presence {
        Presence::Parted { who: self.name.clone(), theme: self.theme, room: room.clone() }
    }

    fn departed(&self, how: &str) -> Presence {
        Presence::Departed { who: self.name.clone(), theme: self.theme, how: how.to_owned() }
    }
}

/// What is known about the right to a name when it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRight {
    /// Not yet asked: the hub refuses it if it is registered.
    Unchecked,
    /// The caller found it is not registered.
    Free,
    /// Registered, and its owner gave the password.
    Owner,
}

/// A room just joined, and what the joiner is shown of it.
pub struct Joined {
    pub room: Arc<Room>,
    pub entry: Entry,
}

/// What a newcomer gets on arrival: a theme, an inbox, whether the other
/// daemons are reachable, and `#lobby`.
pub struct Arrival {
    pub theme: Theme,
    pub inbox: Arc<Inbox>,
    pub degraded: bool,
    pub lobby: Joined,
}

pub struct Hub {
    people: Arc<People>,
    rooms: Arc<Rooms>,
    backplane: Option<Backplane>,
    store: Store,
    stats: Arc<Stats>,
    rooms_per_user: usize,
    /// Lines a room replays to newcomers (`--history`).
    replay: usize,
    /// Bans, mutes, owners, room operators, topics and server operators.
    moderation: Moderation,
    /// Moderation changes made here that Redis could not keep yet.
    unkept: Mutex<Vec<Change>>,
    /// Set when the store could not be read: it is, once Redis is back.
    moderation_unread: AtomicBool,
}

/// How the hub is set up: the parts it ties together, and its limits.
pub struct HubParts {
    pub people: Arc<People>,
    pub rooms: Arc<Rooms>,
    pub backplane: Option<Backplane>,
    pub store: Store,
    pub stats: Arc<Stats>,
    pub rooms_per_user: usize,
    pub replay: usize,
    pub moderation: Moderation,
}

impl Hub {
    pub fn new(parts: HubParts) -> Self {
        let HubParts { people, rooms, backplane, store, stats, rooms_per_user, replay, moderation } =
            parts;
        Hub {
            people,
            rooms,
            backplane,
            store,
            stats,
            rooms_per_user,
            replay,
            moderation,
            unkept: Mutex::default(),
            moderation_unread: AtomicBool::new(false),
        }
    }

    /// Bans, mutes, owners, room operators and topics, for reading.
    pub fn moderation(&self) -> &Moderation {
        &self.moderation
    }

    /// The ban on connections from `ip`, if any.
    pub fn address_ban(&self, ip: std::net::IpAddr) -> Option<Ban> {
        self.moderation.address_ban(ip, now_ms())
    }

    /// The refusal of a name banned from the server, if it is.
    fn refuse_banned_name(&self, name: &Name) -> Result<(), RoomError> {
        match self.moderation.name_ban(&name.key(), None, now_ms()) {
            Some(Ban { reason, until_ms, .. }) => {
                Err(RoomError::Banned { room: None, reason, until_ms })
            }
            None => Ok(()),
        }
    }

    /// Where the rooms' messages and the registered names are kept (to
    /// close it, and for its counters).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The rooms' history.
    pub fn history(&self) -> History<'_> {
        self.store.history()
    }

    /// The registered names.
    pub fn accounts(&self) -> Accounts<'_> {
        self.store.accounts()
    }

    /// Who is connected, for reading.
    pub fn people(&self) -> &People {
        &self.people
    }

    /// Which rooms are open, for reading.
    pub fn rooms(&self) -> &Rooms {
        &self.rooms
    }

    pub fn backplane(&self) -> Option<&Backplane> {
        self.backplane.as_ref()
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Arrives as `name`: free here, not registered to someone else
    /// (`right`: whether that is still to be checked), claimed across
    /// daemons, admitted, and in `#lobby`, announced everywhere.
    pub async fn arrive(
        &self,
        id: ConnId,
        name: Name,
        peer: SocketAddr,
        right: NameRight,
    ) -> Result<(Name, Arrival), RoomError> {
        if !self.people.is_name_free(&name) {
            return Err(RoomError::NameTaken);
        }
        self.refuse_banned_name(&name)?;
        if right == NameRight::Unchecked && self.is_registered(&name).await {
            return Err(RoomError::Registered);
        }
        if let Some(bp) = &self.backplane
            && !bp.claim(&name).await
        {
            return Err(RoomError::NameTaken);
        }
        let admitted = match self.people.admit(id, name.clone(), peer) {
            Ok(admitted) => admitted,
            Err(error) => {
                if let Some(bp) = &self.backplane {
                    bp.release(&name);
                }
                return Err(error);
            }
        };
        let registered = right == NameRight::Owner;
        let speaker = Speaker { id, name: name.clone(), theme: admitted.theme, peer, registered };
        let notice = |_: &Room| speaker.arrived();
        let lobby = RoomName::lobby();
        let recalled = self.recall(&lobby.key()).await;
        let lobby = match self.enter(&speaker, &lobby, recalled, notice) {
            Ok(lobby) => lobby,
            Err(error) => {
                self.people.remove(id);
                if let Some(bp) = &self.backplane {
                    bp.release(&name);
                }
                return Err(error);
            }
        };
        self.forward_join(&speaker, &RoomName::lobby(), true);
        self.carry(&lobby.room).await;
        let Admitted { theme, inbox, degraded } = admitted;
        Ok((name, Arrival { theme, inbox, degraded, lobby }))
    }

    /// Arrives under a free generated name (`guest-1234`).
    pub async fn arrive_as_guest(
        &self,
        id: ConnId,
        peer: SocketAddr,
    ) -> Result<(Name, Arrival), String> {
        for _ in 0..GUEST_ATTEMPTS {
            let number: u32 = rand::random_range(1000..10_000);
            let Ok(name) = Name::parse(&format!("guest-{number}")) else {
                continue;
            };
            match self.arrive(id, name, peer, NameRight::Unchecked).await {
                Ok(arrived) => return Ok(arrived),
                Err(RoomError::NameTaken | RoomError::Registered) => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
        Err("no guest name is free; please type a name".to_owned())
    }

    /// Whether `name` (or a look-alike) is registered. When the store
    /// cannot answer, the name is let through (and the failure logged):
    /// an unreachable store must not lock everyone out.
    pub async fn is_registered(&self, name: &Name) -> bool {
        match self.store.accounts().account(&name.key()).await {
            Ok(account) => account.is_some(),
            Err(error) => {
                warn!(%error, %name, "cannot tell whether a name is registered");
                false
            }
        }
    }

    /// The registered owner of `name` logged in again: the connection
    /// using it, here or on another daemon, is told and closed. Waits
    /// (briefly) until the name is free; false if it is still taken.
    pub async fn replace(&self, name: &Name) -> bool {
        if self.people.is_name_free(name) {
            return true;
        }
        if self.people.send_direct(name.as_str(), Direct::Replaced).is_err() {
            let Some(bp) = &self.backplane else { return self.people.is_name_free(name) };
            let Some((there, _)) = self.people.remote_person(name.as_str()) else {
                return self.people.is_name_free(name);
            };
            bp.forward_to(there, Wire::Replace { node: bp.node(), name: name.clone() });
        }
        self.people.until_name_free(name, tokio::time::Instant::now() + REPLACE_WAIT).await
    }

    /// The recent lines a room replays, read from the history unless the
    /// room has them in memory already (`None` then).
    async fn recall(&self, room: &RoomKey) -> Option<Vec<Stored>> {
        if self.replay == 0 || self.rooms.remembers(room) {
            return None;
        }
        match self.store.history().recent(room, self.replay).await {
            Ok(lines) => Some(lines),
            Err(error) => {
                warn!(%error, room = room.as_str(), "no replay for a room that opens");
                None
            }
        }
    }

    /// Enters a room (opening it, with `recalled` lines to replay); its
    /// members are told `notice(room)`.
    fn enter(
        &self,
        speaker: &Speaker,
        name: &RoomName,
        recalled: Option<Vec<Stored>>,
        notice: impl FnOnce(&Room) -> Presence,
    ) -> Result<Joined, RoomError> {
        let seed = |room: &Room| {
            for (name, theme, node) in self.people.remote_in(room.key()) {
                room.remote_join(node, name, theme, None);
            }
        };
        let joined = self.rooms.enter(name, recalled, seed, |room| Joined {
            room: Arc::clone(room),
            entry: room.join(speaker.id, speaker.member(), &notice(room)),
        })?;
        self.people.set_in_room(speaker.id, joined.room.key(), true);
        Ok(joined)
    }

    /// Joins the room called `name` (opening it), or makes it current if
    /// already in: `None` then. Its other members are told.
    pub async fn join_room(
        &self,
        speaker: &Speaker,
        name: &RoomName,
    ) -> Result<Option<Joined>, RoomError> {
        let (inside, rooms) = self.people.membership(speaker.id, &name.key());
        if inside {
            return Ok(None);
        }
        if rooms >= self.rooms_per_user {
            return Err(RoomError::TooManyRoomsForYou { max: self.rooms_per_user });
        }
        if let Some(ban) =
            self.moderation.name_ban(&speaker.name.key(), Some(&name.key()), now_ms())
        {
            let Ban { room, reason, until_ms, .. } = ban;
            return Err(RoomError::Banned { room, reason, until_ms });
        }
        let recalled = self.recall(&name.key()).await;
        let joined = self.enter(speaker, name, recalled, |room| speaker.joined(room.name()))?;
        if speaker.registered && joined.room.key() != &RoomKey::of(chat_proto::LOBBY) {
            self.claim(joined.room.name(), speaker).await;
        }
        self.forward_join(speaker, joined.room.name(), false);
        self.carry(&joined.room).await;
        Ok(Some(joined))
    }

    /// A room with no owner becomes the registered user who opens it
    /// (alone in it), kept in the store so it stays theirs while empty,
    /// and told to the other daemons.
    async fn claim(&self, room: &RoomName, speaker: &Speaker) {
        if self.moderation.owner(&room.key()).is_some()
            || !self.people.remote_in(&room.key()).is_empty()
        {
            return;
        }
        let Some(alone) = self.rooms.get(&room.key()).map(|r| r.who().len() == 1) else { return };
        if !alone {
            return;
        }
        if let Some(change) = self.moderation.claim_room(room, &speaker.name, now_ms()) {
            info!(room = %room, owner = %speaker.name, "a room has its owner");
            self.carry_out(None, change).await;
        }
    }

    /// Leaves one room (the last one only if `last` allows it: an IRC user
    /// may be in no room, and is still online); its members are told.
    pub fn part_room(
        &self,
        speaker: &Speaker,
        key: &RoomKey,
        last: LastRoom,
    ) -> Result<RoomName, RoomError> {
        let (inside, rooms) = self.people.membership(speaker.id, key);
        if !inside {
            return Err(RoomError::NotInRoom);
        }
        if rooms == 1 && last == LastRoom::Kept {
            return Err(RoomError::OnlyRoom);
        }
        let left = self.rooms.leave(key, |room| {
            room.leave(speaker.id, &speaker.parted(room.name()), Scope::Room);
            room.name().clone()
        });
        self.people.set_in_room(speaker.id, key, false);
        let name = left.ok_or(RoomError::NoSuchRoom)?;
        if let Some(bp) = &self.backplane {
            let (node, who) = (bp.node(), speaker.name.clone());
            bp.forward(Wire::Part { node, name: who, room: name.clone() });
        }
        Ok(name)
    }

    /// Renames `speaker` to `new` here and on every daemon; on success the
    /// speaker carries the new name. Each of their rooms is told, and
    /// someone in several of them reads it once.
    pub async fn rename(&self, speaker: &mut Speaker, new: Name) -> Result<(), RoomError> {
        let same_person = new.key() == speaker.name.key();
        if !same_person && !self.people.is_name_free(&new) {
            return Err(RoomError::NameTaken);
        }
        if !same_person && self.is_registered(&new).await {
            return Err(RoomError::Registered);
        }
        self.refuse_banned_name(&new)?;
        let backplane = self.backplane.as_ref().filter(|_| !same_person);
        if let Some(bp) = backplane
            && !bp.claim(&new).await
        {
            return Err(RoomError::NameTaken);
        }
        let (old, rooms) = match self.people.rename(speaker.id, new.clone()) {
            Ok(renamed) => renamed,
            Err(error) => {
                if let Some(bp) = backplane {
                    bp.release(&new);
                }
                return Err(error);
            }
        };
        let notice = Presence::Renamed { old: old.clone(), new: new.clone(), theme: speaker.theme };
        let scope = Scope::across(&rooms);
        for key in &rooms {
            if let Some(room) = self.rooms.get(key) {
                room.rename(speaker.id, &new, &notice, scope.clone());
            }
        }
        if let Some(bp) = &self.backplane {
            let theme = theme_index(&speaker.theme);
            bp.forward(Wire::Rename { node: bp.node(), old: old.clone(), new: new.clone(), theme });
            if !same_person {
                bp.release(&old);
            }
        }
        speaker.name = new;
        // A registered name stays with its owner; the new one is not theirs.
        speaker.registered &= same_person;
        Ok(())
    }

    /// A chat line (or a `/me` action) to everyone else in `room`, on every
    /// daemon. Returns how many others are in the room, or the mute that
    /// refuses it.
    pub fn say(
        &self,
        speaker: &Speaker,
        room: &Room,
        text: &str,
        action: bool,
    ) -> Result<usize, Mute> {
        if let Some(mute) = self.muted(speaker, room.key()) {
            return Err(mute);
        }
        let message = Message {
            name: speaker.name.clone(),
            theme: theme_index(&speaker.theme),
            text: text.to_owned(),
            action,
        };
        // One time for the line and its stored copy, so a page can tell a
        // replayed line from another. Copies only for a history that keeps
        // it and another daemon that is to hear it; kept before it is
        // forwarded, so whoever reads it elsewhere finds it in the shared
        // history too.
        let at_ms = now_ms();
        let kept = self.store.history().keeps_history().then(|| message.clone());
        let forwarded = self.backplane.as_ref().map(|bp| (bp, message.clone()));
        let others = room.say(Some(speaker.id), Said::Message(message), at_ms);
        if let Some(kept) = kept {
            self.store.history().record(room.name(), Stored { at_ms, said: Said::Message(kept) });
        }
        if let Some((bp, Message { name, theme, text, action })) = forwarded {
            let room = room.name().clone();
            bp.forward(Wire::Message { node: bp.node(), room, name, theme, text, action });
        }
        Stats::add(&self.stats.messages, 1);
        Ok(others)
    }

    /// A private line to one user, here or on another daemon; returns the
    /// recipient's name as spelt.
    pub fn whisper(&self, speaker: &Speaker, to: &str, text: &str) -> Result<Name, RoomError> {
        if let Some(mute) = self.moderation.server_mute(&speaker.name.key(), now_ms()) {
            let Mute { until_ms, .. } = mute;
            return Err(RoomError::Muted { until_ms });
        }
        let private = Reply::Private {
            from: speaker.name.clone(),
            theme: speaker.theme,
            text: text.to_owned(),
        };
        match self.people.send_direct(to, Direct::Reply(private)) {
            Ok(person) => Ok(person.name),
            Err(RoomError::NoSuchUser) => self.whisper_elsewhere(speaker, to, text),
            Err(error) => Err(error),
        }
    }

    fn whisper_elsewhere(
        &self,
        speaker: &Speaker,
        to: &str,
        text: &str,
    ) -> Result<Name, RoomError> {
        let bp = self.backplane.as_ref().ok_or(RoomError::NoSuchUser)?;
        let (there, name) = self.people.remote_person(to).ok_or(RoomError::NoSuchUser)?;
        bp.forward_to(
            there,
            Wire::Private {
                node: bp.node(),
                to: name.clone(),
                from: speaker.name.clone(),
                theme: theme_index(&speaker.theme),
                text: text.to_owned(),
            },
        );
        Ok(name)
    }

    /// `speaker` left the server (`how`: "left (bye)", "lost connection",
    /// ...): each of their rooms is told (once per reader), here and
    /// everywhere, and the name is free again.
    pub fn leave(&self, speaker: &Speaker, how: String) {
        let Some(person) = self.people.remove(speaker.id) else { return };
        if speaker.registered {
            let names: Vec<RoomName> = person
                .rooms
                .iter()
                .filter_map(|key| self.rooms.get(key))
                .map(|r| r.name().clone())
                .collect();
            self.store.accounts().left(&speaker.name.key(), &names);
        }
        let notice = speaker.departed(&how);
        let scope = Scope::across(&person.rooms);
        for key in &person.rooms {
            self.rooms.leave(key, |room| room.leave(speaker.id, &notice, scope.clone()));
        }
        if let Some(bp) = &self.backplane {
            // Released first: a daemon that hears of the departure (a login
            // replacing this one, say) finds the name free to claim.
            let (name, theme) = (speaker.name.clone(), theme_index(&speaker.theme));
            bp.release(&name);
            bp.forward(Wire::Leave { node: bp.node(), name, theme, how });
        }
    }

    /// The operator's `/say`, to one room or to every room (once per
    /// reader), on every daemon; returns how many users it reached here.
    pub fn announce(&self, text: &str, room: Option<&RoomKey>) -> Result<usize, RoomError> {
        let rooms = match room {
            Some(key) => vec![self.rooms.get(key).ok_or(RoomError::NoSuchRoom)?],
            None => self.rooms.all(),
        };
        let mut keys: Vec<RoomKey> = rooms.iter().map(|r| r.key().clone()).collect();
        keys.sort();
        let scope = Scope::across(&keys);
        let stored = Stored::now(Said::Announcement(text.to_owned()));
        let at_ms = stored.at_ms;
        let receivers = rooms.iter().map(|room| room.announce(text, scope.clone(), at_ms)).sum();
        for room in &rooms {
            self.store.history().record(room.name(), stored.clone());
        }
        if let Some(bp) = &self.backplane {
            let names = rooms.iter().map(|r| r.name().clone()).collect();
            let text = text.to_owned();
            bp.forward(Wire::Announcement { node: bp.node(), rooms: names, text });
        }
        info!(text, receivers, "operator announcement");
        Ok(receivers)
    }

    /// Who is in a room, here and on other daemons.
    pub fn who(&self, room: &RoomKey) -> Result<Vec<Listing>, RoomError> {
        if let Some(room) = self.rooms.get(room) {
            return Ok(room.who());
        }
        // Nobody here is in it: only other daemons' people can be.
        let mut listings: Vec<Listing> = self
            .people
            .remote_in(room)
            .into_iter()
            .map(|(name, theme, node)| Listing { name, theme, place: Place::Node(node) })
            .collect();
        if listings.is_empty() {
            return Err(RoomError::NoSuchRoom);
        }
        listings.sort_by_cached_key(|l| l.name.key());
        Ok(listings)
    }

    /// The rooms that have members, here or on other daemons, with counts.
    pub fn room_list(&self) -> Vec<RoomListing> {
        let mut listings = self.rooms.list();
        for (name, users) in self.people.remote_rooms() {
            let key = name.key();
            if !listings.iter().any(|l| l.key == key) {
                listings.push(RoomListing { name, key, users, topic: None });
            }
        }
        for listing in &mut listings {
            listing.topic = self.moderation.topic(&listing.key).map(|topic| topic.text);
        }
        listings.sort_by(|a, b| a.key.cmp(&b.key));
        listings
    }

    /// With a backplane, waits until this daemon carries `room`'s lines, so
    /// whoever just entered it misses none.
    async fn carry(&self, room: &Room) {
        if let Some(bp) = &self.backplane {
            bp.carry(room.key()).await;
        }
    }

    /// Tells the other daemons `speaker` entered `room`, on `arrival` on the server or by `/join`.
    fn forward_join(&self, speaker: &Speaker, room: &RoomName, arrival: bool) {
        if let Some(bp) = &self.backplane {
            let theme = theme_index(&speaker.theme);
            let (node, name, room) = (bp.node(), speaker.name.clone(), room.clone());
            bp.forward(Wire::Join { node, name, theme, room, arrival });
        }
    }

    /// True while `room`'s readers, or the daemons behind the backplane,
    /// are so far behind that senders should wait.
    pub fn is_backlogged(&self, room: &Room) -> bool {
        room.is_backlogged() || self.backplane.as_ref().is_some_and(Backplane::is_backlogged)
    }
}
