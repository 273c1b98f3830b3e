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

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chat_proto::{Name, NameKey, RoomKey, RoomName};
use rusqlite::{Connection, params};
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::{Account, Stored, Unavailable, cutoff_ms, now_ms, parse_name};
use crate::event::{Message, Said};
use crate::priority::lower_this_threads_priority;

/// What `PRAGMA application_id` says in a chat-server database ("chat").
const APPLICATION_ID: i64 = 0x6368_6174;

/// Each entry brings the schema from version `index` to `index + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: every room's messages, with a full-text index for /search. `room`
    // is the room's key (unique ignoring case and look-alikes); `rooms`
    // gives each key the name it was first used with, for the `history` view.
    "CREATE TABLE rooms (key TEXT PRIMARY KEY, name TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        room TEXT NOT NULL,
        at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        name TEXT,
        theme INTEGER NOT NULL DEFAULT 0,
        text TEXT NOT NULL
    );
    CREATE INDEX messages_by_room ON messages (room, id);
    CREATE INDEX messages_by_time ON messages (at);
    CREATE VIRTUAL TABLE messages_text USING fts5 (
        text, content = 'messages', content_rowid = 'id',
        tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER messages_text_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_text (rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER messages_text_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_text (messages_text, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    CREATE VIEW history AS
        SELECT m.id, coalesce(r.name, m.room) AS room,
               strftime('%Y-%m-%d %H:%M:%S', m.at / 1000, 'unixepoch') AS time_utc,
               m.kind, m.name, m.text
        FROM messages AS m LEFT JOIN rooms AS r ON r.key = m.room;",
    // 2: registered names. `key` is the name's key (case and look-alikes
    // folded), `hash` an argon2id PHC string, `rooms` the rooms the owner
    // was in (space-separated names) and `left_at` when they last left.
    "CREATE TABLE accounts (
        key TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        rooms TEXT NOT NULL DEFAULT '',
        left_at INTEGER
    ) WITHOUT ROWID;",
    // 3: the full-text index is no longer kept by a trigger per row (about
    // 12 µs of CPU each): `insert_all` indexes each transaction's new rows
    // in one statement (about 2.5 µs a row). `messages_text_upto` says how
    // far the index goes: every message with an id up to `upto` is in it,
    // none after (rows already there were indexed by the old trigger). The
    // delete trigger takes out only indexed rows, since FTS5 reports a
    // corrupt index when told to delete a row it never had (a row added by
    // hand, say, until the next batch indexes it).
    "DROP TRIGGER messages_text_insert;
    DROP TRIGGER messages_text_delete;
    CREATE TABLE messages_text_upto (upto INTEGER NOT NULL);
    INSERT INTO messages_text_upto SELECT coalesce(max(id), 0) FROM messages;
    CREATE TRIGGER messages_text_delete AFTER DELETE ON messages
        WHEN old.id <= (SELECT upto FROM messages_text_upto) BEGIN
        INSERT INTO messages_text (messages_text, rowid, text) VALUES ('delete', old.id, old.text);
    END;",
];

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
        Ok(Self::start(conn, lock, retain, accounts))
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
        LocalStore { queue, thread: Mutex::new(thread), stats, accounts, _lock: lock }
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

/// Takes the lock that keeps a second daemon off the file.
fn lock_file(path: &str) -> Result<File, String> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| e.to_string())?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err("it is in use by another running chat-server".to_owned())
        }
        Err(std::fs::TryLockError::Error(error)) => Err(format!("cannot lock it: {error}")),
    }
}

/// Settings, a check that the file is ours, and the schema brought up to date.
fn prepare(conn: &Connection, on_disk: bool) -> Result<(), String> {
    let describe = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => "it is not a SQLite database".to_owned(),
        _ => e.to_string(),
    };
    conn.busy_timeout(Duration::from_secs(5)).map_err(describe)?;
    if on_disk {
        let mode: String =
            conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).map_err(describe)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!("cannot use write-ahead logging (journal mode stays {mode})"));
        }
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(describe)?;
    }
    let application: i64 =
        conn.pragma_query_value(None, "application_id", |row| row.get(0)).map_err(describe)?;
    if application != 0 && application != APPLICATION_ID {
        return Err(format!("it belongs to another program (application_id {application:#x})"));
    }
    migrate(conn).map_err(|e| match e {
        Migration::Newer(version) => format!(
            "it was written by a newer chat-server (schema version {version}; this one knows up to {})",
            MIGRATIONS.len()
        ),
        Migration::Failed(e) => describe(e),
    })
}

