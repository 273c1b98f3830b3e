//! One load run: N clients join, S of them send M messages each (flat out or at a set rate), and
//! every receiver accounts for what arrives.
//!
//! Each client is two tasks: a receiver that frames lines and looks for tokens, and a writer that
//! sends (if the client is a sender) and answers the server (IRC PING). A receiver knows exactly
//! how many messages it should get: every sender's M, less its own where the server does not echo
//! (chat, IRC), all of them where it does (Redis, whose sender publishes on a second connection
//! and whose subscription sees its own messages). A bitmap per receiver and sender tells fresh
//! deliveries from duplicates; lost = expected - fresh. The run ends when every receiver has all
//! it expects, or `--drain-timeout` after the last send.
//!
//! Several daemons sharing one room (`--addr A --addr B`): client i connects to address
//! i mod K, so senders and receivers are spread round robin; each delivery is counted as local
//! (sender and receiver on one daemon) or cross-node, with its own loss and latency. Also here:
//! `--churn` (extra clients that join, linger and leave while the senders run), `--watch`
//! (count the lines that contain a text, e.g. a daemon's notice) and `--kill-pid` (SIGKILL one
//! process, e.g. the Redis of the backplane, a set time after the senders start).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::connect::{connect, in_parallel, spread_source};
use crate::metrics::{
    Histogram, Percentiles, now_nanos, run_tag, seconds_between, wait_until_quiet,
};
use crate::protocol::{JoinOptions, Joined, Protocol};
use crate::receipt::Source;
use crate::system::{Memory, Process};
use crate::wire::{LineReader, MAX_SENDERS, MAX_SEQ, Token, TokenFinder};

/// A flat-out sender writes about this many bytes per system call.
const BATCH_BYTES: usize = 4096;
/// How long the slow reader is read at the end, at most, and the gap that ends it sooner.
const SLOW_READ_LIMIT: Duration = Duration::from_secs(20);
const SLOW_READ_GAP: Duration = Duration::from_secs(1);
/// Exact duplicate detection costs one bit per (receiver, message); refuse beyond this.
const MAX_BITMAP_BITS: u64 = 8 * 1024 * 1024 * 1024;
/// How often `--cpu-tail` looks whether the servers went idle.
const CPU_TAIL_STEP: Duration = Duration::from_millis(300);
/// Churning clients connecting, lingering or leaving at once, at most.
const CHURN_IN_FLIGHT: usize = 256;
/// How long a churning client may take to connect and join, and to be let go.
const CHURN_STEP_LIMIT: Duration = Duration::from_secs(10);

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

/// Counters every task of a run updates.
struct Shared {
    protocol: Protocol,
    tag: u32,
    /// Daemons the clients are spread over; sender s is on daemon s mod nodes.
    nodes: usize,
    watch: Vec<Vec<u8>>,
    last_cross_delivery: AtomicU64,
    /// When `--kill-pid` was signalled (0: not yet); deliveries after it are counted apart.
    killed_at: AtomicU64,
    after_kill_local: AtomicU64,
    after_kill_cross: AtomicU64,
    senders: usize,
    messages: u64,
    sent: AtomicU64,
    send_failures: AtomicU64,
    delivered: AtomicU64,
    lines: AtomicU64,
    last_delivery: AtomicU64,
    receivers_pending: AtomicUsize,
    all_received: Notify,
    senders_pending: AtomicUsize,
    all_sent: Notify,
}

/// The go and stop signals of a run.
#[derive(Clone)]
struct Signals {
    go: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
}

/// One receiver's account of what arrived.
#[derive(Debug, Default)]
struct Account {
    expected: u64,
    /// Of `expected` and `fresh`: from senders on another daemon.
    expected_cross: u64,
    fresh_cross: u64,
    /// This receiver's daemon.
    node: usize,
    fresh: u64,
    duplicates: u64,
    out_of_order: u64,
    stale: u64,
    missed_told: u64,
    missed_notices: u64,
    first_notice: Option<String>,
    /// Local deliveries (all of them with one daemon).
    latency: Histogram,
    latency_cross: Histogram,
    /// Per watched text: lines seen, and when the first came.
    watched: Vec<(u64, Option<u64>)>,
    reads: u64,
    /// Reads that carried the kernel's receive time.
    stamped_reads: u64,
    /// One bit per (sender, seq): seen already.
    seen: Vec<u64>,
    /// Per sender: one past the highest sequence number seen.
    next: Vec<u64>,
    /// Why the connection ended before the run did, if it did.
    ended: Option<String>,
}

impl Account {
    fn new(expected: u64, senders: usize, messages: u64) -> Self {
        let bits = senders as u64 * messages;
        Account {
            expected,
            seen: vec![0; bits.div_ceil(64) as usize],
            next: vec![0; senders],
            ..Account::default()
        }
    }

    /// Counts one token; `Some(cross)` when it is a fresh delivery of this run, `cross` when it
    /// came from a sender on another daemon.
    fn take(&mut self, token: Token, shared: &Shared) -> Option<bool> {
        let sender = token.sender as usize;
        if token.tag != shared.tag || sender >= shared.senders || token.seq >= shared.messages {
            self.stale += 1;
            return None;
        }
        let bit = sender as u64 * shared.messages + token.seq;
        let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
        if self.seen[word] & mask != 0 {
            self.duplicates += 1;
            return None;
        }
        self.seen[word] |= mask;
        if token.seq < self.next[sender] {
            self.out_of_order += 1;
        } else {
            self.next[sender] = token.seq + 1;
        }
        self.fresh += 1;
        let cross = sender % shared.nodes != self.node;
        self.fresh_cross += u64::from(cross);
        Some(cross)
    }

    fn note_missed(&mut self, count: u64, line: &[u8]) {
        self.missed_told += count;
        self.missed_notices += 1;
        if self.first_notice.is_none() {
            self.first_notice = Some(String::from_utf8_lossy(line).trim().to_owned());
        }
    }
}

