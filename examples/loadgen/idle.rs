//! The idle mode: many named connections (chat, web or IRC) that only listen, the server memory
//! they cost, and how long one message takes to reach all of them.
//!
//! Connections come from a spread of loopback source addresses, at most `--concurrency`
//! connecting at once, and every one reads continuously from the moment it joins (join notices,
//! presence summaries), as a real idle client would. Server memory is sampled before the first
//! connection and after the joins have settled; the difference over N is the cost of one idle
//! connection. Then one extra client joins and sends a single token, and the time until the last
//! idle connection has it is the broadcast time. An idle IRC connection answers the server's
//! PINGs, as a real client would, so a server that checks its idle clients keeps them.
//!
//! Across processes and daemons (W6): with several `--addr`s, connection i goes to address
//! i mod K; with `--broadcast external` the process does not send the message itself. Once its
//! connections have joined and gone quiet it writes `--ready-file` and waits for a token with
//! `--run-tag` sent by another process (`--mode cast`). All processes of such a run share
//! `--clock-epoch`, so each one reports, on the shared `CLOCK_MONOTONIC` timeline, when the
//! message was sent and when its last connection received it; the coordinator takes the maximum.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::connect::{connect, in_parallel, spread_source};
use crate::metrics::{
    Histogram, Percentiles, epoch, now_nanos, run_tag, seconds_between, spawn_every_second,
    wait_until_quiet,
};
use crate::outcome::{Outcome, round};
use crate::protocol::{JoinOptions, Joined, Protocol};
use crate::sampling::{memory_of, reset_peaks};
use crate::system::{Memory, Process, ensure_descriptors};
use crate::wire::{LineReader, Token, TokenFinder};

#[derive(Debug, Clone)]
pub struct Plan {
    /// What the idle clients and the broadcaster speak: `chat`, `web` (the WebSocket door) or
    /// `irc`.
    pub protocol: Protocol,
    /// Connection i goes to `servers[i % servers.len()]`; the broadcaster to the first.
    pub servers: Vec<SocketAddr>,
    pub clients: usize,
    pub concurrency: usize,
    pub size: usize,
    pub join: JoinOptions,
    /// Memory is summed over these processes.
    pub server_pids: Vec<u32>,
    /// Another process sends the message (`--broadcast external`).
    pub external: bool,
    pub ready_file: Option<PathBuf>,
    /// This run's tag instead of a random one (all processes of an external broadcast share it).
    pub tag: Option<u32>,
    /// Spread source addresses from 127.0.0.(1 + (source_offset + i) % 250).
    pub source_offset: usize,
    /// Texts whose lines are counted (a daemon's notices), with the connections that saw them.
    pub watch: Vec<String>,
    /// After the broadcast, keep every connection open (and read) this long before closing.
    pub hold: Duration,
    pub setup_timeout: Duration,
    pub settle_quiet: Duration,
    pub settle_timeout: Duration,
    pub broadcast_timeout: Duration,
    /// Time arrivals by the kernel's receive stamps rather than by when we read them.
    pub kernel_clock: bool,
    pub progress: bool,
    pub label: String,
    pub names: String,
    pub run: usize,
}

struct Shared {
    tag: u32,
    joined: AtomicUsize,
    lines: AtomicU64,
    arrived: AtomicUsize,
    first_arrival: AtomicU64,
    last_arrival: AtomicU64,
    /// The send time carried by the token (shared epoch).
    token_sent: AtomicU64,
    /// Per server address: the last arrival there.
    last_arrival_by_server: Vec<AtomicU64>,
    all_arrived: Notify,
    missed_told: AtomicU64,
    disconnected: AtomicUsize,
    watch: Vec<Vec<u8>>,
    /// Per watched text: lines, and connections that saw at least one.
    watched: Vec<(AtomicU64, AtomicU64)>,
    latency: Mutex<Histogram>,
    clients: usize,
}

