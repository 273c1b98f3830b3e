//! The embedded store (`--db PATH`, default `chat.db`; `:memory:` keeps
//! nothing on disk): SQLite through `rusqlite` with its bundled library.
//!
//! One thread owns the one connection and does everything that touches the
//! database, in the order it was asked: connection tasks hand it lines to
//! keep through a bounded queue (`record` never waits; a full queue drops
//! and counts), and reads through the same queue with a reply channel, so
//! `/history` right after a line includes it. The thread takes whatever has
//! queued up and writes it in one transaction (group commit), in WAL mode
//! with `synchronous=NORMAL`: a commit is in the operating system's hands
//! before the next batch starts, so a killed daemon loses nothing that
//! others had seen a moment before, and only a power cut could lose the
//! last commits. A write that fails (disk full) keeps the lines in memory
//! (bounded), retries each second, logs at most once a minute and counts
//! in a metric; chat is never told. Old lines go after `--retain-days`, a
//! bounded chunk at a time between batches.
//!
//! The thread runs at the lowest priority (nice 19): the room's delivery
//! comes first. Under a flood that keeps the room's core busy the lines
//! wait in the queue (up to [`QUEUE`]) and are written once the flood
//! eases; the full-text index is written once per transaction, for exactly
//! the rows it added, rather than by a trigger per row.
//!
//! The file is locked (`flock`) for as long as the daemon runs, so a second
//! daemon on the same file stops at start with a clear line, while
//! `sqlite3` (which uses other locks) can still read it. The schema carries
//! its version in `PRAGMA user_version`; [`MIGRATIONS`] brings an older
//! file up to date, and a newer one is refused.
//!
//! Registered names are few and asked about at every arrival, so they are
//! read once at start and kept in memory: a lookup never waits behind a
//! backlog of lines to write. A registration, a new password or an
//! unregistration is written by the thread first and takes effect in
//! memory only once written, so nothing is confirmed that is not kept (a
//! full disk refuses it with the reason). Where a registered user was when
//! they left is kept like a line: held in memory and retried while writes fail.

mod schema;
mod sql;
mod writer;

pub use schema::MIGRATIONS;
use schema::{lock_file, prepare};
use sql::{
    all_accounts, all_moderation, keep_moderation, recent, register, search, set_hash, unregister,
};
pub use sql::{insert_all, since};
use writer::Writer;

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use chat_proto::{Name, NameKey, RoomKey, RoomName};
use rusqlite::Connection;
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::{Account, Stored, Unavailable};
use crate::moderation::{Change, Row};

/// Requests waiting for the store's thread; past this, lines are dropped and
/// counted. The store's thread gives way to the room, so under a flood the
/// lines wait here until the flood ends: W1's 100,000 lines fit, with room to
/// spare. Memory goes with what waits (about 250 bytes a line, 33 MB when
/// full), none while the store keeps up.
const QUEUE: usize = 131_072;
/// Lines written in one transaction at most.
const BATCH: usize = 8_192;
/// How long a batch waits for more lines after its first. Alone, a line is a
/// transaction of its own, about 60 µs of CPU (pages of the table, its two
/// indexes and a new full-text segment appended to the WAL); at W2's 1,000
/// lines a second, gathered 50 at a time, about 4 µs. Far inside the second
/// PRODUCT.md allows before SIGKILL; a read does not wait for it.
const GATHER: Duration = Duration::from_millis(50);
/// Lines kept in memory while writes fail; past this, the oldest are dropped.
const PENDING_MAX: usize = 200_000;
/// How often a failing write is tried again.
const RETRY: Duration = Duration::from_secs(1);
/// How long a stopping daemon keeps trying to write what is left.
const CLOSE_PATIENCE: Duration = Duration::from_secs(5);
/// At most one log line about failing writes per this period.
const FAILURE_LOG_PERIOD: Duration = Duration::from_secs(60);
/// Lines deleted for retention in one go, and how often retention runs.
const RETENTION_CHUNK: usize = 10_000;
const RETENTION_PERIOD: Duration = Duration::from_secs(3600);

