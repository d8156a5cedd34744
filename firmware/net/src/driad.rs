//! DRIAD (RFC 8777): finding the AMT relay of a multicast source through DNS.
//!
//! The source S publishes AMTRELAY records (type 260) at its reverse name (`d.c.b.a.in-addr.arpa`
//! or the `ip6.arpa` nibbles); each names a relay by IPv4 address, IPv6 address or domain name,
//! with a precedence (lower is preferred; equal ones are picked among at random). The sans-IO
//! parts are here: [`reverse_name`], the RDATA parser [`parse_amtrelay`] (never panics; fuzzed
//! by fuzz/fuzz_targets/net_amtrelay.rs) and the ordering [`ordered`]. [`discover`] does the
//! lookups with hickory-resolver (the AMTRELAY type is read as an unknown type and its RDATA
//! parsed here; relay names are resolved to A/AAAA).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;

use crate::error::{NetError, Result};

/// The AMTRELAY resource record type.
pub const AMTRELAY: u16 = 260;

/// The relay an AMTRELAY record names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relay {
    /// Type 0: the source has no relay (the record only says so).
    None,
    /// Type 1.
    V4(Ipv4Addr),
    /// Type 2.
    V6(Ipv6Addr),
    /// Type 3: a domain name, dotted, without the final dot.
    Name(String),
}

/// One AMTRELAY record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmtRelay {
    /// Lower is preferred.
    pub precedence: u8,
    /// D bit: the relay may be used without Relay Discovery (send the Request to it directly).
    pub discovery_optional: bool,
    /// The relay.
    pub relay: Relay,
}

impl AmtRelay {
    /// The record's RDATA (RFC 8777 section 4.2), as [`parse_amtrelay`] reads it.
    pub fn encode(&self) -> Vec<u8> {
        let d = if self.discovery_optional { 0x80 } else { 0 };
        let mut out = vec![self.precedence];
        match &self.relay {
            Relay::None => out.push(d),
            Relay::V4(a) => {
                out.push(d | 1);
                out.extend_from_slice(&a.octets());
            }
            Relay::V6(a) => {
                out.push(d | 2);
                out.extend_from_slice(&a.octets());
            }
            Relay::Name(n) => {
                out.push(d | 3);
                for label in n.split('.') {
                    out.push(label.len() as u8);
                    out.extend_from_slice(label.as_bytes());
                }
                out.push(0);
            }
        }
        out
    }
}

/// The reverse DNS name of `source` (fully qualified, with the final dot).
pub fn reverse_name(source: IpAddr) -> String {
    match source.to_canonical() {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(73);
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0x0f, b >> 4));
            }
            s.push_str("ip6.arpa.");
            s
        }
    }
}

/// Parses the RDATA of an AMTRELAY record (RFC 8777 section 4.2).
pub fn parse_amtrelay(rdata: &[u8]) -> Result<AmtRelay> {
    let (&precedence, rest) = rdata.split_first().ok_or(NetError::AmtRelayRecord("empty"))?;
    let (&flags, relay) = rest.split_first().ok_or(NetError::AmtRelayRecord("no relay type"))?;
    let relay = match flags & 0x7f {
        0 if relay.is_empty() => Relay::None,
        0 => return Err(NetError::AmtRelayRecord("type 0 with a relay field")),
        1 => Relay::V4(
            <[u8; 4]>::try_from(relay).map_err(|_| NetError::AmtRelayRecord("IPv4 relay not 4 bytes"))?.into(),
        ),
        2 => Relay::V6(
            <[u8; 16]>::try_from(relay).map_err(|_| NetError::AmtRelayRecord("IPv6 relay not 16 bytes"))?.into(),
        ),
        3 => Relay::Name(parse_name(relay)?),
        _ => return Err(NetError::AmtRelayRecord("unknown relay type")),
    };
    Ok(AmtRelay { precedence, discovery_optional: flags & 0x80 != 0, relay })
}

/// An uncompressed wire-format domain name that fills `wire` exactly.
fn parse_name(wire: &[u8]) -> Result<String> {
    if wire.len() > 255 {
        return Err(NetError::AmtRelayRecord("relay name longer than 255 bytes"));
    }
    let mut labels = Vec::new();
    let mut rest = wire;
    loop {
        let (&len, tail) = rest.split_first().ok_or(NetError::AmtRelayRecord("relay name not terminated"))?;
        if len == 0 {
            if !tail.is_empty() {
                return Err(NetError::AmtRelayRecord("bytes after the relay name"));
            }
            break;
        }
        if len > 63 {
            return Err(NetError::AmtRelayRecord("relay name label longer than 63 bytes (or compressed)"));
        }
        let label = tail.get(..usize::from(len)).ok_or(NetError::AmtRelayRecord("relay name label cut short"))?;
        if !label.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_') {
            return Err(NetError::AmtRelayRecord("relay name label with characters outside LDH"));
        }
        labels.push(String::from_utf8_lossy(label).into_owned());
        rest = &tail[usize::from(len)..];
    }
    if labels.is_empty() {
        return Err(NetError::AmtRelayRecord("relay name is the root"));
    }
    Ok(labels.join("."))
}

/// The records that name a relay, most preferred first: by precedence, and in an order taken
/// from `random` among equal precedences (RFC 8777 section 4.2.1).
pub fn ordered(mut records: Vec<AmtRelay>, mut random: impl FnMut() -> u64) -> Vec<AmtRelay> {
    records.retain(|r| r.relay != Relay::None);
    let mut keyed: Vec<(u8, u64, AmtRelay)> = records.into_iter().map(|r| (r.precedence, random(), r)).collect();
    keyed.sort_by_key(|(p, k, _)| (*p, *k));
    keyed.into_iter().map(|(_, _, r)| r).collect()
}