/// What the writer of one connection needs to send.
struct SendJob {
    sender: u32,
    messages: u64,
    size: usize,
    rate: f64,
    /// Rate-limited senders start spread over one period so they do not tick together.
    offset: Duration,
    channel: String,
}

/// The tasks of one client.
struct Client {
    receiver: JoinHandle<Account>,
    writer: JoinHandle<()>,
    /// Redis senders: the task reading PUBLISH replies.
    replies: Option<JoinHandle<()>>,
}

/// The result of one run: its JSON line and its human summary.
pub struct Outcome {
    pub json: Value,
    pub summary: String,
}

pub async fn run(plan: &Plan) -> Result<Outcome> {
    if plan.senders as u64 >= MAX_SENDERS || plan.messages >= MAX_SEQ {
        bail!("at most {MAX_SENDERS} senders and {MAX_SEQ} messages each fit in a token");
    }
    let bits = plan.clients as u64 * plan.senders as u64 * plan.messages;
    if bits > MAX_BITMAP_BITS {
        bail!("clients x senders x messages is too large for exact accounting ({bits} bits)");
    }
    let shared = Arc::new(Shared {
        protocol: plan.protocol,
        tag: plan.tag.unwrap_or_else(|| run_tag(plan.run)),
        nodes: plan.nodes(),
        watch: plan.watch.iter().map(|w| w.as_bytes().to_vec()).collect(),
        last_cross_delivery: AtomicU64::new(0),
        killed_at: AtomicU64::new(0),
        after_kill_local: AtomicU64::new(0),
        after_kill_cross: AtomicU64::new(0),
        senders: plan.senders,
        messages: plan.messages,
        sent: AtomicU64::new(0),
        send_failures: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        lines: AtomicU64::new(0),
        last_delivery: AtomicU64::new(0),
        receivers_pending: AtomicUsize::new(
            (0..plan.clients).filter(|&i| plan.expected_by(i) > 0).count(),
        ),
        all_received: Notify::new(),
        senders_pending: AtomicUsize::new(plan.senders),
        all_sent: Notify::new(),
    });
    let (go_tx, go) = watch::channel(false);
    let (stop_tx, stop) = watch::channel(false);
    let signals = Signals { go, stop };

    let setup_started = now_nanos();
    let clients = tokio::time::timeout(plan.setup_timeout, start_clients(plan, &shared, &signals))
        .await
        .with_context(|| {
            format!("{} clients did not all join within {:?}", plan.clients, plan.setup_timeout)
        })??;
    let slow = if plan.slow_reader { Some(join_slow_reader(plan).await?) } else { None };
    let setup_s = seconds_between(setup_started, now_nanos());
    let settle_s = wait_until_quiet(&shared.lines, plan.settle_quiet, plan.settle_timeout).await;

    let servers: Vec<Process> = plan.server_pids.iter().map(|&pid| Process::Pid(pid)).collect();
    let backplane = plan.backplane_pid.map(Process::Pid);
    let peak_reset = !servers.is_empty() && servers.iter().all(|p| p.reset_peak().is_ok());
    let backplane_reset = backplane.is_some_and(|p| p.reset_peak().is_ok());
    let server_before = (!servers.is_empty()).then(|| sample_all(&servers));
    let backplane_before = backplane.map(|p| sample_all(&[p]));
    let own_cpu_before = Process::Myself.cpu_seconds().unwrap_or(0.0);
    let started = now_nanos();
    let progress = plan
        .progress
        .then(|| spawn_progress(plan, &shared, servers.clone(), started, signals.stop.clone()));
    let churn = Arc::new(ChurnCounts::default());
    let churning = (plan.churn > 0.0).then(|| {
        tokio::spawn(run_churn(
            plan.clone(),
            Arc::clone(&shared),
            Arc::clone(&churn),
            signals.stop.clone(),
        ))
    });
    let killing = plan.kill.map(|(pid, after)| {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let at = now_nanos().max(1);
            // SAFETY: kill only sends a signal to the PID we were given on the command line.
            let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            shared.killed_at.store(if rc == 0 { at } else { u64::MAX }, Ordering::Release);
        })
    });
    // Receivers wait for nothing; writers wait for this.
    let _ = go_tx.send(true);

    let all_sent = shared.all_sent.notified();
    let sending_done =
        plan.senders == 0 || tokio::time::timeout(plan.max_send_time, all_sent).await.is_ok();
    let last_send = now_nanos();
    let expected: u64 = (0..plan.clients).map(|i| plan.expected_by(i)).sum();
    let all_received = expected == 0
        || tokio::time::timeout(plan.drain_timeout, shared.all_received.notified()).await.is_ok();
    let ended = now_nanos();
    let server_after = (!servers.is_empty()).then(|| sample_all(&servers));
    let backplane_after = backplane.map(|p| sample_all(&[p]));
    let own_cpu_after = Process::Myself.cpu_seconds().unwrap_or(0.0);
    // Work the servers still do for this run after its last delivery (a backplane decoding its
    // own messages as they come back from Redis, for instance): wait until they go idle.
    let tail_started = Instant::now();
    let tail = if plan.cpu_tail.is_zero() || servers.is_empty() {
        None
    } else {
        let mut all: Vec<Process> = servers.clone();
        all.extend(backplane);
        let total =
            |all: &[Process]| -> f64 { all.iter().filter_map(|p| p.cpu_seconds().ok()).sum() };
        let mut last = total(&all);
        while tail_started.elapsed() < plan.cpu_tail {
            tokio::time::sleep(CPU_TAIL_STEP).await;
            let now = total(&all);
            // One clock tick (10 ms) or less in a step: idle.
            if now - last <= 0.011 {
                break;
            }
            last = now;
        }
        Some((
            sample_all(&servers),
            backplane.map(|p| sample_all(&[p])),
            tail_started.elapsed().as_secs_f64(),
        ))
    };

    let _ = stop_tx.send(true);
    if let Some(progress) = progress {
        progress.abort();
    }
    if let Some(killing) = killing {
        killing.abort();
    }
    if let Some(churning) = churning {
        let _ = tokio::time::timeout(CHURN_STEP_LIMIT, churning).await;
    }
    let mut accounts = Vec::with_capacity(clients.len());
    for client in clients {
        client.writer.abort();
        if let Some(replies) = client.replies {
            replies.abort();
        }
        accounts.push(client.receiver.await.context("a receiver task failed")?);
    }
    let slow_report = match slow {
        Some(joined) => Some(read_slow_reader(joined, &shared).await),
        None => None,
    };

    let totals = Totals::of(&accounts, expected, plan.watch.len());
    let (mut latency, mut latency_local, mut latency_cross) =
        (Histogram::default(), Histogram::default(), Histogram::default());
    for account in &accounts {
        latency.merge(&account.latency);
        latency.merge(&account.latency_cross);
        latency_local.merge(&account.latency);
        latency_cross.merge(&account.latency_cross);
    }
    let since_start = |at: u64| (at as f64 - started as f64) / 1e9;
    let killed_at = shared.killed_at.load(Ordering::Relaxed);
    let last_cross = shared.last_cross_delivery.load(Ordering::Relaxed);
    let last_delivery = shared.last_delivery.load(Ordering::Relaxed).max(started);
    let window_s = seconds_between(started, last_delivery);
    let sent = shared.sent.load(Ordering::Relaxed);
    let facts = Facts {
        setup_s,
        settle_s,
        send_s: seconds_between(started, last_send),
        wall_s: seconds_between(started, ended),
        window_s,
        sent,
        send_failures: shared.send_failures.load(Ordering::Relaxed),
        complete: sending_done && all_received,
        latency: latency.percentiles(),
        latency_local: latency_local.percentiles(),
        latency_cross: latency_cross.percentiles(),
        server: server_before.zip(server_after).map(|(b, a)| {
            let mut usage = ServerUse::of(b, a, peak_reset);
            usage.cpu_tail_s =
                tail.as_ref().map(|(t, _, _)| t.cpu_s - usage.cpu_s - usage.cpu_before);
            usage
        }),
        backplane: backplane_before.zip(backplane_after).map(|(b, a)| {
            let mut usage = ServerUse::of(b, a, backplane_reset);
            usage.cpu_tail_s = tail
                .as_ref()
                .and_then(|(_, t, _)| t.as_ref())
                .map(|t| t.cpu_s - usage.cpu_s - usage.cpu_before);
            usage
        }),
        tail_s: tail.as_ref().map(|(_, _, waited)| *waited),
        own_cpu_s: own_cpu_after - own_cpu_before,
        started,
        last_cross_s: (last_cross > 0).then(|| since_start(last_cross)),
        kill: plan.kill.map(|(pid, _)| Kill {
            pid,
            local_after: shared.after_kill_local.load(Ordering::Relaxed),
            cross_after: shared.after_kill_cross.load(Ordering::Relaxed),
            at_s: match killed_at {
                0 => None,
                u64::MAX => Some(f64::NAN),
                at => Some(since_start(at)),
            },
        }),
        churn: (plan.churn > 0.0).then(|| churn.snapshot()),
    };
    Ok(Outcome {
        json: to_json(plan, &facts, &totals, slow_report.as_ref()),
        summary: summarize(plan, &facts, &totals, slow_report.as_ref()),
    })
}

