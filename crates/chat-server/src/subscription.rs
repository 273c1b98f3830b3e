//! A reader's place in the room's queue, and what it does when it falls behind.
//!
//! A [`Subscription`] wraps the connection's `broadcast::Receiver` and owns
//! every rule about it: draining what is queued into the connection's output
//! in batches (the sender's own lines skipped), telling the reader how many
//! lines it missed, stepping out of the queue while its socket is slow so it
//! holds no sender back, rejoining, and pacing the connection's own sends by
//! the room's slowest readers. Senders wait on the room's progress signal,
//! not on a timer. What a reader shows depends on its [`View`]: lines from
//! a room other than its current one carry the room's tag, and an event
//! sent to several rooms is shown through the first of them it is in.

use std::sync::Arc;
use std::time::Duration;

use chat_proto::RoomKey;
use tokio::io::AsyncWrite;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::Instant;
use tracing::debug;

use crate::event::{ConnId, Event, What};
use crate::output::{Output, WriteError};
use crate::reply::Reply;
use crate::room::Room;
use crate::stats::Stats;

/// A reader whose write has waited this long steps out of the room's queue
/// until its output drains, so it holds back no sender.
const STEP_ASIDE_AFTER: Duration = Duration::from_millis(100);
/// How long a sender waits at most for the room's readers per line.
const MAX_PACING: Duration = Duration::from_secs(1);

/// What one receive from the queue brought.
#[derive(Debug)]
pub enum Delivery {
    Event(Arc<Event>),
    /// The reader fell this many lines behind and skipped them.
    Missed(u64),
    /// The room is gone (the daemon is stopping).
    Closed,
}

/// How much of the queue [`Subscription::drain_into`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Up to one output batch, so one write stays bounded.
    Batch,
    /// Everything (the last flush at shutdown).
    All,
}

impl Drop for Subscription {
    /// A reader that goes (a connection ending, a `/part`) may have been the
    /// one senders waited for: its place is given up first, then they are woken.
    fn drop(&mut self) {
        drop(std::mem::replace(&mut self.events, self.room.idle_receiver()));
        self.room.note_reader_progress();
    }
}

/// Where a reader stands when it shows a room's lines.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// This room is the reader's current one: its lines carry no tag.
    pub current: bool,
    /// Every room the reader is in, sorted.
    pub rooms: &'a [RoomKey],
}

/// One connection's place in a room's broadcast queue.
pub struct Subscription {
    events: broadcast::Receiver<Arc<Event>>,
    room: Arc<Room>,
    /// The connection this is, so its own lines are not echoed back.
    me: ConnId,
}

impl Subscription {
    pub fn new(room: Arc<Room>, events: broadcast::Receiver<Arc<Event>>, me: ConnId) -> Self {
        Subscription { events, room, me }
    }

    pub fn room(&self) -> &Arc<Room> {
        &self.room
    }

    /// True when nothing is queued for this reader.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The next delivery. Cancel-safe: nothing is taken unless returned.
    pub async fn next(&mut self) -> Delivery {
        match self.events.recv().await {
            Ok(event) => Delivery::Event(event),
            Err(RecvError::Lagged(missed)) => Delivery::Missed(missed),
            Err(RecvError::Closed) => Delivery::Closed,
        }
    }

    /// The next delivery if one is queued, without waiting.
    pub fn try_next(&mut self) -> Option<Delivery> {
        match self.events.try_recv() {
            Ok(event) => Some(Delivery::Event(event)),
            Err(TryRecvError::Lagged(missed)) => Some(Delivery::Missed(missed)),
            Err(TryRecvError::Closed) => Some(Delivery::Closed),
            Err(TryRecvError::Empty) => None,
        }
    }

    /// Puts one delivery in `out`; `false` when the room is gone.
    pub fn push<W: AsyncWrite + Unpin>(
        &self,
        delivery: Delivery,
        out: &mut Output<W>,
        view: View<'_>,
    ) -> bool {
        match delivery {
            Delivery::Event(event) => self.show(&event, out, view),
            Delivery::Missed(missed) => self.push_missed(missed, out, view),
            Delivery::Closed => return false,
        }
        true
    }

