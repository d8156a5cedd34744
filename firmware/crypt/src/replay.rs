//! Replay protection (RFC 3711 §3.3.2), checked only on packets that authenticated.
//!
//! webrtc-srtp 0.17's own detector takes its starting point from the first packet it is asked
//! about, before that packet's tag is checked: one forged packet with a far-off index, arriving
//! before a stream's first real one, made every genuine packet of the stream "too old" (found by
//! the fuzz smoke's prefix test, where a truncated SRTCP packet poisoned the window). So the
//! contexts run without it and [`Streams`] keeps one window per SSRC here, fed by the caller
//! after decryption succeeded: forged bytes never move it.

use std::collections::HashMap;

/// Packets in each window.
pub const WINDOW: u64 = 1024;
/// Streams (SSRCs) remembered per key: a sender has two (audio and video); authenticated
/// packets only come from the key's holder, so this bound is only a guard.
pub const MAX_STREAMS: usize = 16;

/// A sliding window over 64-bit packet indices.
#[derive(Debug, Clone, Default)]
pub struct ReplayWindow {
    /// The highest index accepted, once one was.
    top: Option<u64>,
    /// Bit i set: index `top - i` was accepted.
    seen: [u64; (WINDOW / 64) as usize],
}

impl ReplayWindow {
    /// Whether `index` is new: above the window, or inside it and not yet accepted.
    pub fn is_fresh(&self, index: u64) -> bool {
        match self.top {
            None => true,
            Some(top) if index > top => true,
            Some(top) => {
                let back = top - index;
                back < WINDOW && self.seen[(back / 64) as usize] & (1 << (back % 64)) == 0
            }
        }
    }

    /// Records `index` (which [`Self::is_fresh`] allowed).
    pub fn accept(&mut self, index: u64) {
        let top = match self.top {
            Some(top) if index <= top => top,
            Some(top) => {
                self.shift(index - top);
                index
            }
            None => index,
        };
        self.top = Some(top);
        let back = top - index;
        if back < WINDOW {
            self.seen[(back / 64) as usize] |= 1 << (back % 64);
        }
    }

    /// Moves the window up by `by` indices.
    fn shift(&mut self, by: u64) {
        if by >= WINDOW {
            self.seen = Default::default();
            return;
        }
        let (words, bits) = ((by / 64) as usize, (by % 64) as u32);
        let n = self.seen.len();
        for i in (0..n).rev() {
            let lo = if i >= words { self.seen[i - words] } else { 0 };
            let carry = if bits > 0 && i > words { self.seen[i - words - 1] >> (64 - bits) } else { 0 };
            self.seen[i] = if bits > 0 { (lo << bits) | carry } else { lo };
        }
    }

    /// The highest accepted index.
    pub fn top(&self) -> Option<u64> {
        self.top
    }
}

/// One SSRC's SRTP and SRTCP windows.
#[derive(Debug, Clone, Default)]
struct Stream {
    rtp: ReplayWindow,
    rtcp: ReplayWindow,
}

/// The windows of every stream one key protects.
#[derive(Debug, Clone, Default)]
pub struct Streams {
    streams: HashMap<u32, Stream>,
}

/// Which window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SRTP: the index is the 48-bit ROC and sequence number, estimated by [`Streams::rtp_index`].
    Rtp,
    /// SRTCP: the 31-bit index from the packet's trailer.
    Rtcp,
}

impl Streams {
    /// RFC 3711 §3.3.1's estimate of the packet index of sequence number `seq` on `ssrc`, from
    /// the highest index accepted there (ROC 0 for a new stream).
    pub fn rtp_index(&self, ssrc: u32, seq: u16) -> u64 {
        let Some(top) = self.streams.get(&ssrc).and_then(|s| s.rtp.top()) else { return u64::from(seq) };
        let (roc, s_l) = (top >> 16, (top & 0xffff) as u16);
        let v = if s_l < 0x8000 {
            if seq > s_l && seq - s_l > 0x8000 {
                roc.wrapping_sub(1)
            } else {
                roc
            }
        } else if s_l - 0x8000 > seq {
            roc + 1
        } else {
            roc
        };
        // A negative ROC (a packet from before the first one): index 0.. of ROC 0's range is
        // the best there is.
        if v > roc + 1 {
            return u64::from(seq);
        }
        (v << 16) | u64::from(seq)
    }

