//! The IP packets carried inside AMT Membership Query and Membership Update messages:
//! an IGMPv3 query/report in IPv4 (Router Alert option, TTL 1, to 224.0.0.1 / 224.0.0.22) or
//! an MLDv2 query/report in IPv6 (hop-by-hop Router Alert, hop limit 1, to ff02::1 / ff02::16),
//! exactly as a host or router stack sends them.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::wire::igmp::{IgmpMessage, IgmpV3Query, IgmpV3Report};
use crate::wire::ip::{self, Ipv4Info, Ipv6Info, PROTO_ICMPV6, PROTO_IGMP};
use crate::wire::mld::{MldMessage, MldV2Query, MldV2Report};
use crate::AmtError;

/// 224.0.0.1, all systems: destination of IGMP general queries.
pub const ALL_SYSTEMS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);
/// 224.0.0.22, all IGMPv3-capable routers: destination of IGMPv3 reports.
pub const IGMPV3_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 22);
/// ff02::1, all nodes: destination of MLD general queries.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// ff02::16, all MLDv2-capable routers: destination of MLDv2 reports.
pub const MLDV2_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);

/// The general query inside a Membership Query, with the source address of its IP packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EncapsulatedQuery {
    /// IPv4 packet carrying an IGMPv3 query (answer to a Request with P = 0).
    Igmp {
        /// IPv4 source address (the querier).
        source: Ipv4Addr,
        /// The query.
        query: IgmpV3Query,
    },
    /// IPv6 packet carrying an MLDv2 query (answer to a Request with P = 1).
    Mld {
        /// IPv6 link-local source address (the querier).
        source: Ipv6Addr,
        /// The query.
        query: MldV2Query,
    },
}

/// The report inside a Membership Update, with the source address of its IP packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EncapsulatedReport {
    /// IPv4 packet carrying an IGMPv3 report (IPv4 groups).
    Igmp {
        /// IPv4 source address of the gateway's pseudo-interface.
        source: Ipv4Addr,
        /// The report.
        report: IgmpV3Report,
    },
    /// IPv6 packet carrying an MLDv2 report (IPv6 groups).
    Mld {
        /// IPv6 link-local source address of the gateway's pseudo-interface.
        source: Ipv6Addr,
        /// The report.
        report: MldV2Report,
    },
}

impl EncapsulatedQuery {
    /// Querier's Query Interval and Robustness Variable.
    pub fn interval_and_robustness(&self) -> (std::time::Duration, u8) {
        match self {
            EncapsulatedQuery::Igmp { query, .. } => (query.query_interval(), query.qrv),
            EncapsulatedQuery::Mld { query, .. } => (query.query_interval(), query.qrv),
        }
    }

    /// Maximum response time of the query.
    pub fn max_response_time(&self) -> std::time::Duration {
        match self {
            EncapsulatedQuery::Igmp { query, .. } => query.max_response_time(),
            EncapsulatedQuery::Mld { query, .. } => query.max_response_time(),
        }
    }

    /// Appends the IP packet to `out`. Destination: all-systems / all-nodes for a general
    /// query, the group for a group-specific one.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), AmtError> {
        match self {
            EncapsulatedQuery::Igmp { source, query } => {
                let dst = if query.group.is_unspecified() { ALL_SYSTEMS } else { query.group };
                let mut body = Vec::with_capacity(12 + 4 * query.sources.len());
                query.encode(&mut body)?;
                encode_igmp_packet(*source, dst, &body, out)
            }
            EncapsulatedQuery::Mld { source, query } => {
                let dst = if query.group.is_unspecified() { ALL_NODES } else { query.group };
                let mut body = Vec::with_capacity(28 + 16 * query.sources.len());
                MldMessage::Query(query.clone()).encode(*source, dst, &mut body)?;
                encode_mld_packet(*source, dst, &body, out)
            }
        }
    }

    /// Decodes the IP packet at the start of `buf`; returns it and the bytes after it.
    pub fn decode(buf: &[u8]) -> Result<(Self, &[u8]), AmtError> {
        match decode_packet(buf)? {
            (Inner::Igmp(source, IgmpMessage::Query(query)), rest) => {
                Ok((EncapsulatedQuery::Igmp { source, query }, rest))
            }
            (Inner::Mld(source, MldMessage::Query(query)), rest) => {
                Ok((EncapsulatedQuery::Mld { source, query }, rest))
            }
            _ => Err(AmtError::Unexpected { what: "encapsulated message (expected a query)", value: 0 }),
        }
    }
}

