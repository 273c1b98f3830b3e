//! Room names: what a valid room name is, and when two are the same room.
//!
//! A [`RoomName`] is `#` and 1 to [`MAX_ROOM_CHARS`] letters, digits, `-`
//! or `_`, valid by construction; `rust` as typed means `#rust`. Two room
//! names are the same room when their [`RoomKey`]s are equal: case and
//! look-alike letters are folded as for user names ([`crate::NameKey`]).
//! Keys are ordered, so a set of rooms has one first room everywhere.

use std::fmt;

use crate::name::NameKey;
use crate::sanitize::sanitize_text;

/// Longest room name, in characters after the `#`.
pub const MAX_ROOM_CHARS: usize = 32;

/// The room everyone starts in.
pub const LOBBY: &str = "#lobby";

/// Why a room name was refused; the message is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomNameError {
    Empty,
    TooLong,
    BadCharacter(char),
}

impl fmt::Display for RoomNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "a room name needs at least one letter or digit after #"),
            Self::TooLong => {
                write!(f, "a room name has at most {MAX_ROOM_CHARS} characters after #")
            }
            Self::BadCharacter(c) => {
                write!(f, "a room name may hold letters, digits, - and _ only, not {c:?}")
            }
        }
    }
}

impl std::error::Error for RoomNameError {}

/// A valid room name, `#` included, as its creator spelt it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomName(String);

/// The identity of a room: its name's body, case and look-alikes folded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomKey(NameKey);

impl RoomName {
    /// Validates a room name as typed (`#rust` or `rust`).
    pub fn parse(raw: &str) -> Result<Self, RoomNameError> {
        let clean = sanitize_text(raw);
        let body = clean.trim();
        let body = body.strip_prefix('#').unwrap_or(body);
        if body.is_empty() {
            return Err(RoomNameError::Empty);
        }
        if body.chars().count() > MAX_ROOM_CHARS {
            return Err(RoomNameError::TooLong);
        }
        if let Some(c) = body.chars().find(|&c| !(c.is_alphanumeric() || c == '-' || c == '_')) {
            return Err(RoomNameError::BadCharacter(c));
        }
        Ok(RoomName(format!("#{body}")))
    }

    /// `#lobby`, where everyone starts.
    pub fn lobby() -> Self {
        RoomName(LOBBY.to_owned())
    }

    /// The key under which this room is unique.
    pub fn key(&self) -> RoomKey {
        RoomKey(NameKey::of(&self.0[1..]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl RoomKey {
    /// The key of `#lobby`.
    pub fn lobby() -> Self {
        RoomName::lobby().key()
    }

    /// The key of whatever a user typed (`#RUST`, `rust`), valid or not.
    pub fn of(text: &str) -> Self {
        let text = text.trim();
        RoomKey(NameKey::of(text.strip_prefix('#').unwrap_or(text)))
    }

    /// The key as text (for use as a key in shared stores).
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_optional_when_typed_and_always_shown() {
        assert_eq!(RoomName::parse("rust").expect("valid").as_str(), "#rust");
        assert_eq!(RoomName::parse(" #Rust_2-x ").expect("valid").as_str(), "#Rust_2-x");
        assert_eq!(RoomName::lobby().as_str(), LOBBY);
    }

    #[test]
    fn bad_room_names_are_refused_with_a_reason() {
        assert_eq!(RoomName::parse("#"), Err(RoomNameError::Empty));
        assert_eq!(RoomName::parse(""), Err(RoomNameError::Empty));
        assert_eq!(RoomName::parse("#a b"), Err(RoomNameError::BadCharacter(' ')));
        assert_eq!(RoomName::parse("#a.b"), Err(RoomNameError::BadCharacter('.')));
        assert_eq!(RoomName::parse(&"x".repeat(33)), Err(RoomNameError::TooLong));
        assert!(RoomName::parse(&"x".repeat(32)).is_ok());
        assert!(RoomName::parse("#café").is_ok());
    }

    #[test]
    fn rooms_are_the_same_ignoring_case_and_lookalikes() {
        let rust = RoomName::parse("#rust").expect("valid").key();
        assert_eq!(RoomName::parse("#RUST").expect("valid").key(), rust);
        assert_eq!(RoomName::parse("#ru\u{0455}t").expect("valid").key(), rust, "Cyrillic ѕ");
        assert_eq!(RoomKey::of("Rust"), rust);
        assert_ne!(RoomName::parse("#rusty").expect("valid").key(), rust);
    }
}
