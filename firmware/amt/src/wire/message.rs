//! The seven AMT messages of RFC 7450 section 5.1 — Relay Discovery, Relay Advertisement,
//! Request, Membership Query, Membership Update, Multicast Data, Teardown — as one
//! [`Message`] enum with exact encode/decode (version 0, reserved bits written as zero and
//! ignored on receipt, P/L/G flags, 32-bit nonces, 48-bit response MAC, 16-byte gateway
//! addresses with IPv4 carried as IPv4-compatible IPv6 addresses).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::wire::data::{parse_ip_udp, write_ip_udp};
use crate::wire::membership::{EncapsulatedQuery, EncapsulatedReport};
use crate::wire::reader::Reader;
use crate::{AmtError, MulticastData};

/// The 48-bit Response MAC a relay puts in a Membership Query and a gateway echoes in its
/// Membership Updates and Teardown.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ResponseMac(pub [u8; 6]);

impl fmt::Debug for ResponseMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResponseMac(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// AMT message type numbers (RFC 7450 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// 1
    RelayDiscovery = 1,
    /// 2
    RelayAdvertisement = 2,
    /// 3
    Request = 3,
    /// 4
    MembershipQuery = 4,
    /// 5
    MembershipUpdate = 5,
    /// 6
    MulticastData = 6,
    /// 7
    Teardown = 7,
}

impl MessageType {
    /// Reads the version and type of an AMT datagram without decoding the rest.
    pub fn of(datagram: &[u8]) -> Result<Self, AmtError> {
        let first = *datagram.first().ok_or(AmtError::Truncated { what: "AMT message", needed: 1, got: 0 })?;
        if first >> 4 != 0 {
            return Err(AmtError::BadVersion(first >> 4));
        }
        Ok(match first & 0x0f {
            1 => MessageType::RelayDiscovery,
            2 => MessageType::RelayAdvertisement,
            3 => MessageType::Request,
            4 => MessageType::MembershipQuery,
            5 => MessageType::MembershipUpdate,
            6 => MessageType::MulticastData,
            7 => MessageType::Teardown,
            t => return Err(AmtError::UnknownType(t)),
        })
    }

    /// Human-readable name.
    pub fn name(self) -> &'static str {
        match self {
            MessageType::RelayDiscovery => "Relay Discovery",
            MessageType::RelayAdvertisement => "Relay Advertisement",
            MessageType::Request => "Request",
            MessageType::MembershipQuery => "Membership Query",
            MessageType::MembershipUpdate => "Membership Update",
            MessageType::MulticastData => "Multicast Data",
            MessageType::Teardown => "Teardown",
        }
    }
}

/// Membership Query (type 4): the relay's answer to a Request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MembershipQuery {
    /// L flag: the relay accepts no Updates with new nonces (it is at its tunnel limit).
    pub limit: bool,
    /// Response MAC for (gateway address, port, nonce).
    pub mac: ResponseMac,
    /// The Request's nonce, echoed.
    pub nonce: u32,
    /// The encapsulated IGMPv3 or MLDv2 general query.
    pub query: EncapsulatedQuery,
    /// G flag fields: the gateway address and port the relay saw the Request from.
    pub gateway: Option<SocketAddr>,
}

/// Membership Update (type 5): a gateway's IGMPv3/MLDv2 report, authenticated by MAC+nonce.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MembershipUpdate {
    /// Response MAC from the Membership Query.
    pub mac: ResponseMac,
    /// Request nonce.
    pub nonce: u32,
    /// The encapsulated report.
    pub report: EncapsulatedReport,
}

/// Teardown (type 7): a gateway closing its tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Teardown {
    /// Response MAC from the Membership Query.
    pub mac: ResponseMac,
    /// Request nonce of the tunnel.
    pub nonce: u32,
    /// Gateway address and port from the Membership Query's G fields.
    pub gateway: SocketAddr,
}

