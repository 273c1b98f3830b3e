//! One load run: N clients join, S of them send M messages each (flat out or at a set rate), and
//! every receiver accounts for what arrives. This module owns the plan and the measured loop:
//! join, settle, give the go, wait until everything is sent and received (or the time limits),
//! stop, and gather what the clients and the meters saw.
//!
//! A receiver knows exactly how many messages it should get: every sender's M, less its own
//! where the server does not echo (chat, IRC), all of them where it does (Redis, whose sender
//! publishes on a second connection and whose subscription sees its own messages). The run ends
//! when every receiver has all it expects, or `--drain-timeout` after the last send.
//!
//! Several daemons sharing one room (`--addr A --addr B`): client i connects to address
//! i mod K, so senders and receivers are spread round robin; each delivery is counted as local
//! (sender and receiver on one daemon) or cross-node, with its own loss and latency. Also here:
//! `--kill-pid` (SIGKILL one process, e.g. the Redis of the backplane, a set time after the
//! senders start) and the progress line. The pieces live beside it: the clients' tasks, the
//! accounting, churn, the slow reader, the report, and the parse bench.

#[path = "load/account.rs"]
mod account;
#[path = "load/churn.rs"]
mod churn;
#[path = "load/client.rs"]
mod client;
#[path = "load/parse_bench.rs"]
mod parse_bench;
#[path = "load/report.rs"]
mod report;
#[path = "load/slow_reader.rs"]
mod slow_reader;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::account::{Account, Shared};
use self::churn::{Churn, ChurnReport};
use self::client::{Client, Signals, start_clients};
pub use self::parse_bench::parse_bench;
use self::report::{Facts, Kill, Latencies, Totals};
use self::slow_reader::{join_slow_reader, read_slow_reader};
use crate::metrics::{now_nanos, run_tag, seconds_between, spawn_every_second, wait_until_quiet};
use crate::outcome::Outcome;
use crate::protocol::{JoinOptions, Joined, Protocol};
use crate::sampling::{Measured, Meters, cpu_seconds_of};
use crate::system::Process;
use crate::wire::{MAX_SENDERS, MAX_SEQ};

/// Exact duplicate detection costs one bit per (receiver, message); refuse beyond this.
const MAX_BITMAP_BITS: u64 = 8 * 1024 * 1024 * 1024;

/// Everything that defines one load run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub protocol: Protocol,
    /// Client i connects to `servers[i % servers.len()]`.
    pub servers: Vec<SocketAddr>,
    pub clients: usize,
    pub senders: usize,
    pub messages: u64,
    pub size: usize,
    /// Messages per second per sender; 0 is flat out.
    pub rate: f64,
    pub drain_timeout: Duration,
    pub setup_timeout: Duration,
    pub settle_quiet: Duration,
    pub settle_timeout: Duration,
    pub max_send_time: Duration,
    pub concurrency: usize,
    pub spread_sources: bool,
    pub slow_reader: bool,
    /// Time arrivals by the kernel's receive stamps rather than by when we read them.
    pub kernel_clock: bool,
    pub join: JoinOptions,
    /// The chat daemons (or the one peer server): CPU and memory are summed over them.
    pub server_pids: Vec<u32>,
    /// The Redis of a backplane: its CPU and memory are reported on their own.
    pub backplane_pid: Option<u32>,
    /// Extra clients per second that join, linger and leave while the senders run.
    pub churn: f64,
    pub churn_linger: Duration,
    /// Texts whose lines are counted per receiver (a daemon's notices).
    pub watch: Vec<String>,
    /// SIGKILL this process this long after the senders start.
    pub kill: Option<(u32, Duration)>,
    /// After the run, wait up to this long for the servers to go idle, and report the CPU they
    /// spent meanwhile apart (0: do not wait).
    pub cpu_tail: Duration,
    /// This run's tag instead of a random one.
    pub tag: Option<u32>,
    pub progress: bool,
    pub label: String,
    pub names: String,
    pub run: usize,
}

impl Plan {
    fn nodes(&self) -> usize {
        self.servers.len().max(1)
    }

    fn server_of(&self, i: usize) -> SocketAddr {
        self.servers[i % self.nodes()]
    }

    /// Of what client `i` must receive, how much comes from senders on other daemons.
    fn expected_cross_by(&self, i: usize) -> u64 {
        let here = senders_on(self.senders, self.nodes(), i % self.nodes());
        (self.senders as u64 - here) * self.messages
    }

    fn name(&self, i: usize) -> String {
        format!("{}{}x{i}", self.names, self.run)
    }

    fn is_sender(&self, i: usize) -> bool {
        i < self.senders
    }

    /// Fresh deliveries client `i` must receive for the run to be complete.
    fn expected_by(&self, i: usize) -> u64 {
        let all = self.senders as u64 * self.messages;
        if self.is_sender(i) && !self.protocol.echoes_to_sender() {
            all - self.messages
        } else {
            all
        }
    }
}

