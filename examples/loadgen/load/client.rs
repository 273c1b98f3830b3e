//! The clients of a load run: connecting and joining them, and the tasks each one runs.
//!
//! Each client is two tasks: a receiver that frames lines, looks for tokens and keeps the
//! client's [`Account`], and a writer that sends (if the client is a sender) and answers the
//! server (IRC PING). A Redis sender publishes on a second connection whose replies a third task
//! reads and discards; with `--publishers N` the senders share N such connections instead, each
//! taken for one write at a time. Writers wait for the go signal; every task ends on the stop
//! signal.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Result;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::Plan;
use super::account::{Account, Shared};
use crate::connect::{connect, in_parallel, spread_source};
use crate::metrics::now_nanos;
use crate::protocol::{JoinOptions, Joined};
use crate::receipt::Source;
use crate::wire::{LineReader, Token, TokenFinder};

/// A flat-out sender writes about this many bytes per system call.
const BATCH_BYTES: usize = 4096;

/// The go and stop signals of a run.
#[derive(Clone)]
pub struct Signals {
    pub go: watch::Receiver<bool>,
    pub stop: watch::Receiver<bool>,
}

/// What the writer of one connection needs to send.
struct SendJob {
    sender: u32,
    messages: u64,
    size: usize,
    rate: f64,
    /// Rate-limited senders start spread over one period so they do not tick together.
    offset: Duration,
    channel: String,
}

/// Where a writer's bytes go: a connection of its own, or a PUBLISH connection it shares with
/// other senders (`--publishers`).
enum Outlet {
    Own(OwnedWriteHalf),
    Shared(Arc<Mutex<OwnedWriteHalf>>),
}

impl Outlet {
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Outlet::Own(writer) => writer.write_all(bytes).await,
            Outlet::Shared(writer) => writer.lock().await.write_all(bytes).await,
        }
    }
}

/// The tasks of one client.
pub struct Client {
    receiver: JoinHandle<Account>,
    writer: JoinHandle<()>,
    /// Redis senders: the task reading PUBLISH replies.
    replies: Option<JoinHandle<()>>,
}

impl Client {
    /// Stops the client's writing tasks and returns its receiver's account.
    pub async fn account(self) -> Result<Account, tokio::task::JoinError> {
        self.writer.abort();
        if let Some(replies) = self.replies {
            replies.abort();
        }
        self.receiver.await
    }
}

pub async fn start_clients(
    plan: &Plan,
    shared: &Arc<Shared>,
    signals: &Signals,
) -> Result<Vec<Client>> {
    let publishers = Arc::new(open_publishers(plan, &signals.stop).await?);
    in_parallel(plan.clients, plan.concurrency, |i| {
        let plan = plan.clone();
        let shared = Arc::clone(shared);
        let signals = signals.clone();
        let publishers = Arc::clone(&publishers);
        async move { start_client(&plan, i, shared, signals, &publishers).await }
    })
    .await
}

/// The PUBLISH connections Redis senders share (`--publishers`), each with a task that reads and
/// discards its replies until the run stops; none when every sender has its own.
async fn open_publishers(
    plan: &Plan,
    stop: &watch::Receiver<bool>,
) -> Result<Vec<Arc<Mutex<OwnedWriteHalf>>>> {
    if !plan.protocol.sends_separately() {
        return Ok(Vec::new());
    }
    let mut publishers = Vec::with_capacity(plan.publishers);
    for p in 0..plan.publishers.min(plan.senders) {
        let source = plan.spread_sources.then(|| spread_source(p));
        let (read, write) = connect(plan.server_of(p), source, false).await?.into_split();
        tokio::spawn(drain(read, stop.clone()));
        publishers.push(Arc::new(Mutex::new(write)));
    }
    Ok(publishers)
}

