//! What every connection, the console and the metrics endpoint share.
//!
//! [`Context`] holds the [`Hub`] (the one door to the room and the other
//! daemons), the limits, the shutdown signal and the admission gate. It has
//! a module of its own so the accept loop ([`crate::server`]) and the
//! connection task ([`crate::connection`]) both depend on it and not on
//! each other.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::accounts::LoginThrottle;
use crate::admission::{Admission, Gate, Refusal};
use crate::config::Limits;
use crate::event::ConnId;
use crate::hub::Hub;

pub struct Context {
    pub hub: Hub,
    pub limits: Limits,
    pub shutdown: CancellationToken,
    pub started: Instant,
    /// Failed password attempts per name.
    pub logins: LoginThrottle,
    gate: Gate,
    next_id: AtomicU64,
}

impl Context {
    pub fn new(hub: Hub, limits: Limits, shutdown: CancellationToken) -> Self {
        Context {
            hub,
            gate: Gate::new(limits.max_clients, limits.max_per_ip),
            limits,
            shutdown,
            started: Instant::now(),
            logins: LoginThrottle::default(),
            next_id: AtomicU64::new(1),
        }
    }

    /// Connections open right now, named or not.
    pub fn connections(&self) -> usize {
        self.gate.open()
    }

    /// A slot for a new connection from `ip`, or why not (its address
    /// banned, the server full, too many from that address).
    pub fn admit(&self, ip: IpAddr) -> Result<Admission, Refusal> {
        if let Some(ban) = self.hub.address_ban(ip) {
            crate::stats::Stats::add(&self.hub.stats().banned, 1);
            return Err(Refusal::Banned { reason: ban.reason, until_ms: ban.until_ms });
        }
        self.gate.admit(ip)
    }

    /// A fresh connection id.
    pub fn next_id(&self) -> ConnId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}
