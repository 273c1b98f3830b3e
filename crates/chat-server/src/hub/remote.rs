//! What other daemons did, applied through the hub like any local change.
//!
//! The backplane reads Redis and hands each event it hears from another
//! daemon (and each change in its own reach of them: Redis lost or back,
//! a daemon gone) to [`Hub::follow_remote`], which applies it to
//! [`People`](crate::people::People) and the rooms here. So every change
//! of shared state, local or remote, goes through the hub, and a rule the
//! hub enforces holds for both (a moderation change made elsewhere takes
//! hold and has its effects here through the same code as one made here,
//! see `moderate.rs`). Remote lines are paced by the local
//! readers (within a bound), so a burst from another daemon does not lap
//! them; Redis holds the rest meanwhile.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chat_proto::{Name, RoomKey, RoomName, THEMES};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use super::Hub;
use crate::backplane::Heard;
use crate::backplane::wire::{NodeId, RosterEntry, Wire};
use crate::event::{Message, Moderated, Presence, Said, Scope};
use crate::people::{Departed, Direct};
use crate::reply::Reply;
use crate::room::Room;
use crate::store::now_ms;

/// How long the hub waits at most for local readers per remote line.
const REMOTE_PACING: Duration = Duration::from_millis(100);

/// How a user of another daemon came to be in a room, and so what the
/// room's members here are told.
#[derive(Debug, Clone, Copy)]
enum Entered {
    /// They arrived on their server, into `#lobby`.
    Arrived,
    /// They typed `/join`.
    Joined,
    /// Their daemon's roster lists them there: nothing to tell.
    Listed,
}

impl Hub {
    /// Applies what the backplane hears, in order, until it stops.
    pub async fn follow_remote(&self, mut heard: mpsc::Receiver<Heard>) {
        while let Some(heard) = heard.recv().await {
            match heard {
                Heard::Event(event) => self.apply_remote(event).await,
                Heard::Lost { error } => {
                    // Users first: whoever arrives once this is logged is told.
                    self.people.set_degraded(true);
                    warn!(%error, "backplane lost; serving local users only");
                    // Changes made elsewhere meanwhile are not heard: read them once back.
                    if self.store.is_shared() {
                        self.moderation_unread.store(true, Ordering::Relaxed);
                    }
                }
                Heard::Whole => {
                    self.people.set_degraded(false);
                    if self.moderation_unread() {
                        self.read_moderation().await;
                    }
                }
                Heard::NodeGone { node, how } => self.remote_node_gone(node, how),
            }
        }
    }

