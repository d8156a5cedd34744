//! [`SourceGroup`]: one source-specific multicast channel (S,G), the unit a gateway joins and
//! a relay forwards, with SSM range validation and the `SOURCE@GROUP` text form. It is the one
//! (S,G) type of roomcast: the meeting crate re-exports it. With the `serde` feature it
//! (de)serialises as that text, validated on the way in.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::AmtError;

/// A source-specific multicast channel (S,G): a unicast source and an SSM group of the same family.
///
/// IPv4 groups must be in 232.0.0.0/8, IPv6 groups in ff3x::/32 (RFC 4607).
/// Construct with [`SourceGroup::new`] or parse `"SOURCE@GROUP"`; the fields are public for
/// pattern matching, so code building one by hand should call [`SourceGroup::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceGroup {
    /// Unicast source address S.
    pub source: IpAddr,
    /// SSM group address G.
    pub group: IpAddr,
}

impl SourceGroup {
    /// Builds a validated (S,G): same family, unicast source, group in the SSM range.
    pub fn new(source: IpAddr, group: IpAddr) -> Result<Self, AmtError> {
        let sg = SourceGroup { source, group };
        sg.validate()?;
        Ok(sg)
    }

    /// Checks the rules of [`SourceGroup::new`].
    pub fn validate(&self) -> Result<(), AmtError> {
        match (self.source, self.group) {
            (IpAddr::V4(s), IpAddr::V4(g)) => {
                if !is_ssm_v4(g) {
                    return Err(AmtError::NotSsm(self.group));
                }
                if s.is_multicast() || s.is_unspecified() || s.is_broadcast() {
                    return Err(AmtError::BadSource(self.source));
                }
                Ok(())
            }
            (IpAddr::V6(s), IpAddr::V6(g)) => {
                if !is_ssm_v6(g) {
                    return Err(AmtError::NotSsm(self.group));
                }
                if s.is_multicast() || s.is_unspecified() {
                    return Err(AmtError::BadSource(self.source));
                }
                Ok(())
            }
            _ => Err(AmtError::FamilyMismatch),
        }
    }

    /// True for an IPv4 (S,G) (carried by IGMPv3), false for IPv6 (MLDv2).
    pub fn is_ipv4(&self) -> bool {
        self.group.is_ipv4()
    }
}

/// True if `g` is in the IPv4 SSM range 232.0.0.0/8.
pub fn is_ssm_v4(g: Ipv4Addr) -> bool {
    g.octets()[0] == 232
}

/// True if `g` is in the IPv6 SSM range ff3x::/32 (flags P=1,T=1, prefix length 0).
pub fn is_ssm_v6(g: Ipv6Addr) -> bool {
    let o = g.octets();
    o[0] == 0xff && (o[1] >> 4) == 0x3 && o[2] == 0 && o[3] == 0
}

impl fmt::Display for SourceGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.source, self.group)
    }
}

impl FromStr for SourceGroup {
    type Err = AmtError;

    /// Parses `SOURCE@GROUP`, e.g. `10.1.2.3@232.1.1.1` or `2001:db8::1@ff3e::8000:1`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| AmtError::InvalidSourceGroup { input: s.to_string(), reason };
        let (src, grp) = s.split_once('@').ok_or_else(|| bad("expected SOURCE@GROUP"))?;
        let source: IpAddr = src.trim().parse().map_err(|_| bad("source is not an IP address"))?;
        let group: IpAddr = grp.trim().parse().map_err(|_| bad("group is not an IP address"))?;
        SourceGroup::new(source, group)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for SourceGroup {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for SourceGroup {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ipv4_and_ipv6() {
        let sg: SourceGroup = "10.1.2.3@232.1.1.1".parse().unwrap();
        assert_eq!(sg.source, "10.1.2.3".parse::<IpAddr>().unwrap());
        assert_eq!(sg.group, "232.1.1.1".parse::<IpAddr>().unwrap());
        assert_eq!(sg.to_string(), "10.1.2.3@232.1.1.1");
        let sg6: SourceGroup = "2001:db8::1@ff3e::8000:1".parse().unwrap();
        assert!(!sg6.is_ipv4());
        assert_eq!(sg6.to_string(), "2001:db8::1@ff3e::8000:1");
    }

    #[test]
    fn rejects_non_ssm_and_mixed() {
        assert!(matches!("10.1.2.3@239.1.1.1".parse::<SourceGroup>(), Err(AmtError::NotSsm(_))));
        assert!(matches!("2001:db8::1@ff0e::1".parse::<SourceGroup>(), Err(AmtError::NotSsm(_))));
        assert!(matches!("2001:db8::1@ff3e:1::1".parse::<SourceGroup>(), Err(AmtError::NotSsm(_))));
        assert!(matches!("10.1.2.3@ff3e::1".parse::<SourceGroup>(), Err(AmtError::FamilyMismatch)));
        assert!(matches!("232.1.1.1@232.1.1.2".parse::<SourceGroup>(), Err(AmtError::BadSource(_))));
        assert!(matches!("0.0.0.0@232.1.1.2".parse::<SourceGroup>(), Err(AmtError::BadSource(_))));
        assert!(matches!("10.1.2.3".parse::<SourceGroup>(), Err(AmtError::InvalidSourceGroup { .. })));
        assert!(matches!("x@232.1.1.1".parse::<SourceGroup>(), Err(AmtError::InvalidSourceGroup { .. })));
    }
}