    /// Shows an event as this reader should see it: not at all when it is
    /// the reader's own, tagged when from a room other than the current
    /// one, once when sent to several rooms. The path of every delivery.
    #[inline(always)]
    fn show<W: AsyncWrite + Unpin>(&self, event: &Event, out: &mut Output<W>, view: View<'_>) {
        if event.from == Some(self.me) {
            return;
        }
        let key = self.room.key();
        match &event.what {
            What::Gathered(gathered) if !gathered.all_shown(key, view.rooms) => {
                // Some of these the reader saw through another room: the rest only.
                if let Some(rest) = gathered.rest(key, view.rooms) {
                    out.event(&rest, &self.room, view.current);
                }
            }
            _ if event.scope.shows(key, view.rooms) => out.event(event, &self.room, view.current),
            _ => {}
        }
    }

    /// Moves what is queued into `out`; returns whether there was anything.
    pub fn drain_into<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut Output<W>,
        drain: Drain,
        view: View<'_>,
    ) -> bool {
        let mut any = false;
        while drain == Drain::All || !out.is_batch_full() {
            match self.events.try_recv() {
                Ok(event) => self.show(&event, out, view),
                Err(TryRecvError::Lagged(missed)) => self.push_missed(missed, out, view),
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
            any = true;
        }
        any
    }

    /// Writes what `out` holds. While the socket is slow (no flush within
    /// [`STEP_ASIDE_AFTER`]) and this reader is so far behind that senders
    /// wait for it, it leaves the room's queue until its output has drained,
    /// then rejoins and says how many lines went by meanwhile. A reader
    /// behind by less holds no one back and loses nothing.
    pub async fn flush_or_step_aside<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut Output<W>,
        view: View<'_>,
    ) -> Result<(), WriteError> {
        let mut last_progress = Instant::now();
        let mut pending = out.pending();
        loop {
            if let Ok(flushed) = tokio::time::timeout(STEP_ASIDE_AFTER, out.flush()).await {
                self.room.note_reader_progress();
                return flushed;
            }
            if self.room.holds_back_senders(self.events.len()) {
                break;
            }
            if out.pending() < pending {
                (pending, last_progress) = (out.pending(), Instant::now());
            } else if last_progress.elapsed() >= out.write_timeout() {
                return Err(WriteError::Stalled);
            }
        }
        let unread = self.events.len() as u64;
        let stepped_out_at = self.room.published();
        self.events = self.room.idle_receiver();
        self.room.note_reader_progress();
        debug!(id = self.me, "slow reader stepped out of the queue");
        out.flush().await?;
        let (events, published) = self.room.rejoin_queue();
        self.events = events;
        let missed = unread + published.saturating_sub(stepped_out_at);
        if missed > 0 {
            self.push_missed(missed, out, view);
        }
        out.flush().await
    }

    /// Waits while `backlogged` says the room's readers (or the daemons
    /// behind the backplane) are far behind, delivering this reader's own
    /// queue meanwhile, so a flat-out sender moves at the readers' pace and
    /// nothing is lost. Bounded by [`MAX_PACING`]; woken by readers'
    /// progress, not by a timer.
    pub async fn pace<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut Output<W>,
        view: View<'_>,
        backlogged: impl Fn() -> bool,
    ) -> Result<(), WriteError> {
        if !backlogged() {
            return Ok(());
        }
        let deadline = Instant::now() + MAX_PACING;
        while Instant::now() < deadline {
            if self.drain_into(out, Drain::Batch, view) {
                self.flush_or_step_aside(out, view).await?;
            }
            let room = Arc::clone(&self.room);
            tokio::select! {
                still = room.wait_for_readers(deadline, &backlogged) => if !still {
                    break;
                },
                delivery = self.next() => {
                    self.push(delivery, out, view);
                    self.drain_into(out, Drain::Batch, view);
                    self.flush_or_step_aside(out, view).await?;
                }
            }
        }
        Ok(())
    }

    fn push_missed<W: AsyncWrite + Unpin>(&self, missed: u64, out: &mut Output<W>, view: View<'_>) {
        Stats::add(&self.room.stats.missed, missed);
        debug!(id = self.me, missed, "slow reader skipped ahead");
        let room = (!view.current).then(|| self.room.name().clone());
        out.reply(&Reply::Skipped { count: missed, room });
    }
}
