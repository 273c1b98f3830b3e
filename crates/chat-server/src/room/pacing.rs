//! Senders and readers of one room: while the slowest reader is past the
//! high-water mark, local senders wait on the readers' progress signal
//! (registered before the backlog is checked again, so progress in between
//! is never missed), and readers signal it only while senders wait.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::time::Instant;

use super::Room;

impl Room {
    /// True while the slowest reader in the queue is past the high-water
    /// mark: local senders then wait (see `subscription`), so readers that
    /// keep up lose nothing. Readers blocked on their sockets step out of
    /// the queue, so they never hold senders back for long.
    pub fn is_backlogged(&self) -> bool {
        self.events.len() > self.high_water
    }

    /// True when a reader this many lines behind makes senders wait.
    pub fn holds_back_senders(&self, behind: usize) -> bool {
        behind > self.high_water
    }

    /// Called by a reader that took lines off the queue: wakes the senders
    /// waiting in [`Room::wait_for_readers`], if any (an atomic load otherwise).
    pub fn note_reader_progress(&self) {
        if self.senders_waiting.load(Ordering::SeqCst) > 0 {
            self.readers_progressed.notify_waiters();
        }
    }

    /// Waits while `backlogged` holds, until readers make progress or
    /// `deadline` passes; false, at once, when it does not hold. The wait
    /// is registered before `backlogged` is checked, so progress made in
    /// between is never missed. After a wait (true) the caller asks again,
    /// by calling this again: a wake-up may be early, and each round checks
    /// the backlog once (the check scans the queue's slots).
    pub async fn wait_for_readers(&self, deadline: Instant, backlogged: impl Fn() -> bool) -> bool {
        let progressed = self.readers_progressed.notified();
        tokio::pin!(progressed);
        progressed.as_mut().enable();
        self.senders_waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = WaitingSender(&self.senders_waiting);
        if !backlogged() {
            return false;
        }
        tokio::select! {
            _ = progressed => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
        true
    }
}

/// Decrements the count of waiting senders when a wait ends, however it ends.
struct WaitingSender<'a>(&'a AtomicUsize);

impl Drop for WaitingSender<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