async fn start_clients(
    plan: &Plan,
    shared: &Arc<Shared>,
    signals: &Signals,
) -> Result<Vec<Client>> {
    in_parallel(plan.clients, plan.concurrency, |i| {
        let plan = plan.clone();
        let shared = Arc::clone(shared);
        let signals = signals.clone();
        async move { start_client(&plan, i, shared, signals).await }
    })
    .await
}

async fn start_client(
    plan: &Plan,
    i: usize,
    shared: Arc<Shared>,
    signals: Signals,
) -> Result<Client> {
    let source = plan.spread_sources.then(|| spread_source(i));
    let server = plan.server_of(i);
    let stream = connect(server, source, plan.kernel_clock).await?;
    let name = plan.name(i);
    let Joined { reader, writer } = plan.protocol.join(stream, &name, &plan.join).await?;
    let mut account = Account::new(plan.expected_by(i), plan.senders, plan.messages);
    account.node = i % plan.nodes();
    account.expected_cross = plan.expected_cross_by(i);
    account.watched = vec![(0, None); plan.watch.len()];
    let (reply_tx, reply_rx) = if plan.protocol.expects_answers() {
        let (tx, rx) = mpsc::unbounded_channel();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let receiver =
        tokio::spawn(receive(reader, Arc::clone(&shared), account, signals.stop.clone(), reply_tx));
    let job = plan.is_sender(i).then(|| SendJob {
        sender: i as u32,
        messages: plan.messages,
        size: plan.size,
        rate: plan.rate,
        offset: stagger(plan, i),
        channel: plan.join.channel.clone(),
    });
    let (writer, replies) = match job {
        Some(job) if plan.protocol.sends_separately() => {
            let publisher = connect(server, source, false).await?;
            let (read, write) = publisher.into_split();
            let replies = tokio::spawn(drain(read, signals.stop.clone()));
            let idle = tokio::spawn(write_and_answer(
                writer,
                None,
                Arc::clone(&shared),
                signals.clone(),
                reply_rx,
            ));
            let sending = tokio::spawn(write_and_answer(
                write,
                Some(job),
                Arc::clone(&shared),
                signals,
                None,
            ));
            // The subscription's writer only keeps its half open; it ends with the run.
            let both = tokio::spawn(async move {
                let _ = sending.await;
                let _ = idle.await;
            });
            (both, Some(replies))
        }
        job => {
            let writer =
                tokio::spawn(write_and_answer(writer, job, Arc::clone(&shared), signals, reply_rx));
            (writer, None)
        }
    };
    Ok(Client { receiver, writer, replies })
}

fn stagger(plan: &Plan, i: usize) -> Duration {
    if plan.rate <= 0.0 || plan.senders == 0 {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(i as f64 / plan.senders as f64 / plan.rate)
}

/// Reads and accounts for every line until the run stops or the connection ends.
async fn receive<R: Source>(
    mut reader: LineReader<R>,
    shared: Arc<Shared>,
    mut account: Account,
    mut stop: watch::Receiver<bool>,
    replies: Option<mpsc::UnboundedSender<Vec<u8>>>,
) -> Account {
    let finder = TokenFinder;
    let protocol = shared.protocol;
    let mut complete = account.expected == 0;
    loop {
        let read = tokio::select! {
            biased;
            _ = stop.changed() => break,
            read = reader.fill() => read,
        };
        let stamp = match read {
            Ok((0, _)) => {
                account.ended = Some("closed by the server".to_owned());
                break;
            }
            Err(e) => {
                account.ended = Some(e.to_string());
                break;
            }
            Ok((_, stamp)) => stamp,
        };
        account.reads += 1;
        account.stamped_reads += u64::from(stamp.is_some());
        let now = stamp.unwrap_or_else(now_nanos);
        let mut lines = 0;
        let mut fresh = 0;
        let mut cross = 0;
        while let Some(line) = reader.next_line() {
            lines += 1;
            if let Some(token) = finder.find(line) {
                match account.take(token, &shared) {
                    Some(false) => {
                        fresh += 1;
                        account.latency.record(now.saturating_sub(token.nanos));
                    }
                    Some(true) => {
                        fresh += 1;
                        cross += 1;
                        account.latency_cross.record(now.saturating_sub(token.nanos));
                    }
                    None => {}
                }
            } else if let Some(count) = protocol.missed_count(line) {
                account.note_missed(count, line);
            } else if let (Some(pong), Some(replies)) = (protocol.reply_to(line), &replies) {
                let _ = replies.send(pong);
            } else {
                for (pattern, seen) in shared.watch.iter().zip(&mut account.watched) {
                    if memchr::memmem::find(line, pattern).is_some() {
                        seen.0 += 1;
                        seen.1.get_or_insert(now);
                    }
                }
            }
        }
        shared.lines.fetch_add(lines, Ordering::Relaxed);
        if cross > 0 {
            shared.last_cross_delivery.fetch_max(now, Ordering::Relaxed);
        }
        let killed_at = shared.killed_at.load(Ordering::Acquire);
        if fresh > 0 && killed_at > 0 && now > killed_at {
            shared.after_kill_local.fetch_add(fresh - cross, Ordering::Relaxed);
            shared.after_kill_cross.fetch_add(cross, Ordering::Relaxed);
        }
        if fresh > 0 {
            shared.delivered.fetch_add(fresh, Ordering::Relaxed);
            shared.last_delivery.fetch_max(now, Ordering::Relaxed);
            if !complete && account.fresh >= account.expected {
                complete = true;
                if shared.receivers_pending.fetch_sub(1, Ordering::AcqRel) == 1 {
                    shared.all_received.notify_one();
                }
            }
        }
    }
    account
}

/// Sends the job once the run starts (if any), then answers the server until the run stops.
async fn write_and_answer(
    mut writer: OwnedWriteHalf,
    job: Option<SendJob>,
    shared: Arc<Shared>,
    mut signals: Signals,
    mut replies: Option<mpsc::UnboundedReceiver<Vec<u8>>>,
) {
    if let Some(job) = job {
        let sending = async {
            if signals.go.wait_for(|&go| go).await.is_ok()
                && send_job(&mut writer, &job, &shared, &mut replies).await.is_err()
            {
                shared.send_failures.fetch_add(1, Ordering::Relaxed);
            }
        };
        tokio::select! {
            _ = signals.stop.changed() => return,
            () = sending => {}
        }
        if shared.senders_pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            shared.all_sent.notify_one();
        }
    }
    let Some(mut replies) = replies else {
        let _ = signals.stop.changed().await;
        return;
    };
    loop {
        tokio::select! {
            _ = signals.stop.changed() => return,
            reply = replies.recv() => match reply {
                Some(reply) => {
                    if writer.write_all(&reply).await.is_err() {
                        return;
                    }
                }
                None => return,
            },
        }
    }
}

async fn send_job(
    writer: &mut OwnedWriteHalf,
    job: &SendJob,
    shared: &Shared,
    replies: &mut Option<mpsc::UnboundedReceiver<Vec<u8>>>,
) -> std::io::Result<()> {
    let mut batch = Vec::with_capacity(BATCH_BYTES + 2 * job.size + 128);
    let mut text = Vec::with_capacity(job.size + 64);
    let mut ticks = (job.rate > 0.0).then(|| {
        let period = Duration::from_secs_f64(1.0 / job.rate);
        let mut ticks = tokio::time::interval_at(Instant::now() + job.offset, period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
        ticks
    });
    let mut seq = 0;
    while seq < job.messages {
        if let Some(ticks) = &mut ticks {
            ticks.tick().await;
        }
        batch.clear();
        let first = seq;
        let nanos = now_nanos();
        loop {
            text.clear();
            let token = Token { sender: job.sender, seq, nanos, tag: shared.tag };
            token.write_padded(&mut text, job.size);
            shared.protocol.frame_message(&mut batch, &job.channel, &text);
            seq += 1;
            if seq == job.messages || ticks.is_some() || batch.len() >= BATCH_BYTES {
                break;
            }
        }
        if let Some(replies) = replies {
            while let Ok(reply) = replies.try_recv() {
                batch.extend_from_slice(&reply);
            }
        }
        writer.write_all(&batch).await?;
        shared.sent.fetch_add(seq - first, Ordering::Relaxed);
    }
    Ok(())
}

/// Reads and discards a connection's input (Redis PUBLISH replies) until the run stops.
async fn drain(read: OwnedReadHalf, mut stop: watch::Receiver<bool>) {
    let mut reader = LineReader::new(read, 16 * 1024);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            read = reader.fill() => match read {
                Ok((0, _)) | Err(_) => return,
                Ok(_) => while reader.next_line().is_some() {},
            },
        }
    }
}

