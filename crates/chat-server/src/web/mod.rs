//! The web door (`--listen-web`, `--listen-web-tls`): the page at `/` and
//! the chat over a WebSocket at `/ws`.
//!
//! axum routes the requests; our own accept loop serves each connection
//! with hyper, so that TLS, admission and shutdown stay the daemon's.
//! A WebSocket is one more door into the one session: it is admitted
//! against the same `--max-clients` and `--max-per-ip` as TCP (by the
//! client's real address behind a trusted proxy, see [`forwarded`]), spoken
//! to in JSON ([`crate::protocol::json::WEB`]) and read and written through
//! [`socket::WsIo`], so every limit of a TCP connection holds for it. A
//! page of a foreign origin is refused with 403 before any upgrade.
//!
//! Plain HTTP connections (the page's files) are few and short: each has
//! a header timeout and a lifetime, and at most `--max-clients` of them
//! are open at once besides the chat's own connections.

pub mod forwarded;
pub mod page;
pub mod socket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{info, warn};

use crate::context::Context;
use crate::socket as tcp;
use crate::stats::Stats;

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a plain HTTP connection (not upgraded) may stay open.
const HTTP_LIFETIME: Duration = Duration::from_secs(120);
/// Largest WebSocket message read before the session sees it: past
/// `--max-line` the session refuses it as for netcat, past this the
/// connection ends.
const MESSAGE_MARGIN: usize = 64 * 1024;
/// The WebSocket's read buffer, grown only for a message that needs more:
/// idle connections are many.
const READ_BUFFER: usize = 512;
/// Bytes of outgoing frames gathered before they are written.
const WRITE_BUFFER: usize = 16 * 1024;

/// A bound web address, and the TLS acceptor when it serves https.
pub struct WebListener {
    pub tcp: TcpListener,
    pub tls: Option<TlsAcceptor>,
}

/// The web door's own settings.
#[derive(Debug, Clone, Default)]
pub struct WebSettings {
    /// `--trusted-proxy`.
    pub trusted_proxies: Vec<IpNet>,
    /// `--web-origin`, lower case.
    pub origins: Vec<String>,
}

/// What every request handler shares.
#[derive(Clone)]
struct Shared {
    ctx: Arc<Context>,
    settings: Arc<WebSettings>,
    tracker: TaskTracker,
}

/// The connection a request came on.
#[derive(Debug, Clone, Copy)]
struct Peer {
    addr: SocketAddr,
    secure: bool,
}

/// Serves `listener` until shutdown. WebSocket sessions are tracked by
/// `tracker`, so shutdown waits for their goodbyes as for TCP's.
pub async fn serve(
    ctx: Arc<Context>,
    listener: WebListener,
    settings: Arc<WebSettings>,
    tracker: TaskTracker,
) {
    if let Ok(addr) = listener.tcp.local_addr() {
        let scheme = if listener.tls.is_some() { "https" } else { "http" };
        info!(%addr, scheme, "web listening");
    }
    let slots = Arc::new(Semaphore::new(ctx.limits.max_clients));
    let shared = Shared { ctx: Arc::clone(&ctx), settings, tracker };
    let router = router(shared);
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            accepted = listener.tcp.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, retry_in = ?backoff, "web accept failed; backing off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(5);
        // Over the cap of plain HTTP connections, the newest is closed at once.
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else { continue };
        if let Err(error) = tcp::configure(&stream) {
            warn!(%peer, %error, "could not set socket options");
        }
        let connection = Connection { ctx: Arc::clone(&ctx), router: router.clone(), _slot: slot };
        tokio::spawn(connection.serve(stream, peer, listener.tls.clone()));
    }
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/app.css", get(page::style))
        .route("/ws", get(websocket))
        .with_state(shared)
}

/// One HTTP connection, until it closes, upgrades or outlives its time.
struct Connection {
    ctx: Arc<Context>,
    router: Router,
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    async fn serve(self, stream: TcpStream, addr: SocketAddr, tls: Option<TlsAcceptor>) {
        let shutdown = self.ctx.shutdown.clone();
        let served = async {
            match tls {
                None => self.http(stream, Peer { addr, secure: false }).await,
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => self.http(stream, Peer { addr, secure: true }).await,
                    Err(error) => info!(peer = %addr, %error, "web TLS handshake failed"),
                },
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::timeout(HTTP_LIFETIME, served) => {}
        }
    }

    async fn http<S>(&self, stream: S, peer: Peer)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let router = self.router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(peer);
            router.clone().oneshot(request)
        });
        let served = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        if let Err(error) = served.await {
            info!(peer = %peer.addr, %error, "web connection ended with an error");
        }
    }
}

/// `/ws`: checks the origin, admits the client by its real address, and
/// runs its session once upgraded (or tells it why not).
async fn websocket(
    State(shared): State<Shared>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Shared { ctx, settings, tracker } = shared;
    let client = forwarded::client_addr(peer.addr, &headers, &settings.trusted_proxies);
    let scheme = if peer.secure { "https" } else { "http" };
    if !forwarded::origin_allowed(&headers, scheme, &settings.origins) {
        let origin = headers.get(axum::http::header::ORIGIN).and_then(|o| o.to_str().ok());
        warn!(peer = %client, origin, "WebSocket from a foreign origin refused");
        return (StatusCode::FORBIDDEN, "this page's origin may not use the chat\n")
            .into_response();
    }
    let limit = ctx.limits.max_line.saturating_mul(2).saturating_add(MESSAGE_MARGIN);
    let upgrade = upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(limit)
        .max_frame_size(limit);
    // Held by the session until it ends, so shutdown waits for its goodbye.
    let token = tracker.token();
    match ctx.admit(client.ip()) {
        Ok(admission) => {
            Stats::add(&ctx.hub.stats().connections, 1);
            let id = ctx.next_id();
            upgrade.on_upgrade(move |ws| async move {
                let _token = token;
                socket::serve(ctx, id, client, ws, admission).await;
            })
        }
        Err(refusal) => {
            Stats::add(&ctx.hub.stats().refused, 1);
            warn!(peer = %client, ?refusal, "refused");
            upgrade.on_upgrade(move |ws| async move {
                let _token = token;
                socket::refuse(ws, refusal).await;
            })
        }
    }
}
