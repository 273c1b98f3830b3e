//! The report of a load run: the facts gathered while it ran, the receivers' accounts added up,
//! and both rendered as one JSON line (the fields `bench/` reads) and a summary for a person.

use serde_json::{Value, json};

use super::account::Account;
use super::churn::ChurnReport;
use super::rooms::ByRoom;
use super::slow_reader::SlowReport;
use super::{JoinCpu, Plan, seconds_after};
use crate::metrics::{Histogram, Percentiles};
use crate::outcome::{Outcome, round};
use crate::sampling::{Measured, Usage};

/// What the run observed, besides the receivers' accounts.
pub struct Facts {
    pub setup_s: f64,
    pub settle_s: f64,
    pub send_s: f64,
    pub wall_s: f64,
    /// From the start of sending to the last fresh delivery.
    pub window_s: f64,
    pub sent: u64,
    pub send_failures: u64,
    /// Clients that connected again after a reset while joining.
    pub rejoins: u64,
    pub complete: bool,
    pub latency: Latencies,
    pub measured: Measured,
    pub started: u64,
    /// When the last cross-node delivery arrived, seconds after the start of sending.
    pub last_cross_s: Option<f64>,
    pub kill: Option<Kill>,
    pub churn: Option<ChurnReport>,
    /// The servers' resident memory before the first client connected.
    pub rss_kib_before_clients: Option<u64>,
    /// The mean join's phases in milliseconds: connect, name, rooms.
    pub join_ms: [f64; 3],
    /// CPU the servers and the load generator spent on the joins.
    pub join_cpu: Option<JoinCpu>,
}

/// What `--kill-pid` did.
pub struct Kill {
    pub pid: u32,
    /// Fresh deliveries stamped after the signal: between local users, and across daemons.
    pub local_after: u64,
    pub cross_after: u64,
    /// Seconds after the start of sending; NaN if the signal could not be sent.
    pub at_s: Option<f64>,
}

/// Delivery latency over all receivers: every delivery, and local and cross-node apart.
pub struct Latencies {
    pub all: Percentiles,
    pub local: Percentiles,
    pub cross: Percentiles,
}

impl Latencies {
    pub fn of(accounts: &[Account]) -> Self {
        let (mut all, mut local, mut cross) =
            (Histogram::default(), Histogram::default(), Histogram::default());
        for account in accounts {
            all.merge(&account.latency);
            all.merge(&account.latency_cross);
            local.merge(&account.latency);
            cross.merge(&account.latency_cross);
        }
        Latencies { all: all.percentiles(), local: local.percentiles(), cross: cross.percentiles() }
    }
}

/// The receivers' accounts added up.
#[derive(Debug, Default)]
pub struct Totals {
    expected: u64,
    delivered: u64,
    lost: u64,
    duplicates: u64,
    out_of_order: u64,
    stale: u64,
    /// Messages that reached a receiver outside their sender's room.
    misrouted: u64,
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
    rooms: ByRoom,
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
    pub fn of(accounts: &[Account], expected: u64, watches: usize, rooms: usize) -> Self {
        let nodes = accounts.iter().map(|a| a.node + 1).max().unwrap_or(1);
        let mut t = Totals {
            expected,
            rooms: ByRoom::of(accounts, rooms),
            watched: vec![
                Watched { receivers_by_node: vec![0; nodes], ..Watched::default() };
                watches
            ],
            ..Totals::default()
        };
        for a in accounts {
            t.add(a);
        }
        t
    }

