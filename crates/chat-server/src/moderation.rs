//! What stands in the way of whom: ranks, bans, mutes, room owners, room
//! operators and topics, as data and rules, with nothing of the network.
//!
//! [`Moderation`] is the daemon's record of them, in memory behind one
//! short-held lock, read at every arrival, `/join` and line, so a check
//! never waits for the store. Every change is a [`Change`] (a [`Row`] put,
//! or a row removed) and takes hold in one way, `State::apply`, whether it
//! was typed here, heard from another daemon ([`Moderation::apply`]) or
//! read back from the store at start or after an outage
//! ([`Moderation::new`], [`Moderation::replace`]); the hub keeps it and
//! hands it on. A row has one spelling ([`Row::encode`]), used between
//! daemons and in the shared store, and read back with every field
//! checked again ([`Row::decode`]). Every ban and mute carries its end as
//! a time since 1970 (`until_ms`), so an expiry holds across restarts and
//! daemons: an expired entry is simply not found, and forgotten when next
//! looked at.
//!
//! Ranks: guest < registered < room operator < room owner < server
//! operator. Nobody acts on an equal or higher rank.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chat_proto::{Name, NameKey, RoomKey, RoomName, sanitize_text};
use ipnet::IpNet;

use crate::address_bans::AddressBans;
use crate::utc::Utc;

/// How much a person may do, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rank {
    Guest,
    Registered,
    RoomOperator,
    RoomOwner,
    ServerOperator,
}

impl Rank {
    /// How a refusal names the rank.
    pub fn describe(self) -> &'static str {
        match self {
            Rank::Guest => "a guest",
            Rank::Registered => "a registered user",
            Rank::RoomOperator => "a room operator",
            Rank::RoomOwner => "the room's owner",
            Rank::ServerOperator => "a server operator",
        }
    }
}

pub use chat_proto::command::parse_duration;

/// When something set at `now_ms` for `duration` ends (`None`: until lifted).
pub fn until(now_ms: i64, duration: Option<Duration>) -> Option<i64> {
    duration.map(|d| now_ms.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
}

/// `until 2026-05-01 12:30 UTC`, or `until lifted`.
pub fn until_text(until_ms: Option<i64>) -> String {
    let Some(at_ms) = until_ms else { return "until lifted".to_owned() };
    let Utc { year, month, day, hour, minute, .. } = Utc::of(at_ms);
    format!("until {year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

/// Who or what a ban is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A name and its look-alikes.
    Name(Name),
    /// An address or a range of them (server-wide only).
    Address(IpNet),
}

impl Target {
    /// An address (`192.0.2.7`, `2001:db8::1`) or range (`10.0.0.0/8`) as
    /// an address ban, anything else as a name.
    pub fn parse(typed: &str) -> Result<Target, String> {
        if let Ok(net) = typed.parse::<IpNet>() {
            return Ok(Target::Address(net.trunc()));
        }
        if let Ok(ip) = typed.parse::<IpAddr>() {
            return Ok(Target::Address(IpNet::from(ip)));
        }
        Name::parse(typed).map(Target::Name).map_err(|e| e.to_string())
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Name(name) => write!(f, "{name}"),
            Target::Address(net) if net.prefix_len() == net.max_prefix_len() => {
                write!(f, "{}", net.addr())
            }
            Target::Address(net) => write!(f, "{net}"),
        }
    }
}

/// A ban in force: in one room, or on the whole server (`room: None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub target: Target,
    pub room: Option<RoomName>,
    pub by: String,
    pub reason: String,
    pub set_ms: i64,
    pub until_ms: Option<i64>,
}

/// A mute in force: in one room, or everywhere (`room: None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mute {
    pub who: Name,
    pub room: Option<RoomName>,
    pub by: String,
    pub set_ms: i64,
    pub until_ms: Option<i64>,
}

/// A room's topic, who set it and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub text: String,
    pub by: String,
    pub set_ms: i64,
}

/// One row of the store's `moderation` table. `room_key` is empty for the
/// whole server; `target_key` is a name's key, an address range, or empty
/// (a room's owner or topic, one each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub kind: String,
    pub room_key: String,
    pub target_key: String,
    pub room: String,
    pub target: String,
    pub by: String,
    pub reason: String,
    pub set_ms: i64,
    pub until_ms: Option<i64>,
}

/// One change of what stands in the way of whom: a row put (replacing the
/// row of the same identity), or removed. A removal's row names what it
/// removes (`room`, `target`), who removed it (`by`) and when (`set_ms`),
/// so whoever hears of it can tell the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Put(Row),
    Remove(Row),
}

