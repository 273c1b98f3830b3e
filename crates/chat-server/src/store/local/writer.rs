//! The store's thread: it owns the connection and serves the queue in
//! order. Lines are gathered into one transaction per wake-up (group
//! commit, waiting up to 50 ms for more), reads and account changes are
//! answered after the writes queued before them, failing writes are kept
//! and retried each second (logged once a minute, counted), departures of
//! registered users are kept and retried with them, old lines go in
//! chunks (`--retain-days`), and a stopping daemon keeps trying for a few
//! seconds. The thread runs at nice 19: it gives the core to the room.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use chat_proto::{NameKey, RoomName};
use rusqlite::{Connection, params};
use tracing::{info, warn};

use super::sql::{insert_all, left};
use super::{
    BATCH, CLOSE_PATIENCE, Departure, FAILURE_LOG_PERIOD, GATHER, Job, PENDING_MAX,
    RETENTION_CHUNK, RETENTION_PERIOD, RETRY, StoreStats,
};
use crate::priority::lower_this_threads_priority;
use crate::store::{Stored, cutoff_ms};

/// The store's thread: the connection, what waits to be written, and when
/// retention runs next.
pub(super) struct Writer {
    conn: Connection,
    stats: Arc<StoreStats>,
    retain: Option<Duration>,
    pending: VecDeque<(RoomName, Stored)>,
    /// Departures of registered users not written yet, the latest per name.
    departures: HashMap<NameKey, Departure>,
    /// Set while writes fail: when to try again.
    retry_at: Option<Instant>,
    last_failure_log: Option<Instant>,
    next_retention: Instant,
}

impl Writer {
    pub(super) fn new(
        conn: Connection,
        stats: Arc<StoreStats>,
        retain: Option<Duration>,
    ) -> Writer {
        Writer {
            conn,
            stats,
            retain,
            pending: VecDeque::new(),
            departures: HashMap::new(),
            retry_at: None,
            last_failure_log: None,
            next_retention: Instant::now(),
        }
    }

    pub(super) fn run(mut self, queue: Receiver<Job>, waiting: &AtomicUsize) {
        // Lines wait in the queue while the room's workers want the core;
        // the store catches up when they rest.
        if let Err(error) = lower_this_threads_priority() {
            warn!(%error, "cannot lower the priority of the store; writing history competes with chat for the CPU");
        }
        loop {
            let wait = self.next_wake().saturating_duration_since(Instant::now());
            let first = match queue.recv_timeout(wait) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    self.write_pending();
                    return;
                }
            };
            let mut closing = false;
            let mut taken = 0;
            let gather_until = Instant::now() + GATHER;
            let mut next = first;
            while let Some(job) = next {
                waiting.fetch_sub(1, Ordering::Relaxed);
                taken += 1;
                match job {
                    Job::Record(room, stored) => self.keep(room, stored),
                    Job::Left(departure) => {
                        self.departures.insert(departure.key.clone(), departure);
                    }
                    Job::Run(task) => {
                        self.write_pending();
                        task(&mut self.conn, cutoff_ms(self.retain));
                    }
                    Job::Close => closing = true,
                }
                next = if taken >= BATCH || closing {
                    None
                } else if self.pending.is_empty() {
                    queue.try_recv().ok()
                } else {
                    // Lines wait: more may come before the batch is written.
                    let left = gather_until.saturating_duration_since(Instant::now());
                    queue.recv_timeout(left).ok()
                };
            }
            self.write_pending();
            if closing {
                self.write_before_exit();
                return;
            }
            self.expire_old();
        }
    }

    /// The daemon is stopping: tries again and again (for a few seconds)
    /// to write what is left, whatever the retry pace.
    fn write_before_exit(&mut self) {
        let deadline = Instant::now() + CLOSE_PATIENCE;
        while self.has_pending() && Instant::now() < deadline {
            self.retry_at = None;
            self.write_pending();
            if self.has_pending() {
                std::thread::sleep(RETRY / 10);
            }
        }
        if self.has_pending() {
            let (lines, departures) = (self.pending.len(), self.departures.len());
            warn!(lines, departures, "stopping with writes the database refused");
        }
    }

    fn has_pending(&self) -> bool {
        !self.pending.is_empty() || !self.departures.is_empty()
    }

    fn next_wake(&self) -> Instant {
        match self.retry_at {
            Some(retry) if self.has_pending() => retry.min(self.next_retention),
            _ => self.next_retention,
        }
    }

    fn keep(&mut self, room: RoomName, stored: Stored) {
        if self.pending.len() >= PENDING_MAX {
            self.pending.pop_front();
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.pending.push_back((room, stored));
    }

    /// Writes what waits in one transaction; on failure keeps it for the
    /// next try (at most once a [`RETRY`] while failing).
    fn write_pending(&mut self) {
        if !self.has_pending() {
            return;
        }
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        match self.write_lines().and_then(|()| self.write_departures()) {
            Ok(()) => {
                if self.retry_at.take().is_some() {
                    info!("writing to the database again");
                }
            }
            Err(error) => {
                self.stats.write_failures.fetch_add(1, Ordering::Relaxed);
                self.retry_at = Some(Instant::now() + RETRY);
                let now = Instant::now();
                if self
                    .last_failure_log
                    .is_none_or(|at| now.duration_since(at) >= FAILURE_LOG_PERIOD)
                {
                    self.last_failure_log = Some(now);
                    let (waiting, departures) = (self.pending.len(), self.departures.len());
                    warn!(%error, waiting, departures, "cannot write to the database; chat goes on, retrying");
                }
            }
        }
    }

    /// Writes the waiting lines in one transaction; they wait on if it fails.
    fn write_lines(&mut self) -> rusqlite::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        insert_all(&mut self.conn, &self.pending)?;
        self.stats.written.fetch_add(self.pending.len() as u64, Ordering::Relaxed);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.pending.clear();
        Ok(())
    }

    /// Writes the waiting departures in one transaction; they wait on if it fails.
    fn write_departures(&mut self) -> rusqlite::Result<()> {
        if self.departures.is_empty() {
            return Ok(());
        }
        let transaction = self.conn.transaction()?;
        for Departure { key, rooms, at_ms } in self.departures.values() {
            left(&transaction, key, rooms, *at_ms)?;
        }
        transaction.commit()?;
        self.departures.clear();
        Ok(())
    }

    /// Deletes one chunk of lines older than `--retain-days`; comes back
    /// at once while there is more, else in an hour.
    fn expire_old(&mut self) {
        if Instant::now() < self.next_retention {
            return;
        }
        let Some(retain) = self.retain else {
            self.next_retention = Instant::now() + RETENTION_PERIOD * 1000;
            return;
        };
        let deleted = self.conn.execute(
            "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE at < ?1 LIMIT ?2)",
            params![cutoff_ms(Some(retain)), RETENTION_CHUNK as i64],
        );
        match deleted {
            Ok(count) if count >= RETENTION_CHUNK => {}
            Ok(count) => {
                if count > 0 {
                    info!(count, "old messages deleted (--retain-days)");
                }
                self.next_retention = Instant::now() + RETENTION_PERIOD;
            }
            Err(error) => {
                warn!(%error, "could not delete old messages");
                self.next_retention = Instant::now() + RETENTION_PERIOD;
            }
        }
    }
}
