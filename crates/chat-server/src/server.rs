//! The daemon's life: accept loops, admission, and graceful shutdown.
//!
//! [`run`] takes listeners that are already bound and a shutdown token (in
//! the [`Context`]), so tests bind port 0 and `main` decides about signals.
//! Each accepted socket becomes one task, tracked by a [`TaskTracker`] so
//! shutdown can wait for every goodbye. Admission (see [`crate::admission`])
//! caps connections; the one over the cap is told so in a line. Accept
//! errors (out of descriptors, say) never end a loop: it logs at a bounded
//! rate and backs off up to a second.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::admission::{Admission, Refusal};
use crate::connection;
use crate::context::Context;
use crate::event::ConnId;
use crate::protocol::Protocol;
use crate::socket;
use crate::stats::Stats;

/// First pause after an accept error; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// At most one accept-error log line per this period (the rest are counted).
const ERROR_LOG_PERIOD: Duration = Duration::from_secs(10);
/// How long shutdown waits for connections to say goodbye.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);
/// How long a refused connection may take to receive its one line.
const REFUSAL_GRACE: Duration = Duration::from_secs(2);

/// Serves `listeners` until `ctx.shutdown` is cancelled, then waits (within
/// [`SHUTDOWN_GRACE`]) for every connection to finish its goodbye.
pub async fn run(ctx: Arc<Context>, listeners: Vec<Listener>, tracker: TaskTracker) {
    for listener in listeners {
        if let Ok(addr) = listener.tcp.local_addr() {
            if listener.protocol.is_text() {
                info!(%addr, tls = listener.tls.is_some(), "listening");
            } else if listener.protocol.is_irc() {
                info!(%addr, tls = listener.tls.is_some(), "irc listening");
            } else {
                info!(%addr, "JSON lines listening");
            }
        }
        tracker.spawn(accept_loop(Arc::clone(&ctx), listener, tracker.clone()));
    }
    ctx.shutdown.cancelled().await;
    info!(connections = ctx.connections(), "shutting down");
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait()).await.is_err() {
        warn!(connections = ctx.connections(), "some connections did not finish in time");
    }
}

/// A bound socket, the TLS acceptor when its clients speak TLS, and the
/// protocol they speak.
pub struct Listener {
    pub tcp: TcpListener,
    pub tls: Option<TlsAcceptor>,
    pub protocol: &'static dyn Protocol,
}

async fn accept_loop(ctx: Arc<Context>, listener: Listener, tracker: TaskTracker) {
    let mut backoff = MIN_BACKOFF;
    let mut errors = RateLimitedLog::new(ERROR_LOG_PERIOD);
    loop {
        let accepted = tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            accepted = listener.tcp.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = MIN_BACKOFF;
                admit(&ctx, &tracker, stream, peer, &listener);
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

fn admit(
    ctx: &Arc<Context>,
    tracker: &TaskTracker,
    stream: TcpStream,
    peer: SocketAddr,
    listener: &Listener,
) {
    let (tls, protocol) = (listener.tls.clone(), listener.protocol);
    if let Err(error) = socket::configure(&stream) {
        warn!(%peer, %error, "could not set socket options");
    }
    match ctx.admit(peer.ip()) {
        Ok(admission) => {
            Stats::add(&ctx.hub.stats().connections, 1);
            let id = ctx.next_id();
            let door = Door { peer, protocol, tls };
            tracker.spawn(serve_socket(Arc::clone(ctx), id, door, stream, admission));
        }
        Err(refusal) => {
            Stats::add(&ctx.hub.stats().refused, 1);
            warn!(%peer, ?refusal, "refused");
            tracker.spawn(refuse(stream, tls, protocol, refusal));
        }
    }
}

/// Where an accepted socket came from: its peer, and the door it came through.
struct Door {
    peer: SocketAddr,
    protocol: &'static dyn Protocol,
    tls: Option<TlsAcceptor>,
}

async fn serve_socket(
    ctx: Arc<Context>,
    id: ConnId,
    door: Door,
    stream: TcpStream,
    _admission: Admission,
) {
    let Door { peer, protocol, tls } = door;
    match tls {
        None => {
            let (reader, writer) = stream.into_split();
            connection::serve(ctx, id, peer, protocol, reader, writer).await;
        }
        // Boxed: the TLS session state is large, and inline it would make
        // every plain connection's task that large too.
        Some(acceptor) => Box::pin(serve_tls(ctx, id, peer, protocol, stream, acceptor)).await,
    }
}

async fn serve_tls(
    ctx: Arc<Context>,
    id: ConnId,
    peer: SocketAddr,
    protocol: &'static dyn Protocol,
    stream: TcpStream,
    acceptor: TlsAcceptor,
) {
    // The handshake counts against the name timeout, so a stalled TLS
    // client holds a slot no longer than a stalled plain one.
    match tokio::time::timeout(ctx.limits.name_timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => {
            let (reader, writer) = tokio::io::split(stream);
            connection::serve(ctx, id, peer, protocol, reader, writer).await;
        }
        Ok(Err(error)) => info!(%peer, id, %error, "TLS handshake failed"),
        Err(_) => info!(%peer, id, "TLS handshake timed out"),
    }
}

/// One clear line instead of a silent close, then a clean close.
async fn refuse(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    protocol: &'static dyn Protocol,
    refusal: Refusal,
) {
    let line = crate::protocol::standalone(protocol, &refusal.reply());
    let _ = tokio::time::timeout(REFUSAL_GRACE, async {
        match tls {
            None => say_and_close(stream, &line).await,
            Some(acceptor) => say_and_close(acceptor.accept(stream).await?, &line).await,
        }
    })
    .await;
}

async fn say_and_close<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    line: &Bytes,
) -> std::io::Result<()> {
    stream.write_all(line).await?;
    stream.shutdown().await?;
    let mut sink = [0u8; 256];
    while stream.read(&mut sink).await? > 0 {}
    Ok(())
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
    use crate::config::Limits;
    use crate::hub::{Hub, HubParts};
    use crate::rooms::Rooms;
    use crate::store::Store;
    use tokio_util::sync::CancellationToken;

    /// Every idle connection is one task; its size is most of the daemon's
    /// memory per connection (the W4 budget is 4 KiB in all).
    #[tokio::test]
    async fn a_plain_connection_task_stays_small() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _client = TcpStream::connect(addr).await.expect("connect");
        let (stream, peer) = listener.accept().await.expect("accept");
        let (limits, shutdown, stats) =
            (Limits::default(), CancellationToken::new(), Arc::default());
        let tracker = TaskTracker::new();
        let rooms = Rooms::new(16, 16, 0, true, Arc::clone(&stats), shutdown.clone(), tracker);
        let hub = Hub::new(HubParts {
            people: Arc::default(),
            rooms: Arc::new(rooms),
            backplane: None,
            store: Store::new(None, None, None),
            stats,
            rooms_per_user: 20,
            replay: 0,
            moderation: Default::default(),
        });
        let ctx = Arc::new(Context::new(hub, limits, shutdown));
        let admission = ctx.admit(peer.ip()).expect("admitted");
        let door = Door { peer, protocol: &crate::protocol::text::TEXT, tls: None };
        let task = serve_socket(ctx, 1, door, stream, admission);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 2048, "a connection task takes {size} bytes");
    }

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
