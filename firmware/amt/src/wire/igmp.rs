//! IGMPv3 (RFC 3376) Membership Query and Version 3 Membership Report: encode and decode with
//! checksum verification. The IPv4 header around them is in `membership.rs`.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::wire::checksum::internet_checksum;
use crate::wire::group_record::{GroupRecord, RecordType};
use crate::wire::reader::Reader;
use crate::wire::timecode::{decode_code8, encode_code8};
use crate::AmtError;

/// IGMP type of a Membership Query.
pub const IGMP_QUERY: u8 = 0x11;
/// IGMP type of a Version 3 Membership Report.
pub const IGMP_V3_REPORT: u8 = 0x22;

/// An IGMPv3 Membership Query (general when `group` is 0.0.0.0).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IgmpV3Query {
    /// Max Resp Code (tenths of a second, floating-point coded above 127).
    pub max_resp_code: u8,
    /// Group address; 0.0.0.0 for a general query.
    pub group: Ipv4Addr,
    /// S flag: suppress router-side processing.
    pub suppress: bool,
    /// Querier's Robustness Variable (3 bits).
    pub qrv: u8,
    /// Querier's Query Interval Code (seconds, floating-point coded above 127).
    pub qqic: u8,
    /// Source addresses (group-and-source-specific queries).
    pub sources: Vec<Ipv4Addr>,
}

impl IgmpV3Query {
    /// A general query announcing `query_interval`, `max_response` and robustness `qrv`.
    pub fn general(query_interval: Duration, max_response: Duration, qrv: u8) -> Self {
        IgmpV3Query {
            max_resp_code: encode_code8(u32::try_from(max_response.as_millis() / 100).unwrap_or(u32::MAX)),
            group: Ipv4Addr::UNSPECIFIED,
            suppress: false,
            qrv: qrv.min(7),
            qqic: encode_code8(u32::try_from(query_interval.as_secs()).unwrap_or(u32::MAX)),
            sources: Vec::new(),
        }
    }

    /// Max Response Time.
    pub fn max_response_time(&self) -> Duration {
        Duration::from_millis(u64::from(decode_code8(self.max_resp_code)) * 100)
    }

    /// Querier's Query Interval (QQI).
    pub fn query_interval(&self) -> Duration {
        Duration::from_secs(u64::from(decode_code8(self.qqic)))
    }

    /// Appends the query (with checksum) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), AmtError> {
        let n = u16::try_from(self.sources.len())
            .map_err(|_| AmtError::BadLength { what: "IGMPv3 query sources", len: self.sources.len() })?;
        let start = out.len();
        out.extend_from_slice(&[IGMP_QUERY, self.max_resp_code, 0, 0]);
        out.extend_from_slice(&self.group.octets());
        out.push((u8::from(self.suppress) << 3) | (self.qrv & 0x07));
        out.push(self.qqic);
        out.extend_from_slice(&n.to_be_bytes());
        for s in &self.sources {
            out.extend_from_slice(&s.octets());
        }
        fix_checksum(out, start);
        Ok(())
    }
}

/// An IGMPv3 Version 3 Membership Report.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IgmpV3Report {
    /// Group records.
    pub records: Vec<GroupRecord<Ipv4Addr>>,
}

impl IgmpV3Report {
    /// Appends the report (with checksum) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), AmtError> {
        let n = u16::try_from(self.records.len())
            .map_err(|_| AmtError::BadLength { what: "IGMPv3 report records", len: self.records.len() })?;
        let start = out.len();
        out.extend_from_slice(&[IGMP_V3_REPORT, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&n.to_be_bytes());
        for r in &self.records {
            let ns = u16::try_from(r.sources.len())
                .map_err(|_| AmtError::BadLength { what: "IGMPv3 record sources", len: r.sources.len() })?;
            out.extend_from_slice(&[r.record_type.to_u8(), 0]);
            out.extend_from_slice(&ns.to_be_bytes());
            out.extend_from_slice(&r.group.octets());
            for s in &r.sources {
                out.extend_from_slice(&s.octets());
            }
        }
        fix_checksum(out, start);
        Ok(())
    }
}

fn fix_checksum(out: &mut [u8], start: usize) {
    let c = internet_checksum(out.get(start..).unwrap_or(&[]));
    if let Some(f) = out.get_mut(start + 2..start + 4) {
        f.copy_from_slice(&c.to_be_bytes());
    }
}

/// An IGMPv3 message this crate understands.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IgmpMessage {
    /// Membership Query (IGMPv3 form, at least 12 bytes).
    Query(IgmpV3Query),
    /// Version 3 Membership Report.
    Report(IgmpV3Report),
}

