//! RTCP (RFC 3550 section 6): sender reports, receiver reports with report blocks, SDES
//! (CNAME and other items), BYE, picture loss indications (RFC 4585 §6.3.1: payload-specific
//! feedback, FMT 1) and compound packets. Parsing is bounds-checked and never panics; unknown
//! packet types (and other feedback messages) are kept as raw bytes. Also the NTP timestamp
//! type of SRs.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Result, RtpError};
use crate::packetizer::RtpSender;
use crate::seq::SeqExtender;

/// RTCP packet type: sender report.
pub const PT_SR: u8 = 200;
/// RTCP packet type: receiver report.
pub const PT_RR: u8 = 201;
/// RTCP packet type: source description.
pub const PT_SDES: u8 = 202;
/// RTCP packet type: goodbye.
pub const PT_BYE: u8 = 203;
/// RTCP packet type: application-defined.
pub const PT_APP: u8 = 204;

/// RTCP packet type: payload-specific feedback (RFC 4585 §6.1).
pub const PT_PSFB: u8 = 206;
/// Payload-specific feedback message type: picture loss indication (RFC 4585 §6.3.1).
pub const FMT_PLI: u8 = 1;

/// SDES item type CNAME.
pub const SDES_CNAME: u8 = 1;

/// 64-bit NTP timestamp (seconds since 1900 in the high 32 bits, fraction in the low 32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct NtpTimestamp(pub u64);

/// Seconds between 1900-01-01 (NTP epoch) and 1970-01-01 (Unix epoch).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

impl NtpTimestamp {
    /// Converts a wall-clock time (times before 1970 map to the Unix epoch).
    pub fn from_system_time(t: SystemTime) -> Self {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let secs = d.as_secs().wrapping_add(NTP_UNIX_OFFSET);
        let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
        Self((secs << 32) | frac)
    }

    /// The middle 32 bits, as used in the LSR field of report blocks.
    pub fn middle32(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

/// One reception report block (RFC 3550 6.4.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// Source this block reports on.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub extended_highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Last SR timestamp (middle 32 bits of its NTP time).
    pub last_sr: u32,
    /// Delay since last SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// Sender report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SenderReport {
    /// Sender's SSRC.
    pub ssrc: u32,
    /// Wall-clock time of the report.
    pub ntp_time: NtpTimestamp,
    /// RTP timestamp corresponding to `ntp_time` on the media clock.
    pub rtp_time: u32,
    /// Packets sent.
    pub packet_count: u32,
    /// Payload octets sent.
    pub octet_count: u32,
    /// Reception reports (at most 31).
    pub reports: Vec<ReportBlock>,
}

impl SenderReport {
    /// A sender report for a packetizer's stream: `ntp_time` is now on the wall clock and
    /// `rtp_time` the media timestamp corresponding to the same instant.
    pub fn from_sender(sender: &RtpSender, ntp_time: NtpTimestamp, rtp_time: u32) -> Self {
        Self {
            ssrc: sender.ssrc,
            ntp_time,
            rtp_time,
            packet_count: sender.packet_count,
            octet_count: sender.octet_count,
            reports: Vec::new(),
        }
    }
}

/// Receive-side statistics of one source, for RTCP receiver report blocks (RFC 3550 6.4.1,
/// A.3 loss and A.8 interarrival jitter). Sans-IO: arrival times are passed in.
#[derive(Debug, Clone)]
pub struct ReceptionStats {
    ssrc: u32,
    clock_rate: u32,
    extender: SeqExtender,
    base_seq: Option<u64>,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    first_arrival: Option<Instant>,
    last_transit: Option<i64>,
    jitter: f64,
    last_sr: Option<(u32, Instant)>,
}

impl ReceptionStats {
    /// Statistics for source `ssrc` on a media clock of `clock_rate` Hz.
    pub fn new(ssrc: u32, clock_rate: u32) -> Self {
        Self {
            ssrc,
            clock_rate,
            extender: SeqExtender::new(),
            base_seq: None,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            first_arrival: None,
            last_transit: None,
            jitter: 0.0,
            last_sr: None,
        }
    }

