//! Prometheus metrics over HTTP on `--metrics ADDR` (`GET /metrics`).
//!
//! The daemon's counters (see [`crate::stats`]) and gauges in Prometheus
//! text format 0.0.4. The endpoint needs one response to one GET, so it is
//! served by a few lines over Tokio rather than an HTTP framework; each
//! request is bounded in size and time.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{info, warn};

use crate::context::Context;
use crate::stats::Stats;
use crate::store::local::StoreStats;

const REQUEST_LIMIT: usize = 8 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers scrapes until shutdown.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "metrics listening");
    }
    loop {
        let accepted = tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let ctx = Arc::clone(&ctx);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &ctx)).await;
                });
            }
            Err(error) => {
                warn!(%error, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer(mut stream: TcpStream, ctx: &Context) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < REQUEST_LIMIT {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&chunk[..n]);
    }
    let response = if request.starts_with(b"GET /metrics ") || request.starts_with(b"GET /metrics?")
    {
        let body = render(ctx);
        format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    } else {
        "HTTP/1.0 404 Not Found\r\nContent-Length: 22\r\n\r\ntry GET /metrics here\n".to_owned()
    };
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The metrics page.
pub fn render(ctx: &Context) -> String {
    let s = ctx.hub.stats();
    let (bp_configured, bp_up, bp_dropped) = match ctx.hub.backplane() {
        Some(bp) => (1, u64::from(bp.is_connected()), bp.dropped()),
        None => (0, 0, 0),
    };
    let store = ctx.hub.store().local_stats();
    let stored = |pick: fn(&StoreStats) -> &AtomicU64| store.map_or(0, |s| Stats::get(pick(s)));
    let metrics: [(&str, &str, &str, u64); 23] = [
        (
            "chat_connections_open",
            "gauge",
            "Connections open now, named or not.",
            ctx.connections() as u64,
        ),
        (
            "chat_users",
            "gauge",
            "Named users connected to this daemon.",
            ctx.hub.people().local_count() as u64,
        ),
        (
            "chat_room_users",
            "gauge",
            "Users on every daemon sharing the rooms.",
            ctx.hub.people().count() as u64,
        ),
        ("chat_rooms", "gauge", "Rooms open on this daemon.", ctx.hub.rooms().count() as u64),
        (
            "chat_connections_total",
            "counter",
            "Connections admitted since start.",
            Stats::get(&s.connections),
        ),
        (
            "chat_connections_refused_total",
            "counter",
            "Connections refused (full, or too many from one address).",
            Stats::get(&s.refused),
        ),
        (
            "chat_messages_received_total",
            "counter",
            "Messages accepted from local users.",
            Stats::get(&s.messages),
        ),
        ("chat_lines_sent_total", "counter", "Lines written to clients.", Stats::get(&s.lines_out)),
        ("chat_bytes_sent_total", "counter", "Bytes written to clients.", Stats::get(&s.bytes_out)),
        (
            "chat_lines_missed_total",
            "counter",
            "Lines slow readers skipped (and were told about).",
            Stats::get(&s.missed),
        ),
        (
            "chat_lines_too_long_total",
            "counter",
            "Overlong input lines discarded.",
            Stats::get(&s.too_long),
        ),
        (
            "chat_slow_reader_disconnects_total",
            "counter",
            "Clients dropped for taking no bytes for the write timeout.",
            Stats::get(&s.slow_disconnects),
        ),
        (
            "chat_moderation_actions_total",
            "counter",
            "Moderation commands carried out (topics, kicks, bans, unbans, mutes, unmutes, operators).",
            Stats::get(&s.moderation),
        ),
        (
            "chat_moderation_refused_total",
            "counter",
            "Moderation commands refused (rank too low, a target of equal or higher rank, nothing to lift).",
            Stats::get(&s.moderation_refused),
        ),
        (
            "chat_connections_banned_total",
            "counter",
            "Connections refused at once because their address is banned.",
            Stats::get(&s.banned),
        ),
        ("chat_backplane_configured", "gauge", "1 when --backplane is set.", bp_configured),
        ("chat_backplane_up", "gauge", "1 while the Redis backplane is connected.", bp_up),
        (
            "chat_backplane_dropped_total",
            "counter",
            "Events not sent to other daemons (backplane down or too slow).",
            bp_dropped,
        ),
        (
            "chat_store_written_total",
            "counter",
            "Messages written to the --db database.",
            stored(|s| &s.written),
        ),
        (
            "chat_store_batches_total",
            "counter",
            "Transactions the store committed (each holds every message queued at the time).",
            stored(|s| &s.batches),
        ),
        (
            "chat_store_write_failures_total",
            "counter",
            "Writes to the database that failed (disk full, say); each is retried.",
            stored(|s| &s.write_failures),
        ),
        (
            "chat_store_dropped_total",
            "counter",
            "Messages never written: the store's queue or its retry buffer was full.",
            stored(|s| &s.dropped),
        ),
        (
            "chat_uptime_seconds",
            "gauge",
            "Seconds since the daemon started.",
            ctx.started.elapsed().as_secs(),
        ),
    ];
    let mut page = String::with_capacity(2048);
    for (name, kind, help, value) in metrics {
        let _ = write!(page, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n");
    }
    page
}
