//! Churn (`--churn`): while the senders run, extra chat clients connect, join, read for
//! `--churn-linger`, and leave, alternately with `/quit` and by simply closing, so that a run
//! measures delivery while the room's membership keeps changing.
//!
//! Bounded by the sending phase (and `--max-send-time`) and by [`CHURN_IN_FLIGHT`] clients at
//! once; a tick that finds that many still in flight is skipped and counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};

use super::Plan;
use super::account::Shared;
use crate::connect::{connect, spread_source};
use crate::protocol::Joined;

/// Churning clients connecting, lingering or leaving at once, at most.
const CHURN_IN_FLIGHT: usize = 256;
/// How long a churning client may take to connect and join, and to be let go.
const CHURN_STEP_LIMIT: Duration = Duration::from_secs(10);

/// What the churning clients did, counted as they go.
#[derive(Debug, Default)]
struct ChurnCounts {
    started: AtomicU64,
    joined: AtomicU64,
    left: AtomicU64,
    failed: AtomicU64,
    /// Ticks skipped because too many churning clients were still in flight.
    skipped: AtomicU64,
    first_error: Mutex<Option<String>>,
}

/// What the churning clients did, once they are done.
#[derive(Debug, Clone, Default)]
pub struct ChurnReport {
    pub started: u64,
    pub joined: u64,
    pub left: u64,
    pub failed: u64,
    pub skipped: u64,
    pub first_error: Option<String>,
}

impl ChurnCounts {
    fn snapshot(&self) -> ChurnReport {
        ChurnReport {
            started: self.started.load(Ordering::Relaxed),
            joined: self.joined.load(Ordering::Relaxed),
            left: self.left.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            first_error: self.first_error.lock().ok().and_then(|e| e.clone()),
        }
    }

    fn note_failure(&self, error: &anyhow::Error) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert_with(|| format!("{error:#}"));
        }
    }
}

/// The churn of a run, running in the background.
pub struct Churn {
    task: JoinHandle<()>,
    counts: Arc<ChurnCounts>,
}

impl Churn {
    /// Starts churning if the plan asks for it.
    pub fn start(plan: &Plan, shared: &Arc<Shared>, stop: watch::Receiver<bool>) -> Option<Churn> {
        (plan.churn > 0.0).then(|| {
            let counts = Arc::new(ChurnCounts::default());
            let task =
                tokio::spawn(churn(plan.clone(), Arc::clone(shared), Arc::clone(&counts), stop));
            Churn { task, counts }
        })
    }

    /// Once the run has stopped: waits a bounded time for the last clients to leave.
    pub async fn finish(self) -> ChurnReport {
        let _ = tokio::time::timeout(CHURN_STEP_LIMIT, self.task).await;
        self.counts.snapshot()
    }
}

async fn churn(
    plan: Plan,
    shared: Arc<Shared>,
    counts: Arc<ChurnCounts>,
    mut stop: watch::Receiver<bool>,
) {
    let period = Duration::from_secs_f64(1.0 / plan.churn);
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let limit = (plan.churn * plan.max_send_time.as_secs_f64()).ceil() as u64;
    let plan = Arc::new(plan);
    let mut running = JoinSet::new();
    let mut k = 0u64;
    while k < limit && shared.senders_pending.load(Ordering::Acquire) > 0 {
        tokio::select! {
            _ = stop.changed() => break,
            Some(_) = running.join_next(), if !running.is_empty() => continue,
            _ = ticks.tick() => {}
        }
        if running.len() >= CHURN_IN_FLIGHT {
            counts.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        counts.started.fetch_add(1, Ordering::Relaxed);
        let (plan, counts, stop) = (Arc::clone(&plan), Arc::clone(&counts), stop.clone());
        running.spawn(async move {
            if let Err(error) = churn_once(&plan, k, &counts, stop).await {
                counts.note_failure(&error);
            }
        });
        k += 1;
    }
    // Let the last ones leave, within bounds.
    let _ = tokio::time::timeout(plan.churn_linger + CHURN_STEP_LIMIT, async {
        while running.join_next().await.is_some() {}
    })
    .await;
    running.abort_all();
}

/// Churning client `k`: joins, reads for the linger time, and leaves.
async fn churn_once(
    plan: &Plan,
    k: u64,
    counts: &ChurnCounts,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let index = plan.clients + 1 + k as usize;
    let source = plan.spread_sources.then(|| spread_source(index));
    let server = plan.server_of(k as usize);
    let name = format!("{}{}c{k}", plan.names, plan.run);
    let joined = tokio::time::timeout(CHURN_STEP_LIMIT, async {
        let stream = connect(server, source, false).await?;
        plan.protocol.join(stream, &name, &plan.join).await
    })
    .await
    .context("churning client: connect and join timed out")??;
    counts.joined.fetch_add(1, Ordering::Relaxed);
    let Joined { mut reader, mut writer, .. } = joined;
    let until = Instant::now() + plan.churn_linger;
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            _ = tokio::time::sleep_until(until) => break,
            read = reader.fill() => match read {
                Ok((n, _)) if n > 0 => while reader.next_line().is_some() {},
                Ok(_) => bail!("churning client {name}: closed by the server"),
                Err(e) => bail!("churning client {name}: {e}"),
            },
        }
    }
    if k.is_multiple_of(2) {
        // A polite leave: /quit, then read the goodbye until the server closes.
        writer.write_all(b"/quit churn\n").await.context("churning client: /quit")?;
        let _ = tokio::time::timeout(CHURN_STEP_LIMIT, async {
            while matches!(reader.fill().await, Ok((n, _)) if n > 0) {
                while reader.next_line().is_some() {}
            }
        })
        .await;
    }
    // Otherwise just close: the server sees the connection end.
    counts.left.fetch_add(1, Ordering::Relaxed);
    Ok(())
}