enum Migration {
    Newer(usize),
    Failed(rusqlite::Error),
}

impl From<rusqlite::Error> for Migration {
    fn from(e: rusqlite::Error) -> Self {
        Migration::Failed(e)
    }
}

/// Applies each migration the file has not had, one transaction each.
fn migrate(conn: &Connection) -> Result<(), Migration> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(Migration::Newer(version));
    }
    for (done, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let applied = conn
            .execute_batch(sql)
            .and_then(|()| conn.pragma_update(None, "application_id", APPLICATION_ID))
            .and_then(|()| conn.pragma_update(None, "user_version", done as i64 + 1));
        match applied {
            Ok(()) => conn.execute_batch("COMMIT")?,
            Err(error) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(error.into());
            }
        }
        info!(version = done + 1, "database schema brought up to date");
    }
    Ok(())
}

/// The store's thread: the connection, what waits to be written, and when
/// retention runs next.
struct Writer {
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
    fn new(conn: Connection, stats: Arc<StoreStats>, retain: Option<Duration>) -> Writer {
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

    fn run(mut self, queue: Receiver<Job>, waiting: &AtomicUsize) {
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

/// The last `limit` lines of `room` since `cutoff`, oldest first.
fn recent(
    conn: &Connection,
    room: &RoomKey,
    limit: usize,
    cutoff: i64,
) -> rusqlite::Result<Vec<Stored>> {
    let mut statement = conn.prepare_cached(
        "SELECT at, kind, name, theme, text FROM messages
             WHERE room = ?1 AND at >= ?2 ORDER BY id DESC LIMIT ?3",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement.query_map(params![room.as_str(), cutoff, limit], read_row)?;
    let mut lines: Vec<Stored> = rows.filter_map(Result::transpose).collect::<Result<_, _>>()?;
    lines.reverse();
    Ok(lines)
}

/// The latest lines of `room` since `cutoff` with every term, oldest first.
fn search(
    conn: &Connection,
    room: &RoomKey,
    terms: &[Vec<String>],
    cutoff: i64,
) -> rusqlite::Result<Vec<Stored>> {
    let mut statement = conn.prepare_cached(
        "SELECT m.at, m.kind, m.name, m.theme, m.text
             FROM messages_text JOIN messages AS m ON m.id = messages_text.rowid
             WHERE messages_text MATCH ?1 AND m.room = ?2 AND m.at >= ?3
             ORDER BY messages_text.rowid DESC LIMIT ?4",
    )?;
    let limit = super::SEARCH_RESULTS as i64;
    let rows =
        statement.query_map(params![fts_query(terms), room.as_str(), cutoff, limit], read_row)?;
    let mut lines: Vec<Stored> = rows.filter_map(Result::transpose).collect::<Result<_, _>>()?;
    lines.reverse();
    Ok(lines)
}

/// Every registered name, read once at start.
fn all_accounts(conn: &Connection) -> rusqlite::Result<HashMap<NameKey, Account>> {
    let mut query = conn.prepare("SELECT key, name, hash, rooms, left_at FROM accounts")?;
    let rows = query.query_map([], |row| {
        let key: String = row.get(0)?;
        let rooms: String = row.get(3)?;
        let account = Account {
            name: row.get(1)?,
            hash: row.get(2)?,
            rooms: rooms.split_whitespace().map(str::to_owned).collect(),
            left_at_ms: row.get(4)?,
        };
        Ok((NameKey::of(&key), account))
    })?;
    rows.collect()
}

/// Registers a name unless it already is; true when it was registered now.
fn register(conn: &Connection, name: &Name, hash: &str) -> rusqlite::Result<bool> {
    let added = conn.execute(
        "INSERT OR IGNORE INTO accounts (key, name, hash, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![name.key().as_str(), name.as_str(), hash, now_ms()],
    )?;
    Ok(added == 1)
}

fn set_hash(conn: &Connection, key: &NameKey, hash: &str) -> rusqlite::Result<bool> {
    let changed =
        conn.execute("UPDATE accounts SET hash = ?2 WHERE key = ?1", params![key.as_str(), hash])?;
    Ok(changed == 1)
}

fn unregister(conn: &Connection, key: &NameKey) -> rusqlite::Result<bool> {
    Ok(conn.execute("DELETE FROM accounts WHERE key = ?1", [key.as_str()])? == 1)
}

/// Where a registered user was when they left, and when.
fn left(conn: &Connection, key: &NameKey, rooms: &str, at_ms: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE accounts SET rooms = ?2, left_at = ?3 WHERE key = ?1",
        params![key.as_str(), rooms, at_ms],
    )?;
    Ok(())
}

/// How many lines `room` got after `after_ms`, and the last `limit` of them.
pub fn since(
    conn: &Connection,
    room: &RoomKey,
    after_ms: i64,
    limit: usize,
) -> rusqlite::Result<(u64, Vec<Stored>)> {
    // Lines are numbered in the order they were said: find the first one
    // after the time through the time index, then count the room's from it.
    let count: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM messages WHERE room = ?1 AND id >= coalesce(
                (SELECT id FROM messages WHERE at > ?2 ORDER BY at LIMIT 1), 9e18)",
        )?
        .query_row(params![room.as_str(), after_ms], |row| row.get(0))?;
    let mut lines = recent(conn, room, limit.min(count as usize), after_ms + 1)?;
    lines.retain(|line| line.at_ms > after_ms);
    Ok((count as u64, lines))
}

/// Writes lines in one transaction and adds them to the full-text index in
/// one statement, with any row added by hand since the last batch (the
/// store's thread does; so do tools that fill a stopped daemon's file, such
/// as the history benchmark's).
pub fn insert_all<'a>(
    conn: &mut Connection,
    lines: impl IntoIterator<Item = &'a (RoomName, Stored)>,
) -> rusqlite::Result<()> {
    let transaction = conn.transaction()?;
    {
        let mut insert = transaction.prepare_cached(
            "INSERT INTO messages (room, at, kind, name, theme, text) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut name_room = transaction
            .prepare_cached("INSERT OR IGNORE INTO rooms (key, name) VALUES (?1, ?2)")?;
        // Lines come in runs from one room: its key is worked out once per run.
        let mut current: Option<(&RoomName, RoomKey)> = None;
        let mut added: Option<(i64, i64)> = None;
        for (room_name, stored) in lines {
            let room = match &current {
                Some((name, key)) if *name == room_name => key,
                _ => {
                    let key = room_name.key();
                    name_room.execute(params![key.as_str(), room_name.as_str()])?;
                    &current.insert((room_name, key)).1
                }
            };
            let (kind, speaker, theme) = match &stored.said {
                Said::Message(m) => {
                    (if m.action { "me" } else { "say" }, Some(m.name.as_str()), m.theme as i64)
                }
                Said::Announcement(_) => ("announce", None, 0),
            };
            let text = stored.text();
            insert.execute(params![room.as_str(), stored.at_ms, kind, speaker, theme, text])?;
            // The transaction holds the write lock from its first insert, so
            // its rows are numbered first..=last with nobody else's between.
            let id = transaction.last_insert_rowid();
            added = Some(added.map_or((id, id), |(first, _)| (first, id)));
        }
        if let Some((first, last)) = added {
            // From where the index stops, or from the first new row when
            // that is lower (every row after the index's end was deleted,
            // and ids were given out again).
            transaction
                .prepare_cached(
                    "INSERT INTO messages_text (rowid, text) SELECT id, text FROM messages
                         WHERE id > min((SELECT upto FROM messages_text_upto), ?1 - 1)",
                )?
                .execute([first])?;
            transaction
                .prepare_cached("UPDATE messages_text_upto SET upto = ?1")?
                .execute([last])?;
        }
    }
    transaction.commit()
}

/// One row as a [`Stored`]; `None` for a row this version cannot show.
fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Stored>> {
    let at_ms: i64 = row.get(0)?;
    let kind: String = row.get(1)?;
    let name: Option<String> = row.get(2)?;
    let theme: i64 = row.get(3)?;
    let text: String = row.get(4)?;
    let said = match (kind.as_str(), name.as_deref().and_then(parse_name)) {
        ("announce", _) => Said::Announcement(text),
        (kind @ ("say" | "me"), Some(name)) => Said::Message(Message {
            name,
            theme: usize::try_from(theme).unwrap_or(0),
            text,
            action: kind == "me",
        }),
        _ => return Ok(None),
    };
    Ok(Some(Stored { at_ms, said }))
}

/// An FTS5 query that needs every term, each as a phrase of its words; the
/// words are letters and digits only, so nothing in them is FTS syntax.
fn fts_query(terms: &[Vec<String>]) -> String {
    let phrases: Vec<String> =
        terms.iter().map(|words| format!("\"{}\"", words.join(" "))).collect();
    phrases.join(" AND ")
}

#[cfg(test)]
mod tests {
    use super::*;

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
