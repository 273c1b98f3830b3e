//! Moderation through the one door: every `/topic`, `/kick`, `/ban`,
//! `/unban`, `/mute`, `/unmute`, `/bans`, `/op` and `/deop`, whoever
//! types it (a user from any door, the console, the control socket), is
//! checked and carried out by [`Hub::moderate`].
//!
//! The rules, in one place: a command acts on the actor's current room;
//! `#lobby` stands for the whole server (everyone arrives there, it has
//! no owner, and only server operators moderate it), so a ban, a mute or a
//! kick in `#lobby` is server-wide, and an address ban always is. A room
//! command needs a room operator, `/op` and `/deop` the room's owner, and
//! nobody acts on someone of equal or higher rank. Each change is applied
//! to [`Moderation`](crate::moderation::Moderation), kept in the store,
//! handed to the other daemons, logged, and counted; then its effects
//! follow ([`Hub::take_effect`]): whoever it bans is put out, and the room
//! (or the target) is told.
//!
//! A change made on another daemon arrives here too
//! ([`Hub::follow_moderation`]): it takes hold through the same
//! `Moderation::apply` and its effects follow through the same
//! `take_effect`. Each daemon puts out only its own people and tells only
//! its own members of a room, so every effect happens once, on the daemon
//! of whoever it concerns, whichever daemon the change was made on. A kick
//! changes nothing kept; it crosses daemons the same way
//! ([`Hub::follow_kick`]), so someone on another daemon can be kicked too.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chat_proto::command::{Command, Needs};
use chat_proto::{LOBBY, Name, RoomKey, RoomName};
use tracing::{info, warn};

use super::{Hub, Speaker};
use crate::backplane::wire::Wire;
use crate::event::{ConnId, Moderated};
use crate::moderation::{
    ADDRESS_BAN, BAN, Ban, Change, MUTE, Mute, OPERATOR, Rank, Row, TOPIC, Target, Topic, until,
};
use crate::people::Direct;
use crate::reply::Reply;
use crate::room::RoomError;
use crate::stats::Stats;
use crate::store::now_ms;

/// The longest topic kept, in characters (IRC's `TOPICLEN` says the same).
pub const TOPIC_MAX: usize = 300;

/// Who acts: a user, in their current room, or the server itself (the
/// console and the control socket, which act as a server operator in `#lobby`).
pub enum Actor<'a> {
    User { speaker: &'a Speaker, room: &'a RoomName },
    Server,
}

impl Actor<'_> {
    fn by(&self) -> String {
        match self {
            Actor::User { speaker, .. } => speaker.name.to_string(),
            Actor::Server => "server".to_owned(),
        }
    }

    fn id(&self) -> Option<ConnId> {
        match self {
            Actor::User { speaker, .. } => Some(speaker.id),
            Actor::Server => None,
        }
    }

    fn room(&self) -> RoomName {
        match self {
            Actor::User { room, .. } => (*room).clone(),
            Actor::Server => RoomName::lobby(),
        }
    }
}