impl Change {
    pub fn row(&self) -> &Row {
        match self {
            Change::Put(row) | Change::Remove(row) => row,
        }
    }
}

impl Row {
    /// What a row is about: at most one row of each identity is in force.
    pub fn identity(&self) -> String {
        format!("{}\t{}\t{}", self.kind, self.room_key, self.target_key)
    }

    /// The row's one spelling between daemons and in the shared store:
    /// `kind room target by set_ms until_ms reason`, tab-separated, the free
    /// text last (sanitised text holds no tab); the keys are not spelt, they
    /// follow from the room and the target.
    pub fn encode(&self) -> String {
        let until = self.until_ms.map(|ms| ms.to_string()).unwrap_or_default();
        let Row { kind, room, target, by, set_ms, reason, .. } = self;
        format!("{kind}\t{room}\t{target}\t{by}\t{set_ms}\t{until}\t{reason}")
    }

    /// Reads a row back from [`Row::encode`]'s spelling, trusting nothing:
    /// a known kind, a valid room and target for it (the keys worked out
    /// again from them), times that are numbers, text sanitised again.
    pub fn decode(text: &str) -> Result<Row, String> {
        let mut fields = text.splitn(7, '\t');
        let mut next = |what: &str| fields.next().ok_or_else(|| format!("missing {what}"));
        let kind = next("kind")?;
        let (room, target, by) = (next("room")?, next("target")?, next("by")?);
        let set_ms = next("set time")?.parse::<i64>().map_err(|_| "bad set time".to_owned())?;
        let until_ms = match next("end")? {
            "" => None,
            end => Some(end.parse::<i64>().map_err(|_| "bad end".to_owned())?),
        };
        let reason = sanitize_text(next("reason")?);
        let kind = KINDS.iter().find(|k| **k == kind).ok_or_else(|| format!("kind {kind:?}"))?;
        let room = match room {
            "" => None,
            room if room.starts_with('#') => {
                Some(RoomName::parse(room).map_err(|e| format!("room {room:?}: {e}"))?)
            }
            room => return Err(format!("room {room:?}")),
        };
        if room.is_none() && [OWNER, OPERATOR, TOPIC].contains(kind) {
            return Err(format!("a {kind} needs a room"));
        }
        let target_key = match *kind {
            ADDRESS_BAN => match Target::parse(target) {
                Ok(Target::Address(net)) => net.to_string(),
                _ => return Err(format!("address {target:?}")),
            },
            TOPIC if target.is_empty() => String::new(),
            TOPIC => return Err("a topic has no target".to_owned()),
            _ => {
                let name = Name::parse(target).map_err(|e| format!("name {target:?}: {e}"))?;
                if *kind == OWNER { String::new() } else { name.key().as_str().to_owned() }
            }
        };
        Ok(Row {
            kind: (*kind).to_owned(),
            room_key: room_key(room.as_ref()),
            target_key,
            room: room_text(room.as_ref()),
            target: target.to_owned(),
            by: sanitize_text(by),
            reason,
            set_ms,
            until_ms,
        })
    }
}

// The kinds of row.
pub const BAN: &str = "ban";
pub const ADDRESS_BAN: &str = "address-ban";
pub const MUTE: &str = "mute";
pub const OWNER: &str = "owner";
pub const OPERATOR: &str = "operator";
pub const TOPIC: &str = "topic";
const KINDS: [&str; 6] = [BAN, ADDRESS_BAN, MUTE, OWNER, OPERATOR, TOPIC];

fn room_key(room: Option<&RoomName>) -> String {
    room.map(|r| r.key().as_str().to_owned()).unwrap_or_default()
}

fn room_text(room: Option<&RoomName>) -> String {
    room.map(|r| r.as_str().to_owned()).unwrap_or_default()
}

/// What a room has besides its members.
#[derive(Debug, Default, Clone)]
struct RoomRights {
    owner: Option<Name>,
    operators: Vec<Name>,
    topic: Option<Topic>,
}

type Reach = Option<RoomKey>;

#[derive(Debug, Default)]
struct State {
    name_bans: HashMap<(Reach, NameKey), Ban>,
    address_bans: AddressBans,
    mutes: HashMap<(Reach, NameKey), Mute>,
    rooms: HashMap<RoomKey, RoomRights>,
    /// Every row put and not removed, by identity: what a store that lost
    /// its rows is given back.
    rows: HashMap<String, Row>,
}

/// The daemon's bans, mutes, owners, room operators and topics, and its
/// server operators (`--operator`).
#[derive(Debug, Default)]
pub struct Moderation {
    operators: HashSet<NameKey>,
    state: Mutex<State>,
}

fn in_force(until_ms: Option<i64>, now_ms: i64) -> bool {
    until_ms.is_none_or(|until| until > now_ms)
}

