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

pub mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_proto::Name;
use futures::StreamExt;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use chat_proto::RoomKey;

use crate::people::People;
use crate::redis_link::{Queued, RedisLink};
use crate::rooms::Rooms;
use wire::{NodeId, ROSTER_CHUNK, RosterEntry, Wire};

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
    /// Redis is back with every room channel subscribed again.
    Whole,
    /// Another daemon is gone (shut down, or silent too long); `how` its users left.
    NodeGone { node: NodeId, how: &'static str },
}

/// What the backplane hands the hub at most before it waits.
pub const HEARD_QUEUE: usize = 1024;

/// The backplane task: connects, publishes, subscribes, and reconnects.
/// It reads `people` and `rooms` (rosters, names to refresh, rooms to
/// carry) and changes neither: what it hears goes to the hub through `heard`.
struct Task {
    bp: Backplane,
    client: redis::Client,
    people: Arc<People>,
    rooms: Arc<Rooms>,
    heard: mpsc::Sender<Heard>,
    outgoing: mpsc::Receiver<Queued>,
    shutdown: CancellationToken,
    /// Local users were told the room is degraded, and not yet that it is whole.
    degraded: bool,
}

/// Why a session with Redis ended.
enum SessionEnd {
    Shutdown,
    Lost(String),
}

impl Task {
    async fn run(mut self) {
        let mut backoff = MIN_BACKOFF;
        let mut last_error_log: Option<Instant> = None;
        loop {
            let end = match self.open().await {
                Ok((conn, sink, stream)) => {
                    backoff = MIN_BACKOFF;
                    last_error_log = None;
                    info!("backplane connected");
                    let end = self.session(conn, sink, stream).await;
                    self.bp.set_commands(None);
                    self.bp.set_carried(None);
                    end
                }
                Err(error) => SessionEnd::Lost(error),
            };
            self.bp.settle();
            let SessionEnd::Lost(error) = end else { return };
            if !self.degraded {
                // The hub marks users degraded, then logs the loss: whoever
                // arrives once it is logged is told in the welcome.
                self.tell(Heard::Lost { error: error.clone() }).await;
                self.degraded = true;
                last_error_log = Some(Instant::now());
            } else if last_error_log.is_none_or(|at| at.elapsed() >= ERROR_LOG_PERIOD) {
                warn!(%error, retry_in = ?backoff, "backplane still unreachable");
                last_error_log = Some(Instant::now());
            }
            self.discard_queued();
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn open(
        &self,
    ) -> Result<(MultiplexedConnection, redis::aio::PubSubSink, redis::aio::PubSubStream), String>
    {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| e.to_string())?;
        let mut pubsub = tokio::time::timeout(CONNECT_TIMEOUT, self.client.get_async_pubsub())
            .await
            .map_err(|_| "pub/sub connect timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let keys = &self.bp.inner.keys;
        pubsub.subscribe(&keys.events).await.map_err(|e| e.to_string())?;
        pubsub.subscribe(keys.node(self.bp.node())).await.map_err(|e| e.to_string())?;
        let (sink, stream) = pubsub.split();
        Ok((conn, sink, stream))
    }

    async fn session(
        &mut self,
        mut conn: MultiplexedConnection,
        mut sink: redis::aio::PubSubSink,
        mut messages: redis::aio::PubSubStream,
    ) -> SessionEnd {
        let mut carried = HashSet::new();
        if let Err(error) = self.follow_rooms(&mut sink, &mut carried).await {
            return SessionEnd::Lost(error);
        }
        // What was queued while disconnected stayed local by design.
        self.discard_queued();
        self.bp.set_commands(Some(conn.clone()));
        self.bp.settle();
        if let Err(error) = self.refresh_names(&mut conn).await {
            return SessionEnd::Lost(error);
        }
        let node = self.bp.node();
        let mut greeting = vec![Wire::Hello { node }];
        greeting.extend(self.roster());
        let greeting = greeting.iter().map(|event| self.bp.published(event, None));
        if let Err(error) = self.publish(&mut conn, greeting).await {
            return SessionEnd::Lost(error);
        }
        // Subscribed to every channel again: only now is the room whole.
        if std::mem::take(&mut self.degraded) {
            self.tell(Heard::Whole).await;
        }
        let mut nodes: HashMap<NodeId, Instant> = HashMap::new();
        let mut own_heartbeat_seen = Instant::now();
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        let mut refresh = tokio::time::interval(NAME_REFRESH);
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => {
                    self.leave_room(&mut conn).await;
                    return SessionEnd::Shutdown;
                }
                received = self.outgoing.recv_many(&mut batch, BATCH) => {
                    if received == 0 {
                        return SessionEnd::Shutdown;
                    }
                    if let Err(error) = self.publish(&mut conn, batch.drain(..)).await {
                        return SessionEnd::Lost(error);
                    }
                    // Senders paced by this queue may go on.
                    for room in self.rooms.all() {
                        room.note_reader_progress();
                    }
                }
                message = messages.next() => {
                    let Some(message) = message else {
                        return SessionEnd::Lost("pub/sub connection closed".to_owned());
                    };
                    let payload = message.get_payload_bytes();
                    self.receive(&mut conn, payload, &mut nodes, &mut own_heartbeat_seen).await;
                }
                _ = heartbeat.tick() => {
                    let beat = std::iter::once(self.bp.published(&Wire::Heartbeat { node }, None));
                    if let Err(error) = self.publish(&mut conn, beat).await {
                        return SessionEnd::Lost(error);
                    }
                    // Silence means death only if we are reading the channel
                    // promptly ourselves: our own heartbeat is back in time.
                    if own_heartbeat_seen.elapsed() < HEARTBEAT * 2 {
                        self.sweep_silent_nodes(&mut nodes).await;
                    }
                }
                _ = refresh.tick() => {
                    if let Err(error) = self.refresh_names(&mut conn).await {
                        return SessionEnd::Lost(error);
                    }
                }
                () = self.rooms.changed() => {
                    if let Err(error) = self.follow_rooms(&mut sink, &mut carried).await {
                        return SessionEnd::Lost(error);
                    }
                }
            }
        }
    }

