//! The chat daemon as a library: `main.rs` parses flags and calls [`run`].
//!
//! Map: [`config`] (flags and limits), [`admission`] (connection caps),
//! [`accounts`] (password hashing and the throttle on guessing),
//! [`context`] (what every connection shares), [`server`] (accept loops,
//! admission, shutdown), [`connection`] (one task per client: greeting,
//! naming, the select loop, goodbye), [`session`] (a named user's state and
//! how a session ends), [`command`] (what a user's line does), [`event`] (what happened, as data), [`hub`] (the
//! one door through which every change goes, here and to other daemons),
//! [`people`] (names, themes and inboxes of everyone connected), [`rooms`]
//! (which rooms are open), [`room`] (one room's members, history, broadcast
//! and presence),
//! [`subscription`] (a reader's place in the room's queue), [`output`]
//! (batched, time-bounded writes), [`throttle`] (the per-client rate),
//! [`console`] (operator commands on stdin), [`control`] (the same
//! commands on a Unix socket, `--control`), [`moderation`] (ranks, bans,
//! mutes, owners, room operators, topics), [`socket`] (TCP options),
//! [`logging`] (tracing setup), [`priority`] (threads that give way to the
//! room), [`tls`] (certificates for `--listen-tls`), [`web`] (the page and
//! its WebSocket, `--listen-web`), [`irc`] (the IRC door, `--listen-irc`),
//! [`backplane`] (several daemons sharing one room through Redis), [`store`]
//! (the history that survives a restart: SQLite, or Redis), [`stats`] and
//! [`metrics`] (counters, Prometheus endpoint).

pub mod accounts;
pub(crate) mod address_bans;
pub(crate) mod admission;
pub mod backplane;
pub(crate) mod command;
pub mod config;
pub(crate) mod connection;
pub(crate) mod console;
pub(crate) mod context;
pub(crate) mod control;
pub mod event;
pub(crate) mod hub;
pub(crate) mod irc;
pub mod logging;
pub(crate) mod login;
pub(crate) mod metrics;
pub mod moderation;
pub(crate) mod output;
pub(crate) mod people;
pub(crate) mod priority;
pub(crate) mod protocol;
pub(crate) mod redis_link;
pub(crate) mod reply;
pub(crate) mod room;
pub(crate) mod rooms;
pub(crate) mod server;
pub(crate) mod session;
pub(crate) mod socket;
pub(crate) mod stats;
pub mod store;
pub(crate) mod subscription;
pub(crate) mod throttle;
pub(crate) mod tls;
pub(crate) mod utc;
pub(crate) mod web;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use backplane::Backplane;
use hub::{Hub, HubParts};
use people::People;
use rooms::Rooms;
use stats::Stats;
use store::{LocalStore, Store};
use tokio_util::sync::CancellationToken;

pub use config::{Config, Limits};
pub use context::Context;
pub use server::Listener;
pub use web::{WebListener, WebSettings};

use protocol::Protocol;
use protocol::json::JSON;
use protocol::text::TEXT;

/// How long a starting daemon waits for Redis before it serves anyway.
const BACKPLANE_FIRST_ATTEMPT: std::time::Duration = std::time::Duration::from_secs(3);

/// Everything the daemon listens on, bound before it starts serving.
pub struct Bound {
    pub listeners: Vec<Listener>,
    pub web: Vec<WebListener>,
    pub web_settings: WebSettings,
    pub metrics: Option<TcpListener>,
    /// The control socket (`--control`).
    pub control: Option<tokio::net::UnixListener>,
}