impl Moderation {
    /// Server operators by name, and what the store kept (expired rows are dropped).
    pub fn new(operators: &[String], rows: Vec<Row>, now_ms: i64) -> Moderation {
        let operators = operators.iter().map(|name| NameKey::of(name.trim())).collect();
        let moderation = Moderation { operators, state: Mutex::default() };
        {
            let mut state = moderation.lock();
            for row in rows {
                if in_force(row.until_ms, now_ms) {
                    state.apply(&Change::Put(row));
                }
            }
        }
        moderation
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Each change is an insert or a remove: a panic elsewhere leaves the maps whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True when `name` is named by `--operator`.
    pub fn is_server_operator(&self, name: &NameKey) -> bool {
        self.operators.contains(name)
    }

    /// The rank of someone under `name` in `room` (`registered`: logged in
    /// as its owner; ranks above a guest need it).
    pub fn rank(&self, name: &Name, registered: bool, room: Option<&RoomKey>) -> Rank {
        if !registered {
            return Rank::Guest;
        }
        let key = name.key();
        if self.operators.contains(&key) {
            return Rank::ServerOperator;
        }
        let state = self.lock();
        let rights = room.and_then(|room| state.rooms.get(room));
        match rights {
            Some(r) if r.owner.as_ref().is_some_and(|o| o.key() == key) => Rank::RoomOwner,
            Some(r) if r.operators.iter().any(|o| o.key() == key) => Rank::RoomOperator,
            _ => Rank::Registered,
        }
    }

    /// The ban that keeps `name` out of `room` (or, `None`, off the server).
    pub fn name_ban(&self, name: &NameKey, room: Option<&RoomKey>, now_ms: i64) -> Option<Ban> {
        let mut state = self.lock();
        let key = (room.cloned(), name.clone());
        let ban = state.name_bans.get(&key)?;
        if in_force(ban.until_ms, now_ms) {
            return Some(ban.clone());
        }
        state.name_bans.remove(&key);
        None
    }

    /// The most specific ban in force that covers `ip`, if any.
    pub fn address_ban(&self, ip: IpAddr, now_ms: i64) -> Option<Ban> {
        self.lock().address_bans.find(ip, now_ms)
    }

    /// The mute that silences `name` in `room`: one there, or one everywhere.
    pub fn mute(&self, name: &Name, room: &RoomKey, now_ms: i64) -> Option<Mute> {
        let mut state = self.lock();
        if state.mutes.is_empty() {
            return None;
        }
        let name = name.key();
        for reach in [Some(room.clone()), None] {
            let key = (reach, name.clone());
            match state.mutes.get(&key) {
                Some(mute) if in_force(mute.until_ms, now_ms) => return Some(mute.clone()),
                Some(_) => {
                    state.mutes.remove(&key);
                }
                None => {}
            }
        }
        None
    }

    /// The mute that silences `name` everywhere, if any.
    pub fn server_mute(&self, name: &NameKey, now_ms: i64) -> Option<Mute> {
        let state = self.lock();
        state.mutes.get(&(None, name.clone())).filter(|m| in_force(m.until_ms, now_ms)).cloned()
    }

    /// Puts a ban in force (replacing one on the same target and reach).
    pub fn ban(&self, ban: Ban) -> Change {
        self.change(Change::Put(ban_row(&ban)))
    }

    /// Lifts a ban (`by` whom, when); `None` when there was none.
    pub fn unban(
        &self,
        target: &Target,
        room: Option<&RoomName>,
        by: &str,
        now_ms: i64,
    ) -> Option<Change> {
        let (kind, target_key) = match target {
            Target::Name(name) => (BAN, name.key().as_str().to_owned()),
            Target::Address(net) => (ADDRESS_BAN, net.to_string()),
        };
        let mut state = self.lock();
        let banned = match target {
            Target::Name(name) => {
                state.name_bans.contains_key(&(room.map(RoomName::key), name.key()))
            }
            Target::Address(net) => state.address_bans.contains(net),
        };
        if !banned {
            return None;
        }
        let row = removal(kind, room, target_key, target.to_string(), by, now_ms);
        Some(state.change(Change::Remove(row)))
    }

    /// The bans of a room (or of the server), in force, oldest first.
    pub fn bans(&self, room: Option<&RoomName>, now_ms: i64) -> Vec<Ban> {
        let state = self.lock();
        let reach = room.map(RoomName::key);
        let mut bans: Vec<Ban> = state
            .name_bans
            .iter()
            .filter(|((r, _), _)| *r == reach)
            .map(|(_, ban)| ban)
            .chain(state.address_bans.iter().filter(|_| reach.is_none()))
            .filter(|ban| in_force(ban.until_ms, now_ms))
            .cloned()
            .collect();
        bans.sort_by_key(|ban| ban.set_ms);
        bans
    }

    /// Puts a mute in force (replacing one on the same name and reach).
    pub fn set_mute(&self, mute: Mute) -> Change {
        self.change(Change::Put(Row {
            kind: MUTE.to_owned(),
            room_key: room_key(mute.room.as_ref()),
            target_key: mute.who.key().as_str().to_owned(),
            room: room_text(mute.room.as_ref()),
            target: mute.who.to_string(),
            by: mute.by,
            reason: String::new(),
            set_ms: mute.set_ms,
            until_ms: mute.until_ms,
        }))
    }

    /// Lifts a mute (`by` whom, when); `None` when there was none.
    pub fn unmute(
        &self,
        who: &Name,
        room: Option<&RoomName>,
        by: &str,
        now_ms: i64,
    ) -> Option<Change> {
        let mut state = self.lock();
        state.mutes.get(&(room.map(RoomName::key), who.key()))?;
        let row = removal(MUTE, room, who.key().as_str().to_owned(), who.to_string(), by, now_ms);
        Some(state.change(Change::Remove(row)))
    }

    /// The owner of a room, if it has one.
    pub fn owner(&self, room: &RoomKey) -> Option<Name> {
        self.lock().rooms.get(room).and_then(|r| r.owner.clone())
    }

    /// A room that has no owner yet becomes `owner`'s (`None` when it had one).
    pub fn claim_room(&self, room: &RoomName, owner: &Name, now_ms: i64) -> Option<Change> {
        let mut state = self.lock();
        if state.rooms.get(&room.key()).is_some_and(|r| r.owner.is_some()) {
            return None;
        }
        Some(state.change(Change::Put(Row {
            kind: OWNER.to_owned(),
            room_key: room_key(Some(room)),
            target_key: String::new(),
            room: room.to_string(),
            target: owner.to_string(),
            by: owner.to_string(),
            reason: String::new(),
            set_ms: now_ms,
            until_ms: None,
        })))
    }

    /// Makes `who` an operator of `room`; `None` when they were already.
    pub fn op(&self, room: &RoomName, who: &Name, by: &str, now_ms: i64) -> Option<Change> {
        let mut state = self.lock();
        if state.is_operator(&room.key(), &who.key()) {
            return None;
        }
        Some(state.change(Change::Put(Row {
            kind: OPERATOR.to_owned(),
            room_key: room_key(Some(room)),
            target_key: who.key().as_str().to_owned(),
            room: room.to_string(),
            target: who.to_string(),
            by: by.to_owned(),
            reason: String::new(),
            set_ms: now_ms,
            until_ms: None,
        })))
    }

    /// `who` is no longer an operator of `room` (`by` whom, when); `None`
    /// when they were not.
    pub fn deop(&self, room: &RoomName, who: &Name, by: &str, now_ms: i64) -> Option<Change> {
        let mut state = self.lock();
        if !state.is_operator(&room.key(), &who.key()) {
            return None;
        }
        let target_key = who.key().as_str().to_owned();
        let row = removal(OPERATOR, Some(room), target_key, who.to_string(), by, now_ms);
        Some(state.change(Change::Remove(row)))
    }

    /// The operators of a room.
    pub fn operators(&self, room: &RoomKey) -> Vec<Name> {
        self.lock().rooms.get(room).map(|r| r.operators.clone()).unwrap_or_default()
    }

    /// A room's topic, if it has one.
    pub fn topic(&self, room: &RoomKey) -> Option<Topic> {
        self.lock().rooms.get(room).and_then(|r| r.topic.clone())
    }

    /// Sets (or, with empty text, clears) a room's topic.
    pub fn set_topic(&self, room: &RoomName, topic: Topic) -> Change {
        let row = Row {
            kind: TOPIC.to_owned(),
            room_key: room_key(Some(room)),
            target_key: String::new(),
            room: room.to_string(),
            target: String::new(),
            by: topic.by,
            reason: topic.text,
            set_ms: topic.set_ms,
            until_ms: None,
        };
        if row.reason.is_empty() {
            return self.change(Change::Remove(row));
        }
        self.change(Change::Put(row))
    }

    /// A change made elsewhere (on another daemon) takes hold here too.
    pub fn apply(&self, change: &Change) {
        self.lock().apply(change);
    }

    /// Everything becomes what `rows` say (the shared store's rows, read
    /// again after an outage; expired rows are dropped). Returns the bans
    /// put in force that were not in force before, so their effects can follow.
    pub fn replace(&self, rows: Vec<Row>, now_ms: i64) -> Vec<Row> {
        let mut state = self.lock();
        let before = state.ban_identities();
        *state = State::default();
        let mut new = Vec::new();
        for row in rows.into_iter().filter(|row| in_force(row.until_ms, now_ms)) {
            let is_new_ban = [BAN, ADDRESS_BAN].contains(&row.kind.as_str())
                && !before.contains(&row.identity());
            let Change::Put(row) = state.change(Change::Put(row)) else { continue };
            if is_new_ban {
                new.push(row);
            }
        }
        new
    }

    /// Every row in force, as a store keeps them.
    pub fn rows(&self, now_ms: i64) -> Vec<Row> {
        let state = self.lock();
        state.rows.values().filter(|row| in_force(row.until_ms, now_ms)).cloned().collect()
    }

    fn change(&self, change: Change) -> Change {
        self.lock().change(change)
    }
}

fn ban_row(ban: &Ban) -> Row {
    let (kind, target_key) = match &ban.target {
        Target::Name(name) => (BAN, name.key().as_str().to_owned()),
        Target::Address(net) => (ADDRESS_BAN, net.to_string()),
    };
    Row {
        kind: kind.to_owned(),
        room_key: room_key(ban.room.as_ref()),
        target_key,
        room: room_text(ban.room.as_ref()),
        target: ban.target.to_string(),
        by: ban.by.clone(),
        reason: ban.reason.clone(),
        set_ms: ban.set_ms,
        until_ms: ban.until_ms,
    }
}

/// A removal's row: what is removed, by whom and when.
fn removal(
    kind: &str,
    room: Option<&RoomName>,
    target_key: String,
    target: String,
    by: &str,
    now_ms: i64,
) -> Row {
    Row {
        kind: kind.to_owned(),
        room_key: room_key(room),
        target_key,
        room: room_text(room),
        target,
        by: by.to_owned(),
        reason: String::new(),
        set_ms: now_ms,
        until_ms: None,
    }
}

impl State {
    /// Applies a change and hands it back.
    fn change(&mut self, change: Change) -> Change {
        self.apply(&change);
        change
    }