    /// Sends writes in one pipeline, in order.
    async fn publish(
        &self,
        conn: &mut MultiplexedConnection,
        writes: impl Iterator<Item = Queued>,
    ) -> Result<(), String> {
        let mut pipe = redis::pipe();
        let mut any = false;
        for write in writes {
            write.add_to(&mut pipe);
            any = true;
        }
        if !any {
            return Ok(());
        }
        pipe.query_async::<()>(conn).await.map_err(|e| e.to_string())
    }

    /// Subscribes to the channels of the rooms open here and drops the
    /// rest, so the node carries a room's lines only while one of its own
    /// users is in it.
    async fn follow_rooms(
        &self,
        sink: &mut redis::aio::PubSubSink,
        carried: &mut HashSet<RoomKey>,
    ) -> Result<(), String> {
        let open: HashSet<RoomKey> = self.rooms.open_keys().into_iter().collect();
        let keys = &self.bp.inner.keys;
        for gone in carried.difference(&open).cloned().collect::<Vec<_>>() {
            sink.unsubscribe(keys.room(&gone)).await.map_err(|e| e.to_string())?;
            carried.remove(&gone);
            self.bp.set_carried(Some((&gone, false)));
        }
        for new in open.difference(carried).cloned().collect::<Vec<_>>() {
            sink.subscribe(keys.room(&new)).await.map_err(|e| e.to_string())?;
            carried.insert(new.clone());
            self.bp.set_carried(Some((&new, true)));
        }
        Ok(())
    }

    async fn receive(
        &self,
        conn: &mut MultiplexedConnection,
        payload: &[u8],
        nodes: &mut HashMap<NodeId, Instant>,
        own_heartbeat_seen: &mut Instant,
    ) {
        if Wire::peek_node(payload) == Some(self.bp.node()) {
            // Our own events come back on the channel; seeing our heartbeat
            // shows how far behind the channel we are reading.
            if payload.first() == Some(&b'H') {
                *own_heartbeat_seen = Instant::now();
            }
            return;
        }
        let event = match Wire::decode(payload) {
            Ok(event) => event,
            Err(error) => {
                warn!(%error, "ignored a backplane message");
                return;
            }
        };
        let node = event.node();
        nodes.insert(node, Instant::now());
        match event {
            Wire::Heartbeat { .. } => {}
            Wire::Hello { .. } => {
                let roster = self.roster();
                let roster = roster.iter().map(|event| self.bp.published(event, None));
                if let Err(error) = self.publish(conn, roster).await {
                    warn!(%error, "could not send our roster");
                }
            }
            Wire::Goodbye { .. } => {
                nodes.remove(&node);
                self.tell(Heard::NodeGone { node, how: "left (their server shut down)" }).await;
            }
            event => self.tell(Heard::Event(event)).await,
        }
    }

