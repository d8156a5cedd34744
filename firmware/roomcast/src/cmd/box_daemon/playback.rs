//! Playback of the other rooms: a [`Mixer`] that sums every participant's decoded audio
//! (48 kHz mono) into 20 ms frames, and a playback thread writing them to a [`Speaker`]:
//! the ALSA playback device ([`AlsaSpeaker`], with xrun recovery and reopen after device
//! loss) or a [`NullSpeaker`] that keeps the pace and plays nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Samples per 20 ms frame at 48 kHz.
pub const FRAME: usize = 960;
/// Most audio buffered per participant (300 ms); older samples are dropped.
const MAX_QUEUE: usize = FRAME * 15;
/// Level above which a participant counts as speaking.
const SPEAKING_DBFS: f32 = -45.0;

/// Somewhere to play 48 kHz mono S16 frames.
pub trait Speaker: Send {
    /// What it is.
    fn describe(&self) -> String;
    /// Plays one frame; blocks about as long as the frame lasts.
    fn play(&mut self, frame: &[i16]) -> Result<(), String>;
}

/// Plays nothing, at the real pace.
pub struct NullSpeaker {
    next: Option<Instant>,
}

impl NullSpeaker {
    /// A null sink.
    pub fn new() -> Self {
        Self { next: None }
    }
}

impl Speaker for NullSpeaker {
    fn describe(&self) -> String {
        "none (decoded and mixed, not played)".into()
    }
    fn play(&mut self, frame: &[i16]) -> Result<(), String> {
        let now = Instant::now();
        let next = self.next.unwrap_or(now) + Duration::from_micros(frame.len() as u64 * 1_000_000 / 48_000);
        if next > now {
            std::thread::sleep(next - now);
        }
        self.next = Some(next.max(now - Duration::from_millis(100)));
        Ok(())
    }
}

/// An ALSA playback device.
pub struct AlsaSpeaker {
    name: String,
    pcm: Option<alsa::PCM>,
    fallback: NullSpeaker,
    retry_at: Option<Instant>,
}

impl AlsaSpeaker {
    /// Opens `name` (e.g. "default", "hw:0,0"); a failure is returned so the caller can show it.
    pub fn open(name: &str) -> Result<Self, String> {
        let pcm = Self::open_pcm(name)?;
        Ok(Self { name: name.into(), pcm: Some(pcm), fallback: NullSpeaker::new(), retry_at: None })
    }

    fn open_pcm(name: &str) -> Result<alsa::PCM, String> {
        use alsa::pcm::{Access, Format, HwParams};
        let err = |what: &str, e: alsa::Error| format!("ALSA playback {name}: {what}: {e}");
        let pcm = alsa::PCM::new(name, alsa::Direction::Playback, false).map_err(|e| err("open", e))?;
        {
            let hw = HwParams::any(&pcm).map_err(|e| err("hw params", e))?;
            hw.set_access(Access::RWInterleaved).map_err(|e| err("access", e))?;
            hw.set_format(Format::s16()).map_err(|e| err("format S16", e))?;
            hw.set_channels(1).map_err(|e| err("mono", e))?;
            hw.set_rate(48_000, alsa::ValueOr::Nearest).map_err(|e| err("48 kHz", e))?;
            hw.set_period_size_near(FRAME as alsa::pcm::Frames, alsa::ValueOr::Nearest)
                .map_err(|e| err("period", e))?;
            hw.set_buffer_size_near((FRAME * 4) as alsa::pcm::Frames).map_err(|e| err("buffer", e))?;
            pcm.hw_params(&hw).map_err(|e| err("apply hw params", e))?;
        }
        Ok(pcm)
    }
}

impl Speaker for AlsaSpeaker {
    fn describe(&self) -> String {
        format!("ALSA {}", self.name)
    }
    fn play(&mut self, frame: &[i16]) -> Result<(), String> {
        if self.pcm.is_none() {
            // Device lost: keep the pace, try to reopen every 2 s.
            if self.retry_at.map_or(true, |t| Instant::now() >= t) {
                match Self::open_pcm(&self.name) {
                    Ok(p) => {
                        tracing::info!(device = %self.name, "playback device back");
                        self.pcm = Some(p);
                    }
                    Err(_) => self.retry_at = Some(Instant::now() + Duration::from_secs(2)),
                }
            }
            if self.pcm.is_none() {
                return self.fallback.play(frame);
            }
        }
        let outcome = {
            let pcm = self.pcm.as_ref().expect("checked");
            match pcm.io_i16() {
                Err(e) => Err(format!("ALSA playback {}: {e}", self.name)),
                Ok(io) => match io.writei(frame) {
                    Ok(_) => Ok(()),
                    // xrun or suspend: recover; anything else: the device is gone.
                    Err(e) => match pcm.try_recover(e, true) {
                        Ok(()) => {
                            let _ = io.writei(frame);
                            Ok(())
                        }
                        Err(_) => Err(format!("ALSA playback {}: {e}; retrying", self.name)),
                    },
                },
            }
        };
        if outcome.is_err() {
            self.pcm = None;
        }
        outcome
    }
}

