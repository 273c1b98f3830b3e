//! Address bans indexed for the check every connection makes at accept.
//!
//! A ban covers a network (`10.0.0.0/8`, `2001:db8::/32`, or one address as
//! `/32` or `/128`). [`AddressBans`] keeps them in one hash table per prefix
//! length in use, longest first, so finding the ban that covers an address
//! is one lookup per length in use (at most 33 for IPv4 and 129 for IPv6)
//! whatever the number of bans: ten thousand bans cost an accept no more
//! than ten. IPv4 written as IPv6 (`::ffff:192.0.2.7`) is looked up as IPv4.
//! An expired ban is dropped when a lookup meets it.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::moderation::Ban;

/// An address as a number, masked to a prefix.
trait Bits: Copy + Eq + Hash {
    fn masked(self, prefix: u8) -> Self;
}

impl Bits for u32 {
    fn masked(self, prefix: u8) -> Self {
        u32::MAX.checked_shl(32 - u32::from(prefix)).map_or(0, |mask| self & mask)
    }
}

impl Bits for u128 {
    fn masked(self, prefix: u8) -> Self {
        u128::MAX.checked_shl(128 - u32::from(prefix)).map_or(0, |mask| self & mask)
    }
}

/// The bans of one address family, one table per prefix length, longest first.
#[derive(Debug)]
struct Family<K> {
    tables: Vec<(u8, HashMap<K, Ban>)>,
}

impl<K> Default for Family<K> {
    fn default() -> Self {
        Family { tables: Vec::new() }
    }
}

impl<K: Bits> Family<K> {
    fn insert(&mut self, network: K, prefix: u8, ban: Ban) {
        let at = match self.tables.binary_search_by(|(p, _)| prefix.cmp(p)) {
            Ok(at) => at,
            Err(at) => {
                self.tables.insert(at, (prefix, HashMap::new()));
                at
            }
        };
        self.tables[at].1.insert(network, ban);
    }

    fn remove(&mut self, network: K, prefix: u8) -> bool {
        let Ok(at) = self.tables.binary_search_by(|(p, _)| prefix.cmp(p)) else { return false };
        let removed = self.tables[at].1.remove(&network).is_some();
        if self.tables[at].1.is_empty() {
            self.tables.remove(at);
        }
        removed
    }

    fn contains(&self, network: K, prefix: u8) -> bool {
        self.tables
            .binary_search_by(|(p, _)| prefix.cmp(p))
            .is_ok_and(|at| self.tables[at].1.contains_key(&network))
    }

    /// The most specific ban in force covering `address`; expired ones met are dropped.
    fn find(&mut self, address: K, now_ms: i64) -> Option<Ban> {
        let mut found = None;
        let mut expired = Vec::new();
        for (prefix, table) in &self.tables {
            let network = address.masked(*prefix);
            match table.get(&network) {
                Some(ban) if in_force(ban, now_ms) => {
                    found = Some(ban.clone());
                    break;
                }
                Some(_) => expired.push((network, *prefix)),
                None => {}
            }
        }
        for (network, prefix) in expired {
            self.remove(network, prefix);
        }
        found
    }

    fn iter(&self) -> impl Iterator<Item = &Ban> {
        self.tables.iter().flat_map(|(_, table)| table.values())
    }
}

fn in_force(ban: &Ban, now_ms: i64) -> bool {
    ban.until_ms.is_none_or(|until| until > now_ms)
}

/// Every address ban of the server.
#[derive(Debug, Default)]
pub struct AddressBans {
    v4: Family<u32>,
    v6: Family<u128>,
}

impl AddressBans {
    /// Puts `ban` on `net` in force, replacing any ban on the same network.
    pub fn insert(&mut self, net: IpNet, ban: Ban) {
        let (prefix, net) = (net.prefix_len(), net.trunc());
        match net {
            IpNet::V4(v4) => self.v4.insert(u32::from(v4.network()), prefix, ban),
            IpNet::V6(v6) => self.v6.insert(u128::from(v6.network()), prefix, ban),
        }
    }

    /// Lifts the ban on exactly `net`; false when there was none.
    pub fn remove(&mut self, net: &IpNet) -> bool {
        let (prefix, net) = (net.prefix_len(), net.trunc());
        match net {
            IpNet::V4(v4) => self.v4.remove(u32::from(v4.network()), prefix),
            IpNet::V6(v6) => self.v6.remove(u128::from(v6.network()), prefix),
        }
    }

