//! A small receive-side jitter buffer (sans-IO): holds raw RTP packets, orders them by
//! extended sequence number, drops duplicates and packets that arrive after their slot was
//! released, and releases packets either as soon as they are next in sequence or, across a
//! gap, once the oldest held packet has waited `latency`. Time is passed in as `Instant`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::header::parse_rtp;
use crate::seq::SeqExtender;

/// Default number of packets held before the oldest is released regardless of time.
pub const DEFAULT_CAPACITY: usize = 2048;
/// After this many consecutive packets that all look late, the sender is assumed to have
/// restarted its sequence numbers and the buffer resynchronises.
const RESYNC_AFTER_LATE: u32 = 64;

/// Counters of the jitter buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets accepted into the buffer.
    pub received: u64,
    /// Packets released in order.
    pub released: u64,
    /// Sequence numbers given up on (never arrived within the latency window).
    pub lost: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Packets dropped because their slot had already been released.
    pub late: u64,
    /// Times the buffer resynchronised to a new sequence-number space.
    pub resyncs: u64,
}

/// A released packet: the raw bytes with its extended sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    /// 64-bit extended sequence number.
    pub extended_seq: u64,
    /// Number of sequence numbers skipped right before this packet (lost).
    pub lost_before: u64,
    /// The RTP packet as received (parse with [`crate::parse_rtp`]).
    pub data: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Held {
    arrival: Instant,
    data: Vec<u8>,
}

/// Reorders RTP packets of one SSRC within a latency window.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    latency: Duration,
    capacity: usize,
    extender: SeqExtender,
    next: Option<u64>,
    held: BTreeMap<u64, Held>,
    consecutive_late: u32,
    stats: JitterStats,
}

impl JitterBuffer {
    /// A buffer that waits at most `latency` for a missing packet.
    pub fn new(latency: Duration) -> Self {
        Self::with_capacity(latency, DEFAULT_CAPACITY)
    }

    /// Like [`JitterBuffer::new`] holding at most `capacity` packets (at least 1).
    pub fn with_capacity(latency: Duration, capacity: usize) -> Self {
        Self {
            latency,
            capacity: capacity.max(1),
            extender: SeqExtender::new(),
            next: None,
            held: BTreeMap::new(),
            consecutive_late: 0,
            stats: JitterStats::default(),
        }
    }

    /// Adds a received packet. Errors (and drops it) when it is not a valid RTP packet.
    pub fn handle_packet(&mut self, now: Instant, packet: Vec<u8>) -> Result<()> {
        let seq = parse_rtp(&packet)?.header.sequence_number;
        self.handle_parsed(now, seq, packet);
        Ok(())
    }

    /// Adds a packet the caller already parsed (its sequence number `seq`), so a receiver
    /// that also counts it ([`crate::rtcp::ReceptionStats`]) parses it once on arrival.
    pub fn handle_parsed(&mut self, now: Instant, seq: u16, packet: Vec<u8>) {
        let ext = self.extender.extend(seq);
        if self.next.is_some_and(|n| ext < n) {
            self.stats.late += 1;
            self.consecutive_late += 1;
            if self.consecutive_late >= RESYNC_AFTER_LATE {
                self.resync();
                let ext = self.extender.extend(seq);
                self.insert(ext, packet, now);
            }
            return;
        }
        self.consecutive_late = 0;
        if self.held.contains_key(&ext) {
            self.stats.duplicates += 1;
            return;
        }
        self.insert(ext, packet, now);
    }

    fn insert(&mut self, ext: u64, data: Vec<u8>, arrival: Instant) {
        self.stats.received += 1;
        self.held.insert(ext, Held { arrival, data });
    }

    fn resync(&mut self) {
        self.stats.resyncs += 1;
        self.stats.lost += self.held.len() as u64;
        self.held.clear();
        self.next = None;
        self.extender = SeqExtender::new();
        self.consecutive_late = 0;
    }

