//! IPv4 and IPv6 headers of the packets AMT encapsulates: multicast data (IP+UDP), IGMPv3
//! (IPv4 with the Router Alert option, TTL 1) and MLDv2 (IPv6 with a hop-by-hop Router Alert,
//! hop limit 1). Bounds-checked parsing, header checksum, no fragments.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::wire::checksum::internet_checksum;
use crate::AmtError;

/// IP protocol number of IGMP.
pub(crate) const PROTO_IGMP: u8 = 2;
/// IP protocol number of UDP.
pub(crate) const PROTO_UDP: u8 = 17;
/// IPv6 next-header value of ICMPv6.
#[allow(dead_code)] // used by the MLD codec
pub(crate) const PROTO_ICMPV6: u8 = 58;
const NH_HOP_BY_HOP: u8 = 0;
const NH_ROUTING: u8 = 43;
const NH_FRAGMENT: u8 = 44;
const NH_DEST_OPTS: u8 = 60;

/// IPv4 Router Alert option (RFC 2113): type 148, length 4, value 0.
pub(crate) const IPV4_ROUTER_ALERT: [u8; 4] = [0x94, 0x04, 0x00, 0x00];

/// The fields of an IPv4 header that AMT cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ipv4Info {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub ttl: u8,
    pub router_alert: bool,
}

/// The fields of an IPv6 header (after walking hop-by-hop/destination options) AMT cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ipv6Info {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// The final (upper-layer) next header.
    pub proto: u8,
    pub hop_limit: u8,
    pub router_alert: bool,
}

/// Reads the IP version nibble of `packet`.
pub(crate) fn ip_version(packet: &[u8]) -> Result<u8, AmtError> {
    packet.first().map(|b| b >> 4).ok_or(AmtError::Truncated { what: "IP packet", needed: 1, got: 0 })
}

fn get<const N: usize>(buf: &[u8], at: usize, what: &'static str) -> Result<[u8; N], AmtError> {
    buf.get(at..at + N).and_then(|s| s.try_into().ok()).ok_or(AmtError::Truncated {
        what,
        needed: at + N,
        got: buf.len(),
    })
}

/// Parses an IPv4 header, verifies its checksum, and returns it with the payload
/// (bounded by Total Length; bytes after it are returned as the third element).
pub(crate) fn parse_ipv4(buf: &[u8]) -> Result<(Ipv4Info, &[u8], &[u8]), AmtError> {
    let fixed: [u8; 20] = get(buf, 0, "IPv4 header")?;
    let [vihl, _tos, tl0, tl1, _id0, _id1, fl0, fl1, ttl, proto, _c0, _c1, s0, s1, s2, s3, d0, d1, d2, d3] = fixed;
    if vihl >> 4 != 4 {
        return Err(AmtError::Unexpected { what: "IPv4 version", value: u32::from(vihl >> 4) });
    }
    let hl = usize::from(vihl & 0x0f) * 4;
    if hl < 20 {
        return Err(AmtError::BadLength { what: "IPv4 header", len: hl });
    }
    let total = usize::from(u16::from_be_bytes([tl0, tl1]));
    if total < hl {
        return Err(AmtError::BadLength { what: "IPv4 total length", len: total });
    }
    if total > buf.len() {
        return Err(AmtError::Truncated { what: "IPv4 packet", needed: total, got: buf.len() });
    }
    let header = buf.get(..hl).ok_or(AmtError::Truncated { what: "IPv4 options", needed: hl, got: buf.len() })?;
    if internet_checksum(header) != 0 {
        return Err(AmtError::BadChecksum { what: "IPv4 header" });
    }
    let frag = u16::from_be_bytes([fl0, fl1]);
    if frag & 0x2000 != 0 || frag & 0x1fff != 0 {
        return Err(AmtError::Fragmented);
    }
    let options = header.get(20..).unwrap_or(&[]);
    let payload = buf.get(hl..total).unwrap_or(&[]);
    let rest = buf.get(total..).unwrap_or(&[]);
    let info = Ipv4Info {
        src: Ipv4Addr::new(s0, s1, s2, s3),
        dst: Ipv4Addr::new(d0, d1, d2, d3),
        proto,
        ttl,
        router_alert: has_ipv4_router_alert(options),
    };
    Ok((info, payload, rest))
}