/// Any AMT message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// Relay Discovery (type 1).
    RelayDiscovery {
        /// Discovery nonce.
        nonce: u32,
    },
    /// Relay Advertisement (type 2).
    RelayAdvertisement {
        /// Discovery nonce, echoed.
        nonce: u32,
        /// The relay's unicast address (IPv4 or IPv6).
        relay: IpAddr,
    },
    /// Request (type 3).
    Request {
        /// Request nonce.
        nonce: u32,
        /// P flag: true asks for an MLDv2 (IPv6) query, false for an IGMPv3 (IPv4) one.
        mld: bool,
    },
    /// Membership Query (type 4).
    MembershipQuery(MembershipQuery),
    /// Membership Update (type 5).
    MembershipUpdate(MembershipUpdate),
    /// Multicast Data (type 6) carrying one IP/UDP datagram.
    MulticastData(MulticastData),
    /// Teardown (type 7).
    Teardown(Teardown),
}

/// Encodes a gateway address as the 16-byte field (IPv4 as an IPv4-compatible IPv6 address;
/// 0.0.0.0 and 0.0.0.1, whose compatible forms would read back as :: and ::1, as IPv4-mapped).
pub(crate) fn gateway_addr_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) if u32::from(v4) <= 1 => v4.to_ipv6_mapped().octets(),
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            b[12..].copy_from_slice(&v4.octets());
            b
        }
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Decodes the 16-byte gateway address field: IPv4-compatible (other than :: and ::1) and
/// IPv4-mapped addresses become IPv4.
pub(crate) fn gateway_addr_from(b: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(b);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let (head, tail) = b.split_at(12);
    if head.iter().all(|&x| x == 0) && !v6.is_unspecified() && !v6.is_loopback() {
        return IpAddr::V4(Ipv4Addr::new(tail[0], tail[1], tail[2], tail[3]));
    }
    IpAddr::V6(v6)
}

