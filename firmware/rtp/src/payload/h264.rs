//! H.264 RTP payload format, RFC 6184 packetization-mode 1 (non-interleaved): the packetizer
//! turns an Annex B access unit into single-NAL packets, STAP-A aggregates (SPS/PPS and other
//! small NALs) and FU-A fragments that fit the configured packet size; the depacketizer
//! reassembles access units (4-byte start codes) and recovers from loss at the next IDR.

use crate::annexb::{nal_type, nal_units, START_CODE};
use crate::clock::VIDEO_CLOCK_RATE;
use crate::error::{Result, RtpError};
use crate::header::RtpPacket;
use crate::packetizer::{Depacketizer, DepacketizerStats, Frame, Packetizer, RtpSender};
use crate::reassembly::{Admit, FrameTracker, MAX_FRAME_SIZE};

/// NAL unit type of a STAP-A aggregation packet.
pub const NAL_STAP_A: u8 = 24;
/// NAL unit type of an FU-A fragmentation unit.
pub const NAL_FU_A: u8 = 28;
/// NAL unit type of an IDR slice.
pub const NAL_IDR: u8 = 5;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;

const CODEC: &str = "H.264";

/// Packetizes H.264 Annex B access units (RFC 6184, packetization-mode=1).
#[derive(Debug, Clone)]
pub struct H264Packetizer {
    sender: RtpSender,
}

impl H264Packetizer {
    /// New packetizer for stream `ssrc` with payload type `payload_type`; no packet will be
    /// larger than `max_packet_size` bytes (use [`crate::AMT_MAX_RTP_PACKET_SIZE`] for AMT).
    pub fn new(ssrc: u32, payload_type: u8, max_packet_size: usize, first_sequence: u16) -> Self {
        Self { sender: RtpSender::new(ssrc, payload_type, max_packet_size, first_sequence) }
    }

    fn emit(&mut self, ts: u32, payload_parts: &[&[u8]], out: &mut Vec<Vec<u8>>) {
        let len = payload_parts.iter().map(|p| p.len()).sum();
        let mut pkt = self.sender.start_packet(ts, len);
        for p in payload_parts {
            pkt.extend_from_slice(p);
        }
        self.sender.count(&pkt);
        out.push(pkt);
    }

    fn flush_group(&mut self, ts: u32, group: &mut Vec<&[u8]>, out: &mut Vec<Vec<u8>>) {
        match group.len() {
            0 => {}
            1 => self.emit(ts, &[group[0]], out),
            _ => {
                let f_nri = group.iter().fold(0u8, |acc, n| {
                    let b = n.first().copied().unwrap_or(0);
                    (acc & 0x80 | b & 0x80) | (acc & 0x60).max(b & 0x60)
                });
                let mut payload = Vec::with_capacity(1 + group.iter().map(|n| n.len() + 2).sum::<usize>());
                payload.push(f_nri | NAL_STAP_A);
                for n in group.iter() {
                    payload.extend_from_slice(&(n.len() as u16).to_be_bytes());
                    payload.extend_from_slice(n);
                }
                self.emit(ts, &[&payload], out);
            }
        }
        group.clear();
    }
}

