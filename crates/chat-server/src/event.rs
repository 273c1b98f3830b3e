//! What happened, as data: the changes of presence a room tells its
//! members (someone arrived, joined, parted, left the server, was renamed),
//! whoever caused them and on whichever daemon.
//!
//! The hub builds a [`Presence`] for a local change and the backplane
//! builds the same one for a change it hears of from another daemon, so
//! the words a reader sees are written once, in [`Presence::text`], and a
//! join reads the same wherever the joiner is connected.

use chat_proto::{Name, RoomName, Theme};

/// A change of who is where, as a room's members are told of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// Came onto the server (and so into `#lobby`).
    Arrived { who: Name, theme: Theme },
    /// Joined a room with `/join`.
    Joined { who: Name, theme: Theme, room: RoomName },
    /// Left one room with `/part`.
    Parted { who: Name, theme: Theme, room: RoomName },
    /// Left the server, `how` ("left (bye)", "lost connection", ...).
    Departed { who: Name, theme: Theme, how: String },
    /// Changed name.
    Renamed { old: Name, new: Name, theme: Theme },
}

impl Presence {
    /// The words of the notice: `🦊 alice joined #rust`.
    pub fn text(&self) -> String {
        match self {
            Presence::Arrived { who, theme } => format!("{} {who} joined", theme.emoji),
            Presence::Joined { who, theme, room } => format!("{} {who} joined {room}", theme.emoji),
            Presence::Parted { who, theme, room } => format!("{} {who} left {room}", theme.emoji),
            Presence::Departed { who, theme, how } => format!("{} {who} {how}", theme.emoji),
            Presence::Renamed { old, new, theme } => {
                format!("{} {old} is now known as {new}", theme.emoji)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chat_proto::THEMES;

    use super::*;

    fn name(text: &str) -> Name {
        Name::parse(text).expect("valid name")
    }

    #[test]
    fn an_arrival_is_told_without_a_room_and_a_join_with_one() {
        let (who, theme) = (name("alice"), THEMES[0]);
        let emoji = theme.emoji;
        let lobby = RoomName::lobby();
        assert_eq!(
            Presence::Arrived { who: who.clone(), theme }.text(),
            format!("{emoji} alice joined")
        );
        let joined = Presence::Joined { who: who.clone(), theme, room: lobby.clone() };
        assert_eq!(joined.text(), format!("{emoji} alice joined #lobby"));
        let parted = Presence::Parted { who, theme, room: lobby };
        assert_eq!(parted.text(), format!("{emoji} alice left #lobby"));
    }
}