async fn join_slow_reader(plan: &Plan) -> Result<Joined> {
    let stream = connect(plan.servers[0], None, false).await?;
    let name = format!("{}{}slow", plan.names, plan.run);
    plan.protocol.join(stream, &name, &plan.join).await.context("the slow reader could not join")
}

/// What the client that never read had been sent, read at the very end.
#[derive(Debug, Default)]
struct SlowReport {
    tokens: u64,
    missed_told: u64,
    missed_notices: u64,
    first_notice: Option<String>,
    /// How its connection ended, if the server closed it.
    ended: Option<String>,
    read_s: f64,
}

async fn read_slow_reader(joined: Joined, shared: &Shared) -> SlowReport {
    let Joined { mut reader, writer } = joined;
    let finder = TokenFinder;
    let mut report = SlowReport::default();
    let mut account = Account::default();
    let started = now_nanos();
    let deadline = Instant::now() + SLOW_READ_LIMIT;
    while Instant::now() < deadline {
        match tokio::time::timeout(SLOW_READ_GAP, reader.fill()).await {
            Err(_) => break,
            Ok(Ok((0, _))) => {
                report.ended = Some("closed by the server".to_owned());
                break;
            }
            Ok(Err(e)) => {
                report.ended = Some(e.to_string());
                break;
            }
            Ok(Ok(_)) => {}
        }
        while let Some(line) = reader.next_line() {
            if finder.find(line).is_some_and(|t| t.tag == shared.tag) {
                report.tokens += 1;
            } else if let Some(count) = shared.protocol.missed_count(line) {
                account.note_missed(count, line);
            }
        }
    }
    drop(writer);
    report.missed_told = account.missed_told;
    report.missed_notices = account.missed_notices;
    report.first_notice = account.first_notice;
    report.read_s = seconds_between(started, now_nanos());
    report
}