impl Packetizer for H264Packetizer {
    fn packetize(&mut self, frame: &[u8], rtp_timestamp: u32, out: &mut Vec<Vec<u8>>) -> Result<()> {
        // FU-A needs 2 bytes of headers and at least one byte of NAL payload.
        let max_payload = self.sender.max_payload(3)?.min(usize::from(u16::MAX));
        let first = out.len();
        let mut group: Vec<&[u8]> = Vec::new();
        let mut group_size = 1; // STAP-A NAL header
        for nal in nal_units(frame) {
            if nal.len() > max_payload {
                self.flush_group(rtp_timestamp, &mut group, out);
                group_size = 1;
                let indicator = (nal[0] & 0xe0) | NAL_FU_A;
                let ty = nal[0] & 0x1f;
                let body = &nal[1..];
                let chunk = max_payload - 2;
                let count = body.len().div_ceil(chunk);
                for (i, part) in body.chunks(chunk).enumerate() {
                    let mut fu_header = ty;
                    if i == 0 {
                        fu_header |= 0x80;
                    }
                    if i + 1 == count {
                        fu_header |= 0x40;
                    }
                    self.emit(rtp_timestamp, &[&[indicator, fu_header], part], out);
                }
                continue;
            }
            if !group.is_empty() && group_size + 2 + nal.len() > max_payload {
                self.flush_group(rtp_timestamp, &mut group, out);
                group_size = 1;
            }
            group.push(nal);
            group_size += 2 + nal.len();
        }
        self.flush_group(rtp_timestamp, &mut group, out);
        match out[first..].last_mut() {
            Some(last) => {
                RtpSender::set_marker(last);
                Ok(())
            }
            None => Err(RtpError::InvalidFrame { codec: CODEC, reason: "no NAL unit (missing Annex B start code?)" }),
        }
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

/// Reassembles H.264 access units from RFC 6184 packetization-mode 1 packets (single NAL,
/// STAP-A, FU-A). Output frames are Annex B with 4-byte start codes.
#[derive(Debug, Clone)]
pub struct H264Depacketizer {
    tracker: FrameTracker,
    access_unit: Vec<u8>,
    fu: Option<Vec<u8>>,
    has_idr: bool,
    out_of_band_parameter_sets: bool,
}

impl Default for H264Depacketizer {
    fn default() -> Self {
        Self::new()
    }
}

impl H264Depacketizer {
    /// New depacketizer; it outputs nothing until the first IDR access unit.
    pub fn new() -> Self {
        Self {
            tracker: FrameTracker::new(),
            access_unit: Vec::new(),
            fu: None,
            has_idr: false,
            out_of_band_parameter_sets: false,
        }
    }

    /// Tells the depacketizer that the sender keeps SPS/PPS out of band (SDP
    /// `sprop-parameter-sets`), so a keyframe access unit may begin with its IDR slice. By
    /// default (in-band parameter sets, as roomcast and x264 streams have) the first frame
    /// after a loss or at the start is only trusted when it visibly begins with an SPS or AUD.
    pub fn with_out_of_band_parameter_sets(mut self, out_of_band: bool) -> Self {
        self.out_of_band_parameter_sets = out_of_band;
        self
    }

    fn add_nal(&mut self, nal: &[u8]) -> Result<()> {
        let ty = nal_type(nal);
        if ty == 0 || ty >= 24 {
            return Err(malformed("aggregated NAL unit of reserved or nested type"));
        }
        if self.access_unit.len() + nal.len() + 4 > MAX_FRAME_SIZE {
            return Err(malformed("access unit larger than the frame size limit"));
        }
        self.has_idr |= ty == NAL_IDR;
        self.access_unit.extend_from_slice(&START_CODE);
        self.access_unit.extend_from_slice(nal);
        Ok(())
    }

    fn parse_payload(&mut self, payload: &[u8]) -> Result<()> {
        let Some(&first) = payload.first() else {
            return Err(malformed("empty payload"));
        };
        match first & 0x1f {
            1..=23 => {
                self.fu = None;
                self.add_nal(payload)
            }
            NAL_STAP_A => {
                self.fu = None;
                let mut rest = &payload[1..];
                if rest.is_empty() {
                    return Err(malformed("STAP-A without NAL units"));
                }
                while !rest.is_empty() {
                    let len_bytes = rest.get(..2).ok_or_else(|| malformed("STAP-A truncated size field"))?;
                    let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
                    let nal = rest.get(2..2 + len).ok_or_else(|| malformed("STAP-A NAL size past end"))?;
                    if nal.is_empty() {
                        return Err(malformed("STAP-A NAL of size 0"));
                    }
                    self.add_nal(nal)?;
                    rest = &rest[2 + len..];
                }
                Ok(())
            }
            NAL_FU_A => {
                let &fu_header = payload.get(1).ok_or_else(|| malformed("FU-A without FU header"))?;
                let body = &payload[2..];
                let start = fu_header & 0x80 != 0;
                let end = fu_header & 0x40 != 0;
                if start && end {
                    return Err(malformed("FU-A with both start and end bits"));
                }
                if start {
                    let mut nal = Vec::with_capacity(body.len() * 4 + 1);
                    nal.push((first & 0xe0) | (fu_header & 0x1f));
                    nal.extend_from_slice(body);
                    self.fu = Some(nal);
                } else {
                    let fu = self.fu.as_mut().ok_or_else(|| malformed("FU-A continuation without start"))?;
                    if fu.len() + body.len() > MAX_FRAME_SIZE {
                        self.fu = None;
                        return Err(malformed("fragmented NAL larger than the frame size limit"));
                    }
                    fu.extend_from_slice(body);
                }
                if end {
                    if let Some(nal) = self.fu.take() {
                        self.add_nal(&nal)?;
                    }
                }
                Ok(())
            }
            _ => Err(malformed("packet type not allowed in packetization-mode 1 (STAP-B/MTAP/FU-B/reserved)")),
        }
    }
}

/// True when a payload visibly begins an access unit: its first NAL unit is an access unit
/// delimiter or a sequence parameter set (which can only come before the first slice). With
/// `idr_starts` also an IDR slice with first_mb_in_slice = 0 counts (for senders that keep
/// parameter sets out of band, where a keyframe access unit begins with its IDR slice).
pub fn starts_access_unit(payload: &[u8], idr_starts: bool) -> bool {
    // (type, first byte after the NAL header if any) of the first NAL unit in the payload
    let first_nal = match payload.first().map(|b| b & 0x1f) {
        Some(NAL_STAP_A) => payload.get(3).map(|b| (b & 0x1f, payload.get(4))),
        Some(NAL_FU_A) => payload.get(1).filter(|h| *h & 0x80 != 0).map(|h| (h & 0x1f, payload.get(2))),
        Some(ty) => Some((ty, payload.get(1))),
        None => None,
    };
    match first_nal {
        Some((NAL_SPS | 9, _)) => true,
        // first_mb_in_slice is ue(v): a leading 1 bit is the value 0
        Some((NAL_IDR, Some(&b))) => idr_starts && b & 0x80 != 0,
        _ => false,
    }
}

fn malformed(reason: &'static str) -> RtpError {
    RtpError::MalformedPayload { codec: CODEC, reason }
}

impl Depacketizer for H264Depacketizer {
    fn depacketize(&mut self, packet: &RtpPacket<'_>) -> Result<Option<Frame>> {
        let Admit::Process { new_frame } =
            self.tracker.admit(&packet.header, || starts_access_unit(packet.payload, self.out_of_band_parameter_sets))
        else {
            return Ok(None);
        };
        if new_frame {
            self.access_unit.clear();
            self.fu = None;
            self.has_idr = false;
        }
        let parsed = self.parse_payload(packet.payload);
        if parsed.is_err() {
            self.tracker.stats.malformed += 1;
            self.tracker.damage();
        }
        let frame = if packet.header.marker {
            if self.fu.take().is_some() {
                self.tracker.damage(); // fragment never ended
            }
            let data = std::mem::take(&mut self.access_unit);
            let keyframe = std::mem::take(&mut self.has_idr);
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

    fn packetize(au: &[u8], max: usize) -> Vec<Vec<u8>> {
        let mut p = H264Packetizer::new(0x1234, 96, max, 0xfffe);
        p.sender_mut().next_sequence = 100;
        let mut out = Vec::new();
        p.packetize(au, 9000, &mut out).unwrap();
        out
    }

    #[test]
    fn stap_a_for_parameter_sets_and_single_nal() {
        let au = [0, 0, 0, 1, 0x67, 0x42, 0, 0x1e, 0, 0, 0, 1, 0x68, 0xce, 0x38, 0x80, 0, 0, 1, 0x65, 0x88, 0x84];
        let pkts = packetize(&au, 1400);
        assert_eq!(pkts.len(), 1);
        assert_eq!(
            pkts[0],
            vec![
                0x80, 0xe0, 0, 100, 0, 0, 0x23, 0x28, 0, 0, 0x12, 0x34, // header, marker
                0x78, // STAP-A, NRI 3
                0, 4, 0x67, 0x42, 0, 0x1e, 0, 4, 0x68, 0xce, 0x38, 0x80, 0, 3, 0x65, 0x88, 0x84,
            ]
        );
        // Too small for aggregation of all: SPS+PPS in STAP-A, IDR alone.
        let pkts = packetize(&au, 12 + 13);
        assert_eq!(pkts.len(), 2);
        assert_eq!(&pkts[1][12..], &[0x65, 0x88, 0x84]);
        assert_eq!(pkts[1][1], 0xe0);
        assert_eq!(pkts[0][1], 0x60);
    }

    #[test]
    fn fu_a_fragments() {
        let mut au = vec![0, 0, 0, 1, 0x65];
        au.push(0x81); // first_mb_in_slice = 0
        au.extend(2..=10u8);
        let pkts = packetize(&au, 12 + 6); // 4 NAL bytes per fragment
        let payloads: Vec<&[u8]> = pkts.iter().map(|p| &p[12..]).collect();
        assert_eq!(
            payloads,
            vec![&[0x7c, 0x85, 0x81, 2, 3, 4][..], &[0x7c, 0x05, 5, 6, 7, 8][..], &[0x7c, 0x45, 9, 10][..],]
        );
        let mut d = H264Depacketizer::new().with_out_of_band_parameter_sets(true);
        let mut frames = Vec::new();
        for p in &pkts {
            if let Some(f) = d.depacketize(&parse_rtp(p).unwrap()).unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].data, au);
        assert!(frames[0].keyframe);
        assert_eq!(frames[0].timestamp, 9000);
    }

    #[test]
    fn rejects_empty_and_tiny_mtu() {
        let mut p = H264Packetizer::new(1, 96, 1400, 0xfffe);
        assert!(p.packetize(&[1, 2, 3], 0, &mut Vec::new()).is_err());
        let mut p = H264Packetizer::new(1, 96, 14, 0xfffe);
        assert!(matches!(
            p.packetize(&[0, 0, 1, 0x65, 1], 0, &mut Vec::new()),
            Err(RtpError::PacketSizeTooSmall { .. })
        ));
    }

    #[test]
    fn loss_waits_for_next_idr() {
        let mut p = H264Packetizer::new(1, 96, 100, 0xfffe);
        let idr: Vec<u8> = [0, 0, 0, 1, 0x65].iter().copied().chain(std::iter::repeat_n(0x87, 300)).collect();
        let nonidr: Vec<u8> = [0, 0, 0, 1, 0x41].iter().copied().chain(std::iter::repeat_n(9, 300)).collect();
        let mut pkts = Vec::new();
        p.packetize(&idr, 0, &mut pkts).unwrap();
        let n_idr = pkts.len();
        p.packetize(&nonidr, 3000, &mut pkts).unwrap();
        p.packetize(&nonidr, 6000, &mut pkts).unwrap();
        let before_idr2 = pkts.len();
        p.packetize(&idr, 9000, &mut pkts).unwrap();
        pkts.remove(n_idr + 1); // lose a packet of frame 2
        let mut d = H264Depacketizer::new().with_out_of_band_parameter_sets(true);
        let mut got = Vec::new();
        for pk in &pkts {
            if let Some(f) = d.depacketize(&parse_rtp(pk).unwrap()).unwrap() {
                got.push(f.timestamp);
            }
            if pk == &pkts[before_idr2 - 2] {
                assert!(d.waiting_for_keyframe());
            }
        }
        assert_eq!(got, vec![0, 9000]);
        assert_eq!(d.stats().lost_packets, 1);
        assert_eq!(d.stats().dropped_frames, 2);
    }

    #[test]
    fn keyframe_right_after_loss_is_kept() {
        let mut p = H264Packetizer::new(1, 96, 1400, 0xfffe);
        let key = [0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2, 0, 0, 1, 0x65, 3];
        let mut pkts = Vec::new();
        p.packetize(&key, 0, &mut pkts).unwrap();
        p.packetize(&[0, 0, 1, 0x41, 4], 3000, &mut pkts).unwrap();
        p.packetize(&key, 6000, &mut pkts).unwrap();
        pkts.remove(1); // the whole second frame
        let mut d = H264Depacketizer::new();
        let got: Vec<u32> =
            pkts.iter().filter_map(|pk| d.depacketize(&parse_rtp(pk).unwrap()).unwrap()).map(|f| f.timestamp).collect();
        assert_eq!(got, vec![0, 6000]);
        assert!(starts_access_unit(&[0x09, 0x10], false));
        assert!(starts_access_unit(&[0x78, 0, 2, 0x67, 1], false));
        assert!(!starts_access_unit(&[0x7c, 0x05, 1], true));
        assert!(!starts_access_unit(&[0x41], true));
        assert!(starts_access_unit(&[0x65, 0x88], true));
        assert!(!starts_access_unit(&[0x65, 0x88], false));
        assert!(!starts_access_unit(&[0x65, 0x08], true));
        assert!(starts_access_unit(&[0x7c, 0x85, 0x80], true));
        assert!(!starts_access_unit(&[0x7c], true));
        assert!(starts_access_unit(&[0x67], false)); // a (degenerate) 1-byte SPS alone
        assert!(!starts_access_unit(&[0x65], true));
        // In-band parameter sets (default): an IDR-first stream start is not trusted.
        let mut d = H264Depacketizer::new();
        let pkt = crate::header::build_rtp(&crate::RtpHeader { marker: true, ..Default::default() }, &[0x65, 0x88]);
        assert_eq!(d.depacketize(&parse_rtp(&pkt).unwrap()).unwrap(), None);
    }
}
