//! `--mode parse-bench`: the receiving path of a load run (framing, token search, accounting,
//! histogram) over decorated chat lines held in memory, to show how many deliveries per second
//! one core of the load generator can take apart. It must be far above what any server here
//! delivers, or a load run would measure the load generator.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use anyhow::{Result, bail};
use serde_json::json;
use tokio::sync::watch;

use super::account::{Account, Shared};
use super::client::receive;
use crate::metrics::{now_nanos, run_tag, seconds_between};
use crate::outcome::{Outcome, round};
use crate::protocol::Protocol;
use crate::wire::{LineReader, Token};

/// Senders the lines are spread over.
const SENDERS: usize = 100;

/// Takes `lines` lines of `size` bytes of text apart `rounds` times and reports the best round.
pub async fn parse_bench(lines: u64, size: usize, rounds: u32) -> Result<Outcome> {
    let messages = lines.div_ceil(SENDERS as u64);
    let shared = Arc::new(Shared {
        receivers_pending: AtomicUsize::new(1),
        ..Shared::new(Protocol::Chat, run_tag(0), SENDERS, messages)
    });
    let data = decorated_lines(&shared, messages, size);
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
    Ok(report(total_lines, data.len(), best))
}

/// Chat lines as the daemon sends them: a coloured emoji and name, then the token.
fn decorated_lines(shared: &Shared, messages: u64, size: usize) -> Vec<u8> {
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
    data
}

fn report(lines: u64, bytes: usize, best: f64) -> Outcome {
    let per_second = lines as f64 / best;
    let bytes_per_second = bytes as f64 / best;
    Outcome {
        json: json!({
            "mode": "parse-bench",
            "lines": lines,
            "bytes": bytes,
            "best_s": round(best, 4),
            "lines_per_s": round(per_second, 0),
            "ns_per_line": round(1e9 / per_second, 1),
            "mib_per_s": round(bytes_per_second / 1048576.0, 1),
        }),
        summary: format!(
            "parse bench: {lines} decorated lines ({} MiB) in {best:.3}s = {:.1} M lines/s \
             ({:.0} ns/line, {:.0} MiB/s) on one core\n",
            bytes / 1048576,
            per_second / 1e6,
            1e9 / per_second,
            bytes_per_second / 1048576.0
        ),
    }
}