    fn is_operator(&self, room: &RoomKey, who: &NameKey) -> bool {
        self.rooms.get(room).is_some_and(|r| r.operators.iter().any(|o| o.key() == *who))
    }

    /// The one way anything here changes: a row put in force (replacing
    /// its like) or removed, whoever made the change and wherever. A row
    /// that does not parse (kept by another version, say) is skipped.
    fn apply(&mut self, change: &Change) {
        let (row, put) = match change {
            Change::Put(row) => (row, true),
            Change::Remove(row) => (row, false),
        };
        let room = match row.room.as_str() {
            "" => None,
            room => match RoomName::parse(room) {
                Ok(room) => Some(room),
                Err(_) => return,
            },
        };
        if put {
            self.rows.insert(row.identity(), row.clone());
        } else {
            self.rows.remove(&row.identity());
        }
        let reach = room.as_ref().map(RoomName::key);
        let name = Name::parse(&row.target).ok();
        match (row.kind.as_str(), name) {
            (BAN, Some(name)) => {
                let key = (reach, name.key());
                if !put {
                    self.name_bans.remove(&key);
                    return;
                }
                let (by, reason) = (row.by.clone(), row.reason.clone());
                let (set_ms, until_ms) = (row.set_ms, row.until_ms);
                let target = Target::Name(name);
                self.name_bans.insert(key, Ban { target, room, by, reason, set_ms, until_ms });
            }
            (ADDRESS_BAN, _) => {
                let Ok(Target::Address(net)) = Target::parse(&row.target) else { return };
                self.address_bans.remove(&net);
                if put {
                    let (by, reason) = (row.by.clone(), row.reason.clone());
                    let (set_ms, until_ms) = (row.set_ms, row.until_ms);
                    let target = Target::Address(net);
                    self.address_bans
                        .insert(net, Ban { target, room, by, reason, set_ms, until_ms });
                }
            }
            (MUTE, Some(who)) => {
                let key = (reach, who.key());
                if !put {
                    self.mutes.remove(&key);
                    return;
                }
                let (by, set_ms, until_ms) = (row.by.clone(), row.set_ms, row.until_ms);
                self.mutes.insert(key, Mute { who, room, by, set_ms, until_ms });
            }
            (OWNER, owner) => {
                if let Some(room) = reach {
                    self.rooms.entry(room).or_default().owner = owner.filter(|_| put);
                }
            }
            (OPERATOR, Some(who)) => {
                if let Some(room) = reach {
                    let operators = &mut self.rooms.entry(room).or_default().operators;
                    operators.retain(|o| o.key() != who.key());
                    if put {
                        operators.push(who);
                    }
                }
            }
            (TOPIC, _) => {
                if let Some(room) = reach {
                    let topic =
                        Topic { text: row.reason.clone(), by: row.by.clone(), set_ms: row.set_ms };
                    self.rooms.entry(room).or_default().topic = Some(topic).filter(|_| put);
                }
            }
            _ => {}
        }
    }