    fn add(&mut self, a: &Account) {
        self.delivered += a.fresh;
        self.lost += a.expected.saturating_sub(a.fresh);
        self.expected_cross += a.expected_cross;
        self.delivered_cross += a.fresh_cross;
        self.lost_cross += a.expected_cross.saturating_sub(a.fresh_cross);
        self.lost_local += (a.expected - a.expected_cross).saturating_sub(a.fresh - a.fresh_cross);
        for (w, &(lines, first)) in self.watched.iter_mut().zip(&a.watched) {
            w.lines += lines;
            if let Some(first) = first {
                w.receivers += 1;
                w.receivers_by_node[a.node] += 1;
                w.first = Some(w.first.map_or(first, |f| f.min(first)));
                w.last_first = Some(w.last_first.map_or(first, |f| f.max(first)));
            }
        }
        self.duplicates += a.duplicates;
        self.out_of_order += a.out_of_order;
        self.stale += a.stale;
        self.misrouted += a.misrouted;
        self.missed_told += a.missed.told;
        self.missed_notices += a.missed.notices;
        self.reads += a.reads;
        self.stamped_reads += a.stamped_reads;
        if let Some(why) = &a.ended {
            self.receivers_ended += 1;
            self.first_ended.get_or_insert_with(|| why.clone());
        }
    }
}

/// The run's JSON line and summary.
pub fn outcome(plan: &Plan, f: &Facts, t: &Totals, slow: Option<&SlowReport>) -> Outcome {
    Outcome { json: to_json(plan, f, t, slow), summary: summarize(plan, f, t, slow) }
}

fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 { count as f64 / seconds } else { 0.0 }
}

/// Seconds from the start of sending to `at`.
fn since_start(f: &Facts, at: u64) -> f64 {
    seconds_after(f.started, at)
}

/// Which clock timed the deliveries: the kernel's receive stamps, our reads, or both.
fn clock_name(t: &Totals) -> &'static str {
    match t.stamped_reads {
        0 => "read",
        n if n == t.reads => "kernel",
        _ => "mixed",
    }
}

fn to_json(plan: &Plan, f: &Facts, t: &Totals, slow: Option<&SlowReport>) -> Value {
    let backplane_pid: Vec<u32> = plan.backplane_pid.into_iter().collect();
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
        "join": join_json(f),
        "settle_s": round(f.settle_s, 3),
        "send_s": round(f.send_s, 3),
        "window_s": round(f.window_s, 3),
        "wall_s": round(f.wall_s, 3),
        "sent": f.sent,
        "senders_failed": f.send_failures,
        "rejoins": f.rejoins,
        "sent_per_s": round(per_second(f.sent, f.send_s), 0),
        "expected": t.expected,
        "delivered": t.delivered,
        "lost": t.lost,
        "duplicates": t.duplicates,
        "out_of_order": t.out_of_order,
        "stale": t.stale,
        "misrouted": t.misrouted,
        "rooms": plan.rooms.map(|_| t.rooms.to_json()),
        "missed_told": t.missed_told,
        "missed_notices": t.missed_notices,
        "receivers_disconnected": t.receivers_ended,
        "disconnect_reason": t.first_ended,
        "deliveries_per_s": round(per_second(t.delivered, f.window_s), 0),
        "epoch_mono_ns": crate::metrics::epoch(),
        "started_ns": f.started,
        "nodes": plan.nodes(),
        "cross": (plan.nodes() > 1).then(|| cross_json(f, t)),
        "watched": watched_json(plan, f, t),
        "kill": f.kill.as_ref().map(kill_json),
        "churn": f.churn.as_ref().map(churn_json),
        "latency_us": latency_json(&f.latency.all),
        "latency_clock": clock_name(t),
        "server": f.measured.server.as_ref().map(|s| usage_json(f, s, &plan.server_pids)),
        "server_bytes_per_client": server_bytes_per_client(plan, f),
        "backplane": f.measured.backplane.as_ref().map(|s| usage_json(f, s, &backplane_pid)),
        "loadgen": {
            "cpu_s": round(f.measured.own_cpu_s, 3),
            "cpu_util": round(f.measured.own_cpu_s / f.wall_s.max(1e-9), 3),
        },
        "slow": slow.map(slow_json),
    })
}

