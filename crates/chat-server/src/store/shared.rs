//! The history every daemon on the backplane shares: one capped Redis list
//! per room (`chat:history:<room>`, newest first, at most [`CAP`] lines).
//!
//! A daemon appends the lines its own users say, in the same pipeline that
//! publishes them (so the list's order is each daemon's order), and any
//! daemon reads it for replay, `/history` and `/search`, which therefore
//! answer the same everywhere and survive any daemon's restart (and Redis's,
//! when Redis persists its data: see the README). `--retain-days` applies
//! when reading. Each entry is one line of text: `at<TAB>kind<TAB>theme<TAB>name<TAB>text`.
//!
//! Registered names are hashes `chat:account:<key>` (fields `name`, `hash`,
//! `created_at`, `rooms`, `left_at`), so a name registered on one daemon
//! is protected on all of them.
//!
//! Moderation (bans, mutes, owners, room operators, topics) is one hash,
//! `chat:moderation`: a field per row's identity (`kind`, room key, target
//! key), its value the row as [`Row::encode`] spells it, and the field
//! `~` that every write sets, so a hash that is missing means Redis holds
//! no record (a new Redis, or one restarted without its data) rather than
//! that nothing is banned. A daemon reads it all at start and after an
//! outage; rows that have expired are dropped from it then.

use std::time::Duration;

use std::collections::HashMap;

use chat_proto::{Name, NameKey, RoomKey};

use crate::accounts;

use super::{
    Account, SEARCH_RESULTS, Stored, Unavailable, cutoff_ms, matches_terms, now_ms, parse_name,
};
use crate::event::{Message, Said};
use crate::moderation::{Change, Row};
use crate::redis_link::{Queued, RedisLink};

/// Lines kept per room in Redis.
pub const CAP: usize = 10_000;
/// Lines read per round trip while searching.
const SEARCH_PAGE: usize = 1_000;
/// How long a read may take before the user is told the history is unavailable.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The hash of every daemon's moderation rows.
const MODERATION_KEY: &str = "chat:moderation";
/// The field every write of that hash sets: the hash is there once kept.
const KEPT: &str = "~";

/// The Redis key of a room's history.
fn history_key(room: &RoomKey) -> String {
    format!("chat:history:{}", room.as_str())
}

pub struct SharedHistory {
    link: RedisLink,
    retain: Option<Duration>,
}

impl SharedHistory {
    pub fn new(link: RedisLink, retain: Option<Duration>) -> Self {
        SharedHistory { link, retain }
    }

    /// Queued on the link with the backplane's traffic (so before the
    /// event that announces the line); never waits.
    pub fn record(&self, room: &RoomKey, stored: &Stored) {
        let queued = Queued::Prepend { key: history_key(room), entry: encode(stored), cap: CAP };
        self.link.send(queued);
    }

    pub async fn recent(&self, room: &RoomKey, limit: usize) -> Result<Vec<Stored>, Unavailable> {
        let entries = self.read(room, 0, limit).await?;
        let cutoff = cutoff_ms(self.retain);
        let mut lines: Vec<Stored> =
            entries.iter().filter_map(|e| decode(e)).filter(|s| s.at_ms >= cutoff).collect();
        lines.reverse();
        Ok(lines)
    }

    pub async fn search(
        &self,
        room: &RoomKey,
        terms: Vec<Vec<String>>,
    ) -> Result<Vec<Stored>, Unavailable> {
        let cutoff = cutoff_ms(self.retain);
        let mut found = Vec::new();
        self.scan(room, |stored| {
            if stored.at_ms >= cutoff && matches_terms(stored.text(), &terms) {
                found.push(stored);
            }
            found.len() < SEARCH_RESULTS
        })
        .await?;
        found.reverse();
        Ok(found)
    }

    /// How many lines `room` got after `after_ms` (within the list's
    /// [`CAP`]), and the last `limit` of them.
    pub async fn since(
        &self,
        room: &RoomKey,
        after_ms: i64,
        limit: usize,
    ) -> Result<(u64, Vec<Stored>), Unavailable> {
        let mut count = 0;
        let mut latest = Vec::new();
        self.scan(room, |stored| {
            if stored.at_ms <= after_ms {
                return false;
            }
            count += 1;
            if latest.len() < limit {
                latest.push(stored);
            }
            true
        })
        .await?;
        latest.reverse();
        Ok((count, latest))
    }

    /// Hands the room's lines to `visit`, newest first, a page at a time,
    /// until it returns false or the list ends.
    async fn scan(
        &self,
        room: &RoomKey,
        mut visit: impl FnMut(Stored) -> bool,
    ) -> Result<(), Unavailable> {
        let mut start = 0;
        while start < CAP {
            let entries = self.read(room, start, SEARCH_PAGE).await?;
            for stored in entries.iter().filter_map(|e| decode(e)) {
                if !visit(stored) {
                    return Ok(());
                }
            }
            if entries.len() < SEARCH_PAGE {
                return Ok(());
            }
            start += SEARCH_PAGE;
        }
        Ok(())
    }