    /// The identities ([`Row::identity`]) of the bans in force.
    fn ban_identities(&self) -> HashSet<String> {
        self.name_bans
            .values()
            .chain(self.address_bans.iter())
            .map(|ban| ban_row(ban).identity())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::parse(text).expect("a valid name")
    }

    fn room(text: &str) -> RoomName {
        RoomName::parse(text).expect("a valid room")
    }

    fn rows_of(changes: Vec<Change>) -> Vec<Row> {
        changes
            .into_iter()
            .filter_map(|c| match c {
                Change::Put(row) => Some(row),
                Change::Remove(_) => None,
            })
            .collect()
    }

    #[test]
    fn an_end_reads_as_a_utc_date_and_time() {
        assert_eq!(until_text(None), "until lifted");
        assert_eq!(until_text(Some(0)), "until 1970-01-01 00:00 UTC");
        // 2026-11-30 09:12:59.999 UTC
        assert_eq!(until_text(Some(1_796_029_979_999)), "until 2026-11-30 09:12 UTC");
        assert_eq!(until_text(Some(951_782_400_000)), "until 2000-02-29 00:00 UTC");
    }

    #[test]
    fn targets_are_addresses_ranges_or_names() {
        let net = |t: &str| match Target::parse(t) {
            Ok(Target::Address(net)) => net.to_string(),
            other => panic!("{t}: {other:?}"),
        };
        assert_eq!(net("192.0.2.7"), "192.0.2.7/32");
        assert_eq!(net("10.1.2.3/8"), "10.0.0.0/8");
        assert_eq!(net("2001:db8::1"), "2001:db8::1/128");
        assert_eq!(net("2001:db8::/32"), "2001:db8::/32");
        assert_eq!(Target::parse("alice"), Ok(Target::Name(name("alice"))));
        assert!(Target::parse("not a name").is_err());
    }

