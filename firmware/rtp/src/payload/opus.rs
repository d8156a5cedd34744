//! Opus RTP payload format (RFC 7587): one Opus packet per RTP packet on the 48 kHz clock,
//! marker bit on the first packet of a talkspurt; plus reading an Opus packet's TOC to know
//! how many 48 kHz samples it holds (for timestamps and Ogg granule positions).

use crate::clock::OPUS_CLOCK_RATE;
use crate::error::{Result, RtpError};
use crate::header::RtpPacket;
use crate::packetizer::{Depacketizer, DepacketizerStats, Frame, Packetizer, RtpSender};
use crate::seq::{classify, SeqStep};

const CODEC: &str = "Opus";

/// Largest Opus packet RFC 6716 allows for one 120 ms packet (we accept anything up to this).
pub const MAX_OPUS_PACKET: usize = 1275 * 3 + 7;

/// Number of 48 kHz samples (per channel) in an Opus packet, from its TOC byte (RFC 6716 3.1).
pub fn packet_samples(packet: &[u8]) -> Result<u32> {
    let &toc = packet.first().ok_or(RtpError::InvalidFrame { codec: CODEC, reason: "empty Opus packet" })?;
    let config = toc >> 3;
    let frame_samples: u32 = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => {
            let &c = packet
                .get(1)
                .ok_or(RtpError::InvalidFrame { codec: CODEC, reason: "code 3 packet without frame count" })?;
            u32::from(c & 0x3f)
        }
    };
    let total = frame_samples * frames;
    if frames == 0 || total > 5760 {
        return Err(RtpError::InvalidFrame { codec: CODEC, reason: "frame count gives more than 120 ms or none" });
    }
    Ok(total)
}

/// Packetizes Opus packets, one per RTP packet.
#[derive(Debug, Clone)]
pub struct OpusPacketizer {
    sender: RtpSender,
    talkspurt_start: bool,
}

impl OpusPacketizer {
    /// New packetizer for stream `ssrc` with payload type `payload_type`; packets larger than
    /// `max_packet_size` are refused (Opus packets cannot be fragmented).
    pub fn new(ssrc: u32, payload_type: u8, max_packet_size: usize, first_sequence: u16) -> Self {
        Self { sender: RtpSender::new(ssrc, payload_type, max_packet_size, first_sequence), talkspurt_start: true }
    }

    /// Marks the next packet as the start of a talkspurt (after DTX silence): it gets the marker bit.
    pub fn start_talkspurt(&mut self) {
        self.talkspurt_start = true;
    }
}

impl Packetizer for OpusPacketizer {
    fn packetize(&mut self, frame: &[u8], rtp_timestamp: u32, out: &mut Vec<Vec<u8>>) -> Result<()> {
        let max_payload = self.sender.max_payload(1)?;
        if frame.is_empty() {
            return Err(RtpError::InvalidFrame { codec: CODEC, reason: "empty Opus packet" });
        }
        if frame.len() > max_payload {
            return Err(RtpError::InvalidFrame {
                codec: CODEC,
                reason: "Opus packet larger than the maximum RTP payload",
            });
        }
        let mut pkt = self.sender.start_packet(rtp_timestamp, frame.len());
        pkt.extend_from_slice(frame);
        if std::mem::take(&mut self.talkspurt_start) {
            RtpSender::set_marker(&mut pkt);
        }
        self.sender.count(&pkt);
        out.push(pkt);
        Ok(())
    }

    fn sender(&self) -> &RtpSender {
        &self.sender
    }

    fn sender_mut(&mut self) -> &mut RtpSender {
        &mut self.sender
    }

    fn clock_rate(&self) -> u32 {
        OPUS_CLOCK_RATE
    }
}

/// Extracts Opus packets from RTP packets; every packet is a frame (and a "keyframe": Opus
/// decoders conceal lost packets, so loss only counts, never blocks).
#[derive(Debug, Clone, Default)]
pub struct OpusDepacketizer {
    last_seq: Option<u16>,
    stats: DepacketizerStats,
}

impl OpusDepacketizer {
    /// New depacketizer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Depacketizer for OpusDepacketizer {
    fn depacketize(&mut self, packet: &RtpPacket<'_>) -> Result<Option<Frame>> {
        match classify(self.last_seq, packet.header.sequence_number) {
            SeqStep::Duplicate => {
                self.stats.duplicates += 1;
                return Ok(None);
            }
            SeqStep::Late => {
                self.stats.late += 1;
                return Ok(None);
            }
            SeqStep::Gap(n) => self.stats.lost_packets += u64::from(n),
            SeqStep::InOrder => {}
        }
        self.last_seq = Some(packet.header.sequence_number);
        self.stats.packets += 1;
        if packet.payload.is_empty() || packet.payload.len() > MAX_OPUS_PACKET {
            self.stats.malformed += 1;
            return Err(RtpError::MalformedPayload { codec: CODEC, reason: "empty or oversized Opus payload" });
        }
        if packet_samples(packet.payload).is_err() {
            self.stats.malformed += 1;
            return Err(RtpError::MalformedPayload { codec: CODEC, reason: "invalid Opus TOC" });
        }
        self.stats.frames += 1;
        Ok(Some(Frame { timestamp: packet.header.timestamp, data: packet.payload.to_vec(), keyframe: true }))
    }

    fn stats(&self) -> &DepacketizerStats {
        &self.stats
    }

    fn waiting_for_keyframe(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::parse_rtp;

    #[test]
    fn toc_samples() {
        assert_eq!(packet_samples(&[0xfc]).unwrap(), 960); // config 31 CELT FB 20 ms, code 0
        assert_eq!(packet_samples(&[0x78]).unwrap(), 960); // config 15 hybrid FB 20 ms
        assert_eq!(packet_samples(&[0x09]).unwrap(), 1920); // config 1 SILK 20 ms, code 1 (2 frames)
        assert_eq!(packet_samples(&[0x1b, 0x02]).unwrap(), 5760); // code 3, 2 x 60 ms
        assert!(packet_samples(&[0x1b, 0x03]).is_err()); // 3 x 60 ms > 120 ms
        assert!(packet_samples(&[0x03]).is_err());
        assert!(packet_samples(&[]).is_err());
    }

    #[test]
    fn packetize_round_trip() {
        let mut p = OpusPacketizer::new(0xabcd, 111, 1200, 0xfffe);
        p.sender_mut().next_sequence = 65535;
        let mut out = Vec::new();
        p.packetize(&[0xfc, 1, 2, 3], 960, &mut out).unwrap();
        p.packetize(&[0xfc, 4], 1920, &mut out).unwrap();
        assert_eq!(out[0], vec![0x80, 0x80 | 111, 0xff, 0xff, 0, 0, 3, 0xc0, 0, 0, 0xab, 0xcd, 0xfc, 1, 2, 3]);
        assert_eq!(out[1][1], 111);
        assert_eq!(p.sender().packet_count, 2);
        assert_eq!(p.sender().octet_count, 6);
        let mut d = OpusDepacketizer::new();
        let f = d.depacketize(&parse_rtp(&out[1]).unwrap()).unwrap().unwrap();
        assert_eq!((f.timestamp, f.data.as_slice()), (1920, &[0xfc, 4][..]));
        assert!(d.depacketize(&parse_rtp(&out[0]).unwrap()).unwrap().is_none()); // late
        assert_eq!(d.stats().late, 1);
        assert!(p.packetize(&[0xfc; 1189], 0, &mut out).is_err());
    }
}