impl EncapsulatedReport {
    /// Appends the IP packet to `out` (destination 224.0.0.22 / ff02::16).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), AmtError> {
        match self {
            EncapsulatedReport::Igmp { source, report } => {
                let mut body = Vec::new();
                report.encode(&mut body)?;
                encode_igmp_packet(*source, IGMPV3_ROUTERS, &body, out)
            }
            EncapsulatedReport::Mld { source, report } => {
                let mut body = Vec::new();
                MldMessage::Report(report.clone()).encode(*source, MLDV2_ROUTERS, &mut body)?;
                encode_mld_packet(*source, MLDV2_ROUTERS, &body, out)
            }
        }
    }

    /// Decodes the IP packet at the start of `buf`; returns it and the bytes after it.
    pub fn decode(buf: &[u8]) -> Result<(Self, &[u8]), AmtError> {
        match decode_packet(buf)? {
            (Inner::Igmp(source, IgmpMessage::Report(report)), rest) => {
                Ok((EncapsulatedReport::Igmp { source, report }, rest))
            }
            (Inner::Mld(source, MldMessage::Report(report)), rest) => {
                Ok((EncapsulatedReport::Mld { source, report }, rest))
            }
            _ => Err(AmtError::Unexpected { what: "encapsulated message (expected a report)", value: 0 }),
        }
    }
}

fn encode_igmp_packet(src: Ipv4Addr, dst: Ipv4Addr, body: &[u8], out: &mut Vec<u8>) -> Result<(), AmtError> {
    let info = Ipv4Info { src, dst, proto: PROTO_IGMP, ttl: 1, router_alert: true };
    ip::write_ipv4(out, &info, body.len())?;
    out.extend_from_slice(body);
    Ok(())
}

fn encode_mld_packet(src: Ipv6Addr, dst: Ipv6Addr, body: &[u8], out: &mut Vec<u8>) -> Result<(), AmtError> {
    let info = Ipv6Info { src, dst, proto: PROTO_ICMPV6, hop_limit: 1, router_alert: true };
    ip::write_ipv6(out, &info, body.len())?;
    out.extend_from_slice(body);
    Ok(())
}

enum Inner {
    Igmp(Ipv4Addr, IgmpMessage),
    Mld(Ipv6Addr, MldMessage),
}

fn decode_packet(buf: &[u8]) -> Result<(Inner, &[u8]), AmtError> {
    match ip::ip_version(buf)? {
        4 => {
            let (info, body, rest) = ip::parse_ipv4(buf)?;
            if info.proto != PROTO_IGMP {
                return Err(AmtError::Unexpected {
                    what: "IPv4 protocol (expected IGMP)",
                    value: u32::from(info.proto),
                });
            }
            Ok((Inner::Igmp(info.src, IgmpMessage::decode(body)?), rest))
        }
        6 => {
            let (info, body, rest) = ip::parse_ipv6(buf)?;
            if info.proto != PROTO_ICMPV6 {
                return Err(AmtError::Unexpected {
                    what: "IPv6 next header (expected ICMPv6)",
                    value: u32::from(info.proto),
                });
            }
            Ok((Inner::Mld(info.src, MldMessage::decode(body, info.src, info.dst)?), rest))
        }
        v => Err(AmtError::Unexpected { what: "IP version", value: u32::from(v) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::group_record::{GroupRecord, RecordType};
    use std::time::Duration;

    #[test]
    fn igmp_report_packet_has_router_alert_ttl1_and_dst() {
        let rep = EncapsulatedReport::Igmp {
            source: Ipv4Addr::new(169, 254, 0, 2),
            report: IgmpV3Report {
                records: vec![GroupRecord {
                    record_type: RecordType::AllowNewSources,
                    group: Ipv4Addr::new(232, 1, 1, 1),
                    sources: vec![Ipv4Addr::new(10, 0, 0, 1)],
                }],
            },
        };
        let mut out = Vec::new();
        rep.encode(&mut out).unwrap();
        assert_eq!(out[0], 0x46, "IHL 6: Router Alert option present");
        assert_eq!(out[8], 1, "TTL 1");
        assert_eq!(out[9], 2, "protocol IGMP");
        assert_eq!(&out[16..20], &[224, 0, 0, 22]);
        assert_eq!(&out[20..24], &[0x94, 0x04, 0, 0]);
        let (back, rest) = EncapsulatedReport::decode(&out).unwrap();
        assert_eq!(back, rep);
        assert!(rest.is_empty());
        assert!(EncapsulatedQuery::decode(&out).is_err());
    }

    #[test]
    fn mld_query_packet_has_hop_by_hop_router_alert() {
        let q = EncapsulatedQuery::Mld {
            source: "fe80::1".parse().unwrap(),
            query: MldV2Query::general(Duration::from_secs(125), Duration::from_secs(10), 2),
        };
        let mut out = Vec::new();
        q.encode(&mut out).unwrap();
        out.extend_from_slice(&[1, 2, 3]);
        assert_eq!(out[6], 0, "next header hop-by-hop");
        assert_eq!(out[7], 1, "hop limit 1");
        assert_eq!(&out[24..40], &ALL_NODES.octets());
        assert_eq!(&out[40..48], &[58, 0, 5, 2, 0, 0, 1, 0]);
        let (back, rest) = EncapsulatedQuery::decode(&out).unwrap();
        assert_eq!(back, q);
        assert_eq!(rest, &[1, 2, 3]);
    }
}