    /// Records one received RTP packet (sequence number, RTP timestamp, arrival time).
    pub fn on_packet(&mut self, sequence_number: u16, rtp_timestamp: u32, arrival: Instant) {
        let ext = self.extender.extend(sequence_number);
        self.base_seq = Some(self.base_seq.map_or(ext, |b| b.min(ext)));
        self.received += 1;
        let first = *self.first_arrival.get_or_insert(arrival);
        let arrival_ticks =
            (arrival.saturating_duration_since(first).as_secs_f64() * f64::from(self.clock_rate)) as i64;
        // Transit time modulo 2^32 in clock ticks; differences are what matter.
        let transit = arrival_ticks.wrapping_sub(i64::from(rtp_timestamp)) & 0xffff_ffff;
        if let Some(last) = self.last_transit {
            let mut d = (transit - last).abs();
            if d > 0x8000_0000 {
                d = 0x1_0000_0000 - d; // wrapped
            }
            self.jitter += (d as f64 - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    /// Records a sender report from this source (for the LSR/DLSR fields).
    pub fn on_sender_report(&mut self, sr: &SenderReport, arrival: Instant) {
        self.last_sr = Some((sr.ntp_time.middle32(), arrival));
    }

    /// The source these statistics are of.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Interarrival jitter estimate in clock ticks.
    pub fn jitter(&self) -> u32 {
        self.jitter as u32
    }

    /// Packets expected (from sequence numbers) and received so far.
    pub fn expected_and_received(&self) -> (u64, u64) {
        match (self.base_seq, self.extender.highest()) {
            (Some(b), Some(h)) => (h - b + 1, self.received),
            _ => (0, 0),
        }
    }

    /// Builds a report block at `now` and starts a new reporting interval.
    pub fn report_block(&mut self, now: Instant) -> ReportBlock {
        let (expected, received) = self.expected_and_received();
        let expected_interval = expected - self.expected_prior;
        let received_interval = received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        let cumulative = (expected as i64 - received as i64).clamp(-0x80_0000, 0x7f_ffff) as i32;
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => {
                let d = now.saturating_duration_since(at);
                (lsr, (d.as_secs_f64() * 65536.0).min(f64::from(u32::MAX)) as u32)
            }
            None => (0, 0),
        };
        ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: cumulative,
            extended_highest_seq: self.extender.highest().unwrap_or(0) as u32,
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        }
    }
}

/// Receiver report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiverReport {
    /// Reporter's SSRC.
    pub ssrc: u32,
    /// Reception reports (at most 31).
    pub reports: Vec<ReportBlock>,
}

/// One SDES chunk: a source and its items (type, text).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SdesChunk {
    /// Source described.
    pub ssrc: u32,
    /// Items as (type, value); values longer than 255 bytes are cut when encoding.
    pub items: Vec<(u8, Vec<u8>)>,
}

impl SdesChunk {
    /// A chunk with just a CNAME.
    pub fn cname(ssrc: u32, cname: &str) -> Self {
        Self { ssrc, items: vec![(SDES_CNAME, cname.as_bytes().to_vec())] }
    }

    /// The CNAME item, if present and UTF-8.
    pub fn get_cname(&self) -> Option<&str> {
        self.items.iter().find(|(t, _)| *t == SDES_CNAME).and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// Goodbye.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bye {
    /// Sources leaving (at most 31).
    pub sources: Vec<u32>,
    /// Optional reason (at most 255 bytes).
    pub reason: Option<Vec<u8>>,
}

/// Picture loss indication (RFC 4585 §6.3.1): PSFB with FMT 1 and no FCI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pli {
    /// The receiver sending the feedback.
    pub sender_ssrc: u32,
    /// The media source it cannot decode.
    pub media_ssrc: u32,
}

/// One RTCP packet of a compound packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    /// SR.
    SenderReport(SenderReport),
    /// RR.
    ReceiverReport(ReceiverReport),
    /// SDES.
    SourceDescription(Vec<SdesChunk>),
    /// BYE.
    Bye(Bye),
    /// Picture loss indication: the receiver `sender_ssrc` cannot decode `media_ssrc` and asks
    /// for a keyframe.
    Pli(Pli),
    /// Any other type, kept raw: (packet type, count field, body after the 4-byte header).
    Other {
        /// Packet type.
        packet_type: u8,
        /// The 5-bit count/subtype field.
        count: u8,
        /// Body without the common header (and without padding).
        body: Vec<u8>,
    },
}