/// Where the joins' time went: the mean of each phase, and the CPU spent meanwhile.
fn join_json(f: &Facts) -> Value {
    let [connect, named, rooms] = f.join_ms;
    let cpu = f.join_cpu;
    json!({
        "connect_ms": round(connect, 3),
        "named_ms": round(named, 3),
        "rooms_ms": round(rooms, 3),
        "server_cpu_s": cpu.and_then(|c| c.servers_s).map(|s| round(s, 3)),
        "loadgen_cpu_s": cpu.map(|c| round(c.loadgen_s, 3)),
    })
}

/// The servers' memory growth from before the first client connected to when all had joined and
/// gone quiet, per client (a Redis sender's PUBLISH connection included).
fn server_bytes_per_client(plan: &Plan, f: &Facts) -> Option<f64> {
    let before = f.rss_kib_before_clients?;
    let joined = f.measured.server.as_ref()?.before.rss_kib;
    let growth = joined.saturating_sub(before) as f64 * 1024.0;
    Some((growth / plan.clients.max(1) as f64).round())
}

fn latency_json(p: &Percentiles) -> Value {
    json!({
        "count": p.count, "mean": round(p.mean, 1), "p50": round(p.p50, 1),
        "p99": round(p.p99, 1), "p999": round(p.p999, 1), "max": round(p.max, 1),
    })
}

fn usage_json(f: &Facts, s: &Usage, pids: &[u32]) -> Value {
    json!({
        "pid": if pids.len() == 1 { json!(pids[0]) } else { json!(pids) },
        "cpu_s": round(s.cpu_s, 3),
        "cpu_tail_s": s.cpu_tail_s.map(|t| round(t, 3)),
        "tail_wait_s": f.measured.tail_s.map(|t| round(t, 3)),
        "cpu_util": round(s.cpu_s / f.wall_s.max(1e-9), 3),
        "rss_kib_before": s.before.rss_kib,
        "rss_kib_after": s.after.rss_kib,
        "peak_rss_kib": s.after.peak_kib,
        "peak_reset": s.peak_reset,
        "each": (pids.len() > 1).then(|| s.each.iter().map(|(cpu, peak)| json!({
            "cpu_s": round(*cpu, 3), "peak_rss_kib": peak,
        })).collect::<Vec<_>>()),
    })
}

fn slow_json(s: &SlowReport) -> Value {
    json!({
        "tokens_received": s.tokens,
        "missed_told": s.missed.told,
        "missed_notices": s.missed.notices,
        "first_notice": s.missed.first,
        "ended": s.ended,
        "read_s": round(s.read_s, 2),
    })
}

fn cross_json(f: &Facts, t: &Totals) -> Value {
    json!({
        "expected": t.expected_cross,
        "delivered": t.delivered_cross,
        "lost": t.lost_cross,
        "local_expected": t.expected - t.expected_cross,
        "local_delivered": t.delivered - t.delivered_cross,
        "local_lost": t.lost_local,
        "last_cross_delivery_s": f.last_cross_s.map(|s| round(s, 3)),
        "latency_local_us": latency_json(&f.latency.local),
        "latency_cross_us": latency_json(&f.latency.cross),
    })
}

fn watched_json(plan: &Plan, f: &Facts, t: &Totals) -> Vec<Value> {
    let since = |at: u64| round(since_start(f, at), 3);
    plan.watch
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
        .collect()
}

fn kill_json(k: &Kill) -> Value {
    json!({
        "pid": k.pid, "at_s": k.at_s.map(|s| round(s, 3)),
        "local_delivered_after": k.local_after, "cross_delivered_after": k.cross_after,
    })
}

fn churn_json(c: &ChurnReport) -> Value {
    json!({
        "started": c.started, "joined": c.joined, "left": c.left, "failed": c.failed,
        "skipped": c.skipped, "first_error": c.first_error,
    })
}