    /// Entries `start..start + count` of the room's list, newest first.
    async fn read(
        &self,
        room: &RoomKey,
        start: usize,
        count: usize,
    ) -> Result<Vec<Vec<u8>>, Unavailable> {
        let mut range = redis::cmd("LRANGE");
        let last = (start + count).saturating_sub(1);
        range.arg(history_key(room)).arg(start).arg(last);
        self.query(range).await
    }

    async fn query<T: redis::FromRedisValue>(&self, command: redis::Cmd) -> Result<T, Unavailable> {
        self.link.query(command, READ_TIMEOUT).await.map_err(Unavailable)
    }
}

impl SharedHistory {
    fn account_key(key: &NameKey) -> String {
        format!("chat:account:{}", key.as_str())
    }

    pub async fn account(&self, key: &NameKey) -> Result<Option<Account>, Unavailable> {
        let mut command = redis::cmd("HGETALL");
        command.arg(Self::account_key(key));
        let fields: HashMap<String, String> = self.query(command).await?;
        let (Some(name), Some(hash)) = (fields.get("name"), fields.get("hash")) else {
            return Ok(None);
        };
        Ok(Some(Account {
            name: name.clone(),
            hash: hash.clone(),
            rooms: fields
                .get("rooms")
                .map(|r| r.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
            left_at_ms: fields.get("left_at").and_then(|at| at.parse().ok()),
        }))
    }

    pub async fn register(&self, name: &Name, hash: &str) -> Result<bool, Unavailable> {
        let mut command = redis::cmd("EVAL");
        command
            .arg(REGISTER_SCRIPT)
            .arg(1)
            .arg(Self::account_key(&name.key()))
            .arg(name.as_str())
            .arg(hash)
            .arg(now_ms());
        let added: i64 = self.query(command).await?;
        Ok(added == 1)
    }

    pub async fn set_hash(&self, key: &NameKey, hash: &str) -> Result<bool, Unavailable> {
        let mut command = redis::cmd("EVAL");
        command.arg(UPDATE_SCRIPT).arg(1).arg(Self::account_key(key)).arg("hash").arg(hash);
        let changed: i64 = self.query(command).await?;
        Ok(changed == 1)
    }

    pub async fn unregister(&self, key: &NameKey) -> Result<bool, Unavailable> {
        let mut command = redis::cmd("DEL");
        command.arg(Self::account_key(key));
        let deleted: i64 = self.query(command).await?;
        Ok(deleted == 1)
    }

    /// Records where a registered user was when they left; never waits.
    pub fn left(&self, key: NameKey, rooms: String, at_ms: i64) {
        let link = self.link.clone();
        tokio::spawn(async move {
            let Some(mut conn) = link.commands() else { return };
            let mut command = redis::cmd("EVAL");
            command
                .arg(LEFT_SCRIPT)
                .arg(1)
                .arg(SharedHistory::account_key(&key))
                .arg(rooms)
                .arg(at_ms);
            let recorded =
                tokio::time::timeout(READ_TIMEOUT, command.query_async::<i64>(&mut conn));
            if !matches!(recorded.await, Ok(Ok(_))) {
                tracing::warn!("could not record a registered user's departure in Redis");
            }
        });
    }
}

impl SharedHistory {
    /// Every moderation row in force (one that has expired is dropped from
    /// the hash); `None` when Redis holds no record at all.
    pub async fn moderation_rows(&self) -> Result<Option<Vec<Row>>, Unavailable> {
        let mut command = redis::cmd("HGETALL");
        command.arg(MODERATION_KEY);
        let fields: HashMap<String, String> = self.query(command).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let now = now_ms();
        let mut rows = Vec::with_capacity(fields.len());
        let mut stale = Vec::new();
        for (identity, value) in fields.into_iter().filter(|(field, _)| field != KEPT) {
            match Row::decode(&value) {
                Ok(row) if row.until_ms.is_none_or(|until| until > now) => rows.push(row),
                Ok(_) => stale.push(identity),
                Err(error) => {
                    tracing::warn!(%error, identity, "ignored a moderation row in Redis");
                }
            }
        }
        if !stale.is_empty() {
            let mut command = redis::cmd("HDEL");
            command.arg(MODERATION_KEY).arg(stale);
            if let Err(error) = self.query::<i64>(command).await {
                tracing::warn!(%error, "could not drop expired moderation rows from Redis");
            }
        }
        Ok(Some(rows))
    }

    /// Keeps a moderation change in the shared hash, once Redis has it.
    pub async fn keep_moderation(&self, change: &Change) -> Result<(), Unavailable> {
        let mut command = match change {
            Change::Put(_) => redis::cmd("HSET"),
            Change::Remove(_) => redis::cmd("HDEL"),
        };
        command.arg(MODERATION_KEY);
        if let Change::Put(_) = change {
            command.arg(KEPT).arg("1");
        }
        command.arg(change.row().identity());
        if let Change::Put(row) = change {
            command.arg(row.encode());
        }
        self.query::<i64>(command).await.map(drop)
    }