fn rd32(b: &[u8], at: usize) -> Result<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(RtpError::Rtcp("packet shorter than its fields"))
}

fn parse_blocks(body: &[u8], count: usize) -> Result<Vec<ReportBlock>> {
    (0..count)
        .map(|i| {
            let at = i * 24;
            let lost = rd32(body, at + 4)?;
            let cum = (lost & 0x00ff_ffff) as i32;
            Ok(ReportBlock {
                ssrc: rd32(body, at)?,
                fraction_lost: (lost >> 24) as u8,
                cumulative_lost: if cum & 0x0080_0000 != 0 { cum - 0x0100_0000 } else { cum },
                extended_highest_seq: rd32(body, at + 8)?,
                jitter: rd32(body, at + 12)?,
                last_sr: rd32(body, at + 16)?,
                delay_since_last_sr: rd32(body, at + 20)?,
            })
        })
        .collect()
}

fn write_blocks(blocks: &[ReportBlock], out: &mut Vec<u8>) {
    for b in blocks.iter().take(31) {
        out.extend_from_slice(&b.ssrc.to_be_bytes());
        let cum = (b.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32) & 0x00ff_ffff;
        out.extend_from_slice(&((u32::from(b.fraction_lost) << 24) | cum).to_be_bytes());
        out.extend_from_slice(&b.extended_highest_seq.to_be_bytes());
        out.extend_from_slice(&b.jitter.to_be_bytes());
        out.extend_from_slice(&b.last_sr.to_be_bytes());
        out.extend_from_slice(&b.delay_since_last_sr.to_be_bytes());
    }
}

/// Parses a compound RTCP packet (one or more RTCP packets back to back).
pub fn parse_compound(buf: &[u8]) -> Result<Vec<RtcpPacket>> {
    let mut packets = Vec::new();
    let mut rest = buf;
    if rest.is_empty() {
        return Err(RtpError::Rtcp("empty compound packet"));
    }
    while !rest.is_empty() {
        let hdr = rest.get(..4).ok_or(RtpError::Rtcp("truncated common header"))?;
        let version = hdr[0] >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version));
        }
        let padding = hdr[0] & 0x20 != 0;
        let count = hdr[0] & 0x1f;
        let pt = hdr[1];
        let len = (usize::from(u16::from_be_bytes([hdr[2], hdr[3]])) + 1) * 4;
        let whole = rest.get(..len).ok_or(RtpError::Rtcp("length field past end of datagram"))?;
        rest = &rest[len..];
        let mut body = &whole[4..];
        if padding {
            let p = usize::from(*body.last().ok_or(RtpError::Rtcp("padding bit on empty packet"))?);
            if p == 0 || p > body.len() {
                return Err(RtpError::Rtcp("bad padding count"));
            }
            body = &body[..body.len() - p];
        }
        packets.push(parse_one(pt, count, body)?);
    }
    Ok(packets)
}

