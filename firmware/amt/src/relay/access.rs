//! Who the relay serves which (S,G) to: [`Access::Open`] (anyone, the standalone relay: it
//! carries ciphertext only) or [`Access::Members`], a table the owner keeps up to date (gateway
//! address → the (S,G)s it may receive; the meeting service fills it from its joins, leaves and
//! expiries). A tunnel keeps the memberships it reported either way; only allowed ones are
//! indexed as subscribers, so a denied gateway receives nothing, and one allowed later receives
//! at once without re-reporting.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use crate::SourceGroup;

/// The relay's access policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Access {
    /// Every gateway may receive every (S,G).
    #[default]
    Open,
    /// A gateway receives only the (S,G)s listed for its address (IPv4-mapped IPv6 addresses
    /// are their IPv4 form); an address not listed receives nothing.
    Members(HashMap<IpAddr, HashSet<SourceGroup>>),
}

impl Access {
    /// Whether the gateway at `addr` may receive `sg`.
    pub fn allows(&self, addr: IpAddr, sg: &SourceGroup) -> bool {
        match self {
            Access::Open => true,
            Access::Members(table) => table.get(&addr.to_canonical()).is_some_and(|groups| groups.contains(sg)),
        }
    }

    /// An empty member table: nobody receives anything until the owner allows it.
    pub fn closed() -> Self {
        Access::Members(HashMap::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_allows_all_members_only_what_is_listed() {
        let sg: SourceGroup = "127.0.0.1@232.10.0.9".parse().unwrap();
        let other: SourceGroup = "127.0.0.1@232.10.0.10".parse().unwrap();
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        assert!(Access::Open.allows(a, &sg));
        assert!(!Access::closed().allows(a, &sg));
        let m = Access::Members(HashMap::from([(a, HashSet::from([sg]))]));
        assert!(m.allows(a, &sg));
        assert!(m.allows("::ffff:198.51.100.1".parse().unwrap(), &sg), "mapped form is the same gateway");
        assert!(!m.allows(a, &other));
        assert!(!m.allows("198.51.100.2".parse().unwrap(), &sg));
    }
}
