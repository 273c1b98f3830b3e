//! The cast mode: one chat client joins, waits for its join notice to pass, sends one token that
//! idle load generators in other processes are waiting for (`--mode idle --broadcast external`),
//! and reports when it sent it on the shared `CLOCK_MONOTONIC` timeline (`--clock-epoch`).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::connect::connect;
use crate::metrics::{epoch, now_nanos, seconds_between};
use crate::outcome::{Outcome, round};
use crate::protocol::{JoinOptions, Joined, Protocol};
use crate::wire::{LineReader, Token};
use tokio::net::tcp::OwnedReadHalf;

#[derive(Debug, Clone)]
pub struct Plan {
    pub server: SocketAddr,
    pub name: String,
    pub size: usize,
    pub tag: u32,
    pub join: JoinOptions,
    /// After joining, read this long before sending (the join notice passes).
    pub settle: Duration,
    /// After sending, stay connected this long (reading) before leaving.
    pub hold: Duration,
    pub label: String,
}

pub async fn run(plan: &Plan) -> Result<Outcome> {
    let joining = now_nanos();
    let stream = connect(plan.server, None, false).await?;
    let Joined { mut reader, mut writer, .. } = Protocol::Chat
        .join(stream, &plan.name, &plan.join)
        .await
        .context("the casting client could not join")?;
    let join_s = seconds_between(joining, now_nanos());
    let mut lines = 0u64;
    drain(&mut reader, Instant::now() + plan.settle, &mut lines).await?;
    let mut line = Vec::with_capacity(plan.size + 1);
    let sent_ns = now_nanos();
    Token { sender: 0, seq: 0, nanos: sent_ns, tag: plan.tag }.write_padded(&mut line, plan.size);
    line.push(b'\n');
    writer.write_all(&line).await.context("sending the broadcast")?;
    let written_ns = now_nanos();
    drain(&mut reader, Instant::now() + plan.hold, &mut lines).await?;
    let _ = writer.write_all(b"/quit\n").await;
    let json = json!({
        "mode": "cast",
        "label": plan.label,
        "server": plan.server.to_string(),
        "name": plan.name,
        "tag": plan.tag,
        "join_ms": round(join_s * 1e3, 3),
        "epoch_mono_ns": epoch(),
        "sent_ns": sent_ns,
        "sent_mono_ns": epoch() + sent_ns,
        "write_us": round((written_ns - sent_ns) as f64 / 1e3, 1),
        "lines_received": lines,
    });
    let summary = format!(
        "[{}] cast: joined {} as {} in {:.1} ms, sent the token (tag {}) at {} ns after the \
         epoch\n",
        plan.label,
        plan.server,
        plan.name,
        join_s * 1e3,
        plan.tag,
        sent_ns
    );
    Ok(Outcome { json, summary })
}

/// Reads and counts lines until `until`.
async fn drain(
    reader: &mut LineReader<OwnedReadHalf>,
    until: Instant,
    lines: &mut u64,
) -> Result<()> {
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => return Ok(()),
            read = reader.fill() => match read {
                Ok((n, _)) if n > 0 => while reader.next_line().is_some() { *lines += 1 },
                Ok(_) => anyhow::bail!("the server closed the casting client's connection"),
                Err(e) => return Err(e).context("reading as the casting client"),
            },
        }
    }
}