pub async fn run(plan: &Plan) -> Result<Outcome> {
    // N idle sockets, the broadcaster, and a margin for the runtime and stdio.
    ensure_descriptors(plan.clients as u64 + 64)?;
    let shared = Arc::new(Shared {
        tag: plan.tag.unwrap_or_else(|| run_tag(plan.run)),
        joined: AtomicUsize::new(0),
        lines: AtomicU64::new(0),
        arrived: AtomicUsize::new(0),
        first_arrival: AtomicU64::new(u64::MAX),
        last_arrival: AtomicU64::new(0),
        token_sent: AtomicU64::new(0),
        last_arrival_by_server: plan.servers.iter().map(|_| AtomicU64::new(0)).collect(),
        all_arrived: Notify::new(),
        missed_told: AtomicU64::new(0),
        watch: plan.watch.iter().map(|w| w.as_bytes().to_vec()).collect(),
        watched: plan.watch.iter().map(|_| (AtomicU64::new(0), AtomicU64::new(0))).collect(),
        disconnected: AtomicUsize::new(0),
        latency: Mutex::default(),
        clients: plan.clients,
    });
    let (stop_tx, stop) = watch::channel(false);
    let server = (!plan.server_pids.is_empty())
        .then(|| Servers(plan.server_pids.iter().map(|&pid| Process::Pid(pid)).collect()));
    let peak_reset = server.as_ref().is_some_and(|p| p.reset_peak());
    let before = server.as_ref().map(Servers::memory);

    let started = now_nanos();
    let progress =
        plan.progress.then(|| spawn_progress(plan, &shared, server.clone(), started, stop.clone()));
    let connections = tokio::time::timeout(
        plan.setup_timeout,
        in_parallel(plan.clients, plan.concurrency, |i| {
            let plan = plan.clone();
            let shared = Arc::clone(&shared);
            let stop = stop.clone();
            async move { open_idle(&plan, i, shared, stop).await }
        }),
    )
    .await
    .with_context(|| {
        format!("{} idle clients did not all join within {:?}", plan.clients, plan.setup_timeout)
    })??;
    let connect_s = seconds_between(started, now_nanos());
    let settle_s = wait_until_quiet(&shared.lines, plan.settle_quiet, plan.settle_timeout).await;
    let after = server.as_ref().map(Servers::memory);

    let broadcast = if plan.external {
        await_broadcast(plan, &shared, connect_s, settle_s).await
    } else {
        broadcast_once(plan, &shared).await
    };
    if !plan.hold.is_zero() {
        if plan.progress {
            eprintln!("[{}] holding the connections open for {:?}", plan.label, plan.hold);
        }
        tokio::time::sleep(plan.hold).await;
    }
    let _ = stop_tx.send(true);
    if let Some(progress) = progress {
        progress.abort();
    }
    for reader in connections {
        reader.abort();
    }
    let broadcast = broadcast?;

    let memory = before.zip(after);
    let per_connection = memory
        .map(|(b, a)| (a.rss_kib as f64 - b.rss_kib as f64) * 1024.0 / plan.clients.max(1) as f64);
    let facts = Facts {
        connect_s,
        settle_s,
        memory,
        peak_reset,
        per_connection,
        broadcast,
        missed_told: shared.missed_told.load(Ordering::Relaxed),
        disconnected: shared.disconnected.load(Ordering::Relaxed),
    };
    Ok(Outcome { json: to_json(plan, &facts, &shared), summary: summarize(plan, &facts, &shared) })
}