impl Message {
    /// The message type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::RelayDiscovery { .. } => MessageType::RelayDiscovery,
            Message::RelayAdvertisement { .. } => MessageType::RelayAdvertisement,
            Message::Request { .. } => MessageType::Request,
            Message::MembershipQuery(_) => MessageType::MembershipQuery,
            Message::MembershipUpdate(_) => MessageType::MembershipUpdate,
            Message::MulticastData(_) => MessageType::MulticastData,
            Message::Teardown(_) => MessageType::Teardown,
        }
    }

    /// Encodes into a new vector.
    pub fn to_bytes(&self) -> Result<Vec<u8>, AmtError> {
        let mut out = Vec::with_capacity(64);
        self.encode(&mut out)?;
        Ok(out)
    }

    /// Appends the encoded message to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), AmtError> {
        let ty = self.message_type() as u8;
        match self {
            Message::RelayDiscovery { nonce } => {
                out.extend_from_slice(&[ty, 0, 0, 0]);
                out.extend_from_slice(&nonce.to_be_bytes());
            }
            Message::RelayAdvertisement { nonce, relay } => {
                out.extend_from_slice(&[ty, 0, 0, 0]);
                out.extend_from_slice(&nonce.to_be_bytes());
                match relay {
                    IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                    IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
                }
            }
            Message::Request { nonce, mld } => {
                out.extend_from_slice(&[ty, u8::from(*mld), 0, 0]);
                out.extend_from_slice(&nonce.to_be_bytes());
            }
            Message::MembershipQuery(q) => {
                let flags = (u8::from(q.limit) << 1) | u8::from(q.gateway.is_some());
                out.extend_from_slice(&[ty, flags]);
                out.extend_from_slice(&q.mac.0);
                out.extend_from_slice(&q.nonce.to_be_bytes());
                q.query.encode(out)?;
                if let Some(gw) = q.gateway {
                    out.extend_from_slice(&gw.port().to_be_bytes());
                    out.extend_from_slice(&gateway_addr_bytes(gw.ip()));
                }
            }
            Message::MembershipUpdate(u) => {
                out.extend_from_slice(&[ty, 0]);
                out.extend_from_slice(&u.mac.0);
                out.extend_from_slice(&u.nonce.to_be_bytes());
                u.report.encode(out)?;
            }
            Message::MulticastData(d) => {
                out.extend_from_slice(&[ty, 0]);
                write_ip_udp(d.source.ip(), d.group.ip(), d.source.port(), d.group.port(), &d.payload, out)?;
            }
            Message::Teardown(t) => {
                out.extend_from_slice(&[ty, 0]);
                out.extend_from_slice(&t.mac.0);
                out.extend_from_slice(&t.nonce.to_be_bytes());
                out.extend_from_slice(&t.gateway.port().to_be_bytes());
                out.extend_from_slice(&gateway_addr_bytes(t.gateway.ip()));
            }
        }
        Ok(())
    }

    /// Decodes one AMT datagram, including the encapsulated IGMP/MLD/IP/UDP packets and
    /// their checksums. Never panics; rejects trailing garbage where the format has no room for it.
    pub fn decode(datagram: &[u8]) -> Result<Message, AmtError> {
        let ty = MessageType::of(datagram)?;
        let mut r = Reader::new(datagram, ty.name());
        let _first = r.u8()?;
        match ty {
            MessageType::RelayDiscovery => {
                r.take(3)?;
                let nonce = r.u32()?;
                expect_end(&r, ty)?;
                Ok(Message::RelayDiscovery { nonce })
            }
            MessageType::RelayAdvertisement => {
                r.take(3)?;
                let nonce = r.u32()?;
                let relay = match r.remaining() {
                    4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>()?)),
                    16 => IpAddr::V6(Ipv6Addr::from(r.array::<16>()?)),
                    n => return Err(AmtError::BadLength { what: "Relay Advertisement relay address", len: n }),
                };
                Ok(Message::RelayAdvertisement { nonce, relay })
            }
            MessageType::Request => {
                let flags = r.u8()?;
                r.take(2)?;
                let nonce = r.u32()?;
                expect_end(&r, ty)?;
                // P is the low bit of the second octet (RFC 7450 5.1.3); the Linux kernel's gateway sets
                // the high bit instead (a reserved bit, zero from RFC gateways): read either as P.
                Ok(Message::Request { nonce, mld: flags & 0x81 != 0 })
            }
            MessageType::MembershipQuery => {
                let flags = r.u8()?;
                let mac = ResponseMac(r.array()?);
                let nonce = r.u32()?;
                let (query, rest) = EncapsulatedQuery::decode(r.rest())?;
                let gateway = if flags & 0x01 != 0 {
                    let mut g = Reader::new(rest, "Membership Query gateway fields");
                    let port = g.u16()?;
                    let addr = gateway_addr_from(g.array()?);
                    if g.remaining() != 0 {
                        return Err(AmtError::BadLength { what: "Membership Query gateway fields", len: rest.len() });
                    }
                    Some(SocketAddr::new(addr, port))
                } else {
                    if !rest.is_empty() {
                        return Err(AmtError::BadLength { what: "Membership Query trailer", len: rest.len() });
                    }
                    None
                };
                Ok(Message::MembershipQuery(MembershipQuery { limit: flags & 0x02 != 0, mac, nonce, query, gateway }))
            }
            MessageType::MembershipUpdate => {
                r.u8()?;
                let mac = ResponseMac(r.array()?);
                let nonce = r.u32()?;
                let (report, rest) = EncapsulatedReport::decode(r.rest())?;
                if !rest.is_empty() {
                    return Err(AmtError::BadLength { what: "Membership Update trailer", len: rest.len() });
                }
                Ok(Message::MembershipUpdate(MembershipUpdate { mac, nonce, report }))
            }
            MessageType::MulticastData => {
                r.u8()?;
                Ok(Message::MulticastData(parse_ip_udp(r.rest())?.to_owned()))
            }
            MessageType::Teardown => {
                r.u8()?;
                let mac = ResponseMac(r.array()?);
                let nonce = r.u32()?;
                let port = r.u16()?;
                let addr = gateway_addr_from(r.array()?);
                expect_end(&r, ty)?;
                Ok(Message::Teardown(Teardown { mac, nonce, gateway: SocketAddr::new(addr, port) }))
            }
        }
    }
}