impl IgmpMessage {
    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), AmtError> {
        match self {
            IgmpMessage::Query(q) => q.encode(out),
            IgmpMessage::Report(r) => r.encode(out),
        }
    }

    /// Decodes an IGMP message (the whole IPv4 payload), verifying the checksum.
    /// IGMPv1/v2 messages are rejected as unexpected.
    pub fn decode(buf: &[u8]) -> Result<Self, AmtError> {
        let mut r = Reader::new(buf, "IGMP message");
        let ty = r.u8()?;
        let code = r.u8()?;
        let _checksum = r.u16()?;
        if internet_checksum(buf) != 0 {
            return Err(AmtError::BadChecksum { what: "IGMP" });
        }
        match ty {
            IGMP_QUERY => {
                if buf.len() < 12 {
                    return Err(AmtError::Unexpected {
                        what: "IGMP query length (IGMPv1/v2 query)",
                        value: buf.len() as u32,
                    });
                }
                let group = Ipv4Addr::from(r.array::<4>()?);
                let flags = r.u8()?;
                let qqic = r.u8()?;
                let n = usize::from(r.u16()?);
                let mut sources = Vec::with_capacity(n.min(r.remaining() / 4));
                for _ in 0..n {
                    sources.push(Ipv4Addr::from(r.array::<4>()?));
                }
                Ok(IgmpMessage::Query(IgmpV3Query {
                    max_resp_code: code,
                    group,
                    suppress: flags & 0x08 != 0,
                    qrv: flags & 0x07,
                    qqic,
                    sources,
                }))
            }
            IGMP_V3_REPORT => {
                let _reserved = r.u16()?;
                let n = usize::from(r.u16()?);
                let mut records = Vec::with_capacity(n.min(r.remaining() / 8));
                for _ in 0..n {
                    let rt = r.u8()?;
                    let aux_words = usize::from(r.u8()?);
                    let ns = usize::from(r.u16()?);
                    let group = Ipv4Addr::from(r.array::<4>()?);
                    let mut sources = Vec::with_capacity(ns.min(r.remaining() / 4));
                    for _ in 0..ns {
                        sources.push(Ipv4Addr::from(r.array::<4>()?));
                    }
                    r.take(aux_words * 4)?;
                    records.push(GroupRecord { record_type: RecordType::from_u8(rt), group, sources });
                }
                Ok(IgmpMessage::Report(IgmpV3Report { records }))
            }
            other => Err(AmtError::Unexpected { what: "IGMP type", value: u32::from(other) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn general_query_known_bytes() {
        let q = IgmpV3Query::general(Duration::from_secs(125), Duration::from_secs(10), 2);
        let mut out = Vec::new();
        q.encode(&mut out).unwrap();
        // type 0x11, max resp 100 (10 s), checksum, group 0, QRV 2, QQIC 125, 0 sources
        assert_eq!(out, [0x11, 0x64, 0xec, 0x1e, 0, 0, 0, 0, 0x02, 0x7d, 0, 0]);
        assert_eq!(IgmpMessage::decode(&out), Ok(IgmpMessage::Query(q.clone())));
        assert_eq!(q.query_interval(), Duration::from_secs(125));
        assert_eq!(q.max_response_time(), Duration::from_secs(10));
    }

    #[test]
    fn report_known_bytes_and_checksum() {
        let rep = IgmpV3Report {
            records: vec![GroupRecord {
                record_type: RecordType::AllowNewSources,
                group: Ipv4Addr::new(232, 1, 1, 1),
                sources: vec![Ipv4Addr::new(10, 0, 0, 1)],
            }],
        };
        let mut out = Vec::new();
        rep.encode(&mut out).unwrap();
        assert_eq!(out, [0x22, 0, 0xe5, 0xf9, 0, 0, 0, 1, 5, 0, 0, 1, 232, 1, 1, 1, 10, 0, 0, 1]);
        assert_eq!(IgmpMessage::decode(&out), Ok(IgmpMessage::Report(rep)));
        out[17] ^= 0xff;
        assert_eq!(IgmpMessage::decode(&out), Err(AmtError::BadChecksum { what: "IGMP" }));
    }

    #[test]
    fn rejects_v2_and_truncated() {
        // IGMPv2 general query: 8 bytes.
        let mut v2 = vec![0x11, 100, 0, 0, 0, 0, 0, 0];
        let c = internet_checksum(&v2);
        v2[2..4].copy_from_slice(&c.to_be_bytes());
        assert!(matches!(IgmpMessage::decode(&v2), Err(AmtError::Unexpected { .. })));
        // Report claiming 1 record with no bytes for it.
        let mut rep = vec![0x22, 0, 0, 0, 0, 0, 0, 1];
        let c = internet_checksum(&rep);
        rep[2..4].copy_from_slice(&c.to_be_bytes());
        assert!(matches!(IgmpMessage::decode(&rep), Err(AmtError::Truncated { .. })));
        assert!(matches!(IgmpMessage::decode(&[0x22]), Err(AmtError::Truncated { .. })));
    }
}