/// Counters of the store, for the metrics endpoint.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Lines written to the database.
    pub written: AtomicU64,
    /// Transactions committed.
    pub batches: AtomicU64,
    /// Writes that failed (each is retried).
    pub write_failures: AtomicU64,
    /// Lines never written: the queue or the retry buffer was full.
    pub dropped: AtomicU64,
}

/// Work for the store's thread, given the connection and the retention cutoff.
type Task = Box<dyn FnOnce(&mut Connection, i64) + Send>;

/// Where a registered user was when they left, waiting to be written.
struct Departure {
    key: NameKey,
    rooms: String,
    at_ms: i64,
}

enum Job {
    Record(RoomName, Stored),
    Left(Departure),
    /// A read or an account change, answered through its own channel.
    Run(Task),
    Close,
}

/// The way to the store's thread: a channel that allocates only for the jobs
/// waiting in it (a bounded one would hold [`QUEUE`] slots from the start),
/// bounded by their count.
#[derive(Clone)]
struct Queue {
    jobs: Sender<Job>,
    waiting: Arc<AtomicUsize>,
}

impl Queue {
    /// Queues `job` unless [`QUEUE`] jobs wait already; never waits itself.
    fn offer(&self, job: Job) -> bool {
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= QUEUE {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        self.send_counted(job)
    }

    /// Queues `job` however many wait (the last one, [`Job::Close`]).
    fn push(&self, job: Job) -> bool {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        self.send_counted(job)
    }

    fn send_counted(&self, job: Job) -> bool {
        if self.jobs.send(job).is_ok() {
            return true;
        }
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        false
    }
}

/// The handle connection tasks use; the thread behind it owns the database.
pub struct LocalStore {
    queue: Queue,
    thread: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<StoreStats>,
    /// Every registered name, by key.
    accounts: Mutex<HashMap<NameKey, Account>>,
    /// The moderation rows read at start, until the hub takes them.
    moderation: Mutex<Vec<Row>>,
    /// Holds the file's lock while the daemon runs.
    _lock: Option<File>,
}

impl LocalStore {
    /// Opens (creating if needed) the database at `path`, or a private
    /// in-memory one for `:memory:`; the error names the file and the reason.
    pub fn open(path: &str, retain: Option<Duration>) -> Result<LocalStore, String> {
        let failed = |reason: String| format!("cannot open the database {path}: {reason}");
        let (conn, lock) = if path == ":memory:" {
            (Connection::open_in_memory().map_err(|e| failed(e.to_string()))?, None)
        } else {
            let lock = lock_file(path).map_err(failed)?;
            (Connection::open(path).map_err(|e| failed(e.to_string()))?, Some(lock))
        };
        prepare(&conn, path != ":memory:").map_err(failed)?;
        let accounts = all_accounts(&conn).map_err(|e| failed(e.to_string()))?;
        let moderation = all_moderation(&conn).map_err(|e| failed(e.to_string()))?;
        let mut store = Self::start(conn, lock, retain, accounts);
        store.moderation = Mutex::new(moderation);
        Ok(store)
    }

    /// Opens the file as the daemon does (checks, settings, schema) but
    /// without its lock or thread, for tools that work on a stopped daemon's file.
    pub fn open_for_tools(path: &str) -> Result<Connection, String> {
        let failed = |reason: String| format!("cannot open the database {path}: {reason}");
        let conn = Connection::open(path).map_err(|e| failed(e.to_string()))?;
        prepare(&conn, true).map_err(failed)?;
        Ok(conn)
    }

    fn start(
        conn: Connection,
        lock: Option<File>,
        retain: Option<Duration>,
        accounts: HashMap<NameKey, Account>,
    ) -> LocalStore {
        let (jobs, received) = std::sync::mpsc::channel();
        let queue = Queue { jobs, waiting: Arc::default() };
        let stats = Arc::new(StoreStats::default());
        let writer = Writer::new(conn, Arc::clone(&stats), retain);
        let waiting = Arc::clone(&queue.waiting);
        let thread = std::thread::Builder::new()
            .name("chat-store".to_owned())
            .spawn(move || writer.run(received, &waiting))
            .ok();
        if thread.is_none() {
            warn!("could not start the store's thread; history will not be kept");
        }
        let accounts = Mutex::new(accounts);
        let moderation = Mutex::default();
        LocalStore { queue, thread: Mutex::new(thread), stats, accounts, moderation, _lock: lock }
    }

    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    fn accounts(&self) -> std::sync::MutexGuard<'_, HashMap<NameKey, Account>> {
        self.accounts.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn account(&self, key: &NameKey) -> Option<Account> {
        self.accounts().get(key).cloned()
    }

