//! User names: what a valid name is, and when two names are the same person.
//!
//! A [`Name`] is valid by construction: sanitised, 1 to [`MAX_NAME_CHARS`]
//! characters of letters, digits and a little punctuation (no spaces, no
//! symbols that could pose as server decoration), and not a reserved word
//! that would let a user pass as the server. Two names clash when their
//! [`NameKey`]s are equal: the key folds case and maps look-alike letters
//! (a Cyrillic `а` and a Latin `a`) to one skeleton, following Unicode TR39.

use std::fmt;
use std::sync::OnceLock;

use unicode_security::skeleton;

use crate::sanitize::sanitize_text;

/// Longest accepted name, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// Punctuation allowed in names besides letters and digits.
const NAME_PUNCTUATION: &[char] = &['-', '_', '.', '\'', '[', ']', '{', '}', '|', '^', '`'];

/// Names (compared by skeleton) that only the server may wear.
const RESERVED: &[&str] = &[
    "server",
    "admin",
    "administrator",
    "system",
    "root",
    "operator",
    "sysop",
    "moderator",
    "mod",
    "console",
    "daemon",
    "chanserv",
    "nickserv",
    "service",
    "services",
    "everyone",
    "all",
    "me",
    "you",
    "nobody",
    "anonymous",
];

/// Prefixes that only the server may use, so `server-bot` or `admin2` cannot
/// pass for it either.
const RESERVED_PREFIXES: &[&str] = &["server", "admin", "system", "sysop", "operator"];

/// Why a proposed name was refused; the message is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong,
    HasSpace,
    BadCharacter(char),
    Reserved,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "a name needs at least one visible character"),
            Self::TooLong => write!(f, "a name has at most {MAX_NAME_CHARS} characters"),
            Self::HasSpace => write!(f, "a name cannot contain spaces"),
            Self::BadCharacter(c) => write!(
                f,
                "a name may hold letters, digits and - _ . ' [ ] {{ }} | ^ ` only, not {c:?}"
            ),
            Self::Reserved => write!(f, "that name is reserved for the server"),
        }
    }
}

impl std::error::Error for NameError {}

/// A valid user name, as shown to others.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(String);

/// The identity of a name for uniqueness: case-folded TR39 skeleton.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameKey(String);

