//! The history that survives a restart: every room's messages, kept where
//! `--db` says, or in Redis when daemons share rooms (`--backplane`).
//!
//! [`Store`] is the one interface the rest of the daemon uses: `record`
//! never waits (a line is handed to the store's own thread, or to the
//! backplane's queue), `recent` and `search` read without ever running on a
//! connection's task. Two places keep it: [`local`] (an embedded SQLite
//! file, or `:memory:`, written by one thread in batches) and [`shared`]
//! (one capped Redis list per room, which every daemon reads and writes);
//! with `--db none`, nothing does ([`memory`] keeps only registered names).
//! A [`Stored`] message is what both keep: when it was said, by whom, and
//! what; it renders to the same [`Line`] as when it was live.

pub mod local;
pub mod memory;
pub mod shared;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use chat_proto::{Name, NameKey, RoomKey, RoomName};

use crate::accounts::LoginThrottle;
pub use crate::event::Said;
use crate::moderation::{Change, Row};
use crate::redis_link::RedisLink;

pub use local::LocalStore;
pub use memory::MemoryAccounts;
pub use shared::SharedHistory;

/// What `--db` says for keeping no history at all.
pub const NO_HISTORY: &str = "none";

/// Matches `/search` returns at most.
pub const SEARCH_RESULTS: usize = 20;

/// What was said in a room, as the history keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Milliseconds since 1970-01-01 UTC.
    pub at_ms: i64,
    pub said: Said,
}

impl Stored {
    /// Said just now.
    pub fn now(said: Said) -> Stored {
        Stored { at_ms: now_ms(), said }
    }

    /// The text `/search` looks in.
    pub fn text(&self) -> &str {
        self.said.text()
    }
}

/// `[HH:MM]` in UTC.
pub fn clock(at_ms: i64) -> String {
    let minutes = at_ms.div_euclid(60_000);
    format!("[{:02}:{:02}]", minutes.div_euclid(60).rem_euclid(24), minutes.rem_euclid(60))
}

pub fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// The oldest time still kept with `retain` (`None`: forever).
pub fn cutoff_ms(retain: Option<Duration>) -> i64 {
    match retain {
        Some(retain) => now_ms().saturating_sub(i64::try_from(retain.as_millis()).unwrap_or(0)),
        None => i64::MIN,
    }
}

/// The words of a text as `/search` compares them: runs of letters and
/// digits, in lower case, without diacritics (`Café` is `cafe`): the
/// words SQLite's `unicode61` tokenizer with `remove_diacritics 2` makes,
/// so the local index and a scan of the shared history agree.
pub fn words_of(text: &str) -> Vec<String> {
    let folded: String = text.nfd().filter(|&c| !is_combining_mark(c)).collect();
    folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// What `/search` looks for: each typed word as the run of words it
/// contains (`don't` is `don` then `t`). Empty when nothing searchable was typed.
pub fn search_terms(typed: &str) -> Vec<Vec<String>> {
    typed.split_whitespace().map(words_of).filter(|words| !words.is_empty()).collect()
}

/// True when `text` contains every term, each as consecutive words.
pub fn matches_terms(text: &str, terms: &[Vec<String>]) -> bool {
    let words = words_of(text);
    terms.iter().all(|term| words.windows(term.len()).any(|window| window == term.as_slice()))
}

/// A registered name as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// As registered (the key folds case and look-alikes).
    pub name: String,
    /// An argon2id PHC string.
    pub hash: String,
    /// The rooms the owner was in when they last left.
    pub rooms: Vec<String>,
    /// When they last left, if ever.
    pub left_at_ms: Option<i64>,
}

/// Why the history could not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the history is unavailable: {}", self.0)
    }
}

/// Where the rooms' history is kept.
pub enum Store {
    /// This daemon's own database (`--db`).
    Local(LocalStore),
    /// Shared by every daemon on the backplane, in Redis.
    Shared(SharedHistory),
    /// No history (`--db none`); registered names last until the daemon stops.
    Nothing(MemoryAccounts),
}

impl Store {
    /// With a link to Redis (a backplane), the history every daemon shares; else the local
    /// store, or no history when none was opened (`--db none`).
    pub fn new(
        local: Option<LocalStore>,
        shared: Option<&RedisLink>,
        retain: Option<Duration>,
    ) -> Self {
        match (local, shared) {
            (_, Some(link)) => Store::Shared(SharedHistory::new(link.clone(), retain)),
            (Some(store), None) => Store::Local(store),
            (None, None) => Store::Nothing(MemoryAccounts::default()),
        }
    }

    /// Writes everything accepted so far and stops the store's thread.
    pub async fn close(&self) {
        if let Store::Local(store) = self {
            store.close().await;
        }
    }

