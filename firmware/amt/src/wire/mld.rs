//! MLDv2 (RFC 3810) Multicast Listener Query and Version 2 Multicast Listener Report: encode
//! and decode, with the ICMPv6 checksum over the IPv6 pseudo-header. The IPv6 header (with its
//! hop-by-hop Router Alert) is in `membership.rs`.

use std::net::Ipv6Addr;
use std::time::Duration;

use crate::wire::checksum::Checksum;
use crate::wire::group_record::{GroupRecord, RecordType};
use crate::wire::ip::PROTO_ICMPV6;
use crate::wire::reader::Reader;
use crate::wire::timecode::{decode_code16, decode_code8, encode_code16, encode_code8};
use crate::AmtError;

/// ICMPv6 type of a Multicast Listener Query.
pub const MLD_QUERY: u8 = 130;
/// ICMPv6 type of a Version 2 Multicast Listener Report.
pub const MLD_V2_REPORT: u8 = 143;

/// An MLDv2 Multicast Listener Query (general when `group` is ::).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MldV2Query {
    /// Maximum Response Code (milliseconds, floating-point coded from 32768).
    pub max_resp_code: u16,
    /// Multicast address; :: for a general query.
    pub group: Ipv6Addr,
    /// S flag.
    pub suppress: bool,
    /// Querier's Robustness Variable (3 bits).
    pub qrv: u8,
    /// Querier's Query Interval Code (seconds).
    pub qqic: u8,
    /// Source addresses.
    pub sources: Vec<Ipv6Addr>,
}

impl MldV2Query {
    /// A general query announcing `query_interval`, `max_response` and robustness `qrv`.
    pub fn general(query_interval: Duration, max_response: Duration, qrv: u8) -> Self {
        MldV2Query {
            max_resp_code: encode_code16(u32::try_from(max_response.as_millis()).unwrap_or(u32::MAX)),
            group: Ipv6Addr::UNSPECIFIED,
            suppress: false,
            qrv: qrv.min(7),
            qqic: encode_code8(u32::try_from(query_interval.as_secs()).unwrap_or(u32::MAX)),
            sources: Vec::new(),
        }
    }

    /// Maximum Response Delay.
    pub fn max_response_time(&self) -> Duration {
        Duration::from_millis(u64::from(decode_code16(self.max_resp_code)))
    }

    /// Querier's Query Interval.
    pub fn query_interval(&self) -> Duration {
        Duration::from_secs(u64::from(decode_code8(self.qqic)))
    }

    fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), AmtError> {
        let n = u16::try_from(self.sources.len())
            .map_err(|_| AmtError::BadLength { what: "MLDv2 query sources", len: self.sources.len() })?;
        out.extend_from_slice(&[MLD_QUERY, 0, 0, 0]);
        out.extend_from_slice(&self.max_resp_code.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.group.octets());
        out.push((u8::from(self.suppress) << 3) | (self.qrv & 0x07));
        out.push(self.qqic);
        out.extend_from_slice(&n.to_be_bytes());
        for s in &self.sources {
            out.extend_from_slice(&s.octets());
        }
        Ok(())
    }
}

/// An MLDv2 Version 2 Multicast Listener Report.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MldV2Report {
    /// Multicast address records.
    pub records: Vec<GroupRecord<Ipv6Addr>>,
}

impl MldV2Report {
    fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), AmtError> {
        let n = u16::try_from(self.records.len())
            .map_err(|_| AmtError::BadLength { what: "MLDv2 report records", len: self.records.len() })?;
        out.extend_from_slice(&[MLD_V2_REPORT, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&n.to_be_bytes());
        for r in &self.records {
            let ns = u16::try_from(r.sources.len())
                .map_err(|_| AmtError::BadLength { what: "MLDv2 record sources", len: r.sources.len() })?;
            out.extend_from_slice(&[r.record_type.to_u8(), 0]);
            out.extend_from_slice(&ns.to_be_bytes());
            out.extend_from_slice(&r.group.octets());
            for s in &r.sources {
                out.extend_from_slice(&s.octets());
            }
        }
        Ok(())
    }
}

/// An MLDv2 message this crate understands.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MldMessage {
    /// Multicast Listener Query (MLDv2 form, at least 28 bytes).
    Query(MldV2Query),
    /// Version 2 Multicast Listener Report.
    Report(MldV2Report),
}

impl MldMessage {
    /// Appends the message to `out` with its checksum over the pseudo-header `src` → `dst`.
    pub fn encode(&self, src: Ipv6Addr, dst: Ipv6Addr, out: &mut Vec<u8>) -> Result<(), AmtError> {
        let start = out.len();
        match self {
            MldMessage::Query(q) => q.encode_body(out)?,
            MldMessage::Report(r) => r.encode_body(out)?,
        }
        let body = out.get(start..).unwrap_or(&[]);
        let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
        let c = Checksum::new().add_pseudo_v6(src, dst, PROTO_ICMPV6, len).add(body).finish();
        if let Some(f) = out.get_mut(start + 2..start + 4) {
            f.copy_from_slice(&c.to_be_bytes());
        }
        Ok(())
    }

