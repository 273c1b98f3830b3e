//! The backplane's task: connects to Redis, sends the link's queue in
//! pipelines, subscribes to exactly the room channels this daemon carries,
//! reads the channels and hands what other daemons did to the hub
//! ([`Heard`]), sends heartbeats and sweeps silent daemons, refreshes name
//! claims, and reconnects with backoff. It reads the daemon's people and
//! rooms (rosters, names, rooms to carry) and changes neither.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chat_proto::{Name, RoomKey};
use futures::StreamExt;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::wire::{NodeId, ROSTER_CHUNK, RosterEntry, Wire};
use super::{
    BATCH, Backplane, CLAIM_SCRIPT, CONNECT_TIMEOUT, ERROR_LOG_PERIOD, HEARTBEAT, Heard,
    MAX_BACKOFF, MIN_BACKOFF, NAME_REFRESH, NAME_TTL_SECS, NODE_TIMEOUT, RESPONSE_TIMEOUT,
};

use crate::people::People;
use crate::redis_link::Queued;
use crate::rooms::Rooms;

/// The backplane task: connects, publishes, subscribes, and reconnects.
/// It reads `people` and `rooms` (rosters, names to refresh, rooms to
/// carry) and changes neither: what it hears goes to the hub through `heard`.
pub(super) struct Task {
    pub(super) bp: Backplane,
    pub(super) client: redis::Client,
    pub(super) people: Arc<People>,
    pub(super) rooms: Arc<Rooms>,
    pub(super) heard: mpsc::Sender<Heard>,
    pub(super) outgoing: mpsc::Receiver<Queued>,
    pub(super) shutdown: CancellationToken,
    /// Local users were told the room is degraded, and not yet that it is whole.
    pub(super) degraded: bool,
}

/// Why a session with Redis ended.
enum SessionEnd {
    Shutdown,
    Lost(String),
}

impl Task {
    pub(super) async fn run(mut self) {
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
        // Told on a first connection too: what could not be read from
        // Redis before (a start while it was slow to answer) is read now.
        self.degraded = false;
        self.tell(Heard::Whole).await;
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
