//! What a load run counts: the counters every task of the run updates, and each receiver's own
//! account of what reached it.
//!
//! A receiver keeps one bit per (sender, sequence number) so that a fresh delivery is told from
//! a duplicate exactly; lost = expected - fresh. It also notes how many messages the server said
//! it skipped, which lines matched a `--watch` text, and why its connection ended if it did.

use std::sync::atomic::{AtomicU64, AtomicUsize};

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
    pub delivered: AtomicU64,
    pub lines: AtomicU64,
    pub last_delivery: AtomicU64,
    pub receivers_pending: AtomicUsize,
    pub all_received: Notify,
    pub senders_pending: AtomicUsize,
    pub all_sent: Notify,
}

impl Shared {
    /// Zeroed counters for `senders` x `messages` tokens tagged `tag`, on one daemon, with
    /// nobody pending and nothing watched.
    pub fn new(protocol: Protocol, tag: u32, senders: usize, messages: u64) -> Self {
        Shared {
            protocol,
            tag,
            nodes: 1,
            watch: Vec::new(),
            last_cross_delivery: AtomicU64::new(0),
            killed_at: AtomicU64::new(0),
            after_kill_local: AtomicU64::new(0),
            after_kill_cross: AtomicU64::new(0),
            senders,
            messages,
            sent: AtomicU64::new(0),
            send_failures: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            lines: AtomicU64::new(0),
            last_delivery: AtomicU64::new(0),
            receivers_pending: AtomicUsize::new(0),
            all_received: Notify::new(),
            senders_pending: AtomicUsize::new(0),
            all_sent: Notify::new(),
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
    /// One bit per (sender, seq): seen already.
    seen: Vec<u64>,
    /// Per sender: one past the highest sequence number seen.
    next: Vec<u64>,
    /// Why the connection ended before the run did, if it did.
    pub ended: Option<String>,
}

impl Account {
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
        let bit = sender as u64 * shared.messages + token.seq;
        let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
        if self.seen[word] & mask != 0 {
            self.duplicates += 1;
            return None;
        }
        self.seen[word] |= mask;
        if token.seq < self.next[sender] {
            self.out_of_order += 1;
        } else {
            self.next[sender] = token.seq + 1;
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
