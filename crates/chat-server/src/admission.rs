//! Who may connect: the `--max-clients` cap and the `--max-per-ip` cap.
//!
//! Admission hands out an [`Admission`] that holds a connection slot and,
//! when the per-address cap is on, one of its address's slots; dropping it
//! (when the connection task ends) gives both back. A refusal carries the
//! one line the refused peer is sent, so nobody is closed on in silence.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::reply::Reply;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a connection was turned away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Full {
        max_clients: usize,
    },
    TooManyFromAddress {
        max_per_ip: usize,
    },
    /// The address is banned from the server.
    Banned {
        reason: String,
        until_ms: Option<i64>,
    },
}

impl Refusal {
    /// What the refused peer is told.
    pub fn reply(&self) -> Reply {
        Reply::Turned {
            reason: match self {
                Refusal::Full { max_clients } => {
                    format!(
                        "Sorry, the server is full ({max_clients} users). Please try again later."
                    )
                }
                Refusal::Banned { reason, until_ms } => {
                    let until = crate::moderation::until_text(*until_ms);
                    let reason = if reason.is_empty() { "no reason given" } else { reason };
                    format!("Sorry, your address is banned from this server {until}: {reason}.")
                }
                Refusal::TooManyFromAddress { max_per_ip } => format!(
                    "Sorry, too many connections from your address (at most {max_per_ip}). Close one and try again."
                ),
            },
        }
    }
}

/// A connection's right to exist; released on drop.
#[derive(Debug)]
pub struct Admission {
    _slot: OwnedSemaphorePermit,
    _address: Option<AddressSlot>,
}

/// The admission rules and what is currently admitted.
#[derive(Debug)]
pub struct Gate {
    max_clients: usize,
    slots: Arc<Semaphore>,
    max_per_ip: Option<usize>,
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Gate {
    /// `max_per_ip` of `None` means no per-address cap.
    pub fn new(max_clients: usize, max_per_ip: Option<usize>) -> Self {
        Gate {
            max_clients,
            slots: Arc::new(Semaphore::new(max_clients)),
            max_per_ip,
            per_address: Arc::default(),
        }
    }

    pub fn admit(&self, ip: IpAddr) -> Result<Admission, Refusal> {
        let address = match self.max_per_ip {
            Some(max_per_ip) => Some(self.take_address_slot(ip, max_per_ip)?),
            None => None,
        };
        let slot = Arc::clone(&self.slots)
            .try_acquire_owned()
            .map_err(|_| Refusal::Full { max_clients: self.max_clients })?;
        Ok(Admission { _slot: slot, _address: address })
    }

    /// Connections admitted and not yet ended.
    pub fn open(&self) -> usize {
        self.max_clients - self.slots.available_permits()
    }

    fn take_address_slot(&self, ip: IpAddr, max_per_ip: usize) -> Result<AddressSlot, Refusal> {
        let mut counts = lock(&self.per_address);
        let count = counts.entry(ip).or_insert(0);
        if *count >= max_per_ip {
            return Err(Refusal::TooManyFromAddress { max_per_ip });
        }
        *count += 1;
        Ok(AddressSlot { ip, counts: Arc::clone(&self.per_address) })
    }
}

/// One connection's share of its address's cap.
#[derive(Debug)]
struct AddressSlot {
    ip: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Counts stay consistent even if a holder panicked: each update is one step.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));

    #[test]
    fn per_address_cap_counts_each_address_and_frees_on_drop() {
        let gate = Gate::new(10, Some(2));
        let first = gate.admit(A).expect("first");
        let _second = gate.admit(A).expect("second");
        assert_eq!(gate.admit(A).unwrap_err(), Refusal::TooManyFromAddress { max_per_ip: 2 });
        let _other = gate.admit(B).expect("other address unaffected");
        drop(first);
        let _again = gate.admit(A).expect("a freed slot is reused");
        assert_eq!(gate.open(), 3);
    }

    #[test]
    fn total_cap_applies_to_everyone() {
        let gate = Gate::new(1, None);
        let _only = gate.admit(A).expect("first");
        assert_eq!(gate.admit(B).unwrap_err(), Refusal::Full { max_clients: 1 });
    }

    #[test]
    fn refused_by_address_does_not_use_a_slot() {
        let gate = Gate::new(2, Some(1));
        let _a = gate.admit(A).expect("a");
        assert!(gate.admit(A).is_err());
        assert!(gate.admit(B).is_ok());
    }
}