/// A moderation command, as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<'a> {
    Topic(Option<&'a str>),
    Kick { who: &'a str, reason: &'a str },
    Ban { target: &'a str, duration: Option<Duration>, reason: &'a str },
    Unban(&'a str),
    Mute { who: &'a str, duration: Option<Duration> },
    Unmute(&'a str),
    Bans,
    Op(&'a str),
    Deop(&'a str),
}

impl<'a> Action<'a> {
    /// The moderation command a parsed line is, if it is one.
    pub fn of(command: &Command<'a>) -> Option<Action<'a>> {
        Some(match *command {
            Command::Topic(text) => Action::Topic(text),
            Command::Kick { who, reason } => Action::Kick { who, reason },
            Command::Ban { target, rest } => {
                let (duration, reason) = chat_proto::command::duration_and_reason(rest);
                Action::Ban { target, duration, reason }
            }
            Command::Unban(target) => Action::Unban(target),
            Command::Mute { who, duration } => Action::Mute { who, duration },
            Command::Unmute(who) => Action::Unmute(who),
            Command::Bans => Action::Bans,
            Command::Op(who) => Action::Op(who),
            Command::Deop(who) => Action::Deop(who),
            _ => return None,
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Action::Topic(_) => "topic",
            Action::Kick { .. } => "kick",
            Action::Ban { .. } => "ban",
            Action::Unban(_) => "unban",
            Action::Mute { .. } => "mute",
            Action::Unmute(_) => "unmute",
            Action::Bans => "bans",
            Action::Op(_) => "op",
            Action::Deop(_) => "deop",
        }
    }
}

/// What a rank may use, for `/help`.
pub fn needs_of(rank: Rank) -> Needs {
    match rank {
        Rank::Guest | Rank::Registered => Needs::Anyone,
        Rank::RoomOperator => Needs::RoomOperator,
        Rank::RoomOwner => Needs::RoomOwner,
        Rank::ServerOperator => Needs::ServerOperator,
    }
}

/// Where an action reaches: a room, or (in `#lobby`) the whole server.
fn reach_of(room: &RoomName) -> Option<RoomName> {
    (room.key() != RoomKey::of(LOBBY)).then(|| room.clone())
}

impl Hub {
    /// The rank of `speaker` in `room`.
    pub fn rank(&self, speaker: &Speaker, room: &RoomKey) -> Rank {
        self.moderation.rank(&speaker.name, speaker.registered, Some(room))
    }

    fn actor_rank(&self, actor: &Actor<'_>, room: &RoomKey) -> Rank {
        match actor {
            Actor::User { speaker, .. } => self.rank(speaker, room),
            Actor::Server => Rank::ServerOperator,
        }
    }

    /// The rank of whoever uses `name` (registered names are used only by their owner).
    async fn target_rank(&self, name: &Name, room: &RoomKey) -> Rank {
        let registered = self.is_registered(name).await;
        self.moderation.rank(name, registered, Some(room))
    }

    /// Carries out a moderation command for `actor`: the reply to show
    /// them, or the refusal's reason. Both are counted, and a refusal is
    /// logged with who tried what.
    pub async fn moderate(&self, actor: &Actor<'_>, action: Action<'_>) -> Result<Reply, String> {
        let tried = format!("{action:?}");
        let done = self.attempt(actor, action).await;
        if let Err(reason) = &done {
            Stats::add(&self.stats.moderation_refused, 1);
            info!(by = %actor.by(), action = %tried, %reason, "moderation refused");
        }
        done
    }

    async fn attempt(&self, actor: &Actor<'_>, action: Action<'_>) -> Result<Reply, String> {
        let room = actor.room();
        let reach = reach_of(&room);
        let rank = self.actor_rank(actor, &room.key());
        let needs = match action {
            Action::Topic(None) => Needs::Anyone,
            Action::Op(_) | Action::Deop(_) => Needs::RoomOwner,
            _ => Needs::RoomOperator,
        };
        let name = action.name();
        let needed = match (needs, &reach, &action) {
            (Needs::Anyone, _, _) => Rank::Guest,
            (_, None, _) => Rank::ServerOperator,
            (_, _, Action::Ban { target, .. } | Action::Unban(target))
                if matches!(Target::parse(target), Ok(Target::Address(_))) =>
            {
                Rank::ServerOperator
            }
            (Needs::RoomOwner, _, _) => Rank::RoomOwner,
            _ => Rank::RoomOperator,
        };
        if rank < needed {
            let place = if reach.is_some() { format!("in {room}") } else { "here".to_owned() };
            return Err(format!(
                "/{name} needs {} {place}; you are {}",
                needed.describe(),
                rank.describe()
            ));
        }
        let by = actor.by();
        let change = match action {
            Action::Topic(None) => return Ok(self.topic_of(&room)),
            Action::Topic(Some(text)) => {
                let text: String = if text == "-" {
                    String::new()
                } else {
                    text.chars().take(TOPIC_MAX).collect()
                };
                self.moderation.set_topic(&room, Topic { text, by, set_ms: now_ms() })
            }
            Action::Bans => {
                return Ok(Reply::Bans {
                    bans: self.moderation.bans(reach.as_ref(), now_ms()),
                    room: reach,
                });
            }
            Action::Kick { who, reason } => {
                let who = self.target(who, &room, rank).await?;
                let done = self.kick_out(&who, reach, by, reason)?;
                self.tell(actor.id(), &done);
                return Ok(self.done(name, actor, done));
            }
            Action::Ban { target, duration, reason } => {
                let target = Target::parse(target)?;
                if let Target::Name(who) = &target {
                    self.target(who.as_str(), &room, rank).await?;
                }
                let reach = if matches!(target, Target::Address(_)) { None } else { reach };
                let set_ms = now_ms();
                let until_ms = until(set_ms, duration);
                let reason = reason.to_owned();
                self.moderation.ban(Ban { target, room: reach, by, reason, set_ms, until_ms })
            }
            Action::Unban(target) => {
                let target = Target::parse(target)?;
                let reach = if matches!(target, Target::Address(_)) { None } else { reach };
                self.moderation.unban(&target, reach.as_ref(), &by, now_ms()).ok_or_else(|| {
                    format!("{target} is not banned {}", from_place(reach.as_ref()))
                })?
            }
            Action::Mute { who, duration } => {
                let who = self.target(who, &room, rank).await?;
                let set_ms = now_ms();
                let until_ms = until(set_ms, duration);
                self.moderation.set_mute(Mute { who, room: reach, by, set_ms, until_ms })
            }
            Action::Unmute(who) => {
                let who = Name::parse(who).map_err(|e| e.to_string())?;
                self.moderation
                    .unmute(&who, reach.as_ref(), &by, now_ms())
                    .ok_or_else(|| format!("{who} is not muted {}", in_place(reach.as_ref())))?
            }
            Action::Op(who) | Action::Deop(who) => {
                let Some(room) = reach else {
                    return Err("#lobby has no operators: server operators moderate it".to_owned());
                };
                let who = Name::parse(who).map_err(|e| e.to_string())?;
                if matches!(action, Action::Op(_)) {
                    if !self.is_registered(&who).await {
                        return Err(format!(
                            "{who} is not registered; only registered names can be operators"
                        ));
                    }
                    self.moderation
                        .op(&room, &who, &by, now_ms())
                        .ok_or_else(|| format!("{who} is an operator of {room} already"))?
                } else {
                    self.target(who.as_str(), &room, rank).await?;
                    self.moderation
                        .deop(&room, &who, &by, now_ms())
                        .ok_or_else(|| format!("{who} is not an operator of {room}"))?
                }
            }
        };
        let done = self.carry_out(actor.id(), change).await;
        let done = done.ok_or_else(|| format!("/{name} changed nothing to tell"))?;
        Ok(self.done(name, actor, done))
    }

    /// Logs and counts an action carried out, and answers its actor.
    fn done(&self, action: &str, actor: &Actor<'_>, done: Moderated) -> Reply {
        // Who did what to whom, in the words the room was told.
        let notice = crate::protocol::text::moderated(&done);
        info!(action, by = %actor.by(), %notice, "moderation");
        Stats::add(&self.stats.moderation, 1);
        Reply::Moderated(Box::new(done))
    }

    /// A change made here (it holds here already): kept, handed to the
    /// other daemons, and its effects follow; what happened, for the actor
    /// (`None` for a room's owner, which nobody is told).
    pub(super) async fn carry_out(
        &self,
        actor: Option<ConnId>,
        change: Change,
    ) -> Option<Moderated> {
        self.keep(&change).await;
        self.share(&change);
        self.take_effect(actor, &change)
    }

    /// A change made on another daemon (kept there already) takes hold here.
    pub(super) fn follow_moderation(&self, change: Change) {
        self.moderation.apply(&change);
        if let Some(done) = self.take_effect(None, &change) {
            info!(what = ?done, "moderation on another daemon");
        }
    }

    /// Reads what the store keeps: at start, and with a shared store again
    /// once Redis is back after an outage (what other daemons changed
    /// meanwhile holds here too, and a ban new here takes effect). Changes
    /// made here while Redis could not keep them are then kept, shared and
    /// hold over what was read. A Redis that holds no record at all (it
    /// restarted without its data) is given back what this daemon holds.
    /// When the store cannot answer, it is read again once Redis is back.
    pub async fn read_moderation(&self) {
        let rows = match self.store.moderation_rows().await {
            Ok(Some(rows)) => rows,
            Ok(None) => {
                // In one write: another daemon reading meanwhile finds all or none.
                let held = self.moderation.rows(now_ms());
                if !held.is_empty() {
                    warn!(rows = held.len(), "Redis holds no moderation; giving it back ours");
                }
                if let Err(error) = self.store.give_back_moderation(&held).await {
                    warn!(%error, "moderation not given back; it will be once Redis is back");
                    self.moderation_unread.store(true, Ordering::Relaxed);
                    return;
                }
                self.moderation_unread.store(false, Ordering::Relaxed);
                self.keep_unkept().await;
                return;
            }
            Err(error) => {
                warn!(%error, "moderation not read; it will be once Redis is back");
                self.moderation_unread.store(true, Ordering::Relaxed);
                return;
            }
        };
        self.moderation_unread.store(false, Ordering::Relaxed);
        let new_bans = self.moderation.replace(rows, now_ms());
        self.keep_unkept().await;
        for row in new_bans {
            self.take_effect(None, &Change::Put(row));
        }
    }

    /// Changes made here while Redis could not keep them: kept and shared
    /// now, and holding over whatever was read meanwhile.
    async fn keep_unkept(&self) {
        let unkept = std::mem::take(&mut *self.unkept.lock().unwrap_or_else(|p| p.into_inner()));
        for change in unkept {
            self.moderation.apply(&change);
            self.keep(&change).await;
            self.share(&change);
        }
    }

    /// True when moderation is to be read again once Redis is back.
    pub(super) fn moderation_unread(&self) -> bool {
        self.moderation_unread.load(Ordering::Relaxed)
    }

    /// Hands a change to the other daemons.
    fn share(&self, change: &Change) {
        if let Some(bp) = &self.backplane {
            bp.forward(Wire::Moderation { node: bp.node(), change: change.clone() });
        }
    }

    /// What follows a change on this daemon, wherever it was made: whoever
    /// it bans is put out (only this daemon's people: each daemon puts out
    /// its own), and the room's members here (or the target) are told, all
    /// but the actor. Returns what happened (`None` for a room's owner).
    fn take_effect(&self, actor: Option<ConnId>, change: &Change) -> Option<Moderated> {
        let done = moderated_of(change)?;
        if let Change::Put(row) = change {
            self.enforce_ban(row, &done);
        }
        self.tell(actor, &done);
        Some(done)
    }

    /// Puts out of the room (or off the server) whoever here a ban covers.
    fn enforce_ban(&self, row: &Row, done: &Moderated) {
        let room = RoomName::parse(&row.room).ok();
        match row.kind.as_str() {
            BAN => {
                // Not here, or not in that room: the ban waits for them.
                if let Ok(who) = Name::parse(&row.target) {
                    let _ = self.remove(&who, room.as_ref(), done);
                }
            }
            ADDRESS_BAN => {
                let Ok(Target::Address(net)) = Target::parse(&row.target) else { return };
                for person in self.people.local_people() {
                    if net.contains(&person.peer.ip()) {
                        let _ = self.remove(&person.name, None, done);
                    }
                }
            }
            _ => {}
        }
    }

    /// The name acted on, if the actor outranks whoever uses it.
    async fn target(&self, who: &str, room: &RoomName, rank: Rank) -> Result<Name, String> {
        let who = Name::parse(who).map_err(|e| e.to_string())?;
        let theirs = self.target_rank(&who, &room.key()).await;
        if theirs >= rank {
            return Err(format!(
                "{who} is {}: nobody acts on an equal or higher rank",
                theirs.describe()
            ));
        }
        Ok(who)
    }

    fn topic_of(&self, room: &RoomName) -> Reply {
        Reply::Topic { room: room.clone(), topic: self.moderation.topic(&room.key()).map(Box::new) }
    }

    /// `who` out of `reach`'s room, or (`None`) off the server.
    fn kick_out(
        &self,
        who: &Name,
        reach: Option<RoomName>,
        by: String,
        reason: &str,
    ) -> Result<Moderated, String> {
        let done = Moderated::Kicked {
            who: who.clone(),
            room: reach.clone(),
            by,
            reason: reason.to_owned(),
        };
        let elsewhere = self.people.remote_person(who.as_str()).is_some();
        match self.remove(who, reach.as_ref(), &done) {
            Err(RoomError::NoSuchUser) if elsewhere => {}
            result => result.map_err(|e| e.to_string())?,
        }
        if let Some(bp) = &self.backplane {
            let (node, who, room) = (bp.node(), who.clone(), reach);
            let Moderated::Kicked { by, reason, .. } = done.clone() else { return Ok(done) };
            bp.forward(Wire::Kick { node, who, room, by, reason });
        }
        Ok(done)
    }

    /// A kick made on another daemon: whoever it concerns is put out if
    /// they are here, and the room's members here are told.
    pub(super) fn follow_kick(&self, done: Moderated) {
        let Moderated::Kicked { who, room, .. } = &done else { return };
        let _ = self.remove(who, room.as_ref(), &done);
        self.tell(None, &done);
        info!(what = ?done, "moderation on another daemon");
    }

    /// Takes `who` out of `room` (or off the server), telling them `why`.
    fn remove(
        &self,
        who: &Name,
        room: Option<&RoomName>,
        why: &Moderated,
    ) -> Result<(), crate::room::RoomError> {
        let notice = Reply::Moderated(Box::new(why.clone()));
        let direct = match room {
            None => Direct::Kick { reason: farewell_reason(why) },
            Some(room) => Direct::Removed { room: room.key(), notice: Box::new(notice) },
        };
        self.people.send_direct(who.as_str(), direct).map(|_| ())
    }

    /// Keeps a change in the store. One that cannot be kept still holds
    /// here: until the daemon stops (its own file), or, in Redis, until
    /// Redis is back, when it is kept and shared (logged either way).
    async fn keep(&self, change: &Change) {
        let Err(error) = self.store.keep_moderation(change.clone()).await else { return };
        if self.store.is_shared() {
            warn!(%error, "a moderation change holds here only, until Redis is back");
            self.unkept.lock().unwrap_or_else(|p| p.into_inner()).push(change.clone());
        } else {
            warn!(%error, "a moderation change holds only until the daemon stops");
        }
    }

    /// Tells the room an action concerns (all but the actor, who is
    /// answered); a server-wide mute is told to its target.
    fn tell(&self, actor: Option<ConnId>, done: &Moderated) {
        let room = match done {
            Moderated::Topic { room, .. }
            | Moderated::Opped { room, .. }
            | Moderated::Deopped { room, .. } => Some(room),
            Moderated::Kicked { room, .. }
            | Moderated::Banned { room, .. }
            | Moderated::Unbanned { room, .. }
            | Moderated::Muted { room, .. }
            | Moderated::Unmuted { room, .. } => room.as_ref(),
        };
        match (room.and_then(|room| self.rooms.get(&room.key())), done) {
            (Some(room), _) => {
                room.moderated(actor, done.clone());
            }
            (None, Moderated::Muted { who, .. } | Moderated::Unmuted { who, .. }) => {
                let _ = self.people.send_direct(
                    who.as_str(),
                    Direct::Reply(Reply::Moderated(Box::new(done.clone()))),
                );
            }
            (None, _) => {}
        }
    }

    /// The mute that refuses `speaker`'s lines in `room`, if any.
    pub fn muted(&self, speaker: &Speaker, room: &RoomKey) -> Option<Mute> {
        self.moderation.mute(&speaker.name, room, now_ms())
    }
}

/// What a change is, as the room (or the target) is told it; `None` for a
/// room's owner, which nobody is told, or a row that does not read.
fn moderated_of(change: &Change) -> Option<Moderated> {
    let (row, put) = match change {
        Change::Put(row) => (row, true),
        Change::Remove(row) => (row, false),
    };
    let room = match row.room.as_str() {
        "" => None,
        room => Some(RoomName::parse(room).ok()?),
    };
    let by = row.by.clone();
    let who = || Name::parse(&row.target).ok();
    Some(match (row.kind.as_str(), put) {
        (BAN | ADDRESS_BAN, true) => Moderated::Banned {
            target: row.target.clone(),
            room,
            by,
            reason: row.reason.clone(),
            until_ms: row.until_ms,
        },
        (BAN | ADDRESS_BAN, false) => Moderated::Unbanned { target: row.target.clone(), room, by },
        (MUTE, true) => Moderated::Muted { who: who()?, room, by, until_ms: row.until_ms },
        (MUTE, false) => Moderated::Unmuted { who: who()?, room, by },
        (OPERATOR, true) => Moderated::Opped { who: who()?, room: room?, by },
        (OPERATOR, false) => Moderated::Deopped { who: who()?, room: room?, by },
        (TOPIC, _) => {
            let text = if put { row.reason.clone() } else { String::new() };
            Moderated::Topic { room: room?, by, text }
        }
        _ => return None,
    })
}

/// Why someone is put off the server, as their goodbye and their leave notice say it.
fn farewell_reason(why: &Moderated) -> String {
    let or_none = |reason: &str| {
        if reason.is_empty() { "no reason given".to_owned() } else { reason.to_owned() }
    };
    match why {
        Moderated::Banned { reason, until_ms, .. } => {
            format!("banned {}: {}", crate::moderation::until_text(*until_ms), or_none(reason))
        }
        Moderated::Kicked { reason, .. } => or_none(reason),
        _ => "removed by an operator".to_owned(),
    }
}

fn from_place(room: Option<&RoomName>) -> String {
    room.map_or_else(|| "from the server".to_owned(), |room| format!("from {room}"))
}

fn in_place(room: Option<&RoomName>) -> String {
    room.map_or_else(|| "everywhere".to_owned(), |room| format!("in {room}"))
}
