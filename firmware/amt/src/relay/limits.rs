//! Relay access limits per source address, so that one address cannot starve the others.
//!
//! - [`AddressKey`]: what "one address" means: an IPv4 address, or an IPv6 /64 (one site
//!   gets a whole /64, so counting single IPv6 addresses would limit nothing).
//! - [`RequestLimiter`]: Requests and Discoveries that could open a new tunnel pass a token
//!   bucket of their address, then a global one. The per-address buckets live in a bounded
//!   LRU table (the `lru` crate): a flood from spoofed addresses evicts the least recently
//!   seen entries instead of growing memory. An evicted entry comes back as a full bucket,
//!   so the table size only bounds memory, the global bucket still bounds the total.
//! - [`TunnelCounts`]: tunnels per address, for [`super::RelayConfig::max_tunnels_per_address`].
//!
//! Datagrams of existing tunnels do not pass here: they use their tunnel's own buckets, so a
//! flood of new Requests never delays a gateway that already has a tunnel.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroUsize;
use std::time::Instant;

use lru::LruCache;

use crate::rate::TokenBucket;

/// The unit of the per-address limits: an IPv4 address or an IPv6 /64 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct AddressKey(IpAddr);

impl AddressKey {
    pub(crate) fn of(addr: IpAddr) -> AddressKey {
        match addr.to_canonical() {
            IpAddr::V6(a) => {
                let s = a.segments();
                AddressKey(IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)))
            }
            v4 => AddressKey(v4),
        }
    }
}

/// Why a Request or Discovery was not answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its address used up its own bucket.
    Address,
    /// All addresses together used up the global bucket.
    Global,
}

/// Per-address token buckets in a bounded LRU table, then one global bucket.
#[derive(Debug)]
pub(crate) struct RequestLimiter {
    per_address: LruCache<AddressKey, TokenBucket>,
    rate: u32,
    burst: u32,
    global: TokenBucket,
}

impl RequestLimiter {
    /// `per_address` tokens per second (burst of twice that) for each of at most `table`
    /// addresses; `global` per second (burst of twice that) for all of them.
    pub(crate) fn new(per_address: u32, table: usize, global: u32, now: Instant) -> RequestLimiter {
        let rate = per_address.max(1);
        let global = global.max(1);
        RequestLimiter {
            per_address: LruCache::new(NonZeroUsize::new(table.max(1)).unwrap_or(NonZeroUsize::MIN)),
            rate,
            burst: rate.saturating_mul(2),
            global: TokenBucket::new(global, global.saturating_mul(2), now),
        }
    }

    /// Takes a token from `addr`'s bucket, then from the global one.
    pub(crate) fn admit(&mut self, addr: IpAddr, now: Instant) -> Result<(), Refusal> {
        let key = AddressKey::of(addr);
        let (rate, burst) = (self.rate, self.burst);
        let bucket = self.per_address.get_or_insert_mut(key, || TokenBucket::new(rate, burst, now));
        if !bucket.take(now) {
            return Err(Refusal::Address);
        }
        if !self.global.take(now) {
            return Err(Refusal::Global);
        }
        Ok(())
    }

    /// Number of addresses in the table.
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.per_address.len()
    }
}

/// How many tunnels each address holds.
#[derive(Debug, Default, Clone)]
pub(crate) struct TunnelCounts(HashMap<AddressKey, usize>);

impl TunnelCounts {
    pub(crate) fn get(&self, addr: IpAddr) -> usize {
        self.0.get(&AddressKey::of(addr)).copied().unwrap_or(0)
    }

    pub(crate) fn add(&mut self, addr: IpAddr) {
        *self.0.entry(AddressKey::of(addr)).or_default() += 1;
    }

    pub(crate) fn remove(&mut self, addr: IpAddr) {
        let key = AddressKey::of(addr);
        if let Some(n) = self.0.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.0.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_addresses_of_one_64_are_one_address() {
        assert_eq!(AddressKey::of(ip("2001:db8:1:2::1")), AddressKey::of(ip("2001:db8:1:2:ffff::9")));
        assert_ne!(AddressKey::of(ip("2001:db8:1:2::1")), AddressKey::of(ip("2001:db8:1:3::1")));
        assert_eq!(AddressKey::of(ip("::ffff:192.0.2.1")), AddressKey::of(ip("192.0.2.1")));
        assert_ne!(AddressKey::of(ip("192.0.2.1")), AddressKey::of(ip("192.0.2.2")));
    }

    #[test]
    fn one_address_exhausts_only_its_own_bucket() {
        let t0 = Instant::now();
        let mut l = RequestLimiter::new(5, 16, 1000, t0);
        let flood = (0..100).filter(|_| l.admit(ip("192.0.2.66"), t0).is_ok()).count();
        assert_eq!(flood, 10, "burst of twice the rate");
        assert_eq!(l.admit(ip("192.0.2.66"), t0), Err(Refusal::Address));
        assert_eq!(l.admit(ip("192.0.2.7"), t0), Ok(()), "another address is not affected");
        assert_eq!(l.admit(ip("192.0.2.66"), t0 + Duration::from_millis(200)), Ok(()), "refills at its rate");
    }

    #[test]
    fn the_global_bucket_bounds_all_addresses_together() {
        let t0 = Instant::now();
        let mut l = RequestLimiter::new(100, 64, 2, t0);
        let ok = (0..10).filter(|i| l.admit(IpAddr::from([192, 0, 2, *i as u8]), t0).is_ok()).count();
        assert_eq!(ok, 4);
        assert_eq!(l.admit(ip("192.0.2.200"), t0), Err(Refusal::Global));
    }

    #[test]
    fn a_spoofed_address_flood_stays_within_the_table() {
        let t0 = Instant::now();
        let mut l = RequestLimiter::new(1, 8, u32::MAX / 4, t0);
        // The gateway that is still active stays (recently used) while spoofed entries churn.
        for _ in 0..2 {
            assert!(l.admit(ip("198.51.100.1"), t0).is_ok());
        }
        for i in 0..10_000u32 {
            let _ = l.admit(IpAddr::from(i.to_be_bytes()), t0);
            if i % 4 == 0 {
                let _ = l.admit(ip("198.51.100.1"), t0);
            }
        }
        assert_eq!(l.tracked(), 8);
        assert_eq!(l.admit(ip("198.51.100.1"), t0), Err(Refusal::Address), "its empty bucket was kept");
    }

    #[test]
    fn tunnel_counts_follow_adds_and_removes() {
        let mut c = TunnelCounts::default();
        c.add(ip("192.0.2.1"));
        c.add(ip("::ffff:192.0.2.1"));
        c.add(ip("2001:db8::1"));
        assert_eq!(c.get(ip("192.0.2.1")), 2);
        assert_eq!(c.get(ip("2001:db8::2")), 1);
        c.remove(ip("192.0.2.1"));
        c.remove(ip("192.0.2.1"));
        c.remove(ip("192.0.2.1"));
        assert_eq!(c.get(ip("192.0.2.1")), 0);
        assert!(c.0.len() == 1);
    }
}