async fn start_client(
    plan: &Plan,
    i: usize,
    shared: Arc<Shared>,
    signals: Signals,
    publishers: &[Arc<Mutex<OwnedWriteHalf>>],
) -> Result<Client> {
    let source = plan.spread_sources.then(|| spread_source(i));
    let server = plan.server_of(i);
    let join = plan.join_of(i);
    let Joined { reader, writer, .. } = connect_and_join(plan, i, &join, source, &shared).await?;
    let (reply_tx, reply_rx) = if plan.protocol.expects_answers() {
        let (tx, rx) = mpsc::unbounded_channel();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let account = account_for(plan, i);
    let receiver =
        tokio::spawn(receive(reader, Arc::clone(&shared), account, signals.stop.clone(), reply_tx));
    let writer = Outlet::Own(writer);
    let (writer, replies) = match send_job(plan, i, &join) {
        Some(job) if plan.protocol.sends_separately() => {
            let (outlet, replies) = if publishers.is_empty() {
                let (read, write) = connect(server, source, false).await?.into_split();
                (Outlet::Own(write), Some(tokio::spawn(drain(read, signals.stop.clone()))))
            } else {
                (Outlet::Shared(Arc::clone(&publishers[i % publishers.len()])), None)
            };
            let idle = tokio::spawn(write_and_answer(
                writer,
                None,
                Arc::clone(&shared),
                signals.clone(),
                reply_rx,
            ));
            let sending = tokio::spawn(write_and_answer(outlet, Some(job), shared, signals, None));
            // The subscription's writer only keeps its half open; it ends with the run.
            let both = tokio::spawn(async move {
                let _ = sending.await;
                let _ = idle.await;
            });
            (both, replies)
        }
        job => (tokio::spawn(write_and_answer(writer, job, shared, signals, reply_rx)), None),
    };
    Ok(Client { receiver, writer, replies })
}

/// A connection reset before the server answered is tried again, this often at most.
const JOIN_ATTEMPTS: u32 = 3;

/// Connects client `i` and joins. ngircd listens with a backlog of 10, so while it is busy some
/// of many connections in flight overflow its accept queue and are reset before it has read a
/// byte: those connect again (counted in `rejoins`).
async fn connect_and_join(
    plan: &Plan,
    i: usize,
    join: &JoinOptions,
    source: Option<IpAddr>,
    shared: &Shared,
) -> Result<Joined> {
    let server = plan.server_of(i);
    let mut attempt = 1;
    loop {
        let started = Instant::now();
        let stream = connect(server, source, plan.kernel_clock).await?;
        let connected = Instant::now();
        match plan.protocol.join(stream, &plan.name(i), join).await {
            Err(e) if attempt < JOIN_ATTEMPTS && was_reset(&e) => {
                attempt += 1;
                shared.rejoins.fetch_add(1, Ordering::Relaxed);
            }
            Ok(joined) => {
                let entered = connected.elapsed().saturating_sub(joined.named_in);
                shared.joins.add(connected - started, joined.named_in, entered);
                return Ok(joined);
            }
            failed => return failed,
        }
    }
}

fn was_reset(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::ConnectionReset)
    })
}

/// The empty account of client `i`: what it must receive, and from which daemons.
fn account_for(plan: &Plan, i: usize) -> Account {
    let room_senders = plan.senders_in_room_of(i) as usize;
    let mut account = Account::new(plan.expected_by(i), room_senders, plan.messages);
    account.node = i % plan.nodes();
    account.room = plan.room_of(i);
    account.expected_cross = plan.expected_cross_by(i);
    account.watched = vec![(0, None); plan.watch.len()];
    account
}

fn send_job(plan: &Plan, i: usize, join: &JoinOptions) -> Option<SendJob> {
    plan.is_sender(i).then(|| SendJob {
        sender: i as u32,
        messages: plan.messages,
        size: plan.size,
        rate: plan.rate,
        offset: stagger(plan, i),
        channel: join.speaks_in().to_owned(),
    })
}

fn stagger(plan: &Plan, i: usize) -> Duration {
    if plan.rate <= 0.0 || plan.senders == 0 {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(i as f64 / plan.senders as f64 / plan.rate)
}

/// The receive time of data that arrived, or why the connection ended instead.
pub fn arrival(read: io::Result<(usize, Option<u64>)>) -> Result<Option<u64>, String> {
    match read {
        Ok((0, _)) => Err("closed by the server".to_owned()),
        Ok((_, stamp)) => Ok(stamp),
        Err(e) => Err(e.to_string()),
    }
}

/// What one read brought: lines, fresh deliveries, and of those the ones from other daemons.
#[derive(Default)]
struct Batch {
    lines: u64,
    fresh: u64,
    cross: u64,
}

/// Reads and accounts for every line until the run stops or the connection ends.
pub async fn receive<R: Source>(
    mut reader: LineReader<R>,
    shared: Arc<Shared>,
    mut account: Account,
    mut stop: watch::Receiver<bool>,
    replies: Option<mpsc::UnboundedSender<Vec<u8>>>,
) -> Account {
    let mut complete = account.expected == 0;
    loop {
        let read = tokio::select! {
            biased;
            _ = stop.changed() => break,
            read = reader.fill() => read,
        };
        let stamp = match arrival(read) {
            Ok(stamp) => stamp,
            Err(why) => {
                account.ended = Some(why);
                break;
            }
        };
        account.reads += 1;
        account.stamped_reads += u64::from(stamp.is_some());
        let now = stamp.unwrap_or_else(now_nanos);
        let batch = take_lines(&mut reader, &mut account, &shared, now, replies.as_ref());
        publish(&batch, &account, &shared, now, &mut complete);
    }
    account
}

/// Accounts for the complete lines in the reader's buffer, all received at `now`.
fn take_lines<R: Source>(
    reader: &mut LineReader<R>,
    account: &mut Account,
    shared: &Shared,
    now: u64,
    replies: Option<&mpsc::UnboundedSender<Vec<u8>>>,
) -> Batch {
    let protocol = shared.protocol;
    let mut batch = Batch::default();
    while let Some(line) = reader.next_line() {
        batch.lines += 1;
        if let Some(token) = TokenFinder.find(line) {
            let latency = now.saturating_sub(token.nanos);
            match account.take(token, shared) {
                Some(false) => {
                    batch.fresh += 1;
                    account.latency.record(latency);
                }
                Some(true) => {
                    batch.fresh += 1;
                    batch.cross += 1;
                    account.latency_cross.record(latency);
                }
                None => {}
            }
        } else if let Some(count) = protocol.missed_count(line) {
            account.missed.note(count, line);
        } else if let (Some(pong), Some(replies)) = (protocol.reply_to(line), replies) {
            let _ = replies.send(pong);
        } else {
            account.watch(line, now, &shared.watch);
        }
    }
    batch
}

/// Adds one read's batch to the run's counters; the last receiver to complete says so.
fn publish(batch: &Batch, account: &Account, shared: &Shared, now: u64, complete: &mut bool) {
    shared.lines.fetch_add(batch.lines, Ordering::Relaxed);
    if batch.cross > 0 {
        shared.last_cross_delivery.fetch_max(now, Ordering::Relaxed);
    }
    if batch.fresh == 0 {
        return;
    }
    let killed_at = shared.killed_at.load(Ordering::Acquire);
    if killed_at > 0 && now > killed_at {
        shared.after_kill_local.fetch_add(batch.fresh - batch.cross, Ordering::Relaxed);
        shared.after_kill_cross.fetch_add(batch.cross, Ordering::Relaxed);
    }
    shared.delivered.fetch_add(batch.fresh, Ordering::Relaxed);
    shared.last_delivery.fetch_max(now, Ordering::Relaxed);
    if !*complete && account.fresh >= account.expected {
        *complete = true;
        if shared.receivers_pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            shared.all_received.notify_one();
        }
    }
}

