//! A named user's state on one connection, and how a session ends.
//!
//! [`Session`] is what a connection holds once its user is in: who they
//! are ([`Speaker`]), their rooms ([`Memberships`]: a place in each room's
//! queue, and which room is current), their direct-message inbox and their
//! input rate. [`End`] is every way a session can end; it decides the
//! goodbye line, the leave notice the others read, and the log.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use chat_proto::{Line, RoomKey, vocabulary};
use tokio::io::AsyncWrite;
use tokio::sync::futures::OwnedNotified;

use crate::hub::Speaker;
use crate::output::{Output, WriteError};
use crate::people::Inbox;
use crate::room::Room;
use crate::subscription::{Delivery, Drain, Subscription, View};
use crate::throttle::Throttle;

/// A named user's state on this connection.
pub struct Session {
    pub speaker: Speaker,
    pub rooms: Memberships,
    pub inbox: Arc<Inbox>,
    pub throttle: Throttle,
}

/// The rooms a connection is in, each with its place in the room's queue,
/// and the current one, where plain lines and `/me` go.
///
/// Waiting on several rooms costs O(1) per wake-up, however many rooms:
/// each room has a slot whose own waker, when the room publishes, puts the
/// slot in a queue of rooms worth looking at, and only those are polled
/// (as `FuturesUnordered` does). A room that delivered goes to the back
/// of that queue, so a busy room cannot starve the others.
pub struct Memberships {
    /// Each room's subscription, in a slot that stays put while the
    /// connection is in the room; freed slots are reused.
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    /// The rooms' keys, sorted, and the slot of each, in the same order.
    keys: Vec<RoomKey>,
    at: Vec<usize>,
    current: RoomKey,
    /// Slots woken since they were last polled.
    ready: Arc<Ready>,
}

/// One room of a connection that is in several.
struct Slot {
    subscription: Subscription,
    state: Arc<SlotWaker>,
    /// `state` as a waker, made once.
    waker: Waker,
    /// Registered for the room's next publication; made before the queue
    /// is found empty, so no publication between the two goes unnoticed.
    waiting: Option<Pin<Box<OwnedNotified>>>,
}

impl Slot {
    fn new(subscription: Subscription, at: usize, ready: &Arc<Ready>) -> Self {
        let state =
            Arc::new(SlotWaker { at, queued: AtomicBool::new(false), ready: Arc::clone(ready) });
        let waker = Waker::from(Arc::clone(&state));
        Slot { subscription, state, waker, waiting: None }
    }

