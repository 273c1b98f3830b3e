//! The daemon's life: accept loops, admission, and graceful shutdown.
//!
//! [`run`] takes listeners that are already bound and a [`CancellationToken`]
//! that ends it, so tests bind port 0 and `main` decides about signals. Each
//! accepted socket becomes one task, tracked by a [`TaskTracker`] so shutdown
//! can wait for every goodbye. A [`Semaphore`] caps connections; the one
//! over the cap is told so in a line. Accept errors (out of descriptors, say)
//! never end a loop: it logs at a bounded rate and backs off up to a second.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::admission::{Admission, Gate, Refusal};
use crate::config::Limits;
use crate::connection;
use crate::room::{ConnId, Room, Stats};
use crate::socket;

/// First pause after an accept error; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// At most one accept-error log line per this period (the rest are counted).
const ERROR_LOG_PERIOD: Duration = Duration::from_secs(10);
/// How long shutdown waits for connections to say goodbye.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);
/// How long a refused connection may take to receive its one line.
const REFUSAL_GRACE: Duration = Duration::from_secs(2);

/// What every connection shares.
pub struct Context {
    pub room: Room,
    pub limits: Limits,
    pub shutdown: CancellationToken,
    pub started: Instant,
    gate: Gate,
    next_id: AtomicU64,
}

impl Context {
    pub fn new(limits: Limits, shutdown: CancellationToken) -> Self {
        Context {
            room: Room::new(limits.queue, limits.history),
            gate: Gate::new(limits.max_clients, limits.max_per_ip),
            limits,
            shutdown,
            started: Instant::now(),
            next_id: AtomicU64::new(1),
        }
    }

    /// Connections open right now, named or not.
    pub fn connections(&self) -> usize {
        self.gate.open()
    }

    fn next_id(&self) -> ConnId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Serves `listeners` until `ctx.shutdown` is cancelled, then waits (within
/// [`SHUTDOWN_GRACE`]) for every connection to finish its goodbye.
pub async fn run(ctx: Arc<Context>, listeners: Vec<TcpListener>) {
    let tracker = TaskTracker::new();
    for listener in listeners {
        if let Ok(addr) = listener.local_addr() {
            info!(%addr, "listening");
        }
        tracker.spawn(accept_loop(Arc::clone(&ctx), listener, tracker.clone()));
    }
    tracker.spawn(announce_gathered_presence(Arc::clone(&ctx)));
    ctx.shutdown.cancelled().await;
    info!(connections = ctx.connections(), "shutting down");
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait()).await.is_err() {
        warn!(connections = ctx.connections(), "some connections did not finish in time");
    }
}

async fn accept_loop(ctx: Arc<Context>, listener: TcpListener, tracker: TaskTracker) {
    let mut backoff = MIN_BACKOFF;
    let mut errors = RateLimitedLog::new(ERROR_LOG_PERIOD);
    loop {
        let accepted = tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = MIN_BACKOFF;
                admit(&ctx, &tracker, stream, peer);
            }
            Err(error) => {
                if let Some(suppressed) = errors.allow() {
                    warn!(%error, suppressed, retry_in = ?backoff, "accept failed; backing off");
                }
                tokio::select! {
                    _ = ctx.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Sends the joins and leaves that a busy room gathered, when their window ends.
async fn announce_gathered_presence(ctx: Arc<Context>) {
    loop {
        let wait = async {
            match ctx.room.presence_due() {
                Some(due) => tokio::time::sleep_until(due).await,
                None => ctx.room.presence_waiting().await,
            }
        };
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            _ = wait => {}
        }
        if ctx.room.presence_due().is_some_and(|due| due <= Instant::now()) {
            ctx.room.flush_presence();
        }
    }
}

fn admit(ctx: &Arc<Context>, tracker: &TaskTracker, stream: TcpStream, peer: SocketAddr) {
    if let Err(error) = socket::configure(&stream) {
        warn!(%peer, %error, "could not set socket options");
    }
    match ctx.gate.admit(peer.ip()) {
        Ok(admission) => {
            Stats::add(&ctx.room.stats.connections, 1);
            let id = ctx.next_id();
            tracker.spawn(serve_tcp(Arc::clone(ctx), id, peer, stream, admission));
        }
        Err(refusal) => {
            Stats::add(&ctx.room.stats.refused, 1);
            warn!(%peer, ?refusal, "refused");
            tracker.spawn(refuse(stream, refusal));
        }
    }
}

async fn serve_tcp(
    ctx: Arc<Context>,
    id: ConnId,
    peer: SocketAddr,
    stream: TcpStream,
    _admission: Admission,
) {
    let (reader, writer) = stream.into_split();
    connection::serve(ctx, id, peer, reader, writer).await;
}

/// One clear line instead of a silent close, then a clean FIN.
async fn refuse(mut stream: TcpStream, refusal: Refusal) {
    let line = refusal.line();
    let _ = tokio::time::timeout(REFUSAL_GRACE, async {
        stream.write_all(line.bytes(false)).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 256];
        while tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// Lets one log line through per period and counts the ones held back.
struct RateLimitedLog {
    period: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    fn new(period: Duration) -> Self {
        RateLimitedLog { period, last: None, suppressed: 0 }
    }

    /// `Some(suppressed since the last line)` when a line may be logged now.
    fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|last| now.duration_since(last) < self.period) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn error_log_is_rate_limited_and_counts_what_it_held_back() {
        let mut log = RateLimitedLog::new(Duration::from_secs(10));
        assert_eq!(log.allow(), Some(0));
        for _ in 0..500 {
            assert_eq!(log.allow(), None);
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(log.allow(), Some(500));
    }
}