impl Name {
    /// Validates a name as typed by a user. Surrounding spaces are ignored;
    /// everything else that sanitising would remove makes no difference.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let clean = sanitize_text(raw);
        let name = clean.trim();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(NameError::TooLong);
        }
        if let Some(c) = name.chars().find(|c| !is_name_char(*c)) {
            return Err(if c.is_whitespace() {
                NameError::HasSpace
            } else {
                NameError::BadCharacter(c)
            });
        }
        let name = Name(name.to_owned());
        if is_reserved(&name.key()) {
            return Err(NameError::Reserved);
        }
        Ok(name)
    }

    /// The key under which this name is unique.
    pub fn key(&self) -> NameKey {
        NameKey::of(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl NameKey {
    /// The key as text (for use as a key in shared stores).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key of any text, so a lookup by what a user typed (`/msg BOB`) finds `bob`.
    pub fn of(text: &str) -> Self {
        NameKey(ascii_key(text).unwrap_or_else(|| key_of(text)))
    }
}

/// The key as TR39 defines it, for any text.
fn key_of(text: &str) -> String {
    // Upper case first: TR39 maps capital look-alikes (Greek Ε, Cyrillic В,
    // capital I) to Latin prototypes, which their lower-case forms (ε, в, i)
    // do not share. Then fold case, and take the skeleton once more for
    // look-alikes that only exist in lower case (rn and m).
    let upper: String = skeleton(&text.to_uppercase()).collect();
    skeleton(&upper.to_lowercase()).collect()
}

/// The key of ASCII text, character by character from a table, when every
/// character's key stays ASCII at every step of [`key_of`]: then no step
/// looks beyond one character (case mapping and normalisation of ASCII are
/// per character), so the keys of the characters, put together, are the
/// key of the text. Most names are ASCII, and every connection computes
/// several keys (the name's, its rooms').
fn ascii_key(text: &str) -> Option<String> {
    static KEYS: OnceLock<Vec<Option<String>>> = OnceLock::new();
    if !text.is_ascii() {
        return None;
    }
    let keys = KEYS.get_or_init(|| (0..128u8).map(|b| ascii_char_key(char::from(b))).collect());
    let mut key = String::with_capacity(text.len());
    for byte in text.bytes() {
        key.push_str(keys[usize::from(byte)].as_deref()?);
    }
    Some(key)
}

/// One ASCII character's key, if it stays ASCII at every step.
fn ascii_char_key(c: char) -> Option<String> {
    let upper: String = skeleton(&c.to_uppercase().to_string()).collect();
    let lower = upper.is_ascii().then(|| upper.to_lowercase())?;
    let key: String = skeleton(&lower).collect();
    key.is_ascii().then_some(key)
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || NAME_PUNCTUATION.contains(&c) || is_combining_mark(c)
}

fn is_combining_mark(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    matches!(c.general_category(), GeneralCategory::NonspacingMark | GeneralCategory::SpacingMark)
}

fn is_reserved(key: &NameKey) -> bool {
    // The reserved words' keys, computed once rather than on every check.
    static KEYS: OnceLock<(Vec<NameKey>, Vec<NameKey>)> = OnceLock::new();
    let (words, prefixes) = KEYS.get_or_init(|| {
        let keys = |words: &[&str]| words.iter().map(|w| NameKey::of(w)).collect();
        (keys(RESERVED), keys(RESERVED_PREFIXES))
    });
    words.contains(key) || prefixes.iter().any(|prefix| key.0.starts_with(&prefix.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for name in ["alice", "Bob_2", "zoë", "李雷", "o'brien", "[afk]joe"] {
            assert_eq!(Name::parse(name).expect(name).as_str(), name);
        }
        assert_eq!(Name::parse("  carol \r").expect("trimmed").as_str(), "carol");
    }

    #[test]
    fn refuses_bad_names_with_a_reason() {
        assert_eq!(Name::parse(""), Err(NameError::Empty));
        assert_eq!(Name::parse("\u{202E}\u{200B}"), Err(NameError::Empty));
        assert_eq!(Name::parse("two words"), Err(NameError::HasSpace));
        assert_eq!(Name::parse(&"x".repeat(33)), Err(NameError::TooLong));
        assert!(Name::parse(&"x".repeat(32)).is_ok());
        assert_eq!(Name::parse("a:b"), Err(NameError::BadCharacter(':')));
        assert_eq!(Name::parse("***"), Err(NameError::BadCharacter('*')));
    }

    #[test]
    fn control_characters_vanish_before_validation() {
        assert_eq!(Name::parse("al\x07ice").expect("valid").as_str(), "alice");
    }

    #[test]
    fn reserved_names_and_lookalikes_are_refused() {
        for name in [
            "server",
            "SERVER",
            "Admin",
            "system",
            "ѕуѕtеm",
            "server2",
            "admin-bot",
            "r00t",
            "SERV\u{0395}R",
            "SYS\u{03A4}EM",
            "\u{039C}OD",
        ] {
            assert_eq!(Name::parse(name), Err(NameError::Reserved), "{name}");
        }
    }

    #[test]
    fn keys_fold_case_and_lookalikes() {
        let key = |s: &str| Name::parse(s).expect(s).key();
        assert_eq!(key("alice"), key("ALICE"));
        assert_eq!(key("alice"), key("\u{0430}lice")); // Cyrillic a
        assert_eq!(key("paypal"), key("\u{0440}\u{0430}ypal"));
        assert_eq!(key("alice"), key("ALIC\u{0395}")); // Greek capital Epsilon
        assert_eq!(key("bob"), key("\u{0412}OB")); // Cyrillic capital Ve
        assert_eq!(key("bob"), key("\u{0392}\u{039F}\u{0392}")); // Greek Beta, Omicron
        assert_eq!(key("paypal"), key("paypaI")); // capital i for l
        assert_ne!(key("alice"), key("alicia"));
        assert_eq!(NameKey::of("Alice"), key("alice"));
    }

    #[test]
    fn ascii_keys_from_the_table_are_the_keys_tr39_gives() {
        // Every ASCII text of one and two characters, across the pairs a
        // character's key could depend on (rn and m, say).
        for a in 0..128u8 {
            for b in 0..128u8 {
                for text in
                    [String::from(char::from(a)), [char::from(a), char::from(b)].iter().collect()]
                {
                    assert_eq!(NameKey::of(&text).0, key_of(&text), "{text:?}");
                }
            }
        }
        assert!(ascii_key("alice").is_some(), "the table serves plain names");
        assert_eq!(NameKey::of("r\u{0440}n").0, key_of("r\u{0440}n"));
    }

    proptest::proptest! {
        #[test]
        fn any_ascii_text_has_the_key_tr39_gives(text in "[\\x00-\\x7f]{0,40}") {
            proptest::prop_assert_eq!(NameKey::of(&text).0, key_of(&text));
        }
    }
}
