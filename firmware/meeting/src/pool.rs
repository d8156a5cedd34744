//! Allocation of multicast groups from the configured SSM ranges (IPv4 232.0.0.0/8, IPv6
//! ff3x::/32): each participant gets a free group drawn at random from each range (so knowing
//! one room's group tells nothing about another's, and a few tunnels cannot cover every room by
//! joining the start of the range); leaving frees it.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use rand::Rng;

use crate::MeetingError;

/// An address range written `ADDR/PREFIX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    base: IpAddr,
    prefix: u8,
}

impl Range {
    /// The range's first address.
    pub fn base(&self) -> IpAddr {
        self.base
    }
    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
    /// Number of usable groups (the base address itself is skipped), capped at 2^20.
    pub fn capacity(&self) -> u64 {
        let bits = match self.base {
            IpAddr::V4(_) => 32 - u32::from(self.prefix),
            IpAddr::V6(_) => 128 - u32::from(self.prefix),
        };
        if bits >= 20 {
            1 << 20
        } else {
            (1u64 << bits).saturating_sub(1)
        }
    }
    /// The `index`th group (1-based) of the range.
    fn nth(&self, index: u64) -> IpAddr {
        match self.base {
            IpAddr::V4(b) => IpAddr::V4(Ipv4Addr::from(u32::from(b).wrapping_add(index as u32))),
            IpAddr::V6(b) => IpAddr::V6(Ipv6Addr::from(u128::from(b).wrapping_add(u128::from(index)))),
        }
    }
    fn index_of(&self, addr: IpAddr) -> Option<u64> {
        match (self.base, addr) {
            (IpAddr::V4(b), IpAddr::V4(a)) => u32::from(a).checked_sub(u32::from(b)).map(u64::from),
            (IpAddr::V6(b), IpAddr::V6(a)) => {
                u128::from(a).checked_sub(u128::from(b)).and_then(|d| u64::try_from(d).ok())
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

impl FromStr for Range {
    type Err = MeetingError;
    /// Parses `232.10.0.0/24` or `ff3e::8000:0/112`; checks the range is source-specific
    /// multicast (232.0.0.0/8 or ff3x::/32) and the base is aligned to the prefix.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| MeetingError::Invalid(format!("{s:?}: {why}"));
        let (addr, prefix) = s.split_once('/').ok_or_else(|| bad("expected ADDRESS/PREFIX"))?;
        let base: IpAddr = addr.parse().map_err(|_| bad("not an IP address"))?;
        let prefix: u8 = prefix.parse().map_err(|_| bad("prefix is not a number"))?;
        match base {
            IpAddr::V4(v4) => {
                if !(8..=30).contains(&prefix) {
                    return Err(bad("IPv4 prefix must be between /8 and /30"));
                }
                if v4.octets()[0] != 232 {
                    return Err(bad("IPv4 SSM groups must be in 232.0.0.0/8"));
                }
                let mask = u32::MAX << (32 - u32::from(prefix));
                if u32::from(v4) & !mask != 0 {
                    return Err(bad("base address has bits set past the prefix"));
                }
            }
            IpAddr::V6(v6) => {
                if !(32..=126).contains(&prefix) {
                    return Err(bad("IPv6 prefix must be between /32 and /126"));
                }
                let o = v6.octets();
                if o[0] != 0xff || o[1] >> 4 != 3 || o[2..4] != [0, 0] {
                    return Err(bad("IPv6 SSM groups must be in ff3x::/32 (e.g. ff3e::/32)"));
                }
                let mask = u128::MAX << (128 - u32::from(prefix));
                if u128::from(v6) & !mask != 0 {
                    return Err(bad("base address has bits set past the prefix"));
                }
            }
        }
        Ok(Self { base, prefix })
    }
}

/// Free/used bookkeeping of one range.
#[derive(Debug, Clone)]
pub struct GroupPool {
    range: Range,
    used: BTreeSet<u64>,
}

impl GroupPool {
    /// An empty pool over `range`.
    pub fn new(range: Range) -> Self {
        Self { range, used: BTreeSet::new() }
    }

    /// The range it allocates from.
    pub fn range(&self) -> Range {
        self.range
    }

    /// Number of groups in use.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }

    /// Takes a free group drawn uniformly from `rng` (the next free one after the draw when
    /// the drawn one is taken).
    pub fn allocate(&mut self, rng: &mut impl Rng) -> Result<IpAddr, MeetingError> {
        let cap = self.range.capacity();
        if self.used.len() as u64 >= cap {
            return Err(MeetingError::PoolExhausted(self.range.to_string()));
        }
        let start = rng.random_range(1..=cap);
        // The first free index at or after `start`, wrapping: the gap after `start` in `used`.
        let mut candidate = start;
        for &u in self.used.range(start..).chain(self.used.range(..start)) {
            if u != candidate {
                break;
            }
            candidate = if candidate == cap { 1 } else { candidate + 1 };
        }
        self.used.insert(candidate);
        Ok(self.range.nth(candidate))
    }

    /// Gives a group back.
    pub fn release(&mut self, group: IpAddr) {
        if let Some(i) = self.range.index_of(group) {
            self.used.remove(&i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks_ranges() {
        assert!("232.10.0.0/24".parse::<Range>().is_ok());
        assert!("ff3e::8000:0/112".parse::<Range>().is_ok());
        assert!("239.1.0.0/16".parse::<Range>().is_err(), "not SSM");
        assert!("ff0e::/16".parse::<Range>().is_err(), "not SSM");
        assert!("232.10.0.1/24".parse::<Range>().is_err(), "unaligned");
        assert!("232.10.0.0".parse::<Range>().is_err());
        assert!("232.10.0.0/x".parse::<Range>().is_err());
    }

    #[test]
    fn allocates_every_group_once_then_reuses() {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
        let mut p = GroupPool::new("232.10.0.0/30".parse().unwrap());
        let mut got: Vec<String> = (0..3).map(|_| p.allocate(&mut rng).unwrap().to_string()).collect();
        got.sort();
        assert_eq!(got, ["232.10.0.1", "232.10.0.2", "232.10.0.3"]);
        assert!(matches!(p.allocate(&mut rng), Err(MeetingError::PoolExhausted(_))));
        let b: IpAddr = "232.10.0.2".parse().unwrap();
        p.release(b);
        assert_eq!(p.allocate(&mut rng).unwrap(), b);
        let mut p6 = GroupPool::new("ff3e::8000:0/112".parse().unwrap());
        assert!(p6.allocate(&mut rng).unwrap().to_string().starts_with("ff3e::8000:"));
    }

    #[test]
    fn groups_are_spread_over_the_range() {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(99);
        let mut p = GroupPool::new("232.10.0.0/16".parse().unwrap());
        let range = p.range();
        let idx: Vec<u64> = (0..16).map(|_| range.index_of(p.allocate(&mut rng).unwrap()).unwrap()).collect();
        // Handed out in order from the start, 16 groups would all be below 17.
        assert!(idx.iter().filter(|&&i| i > 1024).count() >= 12, "{idx:?}");
        let mut sorted = idx.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 16);
    }
}