    /// The local store's counters (none for the shared history).
    pub fn local_stats(&self) -> Option<&local::StoreStats> {
        match self {
            Store::Local(store) => Some(store.stats()),
            Store::Shared(_) | Store::Nothing(_) => None,
        }
    }

    /// The moderation rows kept: by the local store, read once at start
    /// (empty after); by the shared store, read from Redis each time (at
    /// start, and after an outage), `None` when Redis holds no record at
    /// all (new, or restarted without its data); none with `--db none`.
    pub async fn moderation_rows(&self) -> Result<Option<Vec<Row>>, Unavailable> {
        match self {
            Store::Local(store) => Ok(Some(store.take_moderation())),
            Store::Shared(shared) => Box::pin(shared.moderation_rows()).await,
            Store::Nothing(_) => Ok(Some(Vec::new())),
        }
    }

    /// Keeps a moderation change; with `--db none` it lasts until the
    /// daemon stops. Boxed: rare.
    pub async fn keep_moderation(&self, change: Change) -> Result<(), Unavailable> {
        match self {
            Store::Local(store) => Box::pin(store.keep_moderation(change)).await,
            Store::Shared(shared) => Box::pin(shared.keep_moderation(&change)).await,
            Store::Nothing(_) => Ok(()),
        }
    }

    /// Gives a shared store that lost its record (Redis restarted without
    /// its data) the rows a daemon holds, all at once; others keep theirs.
    pub async fn give_back_moderation(&self, rows: &[Row]) -> Result<(), Unavailable> {
        match self {
            Store::Shared(shared) => Box::pin(shared.give_back_moderation(rows)).await,
            Store::Local(_) | Store::Nothing(_) => Ok(()),
        }
    }

    /// True when what is kept is shared with other daemons (and so read
    /// again once they can be reached after an outage).
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Shared(_))
    }

    /// The rooms' history: keeping what is said, replaying and searching it.
    pub fn history(&self) -> History<'_> {
        History(self)
    }

    /// Registered names, and the throttle on guessing their passwords.
    pub fn accounts(&self) -> Accounts<'_> {
        Accounts(self)
    }
}

/// The history of the rooms, as kept by a [`Store`].
pub struct History<'a>(&'a Store);

impl History<'_> {
    /// False with `--db none`: `/history`, `/search` and a returning
    /// owner's catch-up have nothing to read.
    pub fn keeps_history(&self) -> bool {
        !matches!(self.0, Store::Nothing(_))
    }

    /// Keeps a line said in `room`; never waits.
    pub fn record(&self, room: &RoomName, stored: Stored) {
        match self.0 {
            Store::Local(store) => store.record(room, stored),
            Store::Shared(shared) => shared.record(&room.key(), &stored),
            Store::Nothing(_) => {}
        }
    }

    /// The last `limit` lines of `room`, oldest first. (Reads are boxed:
    /// they are rare, and inline they would enlarge every connection's task.)
    pub async fn recent(&self, room: &RoomKey, limit: usize) -> Result<Vec<Stored>, Unavailable> {
        match self.0 {
            Store::Local(store) => Box::pin(store.recent(room, limit)).await,
            Store::Shared(shared) => Box::pin(shared.recent(room, limit)).await,
            Store::Nothing(_) => Ok(Vec::new()),
        }
    }

    /// The [`SEARCH_RESULTS`] latest lines of `room` that contain every
    /// term of [`search_terms`], oldest first.
    pub async fn search(
        &self,
        room: &RoomKey,
        terms: Vec<Vec<String>>,
    ) -> Result<Vec<Stored>, Unavailable> {
        match self.0 {
            Store::Local(store) => Box::pin(store.search(room, terms)).await,
            Store::Shared(shared) => Box::pin(shared.search(room, terms)).await,
            Store::Nothing(_) => Ok(Vec::new()),
        }
    }

    /// How many lines `room` got after `after_ms`, and the last `limit` of them.
    pub async fn since(
        &self,
        room: &RoomKey,
        after_ms: i64,
        limit: usize,
    ) -> Result<(u64, Vec<Stored>), Unavailable> {
        let room = room.clone();
        match self.0 {
            Store::Local(store) => {
                Box::pin(store.run(move |conn, _| local::since(conn, &room, after_ms, limit))).await
            }
            Store::Shared(shared) => Box::pin(shared.since(&room, after_ms, limit)).await,
            Store::Nothing(_) => Ok((0, Vec::new())),
        }
    }
}

/// The registered names, as kept by a [`Store`], and the throttle on guessing.
pub struct Accounts<'a>(&'a Store);