    /// The room's next delivery, or `Pending` with this slot's waker registered.
    fn poll_next(&mut self) -> Poll<Delivery> {
        let mut cx = Context::from_waker(&self.waker);
        loop {
            let waiting = self.waiting.get_or_insert_with(|| {
                Box::pin(self.subscription.room().publications().notified_owned())
            });
            if let Some(delivery) = self.subscription.try_next() {
                return Poll::Ready(delivery);
            }
            match waiting.as_mut().poll(&mut cx) {
                Poll::Ready(()) => self.waiting = None,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// The slots worth polling, in the order they were woken, and the task to wake.
#[derive(Default)]
struct Ready {
    queue: Mutex<ReadyQueue>,
}

#[derive(Default)]
struct ReadyQueue {
    slots: VecDeque<usize>,
    task: Option<Waker>,
}

impl Ready {
    fn lock(&self) -> std::sync::MutexGuard<'_, ReadyQueue> {
        // Each update is one push or pop; a panic elsewhere leaves it consistent.
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a slot (once until it is polled) and wakes the task.
    fn push(&self, slot: &SlotWaker) {
        if slot.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let task = {
            let mut queue = self.lock();
            queue.slots.push_back(slot.at);
            queue.task.take()
        };
        if let Some(task) = task {
            task.wake();
        }
    }
}

/// Wakes the connection's task and names the slot that has something.
struct SlotWaker {
    at: usize,
    queued: AtomicBool,
    ready: Arc<Ready>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.push(self);
    }
}

impl Memberships {
    /// In one room, which is current.
    pub fn new(first: Subscription) -> Self {
        let key = first.room().key().clone();
        let ready = Arc::new(Ready::default());
        let slot = Slot::new(first, 0, &ready);
        Memberships {
            slots: vec![Some(slot)],
            free: Vec::new(),
            keys: vec![key.clone()],
            at: vec![0],
            current: key,
            ready,
        }
    }

    fn slot(&self, index: usize) -> &Slot {
        self.slots[self.at[index]].as_ref().expect("every listed room has a slot")
    }

    /// The room plain lines go to.
    pub fn current(&self) -> &Arc<Room> {
        self.slot(self.index(&self.current).unwrap_or(0)).subscription.room()
    }

    pub fn contains(&self, key: &RoomKey) -> bool {
        self.index(key).is_some()
    }

    /// Makes a room this connection is in the current one.
    pub fn set_current(&mut self, key: &RoomKey) {
        if self.contains(key) {
            self.current = key.clone();
        }
    }

    /// Adds a room (the caller then makes it current if it wants).
    pub fn add(&mut self, subscription: Subscription) {
        let key = subscription.room().key().clone();
        let Err(index) = self.keys.binary_search(&key) else { return };
        let at = self.free.pop().unwrap_or(self.slots.len());
        let slot = Slot::new(subscription, at, &self.ready);
        if at == self.slots.len() {
            self.slots.push(Some(slot));
        } else {
            self.slots[at] = Some(slot);
        }
        self.keys.insert(index, key);
        self.at.insert(index, at);
        // Waited on through the room's publications from now on: each slot
        // is looked at once to register (the first one waited directly until now).
        if self.keys.len() == 2 {
            for &at in &self.at {
                self.wake(at);
            }
        } else {
            self.wake(at);
        }
    }

    fn wake(&self, at: usize) {
        if let Some(slot) = &self.slots[at] {
            self.ready.push(&slot.state);
        }
    }

    /// Drops a room; if it was current, `#lobby` or else the first room
    /// becomes current, which is returned.
    pub fn remove(&mut self, key: &RoomKey) -> Option<&Arc<Room>> {
        let index = self.index(key)?;
        self.keys.remove(index);
        let at = self.at.remove(index);
        self.slots[at] = None;
        self.free.push(at);
        if let [only] = self.at[..] {
            // One room is waited on directly again.
            if let Some(slot) = &mut self.slots[only] {
                slot.waiting = None;
            }
        }
        if self.current == *key {
            let lobby = RoomKey::of(chat_proto::LOBBY);
            let next = if self.contains(&lobby) { lobby } else { self.keys.first()?.clone() };
            self.current = next;
            return Some(self.current());
        }
        None
    }

    fn index(&self, key: &RoomKey) -> Option<usize> {
        self.keys.binary_search(key).ok()
    }

    /// True when nothing is queued in any room. With several rooms only
    /// those woken since they were last polled can have anything.
    pub fn is_idle(&self) -> bool {
        if let [only] = self.at[..] {
            return self.slots[only].as_ref().is_none_or(|slot| slot.subscription.is_empty());
        }
        self.ready.lock().slots.iter().all(|&at| {
            self.slots.get(at).and_then(Option::as_ref).is_none_or(|s| s.subscription.is_empty())
        })
    }

    /// The next delivery from any room, with the room's slot. Cancel-safe.
    pub async fn next(&mut self) -> (usize, Delivery) {
        if let [only] = self.at[..]
            && let Some(slot) = &mut self.slots[only]
        {
            return (only, slot.subscription.next().await);
        }
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Polls the woken slots, each at most once, oldest first; a slot that
    /// delivers goes to the back of the queue, since it may have more.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<(usize, Delivery)> {
        let woken = {
            let mut queue = self.ready.lock();
            if !queue.task.as_ref().is_some_and(|task| task.will_wake(cx.waker())) {
                queue.task = Some(cx.waker().clone());
            }
            queue.slots.len()
        };
        for _ in 0..woken {
            let Some(at) = self.ready.lock().slots.pop_front() else { break };
            let Some(slot) = self.slots.get_mut(at).and_then(Option::as_mut) else { continue };
            slot.state.queued.store(false, Ordering::Release);
            if let Poll::Ready(delivery) = slot.poll_next() {
                self.ready.push(&slot.state);
                return Poll::Ready((at, delivery));
            }
        }
        Poll::Pending
    }

    /// Shows a delivery from the room in slot `at` and what else that room
    /// has queued, then writes it all (or steps aside while the socket is
    /// slow). `Ok(false)` when the room is gone.
    pub async fn deliver<W: AsyncWrite + Unpin>(
        &mut self,
        at: usize,
        delivery: Delivery,
        out: &mut Output<W>,
    ) -> Result<bool, WriteError> {
        let Some(slot) = self.slots.get_mut(at).and_then(Option::as_mut) else { return Ok(true) };
        let subscription = &mut slot.subscription;
        let view = View { current: *subscription.room().key() == self.current, rooms: &self.keys };
        if !subscription.push(delivery, out, view) {
            return Ok(false);
        }
        subscription.drain_into(out, Drain::Batch, view);
        subscription.flush_or_step_aside(out, view).await?;
        Ok(true)
    }

    /// Puts everything queued in every room into `out` (the last flush).
    pub fn drain_all<W: AsyncWrite + Unpin>(&mut self, out: &mut Output<W>) {
        for slot in self.slots.iter_mut().flatten() {
            let subscription = &mut slot.subscription;
            let view =
                View { current: *subscription.room().key() == self.current, rooms: &self.keys };
            subscription.drain_into(out, Drain::All, view);
        }
    }

    /// Waits while the current room is backlogged (see
    /// [`Subscription::pace`]).
    pub async fn pace<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut Output<W>,
        backlogged: impl Fn(&Room) -> bool,
    ) -> Result<(), WriteError> {
        let Some(index) = self.index(&self.current) else { return Ok(()) };
        let view = View { current: true, rooms: &self.keys };
        let Some(slot) = self.slots[self.at[index]].as_mut() else { return Ok(()) };
        let subscription = &mut slot.subscription;
        let room = Arc::clone(subscription.room());
        subscription.pace(out, view, || backlogged(&room)).await
    }
}

/// How a session ended.
#[derive(Debug)]
pub enum End {
    Quit(Option<String>),
    Closed,
    Lost(String),
    Stalled,
    Kicked(String),
    Shutdown,
    NameTimeout,
    Http,
}

impl End {
    /// The last line the client gets, if there is anyone to say it to.
    pub fn goodbye(&self) -> Option<Line> {
        Some(match self {
            End::Quit(_) => Line::notice(vocabulary::GOODBYE),
            End::Kicked(reason) => Line::notice(&vocabulary::kicked(reason)),
            End::Shutdown => Line::notice(vocabulary::SHUTDOWN_GOODBYE),
            End::NameTimeout => Line::notice(vocabulary::NAME_TIMEOUT_GOODBYE),
            End::Http => Line::plain(vocabulary::NOT_HTTP),
            End::Closed | End::Lost(_) | End::Stalled => return None,
        })
    }

    /// Whether the peer can still read a goodbye.
    pub fn peer_is_listening(&self) -> bool {
        !matches!(self, End::Lost(_) | End::Stalled)
    }

    /// What the others read after the name: "alice left (bye)".
    pub fn leave_notice(&self) -> String {
        match self {
            End::Quit(Some(reason)) => format!("left ({reason})"),
            End::Quit(None) | End::Closed => "left".to_owned(),
            End::Lost(_) => "lost connection".to_owned(),
            End::Stalled => "was disconnected (not reading)".to_owned(),
            End::Kicked(reason) => format!("was kicked ({reason})"),
            End::Shutdown | End::NameTimeout | End::Http => "left".to_owned(),
        }
    }

    /// For the log.
    pub fn describe(&self) -> String {
        match self {
            End::Quit(reason) => format!("quit ({})", reason.as_deref().unwrap_or("no reason")),
            End::Closed => "closed by peer".to_owned(),
            End::Lost(error) => format!("lost: {error}"),
            End::Stalled => "not reading, write timed out".to_owned(),
            End::Kicked(reason) => format!("kicked: {reason}"),
            End::Shutdown => "server shutdown".to_owned(),
            End::NameTimeout => "no name in time".to_owned(),
            End::Http => "HTTP request".to_owned(),
        }
    }
}

impl From<WriteError> for End {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::Stalled => End::Stalled,
            WriteError::Io(e) => End::Lost(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::net::SocketAddr;
    use std::time::Duration;

    use chat_proto::{Name, RoomName, THEMES};

    use super::*;
    use crate::room::{Member, Scope};
    use crate::stats::Stats;

    const WAIT: Duration = Duration::from_secs(5);

    fn room(name: &str) -> Arc<Room> {
        let name = RoomName::parse(name).expect("valid room name");
        let stats = Arc::new(Stats::default());
        Arc::new(Room::new(name, 1024, 0, VecDeque::new(), stats, Default::default()))
    }

    /// Connection 1 in `room`, as `/join` makes it.
    fn subscribe(room: &Arc<Room>) -> Subscription {
        let name = Name::parse("reader").expect("valid name");
        let member = Member { name, theme: THEMES[0], peer: SocketAddr::from(([127, 0, 0, 1], 9)) };
        let entry = room.join(1, member, "reader joined".into());
        Subscription::new(Arc::clone(room), entry.events, 1)
    }

    /// The text of the next delivery, own join notices skipped.
    async fn next_text(rooms: &mut Memberships) -> String {
        loop {
            let (_, delivery) =
                tokio::time::timeout(WAIT, rooms.next()).await.expect("a delivery in time");
            let Delivery::Event(event) = delivery else { panic!("{delivery:?}") };
            if event.from != Some(1) {
                return String::from_utf8_lossy(event.line.bytes(false)).trim().to_owned();
            }
        }
    }

    #[tokio::test]
    async fn a_line_in_any_of_many_rooms_wakes_the_reader() {
        let rooms_here: Vec<Arc<Room>> = (0..50).map(|i| room(&format!("#r{i}"))).collect();
        let mut rooms = Memberships::new(subscribe(&rooms_here[0]));
        for room in &rooms_here[1..] {
            rooms.add(subscribe(room));
        }
        let waiting = tokio::spawn(async move { next_text(&mut rooms).await });
        tokio::task::yield_now().await;
        rooms_here[37].announce("hello from 37", Scope::Room);
        let text = tokio::time::timeout(WAIT, waiting).await.expect("in time").expect("no panic");
        assert!(text.contains("hello from 37"), "{text}");
    }

    #[tokio::test]
    async fn a_busy_room_cannot_starve_a_quiet_one() {
        let (busy, quiet) = (room("#busy"), room("#quiet"));
        let mut rooms = Memberships::new(subscribe(&busy));
        rooms.add(subscribe(&quiet));
        for i in 0..100 {
            busy.announce(&format!("busy {i}"), Scope::Room);
        }
        quiet.announce("quiet one", Scope::Room);
        let mut heard = Vec::new();
        for _ in 0..3 {
            heard.push(next_text(&mut rooms).await);
        }
        assert!(heard.iter().any(|t| t.contains("quiet one")), "{heard:?}");
    }
}
