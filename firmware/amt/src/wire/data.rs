//! The data plane: AMT Multicast Data messages (type 6) carrying an IPv4 or IPv6 UDP datagram.
//! [`encapsulate`] builds one (relay side, same bytes for every subscriber) and [`decapsulate`]
//! checks and borrows one without copying (gateway side).

use std::net::{IpAddr, SocketAddr};

use crate::wire::checksum::Checksum;
use crate::wire::ip::{self, Ipv4Info, Ipv6Info, PROTO_UDP};
use crate::{AmtError, SourceGroup};

/// AMT message type number of Multicast Data.
pub(crate) const TYPE_MULTICAST_DATA: u8 = 6;
/// TTL / hop limit written into encapsulated data packets.
pub const DATA_TTL: u8 = 64;
/// Size of the AMT + IPv4 + UDP headers in front of the payload.
pub const IPV4_DATA_OVERHEAD: usize = 2 + 20 + 8;
/// Size of the AMT + IPv6 + UDP headers in front of the payload.
pub const IPV6_DATA_OVERHEAD: usize = 2 + 40 + 8;

/// One multicast UDP datagram delivered through the tunnel (owned).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MulticastData {
    /// Source address S and the UDP source port.
    pub source: SocketAddr,
    /// Group address G and the UDP destination port.
    pub group: SocketAddr,
    /// UDP payload.
    pub payload: Vec<u8>,
}

/// One multicast UDP datagram borrowed from a received AMT datagram (zero copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MulticastDataRef<'a> {
    /// Source address S and the UDP source port.
    pub source: SocketAddr,
    /// Group address G and the UDP destination port.
    pub group: SocketAddr,
    /// UDP payload.
    pub payload: &'a [u8],
}

impl MulticastDataRef<'_> {
    /// The (S,G) this datagram belongs to (not range-checked: it is what the packet says).
    pub fn source_group(&self) -> SourceGroup {
        SourceGroup { source: self.source.ip(), group: self.group.ip() }
    }

    /// Copies into an owned [`MulticastData`].
    pub fn to_owned(&self) -> MulticastData {
        MulticastData { source: self.source, group: self.group, payload: self.payload.to_vec() }
    }
}

impl MulticastData {
    /// Borrows as a [`MulticastDataRef`].
    pub fn as_ref(&self) -> MulticastDataRef<'_> {
        MulticastDataRef { source: self.source, group: self.group, payload: &self.payload }
    }

    /// The (S,G) this datagram belongs to.
    pub fn source_group(&self) -> SourceGroup {
        self.as_ref().source_group()
    }
}

/// Builds one complete AMT Multicast Data message into `out` (cleared first): AMT header,
/// IPv4 or IPv6 header (TTL/hop limit [`DATA_TTL`], IPv4 header checksum), UDP header with
/// checksum, then `payload`. The same bytes can be sent to every subscribed tunnel.
pub fn encapsulate(
    sg: &SourceGroup,
    source_port: u16,
    dest_port: u16,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), AmtError> {
    encapsulate_header(sg, source_port, dest_port, payload, out)?;
    out.extend_from_slice(payload);
    Ok(())
}

/// Builds the headers of the AMT Multicast Data message [`encapsulate`] makes into `out`
/// (cleared first), without the payload: the message is `out` followed by `payload`, as in a
/// scatter-gather send that does not copy the payload. The UDP checksum covers `payload`.
/// `out` is at most [`IPV6_DATA_OVERHEAD`] bytes.
pub fn encapsulate_header(
    sg: &SourceGroup,
    source_port: u16,
    dest_port: u16,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), AmtError> {
    out.clear();
    out.push(TYPE_MULTICAST_DATA);
    out.push(0);
    write_ip_udp_header(sg.source, sg.group, source_port, dest_port, payload, out)
}

/// Appends an IP+UDP packet (headers with checksums, then `payload`) to `out`.
pub(crate) fn write_ip_udp(
    source: IpAddr,
    group: IpAddr,
    source_port: u16,
    dest_port: u16,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), AmtError> {
    write_ip_udp_header(source, group, source_port, dest_port, payload, out)?;
    out.extend_from_slice(payload);
    Ok(())
}