/// Sends the job once the run starts (if any), then answers the server until the run stops.
async fn write_and_answer(
    mut writer: Outlet,
    job: Option<SendJob>,
    shared: Arc<Shared>,
    mut signals: Signals,
    mut replies: Option<mpsc::UnboundedReceiver<Vec<u8>>>,
) {
    if let Some(job) = job {
        let sending = async {
            if signals.go.wait_for(|&go| go).await.is_ok()
                && send(&mut writer, &job, &shared, &mut replies).await.is_err()
            {
                shared.send_failures.fetch_add(1, Ordering::Relaxed);
            }
        };
        tokio::select! {
            _ = signals.stop.changed() => return,
            () = sending => {}
        }
        if shared.senders_pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            shared.all_sent.notify_one();
        }
    }
    let Some(mut replies) = replies else {
        let _ = signals.stop.changed().await;
        return;
    };
    loop {
        tokio::select! {
            _ = signals.stop.changed() => return,
            reply = replies.recv() => match reply {
                Some(reply) => {
                    if writer.write_all(&reply).await.is_err() {
                        return;
                    }
                }
                None => return,
            },
        }
    }
}

/// Writes the job's messages, flat out in batches or one per tick, with any pending answers.
async fn send(
    writer: &mut Outlet,
    job: &SendJob,
    shared: &Shared,
    replies: &mut Option<mpsc::UnboundedReceiver<Vec<u8>>>,
) -> io::Result<()> {
    let mut batch = Vec::with_capacity(BATCH_BYTES + 2 * job.size + 128);
    let mut text = Vec::with_capacity(job.size + 64);
    let mut ticks = (job.rate > 0.0).then(|| {
        let period = Duration::from_secs_f64(1.0 / job.rate);
        let mut ticks = tokio::time::interval_at(Instant::now() + job.offset, period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
        ticks
    });
    let mut seq = 0;
    while seq < job.messages {
        if let Some(ticks) = &mut ticks {
            ticks.tick().await;
        }
        batch.clear();
        let first = seq;
        let nanos = now_nanos();
        loop {
            text.clear();
            let token = Token { sender: job.sender, seq, nanos, tag: shared.tag };
            token.write_padded(&mut text, job.size);
            shared.protocol.frame_message(&mut batch, &job.channel, &text);
            seq += 1;
            if seq == job.messages || ticks.is_some() || batch.len() >= BATCH_BYTES {
                break;
            }
        }
        if let Some(replies) = replies {
            while let Ok(reply) = replies.try_recv() {
                batch.extend_from_slice(&reply);
            }
        }
        writer.write_all(&batch).await?;
        shared.sent.fetch_add(seq - first, Ordering::Relaxed);
    }
    Ok(())
}

/// Reads and discards a connection's input (Redis PUBLISH replies) until the run stops.
async fn drain(read: OwnedReadHalf, mut stop: watch::Receiver<bool>) {
    let mut reader = LineReader::new(read, 16 * 1024);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            read = reader.fill() => match read {
                Ok((0, _)) | Err(_) => return,
                Ok(_) => while reader.next_line().is_some() {},
            },
        }
    }
}