/// CPU and memory of a set of processes: totals, and each process's own.
struct Sample {
    cpu_s: f64,
    memory: Memory,
    each: Vec<(f64, Memory)>,
}

fn sample_all(processes: &[Process]) -> Sample {
    let each: Vec<(f64, Memory)> = processes
        .iter()
        .map(|p| (p.cpu_seconds().unwrap_or(f64::NAN), p.memory().unwrap_or_default()))
        .collect();
    Sample {
        cpu_s: each.iter().map(|(cpu, _)| cpu).sum(),
        memory: Memory {
            rss_kib: each.iter().map(|(_, m)| m.rss_kib).sum(),
            peak_kib: each.iter().map(|(_, m)| m.peak_kib).sum(),
        },
        each,
    }
}

struct ServerUse {
    cpu_s: f64,
    /// CPU seconds at the start of the run (to compute the tail).
    cpu_before: f64,
    /// CPU spent after the run's last delivery until the servers went idle (`--cpu-tail`).
    cpu_tail_s: Option<f64>,
    before: Memory,
    after: Memory,
    peak_reset: bool,
    /// Per process when there are several: CPU seconds and peak RSS.
    each: Vec<(f64, u64)>,
}

impl ServerUse {
    fn of(before: Sample, after: Sample, peak_reset: bool) -> Self {
        let each = before
            .each
            .iter()
            .zip(&after.each)
            .map(|((b, _), (a, m))| (a - b, m.peak_kib))
            .collect();
        ServerUse {
            cpu_s: after.cpu_s - before.cpu_s,
            cpu_before: before.cpu_s,
            cpu_tail_s: None,
            before: before.memory,
            after: after.memory,
            peak_reset,
            each,
        }
    }
}

struct Kill {
    pid: u32,
    /// Fresh deliveries stamped after the signal: between local users, and across daemons.
    local_after: u64,
    cross_after: u64,
    /// Seconds after the start of sending; NaN if the signal could not be sent.
    at_s: Option<f64>,
}

