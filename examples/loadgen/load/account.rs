//! What a load run counts: the counters every task of the run updates, and each receiver's own
//! account of what reached it.
//!
//! A receiver keeps one bit per (sender in its room, sequence number) so that a fresh delivery is
//! told from a duplicate exactly; lost = expected - fresh; a message from another room's sender
//! is misrouted. It also notes how many messages the server said
//! it skipped, which lines matched a `--watch` text, and why its connection ended if it did.
//! The joins' phases (connect, name, rooms) are timed here too.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::metrics::Histogram;
use crate::protocol::Protocol;
use crate::wire::Token;

/// Counters every task of a run updates.
pub struct Shared {
    pub protocol: Protocol,
    pub tag: u32,
    /// Daemons the clients are spread over; sender s is on daemon s mod nodes.
    pub nodes: usize,
    /// Rooms the clients are spread over; sender s speaks in room s mod rooms.
    pub rooms: usize,
    pub watch: Vec<Vec<u8>>,
    pub last_cross_delivery: AtomicU64,
    /// When `--kill-pid` was signalled (0: not yet); deliveries after it are counted apart.
    pub killed_at: AtomicU64,
    pub after_kill_local: AtomicU64,
    pub after_kill_cross: AtomicU64,
    pub senders: usize,
    pub messages: u64,
    pub sent: AtomicU64,
    pub send_failures: AtomicU64,
    /// Clients whose connection was reset while joining, and who connected again.
    pub rejoins: AtomicU64,
    pub delivered: AtomicU64,
    pub lines: AtomicU64,
    pub last_delivery: AtomicU64,
    pub receivers_pending: AtomicUsize,
    pub all_received: Notify,
    pub senders_pending: AtomicUsize,
    pub all_sent: Notify,
    pub joins: JoinTimes,
}

/// How long the clients' joins took, phase by phase, summed over the clients.
#[derive(Debug, Default)]
pub struct JoinTimes {
    pub count: AtomicU64,
    /// TCP connect.
    pub connect_ns: AtomicU64,
    /// From the first byte sent until the name was accepted (chat's welcome, IRC's 001).
    pub named_ns: AtomicU64,
    /// From then until every room or channel was joined.
    pub rooms_ns: AtomicU64,
}

impl JoinTimes {
    pub fn add(&self, connect: Duration, named: Duration, rooms: Duration) {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.connect_ns.fetch_add(nanos(connect), Ordering::Relaxed);
        self.named_ns.fetch_add(nanos(named), Ordering::Relaxed);
        self.rooms_ns.fetch_add(nanos(rooms), Ordering::Relaxed);
    }

    /// The mean of each phase in milliseconds: connect, named, rooms.
    pub fn mean_ms(&self) -> [f64; 3] {
        let n = self.count.load(Ordering::Relaxed).max(1) as f64;
        [&self.connect_ns, &self.named_ns, &self.rooms_ns]
            .map(|sum| sum.load(Ordering::Relaxed) as f64 / n / 1e6)
    }
}

impl Shared {
    /// Zeroed counters for `senders` x `messages` tokens tagged `tag`, on one daemon, with
    /// nobody pending and nothing watched.
    pub fn new(protocol: Protocol, tag: u32, senders: usize, messages: u64) -> Self {
        Shared {
            protocol,
            tag,
            nodes: 1,
            rooms: 1,
            watch: Vec::new(),
            last_cross_delivery: AtomicU64::new(0),
            killed_at: AtomicU64::new(0),
            after_kill_local: AtomicU64::new(0),
            after_kill_cross: AtomicU64::new(0),
            senders,
            messages,
            sent: AtomicU64::new(0),
            send_failures: AtomicU64::new(0),
            rejoins: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            lines: AtomicU64::new(0),
            last_delivery: AtomicU64::new(0),
            receivers_pending: AtomicUsize::new(0),
            all_received: Notify::new(),
            senders_pending: AtomicUsize::new(0),
            all_sent: Notify::new(),
            joins: JoinTimes::default(),
        }
    }
}

/// What the server said a client missed: the counts in its notices, and the first notice.
#[derive(Debug, Default)]
pub struct MissedNotices {
    pub told: u64,
    pub notices: u64,
    pub first: Option<String>,
}

impl MissedNotices {
    pub fn note(&mut self, count: u64, line: &[u8]) {
        self.told += count;
        self.notices += 1;
        if self.first.is_none() {
            self.first = Some(String::from_utf8_lossy(line).trim().to_owned());
        }
    }
}