fn summarize(plan: &Plan, f: &Facts, t: &Totals, slow: Option<&SlowReport>) -> String {
    let mut s = headline(plan, f, t);
    if f.rejoins > 0 {
        s += &format!("  {} clients were reset while joining and connected again\n", f.rejoins);
    }
    if f.send_failures > 0 {
        s += &format!("  {} senders failed to write\n", f.send_failures);
    }
    if t.misrouted > 0 {
        s += &format!("  {} messages reached receivers outside their room\n", t.misrouted);
    }
    if plan.rooms.is_some() {
        s += &t.rooms.summary();
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
        s += &cross_summary(plan, f, t);
    }
    if let Some(kill) = &f.kill {
        s += &kill_summary(kill);
    }
    for (text, w) in plan.watch.iter().zip(&t.watched) {
        s += &format!(
            "  \"{text}\": {} lines at {} receivers (per daemon {:?}){}\n",
            w.lines,
            w.receivers,
            w.receivers_by_node,
            w.first.map(|at| format!(", first at {:.3}s", since_start(f, at))).unwrap_or_default(),
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
    for (what, usage) in [("server", &f.measured.server), ("backplane", &f.measured.backplane)] {
        if let Some(usage) = usage {
            s += &usage_summary(what, usage, f.wall_s);
        }
    }
    s += &format!(
        "  loadgen: {:.2} CPU s ({:.0}% of wall)\n",
        f.measured.own_cpu_s,
        100.0 * f.measured.own_cpu_s / f.wall_s.max(1e-9)
    );
    if let Some(slow) = slow {
        s += &slow_summary(slow);
    }
    s
}

/// The first lines: what ran, how it joined, sent and delivered, and the latency.
fn headline(plan: &Plan, f: &Facts, t: &Totals) -> String {
    format!(
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
        p50 = f.latency.all.p50 / 1e3,
        p99 = f.latency.all.p99 / 1e3,
        p999 = f.latency.all.p999 / 1e3,
        max = f.latency.all.max / 1e3,
        clock = clock_name(t),
    )
}

fn cross_summary(plan: &Plan, f: &Facts, t: &Totals) -> String {
    format!(
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
        f.latency.local.p50 / 1e3,
        f.latency.local.p99 / 1e3,
        f.latency.cross.p50 / 1e3,
        f.latency.cross.p99 / 1e3,
    )
}

fn kill_summary(kill: &Kill) -> String {
    format!(
        "  SIGKILL to PID {} {}; delivered after it: {} local, {} cross-node\n",
        kill.pid,
        match kill.at_s {
            None => "never sent (the run ended first)".to_owned(),
            Some(at) if at.is_nan() => "failed".to_owned(),
            Some(at) => format!("at {at:.3}s"),
        },
        kill.local_after,
        kill.cross_after,
    )
}

fn usage_summary(what: &str, usage: &Usage, wall_s: f64) -> String {
    format!(
        "  {what}: {:.2} CPU s ({:.0}% of wall){}, RSS {} -> {} KiB, peak {} KiB{}\n",
        usage.cpu_s,
        100.0 * usage.cpu_s / wall_s.max(1e-9),
        usage
            .cpu_tail_s
            .map(|t| format!(" + {t:.2} s after the last delivery"))
            .unwrap_or_default(),
        usage.before.rss_kib,
        usage.after.rss_kib,
        usage.after.peak_kib,
        if usage.peak_reset { "" } else { " (peak since start)" },
    )
}

fn slow_summary(slow: &SlowReport) -> String {
    format!(
        "  slow reader: got {} messages, told it missed {} in {} notices{}{}\n",
        slow.tokens,
        slow.missed.told,
        slow.missed.notices,
        slow.missed.first.as_deref().map(|n| format!(" (\"{n}\")")).unwrap_or_default(),
        slow.ended.as_deref().map(|e| format!("; connection ended: {e}")).unwrap_or_default(),
    )
}