    /// True when exactly `net` is banned (in force or not yet looked at since it ended).
    pub fn contains(&self, net: &IpNet) -> bool {
        let (prefix, net) = (net.prefix_len(), net.trunc());
        match net {
            IpNet::V4(v4) => self.v4.contains(u32::from(v4.network()), prefix),
            IpNet::V6(v6) => self.v6.contains(u128::from(v6.network()), prefix),
        }
    }

    /// The most specific ban in force that covers `ip`.
    pub fn find(&mut self, ip: IpAddr, now_ms: i64) -> Option<Ban> {
        match ip {
            IpAddr::V4(v4) => self.v4.find(u32::from(v4), now_ms),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => self.v4.find(u32::from(v4), now_ms),
                None => self.v6.find(u128::from(v6), now_ms),
            },
        }
    }

    /// Every ban, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Ban> {
        self.v4.iter().chain(self.v6.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moderation::Target;

    fn ban(net: &str, until_ms: Option<i64>) -> (IpNet, Ban) {
        let net: IpNet = net.parse().expect("a network");
        let target = Target::Address(net.trunc());
        let ban = Ban {
            target,
            room: None,
            by: "op".into(),
            reason: net.to_string(),
            set_ms: 0,
            until_ms,
        };
        (net, ban)
    }

    fn found(bans: &mut AddressBans, ip: &str, now_ms: i64) -> Option<String> {
        bans.find(ip.parse().expect("an address"), now_ms).map(|b| b.reason)
    }

    #[test]
    fn masks_keep_the_prefix_bits() {
        assert_eq!(0xC000_0207u32.masked(24), 0xC000_0200);
        assert_eq!(0xC000_0207u32.masked(32), 0xC000_0207);
        assert_eq!(0xC000_0207u32.masked(0), 0);
        assert_eq!(u128::MAX.masked(128), u128::MAX);
        assert_eq!(u128::MAX.masked(0), 0);
        assert_eq!(u128::MAX.masked(1), 1 << 127);
    }

    #[test]
    fn the_most_specific_ban_in_force_covers_an_address() {
        let mut bans = AddressBans::default();
        for net in ["10.0.0.0/8", "10.9.0.0/16", "192.0.2.7/32", "2001:db8::/32", "0.0.0.0/0"] {
            let (net, ban) = ban(net, None);
            bans.insert(net, ban);
        }
        assert_eq!(found(&mut bans, "10.9.8.7", 0).as_deref(), Some("10.9.0.0/16"));
        assert_eq!(found(&mut bans, "10.1.1.1", 0).as_deref(), Some("10.0.0.0/8"));
        assert_eq!(found(&mut bans, "::ffff:192.0.2.7", 0).as_deref(), Some("192.0.2.7/32"));
        assert_eq!(found(&mut bans, "2001:db8:1::5", 0).as_deref(), Some("2001:db8::/32"));
        assert_eq!(found(&mut bans, "11.0.0.1", 0).as_deref(), Some("0.0.0.0/0"));
        assert_eq!(found(&mut bans, "2001:db9::1", 0), None);
        assert!(bans.remove(&"0.0.0.0/0".parse().expect("net")));
        assert!(!bans.remove(&"0.0.0.0/0".parse().expect("net")));
        assert!(bans.contains(&"10.9.1.1/16".parse().expect("net")));
        assert!(!bans.contains(&"10.9.0.0/17".parse().expect("net")));
        assert_eq!(found(&mut bans, "11.0.0.1", 0), None);
        assert_eq!(bans.iter().count(), 4);
    }

    #[test]
    fn an_expired_ban_is_not_found_and_is_forgotten() {
        let mut bans = AddressBans::default();
        let (net, short) = ban("10.9.0.0/16", Some(100));
        bans.insert(net, short);
        let (net, long) = ban("10.0.0.0/8", None);
        bans.insert(net, long);
        assert_eq!(found(&mut bans, "10.9.8.7", 99).as_deref(), Some("10.9.0.0/16"));
        assert_eq!(found(&mut bans, "10.9.8.7", 100).as_deref(), Some("10.0.0.0/8"));
        assert_eq!(bans.iter().count(), 1, "the expired ban was dropped");
    }

    #[test]
    fn a_ban_on_the_same_network_replaces_the_last() {
        let mut bans = AddressBans::default();
        let (net, mut first) = ban("192.0.2.0/24", None);
        first.reason = "first".into();
        bans.insert(net, first);
        let (net, mut second) = ban("192.0.2.9/24", None);
        second.reason = "second".into();
        bans.insert(net, second);
        assert_eq!(bans.iter().count(), 1);
        assert_eq!(found(&mut bans, "192.0.2.1", 0).as_deref(), Some("second"));
    }
}