/// Binds every `--listen`, `--listen-tls`, `--listen-json`, `--listen-web`,
/// `--listen-web-tls`, `--listen-irc`, `--listen-irc-tls` and `--metrics` address, naming the one that fails.
pub async fn bind_all(config: &Config) -> anyhow::Result<Bound> {
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    let text: &'static dyn Protocol = &TEXT;
    let plain = config.plain_listen_addrs().into_iter().map(|addr| (addr, None, text));
    let secure = config.listen_tls.iter().map(|&addr| (addr, tls.clone(), text));
    let json = config.listen_json.iter().map(|&addr| (addr, None, &JSON as &'static dyn Protocol));
    let irc: &'static dyn Protocol = &irc::IRC;
    let irc_plain = config.irc_listen_addrs().into_iter().map(|addr| (addr, None, irc));
    let irc_secure = config.listen_irc_tls.iter().map(|&addr| (addr, tls.clone(), irc));
    let mut listeners = Vec::new();
    for (addr, tls, protocol) in plain.chain(secure).chain(json).chain(irc_plain).chain(irc_secure)
    {
        listeners.push(Listener { tcp: bind(addr).await?, tls, protocol });
    }
    let web_plain = config.web_listen_addrs().into_iter().map(|addr| (addr, None));
    let web_secure = config.listen_web_tls.iter().map(|&addr| (addr, tls.clone()));
    let mut web = Vec::new();
    for (addr, tls) in web_plain.chain(web_secure) {
        web.push(WebListener { tcp: bind(addr).await?, tls });
    }
    let web_settings = WebSettings {
        trusted_proxies: config.trusted_proxy.clone(),
        origins: config.web_origin.clone(),
    };
    let metrics = match config.metrics {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let control = match &config.control {
        Some(path) => Some(control::bind(path)?),
        None => None,
    };
    Ok(Bound { listeners, web, web_settings, metrics, control })
}

async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
}

/// Opens the `--db` store, unless the daemons share their history through
/// the backplane or no history is kept (`--db none`); the error is one line
/// naming the file and the reason.
pub fn open_store(config: &Config, limits: &Limits) -> anyhow::Result<Option<LocalStore>> {
    if config.backplane.is_some() {
        tracing::info!("history is kept in Redis, shared by the daemons; --db is not used");
        return Ok(None);
    }
    if config.db == store::NO_HISTORY {
        tracing::info!(
            "no history is kept (--db none): a room replays only what this daemon saw since it \
             started, and registered names last until it stops"
        );
        return Ok(None);
    }
    let store = LocalStore::open(&config.db, limits.retain).map_err(anyhow::Error::msg)?;
    tracing::info!(db = config.db, "history is kept in the database");
    Ok(Some(store))
}

/// Runs the daemon on bound listeners until `shutdown` is cancelled, then
/// writes every accepted message to the store; with a backplane URL, shares
/// the rooms and their history with the other daemons on that Redis.
pub async fn run(
    bound: Bound,
    limits: Limits,
    operators: &[String],
    backplane: Option<&str>,
    store: Option<LocalStore>,
    shutdown: CancellationToken,
    console: bool,
) -> anyhow::Result<()> {
    let tracker = TaskTracker::new();
    let stats = Arc::new(Stats::default());
    let people = Arc::new(People::default());
    let rooms = Arc::new(Rooms::new(
        limits.max_rooms,
        limits.queue,
        limits.history,
        backplane.is_none(),
        Arc::clone(&stats),
        shutdown.clone(),
        tracker.clone(),
    ));
    // What other daemons do reaches the hub through `heard`, once it exists.
    let (heard, remote_changes) = tokio::sync::mpsc::channel(backplane::HEARD_QUEUE);
    let backplane = backplane
        .map(|url| {
            let (people, rooms) = (Arc::clone(&people), Arc::clone(&rooms));
            Backplane::start(url, people, rooms, heard, shutdown.clone(), &tracker)
        })
        .transpose()?;
    if let Some(bp) = &backplane {
        bp.first_attempt(BACKPLANE_FIRST_ATTEMPT).await;
    }
    let store = Store::new(store, backplane.as_ref().map(Backplane::link), limits.retain);
    let moderation = moderation::Moderation::new(operators, Vec::new(), store::now_ms());
    let hub = Hub::new(HubParts {
        people,
        rooms,
        backplane,
        store,
        stats,
        rooms_per_user: limits.rooms_per_user,
        replay: limits.history,
        moderation,
    });
    // Bans and the rest hold before anyone is let in.
    hub.read_moderation().await;
    let ctx = Arc::new(Context::new(hub, limits, shutdown));
    let follower = Arc::clone(&ctx);
    tracker.spawn(async move { follower.hub.follow_remote(remote_changes).await });
    if console {
        console::spawn(Arc::clone(&ctx));
    }
    if let Some(listener) = bound.control {
        tracker.spawn(control::serve(listener, Arc::clone(&ctx)));
    }
    if let Some(listener) = bound.metrics {
        tokio::spawn(metrics::serve(listener, Arc::clone(&ctx)));
    }
    let web_settings = Arc::new(bound.web_settings);
    for listener in bound.web {
        let (ctx, settings) = (Arc::clone(&ctx), Arc::clone(&web_settings));
        tracker.spawn(web::serve(ctx, listener, settings, tracker.clone()));
    }
    server::run(Arc::clone(&ctx), bound.listeners, tracker).await;
    ctx.hub.store().close().await;
    Ok(())
}
