//! Several daemons, one room: the Redis pub/sub backplane (`--backplane`).
//!
//! Each daemon is a node with a random id. Local traffic never waits for
//! Redis: a local line reaches local users directly, and a copy goes into a
//! bounded queue that one backplane task publishes (pipelined, in order).
//! Chat lines go on their room's channel, and a node subscribes to a room's
//! channel only while one of its own users is in the room (it follows
//! [`Rooms::changed`]), so a node with nobody in `#rust` receives none of
//! `#rust`'s lines. Who is where (arrivals, joins, parts, renames,
//! departures, rosters, heartbeats) goes on one channel every node reads,
//! so `/rooms` and `/who #room` count everyone. The same task reads the
//! channels, skips its own events, and hands every other daemon's event to
//! the hub ([`Heard`]), which applies it like a local change: the backplane
//! reads the daemon's people and rooms but changes neither. Names are claimed in Redis (`name:<key>`, set only if
//! absent, with an expiry this node refreshes), so they are unique across
//! nodes and a crashed node's names free themselves. Nodes send heartbeats;
//! one silent for [`NODE_TIMEOUT`] is gone and its users leave. Each room's
//! history is a capped Redis list ([`crate::store::shared`]), appended in
//! the same pipeline as the lines are published. When Redis is unreachable the node
//! serves its own users, tells them once that the room is degraded, and
//! reconnects with backoff; on return it re-claims its names and the nodes
//! exchange rosters, and the room is whole again.
//!
//! Crate: `redis` (redis-rs), the maintained, most used Redis client, with
//! its Tokio multiplexed connection for commands and a dedicated pub/sub
//! connection.

mod task;
pub mod wire;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_proto::Name;
use redis::aio::MultiplexedConnection;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use chat_proto::RoomKey;

use crate::people::People;
use crate::redis_link::{Queued, RedisLink};
use crate::rooms::Rooms;
use task::Task;
use wire::{NodeId, Wire};

/// Events published in one pipeline at most.
const BATCH: usize = 256;
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A node not heard from for this long is gone.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(4);
/// How long a name claim lives in Redis unless refreshed.
const NAME_TTL_SECS: u64 = 15;
const NAME_REFRESH: Duration = Duration::from_secs(5);
/// How long a name claim may take before the node decides alone.
const CLAIM_TIMEOUT: Duration = Duration::from_millis(1500);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// At most one "still unreachable" log line per this period.
const ERROR_LOG_PERIOD: Duration = Duration::from_secs(30);

/// Claims a name for a node if free, or refreshes it if the node holds it.
const CLAIM_SCRIPT: &str = "local v = redis.call('GET', KEYS[1]) \
    if not v then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) return 1 \
    elseif v == ARGV[1] then redis.call('EXPIRE', KEYS[1], ARGV[2]) return 1 \
    else return 0 end";
/// Deletes a name only if this node holds it.
const RELEASE_SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('DEL', KEYS[1]) else return 0 end";

/// Redis keys and channels of the daemons that share rooms.
#[derive(Debug, Clone)]
struct Keys {
    /// Who is where: every node reads it.
    events: String,
}

impl Keys {
    fn new() -> Self {
        Keys { events: "chat:events".to_owned() }
    }

    /// A node's own channel (private messages to its users).
    fn node(&self, node: NodeId) -> String {
        format!("chat:node:{node:x}")
    }

    /// A room's chat lines.
    fn room(&self, room: &RoomKey) -> String {
        format!("chat:room:{}", room.as_str())
    }

    fn name(&self, name: &Name) -> String {
        format!("chat:name:{}", name.key().as_str())
    }
}

/// What connection tasks use: forward events, claim and release names.
#[derive(Clone)]
pub struct Backplane {
    inner: Arc<Inner>,
}

struct Inner {
    node: NodeId,
    keys: Keys,
    link: RedisLink,
    /// The rooms whose channels are subscribed now, and a signal when that changes.
    carried: Mutex<HashSet<RoomKey>>,
    carried_changed: Notify,
    /// Set once the first attempt to reach Redis has ended, either way.
    settled: AtomicBool,
    settled_signal: Notify,
}

impl Backplane {
    /// Checks the URL and starts the backplane task for `room`.
    pub fn start(
        url: &str,
        people: Arc<People>,
        rooms: Arc<Rooms>,
        heard: mpsc::Sender<Heard>,
        shutdown: CancellationToken,
        tracker: &tokio_util::task::TaskTracker,
    ) -> anyhow::Result<Backplane> {
        let client = redis::Client::open(url)
            .map_err(|e| anyhow::anyhow!("invalid --backplane URL {url:?}: {e}"))?;
        let (link, outgoing) = RedisLink::new();
        let backplane = Backplane {
            inner: Arc::new(Inner {
                node: rand::random(),
                keys: Keys::new(),
                link,
                carried: Mutex::default(),
                carried_changed: Notify::new(),
                settled: AtomicBool::new(false),
                settled_signal: Notify::new(),
            }),
        };
        info!(node = format!("{:x}", backplane.node()), url, "backplane configured");
        let task = Task {
            bp: backplane.clone(),
            client,
            people,
            rooms,
            heard,
            outgoing,
            shutdown,
            degraded: false,
        };
        tracker.spawn(task.run());
        Ok(backplane)
    }

    pub fn node(&self) -> NodeId {
        self.inner.node
    }

    /// The link to Redis, which the shared store uses too.
    pub fn link(&self) -> &RedisLink {
        &self.inner.link
    }

