//! AV1 RTP payload format (AOM "RTP Payload Format For AV1", v1.0): aggregation header
//! (Z/Y/W/N bits), OBU elements with leb128 lengths, OBU fragmentation across packets,
//! temporal delimiters and tile lists dropped on send, the N bit on the first packet of a
//! coded video sequence. The depacketizer rebuilds temporal units in low-overhead format
//! (temporal delimiter first, every OBU with obu_has_size_field=1).

pub mod obu;

use crate::clock::VIDEO_CLOCK_RATE;
use crate::error::{Result, RtpError};
use crate::header::RtpPacket;
use crate::packetizer::{Depacketizer, DepacketizerStats, Frame, Packetizer, RtpSender};
use crate::reassembly::{Admit, FrameTracker, MAX_FRAME_SIZE};
use obu::{leb128_len, parse_obu, parse_temporal_unit, read_leb128, starts_coded_video_sequence, write_leb128};

const CODEC: &str = "AV1";

/// Aggregation header Z bit: the first OBU element continues a fragment from the previous packet.
pub const AGG_Z: u8 = 0x80;
/// Aggregation header Y bit: the last OBU element continues in the next packet.
pub const AGG_Y: u8 = 0x40;
/// Aggregation header N bit: first packet of a coded video sequence.
pub const AGG_N: u8 = 0x08;

/// Packetizes AV1 temporal units (low-overhead format) into RTP packets.
#[derive(Debug, Clone)]
pub struct Av1Packetizer {
    sender: RtpSender,
}

impl Av1Packetizer {
    /// New packetizer for stream `ssrc` with payload type `payload_type`; no packet will be
    /// larger than `max_packet_size` bytes (use [`crate::AMT_MAX_RTP_PACKET_SIZE`] for AMT).
    pub fn new(ssrc: u32, payload_type: u8, max_packet_size: usize, first_sequence: u16) -> Self {
        Self { sender: RtpSender::new(ssrc, payload_type, max_packet_size, first_sequence) }
    }
}

/// One packet being filled: its OBU element pieces and Z/Y flags.
struct PacketPlan<'a> {
    pieces: Vec<&'a [u8]>,
    z: bool,
}

impl PacketPlan<'_> {
    /// Bytes the pieces take if every one carries a length prefix.
    fn prefixed_size(&self) -> usize {
        self.pieces.iter().map(|p| leb128_len(p.len() as u64) + p.len()).sum()
    }
}

impl Packetizer for Av1Packetizer {
    fn packetize(&mut self, frame: &[u8], rtp_timestamp: u32, out: &mut Vec<Vec<u8>>) -> Result<()> {
        // aggregation header + one byte of OBU element
        let max_payload = self.sender.max_payload(2)?;
        let obus = parse_temporal_unit(frame).map_err(|_| RtpError::InvalidFrame {
            codec: CODEC,
            reason: "not a temporal unit in low-overhead OBU format",
        })?;
        let new_cvs = starts_coded_video_sequence(&obus);
        // OBU elements: every OBU but temporal delimiters, tile lists and padding, without size field.
        let elements: Vec<Vec<u8>> = obus
            .iter()
            .filter(|o| !matches!(o.obu_type, obu::OBU_TEMPORAL_DELIMITER | obu::OBU_TILE_LIST | obu::OBU_PADDING))
            .map(|o| {
                let mut e = Vec::with_capacity(o.unsized_len());
                o.write_unsized(&mut e);
                e
            })
            .collect();
        if elements.is_empty() {
            return Err(RtpError::InvalidFrame { codec: CODEC, reason: "temporal unit without OBUs to send" });
        }
        let room = max_payload - 1; // after the aggregation header
        let mut plans: Vec<(PacketPlan<'_>, bool)> = Vec::new(); // (plan, y)
        let mut cur = PacketPlan { pieces: Vec::new(), z: false };
        for element in &elements {
            let mut rest: &[u8] = element;
            while !rest.is_empty() {
                let used = cur.prefixed_size();
                let n = cur.pieces.len() + 1;
                let avail = room.saturating_sub(used);
                // With at most 3 elements W=count and the last element has no length field.
                let fits =
                    if n <= 3 { rest.len() <= avail } else { rest.len() + leb128_len(rest.len() as u64) <= avail };
                if fits {
                    cur.pieces.push(rest);
                    break;
                }
                let take = if n <= 3 { avail } else { avail.saturating_sub(leb128_len(avail as u64)) };
                if take == 0 {
                    if cur.pieces.is_empty() {
                        return Err(RtpError::PacketSizeTooSmall { max: self.sender.max_packet_size, min: 14 });
                    }
                    plans.push((std::mem::replace(&mut cur, PacketPlan { pieces: Vec::new(), z: false }), false));
                    continue;
                }
                cur.pieces.push(&rest[..take]);
                rest = &rest[take..];
                plans.push((std::mem::replace(&mut cur, PacketPlan { pieces: Vec::new(), z: true }), true));
            }
        }
        if !cur.pieces.is_empty() {
            plans.push((cur, false));
        }
        let count = plans.len();
        for (i, (plan, y)) in plans.into_iter().enumerate() {
            let w = if plan.pieces.len() <= 3 { plan.pieces.len() as u8 } else { 0 };
            let mut agg = (w << 4) & 0x30;
            if plan.z {
                agg |= AGG_Z;
            }
            if y {
                agg |= AGG_Y;
            }
            if i == 0 && new_cvs {
                agg |= AGG_N;
            }
            let mut pkt = self.sender.start_packet(rtp_timestamp, max_payload);
            pkt.push(agg);
            let last = plan.pieces.len() - 1;
            for (j, piece) in plan.pieces.iter().enumerate() {
                if w == 0 || j != last {
                    write_leb128(piece.len() as u64, &mut pkt);
                }
                pkt.extend_from_slice(piece);
            }
            if i + 1 == count {
                RtpSender::set_marker(&mut pkt);
            }
            self.sender.count(&pkt);
            out.push(pkt);
        }
        Ok(())
    }

    fn sender(&self) -> &RtpSender {
        &self.sender
    }

    fn sender_mut(&mut self) -> &mut RtpSender {
        &mut self.sender
    }

    fn clock_rate(&self) -> u32 {
        VIDEO_CLOCK_RATE
    }
}

/// Reassembles AV1 temporal units (low-overhead format) from RTP packets.
#[derive(Debug, Clone)]
pub struct Av1Depacketizer {
    tracker: FrameTracker,
    temporal_unit: Vec<u8>,
    fragment: Option<Vec<u8>>,
    n_bit: bool,
}

impl Default for Av1Depacketizer {
    fn default() -> Self {
        Self::new()
    }
}

fn malformed(reason: &'static str) -> RtpError {
    RtpError::MalformedPayload { codec: CODEC, reason }
}

impl Av1Depacketizer {
    /// New depacketizer; it outputs nothing until the first key frame with a sequence header.
    pub fn new() -> Self {
        Self { tracker: FrameTracker::new(), temporal_unit: Vec::new(), fragment: None, n_bit: false }
    }

