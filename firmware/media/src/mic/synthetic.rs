//! A synthetic microphone: a 440 Hz tone at -12 dBFS with a 50 ms 1 kHz beep at the start of
//! every second (an audible sample counter), paced on a [`Clock`] in 20 ms frames. Each frame
//! carries the index of its first sample, so gaps are detectable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Microphone;
use crate::clock::Clock;
use crate::error::{MediaError, Result};
use crate::frame::{AudioFrame, AUDIO_FRAME_SAMPLES, AUDIO_RATE};

/// The synthetic microphone.
pub struct SyntheticMic {
    channels: u8,
    clock: Arc<dyn Clock>,
    next_sample: u64,
    start: Option<Instant>,
}

impl SyntheticMic {
    /// A tone generator with 1 or 2 channels.
    pub fn new(channels: u8, clock: Arc<dyn Clock>) -> Result<Self> {
        if !(1..=2).contains(&channels) {
            return Err(MediaError::Config(format!("synthetic mic: {channels} channels (1 or 2)")));
        }
        Ok(SyntheticMic { channels, clock, next_sample: 0, start: None })
    }

    /// The sample value at absolute sample index `n` (pure).
    pub fn sample(n: u64) -> i16 {
        let t = n as f64 / AUDIO_RATE as f64;
        let in_second = n % AUDIO_RATE as u64;
        let freq = if in_second < AUDIO_RATE as u64 / 20 { 1000.0 } else { 440.0 };
        (8192.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
    }
}

impl Microphone for SyntheticMic {
    fn describe(&self) -> String {
        format!("synthetic tone, {} channel(s)", self.channels)
    }
    fn channels(&self) -> u8 {
        self.channels
    }
    fn capture(&mut self) -> Result<AudioFrame> {
        let start = *self.start.get_or_insert_with(|| self.clock.now());
        let first = self.next_sample;
        // The frame is complete when its last sample has been "recorded".
        let due = start + Duration::from_micros((first + AUDIO_FRAME_SAMPLES as u64) * 1_000_000 / AUDIO_RATE as u64);
        self.clock.sleep_until(due);
        let mut samples = Vec::with_capacity(AUDIO_FRAME_SAMPLES * self.channels as usize);
        for i in 0..AUDIO_FRAME_SAMPLES as u64 {
            let s = Self::sample(first + i);
            for _ in 0..self.channels {
                samples.push(s);
            }
        }
        self.next_sample += AUDIO_FRAME_SAMPLES as u64;
        let captured_at = due.checked_sub(Duration::from_millis(20)).unwrap_or(due);
        Ok(AudioFrame { channels: self.channels, samples, first_sample: first, captured_at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn frames_are_contiguous_20ms_and_paced() {
        let clock = ManualClock::new();
        let t0 = clock.now();
        let mut mic = SyntheticMic::new(2, Arc::new(clock.clone())).unwrap();
        for i in 0..3u64 {
            let f = mic.capture().unwrap();
            assert_eq!(f.first_sample, i * 960);
            assert_eq!(f.samples.len(), 1920);
            assert_eq!(f.samples[0], f.samples[1], "stereo channels carry the same tone");
            assert_eq!(clock.now() - t0, Duration::from_millis(20 * (i + 1)));
        }
    }

    #[test]
    fn tone_has_expected_level_and_beep_at_second_start() {
        let peak = (0..48_000).map(|n| SyntheticMic::sample(n).unsigned_abs()).max().unwrap();
        assert!((8000..=8192).contains(&peak), "peak {peak}");
        // Zero crossings in the first 50 ms (1 kHz beep) vs the next 50 ms (440 Hz).
        let crossings = |r: std::ops::Range<u64>| {
            r.clone()
                .zip(r.skip(1))
                .filter(|&(a, b)| (SyntheticMic::sample(a) >= 0) != (SyntheticMic::sample(b) >= 0))
                .count()
        };
        let beep = crossings(0..2400);
        let tone = crossings(2400..4800);
        assert!((95..=105).contains(&beep), "beep crossings {beep}");
        assert!((40..=48).contains(&tone), "tone crossings {tone}");
        assert!(SyntheticMic::new(3, Arc::new(ManualClock::new())).is_err());
    }
}