    #[test]
    fn ranks_follow_registration_ownership_and_operators() {
        let m = Moderation::new(&["Olive".to_owned()], Vec::new(), 0);
        let rust = room("#rust");
        let key = rust.key();
        assert_eq!(m.rank(&name("olive"), true, Some(&key)), Rank::ServerOperator);
        assert_eq!(m.rank(&name("olive"), false, Some(&key)), Rank::Guest, "not logged in");
        assert!(m.claim_room(&rust, &name("owen"), 0).is_some());
        assert!(m.claim_room(&rust, &name("other"), 0).is_none(), "owned once");
        assert!(m.op(&rust, &name("olga"), "owen", 0).is_some());
        assert_eq!(m.rank(&name("OWEN"), true, Some(&key)), Rank::RoomOwner);
        assert_eq!(m.rank(&name("olga"), true, Some(&key)), Rank::RoomOperator);
        assert_eq!(m.rank(&name("olga"), true, Some(&RoomKey::of("#go"))), Rank::Registered);
        assert!(m.deop(&rust, &name("olga"), "owen", 0).is_some());
        assert_eq!(m.rank(&name("olga"), true, Some(&key)), Rank::Registered);
        assert!(Rank::Guest < Rank::Registered && Rank::RoomOwner < Rank::ServerOperator);
    }

    #[test]
    fn name_bans_cover_look_alikes_and_end_on_time() {
        let m = Moderation::default();
        let ban = |until_ms| Ban {
            target: Target::Name(name("mallory")),
            room: None,
            by: "root".to_owned(),
            reason: "spam".to_owned(),
            set_ms: 0,
            until_ms,
        };
        m.ban(ban(Some(1000)));
        // A Cyrillic а for the Latin a.
        assert!(m.name_ban(&NameKey::of("MАLLORY"), None, 999).is_some());
        assert!(m.name_ban(&NameKey::of("mallory"), Some(&RoomKey::of("#x")), 0).is_none());
        assert!(m.name_ban(&NameKey::of("mallory"), None, 1000).is_none(), "expired");
        assert!(m.bans(None, 1000).is_empty());
    }