    /// Decodes an MLD message (the ICMPv6 payload of a packet `src` → `dst`), verifying the
    /// checksum. MLDv1 messages are rejected as unexpected.
    pub fn decode(buf: &[u8], src: Ipv6Addr, dst: Ipv6Addr) -> Result<Self, AmtError> {
        let mut r = Reader::new(buf, "MLD message");
        let ty = r.u8()?;
        let _code = r.u8()?;
        let _checksum = r.u16()?;
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        if Checksum::new().add_pseudo_v6(src, dst, PROTO_ICMPV6, len).add(buf).finish() != 0 {
            return Err(AmtError::BadChecksum { what: "MLD (ICMPv6)" });
        }
        match ty {
            MLD_QUERY => {
                if buf.len() < 28 {
                    return Err(AmtError::Unexpected {
                        what: "MLD query length (MLDv1 query)",
                        value: buf.len() as u32,
                    });
                }
                let max_resp_code = r.u16()?;
                let _reserved = r.u16()?;
                let group = Ipv6Addr::from(r.array::<16>()?);
                let flags = r.u8()?;
                let qqic = r.u8()?;
                let n = usize::from(r.u16()?);
                let mut sources = Vec::with_capacity(n.min(r.remaining() / 16));
                for _ in 0..n {
                    sources.push(Ipv6Addr::from(r.array::<16>()?));
                }
                Ok(MldMessage::Query(MldV2Query {
                    max_resp_code,
                    group,
                    suppress: flags & 0x08 != 0,
                    qrv: flags & 0x07,
                    qqic,
                    sources,
                }))
            }
            MLD_V2_REPORT => {
                let _reserved = r.u16()?;
                let n = usize::from(r.u16()?);
                let mut records = Vec::with_capacity(n.min(r.remaining() / 20));
                for _ in 0..n {
                    let rt = r.u8()?;
                    let aux_words = usize::from(r.u8()?);
                    let ns = usize::from(r.u16()?);
                    let group = Ipv6Addr::from(r.array::<16>()?);
                    let mut sources = Vec::with_capacity(ns.min(r.remaining() / 16));
                    for _ in 0..ns {
                        sources.push(Ipv6Addr::from(r.array::<16>()?));
                    }
                    r.take(aux_words * 4)?;
                    records.push(GroupRecord { record_type: RecordType::from_u8(rt), group, sources });
                }
                Ok(MldMessage::Report(MldV2Report { records }))
            }
            other => Err(AmtError::Unexpected { what: "MLD (ICMPv6) type", value: u32::from(other) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn report_known_bytes() {
        let rep = MldV2Report {
            records: vec![GroupRecord {
                record_type: RecordType::ModeIsInclude,
                group: a("ff3e::8000:1"),
                sources: vec![a("2001:db8::1")],
            }],
        };
        let msg = MldMessage::Report(rep);
        let mut out = Vec::new();
        msg.encode(a("fe80::1"), a("ff02::16"), &mut out).unwrap();
        let mut expected = vec![143, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1];
        expected.extend_from_slice(&a("ff3e::8000:1").octets());
        expected.extend_from_slice(&a("2001:db8::1").octets());
        // checksum computed independently (python, RFC 8200 pseudo-header)
        expected[2] = 0xc5;
        expected[3] = 0x01;
        assert_eq!(out, expected, "{out:02x?}");
        assert_eq!(MldMessage::decode(&out, a("fe80::1"), a("ff02::16")), Ok(msg.clone()));
        // Same bytes with a different pseudo-header do not verify.
        assert_eq!(
            MldMessage::decode(&out, a("fe80::2"), a("ff02::16")),
            Err(AmtError::BadChecksum { what: "MLD (ICMPv6)" })
        );
    }

    #[test]
    fn general_query_roundtrip() {
        let q = MldV2Query::general(Duration::from_secs(125), Duration::from_secs(10), 2);
        assert_eq!(q.max_resp_code, 10_000);
        let msg = MldMessage::Query(q.clone());
        let mut out = Vec::new();
        msg.encode(a("fe80::1"), a("ff02::1"), &mut out).unwrap();
        assert_eq!(out.len(), 28);
        assert_eq!(MldMessage::decode(&out, a("fe80::1"), a("ff02::1")), Ok(msg));
        assert_eq!(q.query_interval(), Duration::from_secs(125));
        assert_eq!(q.max_response_time(), Duration::from_secs(10));
    }

    #[test]
    fn rejects_truncated_and_v1() {
        assert!(matches!(MldMessage::decode(&[143, 0], a("::"), a("::")), Err(AmtError::Truncated { .. })));
        let mut v1 = vec![130, 0, 0, 0, 0, 0, 0, 0];
        v1.extend_from_slice(&[0; 16]);
        let c = Checksum::new().add_pseudo_v6(a("fe80::1"), a("ff02::1"), 58, 24).add(&v1).finish();
        v1[2..4].copy_from_slice(&c.to_be_bytes());
        assert!(matches!(MldMessage::decode(&v1, a("fe80::1"), a("ff02::1")), Err(AmtError::Unexpected { .. })));
    }
}
