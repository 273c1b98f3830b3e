//! The one door to the shared state: every change a user or the operator
//! makes goes through [`Hub`].
//!
//! Joining, renaming, saying, acting, whispering, leaving, announcing and
//! kicking each apply the change to the local [`Room`] and, when a
//! backplane is configured, hand it on to the other daemons (claiming and
//! releasing names there too). Connection and console code call the hub
//! and never the room's writers or the backplane directly, so no call site
//! has to remember to tell another daemon. Reads (who is here, counts) go to
//! the room through [`Hub::room`].

use std::net::SocketAddr;
use std::sync::Arc;

use chat_proto::{Line, Name, Theme};
use tracing::info;

use crate::backplane::Backplane;
use crate::backplane::wire::Wire;
use crate::room::{ConnId, Direct, Member, Membership, Message, Room, RoomError, theme_index};
use crate::stats::Stats;

/// Attempts at a free `guest-NNNN` name before giving up.
const GUEST_ATTEMPTS: usize = 50;

/// Who a local user is, as the hub needs to know to speak for them.
#[derive(Debug, Clone)]
pub struct Speaker {
    pub id: ConnId,
    pub name: Name,
    pub theme: Theme,
}

pub struct Hub {
    room: Arc<Room>,
    backplane: Option<Backplane>,
}

impl Hub {
    pub fn new(room: Arc<Room>, backplane: Option<Backplane>) -> Self {
        Hub { room, backplane }
    }

    /// The room, for reading who is here and how many.
    pub fn room(&self) -> &Arc<Room> {
        &self.room
    }

    pub fn backplane(&self) -> Option<&Backplane> {
        self.backplane.as_ref()
    }

    pub fn stats(&self) -> &Stats {
        &self.room.stats
    }

    /// Joins as `name`: free here, claimed across daemons, then admitted and
    /// announced everywhere.
    pub async fn join(
        &self,
        id: ConnId,
        name: Name,
        peer: SocketAddr,
    ) -> Result<(Name, Membership), RoomError> {
        if !self.room.is_name_free(&name) {
            return Err(RoomError::NameTaken);
        }
        if let Some(bp) = &self.backplane
            && !bp.claim(&name).await
        {
            return Err(RoomError::NameTaken);
        }
        match self.room.join(id, name.clone(), peer) {
            Ok(membership) => {
                if let Some(bp) = &self.backplane {
                    let theme = theme_index(&membership.theme);
                    bp.forward(Wire::Join { node: bp.node(), name: name.clone(), theme });
                }
                Ok((name, membership))
            }
            Err(error) => {
                if let Some(bp) = &self.backplane {
                    bp.release(name);
                }
                Err(error)
            }
        }
    }

    /// Joins under a free generated name (`guest-1234`).
    pub async fn join_as_guest(
        &self,
        id: ConnId,
        peer: SocketAddr,
    ) -> Result<(Name, Membership), String> {
        for _ in 0..GUEST_ATTEMPTS {
            let number: u32 = rand::random_range(1000..10_000);
            let Ok(name) = Name::parse(&format!("guest-{number}")) else {
                continue;
            };
            match self.join(id, name, peer).await {
                Ok(joined) => return Ok(joined),
                Err(RoomError::NameTaken) => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
        Err("no guest name is free; please type a name".to_owned())
    }

    /// Renames `speaker` to `new` here and on every daemon; on success the
    /// speaker carries the new name.
    pub async fn rename(&self, speaker: &mut Speaker, new: Name) -> Result<(), RoomError> {
        let same_person = new.key() == speaker.name.key();
        if !same_person && !self.room.is_name_free(&new) {
            return Err(RoomError::NameTaken);
        }
        let backplane = self.backplane.as_ref().filter(|_| !same_person);
        if let Some(bp) = backplane
            && !bp.claim(&new).await
        {
            return Err(RoomError::NameTaken);
        }
        let old = match self.room.rename(speaker.id, new.clone()) {
            Ok(old) => old,
            Err(error) => {
                if let Some(bp) = backplane {
                    bp.release(new);
                }
                return Err(error);
            }
        };
        if let Some(bp) = &self.backplane {
            let theme = theme_index(&speaker.theme);
            bp.forward(Wire::Rename { node: bp.node(), old: old.clone(), new: new.clone(), theme });
            if !same_person {
                bp.release(old);
            }
        }
        speaker.name = new;
        Ok(())
    }

    /// A chat line (or a `/me` action) to everyone else, on every daemon.
    /// Returns how many others are in the room.
    pub fn say(&self, speaker: &Speaker, text: &str, action: bool) -> usize {
        let message = Message {
            name: speaker.name.clone(),
            theme: theme_index(&speaker.theme),
            text: text.to_owned(),
            action,
        };
        let others = self.room.say(Some(speaker.id), &message);
        if let Some(bp) = &self.backplane {
            let Message { name, theme, text, action } = message;
            bp.forward_remembered(Wire::Message { node: bp.node(), name, theme, text, action });
        }
        Stats::add(&self.room.stats.messages, 1);
        others
    }

    /// A private line to one user, here or on another daemon; returns the
    /// recipient's name as spelt.
    pub fn whisper(&self, speaker: &Speaker, to: &str, text: &str) -> Result<Name, RoomError> {
        let line = Line::private(&speaker.theme, &speaker.name, text);
        match self.room.send_direct(to, Direct::Line(line)) {
            Ok(member) => Ok(member.name),
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
        let (_, name) = self.room.remote_user(to).ok_or(RoomError::NoSuchUser)?;
        bp.forward(Wire::Private {
            node: bp.node(),
            to: name.clone(),
            from: speaker.name.clone(),
            theme: theme_index(&speaker.theme),
            text: text.to_owned(),
        });
        Ok(name)
    }

    /// `speaker` left (`how`: "left (bye)", "lost connection", ...): the room
    /// is told here and everywhere, and the name is free again.
    pub fn leave(&self, speaker: &Speaker, how: String) {
        self.room.leave(speaker.id, &how);
        if let Some(bp) = &self.backplane {
            let (name, theme) = (speaker.name.clone(), theme_index(&speaker.theme));
            bp.forward(Wire::Leave { node: bp.node(), name: name.clone(), theme, how });
            bp.release(name);
        }
    }

    /// The operator's `/say`, to everyone on every daemon; returns how many
    /// users it reached here.
    pub fn announce(&self, text: &str) -> usize {
        let receivers = self.room.announce(text);
        if let Some(bp) = &self.backplane {
            bp.forward_remembered(Wire::Announcement { node: bp.node(), text: text.to_owned() });
        }
        info!(text, receivers, "operator announcement");
        receivers
    }

    /// The operator removes a local user.
    pub fn kick(&self, name: &str, reason: &str) -> Result<Member, RoomError> {
        let member = self.room.send_direct(name, Direct::Kick { reason: reason.to_owned() })?;
        info!(name = %member.name, peer = %member.peer, reason, "kicked by the operator");
        Ok(member)
    }

    /// True while local readers, or the daemons behind the backplane, are
    /// so far behind that senders should wait.
    pub fn is_backlogged(&self) -> bool {
        self.room.is_backlogged() || self.backplane.as_ref().is_some_and(Backplane::is_backlogged)
    }
}