/// What the churning clients did.
#[derive(Debug, Default)]
struct ChurnCounts {
    started: AtomicU64,
    joined: AtomicU64,
    left: AtomicU64,
    failed: AtomicU64,
    /// Ticks skipped because too many churning clients were still in flight.
    skipped: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

#[derive(Debug, Clone, Default)]
struct ChurnReport {
    started: u64,
    joined: u64,
    left: u64,
    failed: u64,
    skipped: u64,
    first_error: Option<String>,
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
}

/// While the senders run: `--churn` clients per second connect, join, read for
/// `--churn-linger`, and leave, alternately with `/quit` and by simply closing. Bounded by the
/// sending phase (and `--max-send-time`) and by [`CHURN_IN_FLIGHT`] at once.
async fn run_churn(
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
    let mut running = tokio::task::JoinSet::new();
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
                counts.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = counts.first_error.lock() {
                    first.get_or_insert_with(|| format!("{error:#}"));
                }
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
    let Joined { mut reader, mut writer } = joined;
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

struct Facts {
    setup_s: f64,
    settle_s: f64,
    send_s: f64,
    wall_s: f64,
    /// From the start of sending to the last fresh delivery.
    window_s: f64,
    sent: u64,
    send_failures: u64,
    complete: bool,
    latency: Percentiles,
    latency_local: Percentiles,
    latency_cross: Percentiles,
    server: Option<ServerUse>,
    backplane: Option<ServerUse>,
    /// How long `--cpu-tail` waited for the servers to go idle.
    tail_s: Option<f64>,
    own_cpu_s: f64,
    started: u64,
    /// When the last cross-node delivery arrived, seconds after the start of sending.
    last_cross_s: Option<f64>,
    kill: Option<Kill>,
    churn: Option<ChurnReport>,
}

#[derive(Debug, Default)]
struct Totals {
    expected: u64,
    delivered: u64,
    lost: u64,
    duplicates: u64,
    out_of_order: u64,
    stale: u64,
    missed_told: u64,
    missed_notices: u64,
    receivers_ended: usize,
    first_ended: Option<String>,
    reads: u64,
    stamped_reads: u64,
    /// Deliveries between daemons (sender and receiver on different ones).
    expected_cross: u64,
    delivered_cross: u64,
    lost_cross: u64,
    lost_local: u64,
    watched: Vec<Watched>,
}

/// How many lines containing one watched text arrived, at how many receivers, and when.
#[derive(Debug, Default, Clone)]
struct Watched {
    lines: u64,
    receivers: u64,
    /// Receivers that saw it, per daemon.
    receivers_by_node: Vec<u64>,
    first: Option<u64>,
    last_first: Option<u64>,
}

impl Totals {
    fn of(accounts: &[Account], expected: u64, watches: usize) -> Self {
        let nodes = accounts.iter().map(|a| a.node + 1).max().unwrap_or(1);
        let mut t = Totals {
            expected,
            watched: vec![
                Watched { receivers_by_node: vec![0; nodes], ..Watched::default() };
                watches
            ],
            ..Totals::default()
        };
        for a in accounts {
            t.delivered += a.fresh;
            t.lost += a.expected.saturating_sub(a.fresh);
            t.expected_cross += a.expected_cross;
            t.delivered_cross += a.fresh_cross;
            t.lost_cross += a.expected_cross.saturating_sub(a.fresh_cross);
            t.lost_local += (a.expected - a.expected_cross).saturating_sub(a.fresh - a.fresh_cross);
            for (w, &(lines, first)) in t.watched.iter_mut().zip(&a.watched) {
                w.lines += lines;
                if let Some(first) = first {
                    w.receivers += 1;
                    w.receivers_by_node[a.node] += 1;
                    w.first = Some(w.first.map_or(first, |f| f.min(first)));
                    w.last_first = Some(w.last_first.map_or(first, |f| f.max(first)));
                }
            }
            t.duplicates += a.duplicates;
            t.out_of_order += a.out_of_order;
            t.stale += a.stale;
            t.missed_told += a.missed_told;
            t.missed_notices += a.missed_notices;
            t.reads += a.reads;
            t.stamped_reads += a.stamped_reads;
            if let Some(why) = &a.ended {
                t.receivers_ended += 1;
                t.first_ended.get_or_insert_with(|| why.clone());
            }
        }
        t
    }
}

fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 { count as f64 / seconds } else { 0.0 }
}

fn to_json(plan: &Plan, f: &Facts, t: &Totals, slow: Option<&SlowReport>) -> Value {
    let latency = |p: &Percentiles| {
        json!({
            "count": p.count, "mean": round(p.mean, 1), "p50": round(p.p50, 1),
            "p99": round(p.p99, 1), "p999": round(p.p999, 1), "max": round(p.max, 1),
        })
    };
    let usage = |s: &ServerUse, pids: &[u32]| {
        json!({
            "pid": if pids.len() == 1 { json!(pids[0]) } else { json!(pids) },
            "cpu_s": round(s.cpu_s, 3),
            "cpu_tail_s": s.cpu_tail_s.map(|t| round(t, 3)),
            "tail_wait_s": f.tail_s.map(|t| round(t, 3)),
            "cpu_util": round(s.cpu_s / f.wall_s.max(1e-9), 3),
            "rss_kib_before": s.before.rss_kib,
            "rss_kib_after": s.after.rss_kib,
            "peak_rss_kib": s.after.peak_kib,
            "peak_reset": s.peak_reset,
            "each": (pids.len() > 1).then(|| s.each.iter().map(|(cpu, peak)| json!({
                "cpu_s": round(*cpu, 3), "peak_rss_kib": peak,
            })).collect::<Vec<_>>()),
        })
    };
    let server = f.server.as_ref().map(|s| usage(s, &plan.server_pids));
    let backplane_pid: Vec<u32> = plan.backplane_pid.into_iter().collect();
    let backplane = f.backplane.as_ref().map(|s| usage(s, &backplane_pid));
    let slow = slow.map(|s| {
        json!({
            "tokens_received": s.tokens,
            "missed_told": s.missed_told,
            "missed_notices": s.missed_notices,
            "first_notice": s.first_notice,
            "ended": s.ended,
            "read_s": round(s.read_s, 2),
        })
    });
    let cross = (plan.nodes() > 1).then(|| {
        json!({
            "expected": t.expected_cross,
            "delivered": t.delivered_cross,
            "lost": t.lost_cross,
            "local_expected": t.expected - t.expected_cross,
            "local_delivered": t.delivered - t.delivered_cross,
            "local_lost": t.lost_local,
            "last_cross_delivery_s": f.last_cross_s.map(|s| round(s, 3)),
            "latency_local_us": latency(&f.latency_local),
            "latency_cross_us": latency(&f.latency_cross),
        })
    });
    let since = |at: u64| round((at as f64 - f.started as f64) / 1e9, 3);
    let watched: Vec<Value> = plan
        .watch
        .iter()
        .zip(&t.watched)
        .map(|(text, w)| {
            json!({
                "text": text,
                "lines": w.lines,
                "receivers": w.receivers,
                "receivers_by_node": w.receivers_by_node,
                "first_s": w.first.map(since),
                "last_first_s": w.last_first.map(since),
            })
        })
        .collect();
    let kill = f.kill.as_ref().map(|k| {
        json!({
            "pid": k.pid, "at_s": k.at_s.map(|s| round(s, 3)),
            "local_delivered_after": k.local_after, "cross_delivered_after": k.cross_after,
        })
    });
    let churn = f.churn.as_ref().map(|c| {
        json!({
            "started": c.started, "joined": c.joined, "left": c.left, "failed": c.failed,
            "skipped": c.skipped, "first_error": c.first_error,
        })
    });
    json!({
        "mode": "load",
        "label": plan.label,
        "protocol": plan.protocol.name(),
        "run": plan.run,
        "clients": plan.clients,
        "senders": plan.senders,
        "messages_per_sender": plan.messages,
        "size": plan.size,
        "rate_per_sender": plan.rate,
        "slow_reader": plan.slow_reader,
        "complete": f.complete,
        "setup_s": round(f.setup_s, 3),
        "settle_s": round(f.settle_s, 3),
        "send_s": round(f.send_s, 3),
        "window_s": round(f.window_s, 3),
        "wall_s": round(f.wall_s, 3),
        "sent": f.sent,
        "senders_failed": f.send_failures,
        "sent_per_s": round(per_second(f.sent, f.send_s), 0),
        "expected": t.expected,
        "delivered": t.delivered,
        "lost": t.lost,
        "duplicates": t.duplicates,
        "out_of_order": t.out_of_order,
        "stale": t.stale,
        "missed_told": t.missed_told,
        "missed_notices": t.missed_notices,
        "receivers_disconnected": t.receivers_ended,
        "disconnect_reason": t.first_ended,
        "deliveries_per_s": round(per_second(t.delivered, f.window_s), 0),
        "epoch_mono_ns": crate::metrics::epoch(),
        "started_ns": f.started,
        "nodes": plan.nodes(),
        "cross": cross,
        "watched": watched,
        "kill": kill,
        "churn": churn,
        "latency_us": latency(&f.latency),
        "latency_clock": clock_name(t),
        "server": server,
        "backplane": backplane,
        "loadgen": {
            "cpu_s": round(f.own_cpu_s, 3),
            "cpu_util": round(f.own_cpu_s / f.wall_s.max(1e-9), 3),
        },
        "slow": slow,
    })
}

/// Which clock timed the deliveries: the kernel's receive stamps, our reads, or both.
fn clock_name(t: &Totals) -> &'static str {
    match t.stamped_reads {
        0 => "read",
        n if n == t.reads => "kernel",
        _ => "mixed",
    }
}