async fn open_idle(
    plan: &Plan,
    i: usize,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>> {
    let server = plan.servers[i % plan.servers.len()];
    let source = spread_source(plan.source_offset + i);
    let stream = connect(server, Some(source), plan.kernel_clock).await?;
    let name = format!("{}{}i{i}", plan.names, plan.run);
    let Joined { reader, writer, .. } = plan.protocol.join(stream, &name, &plan.join).await?;
    shared.joined.fetch_add(1, Ordering::Relaxed);
    let server = i % plan.servers.len();
    Ok(tokio::spawn(listen(reader, writer, shared, stop, server, plan.protocol)))
}

/// Reads everything that arrives, answering what must be answered (IRC PING) on `writer`, which
/// it keeps open until it stops; notes the broadcast token once.
async fn listen(
    mut reader: LineReader<OwnedReadHalf>,
    mut writer: OwnedWriteHalf,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    server: usize,
    protocol: Protocol,
) {
    let mut answers = Vec::new();
    let finder = TokenFinder;
    let mut arrived = false;
    let mut seen = vec![false; shared.watch.len()];
    loop {
        let read = tokio::select! {
            biased;
            _ = stop.changed() => return,
            read = reader.fill() => read,
        };
        let stamp = match read {
            Ok((n, stamp)) if n > 0 => stamp,
            _ => {
                shared.disconnected.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let now = stamp.unwrap_or_else(now_nanos);
        let mut lines = 0;
        while let Some(line) = reader.next_line() {
            lines += 1;
            match finder.find(line) {
                Some(token) if token.tag == shared.tag && !arrived => {
                    arrived = true;
                    if let Ok(mut latency) = shared.latency.lock() {
                        latency.record(now.saturating_sub(token.nanos));
                    }
                    shared.token_sent.store(token.nanos, Ordering::Relaxed);
                    shared.first_arrival.fetch_min(now, Ordering::Relaxed);
                    shared.last_arrival.fetch_max(now, Ordering::Relaxed);
                    shared.last_arrival_by_server[server].fetch_max(now, Ordering::Relaxed);
                    if shared.arrived.fetch_add(1, Ordering::AcqRel) + 1 == shared.clients {
                        shared.all_arrived.notify_one();
                    }
                }
                Some(_) => {}
                None => {
                    for (k, pattern) in shared.watch.iter().enumerate() {
                        if memchr::memmem::find(line, pattern).is_some() {
                            shared.watched[k].0.fetch_add(1, Ordering::Relaxed);
                            if !std::mem::replace(&mut seen[k], true) {
                                shared.watched[k].1.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    if let Some(count) = protocol.missed_count(line) {
                        shared.missed_told.fetch_add(count, Ordering::Relaxed);
                    } else if let Some(answer) = protocol.reply_to(line) {
                        answers.extend_from_slice(&answer);
                    }
                }
            }
        }
        shared.lines.fetch_add(lines, Ordering::Relaxed);
        if !answers.is_empty() {
            if writer.write_all(&answers).await.is_err() {
                shared.disconnected.fetch_add(1, Ordering::Relaxed);
                return;
            }
            answers.clear();
        }
        reader.shrink_when_idle();
    }
}

struct Broadcast {
    /// From the send to the last idle connection's receipt; `None` if not all received it.
    all_s: Option<f64>,
    arrived: usize,
    join_s: f64,
    /// External broadcasts: how long this process waited for the message.
    waited_s: f64,
}

/// `--broadcast external`: says it is ready, then waits for another process's message.
async fn await_broadcast(
    plan: &Plan,
    shared: &Shared,
    connect_s: f64,
    settle_s: f64,
) -> Result<Broadcast> {
    if let Some(path) = &plan.ready_file {
        let ready = json!({
            "pid": std::process::id(),
            "clients": plan.clients,
            "joined": shared.joined.load(Ordering::Relaxed),
            "connect_s": round(connect_s, 3),
            "settle_s": round(settle_s, 3),
            "lines_received": shared.lines.load(Ordering::Relaxed),
            "disconnected": shared.disconnected.load(Ordering::Relaxed),
        });
        // Written whole under another name, then renamed: a reader never sees half of it.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, format!("{ready}\n"))
            .and_then(|()| std::fs::rename(&partial, path))
            .with_context(|| format!("writing the ready file {}", path.display()))?;
    }
    if plan.progress {
        eprintln!(
            "[{}] ready: {} joined; waiting up to {:?} for the broadcast",
            plan.label,
            shared.joined.load(Ordering::Relaxed),
            plan.broadcast_timeout
        );
    }
    let waiting = now_nanos();
    let all =
        tokio::time::timeout(plan.broadcast_timeout, shared.all_arrived.notified()).await.is_ok();
    let sent = shared.token_sent.load(Ordering::Relaxed);
    let last = shared.last_arrival.load(Ordering::Relaxed);
    Ok(Broadcast {
        all_s: all.then(|| seconds_between(sent, last)),
        arrived: shared.arrived.load(Ordering::Relaxed),
        join_s: 0.0,
        waited_s: seconds_between(waiting, now_nanos()),
    })
}

/// One extra client joins, waits for its join to settle, and sends one token to everyone.
async fn broadcast_once(plan: &Plan, shared: &Shared) -> Result<Broadcast> {
    let joining = now_nanos();
    let source = spread_source(plan.source_offset + plan.clients);
    let stream = connect(plan.servers[0], Some(source), false).await?;
    let name = format!("{}{}cast", plan.names, plan.run);
    let Joined { mut reader, mut writer, .. } = plan
        .protocol
        .join(stream, &name, &plan.join)
        .await
        .context("the broadcasting client could not join")?;
    let join_s = seconds_between(joining, now_nanos());
    // Its own join notice goes to everyone; let that pass before timing the message.
    wait_until_quiet(&shared.lines, plan.settle_quiet, plan.settle_timeout).await;
    let mut text = Vec::with_capacity(plan.size);
    let mut line = Vec::with_capacity(plan.size + 16);
    let sent_at = now_nanos();
    shared.token_sent.store(sent_at, Ordering::Relaxed);
    Token { sender: 0, seq: 0, nanos: sent_at, tag: shared.tag }.write_padded(&mut text, plan.size);
    plan.protocol.frame_message(&mut line, plan.join.speaks_in(), &text);
    writer.write_all(&line).await.context("sending the broadcast")?;
    let deadline = Instant::now() + plan.broadcast_timeout;
    let mut answers = Vec::new();
    let all = tokio::time::timeout_at(deadline, async {
        // Keep the broadcaster's own input drained while waiting.
        loop {
            tokio::select! {
                _ = shared.all_arrived.notified() => return,
                read = reader.fill() => if !matches!(read, Ok((n, _)) if n > 0) {
                    shared.all_arrived.notified().await;
                    return;
                } else {
                    while let Some(line) = reader.next_line() {
                        if let Some(answer) = plan.protocol.reply_to(line) {
                            answers.extend_from_slice(&answer);
                        }
                    }
                    if !answers.is_empty() && writer.write_all(&answers).await.is_err() {
                        shared.all_arrived.notified().await;
                        return;
                    }
                    answers.clear();
                },
            }
        }
    })
    .await
    .is_ok();
    let last = shared.last_arrival.load(Ordering::Relaxed);
    Ok(Broadcast {
        all_s: all.then(|| seconds_between(sent_at, last)),
        arrived: shared.arrived.load(Ordering::Relaxed),
        join_s,
        waited_s: 0.0,
    })
}

fn latency_of(shared: &Shared) -> Percentiles {
    shared.latency.lock().map(|h| h.percentiles()).unwrap_or_default()
}

struct Facts {
    connect_s: f64,
    settle_s: f64,
    memory: Option<(Memory, Memory)>,
    peak_reset: bool,
    per_connection: Option<f64>,
    broadcast: Broadcast,
    missed_told: u64,
    disconnected: usize,
}

fn to_json(plan: &Plan, f: &Facts, shared: &Shared) -> Value {
    let latency = latency_of(shared);
    let by_addr: Vec<Value> = plan
        .servers
        .iter()
        .zip(&shared.last_arrival_by_server)
        .map(|(addr, at)| {
            let at = nonzero(at.load(Ordering::Relaxed));
            json!({ "addr": addr.to_string(), "last_arrival_ns": at })
        })
        .collect();
    json!({
        "mode": "idle",
        "label": plan.label,
        "protocol": plan.protocol.name(),
        "run": plan.run,
        "clients": plan.clients,
        "connect_s": round(f.connect_s, 3),
        "joins_per_s": round(plan.clients as f64 / f.connect_s.max(1e-9), 0),
        "settle_s": round(f.settle_s, 3),
        "lines_received": shared.lines.load(Ordering::Relaxed),
        "missed_told": f.missed_told,
        "watched": plan.watch.iter().zip(&shared.watched).map(|(text, (lines, conns))| json!({
            "text": text,
            "lines": lines.load(Ordering::Relaxed),
            "connections": conns.load(Ordering::Relaxed),
        })).collect::<Vec<_>>(),
        "disconnected": f.disconnected,
        "server": f.memory.map(|(b, a)| json!({
            "pid": match plan.server_pids.as_slice() {
                [one] => json!(one),
                all => json!(all),
            },
            "rss_kib_before": b.rss_kib,
            "rss_kib_after": a.rss_kib,
            "peak_rss_kib": a.peak_kib,
            "peak_reset": f.peak_reset,
            "bytes_per_connection": f.per_connection.map(f64::round),
        })),
        "broadcast": {
            "external": plan.external,
            "tag": shared.tag,
            "arrived": f.broadcast.arrived,
            "all_ms": f.broadcast.all_s.map(|s| round(s * 1e3, 3)),
            "waited_s": round(f.broadcast.waited_s, 3),
            "epoch_mono_ns": epoch(),
            "sent_ns": nonzero(shared.token_sent.load(Ordering::Relaxed)),
            "first_arrival_ns": nonzero(shared.first_arrival.load(Ordering::Relaxed) % u64::MAX),
            "last_arrival_ns": nonzero(shared.last_arrival.load(Ordering::Relaxed)),
            "last_arrival_ns_by_addr": by_addr,
            "p50_ms": round(latency.p50 / 1e3, 3),
            "p99_ms": round(latency.p99 / 1e3, 3),
            "broadcaster_join_ms": round(f.broadcast.join_s * 1e3, 3),
        },
    })
}

fn nonzero(value: u64) -> Option<u64> {
    (value > 0).then_some(value)
}

fn summarize(plan: &Plan, f: &Facts, shared: &Shared) -> String {
    let latency = latency_of(shared);
    let mut s = format!(
        "[{}] idle run {}: {} named connections joined in {:.2}s ({:.0}/s), settled in {:.2}s, \
         {} lines received\n",
        plan.label,
        plan.run,
        plan.clients,
        f.connect_s,
        plan.clients as f64 / f.connect_s.max(1e-9),
        f.settle_s,
        shared.lines.load(Ordering::Relaxed),
    );
    if let (Some((b, a)), Some(per)) = (f.memory, f.per_connection) {
        s += &format!(
            "  server RSS {} -> {} KiB = {:.0} bytes ({:.2} KiB) per connection; peak {} KiB{}\n",
            b.rss_kib,
            a.rss_kib,
            per,
            per / 1024.0,
            a.peak_kib,
            if f.peak_reset { "" } else { " (since start)" }
        );
    }
    s += &match f.broadcast.all_s {
        Some(all) => format!(
            "  one message reached all {} in {:.1} ms (p50 {:.1} ms, p99 {:.1} ms)\n",
            plan.clients,
            all * 1e3,
            latency.p50 / 1e3,
            latency.p99 / 1e3
        ),
        None => format!(
            "  one message reached only {} of {} within {:?}\n",
            f.broadcast.arrived, plan.clients, plan.broadcast_timeout
        ),
    };
    if f.disconnected > 0 || f.missed_told > 0 {
        s += &format!(
            "  {} idle connections were closed by the server; they were told of {} missed lines\n",
            f.disconnected, f.missed_told
        );
    }
    s
}

fn spawn_progress(
    plan: &Plan,
    shared: &Arc<Shared>,
    server: Option<Servers>,
    started: u64,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let shared = Arc::clone(shared);
    let label = plan.label.clone();
    let total = plan.clients;
    let mut last_joined = 0;
    spawn_every_second(stop, move || {
        let joined = shared.joined.load(Ordering::Relaxed);
        let rss = server
            .as_ref()
            .map(|p| format!(", server RSS {} KiB", p.memory().rss_kib))
            .unwrap_or_default();
        eprintln!(
            "[{label}] {:5.1}s joined {joined}/{total} (+{}/s), {} lines{rss}",
            seconds_between(started, now_nanos()),
            joined - last_joined,
            shared.lines.load(Ordering::Relaxed),
        );
        last_joined = joined;
    })
}

/// Refuses an idle run that could not work.
pub fn check(plan: &Plan) -> Result<()> {
    if plan.clients == 0 {
        bail!("--clients must be at least 1 for the idle mode");
    }
    if plan.servers.is_empty() || plan.servers.iter().any(|s| !s.is_ipv4()) {
        bail!("the idle mode spreads sources over 127.0.0.x and needs IPv4 server addresses");
    }
    if plan.external && plan.tag.is_none() {
        bail!("--broadcast external needs --run-tag, the tag the casting process will send");
    }
    Ok(())
}

/// The daemons whose memory an idle run reports: the sum over all of them.
#[derive(Debug, Clone)]
struct Servers(Vec<Process>);

impl Servers {
    fn memory(&self) -> Memory {
        memory_of(&self.0)
    }

    fn reset_peak(&self) -> bool {
        reset_peaks(&self.0)
    }
}