    #[test]
    fn address_bans_cover_ranges_in_both_families_and_mapped_v4() {
        let m = Moderation::default();
        for range in ["10.0.0.0/8", "2001:db8::/32"] {
            let target = Target::parse(range).expect("a range");
            m.ban(Ban {
                target,
                room: None,
                by: "root".to_owned(),
                reason: String::new(),
                set_ms: 0,
                until_ms: None,
            });
        }
        let ip = |t: &str| t.parse::<IpAddr>().expect("an address");
        assert!(m.address_ban(ip("10.9.8.7"), 0).is_some());
        assert!(m.address_ban(ip("::ffff:10.9.8.7"), 0).is_some());
        assert!(m.address_ban(ip("2001:db8:1::5"), 0).is_some());
        assert!(m.address_ban(ip("11.0.0.1"), 0).is_none());
        assert!(m.unban(&Target::parse("10.0.0.0/8").expect("range"), None, "root", 0).is_some());
        assert!(m.address_ban(ip("10.9.8.7"), 0).is_none());
    }

    #[test]
    fn mutes_hold_in_their_room_or_everywhere() {
        let m = Moderation::default();
        let (rust, go) = (room("#rust"), room("#go"));
        let bob = name("bob");
        let mute = |room: Option<RoomName>| Mute {
            who: name("bob"),
            room,
            by: "owen".to_owned(),
            set_ms: 0,
            until_ms: Some(50),
        };
        m.set_mute(mute(Some(rust.clone())));
        assert!(m.mute(&bob, &rust.key(), 10).is_some());
        assert!(m.mute(&bob, &go.key(), 10).is_none());
        assert!(m.mute(&bob, &rust.key(), 50).is_none(), "expired");
        m.set_mute(mute(None));
        assert!(m.mute(&bob, &go.key(), 10).is_some(), "everywhere");
        assert!(m.unmute(&name("bob"), None, "owen", 0).is_some());
        assert!(m.unmute(&name("BOB"), None, "owen", 0).is_none());
    }

    #[test]
    fn what_the_store_kept_comes_back_and_expired_rows_do_not() {
        let m = Moderation::default();
        let rust = room("#rust");
        let mut changes = vec![
            m.claim_room(&rust, &name("owen"), 0).expect("claimed"),
            m.op(&rust, &name("olga"), "owen", 0).expect("opped"),
            m.set_topic(
                &rust,
                Topic { text: "crabs".to_owned(), by: "owen".to_owned(), set_ms: 1 },
            ),
        ];
        for (who, until_ms) in [("mallory", None), ("eve", Some(10))] {
            changes.push(m.ban(Ban {
                target: Target::Name(name(who)),
                room: Some(rust.clone()),
                by: "owen".to_owned(),
                reason: "spam".to_owned(),
                set_ms: 2,
                until_ms,
            }));
        }
        changes.push(m.ban(Ban {
            target: Target::parse("192.0.2.0/24").expect("range"),
            room: None,
            by: "root".to_owned(),
            reason: String::new(),
            set_ms: 3,
            until_ms: None,
        }));
        let again = Moderation::new(&[], rows_of(changes), 20);
        assert_eq!(again.owner(&rust.key()), Some(name("owen")));
        assert_eq!(again.operators(&rust.key()), [name("olga")]);
        assert_eq!(again.topic(&rust.key()).map(|t| t.text), Some("crabs".to_owned()));
        assert!(again.name_ban(&NameKey::of("mallory"), Some(&rust.key()), 20).is_some());
        assert!(again.name_ban(&NameKey::of("eve"), Some(&rust.key()), 20).is_none());
        assert!(again.address_ban("192.0.2.99".parse().expect("ip"), 20).is_some());
    }

    /// Every change this daemon can make, on a fresh record.
    fn one_of_each(m: &Moderation) -> Vec<Change> {
        let rust = room("#rust");
        let mut changes = vec![
            m.claim_room(&rust, &name("owen"), 1).expect("claimed"),
            m.op(&rust, &name("olga"), "owen", 2).expect("opped"),
            m.set_topic(&rust, Topic { text: "crabs".into(), by: "owen".into(), set_ms: 3 }),
            m.ban(Ban {
                target: Target::Name(name("mallory")),
                room: Some(rust.clone()),
                by: "owen".into(),
                reason: "spam, and worse".into(),
                set_ms: 4,
                until_ms: Some(i64::MAX),
            }),
            m.ban(Ban {
                target: Target::parse("2001:db8::/32").expect("range"),
                room: None,
                by: "server".into(),
                reason: String::new(),
                set_ms: 5,
                until_ms: None,
            }),
            m.set_mute(Mute {
                who: name("eve"),
                room: None,
                by: "server".into(),
                set_ms: 6,
                until_ms: Some(1000),
            }),
        ];
        changes.push(m.unmute(&name("eve"), None, "server", 7).expect("unmuted"));
        changes.push(m.deop(&rust, &name("olga"), "owen", 8).expect("deopped"));
        changes
            .push(m.set_topic(&rust, Topic { text: String::new(), by: "owen".into(), set_ms: 9 }));
        changes.push(
            m.unban(&Target::parse("2001:db8::1/32").expect("range"), None, "server", 10)
                .expect("lifted"),
        );
        changes
    }