/// Appends the IP and UDP headers (with checksums; the UDP one over `payload`) of an IP+UDP
/// packet carrying `payload` to `out`.
fn write_ip_udp_header(
    source: IpAddr,
    group: IpAddr,
    source_port: u16,
    dest_port: u16,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), AmtError> {
    let udp_len = payload.len() + 8;
    let udp_len16 = u16::try_from(udp_len).map_err(|_| AmtError::PayloadTooLarge(payload.len()))?;
    match (source, group) {
        (IpAddr::V4(s), IpAddr::V4(g)) => {
            let info = Ipv4Info { src: s, dst: g, proto: PROTO_UDP, ttl: DATA_TTL, router_alert: false };
            ip::write_ipv4(out, &info, udp_len)?;
        }
        (IpAddr::V6(s), IpAddr::V6(g)) => {
            let info = Ipv6Info { src: s, dst: g, proto: PROTO_UDP, hop_limit: DATA_TTL, router_alert: false };
            ip::write_ipv6(out, &info, udp_len)?;
        }
        _ => return Err(AmtError::FamilyMismatch),
    }
    let mut sum = Checksum::new();
    sum.add_pseudo(source, group, PROTO_UDP, u32::from(udp_len16))
        .add_u16(source_port)
        .add_u16(dest_port)
        .add_u16(udp_len16)
        .add(payload);
    let mut c = sum.finish();
    if c == 0 {
        c = 0xffff; // zero means "no checksum" in UDP
    }
    out.extend_from_slice(&source_port.to_be_bytes());
    out.extend_from_slice(&dest_port.to_be_bytes());
    out.extend_from_slice(&udp_len16.to_be_bytes());
    out.extend_from_slice(&c.to_be_bytes());
    Ok(())
}

/// Checks and borrows the multicast UDP datagram inside an AMT Multicast Data message:
/// AMT header (version 0, type 6), IP header (IPv4 header checksum; no fragments),
/// UDP length and checksum (mandatory for IPv6, optional only for IPv4).
pub fn decapsulate(datagram: &[u8]) -> Result<MulticastDataRef<'_>, AmtError> {
    let (first, rest) =
        datagram.split_first().ok_or(AmtError::Truncated { what: "AMT Multicast Data", needed: 2, got: 0 })?;
    if first >> 4 != 0 {
        return Err(AmtError::BadVersion(first >> 4));
    }
    if first & 0x0f != TYPE_MULTICAST_DATA {
        return Err(AmtError::Unexpected {
            what: "AMT type (expected Multicast Data)",
            value: u32::from(first & 0x0f),
        });
    }
    let packet =
        rest.get(1..).ok_or(AmtError::Truncated { what: "AMT Multicast Data", needed: 2, got: datagram.len() })?;
    parse_ip_udp(packet)
}

