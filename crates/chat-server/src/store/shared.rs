//! The history every daemon on the backplane shares: one capped Redis list
//! per room (`chat:history:<room>`, newest first, at most [`CAP`] lines).
//!
//! A daemon appends the lines its own users say, in the same pipeline that
//! publishes them (so the list's order is each daemon's order), and any
//! daemon reads it for replay, `/history` and `/search`, which therefore
//! answer the same everywhere and survive any daemon's restart (and Redis's,
//! when Redis persists its data: see the README). `--retain-days` applies
//! when reading. Each entry is one line of text: `at<TAB>kind<TAB>theme<TAB>name<TAB>text`.

use std::time::Duration;

use chat_proto::RoomKey;

use super::{SEARCH_RESULTS, Said, Stored, Unavailable, cutoff_ms, matches_terms, parse_name};
use crate::backplane::Backplane;
use crate::room::Message;

/// Lines kept per room in Redis.
pub const CAP: usize = 10_000;
/// Lines read per round trip while searching.
const SEARCH_PAGE: usize = 1_000;
/// How long a read may take before the user is told the history is unavailable.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The pipeline commands that append one entry to a room's list and cap it.
pub fn append(pipe: &mut redis::Pipeline, key: &str, entry: &[u8]) {
    pipe.lpush(key, entry).ignore();
    pipe.ltrim(key, 0, CAP as isize - 1).ignore();
}

pub struct SharedHistory {
    backplane: Backplane,
    retain: Option<Duration>,
}

impl SharedHistory {
    pub fn new(backplane: Backplane, retain: Option<Duration>) -> Self {
        SharedHistory { backplane, retain }
    }

    /// Queued with the backplane's other traffic; never waits.
    pub fn record(&self, room: &RoomKey, stored: &Stored) {
        self.backplane.remember(room, encode(stored));
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
        let mut start = 0;
        while start < CAP && found.len() < SEARCH_RESULTS {
            let entries = self.read(room, start, SEARCH_PAGE).await?;
            let page = entries.len();
            let hits = entries
                .iter()
                .filter_map(|e| decode(e))
                .filter(|s| s.at_ms >= cutoff && matches_terms(s.text(), &terms));
            found.extend(hits.take(SEARCH_RESULTS - found.len()));
            if page < SEARCH_PAGE {
                break;
            }
            start += SEARCH_PAGE;
        }
        found.reverse();
        Ok(found)
    }

    /// Entries `start..start + count` of the room's list, newest first.
    async fn read(
        &self,
        room: &RoomKey,
        start: usize,
        count: usize,
    ) -> Result<Vec<Vec<u8>>, Unavailable> {
        let unreachable = || Unavailable("the backplane is not connected".to_owned());
        let mut conn = self.backplane.commands().ok_or_else(unreachable)?;
        let mut range = redis::cmd("LRANGE");
        let last = (start + count).saturating_sub(1);
        range.arg(self.backplane.history_key(room)).arg(start).arg(last);
        match tokio::time::timeout(READ_TIMEOUT, range.query_async(&mut conn)).await {
            Ok(Ok(entries)) => Ok(entries),
            Ok(Err(error)) => Err(Unavailable(error.to_string())),
            Err(_) => Err(Unavailable("Redis did not answer in time".to_owned())),
        }
    }
}

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