/// Walks IPv4 options looking for Router Alert.
fn has_ipv4_router_alert(mut opts: &[u8]) -> bool {
    while let Some((&kind, rest)) = opts.split_first() {
        match kind {
            0 => return false,
            1 => opts = rest,
            _ => {
                let len = rest.first().copied().map(usize::from).unwrap_or(0);
                if kind == 0x94 && len == 4 {
                    return true;
                }
                if len < 2 {
                    return false;
                }
                opts = opts.get(len..).unwrap_or(&[]);
            }
        }
    }
    false
}

/// Appends an IPv4 header with checksum for a payload of `payload_len` bytes.
/// `options` must be a multiple of 4 bytes long (at most 40).
pub(crate) fn write_ipv4(out: &mut Vec<u8>, info: &Ipv4Info, payload_len: usize) -> Result<(), AmtError> {
    let options: &[u8] = if info.router_alert { &IPV4_ROUTER_ALERT } else { &[] };
    let hl = 20 + options.len();
    let total = hl + payload_len;
    let total16 = u16::try_from(total).map_err(|_| AmtError::PayloadTooLarge(payload_len))?;
    let start = out.len();
    let ihl = (hl / 4) as u8;
    // DF is set for the tunnelled IGMP/MLD and data packets: they are never fragmented.
    let tos = if info.proto == PROTO_IGMP { 0xc0 } else { 0 };
    out.extend_from_slice(&[0x40 | ihl, tos]);
    out.extend_from_slice(&total16.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0x40, 0x00, info.ttl, info.proto, 0, 0]);
    out.extend_from_slice(&info.src.octets());
    out.extend_from_slice(&info.dst.octets());
    out.extend_from_slice(options);
    let c = internet_checksum(out.get(start..).unwrap_or(&[]));
    if let Some(field) = out.get_mut(start + 10..start + 12) {
        field.copy_from_slice(&c.to_be_bytes());
    }
    Ok(())
}

/// Parses an IPv6 header and any hop-by-hop / destination options headers; returns the info,
/// the upper-layer payload (bounded by Payload Length) and the bytes after the packet.
pub(crate) fn parse_ipv6(buf: &[u8]) -> Result<(Ipv6Info, &[u8], &[u8]), AmtError> {
    let fixed: [u8; 40] = get(buf, 0, "IPv6 header")?;
    let [v, ..] = fixed;
    if v >> 4 != 6 {
        return Err(AmtError::Unexpected { what: "IPv6 version", value: u32::from(v >> 4) });
    }
    let plen = usize::from(u16::from_be_bytes([fixed[4], fixed[5]]));
    let mut next = fixed[6];
    let hop_limit = fixed[7];
    let mut s = [0u8; 16];
    let mut d = [0u8; 16];
    s.copy_from_slice(&fixed[8..24]);
    d.copy_from_slice(&fixed[24..40]);
    let end = 40 + plen;
    if end > buf.len() {
        return Err(AmtError::Truncated { what: "IPv6 packet", needed: end, got: buf.len() });
    }
    let mut body = buf.get(40..end).unwrap_or(&[]);
    let rest = buf.get(end..).unwrap_or(&[]);
    let mut router_alert = false;
    loop {
        match next {
            NH_HOP_BY_HOP | NH_DEST_OPTS => {
                let hdr: [u8; 2] = get(body, 0, "IPv6 extension header")?;
                let len = (usize::from(hdr[1]) + 1) * 8;
                let ext = body.get(..len).ok_or(AmtError::Truncated {
                    what: "IPv6 extension header",
                    needed: len,
                    got: body.len(),
                })?;
                if next == NH_HOP_BY_HOP && has_ipv6_router_alert(ext.get(2..).unwrap_or(&[])) {
                    router_alert = true;
                }
                next = hdr[0];
                body = body.get(len..).unwrap_or(&[]);
            }
            NH_FRAGMENT => return Err(AmtError::Fragmented),
            NH_ROUTING => return Err(AmtError::Unexpected { what: "IPv6 routing header", value: u32::from(next) }),
            _ => break,
        }
    }
    let info = Ipv6Info { src: Ipv6Addr::from(s), dst: Ipv6Addr::from(d), proto: next, hop_limit, router_alert };
    Ok((info, body, rest))
}

