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
//! Many rooms (`--rooms R`): client i is in room i mod R besides the common channel, and a
//! message reaches the other members of its sender's room only, so a receiver expects the
//! messages of the senders in its room; its account keeps one row of bits per such sender and
//! counts a message from another room as misrouted. The report adds the accounts up per room.
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
#[path = "load/rooms.rs"]
mod rooms;
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
use crate::sampling::{Measured, Meters, cpu_seconds_of, memory_of};
use crate::system::{Process, ensure_descriptors};
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
    /// Client i is also in room `r{i % rooms}` and speaks there; `None`: everyone speaks in
    /// the one common channel.
    pub rooms: Option<usize>,
    /// Redis: PUBLISH connections the senders share (0: one each).
    pub publishers: usize,
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

    /// Rooms the clients are spread over (the common channel counts as one).
    fn room_count(&self) -> usize {
        self.rooms.unwrap_or(1).max(1)
    }

    fn room_of(&self, i: usize) -> usize {
        i % self.room_count()
    }

    /// The senders in client `i`'s room: the ones whose messages it may receive.
    fn senders_in_room_of(&self, i: usize) -> u64 {
        senders_on(self.senders, self.room_count(), self.room_of(i))
    }

    /// Where client `i` joins and speaks.
    fn join_of(&self, i: usize) -> JoinOptions {
        match self.rooms {
            Some(_) => self.join.and_channel(format!("r{}", self.room_of(i))),
            None => self.join.clone(),
        }
    }

    /// Of what client `i` must receive, how much comes from senders on other daemons.
    fn expected_cross_by(&self, i: usize) -> u64 {
        let (nodes, node) = (self.nodes(), i % self.nodes());
        let room_senders = (self.room_of(i)..self.senders).step_by(self.room_count());
        room_senders.filter(|s| s % nodes != node).count() as u64 * self.messages
    }

    fn name(&self, i: usize) -> String {
        format!("{}{}x{i}", self.names, self.run)
    }

    fn is_sender(&self, i: usize) -> bool {
        i < self.senders
    }

    /// Fresh deliveries client `i` must receive for the run to be complete: every message of the
    /// senders in its room, less its own where the server does not echo.
    fn expected_by(&self, i: usize) -> u64 {
        let all = self.senders_in_room_of(i) * self.messages;
        if self.is_sender(i) && !self.protocol.echoes_to_sender() {
            all - self.messages
        } else {
            all
        }
    }
}

/// How many of the first `senders` clients, spread round robin over `nodes` daemons (or
/// rooms), are on daemon `node` (client i is on daemon i mod nodes).
fn senders_on(senders: usize, nodes: usize, node: usize) -> u64 {
    if node >= senders { 0 } else { (senders - node).div_ceil(nodes) as u64 }
}

pub async fn run(plan: &Plan) -> Result<Outcome> {
    check_accounting_fits(plan)?;
    ensure_descriptors(descriptors_needed(plan))?;
    let servers: Vec<Process> = plan.server_pids.iter().map(|&pid| Process::Pid(pid)).collect();
    let rss_before_clients = (!servers.is_empty()).then(|| memory_of(&servers).rss_kib);
    let shared = Arc::new(shared_for(plan));
    let (go_tx, go) = watch::channel(false);
    let (stop_tx, stop) = watch::channel(false);
    let signals = Signals { go, stop };

    let setup_started = now_nanos();
    let setup_cpu = JoinCpu::start(&servers);
    let (clients, slow) = join_everyone(plan, &shared, &signals).await?;
    let setup_s = seconds_between(setup_started, now_nanos());
    let setup_cpu = setup_cpu.stop(&servers);
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
    let mut facts = gather_facts(plan, &shared, &timeline, &accounts, measured, churn);
    facts.rss_kib_before_clients = rss_before_clients;
    facts.join_cpu = Some(setup_cpu);
    let totals = Totals::of(&accounts, expected, plan.watch.len(), plan.room_count());
    Ok(report::outcome(plan, &facts, &totals, slow.as_ref()))
}

fn check_accounting_fits(plan: &Plan) -> Result<()> {
    if plan.senders as u64 >= MAX_SENDERS || plan.messages >= MAX_SEQ {
        bail!("at most {MAX_SENDERS} senders and {MAX_SEQ} messages each fit in a token");
    }
    let rows: u64 = (0..plan.clients).map(|i| plan.senders_in_room_of(i)).sum();
    let bits = rows * plan.messages;
    if bits > MAX_BITMAP_BITS {
        bail!("clients x senders x messages is too large for exact accounting ({bits} bits)");
    }
    Ok(())
}

/// Sockets the run holds at once: every client's, the Redis senders' PUBLISH connections, the
/// slow reader's, and a margin for the runtime and stdio.
fn descriptors_needed(plan: &Plan) -> u64 {
    let publishing = match (plan.protocol.sends_separately(), plan.publishers) {
        (false, _) => 0,
        (true, 0) => plan.senders,
        (true, shared) => shared.min(plan.senders),
    };
    (plan.clients + publishing + usize::from(plan.slow_reader) + 64) as u64
}