#[derive(Default)]
struct Track {
    queue: VecDeque<i16>,
    level_dbfs: f32,
    loud_at: Option<Instant>,
}

/// Sums the participants' audio.
#[derive(Default)]
pub struct Mixer {
    tracks: HashMap<String, Track>,
    /// Frames mixed so far.
    pub frames: u64,
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
    pub fn push(&mut self, id: &str, pcm: &[i16], now: Instant) {
        let t = self.tracks.entry(id.to_string()).or_default();
        t.queue.extend(pcm.iter().copied());
        while t.queue.len() > MAX_QUEUE {
            t.queue.pop_front();
        }
        t.level_dbfs = level_dbfs(pcm);
        if t.level_dbfs > SPEAKING_DBFS {
            t.loud_at = Some(now);
        }
    }

    /// Forgets a participant.
    pub fn remove(&mut self, id: &str) {
        self.tracks.remove(id);
    }

    /// Whether `id` spoke in the last 300 ms.
    pub fn speaking(&self, id: &str, now: Instant) -> bool {
        self.tracks
            .get(id)
            .and_then(|t| t.loud_at)
            .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_millis(300))
    }

    /// The next 20 ms of the mix (silence where a participant has nothing queued).
    pub fn mix(&mut self) -> Vec<i16> {
        let mut acc = vec![0i32; FRAME];
        for t in self.tracks.values_mut() {
            for slot in acc.iter_mut() {
                match t.queue.pop_front() {
                    Some(s) => *slot += i32::from(s),
                    None => break,
                }
            }
        }
        self.frames += 1;
        acc.into_iter().map(|s| s.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16).collect()
    }
}

/// Starts the playback thread: every 20 ms a mixed frame to `speaker`, until `stop`.
pub fn spawn_playback(
    mixer: Arc<Mutex<Mixer>>,
    mut speaker: Box<dyn Speaker>,
    stop: Arc<AtomicBool>,
    on_error: impl Fn(String) + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("playback".into()).spawn(move || {
        let mut last_error = None;
        while !stop.load(Ordering::Relaxed) {
            let frame = mixer.lock().unwrap_or_else(|e| e.into_inner()).mix();
            if let Err(e) = speaker.play(&frame) {
                if last_error.as_ref() != Some(&e) {
                    on_error(e.clone());
                    last_error = Some(e);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_and_clamps() {
        let now = Instant::now();
        let mut m = Mixer::default();
        m.push("a", &vec![20_000; FRAME], now);
        m.push("b", &vec![20_000; FRAME / 2], now);
        let f = m.mix();
        assert_eq!(f.len(), FRAME);
        assert_eq!(f[0], i16::MAX, "clamped");
        assert_eq!(f[FRAME - 1], 20_000, "b ran out halfway");
        assert!(m.speaking("a", now));
        assert!(!m.speaking("a", now + Duration::from_secs(1)));
        assert_eq!(m.mix(), vec![0; FRAME]);
        assert_eq!(level_dbfs(&[0; 10]), SILENCE_DBFS);
        assert_eq!(level_dbfs(&[]), SILENCE_DBFS);
        assert!((level_dbfs(&[16384; 10]) + 6.02).abs() < 0.1);
    }

    #[test]
    fn alsa_playback_writes_to_the_null_device() {
        // ALSA's "null" PCM (alsa-lib's standard configuration) takes frames like a real card.
        let mut s = AlsaSpeaker::open("null").expect("ALSA null device");
        for _ in 0..5 {
            s.play(&vec![1000; FRAME]).unwrap();
        }
        assert!(AlsaSpeaker::open("hw:99,0").is_err(), "a missing card is an error, not a panic");
    }

    #[test]
    fn null_speaker_keeps_the_pace() {
        let mut s = NullSpeaker::new();
        let start = Instant::now();
        for _ in 0..5 {
            s.play(&[0; FRAME]).unwrap();
        }
        assert!(start.elapsed() >= Duration::from_millis(80), "{:?}", start.elapsed());
    }
}