/// A resolver: the system's (`/etc/resolv.conf`) or one DNS server (`server`, e.g. for tests or
/// a site's own DNS).
pub fn resolver(server: Option<SocketAddr>) -> Result<TokioResolver> {
    let builder = match server {
        Some(s) => {
            let group = NameServerConfigGroup::from_ips_clear(&[s.ip()], s.port(), true);
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], group),
                TokioConnectionProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio()
            .map_err(|e| NetError::Dns { name: "/etc/resolv.conf".into(), reason: e.to_string() })?,
    };
    Ok(builder.build())
}

/// The relays DRIAD names for `source`, most preferred first, as AMT addresses (`port`). Relay
/// names are resolved (A and AAAA). An empty list: no usable AMTRELAY record.
pub async fn discover(
    resolver: &TokioResolver,
    source: IpAddr,
    port: u16,
    random: impl FnMut() -> u64,
) -> Result<Vec<SocketAddr>> {
    let name = reverse_name(source);
    let lookup = match resolver.lookup(name.as_str(), RecordType::Unknown(AMTRELAY)).await {
        Ok(l) => l,
        Err(e) if e.is_no_records_found() => return Ok(Vec::new()),
        Err(e) => return Err(NetError::Dns { name, reason: e.to_string() }),
    };
    let mut records = Vec::new();
    for r in lookup.record_iter() {
        let RData::Unknown { code, rdata } = r.data() else { continue };
        if u16::from(*code) != AMTRELAY {
            continue;
        }
        match parse_amtrelay(rdata.anything()) {
            Ok(rec) => records.push(rec),
            Err(e) => tracing::warn!(%name, "ignoring an AMTRELAY record: {e}"),
        }
    }
    let mut out = Vec::new();
    for rec in ordered(records, random) {
        match rec.relay {
            Relay::V4(a) => out.push(SocketAddr::new(a.into(), port)),
            Relay::V6(a) => out.push(SocketAddr::new(a.into(), port)),
            Relay::Name(n) => match resolver.lookup_ip(format!("{n}.")).await {
                Ok(ips) => out.extend(ips.iter().map(|ip| SocketAddr::new(ip, port))),
                Err(e) => tracing::warn!(relay = %n, "AMTRELAY names a relay that does not resolve: {e}"),
            },
            Relay::None => {}
        }
    }
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(reverse_name("192.0.2.10".parse().unwrap()), "10.2.0.192.in-addr.arpa.");
        assert_eq!(
            reverse_name("2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        );
        assert_eq!(reverse_name("::ffff:192.0.2.1".parse().unwrap()), "1.2.0.192.in-addr.arpa.");
    }

    #[test]
    fn parses_the_four_relay_types() {
        assert_eq!(
            parse_amtrelay(&[10, 0x81, 192, 0, 2, 7]).unwrap(),
            AmtRelay { precedence: 10, discovery_optional: true, relay: Relay::V4(Ipv4Addr::new(192, 0, 2, 7)) }
        );
        let mut v6 = vec![0, 2];
        v6.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(parse_amtrelay(&v6).unwrap().relay, Relay::V6("2001:db8::7".parse().unwrap()));
        let name = [&[1, 3][..], b"\x05relay\x07example\x03net\x00"].concat();
        let r = parse_amtrelay(&name).unwrap();
        assert_eq!((r.precedence, r.discovery_optional, r.relay), (1, false, Relay::Name("relay.example.net".into())));
        assert_eq!(parse_amtrelay(&[0, 0]).unwrap().relay, Relay::None);
        for wire in [&[10, 0x81, 192, 0, 2, 7][..], &v6, &name, &[0, 0x80]] {
            assert_eq!(parse_amtrelay(wire).unwrap().encode(), wire, "round trip");
        }
    }

    #[test]
    fn rejects_malformed_records() {
        for bad in [
            &[][..],
            &[0],
            &[0, 0, 1],
            &[0, 1, 192, 0, 2],
            &[0, 1, 192, 0, 2, 7, 8],
            &[0, 2, 1, 2, 3],
            &[0, 3],
            &[0, 3, 0],
            &[0, 3, 3, b'a', b'b'],
            &[0, 3, 1, b'a', 0, 9],
            &[0, 3, 0xc0, 0x0c],
            &[0, 3, 1, b'.', 0],
            &[0, 4, 1, 2, 3, 4],
        ] {
            assert!(parse_amtrelay(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn orders_by_precedence_and_at_random_among_equals() {
        let r = |p, last| AmtRelay {
            precedence: p,
            discovery_optional: false,
            relay: Relay::V4(Ipv4Addr::new(192, 0, 2, last)),
        };
        let recs = vec![
            r(20, 1),
            r(10, 2),
            r(10, 3),
            AmtRelay { precedence: 0, discovery_optional: false, relay: Relay::None },
        ];
        let mut keys = [5u64, 1, 9, 0].into_iter();
        let got = ordered(recs.clone(), || keys.next().unwrap());
        assert_eq!(got, vec![r(10, 2), r(10, 3), r(20, 1)], "type 0 dropped, precedence first");
        let mut keys = [5u64, 9, 1, 0].into_iter();
        assert_eq!(ordered(recs, || keys.next().unwrap())[..2], [r(10, 3), r(10, 2)], "equals follow the randomness");
    }
}