fn expect_end(r: &Reader<'_>, ty: MessageType) -> Result<(), AmtError> {
    if r.remaining() != 0 {
        return Err(AmtError::BadLength { what: ty.name(), len: r.remaining() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::group_record::{GroupRecord, RecordType};
    use crate::wire::igmp::{IgmpV3Query, IgmpV3Report};
    use crate::wire::mld::{MldV2Query, MldV2Report};
    use std::time::Duration;

    fn roundtrip(m: &Message) -> Vec<u8> {
        let bytes = m.to_bytes().unwrap();
        assert_eq!(&Message::decode(&bytes).unwrap(), m);
        bytes
    }

    #[test]
    fn discovery_known_bytes() {
        let b = roundtrip(&Message::RelayDiscovery { nonce: 0x1234_5678 });
        assert_eq!(b, [0x01, 0, 0, 0, 0x12, 0x34, 0x56, 0x78]);
        // Reserved bits are ignored on receipt.
        assert_eq!(Message::decode(&[0x01, 0xff, 0xff, 0xff, 0, 0, 0, 1]), Ok(Message::RelayDiscovery { nonce: 1 }));
        assert_eq!(Message::decode(&[0x11, 0, 0, 0, 0, 0, 0, 1]), Err(AmtError::BadVersion(1)));
        assert_eq!(Message::decode(&[0x08, 0, 0, 0, 0, 0, 0, 1]), Err(AmtError::UnknownType(8)));
        assert_eq!(Message::decode(&[0x00]), Err(AmtError::UnknownType(0)));
        assert!(matches!(Message::decode(&[0x01, 0, 0, 0, 0]), Err(AmtError::Truncated { .. })));
        assert!(matches!(Message::decode(&[0x01, 0, 0, 0, 0, 0, 0, 0, 0]), Err(AmtError::BadLength { .. })));
    }

    #[test]
    fn advertisement_v4_and_v6_known_bytes() {
        let b = roundtrip(&Message::RelayAdvertisement { nonce: 7, relay: "192.0.2.1".parse().unwrap() });
        assert_eq!(b, [0x02, 0, 0, 0, 0, 0, 0, 7, 192, 0, 2, 1]);
        let b6 = roundtrip(&Message::RelayAdvertisement { nonce: 7, relay: "2001:db8::2".parse().unwrap() });
        assert_eq!(b6.len(), 24);
        assert!(matches!(Message::decode(&b[..10]), Err(AmtError::BadLength { .. })));
    }

    #[test]
    fn request_p_flag_known_bytes() {
        assert_eq!(
            roundtrip(&Message::Request { nonce: 0xdeadbeef, mld: false }),
            [0x03, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef]
        );
        assert_eq!(roundtrip(&Message::Request { nonce: 1, mld: true }), [0x03, 0x01, 0, 0, 0, 0, 0, 1]);
        // Reserved bits around P are ignored.
        assert_eq!(
            Message::decode(&[0x03, 0x7e, 0xff, 0xff, 0, 0, 0, 1]),
            Ok(Message::Request { nonce: 1, mld: false })
        );
        // The Linux kernel's gateway (drivers/net/amt.c) puts P in the high bit of the octet.
        assert_eq!(Message::decode(&[0x03, 0x80, 0, 0, 0, 0, 0, 1]), Ok(Message::Request { nonce: 1, mld: true }));
    }

    #[test]
    fn query_with_igmp_and_gateway_fields() {
        let q = Message::MembershipQuery(MembershipQuery {
            limit: false,
            mac: ResponseMac([1, 2, 3, 4, 5, 6]),
            nonce: 0x0a0b0c0d,
            query: EncapsulatedQuery::Igmp {
                source: Ipv4Addr::new(192, 0, 2, 1),
                query: IgmpV3Query::general(Duration::from_secs(125), Duration::from_secs(10), 2),
            },
            gateway: Some("198.51.100.7:40000".parse().unwrap()),
        });
        let b = roundtrip(&q);
        assert_eq!(&b[..12], &[0x04, 0x01, 1, 2, 3, 4, 5, 6, 0x0a, 0x0b, 0x0c, 0x0d]);
        // 24-byte IPv4 header with Router Alert + 12-byte IGMPv3 query, then port and address.
        assert_eq!(b.len(), 12 + 24 + 12 + 2 + 16);
        let tail = &b[b.len() - 18..];
        assert_eq!(&tail[..2], &40000u16.to_be_bytes());
        assert_eq!(&tail[2..], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 198, 51, 100, 7]);
        // A truncated gateway trailer is rejected.
        assert!(Message::decode(&b[..b.len() - 1]).is_err());
    }

    #[test]
    fn query_with_mld_and_limit() {
        let q = Message::MembershipQuery(MembershipQuery {
            limit: true,
            mac: ResponseMac([9; 6]),
            nonce: 5,
            query: EncapsulatedQuery::Mld {
                source: "fe80::1".parse().unwrap(),
                query: MldV2Query::general(Duration::from_secs(60), Duration::from_secs(10), 2),
            },
            gateway: None,
        });
        let b = roundtrip(&q);
        assert_eq!(b[1], 0x02);
        assert_eq!(b.len(), 12 + 40 + 8 + 28);
    }

    #[test]
    fn updates_with_igmp_and_mld() {
        let u4 = Message::MembershipUpdate(MembershipUpdate {
            mac: ResponseMac([0xaa; 6]),
            nonce: 77,
            report: EncapsulatedReport::Igmp {
                source: Ipv4Addr::UNSPECIFIED,
                report: IgmpV3Report {
                    records: vec![GroupRecord {
                        record_type: RecordType::ModeIsInclude,
                        group: Ipv4Addr::new(232, 1, 1, 1),
                        sources: vec![Ipv4Addr::new(10, 0, 0, 1)],
                    }],
                },
            },
        });
        let b = roundtrip(&u4);
        assert_eq!(&b[..12], &[0x05, 0, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0, 0, 0, 77]);
        let u6 = Message::MembershipUpdate(MembershipUpdate {
            mac: ResponseMac([0xbb; 6]),
            nonce: 78,
            report: EncapsulatedReport::Mld {
                source: "fe80::2".parse().unwrap(),
                report: MldV2Report {
                    records: vec![GroupRecord {
                        record_type: RecordType::BlockOldSources,
                        group: "ff3e::8000:1".parse().unwrap(),
                        sources: vec!["2001:db8::1".parse().unwrap()],
                    }],
                },
            },
        });
        roundtrip(&u6);
        let mut bad = b.clone();
        bad.push(0);
        assert!(matches!(Message::decode(&bad), Err(AmtError::BadLength { .. })));
    }

    #[test]
    fn data_v4_and_v6() {
        roundtrip(&Message::MulticastData(MulticastData {
            source: "10.0.0.1:1234".parse().unwrap(),
            group: "232.1.1.1:5004".parse().unwrap(),
            payload: b"payload".to_vec(),
        }));
        roundtrip(&Message::MulticastData(MulticastData {
            source: "[2001:db8::1]:1234".parse().unwrap(),
            group: "[ff3e::8000:1]:5004".parse().unwrap(),
            payload: vec![],
        }));
    }

    #[test]
    fn teardown_known_bytes() {
        let t = Message::Teardown(Teardown {
            mac: ResponseMac([1, 2, 3, 4, 5, 6]),
            nonce: 0x01020304,
            gateway: "127.0.0.1:2268".parse().unwrap(),
        });
        let b = roundtrip(&t);
        let mut expected = vec![0x07, 0, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 0x08, 0xdc];
        expected.extend_from_slice(&[0; 12]);
        expected.extend_from_slice(&[127, 0, 0, 1]);
        assert_eq!(b, expected);
        roundtrip(&Message::Teardown(Teardown {
            mac: ResponseMac([0; 6]),
            nonce: 1,
            gateway: "[::1]:9".parse().unwrap(),
        }));
        roundtrip(&Message::Teardown(Teardown {
            mac: ResponseMac([0; 6]),
            nonce: 1,
            gateway: "[::]:9".parse().unwrap(),
        }));
        roundtrip(&Message::Teardown(Teardown {
            mac: ResponseMac([0; 6]),
            nonce: 1,
            gateway: "0.0.0.0:9".parse().unwrap(),
        }));
        roundtrip(&Message::Teardown(Teardown {
            mac: ResponseMac([0; 6]),
            nonce: 1,
            gateway: "0.0.0.1:9".parse().unwrap(),
        }));
        roundtrip(&Message::Teardown(Teardown {
            mac: ResponseMac([0; 6]),
            nonce: 1,
            gateway: "[2001:db8::5]:9".parse().unwrap(),
        }));
        // IPv4-mapped is accepted as IPv4 as well.
        let mut mapped = expected.clone();
        mapped[24] = 0xff;
        mapped[25] = 0xff;
        assert!(
            matches!(Message::decode(&mapped), Ok(Message::Teardown(Teardown { gateway, .. })) if gateway == "127.0.0.1:2268".parse().unwrap())
        );
    }
}
