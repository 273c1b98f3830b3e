//! The statements: reading a room's lines, searching them through the
//! FTS5 index, the accounts table, what a returning owner missed, and
//! writing lines (with their index entries) in one transaction.

use std::collections::HashMap;

use chat_proto::{Name, NameKey, RoomKey, RoomName};
use rusqlite::{Connection, params};

use crate::event::{Message, Said};
use crate::moderation::{Change, Row};
use crate::store::{Account, SEARCH_RESULTS, Stored, now_ms, parse_name};

/// The last `limit` lines of `room` since `cutoff`, oldest first.
pub(super) fn recent(
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
pub(super) fn search(
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
    let limit = SEARCH_RESULTS as i64;
    let rows =
        statement.query_map(params![fts_query(terms), room.as_str(), cutoff, limit], read_row)?;
    let mut lines: Vec<Stored> = rows.filter_map(Result::transpose).collect::<Result<_, _>>()?;
    lines.reverse();
    Ok(lines)
}

/// Every registered name, read once at start.
pub(super) fn all_accounts(conn: &Connection) -> rusqlite::Result<HashMap<NameKey, Account>> {
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

/// Every moderation row (bans, mutes, owners, operators, topics), read once at start.
pub(super) fn all_moderation(conn: &Connection) -> rusqlite::Result<Vec<Row>> {
    let mut query = conn.prepare(
        "SELECT kind, room_key, target_key, room, target, by, reason, set_at, until FROM moderation",
    )?;
    let rows = query.query_map([], |row| {
        Ok(Row {
            kind: row.get(0)?,
            room_key: row.get(1)?,
            target_key: row.get(2)?,
            room: row.get(3)?,
            target: row.get(4)?,
            by: row.get(5)?,
            reason: row.get(6)?,
            set_ms: row.get(7)?,
            until_ms: row.get(8)?,
        })
    })?;
    rows.collect()
}

/// Keeps a moderation change: a row put (replacing its like) or removed.
pub(super) fn keep_moderation(conn: &Connection, change: &Change) -> rusqlite::Result<()> {
    match change {
        Change::Put(row) => conn.execute(
            "INSERT OR REPLACE INTO moderation
                (kind, room_key, target_key, room, target, by, reason, set_at, until)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                row.kind,
                row.room_key,
                row.target_key,
                row.room,
                row.target,
                row.by,
                row.reason,
                row.set_ms,
                row.until_ms
            ],
        )?,
        Change::Remove(row) => conn.execute(
            "DELETE FROM moderation WHERE kind = ?1 AND room_key = ?2 AND target_key = ?3",
            params![row.kind, row.room_key, row.target_key],
        )?,
    };
    Ok(())
}

/// Registers a name unless it already is; true when it was registered now.
pub(super) fn register(conn: &Connection, name: &Name, hash: &str) -> rusqlite::Result<bool> {
    let added = conn.execute(
        "INSERT OR IGNORE INTO accounts (key, name, hash, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![name.key().as_str(), name.as_str(), hash, now_ms()],
    )?;
    Ok(added == 1)
}

pub(super) fn set_hash(conn: &Connection, key: &NameKey, hash: &str) -> rusqlite::Result<bool> {
    let changed =
        conn.execute("UPDATE accounts SET hash = ?2 WHERE key = ?1", params![key.as_str(), hash])?;
    Ok(changed == 1)
}

pub(super) fn unregister(conn: &Connection, key: &NameKey) -> rusqlite::Result<bool> {
    Ok(conn.execute("DELETE FROM accounts WHERE key = ?1", [key.as_str()])? == 1)
}

/// Where a registered user was when they left, and when.
pub(super) fn left(
    conn: &Connection,
    key: &NameKey,
    rooms: &str,
    at_ms: i64,
) -> rusqlite::Result<()> {
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
pub(super) fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Stored>> {
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
pub(super) fn fts_query(terms: &[Vec<String>]) -> String {
    let phrases: Vec<String> =
        terms.iter().map(|words| format!("\"{}\"", words.join(" "))).collect();
    phrases.join(" AND ")
}