/// Walks IPv6 TLV options looking for Router Alert (type 5).
fn has_ipv6_router_alert(mut opts: &[u8]) -> bool {
    while let Some((&kind, rest)) = opts.split_first() {
        if kind == 0 {
            opts = rest;
            continue;
        }
        let Some(&len) = rest.first() else { return false };
        if kind == 5 {
            return true;
        }
        opts = rest.get(1 + usize::from(len)..).unwrap_or(&[]);
    }
    false
}

/// Appends an IPv6 header (plus a hop-by-hop Router Alert header when `info.router_alert`)
/// for an upper-layer payload of `payload_len` bytes with next header `info.proto`.
pub(crate) fn write_ipv6(out: &mut Vec<u8>, info: &Ipv6Info, payload_len: usize) -> Result<(), AmtError> {
    let ext = if info.router_alert { 8 } else { 0 };
    let plen = u16::try_from(payload_len + ext).map_err(|_| AmtError::PayloadTooLarge(payload_len))?;
    out.extend_from_slice(&[0x60, 0, 0, 0]);
    out.extend_from_slice(&plen.to_be_bytes());
    out.push(if info.router_alert { NH_HOP_BY_HOP } else { info.proto });
    out.push(info.hop_limit);
    out.extend_from_slice(&info.src.octets());
    out.extend_from_slice(&info.dst.octets());
    if info.router_alert {
        // Next header, length 0 (8 bytes), Router Alert (type 5, len 2, value 0 = MLD), PadN(0).
        out.extend_from_slice(&[info.proto, 0, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_roundtrip_with_router_alert() {
        let info = Ipv4Info {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(224, 0, 0, 22),
            proto: PROTO_IGMP,
            ttl: 1,
            router_alert: true,
        };
        let mut out = Vec::new();
        write_ipv4(&mut out, &info, 4).unwrap();
        out.extend_from_slice(&[1, 2, 3, 4, 9, 9]);
        assert_eq!(out.len(), 24 + 4 + 2);
        assert_eq!(out[0], 0x46);
        let (got, payload, rest) = parse_ipv4(&out).unwrap();
        assert_eq!(got, info);
        assert_eq!(payload, &[1, 2, 3, 4]);
        assert_eq!(rest, &[9, 9]);
        out[8] = 2; // TTL changed without fixing the checksum
        assert_eq!(parse_ipv4(&out), Err(AmtError::BadChecksum { what: "IPv4 header" }));
    }

    #[test]
    fn ipv4_rejects_fragments_and_bad_lengths() {
        let info = Ipv4Info {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(232, 0, 0, 1),
            proto: PROTO_UDP,
            ttl: 64,
            router_alert: false,
        };
        let mut out = Vec::new();
        write_ipv4(&mut out, &info, 0).unwrap();
        let mut frag = out.clone();
        frag[6] = 0x20; // MF
        frag[10] = 0;
        frag[11] = 0;
        let c = internet_checksum(&frag);
        frag[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(parse_ipv4(&frag), Err(AmtError::Fragmented));
        assert!(matches!(parse_ipv4(&out[..19]), Err(AmtError::Truncated { .. })));
        let mut long = out.clone();
        long[3] = 30;
        assert!(matches!(parse_ipv4(&long), Err(AmtError::Truncated { .. })));
    }

    #[test]
    fn ipv6_roundtrip_with_hop_by_hop() {
        let info = Ipv6Info {
            src: "fe80::1".parse().unwrap(),
            dst: "ff02::16".parse().unwrap(),
            proto: PROTO_ICMPV6,
            hop_limit: 1,
            router_alert: true,
        };
        let mut out = Vec::new();
        write_ipv6(&mut out, &info, 3).unwrap();
        out.extend_from_slice(&[7, 8, 9, 5]);
        let (got, payload, rest) = parse_ipv6(&out).unwrap();
        assert_eq!(got, info);
        assert_eq!(payload, &[7, 8, 9]);
        assert_eq!(rest, &[5]);
        assert_eq!(out[6], 0);
        assert_eq!(u16::from_be_bytes([out[4], out[5]]), 11);
    }
}
