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
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Wake, Waker};

use chat_proto::RoomKey;
use tokio::io::AsyncWrite;
use tokio::sync::futures::OwnedNotified;

use crate::hub::Speaker;
use crate::output::{Output, WriteError};
use crate::people::Inbox;
use crate::reply::{Farewell, Reply};
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
/// and the current one, where plain lines and `/me` go. A netcat or web
/// user is always in a room; an IRC user may leave its last one and be in
/// none ([`LastRoom`]), with no current room then.
///
/// Waiting on several rooms costs O(1) per wake-up, however many rooms
/// (as with `FuturesUnordered`): each room is registered on its room's
/// publication signal with a waker of its own, which queues the room, and
/// a wake-up polls only the queued rooms. A room that delivered goes to
/// the back of the queue, so a busy room cannot starve the others. In one
/// room, the common case, none of that exists: the room's receiver is
/// awaited directly and an idle connection carries nothing more.
pub struct Memberships {
    /// Sorted by room key.
    list: Vec<Slot>,
    /// The keys of `list`, in the same order.
    keys: Vec<RoomKey>,
    /// `None` only while in no room.
    current: Option<RoomKey>,
    last: LastRoom,
    /// The rooms woken since they were last polled, while in several.
    ready: Option<Arc<Ready>>,
}

/// Whether a connection may leave its last room: an IRC user is in the
/// channels it joined, possibly none; anyone else always has a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LastRoom {
    Kept,
    MayLeave,
}

/// One room of a connection.
struct Slot {
    subscription: Subscription,
    /// How this room wakes the connection, while it is in several rooms.
    wake: Option<SlotWake>,
}

struct SlotWake {
    waker: Arc<SlotWaker>,
    /// Registered for the room's next publication; made before the queue
    /// is found empty, so no publication in between goes unnoticed.
    waiting: Option<Pin<Box<OwnedNotified>>>,
}

