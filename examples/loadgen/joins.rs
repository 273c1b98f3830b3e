//! The joins mode: how the time of a join (a chat `/join`, an IRC `JOIN`) grows with a user's rooms
//! and with a room's members.
//!
//! Every client is connected and named first (not timed). Then the clients take turns, one after
//! another, and each joins the rooms `#j0`, `#j1`, ... (`--rooms`) one after another, every join
//! waiting for the server's answer (chat: the notice that makes the room current; IRC: the end of
//! the channel's NAMES). One client and N rooms measures the cost
//! against the number of rooms a user is in; N clients and one room, against the number of members
//! a room has. If a join costs the same whatever the sizes, the total grows linearly with N and
//! the second half of the joins takes as long as the first; the report gives both halves, the
//! server's CPU, and the spread of single joins.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use chat_proto::RoomName;
use serde_json::json;

use crate::connect::{connect, in_parallel, spread_source};
use crate::metrics::{Histogram, now_nanos, seconds_between};
use crate::outcome::{Outcome, round};
use crate::protocol::{JoinOptions, Joined, Protocol};
use crate::sampling::cpu_seconds_of;
use crate::system::{Process, ensure_descriptors};

#[derive(Debug, Clone)]
pub struct Plan {
    /// Chat or IRC.
    pub protocol: Protocol,
    pub server: SocketAddr,
    pub clients: usize,
    /// Rooms each client joins.
    pub rooms: usize,
    pub concurrency: usize,
    pub join: JoinOptions,
    pub server_pids: Vec<u32>,
    /// How long connecting everyone may take, and then again the joins.
    pub setup_timeout: Duration,
    pub label: String,
    pub names: String,
    pub run: usize,
}

pub async fn run(plan: &Plan) -> Result<Outcome> {
    ensure_descriptors(plan.clients as u64 + 64)?;
    let rooms: Vec<RoomName> = (0..plan.rooms)
        .map(|k| RoomName::parse(&format!("#j{k}")).map_err(|e| anyhow!("room #j{k}: {e}")))
        .collect::<Result<_>>()?;
    let connecting = now_nanos();
    let mut clients = tokio::time::timeout(plan.setup_timeout, connect_everyone(plan))
        .await
        .with_context(|| format!("{} clients did not all join in time", plan.clients))??;
    let connect_s = seconds_between(connecting, now_nanos());

    let servers: Vec<Process> = plan.server_pids.iter().map(|&pid| Process::Pid(pid)).collect();
    let cpu_before = cpu_seconds_of(&servers);
    let started = now_nanos();
    let joining = join_in_turn(plan.protocol, &mut clients, &rooms);
    let took = tokio::time::timeout(plan.setup_timeout, joining)
        .await
        .context("the joins did not finish in time")??;
    let join_s = seconds_between(started, now_nanos());
    let cpu_s = cpu_before.zip(cpu_seconds_of(&servers)).map(|(before, after)| after - before);
    Ok(report(plan, connect_s, join_s, &took, cpu_s))
}

async fn connect_everyone(plan: &Plan) -> Result<Vec<Joined>> {
    in_parallel(plan.clients, plan.concurrency, |i| {
        let (protocol, server, join) = (plan.protocol, plan.server, plan.join.clone());
        let name = format!("{}{}j{i}", plan.names, plan.run);
        async move {
            let stream = connect(server, Some(spread_source(i)), false).await?;
            protocol.join(stream, &name, &join).await
        }
    })
    .await
}

/// Client after client, room after room: the nanoseconds each join took.
async fn join_in_turn(
    protocol: Protocol,
    clients: &mut [Joined],
    rooms: &[RoomName],
) -> Result<Vec<u64>> {
    let mut took = Vec::with_capacity(clients.len() * rooms.len());
    for (i, client) in clients.iter_mut().enumerate() {
        for room in rooms {
            let asked = now_nanos();
            protocol.enter(client, room).await.with_context(|| format!("client {i}"))?;
            took.push(now_nanos() - asked);
        }
    }
    Ok(took)
}

/// Seconds taken by the first and the second half of the joins.
fn halves(took: &[u64]) -> (f64, f64) {
    let (first, second) = took.split_at(took.len() / 2);
    let seconds = |part: &[u64]| part.iter().sum::<u64>() as f64 / 1e9;
    (seconds(first), seconds(second))
}

fn report(plan: &Plan, connect_s: f64, join_s: f64, took: &[u64], cpu_s: Option<f64>) -> Outcome {
    let joins = took.len();
    let (first_half_s, second_half_s) = halves(took);
    let mut histogram = Histogram::default();
    took.iter().for_each(|&ns| histogram.record(ns));
    let p = histogram.percentiles();
    let per_join_us = join_s * 1e6 / joins.max(1) as f64;
    let cpu_us_per_join = cpu_s.map(|cpu| cpu * 1e6 / joins.max(1) as f64);
    let json = json!({
        "mode": "joins",
        "label": plan.label,
        "run": plan.run,
        "clients": plan.clients,
        "rooms_each": plan.rooms,
        "joins": joins,
        "connect_s": round(connect_s, 3),
        "join_s": round(join_s, 3),
        "per_join_us": round(per_join_us, 1),
        "first_half_s": round(first_half_s, 3),
        "second_half_s": round(second_half_s, 3),
        "second_over_first": round(second_half_s / first_half_s, 3),
        "join_us": { "p50": round(p.p50, 1), "p99": round(p.p99, 1), "max": round(p.max, 1) },
        "server_cpu_s": cpu_s.map(|c| round(c, 3)),
        "server_cpu_us_per_join": cpu_us_per_join.map(|c| round(c, 1)),
    });
    let summary = format!(
        "[{label}] joins run {run}: {clients} clients x {rooms} rooms = {joins} joins in {join_s:.3}s \
         ({per_join_us:.1} us each; halves {first_half_s:.3}s / {second_half_s:.3}s), \
         p50 {p50:.1} us, p99 {p99:.1} us, server CPU {cpu}; connecting took {connect_s:.2}s\n",
        label = plan.label,
        run = plan.run,
        clients = plan.clients,
        rooms = plan.rooms,
        p50 = p.p50,
        p99 = p.p99,
        cpu = cpu_s.map_or_else(|| "-".to_owned(), |c| format!("{c:.3}s")),
    );
    Outcome { json, summary }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_split_the_joins_in_order() {
        assert_eq!(halves(&[1_000_000_000, 1_000_000_000, 3_000_000_000]), (1.0, 4.0));
        assert_eq!(halves(&[]), (0.0, 0.0));
    }
}