    /// Hands what was heard to the hub, waiting while it is behind (Redis
    /// holds what comes meanwhile).
    async fn tell(&self, heard: Heard) {
        // An error only means the daemon is stopping.
        let _ = self.heard.send(heard).await;
    }

    async fn sweep_silent_nodes(&self, nodes: &mut HashMap<NodeId, Instant>) {
        let now = Instant::now();
        let silent: Vec<NodeId> = nodes
            .iter()
            .filter(|(_, last_seen)| now.duration_since(**last_seen) >= NODE_TIMEOUT)
            .map(|(&node, _)| node)
            .collect();
        for node in silent {
            nodes.remove(&node);
            warn!(node = format!("{node:x}"), "node went silent; its users leave the room");
            self.tell(Heard::NodeGone { node, how: "lost connection (their server is gone)" })
                .await;
        }
    }

    /// Our users as roster messages, in chunks.
    fn roster(&self) -> Vec<Wire> {
        let node = self.bp.node();
        let members: Vec<RosterEntry> = self
            .people
            .local_roster()
            .into_iter()
            .map(|(name, theme, keys)| {
                let rooms = keys.iter().filter_map(|k| self.rooms.get(k)).map(|r| r.name().clone());
                RosterEntry { name, theme, rooms: rooms.collect() }
            })
            .collect();
        if members.is_empty() {
            return vec![Wire::Roster { node, first: true, members }];
        }
        members
            .chunks(ROSTER_CHUNK)
            .enumerate()
            .map(|(i, chunk)| Wire::Roster { node, first: i == 0, members: chunk.to_vec() })
            .collect()
    }

    /// Re-claims (and so refreshes) every local name; a name another node
    /// took while we were apart is logged, and both users keep it locally.
    async fn refresh_names(&self, conn: &mut MultiplexedConnection) -> Result<(), String> {
        let names: Vec<Name> = self.people.local_names();
        for chunk in names.chunks(1000) {
            let mut pipe = redis::pipe();
            for name in chunk {
                pipe.cmd("EVAL")
                    .arg(CLAIM_SCRIPT)
                    .arg(1)
                    .arg(self.bp.inner.keys.name(name))
                    .arg(format!("{:x}", self.bp.node()))
                    .arg(NAME_TTL_SECS);
            }
            let claimed: Vec<i64> = pipe.query_async(conn).await.map_err(|e| e.to_string())?;
            for (name, ok) in chunk.iter().zip(claimed) {
                if ok != 1 {
                    warn!(%name, "name is held by another node too");
                }
            }
        }
        Ok(())
    }

    /// Says goodbye on shutdown: the other nodes drop our users at once, and
    /// our names are free for others.
    async fn leave_room(&mut self, conn: &mut MultiplexedConnection) {
        let node = self.bp.node();
        let mut farewell: Vec<Queued> = Vec::new();
        while let Ok(outgoing) = self.outgoing.try_recv() {
            farewell.push(outgoing);
        }
        farewell.push(self.bp.published(&Wire::Goodbye { node }, None));
        let names = self.people.local_names();
        farewell.extend(names.iter().map(|name| self.bp.released(name)));
        let said = self.publish(conn, farewell.into_iter());
        if let Err(error) =
            tokio::time::timeout(RESPONSE_TIMEOUT, said).await.unwrap_or(Err("timed out".into()))
        {
            warn!(%error, "could not say goodbye on the backplane");
        }
    }

    fn discard_queued(&mut self) {
        while self.outgoing.try_recv().is_ok() {
            self.bp.inner.link.count_dropped(1);
        }
    }
}