impl Slot {
    /// The room's next delivery, or `Pending` with this room's waker
    /// registered. Only while in several rooms (`wake` is set).
    fn poll_next(&mut self) -> Poll<Delivery> {
        let Some(wake) = &mut self.wake else { return Poll::Pending };
        let waker = Waker::from(Arc::clone(&wake.waker));
        let mut cx = Context::from_waker(&waker);
        loop {
            let room = self.subscription.room();
            let waiting =
                wake.waiting.get_or_insert_with(|| Box::pin(room.publications().notified_owned()));
            if let Some(delivery) = self.subscription.try_next() {
                return Poll::Ready(delivery);
            }
            match waiting.as_mut().poll(&mut cx) {
                Poll::Ready(()) => wake.waiting = None,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// The rooms worth polling, in the order they were woken, and the task to wake.
#[derive(Default)]
struct Ready {
    queue: Mutex<ReadyQueue>,
}

#[derive(Default)]
struct ReadyQueue {
    rooms: VecDeque<Arc<SlotWaker>>,
    task: Option<Waker>,
}

impl Ready {
    fn lock(&self) -> std::sync::MutexGuard<'_, ReadyQueue> {
        // Each update is one push or pop; a panic elsewhere leaves it consistent.
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a room (once until it is polled) and wakes the task.
    fn push(&self, room: &Arc<SlotWaker>) {
        if room.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let task = {
            let mut queue = self.lock();
            queue.rooms.push_back(Arc::clone(room));
            queue.task.take()
        };
        if let Some(task) = task {
            task.wake();
        }
    }
}

/// Wakes the connection's task and names the room that has something.
struct SlotWaker {
    key: RoomKey,
    queued: AtomicBool,
    /// Weak: the queue holds these, and a connection that is gone needs no waking.
    ready: Weak<Ready>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(ready) = self.ready.upgrade() {
            ready.push(self);
        }
    }
}

impl Memberships {
    /// In one room, which is current; `last` says whether it may be left.
    pub fn new(first: Subscription, last: LastRoom) -> Self {
        let key = first.room().key().clone();
        let slot = Slot { subscription: first, wake: None };
        let (keys, current) = (vec![key.clone()], Some(key));
        Memberships { list: vec![slot], keys, current, last, ready: None }
    }

    /// The room plain lines go to; `None` while in no room.
    pub fn current(&self) -> Option<&Arc<Room>> {
        self.current.as_ref().and_then(|key| self.room(key))
    }

    /// Whether the last room may be left.
    pub fn last_room(&self) -> LastRoom {
        self.last
    }

    fn is_current(&self, at: usize) -> bool {
        self.current.as_ref() == Some(&self.keys[at])
    }

    /// How many rooms the connection is in.
    pub fn count(&self) -> usize {
        self.list.len()
    }

    pub fn contains(&self, key: &RoomKey) -> bool {
        self.index(key).is_some()
    }

    /// A room this connection is in.
    pub fn room(&self, key: &RoomKey) -> Option<&Arc<Room>> {
        self.index(key).map(|at| self.list[at].subscription.room())
    }

    /// A room this connection is in, by its name as a client typed it
    /// (`#Rust`): the spelling the room has is found without making a key,
    /// any other through the key.
    pub fn room_named(&self, typed: &str) -> Option<&Arc<Room>> {
        let mut rooms = self.list.iter().map(|slot| slot.subscription.room());
        rooms.find(|room| room.name().as_str() == typed).or_else(|| self.room(&RoomKey::of(typed)))
    }

    /// The keys of the rooms this connection is in, sorted.
    pub fn keys(&self) -> &[RoomKey] {
        &self.keys
    }

    /// Makes a room this connection is in the current one.
    pub fn set_current(&mut self, key: &RoomKey) {
        if self.contains(key) {
            self.current = Some(key.clone());
        }
    }

    /// Adds a room (the caller then makes it current if it wants).
    pub fn add(&mut self, subscription: Subscription) {
        let key = subscription.room().key().clone();
        let Err(at) = self.keys.binary_search(&key) else { return };
        self.keys.insert(at, key);
        self.list.insert(at, Slot { subscription, wake: None });
        let ready = match &self.ready {
            Some(ready) => Arc::clone(ready),
            None => {
                // From one room to two: every room gets its waker.
                let ready = Arc::new(Ready::default());
                self.ready = Some(Arc::clone(&ready));
                for slot in &mut self.list {
                    Self::wake_through(slot, &ready);
                }
                return;
            }
        };
        Self::wake_through(&mut self.list[at], &ready);
    }

    /// Gives a room its waker and queues it, so its first poll registers it.
    fn wake_through(slot: &mut Slot, ready: &Arc<Ready>) {
        let key = slot.subscription.room().key().clone();
        let waker = Arc::new(SlotWaker {
            key,
            queued: AtomicBool::new(false),
            ready: Arc::downgrade(ready),
        });
        ready.push(&waker);
        slot.wake = Some(SlotWake { waker, waiting: None });
    }

    /// Drops a room; if it was current, `#lobby` or else the first room
    /// becomes current, which is returned (none is when no room is left).
    pub fn remove(&mut self, key: &RoomKey) -> Option<&Arc<Room>> {
        let at = self.index(key)?;
        self.keys.remove(at);
        self.list.remove(at);
        if let [only] = self.list.as_mut_slice() {
            // Back to one room, waited on directly.
            only.wake = None;
            self.ready = None;
        }
        if self.current.as_ref() == Some(key) {
            let lobby = RoomKey::of(chat_proto::LOBBY);
            let next = if self.contains(&lobby) { Some(lobby) } else { self.keys.first().cloned() };
            self.current = next;
            return self.current();
        }
        None
    }

    fn index(&self, key: &RoomKey) -> Option<usize> {
        self.keys.binary_search(key).ok()
    }

    /// True when nothing is queued in any room. In several rooms, only
    /// those woken since they were last polled can have anything.
    pub fn is_idle(&self) -> bool {
        let Some(ready) = &self.ready else {
            return self.list.iter().all(|slot| slot.subscription.is_empty());
        };
        ready.lock().rooms.iter().all(|woken| {
            self.index(&woken.key).is_none_or(|at| self.list[at].subscription.is_empty())
        })
    }

    /// The next delivery from any room, with the room's position. Cancel-safe.
    pub async fn next(&mut self) -> (usize, Delivery) {
        if let [only] = self.list.as_mut_slice() {
            return (0, only.subscription.next().await);
        }
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Polls the woken rooms, each at most once, oldest first; a room that
    /// delivered goes to the back of the queue, since it may have more.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<(usize, Delivery)> {
        let Some(ready) = &self.ready else { return Poll::Pending };
        let woken = {
            let mut queue = ready.lock();
            if !queue.task.as_ref().is_some_and(|task| task.will_wake(cx.waker())) {
                queue.task = Some(cx.waker().clone());
            }
            queue.rooms.len()
        };
        for _ in 0..woken {
            let Some(waker) = ready.lock().rooms.pop_front() else { break };
            waker.queued.store(false, Ordering::Release);
            let Some(at) = self.index(&waker.key) else { continue };
            let slot = &mut self.list[at];
            // A room left and joined again has a new waker; the old one's turn is void.
            if !slot.wake.as_ref().is_some_and(|wake| Arc::ptr_eq(&wake.waker, &waker)) {
                continue;
            }
            if let Poll::Ready(delivery) = slot.poll_next() {
                ready.push(&waker);
                return Poll::Ready((at, delivery));
            }
        }
        Poll::Pending
    }

    /// Shows a delivery from the room at `at` and what else that room has
    /// queued, then writes it all (or steps aside while the socket is slow).
    /// `Ok(false)` when the room is gone.
    pub async fn deliver<W: AsyncWrite + Unpin>(
        &mut self,
        at: usize,
        delivery: Delivery,
        out: &mut Output<W>,
    ) -> Result<bool, WriteError> {
        let view = View { current: self.is_current(at), rooms: &self.keys };
        let subscription = &mut self.list[at].subscription;
        if !subscription.push(delivery, out, view) {
            return Ok(false);
        }
        subscription.drain_into(out, Drain::Batch, view);
        subscription.flush_or_step_aside(out, view).await?;
        Ok(true)
    }

    /// Puts everything queued in every room into `out` (the last flush).
    pub fn drain_all<W: AsyncWrite + Unpin>(&mut self, out: &mut Output<W>) {
        for at in 0..self.list.len() {
            let view = View { current: self.is_current(at), rooms: &self.keys };
            self.list[at].subscription.drain_into(out, Drain::All, view);
        }
    }

    /// Waits while the current room is backlogged (see
    /// [`Subscription::pace`]).
    pub async fn pace<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut Output<W>,
        backlogged: impl Fn(&Room) -> bool,
    ) -> Result<(), WriteError> {
        let Some(at) = self.current.as_ref().and_then(|key| self.index(key)) else { return Ok(()) };
        let view = View { current: true, rooms: &self.keys };
        let subscription = &mut self.list[at].subscription;
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
    /// The registered name logged in on another connection.
    Replaced,
    Shutdown,
    NameTimeout,
    Http,
}

impl End {
    /// The last words the client gets, if there is anyone to say them to.
    pub fn goodbye(&self) -> Option<Reply> {
        Some(Reply::Goodbye(match self {
            End::Quit(_) => Farewell::Quit,
            End::Kicked(reason) => Farewell::Kicked { reason: reason.clone() },
            End::Replaced => Farewell::Replaced,
            End::Shutdown => Farewell::Shutdown,
            End::NameTimeout => Farewell::NameTimeout,
            End::Http => Farewell::NotHttp,
            End::Closed | End::Lost(_) | End::Stalled => return None,
        }))
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
            End::Replaced => "left (logged in again)".to_owned(),
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
            End::Replaced => "replaced by a new login".to_owned(),
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
    use crate::event::Scope;
    use crate::room::Member;
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
        let notice =
            crate::event::Presence::Arrived { who: member.name.clone(), theme: member.theme };
        let entry = room.join(1, member, &notice);
        Subscription::new(Arc::clone(room), entry.events, 1)
    }

    /// The text of the next delivery, own join notices skipped.
    async fn next_text(rooms: &mut Memberships) -> String {
        loop {
            let (_, delivery) =
                tokio::time::timeout(WAIT, rooms.next()).await.expect("a delivery in time");
            let Delivery::Event(event) = delivery else { panic!("{delivery:?}") };
            if event.from != Some(1) {
                return String::from_utf8_lossy(crate::protocol::text::line(&event).bytes(false))
                    .trim()
                    .to_owned();
            }
        }
    }

    #[tokio::test]
    async fn a_line_in_any_of_many_rooms_wakes_the_reader() {
        let rooms_here: Vec<Arc<Room>> = (0..50).map(|i| room(&format!("#r{i}"))).collect();
        let mut rooms = Memberships::new(subscribe(&rooms_here[0]), LastRoom::Kept);
        for room in &rooms_here[1..] {
            rooms.add(subscribe(room));
        }
        let waiting = tokio::spawn(async move { next_text(&mut rooms).await });
        tokio::task::yield_now().await;
        rooms_here[37].announce("hello from 37", Scope::Room, 0);
        let text = tokio::time::timeout(WAIT, waiting).await.expect("in time").expect("no panic");
        assert!(text.contains("hello from 37"), "{text}");
    }

    #[tokio::test]
    async fn a_busy_room_cannot_starve_a_quiet_one() {
        let (busy, quiet) = (room("#busy"), room("#quiet"));
        let mut rooms = Memberships::new(subscribe(&busy), LastRoom::Kept);
        rooms.add(subscribe(&quiet));
        for i in 0..100 {
            busy.announce(&format!("busy {i}"), Scope::Room, 0);
        }
        quiet.announce("quiet one", Scope::Room, 0);
        let mut heard = Vec::new();
        for _ in 0..3 {
            heard.push(next_text(&mut rooms).await);
        }
        assert!(heard.iter().any(|t| t.contains("quiet one")), "{heard:?}");
    }
}