/// One receiver's account of what arrived.
#[derive(Debug, Default)]
pub struct Account {
    pub expected: u64,
    /// Of `expected` and `fresh`: from senders on another daemon.
    pub expected_cross: u64,
    pub fresh_cross: u64,
    /// This receiver's daemon.
    pub node: usize,
    /// This receiver's room: it takes messages from the senders of this room only.
    pub room: usize,
    /// Messages from senders of other rooms.
    pub misrouted: u64,
    pub fresh: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub stale: u64,
    pub missed: MissedNotices,
    /// Local deliveries (all of them with one daemon).
    pub latency: Histogram,
    pub latency_cross: Histogram,
    /// Per watched text: lines seen, and when the first came.
    pub watched: Vec<(u64, Option<u64>)>,
    pub reads: u64,
    /// Reads that carried the kernel's receive time.
    pub stamped_reads: u64,
    /// One bit per (sender of this room, seq): seen already.
    seen: Vec<u64>,
    /// Per sender of this room: one past the highest sequence number seen.
    next: Vec<u64>,
    /// Why the connection ended before the run did, if it did.
    pub ended: Option<String>,
}

impl Account {
    /// An empty account for a receiver that expects `expected` messages from the `senders` of
    /// its room, `messages` each (its room is 0 until set).
    pub fn new(expected: u64, senders: usize, messages: u64) -> Self {
        let bits = senders as u64 * messages;
        Account {
            expected,
            seen: vec![0; bits.div_ceil(64) as usize],
            next: vec![0; senders],
            ..Account::default()
        }
    }

    /// Counts one token; `Some(cross)` when it is a fresh delivery of this run, `cross` when it
    /// came from a sender on another daemon.
    pub fn take(&mut self, token: Token, shared: &Shared) -> Option<bool> {
        let sender = token.sender as usize;
        if token.tag != shared.tag || sender >= shared.senders || token.seq >= shared.messages {
            self.stale += 1;
            return None;
        }
        if sender % shared.rooms != self.room {
            self.misrouted += 1;
            return None;
        }
        // Sender s of room r (s = r + k x rooms) has row k.
        let row = sender / shared.rooms;
        let bit = row as u64 * shared.messages + token.seq;
        let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
        if self.seen[word] & mask != 0 {
            self.duplicates += 1;
            return None;
        }
        self.seen[word] |= mask;
        if token.seq < self.next[row] {
            self.out_of_order += 1;
        } else {
            self.next[row] = token.seq + 1;
        }
        self.fresh += 1;
        let cross = sender % shared.nodes != self.node;
        self.fresh_cross += u64::from(cross);
        Some(cross)
    }

    /// Counts the lines that contain a watched text, and when the first of each came.
    pub fn watch(&mut self, line: &[u8], now: u64, patterns: &[Vec<u8>]) {
        for (pattern, seen) in patterns.iter().zip(&mut self.watched) {
            if memchr::memmem::find(line, pattern).is_some() {
                seen.0 += 1;
                seen.1.get_or_insert(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(sender: u32, seq: u64) -> Token {
        Token { sender, seq, nanos: 0, tag: 5 }
    }

    #[test]
    fn a_receiver_counts_its_rooms_messages_and_flags_the_others() {
        // 10 senders in 4 rooms: room 2 has senders 2 and 6, 3 messages each.
        let shared = Shared { rooms: 4, ..Shared::new(Protocol::Chat, 5, 10, 3) };
        let mut account = Account::new(6, 2, 3);
        account.room = 2;
        assert_eq!(account.take(token(2, 0), &shared), Some(false));
        assert_eq!(account.take(token(6, 2), &shared), Some(false));
        assert_eq!(account.take(token(6, 1), &shared), Some(false));
        assert_eq!(account.take(token(6, 1), &shared), None);
        assert_eq!(account.take(token(3, 0), &shared), None);
        assert_eq!(account.take(token(9, 0), &shared), None);
        assert_eq!(account.take(Token { tag: 4, ..token(2, 1) }, &shared), None);
        assert_eq!(
            (account.fresh, account.duplicates, account.misrouted, account.stale),
            (3, 1, 2, 1)
        );
        assert_eq!(account.out_of_order, 1, "6/1 came after 6/2");
    }

    #[test]
    fn every_message_of_a_room_fits_its_receivers_bitmap() {
        let shared = Shared { rooms: 3, ..Shared::new(Protocol::Redis, 5, 8, 70) };
        // Room 1 has senders 1, 4 and 7.
        let mut account = Account::new(210, 3, 70);
        account.room = 1;
        for sender in [1, 4, 7] {
            for seq in 0..70 {
                assert_eq!(account.take(token(sender, seq), &shared), Some(false));
            }
        }
        assert_eq!((account.fresh, account.duplicates, account.out_of_order), (210, 0, 0));
    }
}