/// How many of the first `senders` clients, spread round robin over `nodes` daemons, are on
/// daemon `node` (client i is on daemon i mod nodes).
fn senders_on(senders: usize, nodes: usize, node: usize) -> u64 {
    if node >= senders { 0 } else { (senders - node).div_ceil(nodes) as u64 }
}

pub async fn run(plan: &Plan) -> Result<Outcome> {
    check_accounting_fits(plan)?;
    let shared = Arc::new(shared_for(plan));
    let (go_tx, go) = watch::channel(false);
    let (stop_tx, stop) = watch::channel(false);
    let signals = Signals { go, stop };

    let setup_started = now_nanos();
    let (clients, slow) = join_everyone(plan, &shared, &signals).await?;
    let setup_s = seconds_between(setup_started, now_nanos());
    let settle_s = wait_until_quiet(&shared.lines, plan.settle_quiet, plan.settle_timeout).await;

    let meters = Meters::start(&plan.server_pids, plan.backplane_pid);
    let started = now_nanos();
    let background = Background::start(plan, &shared, meters.servers(), started, &signals.stop);
    // Receivers wait for nothing; writers wait for this.
    let _ = go_tx.send(true);
    let expected: u64 = (0..plan.clients).map(|i| plan.expected_by(i)).sum();
    let (last_send, complete) = send_and_drain(plan, &shared, expected).await;
    let ended = now_nanos();
    let measured = meters.stop(plan.cpu_tail).await;

    let _ = stop_tx.send(true);
    let churn = background.stop().await;
    let accounts = collect_accounts(clients).await?;
    let slow = match slow {
        Some(joined) => Some(read_slow_reader(joined, &shared).await),
        None => None,
    };
    let timeline = Timeline { setup_s, settle_s, started, last_send, ended, complete };
    let facts = gather_facts(plan, &shared, &timeline, &accounts, measured, churn);
    let totals = Totals::of(&accounts, expected, plan.watch.len());
    Ok(report::outcome(plan, &facts, &totals, slow.as_ref()))
}

fn check_accounting_fits(plan: &Plan) -> Result<()> {
    if plan.senders as u64 >= MAX_SENDERS || plan.messages >= MAX_SEQ {
        bail!("at most {MAX_SENDERS} senders and {MAX_SEQ} messages each fit in a token");
    }
    let bits = plan.clients as u64 * plan.senders as u64 * plan.messages;
    if bits > MAX_BITMAP_BITS {
        bail!("clients x senders x messages is too large for exact accounting ({bits} bits)");
    }
    Ok(())
}

fn shared_for(plan: &Plan) -> Shared {
    let tag = plan.tag.unwrap_or_else(|| run_tag(plan.run));
    Shared {
        nodes: plan.nodes(),
        watch: plan.watch.iter().map(|w| w.as_bytes().to_vec()).collect(),
        receivers_pending: AtomicUsize::new(
            (0..plan.clients).filter(|&i| plan.expected_by(i) > 0).count(),
        ),
        senders_pending: AtomicUsize::new(plan.senders),
        ..Shared::new(plan.protocol, tag, plan.senders, plan.messages)
    }
}

/// Connects and joins every client within `--setup-timeout`, then the slow reader if asked for.
async fn join_everyone(
    plan: &Plan,
    shared: &Arc<Shared>,
    signals: &Signals,
) -> Result<(Vec<Client>, Option<Joined>)> {
    let clients = tokio::time::timeout(plan.setup_timeout, start_clients(plan, shared, signals))
        .await
        .with_context(|| {
            format!("{} clients did not all join within {:?}", plan.clients, plan.setup_timeout)
        })??;
    let slow = if plan.slow_reader { Some(join_slow_reader(plan).await?) } else { None };
    Ok((clients, slow))
}

/// Waits for the senders to finish (at most `--max-send-time`), then for every receiver to have
/// all it expects (at most `--drain-timeout`); returns when the last send ended and whether the
/// run is complete.
async fn send_and_drain(plan: &Plan, shared: &Shared, expected: u64) -> (u64, bool) {
    let all_sent = shared.all_sent.notified();
    let sending_done =
        plan.senders == 0 || tokio::time::timeout(plan.max_send_time, all_sent).await.is_ok();
    let last_send = now_nanos();
    let all_received = expected == 0
        || tokio::time::timeout(plan.drain_timeout, shared.all_received.notified()).await.is_ok();
    (last_send, sending_done && all_received)
}

async fn collect_accounts(clients: Vec<Client>) -> Result<Vec<Account>> {
    let mut accounts = Vec::with_capacity(clients.len());
    for client in clients {
        accounts.push(client.account().await.context("a receiver task failed")?);
    }
    Ok(accounts)
}

/// When the phases of a run began and ended.
struct Timeline {
    setup_s: f64,
    settle_s: f64,
    /// The go signal: sending starts.
    started: u64,
    last_send: u64,
    ended: u64,
    complete: bool,
}

