//! `--db none`: no history at all, and registered names kept in memory only,
//! until the daemon stops.
//!
//! Nothing is written anywhere, so nothing competes with the room for the
//! CPU. A room that opens replays only what this daemon still holds in
//! memory (see [`crate::rooms`]); `/history` and `/search` say there is no
//! history; a registered name works for as long as the daemon runs.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use chat_proto::{Name, NameKey};

use super::Account;

/// Registered names, by key, for as long as the daemon runs.
#[derive(Debug, Default)]
pub struct MemoryAccounts {
    accounts: Mutex<HashMap<NameKey, Account>>,
}

impl MemoryAccounts {
    fn accounts(&self) -> MutexGuard<'_, HashMap<NameKey, Account>> {
        // Each change is one insert, update or remove: a panic elsewhere leaves it whole.
        self.accounts.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn account(&self, key: &NameKey) -> Option<Account> {
        self.accounts().get(key).cloned()
    }

    /// Registers `name` unless it is; true when it was registered now.
    pub fn register(&self, name: &Name, hash: String) -> bool {
        let mut accounts = self.accounts();
        let key = name.key();
        if accounts.contains_key(&key) {
            return false;
        }
        let account = Account { name: name.to_string(), hash, rooms: Vec::new(), left_at_ms: None };
        accounts.insert(key, account);
        true
    }

    pub fn set_hash(&self, key: &NameKey, hash: String) -> bool {
        let mut accounts = self.accounts();
        let Some(account) = accounts.get_mut(key) else { return false };
        account.hash = hash;
        true
    }

    pub fn unregister(&self, key: &NameKey) -> bool {
        self.accounts().remove(key).is_some()
    }

    /// Where a registered user was when they left, and when.
    pub fn left(&self, key: &NameKey, rooms: &str, at_ms: i64) {
        let mut accounts = self.accounts();
        let Some(account) = accounts.get_mut(key) else { return };
        account.rooms = rooms.split_whitespace().map(str::to_owned).collect();
        account.left_at_ms = Some(at_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_registered_once_changed_and_forgotten() {
        let accounts = MemoryAccounts::default();
        let alice = Name::parse("alice").expect("a valid name");
        let key = NameKey::of("ALICE");
        assert!(accounts.register(&alice, "h1".to_owned()));
        assert!(!accounts.register(&alice, "h2".to_owned()), "registered once");
        assert!(accounts.set_hash(&key, "h3".to_owned()));
        accounts.left(&key, "#lobby #rust".to_owned().as_str(), 42);
        let account = accounts.account(&key).expect("registered");
        assert_eq!((account.hash.as_str(), account.left_at_ms), ("h3", Some(42)));
        assert_eq!(account.rooms, ["#lobby", "#rust"]);
        assert!(accounts.unregister(&key));
        assert!(accounts.account(&key).is_none() && !accounts.unregister(&key));
    }
}