    /// Releases the next packet if it is due at `now`: immediately when it is the next in
    /// sequence, otherwise when it has waited `latency` (the missing ones are counted lost)
    /// or the buffer is over capacity. Call repeatedly until it returns None.
    pub fn poll_packet(&mut self, now: Instant) -> Option<Released> {
        let (&ext, _) = self.held.first_key_value()?;
        let in_order = self.next == Some(ext);
        // Across a gap, wait until the packet that has been held longest has waited `latency`.
        let waited = self.oldest_arrival().is_some_and(|t| now.saturating_duration_since(t) >= self.latency);
        if !(in_order || waited || self.held.len() > self.capacity) {
            return None;
        }
        let held = self.held.remove(&ext)?;
        let lost_before = self.next.map_or(0, |n| ext.saturating_sub(n));
        self.stats.lost += lost_before;
        self.stats.released += 1;
        self.next = Some(ext + 1);
        Some(Released { extended_seq: ext, lost_before, data: held.data })
    }

    /// When [`JitterBuffer::poll_packet`] should be called next (None if nothing is held).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let (&ext, held) = self.held.first_key_value()?;
        if self.next == Some(ext) {
            return Some(held.arrival);
        }
        Some(self.oldest_arrival()? + self.latency)
    }

    fn oldest_arrival(&self) -> Option<Instant> {
        self.held.values().map(|h| h.arrival).min()
    }

    /// Packets currently held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Counters.
    pub fn stats(&self) -> &JitterStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{build_rtp, RtpHeader};

    fn pkt(seq: u16) -> Vec<u8> {
        build_rtp(&RtpHeader { payload_type: 96, sequence_number: seq, ..Default::default() }, &[seq as u8])
    }

    fn drain(j: &mut JitterBuffer, now: Instant) -> Vec<u16> {
        std::iter::from_fn(|| j.poll_packet(now)).map(|r| (r.extended_seq & 0xffff) as u16).collect()
    }

    #[test]
    fn reorders_and_waits_for_gap() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut j = JitterBuffer::new(ms(50));
        j.handle_packet(t0, pkt(65534)).unwrap();
        assert_eq!(drain(&mut j, t0), Vec::<u16>::new()); // first packet waits the latency
        assert_eq!(drain(&mut j, t0 + ms(50)), vec![65534]);
        j.handle_packet(t0 + ms(51), pkt(0)).unwrap();
        j.handle_packet(t0 + ms(52), pkt(65535)).unwrap();
        j.handle_packet(t0 + ms(52), pkt(65535)).unwrap(); // dup
        assert_eq!(drain(&mut j, t0 + ms(52)), vec![65535, 0]);
        j.handle_packet(t0 + ms(60), pkt(3)).unwrap();
        assert_eq!(j.poll_timeout(), Some(t0 + ms(110)));
        assert_eq!(drain(&mut j, t0 + ms(100)), Vec::<u16>::new());
        j.handle_packet(t0 + ms(101), pkt(2)).unwrap();
        assert_eq!(drain(&mut j, t0 + ms(101)), Vec::<u16>::new()); // 1 still missing
        assert_eq!(j.poll_timeout(), Some(t0 + ms(110)));
        assert_eq!(drain(&mut j, t0 + ms(110)), vec![2, 3]);
        j.handle_packet(t0 + ms(111), pkt(1)).unwrap(); // too late
        assert!(j.is_empty());
        let s = j.stats();
        assert_eq!((s.released, s.lost, s.duplicates, s.late), (5, 1, 1, 1));
        assert!(j.handle_packet(t0, vec![1, 2, 3]).is_err());
    }

    #[test]
    fn resyncs_after_sender_restart() {
        let t0 = Instant::now();
        let mut j = JitterBuffer::new(Duration::ZERO);
        for s in 1000..1010 {
            j.handle_packet(t0, pkt(s)).unwrap();
        }
        assert_eq!(drain(&mut j, t0).len(), 10);
        for s in 100..100 + RESYNC_AFTER_LATE as u16 + 3 {
            j.handle_packet(t0, pkt(s)).unwrap();
        }
        let out = drain(&mut j, t0);
        assert_eq!(out.first(), Some(&(100 + RESYNC_AFTER_LATE as u16 - 1)));
        assert_eq!(out.len(), 4);
        assert_eq!(j.stats().resyncs, 1);
    }
}