    /// Registers `name` unless it is, once the row is written (the
    /// database, written by one thread in order, decides a race).
    pub async fn register(&self, name: &Name, hash: String) -> Result<bool, Unavailable> {
        if self.accounts().contains_key(&name.key()) {
            return Ok(false);
        }
        let (owned, stored_hash) = (name.clone(), hash.clone());
        if !self.run(move |conn, _| register(conn, &owned, &stored_hash)).await? {
            return Ok(false);
        }
        let account = Account { name: name.to_string(), hash, rooms: Vec::new(), left_at_ms: None };
        self.accounts().insert(name.key(), account);
        Ok(true)
    }

    /// Replaces the password hash, once written.
    pub async fn set_hash(&self, key: &NameKey, hash: String) -> Result<bool, Unavailable> {
        let (owned, stored_hash) = (key.clone(), hash.clone());
        if !self.run(move |conn, _| set_hash(conn, &owned, &stored_hash)).await? {
            return Ok(false);
        }
        if let Some(account) = self.accounts().get_mut(key) {
            account.hash = hash;
        }
        Ok(true)
    }

    /// Gives the name back, once the row is deleted.
    pub async fn unregister(&self, key: &NameKey) -> Result<bool, Unavailable> {
        let owned = key.clone();
        let removed = self.run(move |conn, _| unregister(conn, &owned)).await?;
        self.accounts().remove(key);
        Ok(removed)
    }