/// A JSON number rounded to `places` decimals; null when not finite.
pub fn round(value: f64, places: i32) -> Value {
    if !value.is_finite() {
        return Value::Null;
    }
    let scale = 10f64.powi(places);
    json!((value * scale).round() / scale)
}

fn summarize(plan: &Plan, f: &Facts, t: &Totals, slow: Option<&SlowReport>) -> String {
    let mut s = format!(
        "[{label}] {proto} run {run}: {clients} clients, {senders} senders x {messages} msgs of {size} B{rate}{slow}\n\
         \x20 joined in {setup:.2}s (+{settle:.2}s settling); sent {sent} in {send:.2}s\n\
         \x20 delivered {delivered}/{expected} in {window:.2}s = {dps:.0}/s; lost {lost}, duplicates {dups}, \
         out of order {ooo}{complete}\n\
         \x20 latency p50 {p50:.2} ms, p99 {p99:.2} ms, p99.9 {p999:.2} ms, max {max:.2} ms \
         ({clock} clock)\n",
        label = plan.label,
        proto = plan.protocol.name(),
        run = plan.run,
        clients = plan.clients,
        senders = plan.senders,
        messages = plan.messages,
        size = plan.size,
        rate = if plan.rate > 0.0 {
            format!(" at {}/s each", plan.rate)
        } else {
            " flat out".to_owned()
        },
        slow = if plan.slow_reader { " + 1 slow reader" } else { "" },
        setup = f.setup_s,
        settle = f.settle_s,
        sent = f.sent,
        send = f.send_s,
        delivered = t.delivered,
        expected = t.expected,
        window = f.window_s,
        dps = per_second(t.delivered, f.window_s),
        lost = t.lost,
        dups = t.duplicates,
        ooo = t.out_of_order,
        complete = if f.complete { "" } else { " (INCOMPLETE)" },
        p50 = f.latency.p50 / 1e3,
        p99 = f.latency.p99 / 1e3,
        p999 = f.latency.p999 / 1e3,
        max = f.latency.max / 1e3,
        clock = clock_name(t),
    );
    if f.send_failures > 0 {
        s += &format!("  {} senders failed to write\n", f.send_failures);
    }
    if t.missed_notices > 0 {
        s += &format!(
            "  receivers were told they missed {} messages in {} notices\n",
            t.missed_told, t.missed_notices
        );
    }
    if t.receivers_ended > 0 {
        s += &format!(
            "  {} receivers were disconnected ({})\n",
            t.receivers_ended,
            t.first_ended.as_deref().unwrap_or("?")
        );
    }
    if plan.nodes() > 1 {
        s += &format!(
            "  across {} daemons: local {}/{} (lost {}), cross-node {}/{} (lost {}), \
             last cross-node delivery at {}\n\x20 latency local p50 {:.2} ms p99 {:.2} ms; \
             cross-node p50 {:.2} ms p99 {:.2} ms\n",
            plan.nodes(),
            t.delivered - t.delivered_cross,
            t.expected - t.expected_cross,
            t.lost_local,
            t.delivered_cross,
            t.expected_cross,
            t.lost_cross,
            f.last_cross_s.map(|s| format!("{s:.3}s")).unwrap_or_else(|| "-".to_owned()),
            f.latency_local.p50 / 1e3,
            f.latency_local.p99 / 1e3,
            f.latency_cross.p50 / 1e3,
            f.latency_cross.p99 / 1e3,
        );
    }
    if let Some(kill) = &f.kill {
        s += &format!(
            "  SIGKILL to PID {} {}; delivered after it: {} local, {} cross-node\n",
            kill.pid,
            match kill.at_s {
                None => "never sent (the run ended first)".to_owned(),
                Some(at) if at.is_nan() => "failed".to_owned(),
                Some(at) => format!("at {at:.3}s"),
            },
            kill.local_after,
            kill.cross_after,
        );
    }
    for (text, w) in plan.watch.iter().zip(&t.watched) {
        s += &format!(
            "  \"{text}\": {} lines at {} receivers (per daemon {:?}){}\n",
            w.lines,
            w.receivers,
            w.receivers_by_node,
            w.first
                .map(|at| format!(", first at {:.3}s", (at as f64 - f.started as f64) / 1e9))
                .unwrap_or_default(),
        );
    }
    if let Some(c) = &f.churn {
        s += &format!(
            "  churn: {} started, {} joined, {} left, {} failed, {} skipped{}\n",
            c.started,
            c.joined,
            c.left,
            c.failed,
            c.skipped,
            c.first_error.as_deref().map(|e| format!(" (first error: {e})")).unwrap_or_default(),
        );
    }
    for (what, usage) in [("server", &f.server), ("backplane", &f.backplane)] {
        if let Some(server) = usage {
            s += &format!(
                "  {what}: {:.2} CPU s ({:.0}% of wall){}, RSS {} -> {} KiB, peak {} KiB{}\n",
                server.cpu_s,
                100.0 * server.cpu_s / f.wall_s.max(1e-9),
                server
                    .cpu_tail_s
                    .map(|t| format!(" + {t:.2} s after the last delivery"))
                    .unwrap_or_default(),
                server.before.rss_kib,
                server.after.rss_kib,
                server.after.peak_kib,
                if server.peak_reset { "" } else { " (peak since start)" },
            );
        }
    }
    s += &format!(
        "  loadgen: {:.2} CPU s ({:.0}% of wall)\n",
        f.own_cpu_s,
        100.0 * f.own_cpu_s / f.wall_s.max(1e-9)
    );
    if let Some(slow) = slow {
        s += &format!(
            "  slow reader: got {} messages, told it missed {} in {} notices{}{}\n",
            slow.tokens,
            slow.missed_told,
            slow.missed_notices,
            slow.first_notice.as_deref().map(|n| format!(" (\"{n}\")")).unwrap_or_default(),
            slow.ended.as_deref().map(|e| format!("; connection ended: {e}")).unwrap_or_default(),
        );
    }
    s
}

