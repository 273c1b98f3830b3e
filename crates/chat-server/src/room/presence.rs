//! Joins and leaves in a busy room: in a room of 32 or more, at most one
//! presence notice per second, the rest gathered into it (each change with
//! its own scope) and sent by the room's own task when the window ends,
//! so N joins cost O(N) deliveries per second instead of O(N) each.

use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{COALESCE_FROM_MEMBERS, PRESENCE_WINDOW, Room, RoomState};
use crate::event::{ConnId, Event, Gathered, Presence, Scope, What};

/// Joins and leaves waiting to be announced together.
#[derive(Debug, Default)]
pub(super) struct Gathering {
    last_sent: Option<Instant>,
    pending: Vec<(Presence, Scope)>,
}

impl Room {
    /// Publishes a join or leave at once in a small or quiet room; otherwise
    /// gathers it into one notice sent when the window ends, so that N joins
    /// cost O(N) deliveries per window instead of O(N) each.
    pub(super) fn announce_presence(
        &self,
        state: &mut RoomState,
        from: Option<ConnId>,
        change: Presence,
        scope: Scope,
    ) {
        let now = Instant::now();
        let quiet = state.presence.pending.is_empty()
            && state.presence.last_sent.is_none_or(|at| now.duration_since(at) >= PRESENCE_WINDOW);
        let members = state.members.len() + state.remote.len();
        if quiet || members < COALESCE_FROM_MEMBERS {
            state.presence.last_sent = Some(now);
            self.publish_locked(state, Event::new(from, What::Presence(change), scope), false);
            return;
        }
        if state.presence.pending.is_empty() {
            self.presence_due.notify_one();
        }
        state.presence.pending.push((change, scope));
    }

    /// Sends the joins and leaves this room gathered, each batch when its
    /// window ends, until the room closes or `shutdown`.
    pub async fn announce_gathered_presence(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let wait = async {
                match self.presence_due() {
                    Some(due) => tokio::time::sleep_until(due).await,
                    None => self.presence_due.notified().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.closed.cancelled() => return,
                _ = wait => {}
            }
            if self.presence_due().is_some_and(|due| due <= Instant::now()) {
                self.flush_presence();
            }
        }
    }

    /// When gathered presence changes are due, if any are waiting.
    fn presence_due(&self) -> Option<Instant> {
        let state = self.lock();
        if state.presence.pending.is_empty() {
            return None;
        }
        let last = state.presence.last_sent.unwrap_or_else(Instant::now);
        Some(last + PRESENCE_WINDOW)
    }

    /// Publishes the gathered joins and leaves as one notice.
    fn flush_presence(&self) {
        let mut state = self.lock();
        let pending = std::mem::take(&mut state.presence.pending);
        if pending.is_empty() {
            return;
        }
        state.presence.last_sent = Some(Instant::now());
        let event = Event::new(None, What::Gathered(Gathered::new(pending)), Scope::Room);
        self.publish_locked(&mut state, event, false);
    }
}