    /// Whether `index` on `ssrc` is fresh in its `kind` window.
    pub fn is_fresh(&self, ssrc: u32, kind: Kind, index: u64) -> bool {
        self.streams.get(&ssrc).is_none_or(|s| s.window(kind).is_fresh(index))
    }

    /// Records an authenticated packet; false (and nothing recorded) when [`MAX_STREAMS`] other
    /// streams are already known.
    pub fn accept(&mut self, ssrc: u32, kind: Kind, index: u64) -> bool {
        if !self.streams.contains_key(&ssrc) && self.streams.len() >= MAX_STREAMS {
            return false;
        }
        let s = self.streams.entry(ssrc).or_default();
        match kind {
            Kind::Rtp => s.rtp.accept(index),
            Kind::Rtcp => s.rtcp.accept(index),
        }
        true
    }
}

impl Stream {
    fn window(&self, kind: Kind) -> &ReplayWindow {
        match kind {
            Kind::Rtp => &self.rtp,
            Kind::Rtcp => &self.rtcp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_takes_each_index_once_and_forgets_the_old() {
        let mut w = ReplayWindow::default();
        assert!(w.is_fresh(5));
        w.accept(5);
        assert!(!w.is_fresh(5));
        assert!(w.is_fresh(4), "older, inside the window, not seen");
        w.accept(4);
        assert!(!w.is_fresh(4));
        w.accept(5 + 70);
        assert!(!w.is_fresh(5) && !w.is_fresh(4), "still remembered after a shift across words");
        assert!(w.is_fresh(6));
        w.accept(5 + 70 + WINDOW);
        assert!(!w.is_fresh(5 + 70), "out of the window now: too old");
        assert!(w.is_fresh(5 + 70 + WINDOW - 1) && !w.is_fresh(5 + 70 + WINDOW));
    }

    #[test]
    fn shifts_keep_every_bit_in_place() {
        let mut w = ReplayWindow::default();
        let accepted: Vec<u64> = (0..400).filter(|i| i % 3 == 0).collect();
        for &i in &accepted {
            w.accept(i);
        }
        for i in 0..400 {
            assert_eq!(w.is_fresh(i), i % 3 != 0, "{i}");
        }
    }

    #[test]
    fn rtp_indices_follow_the_rollover() {
        let mut s = Streams::default();
        assert_eq!(s.rtp_index(1, 65530), 65530);
        s.accept(1, Kind::Rtp, 65530);
        assert_eq!(s.rtp_index(1, 3), 65536 + 3, "past the wrap: ROC 1");
        s.accept(1, Kind::Rtp, 65536 + 3);
        assert_eq!(s.rtp_index(1, 65534), 65534, "a late one from before the wrap: ROC 0");
        assert!(s.is_fresh(1, Kind::Rtp, 65534) && !s.is_fresh(1, Kind::Rtp, 65530));
        assert!(s.is_fresh(2, Kind::Rtp, 65530), "streams are apart");
        assert!(s.is_fresh(1, Kind::Rtcp, 65530), "SRTCP has its own window");
    }

    #[test]
    fn the_number_of_streams_is_bounded() {
        let mut s = Streams::default();
        for ssrc in 0..MAX_STREAMS as u32 {
            assert!(s.accept(ssrc, Kind::Rtp, 1));
        }
        assert!(!s.accept(999, Kind::Rtp, 1));
        assert!(s.accept(0, Kind::Rtp, 2), "a known stream still moves");
    }
}