    pub fn is_connected(&self) -> bool {
        self.inner.link.is_connected()
    }

    /// True while the queue to Redis is more than half full: local senders
    /// then wait, rather than have their lines dropped on the way.
    pub fn is_backlogged(&self) -> bool {
        self.inner.link.is_backlogged()
    }

    /// Writes dropped because Redis was unreachable or too slow.
    pub fn dropped(&self) -> u64 {
        self.inner.link.dropped()
    }

    /// Sends an event to every other node; never waits.
    pub fn forward(&self, event: Wire) {
        self.inner.link.send(self.published(&event, None));
    }

    /// Sends an event to one other node only (a private line, a login
    /// that replaces one there); never waits.
    pub fn forward_to(&self, node: NodeId, event: Wire) {
        self.inner.link.send(self.published(&event, Some(node)));
    }

    /// Gives a name back once its user left or renamed.
    pub fn release(&self, name: &Name) {
        self.inner.link.send(self.released(name));
    }

    /// An event as published: chat lines on their room's channel, what is
    /// for one node on that node's channel, the rest on the channel every
    /// node reads.
    fn published(&self, event: &Wire, to: Option<NodeId>) -> Queued {
        let keys = &self.inner.keys;
        let channel = match (event, to) {
            (_, Some(node)) => keys.node(node),
            (Wire::Message { room, .. }, None) => keys.room(&room.key()),
            _ => keys.events.clone(),
        };
        Queued::Publish { channel, payload: event.encode() }
    }

    fn released(&self, name: &Name) -> Queued {
        let key = self.inner.keys.name(name);
        Queued::Script { script: RELEASE_SCRIPT, key, args: vec![format!("{:x}", self.node())] }
    }

    /// Claims `name` for this node across the room. `false` only when
    /// another node holds it; when Redis cannot answer, the node decides alone.
    pub async fn claim(&self, name: &Name) -> bool {
        let Some(mut conn) = self.commands() else { return true };
        let mut claim = redis::cmd("EVAL");
        claim
            .arg(CLAIM_SCRIPT)
            .arg(1)
            .arg(self.inner.keys.name(name))
            .arg(format!("{:x}", self.node()))
            .arg(NAME_TTL_SECS);
        match tokio::time::timeout(CLAIM_TIMEOUT, claim.query_async::<i64>(&mut conn)).await {
            Ok(Ok(claimed)) => claimed == 1,
            Ok(Err(error)) => {
                warn!(%error, "name claim failed; deciding locally");
                true
            }
            Err(_) => {
                warn!("name claim timed out; deciding locally");
                true
            }
        }
    }

    /// Waits until this node carries `room` (its channel is subscribed), so
    /// a user who just entered it misses none of its lines; returns at once
    /// while Redis is unreachable, and gives up after [`CLAIM_TIMEOUT`].
    pub async fn carry(&self, room: &RoomKey) {
        let deadline = Instant::now() + CLAIM_TIMEOUT;
        loop {
            let changed = self.inner.carried_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !self.is_connected() || self.carries(room) {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                warn!(room = room.as_str(), "room channel not subscribed in time; going on");
                return;
            }
        }
    }

    fn carries(&self, room: &RoomKey) -> bool {
        self.inner.carried.lock().unwrap_or_else(|p| p.into_inner()).contains(room)
    }

    /// Records that a room's channel is (or is no longer) subscribed.
    fn set_carried(&self, room: Option<(&RoomKey, bool)>) {
        let mut carried = self.inner.carried.lock().unwrap_or_else(|p| p.into_inner());
        match room {
            Some((room, true)) => {
                carried.insert(room.clone());
            }
            Some((room, false)) => {
                carried.remove(room);
            }
            None => carried.clear(),
        }
        drop(carried);
        self.inner.carried_changed.notify_waiters();
    }

    /// Waits (at most `within`) until the first attempt to reach Redis has
    /// connected or failed, so a daemon that starts serving right after
    /// already shares its rooms' history when Redis is up.
    pub async fn first_attempt(&self, within: Duration) {
        let settled = self.inner.settled_signal.notified();
        tokio::pin!(settled);
        settled.as_mut().enable();
        if self.inner.settled.load(Ordering::Acquire) {
            return;
        }
        if tokio::time::timeout(within, settled).await.is_err() {
            warn!("Redis did not answer in time; serving while the backplane connects");
        }
    }

    fn settle(&self) {
        if !self.inner.settled.swap(true, Ordering::AcqRel) {
            self.inner.settled_signal.notify_waiters();
        }
    }

    fn commands(&self) -> Option<MultiplexedConnection> {
        self.inner.link.commands()
    }

    fn set_commands(&self, conn: Option<MultiplexedConnection>) {
        self.inner.link.set_commands(conn);
    }
}

/// What the backplane hears, handed to the hub to apply (see
/// `hub::remote`): the backplane itself changes nothing of the daemon's.
#[derive(Debug)]
pub enum Heard {
    /// An event another daemon published (never a heartbeat, hello or goodbye).
    Event(Wire),
    /// Redis was lost, for this reason: the room reaches only local users.
    Lost { error: String },
    /// Redis is reachable with every room channel subscribed: again after
    /// an outage, or for the first time.
    Whole,
    /// Another daemon is gone (shut down, or silent too long); `how` its users left.
    NodeGone { node: NodeId, how: &'static str },
}

/// What the backplane hands the hub at most before it waits.
pub const HEARD_QUEUE: usize = 1024;
