//! [`Mixer`]: sums every participant's decoded audio (48 kHz mono) into 20 ms frames for the
//! speaker (the playback thread owns it), and keeps each participant's queue short: audio that
//! arrives in a burst (after a stall upstream) would otherwise stand in the queue for the rest of the
//! call as added latency; [`SpeakingMeter`] tells who is speaking (the box's
//! driver keeps one); [`level_dbfs`], the level meter the microphone's gate shares.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Samples per 20 ms frame at 48 kHz.
pub const FRAME: usize = 960;
/// Most audio buffered per participant (300 ms); older samples are dropped.
const MAX_QUEUE: usize = FRAME * 15;
/// The standing queue the mixer keeps per participant (40 ms): enough for the playback thread's
/// wake-up jitter, since the jitter buffer upstream already absorbs the network's.
const TARGET_QUEUE: usize = FRAME * 2;
/// How many mixes (1 s) the smallest queue is watched over before the excess is dropped.
const DRAIN_WINDOW: u32 = 50;
/// Samples over which a drop is cross-faded (2 ms), so the cut does not click.
const FADE: usize = 96;
/// Level above which a participant counts as speaking.
const SPEAKING_DBFS: f32 = -45.0;

/// Sums the participants' audio.
#[derive(Default)]
pub struct Mixer {
    tracks: HashMap<String, Track>,
    /// Frames mixed so far.
    pub frames: u64,
    /// Samples dropped to bring standing queues back to [`TARGET_QUEUE`].
    pub drained: u64,
}

/// One participant's queued audio and the smallest length it had at a mix in this window.
#[derive(Default)]
struct Track {
    queue: VecDeque<i16>,
    low: Option<usize>,
    mixes: u32,
}

impl Track {
    /// After a window in which the queue never fell below `low`, drops `low - TARGET_QUEUE`
    /// samples (cross-fading across the cut): a queue that never empties is pure delay. Returns
    /// the samples dropped.
    fn drain(&mut self) -> usize {
        let low = self.queue.len().min(self.low.unwrap_or(usize::MAX));
        self.low = Some(low);
        self.mixes += 1;
        if self.mixes < DRAIN_WINDOW {
            return 0;
        }
        self.mixes = 0;
        self.low = None;
        let excess = low.saturating_sub(TARGET_QUEUE);
        if excess == 0 {
            return 0;
        }
        let fade = FADE.min(self.queue.len() - excess);
        for i in 0..fade {
            let (kept, cut) = (i32::from(self.queue[excess + i]), i32::from(self.queue[i]));
            let mixed = (cut * (fade - i) as i32 + kept * i as i32) / fade as i32;
            self.queue[excess + i] = mixed as i16;
        }
        self.queue.drain(..excess);
        excess
    }
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
        let q = &mut self.tracks.entry(id.to_string()).or_default().queue;
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
        for track in self.tracks.values_mut() {
            self.drained += track.drain() as u64;
            for slot in acc.iter_mut() {
                match track.queue.pop_front() {
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
    fn a_burst_does_not_stand_in_the_queue() {
        let mut m = Mixer::default();
        // A stall upstream: 240 ms arrive at once, then audio comes at the playback rate.
        m.push("a", &vec![1000; FRAME * 12]);
        let mut queued = Vec::new();
        for _ in 0..150 {
            m.push("a", &vec![1000; FRAME]);
            let f = m.mix();
            assert!(f.iter().all(|&s| s == 1000), "a steady signal stays steady across the cut");
            queued.push(m.tracks["a"].queue.len());
        }
        assert_eq!(
            queued[DRAIN_WINDOW as usize - 2],
            FRAME * 12,
            "nothing is dropped before a whole window was watched"
        );
        assert!(*queued.last().unwrap() <= TARGET_QUEUE + FRAME, "back to the target: {queued:?}");
        // Measured at each mix before its frame is taken: the burst plus the frame just pushed.
        assert_eq!(m.drained, (FRAME * 13 - TARGET_QUEUE) as u64, "only the excess is dropped");
        // A queue that empties now and then is not drained.
        let mut m = Mixer::default();
        for i in 0..200 {
            if i % 4 != 3 {
                m.push("b", &vec![1; FRAME + FRAME / 3]);
            }
            m.mix();
        }
        assert_eq!(m.drained, 0);
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