fn parse_one(pt: u8, count: u8, body: &[u8]) -> Result<RtcpPacket> {
    let n = usize::from(count);
    Ok(match pt {
        PT_SR => {
            if body.len() < 24 + 24 * n {
                return Err(RtpError::Rtcp("SR shorter than its report count"));
            }
            RtcpPacket::SenderReport(SenderReport {
                ssrc: rd32(body, 0)?,
                ntp_time: NtpTimestamp((u64::from(rd32(body, 4)?) << 32) | u64::from(rd32(body, 8)?)),
                rtp_time: rd32(body, 12)?,
                packet_count: rd32(body, 16)?,
                octet_count: rd32(body, 20)?,
                reports: parse_blocks(&body[24..], n)?,
            })
        }
        PT_RR => {
            if body.len() < 4 + 24 * n {
                return Err(RtpError::Rtcp("RR shorter than its report count"));
            }
            RtcpPacket::ReceiverReport(ReceiverReport { ssrc: rd32(body, 0)?, reports: parse_blocks(&body[4..], n)? })
        }
        PT_SDES => {
            let mut chunks = Vec::with_capacity(n);
            let mut pos = 0;
            for _ in 0..n {
                let ssrc = rd32(body, pos)?;
                pos += 4;
                let mut items = Vec::new();
                loop {
                    let &ty = body.get(pos).ok_or(RtpError::Rtcp("SDES chunk without end item"))?;
                    if ty == 0 {
                        pos += 1;
                        break;
                    }
                    let len = usize::from(*body.get(pos + 1).ok_or(RtpError::Rtcp("SDES item truncated"))?);
                    let v = body.get(pos + 2..pos + 2 + len).ok_or(RtpError::Rtcp("SDES item past end"))?;
                    items.push((ty, v.to_vec()));
                    pos += 2 + len;
                }
                pos = pos.div_ceil(4) * 4; // chunks are 32-bit aligned
                chunks.push(SdesChunk { ssrc, items });
            }
            RtcpPacket::SourceDescription(chunks)
        }
        PT_BYE => {
            let sources = (0..n).map(|i| rd32(body, 4 * i)).collect::<Result<Vec<_>>>()?;
            let reason = match body.get(4 * n) {
                Some(&len) => Some(
                    body.get(4 * n + 1..4 * n + 1 + usize::from(len))
                        .ok_or(RtpError::Rtcp("BYE reason past end"))?
                        .to_vec(),
                ),
                None => None,
            };
            RtcpPacket::Bye(Bye { sources, reason })
        }
        // A PLI has no FCI (RFC 4585 §6.3.1); one with extra bytes is kept raw.
        PT_PSFB if count == FMT_PLI && body.len() == 8 => {
            RtcpPacket::Pli(Pli { sender_ssrc: rd32(body, 0)?, media_ssrc: rd32(body, 4)? })
        }
        _ => RtcpPacket::Other { packet_type: pt, count, body: body.to_vec() },
    })
}

impl RtcpPacket {
    /// Appends this packet (common header included, padded to 32 bits) to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0x80, 0, 0, 0]);
        let mut padded = false;
        let (pt, count) = match self {
            RtcpPacket::SenderReport(sr) => {
                out.extend_from_slice(&sr.ssrc.to_be_bytes());
                out.extend_from_slice(&sr.ntp_time.0.to_be_bytes());
                out.extend_from_slice(&sr.rtp_time.to_be_bytes());
                out.extend_from_slice(&sr.packet_count.to_be_bytes());
                out.extend_from_slice(&sr.octet_count.to_be_bytes());
                write_blocks(&sr.reports, out);
                (PT_SR, sr.reports.len().min(31))
            }
            RtcpPacket::ReceiverReport(rr) => {
                out.extend_from_slice(&rr.ssrc.to_be_bytes());
                write_blocks(&rr.reports, out);
                (PT_RR, rr.reports.len().min(31))
            }
            RtcpPacket::SourceDescription(chunks) => {
                for c in chunks.iter().take(31) {
                    out.extend_from_slice(&c.ssrc.to_be_bytes());
                    for (ty, v) in c.items.iter().filter(|(t, _)| *t != 0) {
                        let v = &v[..v.len().min(255)];
                        out.push(*ty);
                        out.push(v.len() as u8);
                        out.extend_from_slice(v);
                    }
                    // end item plus padding to the next 32-bit boundary
                    out.push(0);
                    while (out.len() - start) % 4 != 0 {
                        out.push(0);
                    }
                }
                (PT_SDES, chunks.len().min(31))
            }
            RtcpPacket::Bye(bye) => {
                for s in bye.sources.iter().take(31) {
                    out.extend_from_slice(&s.to_be_bytes());
                }
                if let Some(r) = &bye.reason {
                    let r = &r[..r.len().min(255)];
                    out.push(r.len() as u8);
                    out.extend_from_slice(r);
                }
                (PT_BYE, bye.sources.len().min(31))
            }
            RtcpPacket::Pli(pli) => {
                out.extend_from_slice(&pli.sender_ssrc.to_be_bytes());
                out.extend_from_slice(&pli.media_ssrc.to_be_bytes());
                (PT_PSFB, usize::from(FMT_PLI))
            }
            RtcpPacket::Other { packet_type, count, body } => {
                out.extend_from_slice(body);
                // A raw body is padded with RTCP padding (the P bit, RFC 3550 §6.4.1) rather than
                // zeros, so the peer (and a re-parse) sees exactly these bytes: zero bytes would
                // turn, say, a 6-byte PSFB body into a PLI.
                let pad = (4 - (out.len() - start) % 4) % 4;
                if pad > 0 {
                    out.resize(out.len() + pad - 1, 0);
                    out.push(pad as u8);
                    padded = true;
                }
                (*packet_type, usize::from(*count & 0x1f))
            }
        };
        while (out.len() - start) % 4 != 0 {
            out.push(0);
        }
        let words = ((out.len() - start) / 4 - 1).min(usize::from(u16::MAX)) as u16;
        out[start] = 0x80 | if padded { 0x20 } else { 0 } | count as u8;
        out[start + 1] = pt;
        out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
    }
}