fn gather_facts(
    plan: &Plan,
    shared: &Shared,
    timeline: &Timeline,
    accounts: &[Account],
    measured: Measured,
    churn: Option<ChurnReport>,
) -> Facts {
    let started = timeline.started;
    let last_cross = shared.last_cross_delivery.load(Ordering::Relaxed);
    let last_delivery = shared.last_delivery.load(Ordering::Relaxed).max(started);
    Facts {
        setup_s: timeline.setup_s,
        settle_s: timeline.settle_s,
        send_s: seconds_between(started, timeline.last_send),
        wall_s: seconds_between(started, timeline.ended),
        window_s: seconds_between(started, last_delivery),
        sent: shared.sent.load(Ordering::Relaxed),
        send_failures: shared.send_failures.load(Ordering::Relaxed),
        complete: timeline.complete,
        latency: Latencies::of(accounts),
        measured,
        started,
        last_cross_s: (last_cross > 0).then(|| seconds_after(started, last_cross)),
        kill: plan.kill.map(|(pid, _)| kill_report(pid, shared, started)),
        churn,
    }
}

/// Seconds from `started` to `at`, both on the run's clock.
fn seconds_after(started: u64, at: u64) -> f64 {
    (at as f64 - started as f64) / 1e9
}

/// What runs beside the senders and receivers: the progress line, the `--kill-pid` timer and
/// the churning clients.
struct Background {
    progress: Option<JoinHandle<()>>,
    kill: Option<JoinHandle<()>>,
    churn: Option<Churn>,
}

impl Background {
    fn start(
        plan: &Plan,
        shared: &Arc<Shared>,
        servers: Vec<Process>,
        started: u64,
        stop: &watch::Receiver<bool>,
    ) -> Self {
        Background {
            progress: plan
                .progress
                .then(|| spawn_progress(plan, shared, servers, started, stop.clone())),
            kill: plan.kill.map(|(pid, after)| spawn_kill(pid, after, shared)),
            churn: Churn::start(plan, shared, stop.clone()),
        }
    }

    /// Once the run has stopped: ends the timers and lets the churn finish.
    async fn stop(self) -> Option<ChurnReport> {
        if let Some(progress) = self.progress {
            progress.abort();
        }
        if let Some(kill) = self.kill {
            kill.abort();
        }
        match self.churn {
            Some(churn) => Some(churn.finish().await),
            None => None,
        }
    }
}

/// `--kill-pid`: SIGKILL `pid` `after` the senders start, and note when (`u64::MAX`: failed).
fn spawn_kill(pid: u32, after: Duration, shared: &Arc<Shared>) -> JoinHandle<()> {
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        let at = now_nanos().max(1);
        // SAFETY: kill only sends a signal to the PID we were given on the command line.
        let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        shared.killed_at.store(if rc == 0 { at } else { u64::MAX }, Ordering::Release);
    })
}

fn kill_report(pid: u32, shared: &Shared, started: u64) -> Kill {
    Kill {
        pid,
        local_after: shared.after_kill_local.load(Ordering::Relaxed),
        cross_after: shared.after_kill_cross.load(Ordering::Relaxed),
        at_s: match shared.killed_at.load(Ordering::Relaxed) {
            0 => None,
            u64::MAX => Some(f64::NAN),
            at => Some(seconds_after(started, at)),
        },
    }
}

/// Once a second (from 2.5 s on): sent and delivered so far, and the servers' CPU.
fn spawn_progress(
    plan: &Plan,
    shared: &Arc<Shared>,
    servers: Vec<Process>,
    started: u64,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let shared = Arc::clone(shared);
    let label = plan.label.clone();
    let total_sent = plan.senders as u64 * plan.messages;
    let mut last_delivered = 0;
    let mut last_cpu = cpu_seconds_of(&servers);
    spawn_every_second(stop, move || {
        let elapsed = seconds_between(started, now_nanos());
        let delivered = shared.delivered.load(Ordering::Relaxed);
        let cpu = cpu_seconds_of(&servers);
        let cpu_pct = match (last_cpu, cpu) {
            (Some(a), Some(b)) => format!(", server CPU {:.0}%", (b - a) * 100.0),
            _ => String::new(),
        };
        last_cpu = cpu;
        if elapsed >= 2.5 {
            eprintln!(
                "[{label}] {elapsed:5.1}s sent {}/{total_sent}, delivered {delivered} (+{}/s){cpu_pct}",
                shared.sent.load(Ordering::Relaxed),
                delivered - last_delivered,
            );
        }
        last_delivered = delivered;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_are_counted_per_daemon_as_round_robin_places_them() {
        for nodes in 1..=7 {
            for senders in 0..=40 {
                let mut counted = vec![0u64; nodes];
                for s in 0..senders {
                    counted[s % nodes] += 1;
                }
                for (node, &count) in counted.iter().enumerate() {
                    assert_eq!(senders_on(senders, nodes, node), count, "{senders} over {nodes}");
                }
            }
        }
    }
}