impl Accounts<'_> {
    /// The registered name with this key, if any.
    pub async fn account(&self, key: &NameKey) -> Result<Option<Account>, Unavailable> {
        let key = key.clone();
        match self.0 {
            Store::Local(store) => Ok(store.account(&key)),
            Store::Shared(shared) => Box::pin(shared.account(&key)).await,
            Store::Nothing(accounts) => Ok(accounts.account(&key)),
        }
    }

    /// Registers `name` with a password hash; false when it already is.
    pub async fn register(&self, name: &Name, hash: String) -> Result<bool, Unavailable> {
        let name = name.clone();
        match self.0 {
            Store::Local(store) => Box::pin(store.register(&name, hash)).await,
            Store::Shared(shared) => Box::pin(shared.register(&name, &hash)).await,
            Store::Nothing(accounts) => Ok(accounts.register(&name, hash)),
        }
    }

    /// Replaces a registered name's password hash.
    pub async fn set_hash(&self, key: &NameKey, hash: String) -> Result<bool, Unavailable> {
        let key = key.clone();
        match self.0 {
            Store::Local(store) => Box::pin(store.set_hash(&key, hash)).await,
            Store::Shared(shared) => Box::pin(shared.set_hash(&key, &hash)).await,
            Store::Nothing(accounts) => Ok(accounts.set_hash(&key, hash)),
        }
    }

    pub async fn unregister(&self, key: &NameKey) -> Result<bool, Unavailable> {
        let key = key.clone();
        match self.0 {
            Store::Local(store) => Box::pin(store.unregister(&key)).await,
            Store::Shared(shared) => Box::pin(shared.unregister(&key)).await,
            Store::Nothing(accounts) => Ok(accounts.unregister(&key)),
        }
    }

    /// A registered user left, from these rooms; never waits.
    pub fn left(&self, key: &NameKey, rooms: &[RoomName]) {
        let rooms: Vec<&str> = rooms.iter().map(RoomName::as_str).collect();
        let (key, rooms, at) = (key.clone(), rooms.join(" "), now_ms());
        match self.0 {
            Store::Local(store) => store.left(&key, rooms, at),
            Store::Shared(shared) => shared.left(key, rooms, at),
            Store::Nothing(accounts) => accounts.left(&key, &rooms, at),
        }
    }

    /// When the next password attempt on `key` may be checked: kept in
    /// Redis with a backplane (so it holds across daemons), else by `local`
    /// (also the fallback while Redis cannot answer).
    pub async fn login_turn(&self, key: &NameKey, local: &LoginThrottle) -> Instant {
        if let Store::Shared(shared) = self.0 {
            match Box::pin(shared.reserve_login(key)).await {
                Ok(wait) => return Instant::now() + wait,
                Err(error) => tracing::warn!(%error, "login throttle kept locally for now"),
            }
        }
        local.reserve(key)
    }

    /// The right password was given: the name's failures are forgotten.
    pub async fn login_succeeded(&self, key: &NameKey, local: &LoginThrottle) {
        local.succeeded(key);
        if let Store::Shared(shared) = self.0
            && let Err(error) = Box::pin(shared.clear_login(key)).await
        {
            tracing::warn!(%error, "could not clear a name's failed logins in Redis");
        }
    }
}

/// The name a stored message was said under, if it still parses.
pub(crate) fn parse_name(raw: &str) -> Option<Name> {
    Name::parse(raw).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_utc_hours_and_minutes() {
        assert_eq!(clock(0), "[00:00]");
        // 2026-11-30 09:12:59.999 UTC
        assert_eq!(clock(1_796_029_979_999), "[09:12]");
        assert_eq!(clock(-60_000), "[23:59]");
    }

    #[test]
    fn search_terms_need_every_word_in_any_case() {
        let terms = search_terms("Rust  ASYNC");
        assert!(matches_terms("I like rust and async code", &terms));
        assert!(matches_terms("ASYNC! Rust?", &terms));
        assert!(!matches_terms("rust only", &terms));
        assert!(!matches_terms("trusty async", &terms), "whole words only");
        assert!(search_terms("!!! ...").is_empty());
        assert!(matches_terms("I don't know", &search_terms("don't")));
        assert!(matches_terms("Élan vital", &search_terms("élan")));
    }

    #[test]
    fn search_ignores_accents_either_way() {
        assert!(matches_terms("un café noir", &search_terms("cafe")));
        assert!(matches_terms("un cafe noir", &search_terms("CAFÉ")));
        assert!(matches_terms("Ærøskøbing naïve", &search_terms("naive")));
        assert!(!matches_terms("un café noir", &search_terms("caf")));
    }
}