/// Parses and verifies an IP+UDP packet.
pub(crate) fn parse_ip_udp(packet: &[u8]) -> Result<MulticastDataRef<'_>, AmtError> {
    let (src, dst, proto, body): (IpAddr, IpAddr, u8, &[u8]) = match ip::ip_version(packet)? {
        4 => {
            let (info, body, _) = ip::parse_ipv4(packet)?;
            (IpAddr::V4(info.src), IpAddr::V4(info.dst), info.proto, body)
        }
        6 => {
            let (info, body, _) = ip::parse_ipv6(packet)?;
            (IpAddr::V6(info.src), IpAddr::V6(info.dst), info.proto, body)
        }
        v => return Err(AmtError::Unexpected { what: "IP version", value: u32::from(v) }),
    };
    if proto != PROTO_UDP {
        return Err(AmtError::Unexpected { what: "encapsulated IP protocol (expected UDP)", value: u32::from(proto) });
    }
    let hdr: [u8; 8] = body.get(..8).and_then(|h| h.try_into().ok()).ok_or(AmtError::Truncated {
        what: "UDP header",
        needed: 8,
        got: body.len(),
    })?;
    let [sp0, sp1, dp0, dp1, l0, l1, c0, c1] = hdr;
    let udp_len = usize::from(u16::from_be_bytes([l0, l1]));
    if udp_len < 8 || udp_len > body.len() {
        return Err(AmtError::BadLength { what: "UDP length", len: udp_len });
    }
    let udp = body.get(..udp_len).unwrap_or(&[]);
    let stored = u16::from_be_bytes([c0, c1]);
    if stored == 0 && src.is_ipv6() {
        return Err(AmtError::BadChecksum { what: "UDP (zero over IPv6)" });
    }
    if stored != 0 {
        let c = Checksum::new().add_pseudo(src, dst, PROTO_UDP, udp_len as u32).add(udp).finish();
        if c != 0 {
            return Err(AmtError::BadChecksum { what: "UDP" });
        }
    }
    Ok(MulticastDataRef {
        source: SocketAddr::new(src, u16::from_be_bytes([sp0, sp1])),
        group: SocketAddr::new(dst, u16::from_be_bytes([dp0, dp1])),
        payload: udp.get(8..).unwrap_or(&[]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sg(s: &str) -> SourceGroup {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_known_bytes() {
        let mut out = Vec::new();
        encapsulate(&sg("10.0.0.1@232.1.1.1"), 1000, 5004, b"hi", &mut out).unwrap();
        let expected: Vec<u8> = vec![
            0x06, 0x00, // AMT Multicast Data
            0x45, 0x00, 0x00, 0x1e, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x47,
            0xcc, // IPv4 (checksum computed independently)
            10, 0, 0, 1, 232, 1, 1, 1, //
            0x03, 0xe8, 0x13, 0x8c, 0x00, 0x0a, 0x8c, 0xf9, // UDP
            b'h', b'i',
        ];
        assert_eq!(out, expected, "{out:02x?}");
        let d = decapsulate(&out).unwrap();
        assert_eq!(d.source, "10.0.0.1:1000".parse().unwrap());
        assert_eq!(d.group, "232.1.1.1:5004".parse().unwrap());
        assert_eq!(d.payload, b"hi");
    }

    #[test]
    fn ipv6_roundtrip_and_checksum() {
        let mut out = Vec::new();
        let s = sg("2001:db8::1@ff3e::8000:1");
        encapsulate(&s, 4000, 5004, &[0xab; 1316], &mut out).unwrap();
        assert_eq!(out.len(), IPV6_DATA_OVERHEAD + 1316);
        let d = decapsulate(&out).unwrap();
        assert_eq!(d.source_group(), s);
        assert_eq!(d.payload.len(), 1316);
        let last = out.len() - 1;
        out[last] ^= 1;
        assert_eq!(decapsulate(&out), Err(AmtError::BadChecksum { what: "UDP" }));
    }

    #[test]
    fn header_plus_payload_is_the_encapsulated_message() {
        for (s, len) in [("10.0.0.1@232.1.1.1", 1316), ("2001:db8::1@ff3e::8000:1", 1315), ("10.0.0.1@232.1.1.1", 0)] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let (mut whole, mut header) = (Vec::new(), vec![0xee; 9]);
            encapsulate(&sg(s), 4000, 5004, &payload, &mut whole).unwrap();
            encapsulate_header(&sg(s), 4000, 5004, &payload, &mut header).unwrap();
            assert!(header.len() <= IPV6_DATA_OVERHEAD);
            assert_eq!([header.as_slice(), &payload].concat(), whole, "{s}, {len} bytes");
        }
        let mut header = Vec::new();
        let big = vec![0; 70_000];
        assert_eq!(
            encapsulate_header(&sg("10.0.0.1@232.1.1.1"), 1, 2, &big, &mut header),
            Err(AmtError::PayloadTooLarge(70_000))
        );
    }

    #[test]
    fn rejects_wrong_type_version_and_family() {
        assert!(matches!(decapsulate(&[]), Err(AmtError::Truncated { .. })));
        assert_eq!(decapsulate(&[0x16, 0]), Err(AmtError::BadVersion(1)));
        assert!(matches!(decapsulate(&[0x05, 0]), Err(AmtError::Unexpected { .. })));
        let mixed = SourceGroup { source: "10.0.0.1".parse().unwrap(), group: "ff3e::1".parse().unwrap() };
        assert_eq!(encapsulate(&mixed, 1, 2, b"", &mut Vec::new()), Err(AmtError::FamilyMismatch));
        assert!(matches!(
            encapsulate(&sg("10.0.0.1@232.1.1.1"), 1, 2, &vec![0; 70000], &mut Vec::new()),
            Err(AmtError::PayloadTooLarge(_))
        ));
    }
}