    /// The moderation rows read at start (once; empty after).
    pub fn take_moderation(&self) -> Vec<Row> {
        std::mem::take(&mut *self.moderation.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Keeps a moderation change, once written.
    pub async fn keep_moderation(&self, change: Change) -> Result<(), Unavailable> {
        self.run(move |conn, _| keep_moderation(conn, &change)).await
    }

    /// Where a registered user was when they left: known at once, written
    /// like a line (retried while writes fail).
    pub fn left(&self, key: &NameKey, rooms: String, at_ms: i64) {
        let mut accounts = self.accounts();
        let Some(account) = accounts.get_mut(key) else { return };
        account.rooms = rooms.split_whitespace().map(str::to_owned).collect();
        account.left_at_ms = Some(at_ms);
        let departure = Departure { key: key.clone(), rooms, at_ms };
        if !self.queue.offer(Job::Left(departure)) {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            warn!("the store is busy: a departure was not recorded");
        }
    }

    /// Hands a line to the store's thread; never waits.
    pub fn record(&self, room: &RoomName, stored: Stored) {
        if !self.queue.offer(Job::Record(room.clone(), stored)) {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub async fn recent(&self, room: &RoomKey, limit: usize) -> Result<Vec<Stored>, Unavailable> {
        let room = room.clone();
        self.run(move |conn, cutoff| recent(conn, &room, limit, cutoff)).await
    }

    pub async fn search(
        &self,
        room: &RoomKey,
        terms: Vec<Vec<String>>,
    ) -> Result<Vec<Stored>, Unavailable> {
        let room = room.clone();
        self.run(move |conn, cutoff| search(conn, &room, &terms, cutoff)).await
    }

    /// Runs `work` on the store's thread, after every line queued before it
    /// is written, and waits for its answer.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection, i64) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Unavailable> {
        let (reply, answer) = oneshot::channel();
        let task: Task = Box::new(move |conn, cutoff| {
            let _ = reply.send(work(conn, cutoff).map_err(|e| e.to_string()));
        });
        let busy = || Unavailable("the store is busy".to_owned());
        if !self.queue.offer(Job::Run(task)) {
            return Err(busy());
        }
        match answer.await {
            Ok(result) => result.map_err(Unavailable),
            Err(_) => Err(Unavailable("the store has stopped".to_owned())),
        }
    }

    /// Writes everything queued, then stops the thread and waits for it.
    pub async fn close(&self) {
        info!("store: writing what is queued before stopping");
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        let queue = self.queue.clone();
        let closed = tokio::task::spawn_blocking(move || {
            // The close waits behind every line already queued.
            let _ = queue.push(Job::Close);
            if let Some(thread) = thread {
                let _ = thread.join();
            }
        });
        if closed.await.is_err() {
            warn!("the store's thread did not stop cleanly");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Said;
    use crate::store::now_ms;

    fn line(text: &str) -> (RoomName, Stored) {
        let room = RoomName::parse("#lobby").expect("a valid room");
        (room, Stored { at_ms: now_ms(), said: Said::Announcement(text.to_owned()) })
    }

    fn found(conn: &Connection, word: &str) -> Vec<i64> {
        let mut query = conn
            .prepare("SELECT rowid FROM messages_text WHERE messages_text MATCH ?1 ORDER BY rowid")
            .expect("a search");
        let rows = query.query_map([word], |row| row.get(0)).expect("rows");
        rows.collect::<Result<_, _>>().expect("rowids")
    }

    /// FTS5 checks its index against the messages: a row missing from it,
    /// or in it twice, fails.
    fn index_matches_messages(conn: &Connection) {
        conn.execute(
            "INSERT INTO messages_text (messages_text, rank) VALUES ('integrity-check', 1)",
            [],
        )
        .expect("the full-text index matches the messages");
    }

    #[test]
    fn a_file_from_before_is_upgraded_and_every_row_is_indexed_once() {
        let mut conn = Connection::open_in_memory().expect("a database");
        // A file as the previous schema left it: its trigger indexed each row.
        for sql in &MIGRATIONS[..2] {
            conn.execute_batch(sql).expect("the old schema");
        }
        conn.pragma_update(None, "user_version", 2).expect("version 2");
        conn.execute_batch(
            "INSERT INTO messages (room, at, kind, text) VALUES
                ('lobby', 1, 'announce', 'old apple'), ('lobby', 2, 'announce', 'old pear')",
        )
        .expect("old rows");
        prepare(&conn, false).expect("brought up to date");
        let version: i64 =
            conn.pragma_query_value(None, "user_version", |r| r.get(0)).expect("a version");
        assert_eq!(version as usize, MIGRATIONS.len());

        insert_all(&mut conn, &[line("new apple"), line("new plum")]).expect("written");
        insert_all(&mut conn, &[line("apple again")]).expect("written");
        assert_eq!(found(&conn, "apple"), [1, 3, 5]);
        assert_eq!(found(&conn, "old"), [1, 2]);
        assert_eq!(found(&conn, "plum"), [4]);
        index_matches_messages(&conn);

        // Retention's deletions leave the index as they leave the rows.
        conn.execute("DELETE FROM messages WHERE id <= 3", []).expect("deleted");
        assert_eq!(found(&conn, "apple"), [5]);
        index_matches_messages(&conn);
    }

    #[test]
    fn rows_added_by_hand_are_indexed_with_the_next_batch_and_deleted_either_way() {
        let mut conn = Connection::open_in_memory().expect("a database");
        prepare(&conn, false).expect("a new database");
        let by_hand = |conn: &Connection, text: &str| {
            conn.execute(
                "INSERT INTO messages (room, at, kind, text) VALUES ('lobby', 1, 'announce', ?1)",
                [text],
            )
            .expect("a row added by hand")
        };
        insert_all(&mut conn, &[line("first apple")]).expect("written");
        by_hand(&conn, "apple by hand");
        by_hand(&conn, "deleted before it was indexed");
        conn.execute("DELETE FROM messages WHERE id = 3", []).expect("an unindexed row deleted");
        insert_all(&mut conn, &[line("apple in a batch")]).expect("written");
        assert_eq!(found(&conn, "apple"), [1, 2, 3]);
        index_matches_messages(&conn);

        // Everything deleted (all of it older than --retain-days): ids start again.
        conn.execute("DELETE FROM messages", []).expect("all deleted");
        insert_all(&mut conn, &[line("apple anew"), line("pear anew")]).expect("written");
        assert_eq!((found(&conn, "apple"), found(&conn, "pear")), (vec![1], vec![2]));
        index_matches_messages(&conn);
    }
}
