//! Counters the daemon keeps about itself, for the console's `/stats` and
//! the Prometheus endpoint. Plain relaxed atomics: each is updated once per
//! event or per batch written, never under the room's lock.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Stats {
    /// Connections admitted since start.
    pub connections: AtomicU64,
    /// Chat messages and actions accepted from local users.
    pub messages: AtomicU64,
    /// Lines written to clients.
    pub lines_out: AtomicU64,
    /// Bytes written to clients.
    pub bytes_out: AtomicU64,
    /// Lines slow readers skipped (they were told how many).
    pub missed: AtomicU64,
    /// Overlong lines discarded.
    pub too_long: AtomicU64,
    /// Clients dropped for accepting no bytes for the write timeout.
    pub slow_disconnects: AtomicU64,
    /// Connections refused (server full or too many from one address).
    pub refused: AtomicU64,
    /// Moderation actions carried out (topics, kicks, bans, mutes, operators).
    pub moderation: AtomicU64,
    /// Moderation commands refused (rank too low, target of equal or higher rank, nothing to lift).
    pub moderation_refused: AtomicU64,
    /// Connections refused because their address is banned.
    pub banned: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