fn spawn_progress(
    plan: &Plan,
    shared: &Arc<Shared>,
    servers: Vec<Process>,
    started: u64,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let shared = Arc::clone(shared);
    let label = plan.label.clone();
    let total_sent = plan.senders as u64 * plan.messages;
    let cpu_of = move || -> Option<f64> {
        if servers.is_empty() {
            return None;
        }
        servers.iter().map(|p| p.cpu_seconds().ok()).sum()
    };
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        ticks.tick().await;
        let mut last_delivered = 0;
        let mut last_cpu = cpu_of();
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = ticks.tick() => {}
            }
            let elapsed = seconds_between(started, now_nanos());
            let delivered = shared.delivered.load(Ordering::Relaxed);
            let cpu = cpu_of();
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
        }
    })
}

/// Runs the receiving path (framing, token search, accounting, histogram) over decorated chat
/// lines held in memory, to show how many deliveries per second one core of the load generator
/// can take apart: it must be far above what any server here delivers.
pub async fn parse_bench(lines: u64, size: usize, rounds: u32) -> Result<Outcome> {
    const SENDERS: usize = 100;
    let messages = lines.div_ceil(SENDERS as u64);
    let shared = Shared {
        protocol: Protocol::Chat,
        tag: run_tag(0),
        nodes: 1,
        watch: Vec::new(),
        last_cross_delivery: AtomicU64::new(0),
        killed_at: AtomicU64::new(0),
        after_kill_local: AtomicU64::new(0),
        after_kill_cross: AtomicU64::new(0),
        senders: SENDERS,
        messages,
        sent: AtomicU64::new(0),
        send_failures: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        lines: AtomicU64::new(0),
        last_delivery: AtomicU64::new(0),
        receivers_pending: AtomicUsize::new(1),
        all_received: Notify::new(),
        senders_pending: AtomicUsize::new(0),
        all_sent: Notify::new(),
    };
    let shared = Arc::new(shared);
    let mut data = Vec::new();
    let mut text = Vec::new();
    for seq in 0..messages {
        for sender in 0..SENDERS {
            text.clear();
            let token = Token { sender: sender as u32, seq, nanos: now_nanos(), tag: shared.tag };
            token.write_padded(&mut text, size);
            data.extend_from_slice("\x1b[38;5;208m\u{1f98a} lgabc1x".as_bytes());
            data.extend_from_slice(sender.to_string().as_bytes());
            data.extend_from_slice(b": ");
            data.extend_from_slice(&text);
            data.extend_from_slice(b"\x1b[0m\r\n");
        }
    }
    let total_lines = messages * SENDERS as u64;
    let (_stop_tx, stop) = watch::channel(false);
    let mut best = f64::INFINITY;
    for _ in 0..rounds.max(1) {
        let account = Account::new(total_lines, SENDERS, messages);
        let reader = LineReader::new(&data[..], 64 * 1024);
        let started = now_nanos();
        let account = receive(reader, Arc::clone(&shared), account, stop.clone(), None).await;
        let took = seconds_between(started, now_nanos());
        if account.fresh != total_lines {
            bail!("parse bench counted {} of {total_lines} lines", account.fresh);
        }
        best = best.min(took);
    }
    let per_second = total_lines as f64 / best;
    let bytes_per_second = data.len() as f64 / best;
    Ok(Outcome {
        json: json!({
            "mode": "parse-bench",
            "lines": total_lines,
            "bytes": data.len(),
            "best_s": round(best, 4),
            "lines_per_s": round(per_second, 0),
            "ns_per_line": round(1e9 / per_second, 1),
            "mib_per_s": round(bytes_per_second / 1048576.0, 1),
        }),
        summary: format!(
            "parse bench: {total_lines} decorated lines ({} MiB) in {best:.3}s = {:.1} M lines/s \
             ({:.0} ns/line, {:.0} MiB/s) on one core\n",
            data.len() / 1048576,
            per_second / 1e6,
            1e9 / per_second,
            bytes_per_second / 1048576.0
        ),
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
