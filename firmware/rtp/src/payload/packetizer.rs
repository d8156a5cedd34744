//! The packetizer/depacketizer traits shared by the H.264, AV1 and Opus payload formats, the
//! reassembled [`Frame`] type, and the per-stream RTP sender state (SSRC, payload type,
//! sequence numbers, packet/octet counters for RTCP sender reports) the packetizers share.

use crate::error::{Result, RtpError};
use crate::header::{RtpHeader, RtpPacket, RTP_FIXED_HEADER_LEN};

/// Turns encoded frames into complete RTP packets.
pub trait Packetizer {
    /// Packetizes one encoded frame (H.264 Annex B access unit, AV1 temporal unit in
    /// low-overhead OBU format, or one Opus packet) with the given RTP timestamp, appending
    /// complete RTP packets (header included) to `out`. Every packet is at most the
    /// configured `max_packet_size`; the marker bit is set on the last packet of a video
    /// frame (and on no Opus packet, see RFC 7587 section 4.2 - Opus uses it only after DTX).
    fn packetize(&mut self, frame: &[u8], rtp_timestamp: u32, out: &mut Vec<Vec<u8>>) -> Result<()>;

    /// The sender state: SSRC, payload type, next sequence number and counters.
    fn sender(&self) -> &RtpSender;

    /// Mutable sender state (e.g. to set the initial sequence number in tests).
    fn sender_mut(&mut self) -> &mut RtpSender;

    /// RTP clock rate of this payload format (90 000 for video, 48 000 for Opus).
    fn clock_rate(&self) -> u32;
}

/// One reassembled frame out of a depacketizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// RTP timestamp of the frame.
    pub timestamp: u32,
    /// H.264: Annex B access unit (4-byte start codes). AV1: temporal unit in low-overhead
    /// format (every OBU with obu_has_size_field=1, starting with a temporal delimiter).
    /// Opus: one Opus packet.
    pub data: Vec<u8>,
    /// True when the frame can be decoded on its own (H.264 IDR, AV1 key frame with a sequence
    /// header; every Opus packet).
    pub keyframe: bool,
}

/// Loss and error counters of a depacketizer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DepacketizerStats {
    /// Packets accepted (not duplicate, not late).
    pub packets: u64,
    /// Complete frames returned.
    pub frames: u64,
    /// Packets missing according to sequence numbers.
    pub lost_packets: u64,
    /// Duplicate packets ignored.
    pub duplicates: u64,
    /// Packets that arrived after a later one had been accepted (ignored).
    pub late: u64,
    /// Frames dropped because they were incomplete, malformed, or depended on a lost frame.
    pub dropped_frames: u64,
    /// Packets whose payload was malformed.
    pub malformed: u64,
}

/// Reassembles frames from RTP packets of one stream.
///
/// Feed packets in sequence order (after a [`crate::jitter::JitterBuffer`]). Duplicates and
/// late packets are ignored; a gap drops the frame in progress, and (for video) every frame
/// up to the next keyframe, which is what a decoder can start from. Never panics.
pub trait Depacketizer {
    /// Takes one packet; returns a frame when this packet completed one. An `Err` reports a
    /// malformed payload (the packet is dropped and counted; the depacketizer stays usable).
    fn depacketize(&mut self, packet: &RtpPacket<'_>) -> Result<Option<Frame>>;

    /// Counters of packets, frames, losses.
    fn stats(&self) -> &DepacketizerStats;

    /// True while frames are being dropped until the next keyframe (after loss or at start):
    /// a receiver may ask the sender for one (RTCP PLI / FIR).
    fn waiting_for_keyframe(&self) -> bool;

    /// Flushes a frame still in progress when the stream ends without its marker packet.
    /// Returns it only if it is complete as far as can be told; the default returns None.
    fn finish(&mut self) -> Option<Frame> {
        None
    }
}

/// Per-stream RTP sender state shared by the packetizers.
#[derive(Debug, Clone)]
pub struct RtpSender {
    /// Synchronisation source of the stream.
    pub ssrc: u32,
    /// Payload type (dynamic, 96..=127, as negotiated in the SDP).
    pub payload_type: u8,
    /// Sequence number the next packet gets.
    pub next_sequence: u16,
    /// Maximum size of a complete RTP packet (header + payload).
    pub max_packet_size: usize,
    /// Packets sent (for RTCP SR).
    pub packet_count: u32,
    /// Payload octets sent (for RTCP SR).
    pub octet_count: u32,
    /// RTP timestamp of the last packet sent.
    pub last_timestamp: Option<u32>,
}

impl RtpSender {
    /// New sender state starting at `first_sequence` (RFC 3550 5.1 wants it random: the driver
    /// draws it from the OS's random source; tests pass a fixed one).
    pub fn new(ssrc: u32, payload_type: u8, max_packet_size: usize, first_sequence: u16) -> Self {
        Self {
            ssrc,
            payload_type: payload_type & 0x7f,
            next_sequence: first_sequence,
            max_packet_size,
            packet_count: 0,
            octet_count: 0,
            last_timestamp: None,
        }
    }

    /// Payload bytes available in one packet, or an error if fewer than `min_payload`.
    pub fn max_payload(&self, min_payload: usize) -> Result<usize> {
        let room = self.max_packet_size.saturating_sub(RTP_FIXED_HEADER_LEN);
        if room < min_payload {
            return Err(RtpError::PacketSizeTooSmall {
                max: self.max_packet_size,
                min: RTP_FIXED_HEADER_LEN + min_payload,
            });
        }
        Ok(room)
    }

    /// Starts a packet: writes the RTP header (marker clear) into a new buffer with room for
    /// the payload. Use [`RtpSender::set_marker`] on the last packet of a frame.
    pub fn start_packet(&mut self, timestamp: u32, payload_capacity: usize) -> Vec<u8> {
        let header = RtpHeader {
            payload_type: self.payload_type,
            sequence_number: self.next_sequence,
            timestamp,
            ssrc: self.ssrc,
            ..RtpHeader::default()
        };
        let mut out = Vec::with_capacity(RTP_FIXED_HEADER_LEN + payload_capacity);
        header.write(&mut out);
        self.next_sequence = self.next_sequence.wrapping_add(1);
        self.last_timestamp = Some(timestamp);
        out
    }

    /// Counts a finished packet (call once per packet after its payload is written).
    pub fn count(&mut self, packet: &[u8]) {
        self.packet_count = self.packet_count.wrapping_add(1);
        self.octet_count = self.octet_count.wrapping_add(packet.len().saturating_sub(RTP_FIXED_HEADER_LEN) as u32);
    }

    /// Sets the marker bit of a packet started by [`RtpSender::start_packet`].
    pub fn set_marker(packet: &mut [u8]) {
        if let Some(b) = packet.get_mut(1) {
            *b |= 0x80;
        }
    }
}