/// Serialises a compound packet (RFC 3550 wants SR or RR first, then SDES with CNAME).
pub fn encode_compound(packets: &[RtcpPacket]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in packets {
        p.write(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sr_sdes_known_bytes_and_round_trip() {
        let sr = RtcpPacket::SenderReport(SenderReport {
            ssrc: 0x11223344,
            ntp_time: NtpTimestamp(0x0102030405060708),
            rtp_time: 90000,
            packet_count: 10,
            octet_count: 1000,
            reports: vec![],
        });
        let sdes = RtcpPacket::SourceDescription(vec![SdesChunk::cname(0x11223344, "box@room")]);
        let bytes = encode_compound(&[sr.clone(), sdes.clone()]);
        assert_eq!(&bytes[..8], &[0x80, 200, 0, 6, 0x11, 0x22, 0x33, 0x44]);
        assert_eq!(
            &bytes[28..],
            &[0x81, 202, 0, 4, 0x11, 0x22, 0x33, 0x44, 1, 8, b'b', b'o', b'x', b'@', b'r', b'o', b'o', b'm', 0, 0,]
        );
        let parsed = parse_compound(&bytes).unwrap();
        assert_eq!(parsed, vec![sr, sdes]);
    }

    #[test]
    fn rr_and_bye_round_trip() {
        let rr = RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: 5,
            reports: vec![ReportBlock {
                ssrc: 6,
                fraction_lost: 12,
                cumulative_lost: -3,
                extended_highest_seq: 0x1_0005,
                jitter: 42,
                last_sr: 7,
                delay_since_last_sr: 65536,
            }],
        });
        let bye = RtcpPacket::Bye(Bye { sources: vec![6, 7], reason: Some(b"done".to_vec()) });
        let bytes = encode_compound(&[rr.clone(), bye.clone()]);
        assert_eq!(bytes.len(), 32 + 20);
        assert_eq!(parse_compound(&bytes).unwrap(), vec![rr, bye]);
    }

    #[test]
    fn pli_known_bytes_and_round_trip() {
        let pli = RtcpPacket::Pli(Pli { sender_ssrc: 0x0102_0304, media_ssrc: 0xa0b0_c0d0 });
        let rr = RtcpPacket::ReceiverReport(ReceiverReport { ssrc: 0x0102_0304, reports: vec![] });
        let bytes = encode_compound(&[rr.clone(), pli.clone()]);
        assert_eq!(&bytes[8..], &[0x81, 206, 0, 2, 1, 2, 3, 4, 0xa0, 0xb0, 0xc0, 0xd0]);
        assert_eq!(parse_compound(&bytes).unwrap(), vec![rr, pli]);
        // Other PSFB messages (FIR, FMT 4) and a PLI with an FCI stay raw.
        for raw in [
            [0x84u8, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2].as_slice(),
            &[0x81, 206, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 9, 9, 9, 9],
        ] {
            assert!(matches!(parse_compound(raw).unwrap()[0], RtcpPacket::Other { packet_type: PT_PSFB, .. }));
        }
        assert!(parse_compound(&[0x81, 206, 0, 1, 0, 0, 0, 1])
            .unwrap()
            .iter()
            .all(|p| !matches!(p, RtcpPacket::Pli(_))));
    }

    #[test]
    fn raw_body_keeps_its_length_through_rtcp_padding() {
        // A PLI-typed packet whose padding leaves 6 body bytes is not a PLI; re-encoded, it must
        // not become one (zero fill did that; found by the rtp_rtcp fuzz target).
        let raw = [0xa1u8, 206, 0, 2, 0xa0, 0xcf, 0, 1, 0, 0x25, 0, 2];
        let parsed = parse_compound(&raw).unwrap();
        let other = RtcpPacket::Other { packet_type: PT_PSFB, count: 1, body: vec![0xa0, 0xcf, 0, 1, 0, 0x25] };
        assert_eq!(parsed, vec![other.clone()]);
        assert_eq!(encode_compound(&parsed), raw);
        assert_eq!(parse_compound(&encode_compound(&[other.clone()])).unwrap(), vec![other]);
        // An aligned raw body goes out without the P bit.
        let aligned = RtcpPacket::Other { packet_type: 204, count: 3, body: vec![1, 2, 3, 4] };
        assert_eq!(encode_compound(&[aligned]), [0x83, 204, 0, 1, 1, 2, 3, 4]);
    }

    #[test]
    fn rejects_bad() {
        assert!(parse_compound(&[]).is_err());
        assert!(parse_compound(&[0x80, 200, 0, 6, 0, 0]).is_err());
        assert!(parse_compound(&[0x40, 200, 0, 0]).is_err());
        assert!(parse_compound(&[0x81, 200, 0, 0]).is_err()); // SR with count 1, no body
        assert!(parse_compound(&[0x81, 202, 0, 1, 0, 0, 0, 1]).is_err()); // SDES without end
        assert!(parse_compound(&[0xa0, 203, 0, 0]).is_err()); // padding bit, no bytes
    }

    #[test]
    fn reception_stats_loss_and_jitter() {
        let t0 = Instant::now();
        let mut st = ReceptionStats::new(9, 90_000);
        // 10 packets, 40 ms apart on both clocks, seq 65530.. with 2 lost (65533, 1).
        for i in 0u16..10 {
            let seq = 65530u16.wrapping_add(i);
            if seq == 65533 || seq == 1 {
                continue;
            }
            st.on_packet(seq, u32::from(i) * 3600, t0 + Duration::from_millis(40 * u64::from(i)));
        }
        assert_eq!(st.expected_and_received(), (10, 8));
        assert!(st.jitter() <= 1, "no jitter on a perfectly paced stream: {}", st.jitter());
        let sr = SenderReport { ssrc: 9, ntp_time: NtpTimestamp(0x0001_2345_6789_0000), ..Default::default() };
        st.on_sender_report(&sr, t0);
        let rb = st.report_block(t0 + Duration::from_millis(500));
        assert_eq!(rb.fraction_lost, (2 * 256 / 10) as u8);
        assert_eq!(rb.cumulative_lost, 2);
        assert_eq!(rb.extended_highest_seq, 0x2_0003);
        assert_eq!(rb.last_sr, 0x2345_6789);
        assert_eq!(rb.delay_since_last_sr, 32768);
        // Next interval without loss.
        st.on_packet(4, 36000, t0 + Duration::from_millis(400));
        assert_eq!(st.report_block(t0).fraction_lost, 0);
        // A late packet 20 ms off schedule raises jitter (d = 1800 ticks, /16).
        st.on_packet(5, 39600, t0 + Duration::from_millis(460));
        assert_eq!(st.jitter(), 1800 / 16);
    }

    #[test]
    fn sender_report_from_sender() {
        let mut s = RtpSender::new(77, 96, 1200, 0xfffe);
        let p = s.start_packet(5, 10);
        s.count(&[p, vec![0; 10]].concat());
        let sr = SenderReport::from_sender(&s, NtpTimestamp(1), 5);
        assert_eq!((sr.ssrc, sr.packet_count, sr.octet_count, sr.rtp_time), (77, 1, 10, 5));
    }

    #[test]
    fn ntp_time() {
        let t = UNIX_EPOCH + Duration::from_millis(1500);
        let n = NtpTimestamp::from_system_time(t);
        assert_eq!(n.0 >> 32, NTP_UNIX_OFFSET + 1);
        assert_eq!(n.0 & 0xffff_ffff, 0x8000_0000);
    }
}
