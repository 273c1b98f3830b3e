//! The daemon's one link to Redis, shared by the backplane (pub/sub,
//! names) and the shared store (history, accounts, the login throttle).
//!
//! A [`RedisLink`] holds the command connection while Redis is reachable
//! and a bounded queue of writes ([`Queued`]) that the backplane's task
//! sends in pipelines, in order: a room's history entry goes out before
//! the event that announces the line, whoever queued each. Queuing never
//! waits; while Redis is unreachable, or the queue is full, a write is
//! dropped and counted, and local traffic goes on. Neither the backplane
//! nor the store imports the other: both speak to Redis through this.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;

/// Writes waiting for Redis; past this, new ones are dropped (and counted)
/// rather than ever slowing local traffic.
const QUEUE: usize = 16_384;

/// A write for Redis, sent in order with the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Queued {
    Publish {
        channel: String,
        payload: String,
    },
    /// An entry at the head of a list capped at `cap` entries.
    Prepend {
        key: String,
        entry: Vec<u8>,
        cap: usize,
    },
    /// A Lua script on one key, its answer ignored.
    Script {
        script: &'static str,
        key: String,
        args: Vec<String>,
    },
}

impl Queued {
    /// Adds this write to a pipeline.
    pub fn add_to(self, pipe: &mut redis::Pipeline) {
        match self {
            Queued::Publish { channel, payload } => {
                pipe.publish(channel, payload).ignore();
            }
            Queued::Prepend { key, entry, cap } => {
                pipe.lpush(&key, entry).ignore();
                pipe.ltrim(&key, 0, cap as isize - 1).ignore();
            }
            Queued::Script { script, key, args } => {
                pipe.cmd("EVAL").arg(script).arg(1).arg(key).arg(args).ignore();
            }
        }
    }
}

/// The link: cheap to clone, shared by whoever talks to Redis.
#[derive(Clone)]
pub struct RedisLink {
    inner: Arc<Inner>,
}

struct Inner {
    queue: mpsc::Sender<Queued>,
    /// The command connection while Redis is reachable.
    commands: Mutex<Option<MultiplexedConnection>>,
    connected: AtomicBool,
    dropped: AtomicU64,
}

impl RedisLink {
    /// A link not connected yet, and the receiving end of its queue (for
    /// the task that owns the connection).
    pub fn new() -> (RedisLink, mpsc::Receiver<Queued>) {
        let (queue, queued) = mpsc::channel(QUEUE);
        let inner = Inner {
            queue,
            commands: Mutex::new(None),
            connected: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        };
        (RedisLink { inner: Arc::new(inner) }, queued)
    }

    /// Queues a write; never waits. Dropped (and counted) while Redis is
    /// unreachable or the queue is full.
    pub fn send(&self, queued: Queued) {
        if !self.is_connected() || self.inner.queue.try_send(queued).is_err() {
            self.count_dropped(1);
        }
    }

    pub fn count_dropped(&self, writes: u64) {
        self.inner.dropped.fetch_add(writes, Ordering::Relaxed);
    }

    /// Writes dropped because Redis was unreachable or too slow.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Relaxed)
    }

    /// True while the queue is more than half full (and Redis is
    /// reachable): local senders then wait, as they do for local readers,
    /// rather than have their lines dropped on the way.
    pub fn is_backlogged(&self) -> bool {
        self.is_connected() && self.inner.queue.capacity() < QUEUE / 2
    }

    /// The command connection, while Redis is reachable.
    pub fn commands(&self) -> Option<MultiplexedConnection> {
        self.inner.commands.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Sets (or clears, when Redis is lost) the command connection.
    pub fn set_commands(&self, conn: Option<MultiplexedConnection>) {
        self.inner.connected.store(conn.is_some(), Ordering::Relaxed);
        *self.inner.commands.lock().unwrap_or_else(|p| p.into_inner()) = conn;
    }

    /// Runs one command, within `timeout`; the error says why, in words.
    pub async fn query<T: redis::FromRedisValue>(
        &self,
        command: redis::Cmd,
        timeout: Duration,
    ) -> Result<T, String> {
        let mut conn = self.commands().ok_or("Redis is not connected")?;
        match tokio::time::timeout(timeout, command.query_async(&mut conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("Redis did not answer in time".to_owned()),
        }
    }
}