    #[test]
    fn every_row_reads_back_as_spelt_with_its_keys_worked_out_again() {
        for change in one_of_each(&Moderation::default()) {
            let row = change.row();
            assert_eq!(Row::decode(&row.encode()).as_ref(), Ok(row), "{}", row.encode());
        }
    }

    #[test]
    fn forged_rows_are_refused_or_sanitised() {
        for forged in [
            "ban\t#rust\tserver\towen\t0\t\tspam",
            "ban\trust\tmallory\towen\t0\t\tspam",
            "address-ban\t\tnot-an-address\troot\t0\t\t",
            "topic\t\t\towen\t0\t\tno room",
            "owner\t#rust\t\towen\t0\t\t",
            "mute\t\teve\troot\tsoon\t\t",
            "mute\t\teve\troot\t0\tnever\t",
            "nuke\t\teve\troot\t0\t\t",
            "ban\t#rust",
        ] {
            assert!(Row::decode(forged).is_err(), "{forged:?}");
        }
        let row = Row::decode("ban\t#Rust\tMallory\towen\x1b[2J\t0\t\tspam\x1b[31m\tmore")
            .expect("a row");
        assert_eq!(row.room_key, RoomKey::of("#rust").as_str());
        assert_eq!(row.target_key, NameKey::of("mallory").as_str());
        assert_eq!((row.by.as_str(), row.reason.as_str()), ("owen[2J", "spam[31m more"));
    }

    #[test]
    fn changes_applied_elsewhere_hold_as_they_do_where_they_were_made() {
        let (here, there) = (Moderation::default(), Moderation::default());
        let rust = room("#rust");
        for change in one_of_each(&here) {
            there.apply(&change);
        }
        assert_eq!(there.owner(&rust.key()), here.owner(&rust.key()));
        assert_eq!(there.operators(&rust.key()), here.operators(&rust.key()));
        assert_eq!(there.topic(&rust.key()), here.topic(&rust.key()));
        assert_eq!(there.bans(None, 0), here.bans(None, 0));
        assert_eq!(there.bans(Some(&rust), 0), here.bans(Some(&rust), 0));
        let eve = NameKey::of("eve");
        assert_eq!(there.server_mute(&eve, 0), here.server_mute(&eve, 0));
        assert_eq!(there.owner(&rust.key()), Some(name("owen")));
        let rows = |m: &Moderation| {
            let mut rows = m.rows(0);
            rows.sort_by_key(Row::identity);
            rows
        };
        assert_eq!(rows(&there), rows(&here));
        assert_eq!(Moderation::new(&[], rows(&here), 0).rows(0).len(), 2, "the owner and the ban");
        assert!(there.name_ban(&NameKey::of("mallory"), Some(&rust.key()), 0).is_some());
        assert!(there.address_ban("2001:db8::9".parse().expect("ip"), 0).is_none(), "lifted");
        assert_eq!(there.topic(&rust.key()), None, "cleared");
    }

    #[test]
    fn a_replaced_record_holds_only_the_rows_and_names_the_bans_that_are_new() {
        let m = Moderation::default();
        let rust = room("#rust");
        let old = m.ban(Ban {
            target: Target::Name(name("mallory")),
            room: Some(rust.clone()),
            by: "owen".into(),
            reason: String::new(),
            set_ms: 0,
            until_ms: None,
        });
        m.set_topic(&rust, Topic { text: "gone after".into(), by: "owen".into(), set_ms: 0 });
        let fresh = Moderation::default();
        let new = fresh.ban(Ban {
            target: Target::parse("192.0.2.1").expect("address"),
            room: None,
            by: "server".into(),
            reason: String::new(),
            set_ms: 0,
            until_ms: None,
        });
        let expired = fresh.set_mute(Mute {
            who: name("eve"),
            room: None,
            by: "server".into(),
            set_ms: 0,
            until_ms: Some(5),
        });
        let rows = [old, new.clone(), expired].map(|c| c.row().clone()).to_vec();
        assert_eq!(m.replace(rows, 10), vec![new.row().clone()]);
        assert_eq!(m.topic(&rust.key()), None);
        assert!(m.server_mute(&NameKey::of("eve"), 0).is_none(), "expired rows are dropped");
        assert!(m.name_ban(&NameKey::of("mallory"), Some(&rust.key()), 10).is_some());
    }
}
