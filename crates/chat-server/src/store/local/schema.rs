//! The database file as the daemon keeps it: its lock (a second daemon
//! stops at start), its settings (WAL, `synchronous=NORMAL`), its identity
//! (`application_id`) and its schema, brought up to date by [`MIGRATIONS`]
//! in order (`user_version`); a newer file is refused.

use std::fs::{File, OpenOptions};
use std::time::Duration;

use rusqlite::Connection;
use tracing::info;

/// What `PRAGMA application_id` says in a chat-server database ("chat").
pub(super) const APPLICATION_ID: i64 = 0x6368_6174;

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
    // 4: moderation (see `crate::moderation`): one row per ban, mute, room
    // owner, room operator and topic. `room_key` is empty for the whole
    // server; `target_key` is a name's key, an address range, or empty for
    // what a room has one of (its owner, its topic). `until` is when a ban
    // or mute ends (milliseconds since 1970; NULL until lifted), so an
    // expiry holds across restarts.
    "CREATE TABLE moderation (
        kind TEXT NOT NULL,
        room_key TEXT NOT NULL,
        target_key TEXT NOT NULL,
        room TEXT NOT NULL,
        target TEXT NOT NULL,
        by TEXT NOT NULL,
        reason TEXT NOT NULL,
        set_at INTEGER NOT NULL,
        until INTEGER,
        PRIMARY KEY (kind, room_key, target_key)
    ) WITHOUT ROWID;",
];

/// Takes the lock that keeps a second daemon off the file.
pub(super) fn lock_file(path: &str) -> Result<File, String> {
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
pub(super) fn prepare(conn: &Connection, on_disk: bool) -> Result<(), String> {
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

pub(super) enum Migration {
    Newer(usize),
    Failed(rusqlite::Error),
}

impl From<rusqlite::Error> for Migration {
    fn from(e: rusqlite::Error) -> Self {
        Migration::Failed(e)
    }
}

/// Applies each migration the file has not had, one transaction each.
pub(super) fn migrate(conn: &Connection) -> Result<(), Migration> {
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
