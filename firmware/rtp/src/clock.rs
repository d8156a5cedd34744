//! Media clocks and packet-size limits: RTP clock rates for video and Opus, conversion from
//! elapsed time to RTP timestamps, and the maximum RTP packet size that fits the AMT tunnel.

use std::time::{Duration, Instant};

/// RTP clock rate of every video payload format (H.264, AV1): 90 kHz.
pub const VIDEO_CLOCK_RATE: u32 = 90_000;
/// RTP clock rate of Opus (RFC 7587): always 48 kHz, whatever the coded bandwidth.
pub const OPUS_CLOCK_RATE: u32 = 48_000;

/// Ethernet MTU the AMT path is assumed to have.
pub const ETHERNET_MTU: usize = 1500;
/// Bytes the AMT tunnel adds around an RTP packet: outer IPv4 (20) + UDP (8) + AMT multicast
/// data header (2) + inner IPv6 (40) + inner UDP (8) = 78.
pub const AMT_TUNNEL_OVERHEAD: usize = 20 + 8 + 2 + 40 + 8;
/// Largest RTP packet (header + payload) that crosses the AMT tunnel without IP fragmentation
/// on a 1500-byte MTU: 1500 - 78 = 1422 bytes. Pass this as `max_packet_size` to packetizers.
pub const AMT_MAX_RTP_PACKET_SIZE: usize = ETHERNET_MTU - AMT_TUNNEL_OVERHEAD;

/// Converts an elapsed media time to RTP clock ticks at `clock_rate` (wrapping, as RTP
/// timestamps do). Add the stream's random initial timestamp to the result.
pub fn duration_to_ticks(elapsed: Duration, clock_rate: u32) -> u32 {
    let ticks = elapsed.as_nanos() * u128::from(clock_rate) / 1_000_000_000;
    ticks as u32 // truncation is the intended modulo-2^32 wrap
}

/// Converts an RTP tick count at `clock_rate` to a duration (`clock_rate` 0 gives zero).
pub fn ticks_to_duration(ticks: u64, clock_rate: u32) -> Duration {
    if clock_rate == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos((u128::from(ticks) * 1_000_000_000 / u128::from(clock_rate)) as u64)
}

/// An RTP media clock: maps `Instant`s to RTP timestamps at `clock_rate` from an initial
/// timestamp the caller draws at random (RFC 3550 5.1), so capture times become packet timestamps.
#[derive(Debug, Clone, Copy)]
pub struct MediaClock {
    clock_rate: u32,
    epoch: Instant,
    initial: u32,
}

impl MediaClock {
    /// A clock whose timestamp at `epoch` is `initial` (for tests and restarts).
    pub fn with_initial(clock_rate: u32, epoch: Instant, initial: u32) -> Self {
        Self { clock_rate, epoch, initial }
    }

    /// RTP timestamp of instant `at` (instants before the epoch map to the epoch).
    pub fn timestamp_at(&self, at: Instant) -> u32 {
        self.initial.wrapping_add(duration_to_ticks(at.saturating_duration_since(self.epoch), self.clock_rate))
    }

    /// RTP timestamp `elapsed` after the epoch (for sample-counted audio: samples / rate).
    pub fn timestamp_after(&self, elapsed: Duration) -> u32 {
        self.initial.wrapping_add(duration_to_ticks(elapsed, self.clock_rate))
    }

    /// The clock rate in Hz.
    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants() {
        assert_eq!(AMT_MAX_RTP_PACKET_SIZE, 1422);
    }

    #[test]
    fn media_clock() {
        let t0 = Instant::now();
        let c = MediaClock::with_initial(VIDEO_CLOCK_RATE, t0, u32::MAX - 1799);
        assert_eq!(c.timestamp_at(t0), u32::MAX - 1799);
        assert_eq!(c.timestamp_at(t0 + Duration::from_millis(40)), 1800); // wrapped
        assert_eq!(c.timestamp_after(Duration::from_millis(20)), 0);
        assert_eq!(c.clock_rate(), 90_000);
    }

    #[test]
    fn converts() {
        assert_eq!(duration_to_ticks(Duration::from_millis(40), VIDEO_CLOCK_RATE), 3600);
        assert_eq!(duration_to_ticks(Duration::from_millis(20), OPUS_CLOCK_RATE), 960);
        assert_eq!(ticks_to_duration(960, OPUS_CLOCK_RATE), Duration::from_millis(20));
        // wraps
        assert_eq!(duration_to_ticks(Duration::from_secs(47_722), VIDEO_CLOCK_RATE), 4_294_980_000u64 as u32);
    }
}