    /// Gives a Redis that lost its record these rows, in one write, so
    /// no daemon reads only some of them.
    pub async fn give_back_moderation(&self, rows: &[Row]) -> Result<(), Unavailable> {
        let mut command = redis::cmd("HSET");
        command.arg(MODERATION_KEY).arg(KEPT).arg("1");
        for row in rows {
            command.arg(row.identity()).arg(row.encode());
        }
        self.query::<i64>(command).await.map(drop)
    }

    fn login_key(key: &NameKey) -> String {
        format!("chat:login:{}", key.as_str())
    }

    /// Reserves the next password attempt on `key` across every daemon
    /// (the schedule of [`crate::accounts::wait_after`]); returns how long
    /// this attempt waits for its turn.
    pub async fn reserve_login(&self, key: &NameKey) -> Result<Duration, Unavailable> {
        let mut command = redis::cmd("EVAL");
        command
            .arg(LOGIN_SCRIPT)
            .arg(1)
            .arg(Self::login_key(key))
            .arg(now_ms())
            .arg(accounts::FREE_ATTEMPTS)
            .arg(accounts::FIRST_WAIT.as_millis() as u64)
            .arg(accounts::MAX_WAIT.as_millis() as u64)
            .arg(accounts::FORGET_AFTER.as_millis() as u64);
        let wait_ms: u64 = self.query(command).await?;
        Ok(Duration::from_millis(wait_ms))
    }

    /// The right password: the name's record of failures goes, everywhere.
    pub async fn clear_login(&self, key: &NameKey) -> Result<(), Unavailable> {
        let mut command = redis::cmd("DEL");
        command.arg(Self::login_key(key));
        self.query::<i64>(command).await.map(drop)
    }
}

/// One attempt on a name: counts it as a failure (until cleared), works out
/// when it may be checked and when the next may, and returns this one's
/// wait in milliseconds. ARGV: now, free attempts, first wait, longest
/// wait, how long a record outlives its last attempt (all in ms but the count).
const LOGIN_SCRIPT: &str = "local now = tonumber(ARGV[1]) \
    local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0') + 1 \
    local at = math.max(tonumber(redis.call('HGET', KEYS[1], 'next_at') or '0'), now) \
    local wait = 0 \
    if failures >= tonumber(ARGV[2]) then \
      wait = math.min(tonumber(ARGV[3]) * 2 ^ math.min(failures - tonumber(ARGV[2]), 5), tonumber(ARGV[4])) \
    end \
    redis.call('HSET', KEYS[1], 'failures', failures, 'next_at', at + wait) \
    redis.call('PEXPIRE', KEYS[1], at + wait - now + tonumber(ARGV[5])) \
    return at - now";

/// Adds an account unless the key exists: 1 when added.
const REGISTER_SCRIPT: &str = "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end \
    redis.call('HSET', KEYS[1], 'name', ARGV[1], 'hash', ARGV[2], 'created_at', ARGV[3]) return 1";
/// Sets one field of an existing account: 1 when it exists.
const UPDATE_SCRIPT: &str = "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end \
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) return 1";
/// Records rooms and time of leaving on an existing account.
const LEFT_SCRIPT: &str = "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end \
    redis.call('HSET', KEYS[1], 'rooms', ARGV[1], 'left_at', ARGV[2]) return 1";

fn encode(stored: &Stored) -> Vec<u8> {
    let (kind, theme, name) = match &stored.said {
        Said::Message(m) => (if m.action { "me" } else { "say" }, m.theme, m.name.as_str()),
        Said::Announcement(_) => ("announce", 0, ""),
    };
    format!("{}\t{kind}\t{theme}\t{name}\t{}", stored.at_ms, stored.text()).into_bytes()
}

/// `None` for an entry this version cannot read.
fn decode(entry: &[u8]) -> Option<Stored> {
    let entry = std::str::from_utf8(entry).ok()?;
    let mut fields = entry.splitn(5, '\t');
    let at_ms = fields.next()?.parse().ok()?;
    let kind = fields.next()?;
    let theme = fields.next()?.parse().ok()?;
    let name = fields.next()?;
    let text = fields.next()?.to_owned();
    let said = match kind {
        "announce" => Said::Announcement(text),
        "say" | "me" => {
            Said::Message(Message { name: parse_name(name)?, theme, text, action: kind == "me" })
        }
        _ => return None,
    };
    Some(Stored { at_ms, said })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_proto::Name;

    #[test]
    fn entries_read_back_as_written() {
        let name = Name::parse("alice").expect("valid");
        for said in [
            Said::Message(Message { name, theme: 3, text: "tabs\tand all".into(), action: true }),
            Said::Announcement("maintenance at noon".into()),
        ] {
            let stored = Stored { at_ms: 1_796_029_979_999, said };
            assert_eq!(decode(&encode(&stored)), Some(stored));
        }
        assert_eq!(decode(b"not an entry"), None);
    }
}
