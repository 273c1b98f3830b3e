//! The slow reader (`--slow-reader`, W5): one more client that joins and then never reads while
//! the run goes on, so the server must bound what it queues for it. At the very end it reads what
//! it was sent, for at most [`SLOW_READ_LIMIT`], and reports how many messages got through, what
//! the server said it missed, and whether the server closed it.

use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::time::Instant;

use super::Plan;
use super::account::{MissedNotices, Shared};
use super::client::arrival;
use crate::connect::connect;
use crate::metrics::{now_nanos, seconds_between};
use crate::protocol::Joined;
use crate::wire::TokenFinder;

/// How long the slow reader is read at the end, at most, and the gap that ends it sooner.
const SLOW_READ_LIMIT: Duration = Duration::from_secs(20);
const SLOW_READ_GAP: Duration = Duration::from_secs(1);

/// What the client that never read had been sent, read at the very end.
#[derive(Debug, Default)]
pub struct SlowReport {
    pub tokens: u64,
    pub missed: MissedNotices,
    /// How its connection ended, if the server closed it.
    pub ended: Option<String>,
    pub read_s: f64,
}

/// Joins the slow reader on the first daemon; nothing reads it until [`read_slow_reader`].
pub async fn join_slow_reader(plan: &Plan) -> Result<Joined> {
    let stream = connect(plan.servers[0], None, false).await?;
    let name = format!("{}{}slow", plan.names, plan.run);
    plan.protocol.join(stream, &name, &plan.join).await.context("the slow reader could not join")
}

/// Reads all the slow reader was sent until it goes quiet, the server closes it, or the limit.
pub async fn read_slow_reader(joined: Joined, shared: &Shared) -> SlowReport {
    let Joined { mut reader, writer, .. } = joined;
    let mut report = SlowReport::default();
    let started = now_nanos();
    let deadline = Instant::now() + SLOW_READ_LIMIT;
    while Instant::now() < deadline {
        let Ok(read) = tokio::time::timeout(SLOW_READ_GAP, reader.fill()).await else {
            break;
        };
        if let Err(why) = arrival(read) {
            report.ended = Some(why);
            break;
        }
        while let Some(line) = reader.next_line() {
            if TokenFinder.find(line).is_some_and(|t| t.tag == shared.tag) {
                report.tokens += 1;
            } else if let Some(count) = shared.protocol.missed_count(line) {
                report.missed.note(count, line);
            }
        }
    }
    drop(writer);
    report.read_s = seconds_between(started, now_nanos());
    report
}