fn shared_for(plan: &Plan) -> Shared {
    let tag = plan.tag.unwrap_or_else(|| run_tag(plan.run));
    Shared {
        nodes: plan.nodes(),
        rooms: plan.room_count(),
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
        rejoins: shared.rejoins.load(Ordering::Relaxed),
        complete: timeline.complete,
        latency: Latencies::of(accounts),
        measured,
        started,
        last_cross_s: (last_cross > 0).then(|| seconds_after(started, last_cross)),
        kill: plan.kill.map(|(pid, _)| kill_report(pid, shared, started)),
        churn,
        rss_kib_before_clients: None,
        join_ms: shared.joins.mean_ms(),
        join_cpu: None,
    }
}

/// CPU seconds the servers and this process spent while the clients joined.
#[derive(Debug, Clone, Copy)]
pub struct JoinCpu {
    pub servers_s: Option<f64>,
    pub loadgen_s: f64,
}

impl JoinCpu {
    fn start(servers: &[Process]) -> Self {
        JoinCpu {
            servers_s: cpu_seconds_of(servers),
            loadgen_s: Process::Myself.cpu_seconds().unwrap_or(0.0),
        }
    }

    fn stop(self, servers: &[Process]) -> Self {
        JoinCpu {
            servers_s: self.servers_s.zip(cpu_seconds_of(servers)).map(|(a, b)| b - a),
            loadgen_s: Process::Myself.cpu_seconds().unwrap_or(0.0) - self.loadgen_s,
        }
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

    fn plan(protocol: Protocol, clients: usize, senders: usize, rooms: Option<usize>) -> Plan {
        Plan {
            protocol,
            servers: vec!["127.0.0.1:1".parse().expect("an address")],
            clients,
            rooms,
            publishers: 0,
            senders,
            messages: 3,
            size: 64,
            rate: 0.0,
            drain_timeout: Duration::ZERO,
            setup_timeout: Duration::ZERO,
            settle_quiet: Duration::ZERO,
            settle_timeout: Duration::ZERO,
            max_send_time: Duration::ZERO,
            concurrency: 1,
            spread_sources: false,
            slow_reader: false,
            kernel_clock: false,
            join: JoinOptions {
                channels: vec!["lobby".to_owned()],
                oper: None,
                read_buffer: 64,
                pipelined: true,
            },
            server_pids: Vec::new(),
            backplane_pid: None,
            churn: 0.0,
            churn_linger: Duration::ZERO,
            watch: Vec::new(),
            kill: None,
            cpu_tail: Duration::ZERO,
            tag: Some(7),
            progress: false,
            label: "test".to_owned(),
            names: "t".to_owned(),
            run: 1,
        }
    }

    #[test]
    fn a_receiver_expects_the_messages_of_its_room_only() {
        for protocol in [Protocol::Chat, Protocol::Redis] {
            for rooms in [None, Some(1), Some(3), Some(7)] {
                for nodes in 1..=3 {
                    let mut plan = plan(protocol, 20, 11, rooms);
                    plan.servers = vec![plan.servers[0]; nodes];
                    let r = rooms.unwrap_or(1);
                    for i in 0..plan.clients {
                        let room_senders: Vec<usize> =
                            (0..plan.senders).filter(|s| s % r == i % r).collect();
                        let heard = room_senders
                            .iter()
                            .filter(|&&s| s != i || protocol.echoes_to_sender())
                            .count() as u64;
                        let cross = room_senders.iter().filter(|&&s| s % nodes != i % nodes);
                        assert_eq!(plan.expected_by(i), heard * 3, "client {i}, {rooms:?}");
                        assert_eq!(plan.expected_cross_by(i), cross.count() as u64 * 3);
                        assert_eq!(plan.senders_in_room_of(i), room_senders.len() as u64);
                    }
                }
            }
        }
    }

    #[test]
    fn each_client_joins_the_lobby_and_speaks_in_its_room() {
        let plan = plan(Protocol::Irc, 10, 10, Some(4));
        assert_eq!(plan.join_of(6).channels, ["lobby", "r2"]);
        assert_eq!(plan.join_of(6).speaks_in(), "r2");
        let without = self::plan(Protocol::Irc, 10, 10, None);
        assert_eq!(without.join_of(6).speaks_in(), "lobby");
    }

    #[test]
    fn redis_senders_sharing_publishers_fit_the_descriptor_budget() {
        let mut plan = plan(Protocol::Redis, 10_000, 10_000, Some(1000));
        assert_eq!(descriptors_needed(&plan), 20_064);
        plan.publishers = 100;
        assert_eq!(descriptors_needed(&plan), 10_164);
        plan.protocol = Protocol::Chat;
        assert_eq!(descriptors_needed(&plan), 10_064);
    }

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
