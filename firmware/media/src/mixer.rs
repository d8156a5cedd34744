//! [`Mixer`]: sums every participant's decoded audio (48 kHz mono) into 20 ms frames for the
//! speaker (the playback thread owns it); [`SpeakingMeter`] tells who is speaking (the box's
//! driver keeps one); [`level_dbfs`], the level meter the microphone's gate shares.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Samples per 20 ms frame at 48 kHz.
pub const FRAME: usize = 960;
/// Most audio buffered per participant (300 ms); older samples are dropped.
const MAX_QUEUE: usize = FRAME * 15;
/// Level above which a participant counts as speaking.
const SPEAKING_DBFS: f32 = -45.0;

/// Sums the participants' audio.
#[derive(Default)]
pub struct Mixer {
    tracks: HashMap<String, VecDeque<i16>>,
    /// Frames mixed so far.
    pub frames: u64,
}

/// Who spoke lately: a participant is speaking for 300 ms after a frame louder than -45 dBFS.
#[derive(Debug, Default)]
pub struct SpeakingMeter {
    loud_at: HashMap<String, Instant>,
}

impl SpeakingMeter {
    /// Takes one decoded frame of participant `id`.
    pub fn handle_pcm(&mut self, now: Instant, id: &str, pcm: &[i16]) {
        if level_dbfs(pcm) > SPEAKING_DBFS {
            self.loud_at.insert(id.to_string(), now);
        }
    }

    /// Whether `id` spoke in the last 300 ms.
    pub fn speaking(&self, id: &str, now: Instant) -> bool {
        self.loud_at.get(id).is_some_and(|at| now.saturating_duration_since(*at) < Duration::from_millis(300))
    }

    /// Forgets a participant.
    pub fn remove(&mut self, id: &str) {
        self.loud_at.remove(id);
    }
}

/// The level reported for digital silence: below anything 16-bit audio can carry (one LSB RMS is
/// about -90 dBFS), and finite, so the state file (JSON) can carry it and read it back.
pub const SILENCE_DBFS: f32 = -120.0;

/// Level of `pcm` in dBFS (RMS), never below [`SILENCE_DBFS`].
pub fn level_dbfs(pcm: &[i16]) -> f32 {
    if pcm.is_empty() {
        return SILENCE_DBFS;
    }
    let sum: f64 = pcm.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (sum / pcm.len() as f64).sqrt() / 32768.0;
    if rms <= 0.0 {
        SILENCE_DBFS
    } else {
        ((20.0 * rms.log10()) as f32).max(SILENCE_DBFS)
    }
}

impl Mixer {
    /// Queues decoded PCM of participant `id`.
    pub fn push(&mut self, id: &str, pcm: &[i16]) {
        let q = self.tracks.entry(id.to_string()).or_default();
        q.extend(pcm.iter().copied());
        while q.len() > MAX_QUEUE {
            q.pop_front();
        }
    }

    /// Forgets a participant.
    pub fn remove(&mut self, id: &str) {
        self.tracks.remove(id);
    }

    /// The next 20 ms of the mix (silence where a participant has nothing queued).
    pub fn mix(&mut self) -> Vec<i16> {
        let mut acc = vec![0i32; FRAME];
        for q in self.tracks.values_mut() {
            for slot in acc.iter_mut() {
                match q.pop_front() {
                    Some(s) => *slot += i32::from(s),
                    None => break,
                }
            }
        }
        self.frames += 1;
        acc.into_iter().map(|s| s.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_and_clamps() {
        let mut m = Mixer::default();
        m.push("a", &vec![20_000; FRAME]);
        m.push("b", &vec![20_000; FRAME / 2]);
        let f = m.mix();
        assert_eq!(f.len(), FRAME);
        assert_eq!(f[0], i16::MAX, "clamped");
        assert_eq!(f[FRAME - 1], 20_000, "b ran out halfway");
        assert_eq!(m.mix(), vec![0; FRAME]);
        m.push("a", &vec![1; MAX_QUEUE + FRAME]);
        m.remove("a");
        assert_eq!(m.mix(), vec![0; FRAME], "a removed participant is not played");
        assert_eq!(level_dbfs(&[0; 10]), SILENCE_DBFS);
        assert_eq!(level_dbfs(&[]), SILENCE_DBFS);
        assert!((level_dbfs(&[16384; 10]) + 6.02).abs() < 0.1);
    }

    #[test]
    fn speaking_lasts_300_ms_after_a_loud_frame() {
        let now = Instant::now();
        let mut s = SpeakingMeter::default();
        s.handle_pcm(now, "a", &[20_000; FRAME]);
        s.handle_pcm(now, "b", &[10; FRAME]);
        assert!(s.speaking("a", now + Duration::from_millis(299)));
        assert!(!s.speaking("a", now + Duration::from_millis(300)));
        assert!(!s.speaking("b", now), "a quiet frame is not speech");
        s.remove("a");
        assert!(!s.speaking("a", now));
    }
}