    /// Appends one complete OBU element as a sized OBU.
    fn add_element(&mut self, element: &[u8]) -> Result<()> {
        let (obu, _) = parse_obu(element)?;
        if matches!(obu.obu_type, obu::OBU_TEMPORAL_DELIMITER | obu::OBU_TILE_LIST) {
            return Ok(()); // we write our own temporal delimiter
        }
        if self.temporal_unit.len() + element.len() + 10 > MAX_FRAME_SIZE {
            return Err(malformed("temporal unit larger than the frame size limit"));
        }
        if self.temporal_unit.is_empty() {
            self.temporal_unit.extend_from_slice(&obu::TEMPORAL_DELIMITER);
        }
        obu.write_sized(&mut self.temporal_unit);
        Ok(())
    }

    fn parse_payload(&mut self, payload: &[u8]) -> Result<()> {
        let (&agg, mut rest) = payload.split_first().ok_or_else(|| malformed("empty payload"))?;
        let z = agg & AGG_Z != 0;
        let y = agg & AGG_Y != 0;
        let w = usize::from((agg >> 4) & 0x03);
        if agg & AGG_N != 0 {
            self.n_bit = true;
        }
        if !z && self.fragment.take().is_some() {
            return Err(malformed("OBU fragment not continued (Z=0 after Y=1)"));
        }
        let mut index = 0;
        while !rest.is_empty() {
            index += 1;
            let element = if w != 0 && index == w {
                std::mem::take(&mut rest)
            } else {
                let (len, n) = read_leb128(rest).ok_or_else(|| malformed("bad OBU element length"))?;
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                let el = rest
                    .get(n..)
                    .and_then(|r| r.get(..len))
                    .ok_or_else(|| malformed("OBU element length past end of packet"))?;
                rest = &rest[n + len..];
                el
            };
            let is_first = index == 1;
            let is_last = rest.is_empty();
            if w != 0 && index > w {
                return Err(malformed("more OBU elements than the W field says"));
            }
            if is_first && z {
                let frag = self.fragment.as_mut().ok_or_else(|| malformed("OBU continuation without its start"))?;
                if frag.len() + element.len() > MAX_FRAME_SIZE {
                    self.fragment = None;
                    return Err(malformed("fragmented OBU larger than the frame size limit"));
                }
                frag.extend_from_slice(element);
                if is_last && y {
                    return Ok(());
                }
                let whole = self.fragment.take().unwrap_or_default();
                self.add_element(&whole)?;
            } else if is_last && y {
                self.fragment = Some(element.to_vec());
            } else {
                if element.is_empty() {
                    return Err(malformed("empty OBU element"));
                }
                self.add_element(element)?;
            }
        }
        if index == 0 {
            return Err(malformed("packet without OBU elements"));
        }
        Ok(())
    }
}

impl Depacketizer for Av1Depacketizer {
    fn depacketize(&mut self, packet: &RtpPacket<'_>) -> Result<Option<Frame>> {
        // The N bit marks the first packet of a coded video sequence (Z=0: nothing before it).
        let starts = || packet.payload.first().is_some_and(|agg| agg & (AGG_N | AGG_Z) == AGG_N);
        let Admit::Process { new_frame } = self.tracker.admit(&packet.header, starts) else {
            return Ok(None);
        };
        if new_frame {
            self.temporal_unit.clear();
            self.fragment = None;
            self.n_bit = false;
        }
        let parsed = self.parse_payload(packet.payload);
        if parsed.is_err() {
            self.tracker.stats.malformed += 1;
            self.tracker.damage();
        }
        let frame = if packet.header.marker {
            if self.fragment.take().is_some() {
                self.tracker.damage(); // last OBU never completed
            }
            let data = std::mem::take(&mut self.temporal_unit);
            let keyframe = std::mem::take(&mut self.n_bit)
                || parse_temporal_unit(&data).is_ok_and(|obus| starts_coded_video_sequence(&obus));
            self.tracker.complete(data, keyframe)
        } else {
            None
        };
        parsed.map(|()| frame)
    }