    async fn apply_remote(&self, event: Wire) {
        let node = event.node();
        match event {
            Wire::Message { room, name, theme, text, action, .. } => {
                if let Some(room) = self.rooms.get(&room.key()) {
                    room.say(None, Said::Message(Message { name, theme, text, action }), now_ms());
                    wait_for_local_readers(&room).await;
                }
            }
            Wire::Join { name, theme, room, arrival, .. } => {
                let how = if arrival { Entered::Arrived } else { Entered::Joined };
                self.remote_enter(node, name, theme, &room, how)
            }
            Wire::Part { name, room, .. } => self.remote_part(node, &name, &room),
            Wire::Leave { name, how, .. } => {
                if let Some(departed) = self.people.remote_leave(node, &name) {
                    self.remote_departed(node, &name, departed, &how);
                }
            }
            Wire::Rename { old, new, .. } => {
                if let Some(departed) = self.people.remote_rename(node, &old, new.clone()) {
                    let notice = Presence::Renamed { old, new, theme: departed.theme };
                    let scope = Scope::across(&departed.rooms);
                    for key in &departed.rooms {
                        if let Some(room) = self.rooms.get(key) {
                            room.remote_rename(node, &notice, scope.clone());
                        }
                    }
                }
            }
            Wire::Announcement { rooms, text, .. } => {
                let mut keys: Vec<RoomKey> = rooms.iter().map(RoomName::key).collect();
                keys.sort();
                let scope = Scope::across(&keys);
                for key in &keys {
                    if let Some(room) = self.rooms.get(key) {
                        room.announce(&text, scope.clone(), now_ms());
                    }
                }
            }
            Wire::Private { to, from, theme, text, .. } => {
                let private = Reply::Private { from, theme: THEMES[theme], text };
                let _ = self.people.send_direct(to.as_str(), Direct::Reply(private));
            }
            Wire::Replace { name, .. } => {
                if self.people.send_direct(name.as_str(), Direct::Replaced).is_ok() {
                    info!(%name, "replaced by a login on another daemon");
                }
            }
            Wire::Roster { first, members, .. } => {
                if first {
                    self.people.remote_node_gone(node);
                    for room in self.rooms.all() {
                        room.forget_remote_node(node);
                    }
                }
                for RosterEntry { name, theme, rooms } in members {
                    if rooms.is_empty() {
                        // Online there in no room (an IRC user may be).
                        self.people.remote_enter(node, name.clone(), theme, None);
                    }
                    for room in &rooms {
                        self.remote_enter(node, name.clone(), theme, room, Entered::Listed);
                    }
                }
            }
            Wire::Moderation { change, .. } => self.follow_moderation(change),
            Wire::Kick { who, room, by, reason, .. } => {
                self.follow_kick(Moderated::Kicked { who, room, by, reason })
            }
            // The backplane's own business; never handed on.
            Wire::Heartbeat { .. } | Wire::Hello { .. } | Wire::Goodbye { .. } => {}
        }
    }

    /// A user of another daemon entered a room (or is listed in its roster there).
    fn remote_enter(&self, node: NodeId, name: Name, theme: usize, room: &RoomName, how: Entered) {
        let Some(theme) = self.people.remote_enter(node, name.clone(), theme, Some(room)) else {
            return;
        };
        let Some(open) = self.rooms.get(&room.key()) else { return };
        let who = name.clone();
        let notice = match how {
            Entered::Arrived => Some(Presence::Arrived { who, theme }),
            Entered::Joined => Some(Presence::Joined { who, theme, room: room.clone() }),
            Entered::Listed => None,
        };
        open.remote_join(node, name, theme, notice.as_ref());
    }

    /// A user of another daemon left one room.
    fn remote_part(&self, node: NodeId, name: &Name, room: &RoomName) {
        let Some(theme) = self.people.remote_part(node, name, &room.key()) else { return };
        if let Some(open) = self.rooms.get(&room.key()) {
            let notice = Presence::Parted { who: name.clone(), theme, room: room.clone() };
            open.remote_leave(node, name, &notice, Scope::Room);
        }
    }

    /// A user of another daemon is gone, as `how` says: each of their rooms
    /// here is told, once per reader.
    fn remote_departed(&self, node: NodeId, name: &Name, departed: Departed, how: &str) {
        let notice =
            Presence::Departed { who: name.clone(), theme: departed.theme, how: how.to_owned() };
        let scope = Scope::across(&departed.rooms);
        for key in &departed.rooms {
            if let Some(room) = self.rooms.get(key) {
                room.remote_leave(node, name, &notice, scope.clone());
            }
        }
    }

    /// Another daemon is gone (shut down or silent): its users leave.
    fn remote_node_gone(&self, node: NodeId, how: &str) {
        for (name, departed) in self.people.remote_node_gone(node) {
            self.remote_departed(node, &name, departed, how);
        }
    }
}

/// Remote lines are paced by the local readers too, within a bound.
async fn wait_for_local_readers(room: &Room) {
    if !room.is_backlogged() {
        return;
    }
    let deadline = Instant::now() + REMOTE_PACING;
    while Instant::now() < deadline
        && room.wait_for_readers(deadline, || room.is_backlogged()).await
    {}
}
