//! Sequence-number arithmetic on the receive side: extending 16-bit RTP sequence numbers
//! to 64-bit ones (the "roll-over counter" of RFC 3550 A.1 / SRTP), and classifying an
//! arriving packet as next, gap, duplicate or late.

/// Extends 16-bit sequence numbers into a monotonic 64-bit space, tracking wrap-arounds.
///
/// The first packet seen starts at `1 << 16 | seq` (so late packets just before the first one
/// still map to positive numbers). A packet within 32768 of the highest number seen is placed
/// next to it, so reordering across a wrap gets the right roll-over count.
#[derive(Debug, Clone, Default)]
pub struct SeqExtender {
    highest: Option<u64>,
}

impl SeqExtender {
    /// A new extender that has seen no packet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the extended sequence number for `seq` and updates the highest seen.
    pub fn extend(&mut self, seq: u16) -> u64 {
        let ext = self.peek(seq);
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        ext
    }

    /// Returns the extended sequence number `seq` would get, without updating state.
    pub fn peek(&self, seq: u16) -> u64 {
        match self.highest {
            None => (1u64 << 16) | u64::from(seq),
            Some(h) => {
                let delta = seq.wrapping_sub(h as u16) as i16;
                (h as i64 + i64::from(delta)).max(0) as u64
            }
        }
    }

    /// Highest extended sequence number seen so far.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// The roll-over counter (number of 16-bit wraps) of the highest packet seen.
    pub fn roll_over_count(&self) -> Option<u64> {
        self.highest.map(|h| h >> 16)
    }
}

/// How a packet's sequence number relates to the previous one a depacketizer accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqStep {
    /// First packet, or exactly the next one.
    InOrder,
    /// Packets were skipped (lost or still in flight); the count is how many.
    Gap(u16),
    /// Same sequence number as the last accepted packet.
    Duplicate,
    /// Older than the last accepted packet (reordered past it or an old duplicate).
    Late,
}

/// Classifies `seq` relative to `last` (the last accepted sequence number, if any).
pub fn classify(last: Option<u16>, seq: u16) -> SeqStep {
    let Some(last) = last else { return SeqStep::InOrder };
    match seq.wrapping_sub(last) as i16 {
        1 => SeqStep::InOrder,
        0 => SeqStep::Duplicate,
        d if d < 0 => SeqStep::Late,
        d => SeqStep::Gap((d - 1) as u16),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extends_across_wrap_and_reorder() {
        let mut e = SeqExtender::new();
        assert_eq!(e.extend(65534), 0x1_fffe);
        assert_eq!(e.extend(65535), 0x1_ffff);
        assert_eq!(e.extend(1), 0x2_0001);
        // reordered packet from before the wrap
        assert_eq!(e.extend(0), 0x2_0000);
        assert_eq!(e.extend(65533), 0x1_fffd);
        assert_eq!(e.highest(), Some(0x2_0001));
        assert_eq!(e.roll_over_count(), Some(2));
    }

    #[test]
    fn classifies() {
        assert_eq!(classify(None, 5), SeqStep::InOrder);
        assert_eq!(classify(Some(65535), 0), SeqStep::InOrder);
        assert_eq!(classify(Some(65535), 2), SeqStep::Gap(2));
        assert_eq!(classify(Some(7), 7), SeqStep::Duplicate);
        assert_eq!(classify(Some(7), 3), SeqStep::Late);
    }
}