    fn stats(&self) -> &DepacketizerStats {
        &self.tracker.stats
    }

    fn waiting_for_keyframe(&self) -> bool {
        self.tracker.waiting_for_keyframe
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::parse_rtp;

    // TD, sequence header (2 bytes payload), frame OBU (key frame, 5 bytes payload)
    const KEY_TU: [u8; 13] = [0x12, 0x00, 0x0a, 0x02, 0x00, 0x00, 0x32, 0x05, 0x10, 1, 2, 3, 4];

    fn packetize(tu: &[u8], max: usize) -> Vec<Vec<u8>> {
        let mut p = Av1Packetizer::new(7, 96, max, 0xfffe);
        p.sender_mut().next_sequence = 1;
        let mut out = Vec::new();
        p.packetize(tu, 3000, &mut out).unwrap();
        out
    }

    #[test]
    fn single_packet_known_bytes() {
        let pkts = packetize(&KEY_TU, 1200);
        assert_eq!(pkts.len(), 1);
        // agg: Z=0 Y=0 W=2 N=1 -> 0x28; element 1 with length 3: 08 00 00; element 2 no length.
        assert_eq!(&pkts[0][12..], &[0x28, 0x03, 0x08, 0x00, 0x00, 0x30, 0x10, 1, 2, 3, 4]);
        assert_eq!(pkts[0][1], 0x80 | 96);
        let mut d = Av1Depacketizer::new();
        let f = d.depacketize(&parse_rtp(&pkts[0]).unwrap()).unwrap().unwrap();
        assert_eq!(f.data, KEY_TU);
        assert!(f.keyframe);
    }

    #[test]
    fn fragments_across_packets() {
        // header 12 + agg 1 + 3 bytes: forces fragmentation of every OBU.
        let pkts = packetize(&KEY_TU, 16);
        let payloads: Vec<&[u8]> = pkts.iter().map(|p| &p[12..]).collect();
        assert_eq!(
            payloads,
            vec![
                &[0x18, 0x08, 0x00, 0x00][..], // W=1 N=1: sequence header whole
                &[0x50, 0x30, 0x10, 1][..],    // W=1 Y=1: frame OBU starts
                &[0x90, 2, 3, 4][..],          // W=1 Z=1: frame OBU ends
            ]
        );
        assert!(pkts[2][1] & 0x80 != 0 && pkts[1][1] & 0x80 == 0);
        let mut d = Av1Depacketizer::new();
        let mut frames = Vec::new();
        for p in &pkts {
            frames.extend(d.depacketize(&parse_rtp(p).unwrap()).unwrap());
        }
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].data, KEY_TU);
    }

    #[test]
    fn w_zero_with_many_elements() {
        // TD + 5 metadata OBUs of 1 byte each: 5 elements -> W=0, all prefixed.
        let mut tu = vec![0x12, 0x00];
        for i in 0..5u8 {
            tu.extend_from_slice(&[0x2a, 0x01, i]);
        }
        let pkts = packetize(&tu, 1200);
        assert_eq!(pkts.len(), 1);
        assert_eq!(pkts[0][12], 0x00);
        assert_eq!(&pkts[0][13..16], &[0x02, 0x28, 0x00]);
        let mut d = Av1Depacketizer::new();
        // not a key frame: nothing out at start, but the payload parses
        assert!(d.depacketize(&parse_rtp(&pkts[0]).unwrap()).unwrap().is_none());
        assert_eq!(d.stats().malformed, 0);
        assert_eq!(d.stats().dropped_frames, 1);
    }

    #[test]
    fn rejects_bad_payloads() {
        let mut d = Av1Depacketizer::new();
        for (seq, payload) in
            [&[][..], &[0x10][..], &[0x80, 0x30, 1][..], &[0x00, 0x05, 0x30][..], &[0x00, 0xff][..], &[0x10, 0xb0]]
                .into_iter()
                .enumerate()
        {
            let mut pkt = vec![0x80, 0xe0, 0, seq as u8, 0, 0, 0, 1, 0, 0, 0, 1];
            pkt.extend_from_slice(payload);
            assert!(d.depacketize(&parse_rtp(&pkt).unwrap()).is_err(), "{payload:?}");
        }
    }
}
