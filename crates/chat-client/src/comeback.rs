//! Coming back after a lost connection: what the session restores, and the
//! rules for what happens meanwhile.
//!
//! A [`Comeback`] lives from the loss until the server welcomes us again.
//! It holds the name, the rooms and the current room we had, whether the
//! kept password was tried on this connection already (if the server asks
//! again, it was wrong, and the user is asked), whether the user must
//! type a name (the server refused ours, taken meanwhile), and the lines
//! entered while offline, sent once back in. `terminal_ui` does the I/O:
//! the waits (from `Backoff`), connecting, and sending what this says.

use std::collections::VecDeque;

use chat_proto::{LOBBY, RoomKey};

use crate::identity::Identity;

/// Lines entered while not connected that are kept to send once back in.
pub const UNSENT_MAX: usize = 100;

/// What coming back restores, and what waits meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comeback {
    /// The name we had.
    pub name: String,
    /// The rooms we were in, and the one our plain lines went to.
    rooms: Vec<String>,
    pub current: String,
    /// The kept password was sent on this connection already.
    password_tried: bool,
    /// The server refused the name (taken meanwhile): the user types one.
    naming: bool,
    /// Lines entered while not connected.
    unsent: VecDeque<String>,
}

/// What became of a line entered while offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Kept; the first one, so the user is told lines wait.
    First,
    /// Kept, behind others.
    Queued,
    /// Dropped: [`UNSENT_MAX`] wait already.
    Dropped,
}

impl Comeback {
    /// Where we were when the connection was lost.
    pub fn from(identity: &Identity) -> Comeback {
        Comeback {
            name: identity.me().unwrap_or_default().to_owned(),
            rooms: identity.rooms().to_vec(),
            current: identity.room().to_owned(),
            password_tried: false,
            naming: false,
            unsent: VecDeque::new(),
        }
    }

    /// A new connection: the kept password may be tried once more, and
    /// our name is sent again.
    pub fn on_new_connection(&mut self) {
        self.password_tried = false;
        self.naming = false;
    }

    /// Whether typed lines wait for the session to be back in (not while
    /// the user is typing a new name).
    pub fn holds_lines(&self) -> bool {
        !self.naming
    }

    /// The server refused our name: what the user types now is a name.
    pub fn name_refused(&mut self) {
        self.naming = true;
    }

    /// Keeps a line entered while not connected, to send once back in.
    pub fn hold(&mut self, line: String) -> Held {
        if self.unsent.len() >= UNSENT_MAX {
            return Held::Dropped;
        }
        self.unsent.push_back(line);
        if self.unsent.len() == 1 { Held::First } else { Held::Queued }
    }

    /// Whether the kept password is to be sent for `name`: coming back as
    /// that name, and not tried on this connection yet (then it is, now).
    pub fn try_kept_password(&mut self, name: &str) -> bool {
        if self.password_tried || !self.name.eq_ignore_ascii_case(name) {
            return false;
        }
        self.password_tried = true;
        true
    }

    /// Back in: the commands that put us back where we were, the current
    /// room last (a registered name's rooms are restored by the server, and
    /// joining a room we are in again only makes it current), then the
    /// lines entered meanwhile.
    pub fn into_lines(self) -> (Vec<String>, VecDeque<String>) {
        let lobby = RoomKey::of(LOBBY);
        let current = RoomKey::of(&self.current);
        let mut commands: Vec<String> = self
            .rooms
            .iter()
            .filter(|room| ![&lobby, &current].contains(&&RoomKey::of(room)))
            .map(|room| format!("/join {room}"))
            .collect();
        if current != lobby {
            commands.push(format!("/join {}", self.current));
        }
        (commands, self.unsent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comeback(rooms: &[&str], current: &str) -> Comeback {
        Comeback {
            name: "alice".into(),
            rooms: rooms.iter().map(|room| (*room).to_owned()).collect(),
            current: current.into(),
            password_tried: false,
            naming: false,
            unsent: VecDeque::new(),
        }
    }

    #[test]
    fn coming_back_rejoins_every_room_and_the_current_one_last() {
        let back = comeback(&["#lobby", "#rust", "#Quiet"], "#quiet");
        assert_eq!(back.into_lines().0, ["/join #rust", "/join #quiet"]);
        assert!(comeback(&["#lobby"], "#lobby").into_lines().0.is_empty());
    }

    #[test]
    fn lines_entered_offline_are_kept_in_order_up_to_the_limit() {
        let mut back = comeback(&["#lobby"], "#lobby");
        assert_eq!(back.hold("one".into()), Held::First);
        assert_eq!(back.hold("two".into()), Held::Queued);
        for i in 2..UNSENT_MAX {
            back.hold(format!("line {i}"));
        }
        assert_eq!(back.hold("too many".into()), Held::Dropped);
        let (_, unsent) = back.into_lines();
        assert_eq!(unsent.len(), UNSENT_MAX);
        assert_eq!(unsent.front().map(String::as_str), Some("one"));
    }

    #[test]
    fn the_kept_password_is_tried_once_per_connection_and_only_for_our_name() {
        let mut back = comeback(&["#lobby"], "#lobby");
        assert!(!back.try_kept_password("bob"));
        assert!(back.try_kept_password("ALICE"));
        assert!(!back.try_kept_password("alice"), "wrong once: the user is asked");
        back.on_new_connection();
        assert!(back.try_kept_password("alice"));
    }
}
