//! Echo cancellation, noise suppression and automatic gain of the microphone: [`AudioProcessor`]
//! wraps WebRTC's audio processing module (AEC3, NS, AGC2; the `sonora` crate, a Rust port) in the
//! crate's sans-IO shape: [`AudioProcessor::handle_render`] takes the far-end reference (what the
//! loudspeaker plays: the playback mix), [`AudioProcessor::handle_capture`] cleans a microphone
//! frame in place, both cut into the module's 10 ms frames. [`FarEnd`] carries the mix from the
//! playback thread to the capture thread ([`TappedSpeaker`] fills it as frames are played).
//!
//! The capture/playback delay is not configured: AEC3's delay estimator measures it from the two
//! signals, and [`AudioProcessor::stats`] reports that estimate (and the module's own ERLE).
//!
//! AEC3 runs with [`echo_canceller3_config`], WebRTC's defaults with the suppressor tuned for
//! double talk (a room answering while the far end speaks); sonora is patched to take it
//! (`third_party/sonora/PATCHED.md`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sonora::aec3_config::{EchoCanceller3Config, MaskingThresholds};
use sonora::config::{EchoCanceller, GainController2, NoiseSuppression};
use sonora::{AudioProcessing, StreamConfig};

use crate::error::{MediaError, Result};
use crate::speaker::Speaker;

/// Sample rate of both streams.
pub const RATE: u32 = 48_000;
/// Samples per channel in one 10 ms processing frame.
pub const CHUNK: usize = RATE as usize / 100;
/// Most far-end audio [`FarEnd`] keeps for the capture side (500 ms); older samples are dropped.
const MAX_FAR_END: usize = CHUNK * 50;
/// How often [`AudioProcessor::handle_capture`] logs the delay estimate.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Which stages run (`[audio] echo_cancellation`, `noise_suppression`, `auto_gain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessingConfig {
    /// AEC3 with the playback mix as the far end.
    pub echo_cancellation: bool,
    /// WebRTC noise suppression (moderate level).
    pub noise_suppression: bool,
    /// AGC2: adaptive digital gain toward a speech level, with a limiter.
    pub auto_gain: bool,
}

impl ProcessingConfig {
    /// Everything on (the default of `[audio]`).
    pub const ALL: Self = Self { echo_cancellation: true, noise_suppression: true, auto_gain: true };
    /// Everything off: [`AudioProcessor::handle_capture`] leaves the audio alone.
    pub const NONE: Self = Self { echo_cancellation: false, noise_suppression: false, auto_gain: false };

    /// Whether any stage runs.
    pub fn any(&self) -> bool {
        self.echo_cancellation || self.noise_suppression || self.auto_gain
    }
}

/// What the module measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessingStats {
    /// AEC3's estimate of the echo path delay (capture behind playback), in ms.
    pub delay_ms: Option<i32>,
    /// AEC3's own echo return loss enhancement estimate, in dB.
    pub erle_db: Option<f64>,
    /// Echo return loss (far end to microphone), in dB.
    pub erl_db: Option<f64>,
    /// 10 ms far-end frames taken.
    pub render_frames: u64,
    /// 10 ms microphone frames processed.
    pub capture_frames: u64,
}

/// AEC3's tuning on a box: WebRTC's defaults with the suppressor tuned to keep the near end in
/// double talk (a room answering while the far end speaks), chosen with `cargo bench -p
/// roomcast-media --bench echo_knobs` on 36 scenes (espeak-ng far and near end; rooms with a
/// 20/100/200 ms direct path and an RT60 200/400/600 ms tail) and checked on 36 it was not chosen
/// on. With the defaults the near end loses about 4 dB in double talk (up to 6.7 dB); with these
/// 0.8-2 dB on average (at worst 3.4), and the smallest ERLE after 2 s stays within 3 dB of the
/// defaults' in rooms with RT60 400-600 ms (at 200 ms it is lower, 36.5 against 55 dB, still
/// well above the 25 dB target; the README has the figures). Four changes, each
/// needed (the bench prints each one left out):
/// - Hold the dominant near-end state 300 ms (75 blocks, default 200 ms): the default dropped out
///   between syllables, and each drop suppressed the next one's onset.
/// - In that state, let bands through until the echo estimate is 5x the near end's power (default
///   about 1x below 2 kHz, 0.1x above): the linear filter has already taken most echo out.
/// - Model the residual echo's reverberant tail as decaying by 0.65 per block (default 0.83), so
///   it does not stand over the near end after each far-end word. At 0.6 double talk was a little
///   better but a bare room (RT60 600 ms) kept 6 dB less ERLE than with the defaults.
/// - Enter that state only when the echo is under 0.1x the near end (default 0.25): with the
///   three changes above alone, reverberant rooms (RT60 400 ms) entered it on the far end's own
///   tail and let echo through (ERLE 16 dB against the defaults' 28 dB).
pub fn echo_canceller3_config() -> EchoCanceller3Config {
    let mut c = EchoCanceller3Config::default();
    c.suppressor.dominant_nearend_detection.hold_duration = 75;
    c.suppressor.dominant_nearend_detection.enr_threshold = 0.1;
    let transparent = MaskingThresholds { enr_transparent: 5.0, enr_suppress: 7.5, emr_transparent: 5.0 };
    c.suppressor.nearend_tuning.mask_lf = transparent.clone();
    c.suppressor.nearend_tuning.mask_hf = transparent;
    c.ep_strength.default_len = 0.65;
    c.ep_strength.nearend_len = 0.65;
    c
}

/// The far-end reference between the playback thread (which pushes what it plays) and the
/// capture thread (which takes it before each microphone frame). Cheap to clone.
#[derive(Clone, Default)]
pub struct FarEnd(Arc<Mutex<VecDeque<i16>>>);

impl FarEnd {
    /// A new, empty reference.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends 48 kHz mono samples just handed to the loudspeaker.
    pub fn push(&self, pcm: &[i16]) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        q.extend(pcm.iter().copied());
        let excess = q.len().saturating_sub(MAX_FAR_END);
        q.drain(..excess);
    }

    /// Takes everything pushed since the last call.
    pub fn take(&self) -> Vec<i16> {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        q.drain(..).collect()
    }
}

/// A [`Speaker`] that also feeds what it plays to a [`FarEnd`].
pub struct TappedSpeaker {
    inner: Box<dyn Speaker>,
    far_end: FarEnd,
}

impl TappedSpeaker {
    /// Wraps `inner`.
    pub fn new(inner: Box<dyn Speaker>, far_end: FarEnd) -> Self {
        Self { inner, far_end }
    }
}

impl Speaker for TappedSpeaker {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn play(&mut self, frame: &[i16]) -> Result<()> {
        self.far_end.push(frame);
        self.inner.play(frame)
    }
}

/// The microphone's processing: 48 kHz interleaved capture of 1 or 2 channels, mono far end.
pub struct AudioProcessor {
    apm: Option<AudioProcessing>,
    channels: usize,
    render: Vec<i16>,
    scratch: Vec<i16>,
    stats: ProcessingStats,
    next_report: Option<Instant>,
}

impl AudioProcessor {
    /// A processor running the stages `config` names on `channels` (1 or 2) microphone channels.
    pub fn new(config: ProcessingConfig, channels: u8) -> Result<Self> {
        if !(1..=2).contains(&channels) {
            return Err(MediaError::Config(format!("audio processing: {channels} channels (1 or 2)")));
        }
        let apm = config.any().then(|| {
            let cfg = sonora::Config {
                echo_canceller: config.echo_cancellation.then(EchoCanceller::default),
                noise_suppression: config.noise_suppression.then(NoiseSuppression::default),
                gain_controller2: config.auto_gain.then(GainController2::default),
                ..Default::default()
            };
            let mut apm = AudioProcessing::builder()
                .config(cfg)
                .capture_config(StreamConfig::new(RATE, u16::from(channels)))
                .render_config(StreamConfig::new(RATE, 1))
                .echo_canceller3_config(echo_canceller3_config())
                .build();
            // No external hint: AEC3 estimates the delay itself (reported in stats()).
            let _ = apm.set_stream_delay_ms(0);
            apm
        });
        Ok(Self {
            apm,
            channels: channels as usize,
            render: Vec::with_capacity(CHUNK * 4),
            scratch: vec![0; CHUNK * 2],
            stats: ProcessingStats::default(),
            next_report: None,
        })
    }

    /// Takes far-end (loudspeaker) audio, 48 kHz mono, any length; it is analysed 10 ms at a time.
    pub fn handle_render(&mut self, _now: Instant, pcm: &[i16]) {
        let Some(apm) = self.apm.as_mut() else { return };
        self.render.extend_from_slice(pcm);
        let mut done = 0;
        while self.render.len() - done >= CHUNK {
            let chunk = &self.render[done..done + CHUNK];
            if apm.process_render_i16(chunk, &mut self.scratch[..CHUNK]).is_ok() {
                self.stats.render_frames += 1;
            }
            done += CHUNK;
        }
        self.render.drain(..done);
    }

    /// Cleans one microphone frame in place: 48 kHz interleaved, a whole number of 10 ms frames
    /// (the microphone's 20 ms frames are two).
    pub fn handle_capture(&mut self, now: Instant, pcm: &mut [i16]) -> Result<()> {
        let Some(apm) = self.apm.as_mut() else { return Ok(()) };
        let step = CHUNK * self.channels;
        if !pcm.len().is_multiple_of(step) {
            return Err(MediaError::Config(format!(
                "audio processing: {} samples is not a whole number of 10 ms frames of {} channel(s)",
                pcm.len(),
                self.channels
            )));
        }
        for chunk in pcm.chunks_exact_mut(step) {
            self.scratch[..step].copy_from_slice(chunk);
            apm.process_capture_i16(&self.scratch[..step], chunk)
                .map_err(|e| MediaError::Config(format!("audio processing: {e:?}")))?;
            self.stats.capture_frames += 1;
        }
        let s = apm.statistics();
        self.stats.delay_ms = s.delay_ms;
        self.stats.erle_db = s.echo_return_loss_enhancement;
        self.stats.erl_db = s.echo_return_loss;
        if self.next_report.is_none_or(|at| now >= at) {
            if self.next_report.is_some() {
                tracing::info!(delay_ms = ?self.stats.delay_ms, erle_db = ?self.stats.erle_db, "echo canceller");
            }
            self.next_report = Some(now + REPORT_EVERY);
        }
        Ok(())
    }

    /// What the module measured so far.
    pub fn stats(&self) -> ProcessingStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mixer::level_dbfs;

    /// A deterministic broadband signal (sum of tones with a varying envelope), like speech enough
    /// for the delay estimator.
    fn signal(n: usize, seed: u32) -> Vec<i16> {
        let mut x = seed.wrapping_mul(2_654_435_761) | 1;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let noise = (x as i32 >> 20) as f32 / 2048.0;
                let env = 0.5 + 0.5 * ((i as f32) * 2.0 * std::f32::consts::PI * 3.0 / RATE as f32).sin();
                (noise * env * 6000.0) as i16
            })
            .collect()
    }

    fn run(config: ProcessingConfig) -> (f32, f32, AudioProcessor) {
        let delay = RATE as usize * 60 / 1000;
        let far = signal(RATE as usize * 4, 7);
        let mut p = AudioProcessor::new(config, 1).unwrap();
        let now = Instant::now();
        let (mut mic_tail, mut out_tail) = (Vec::new(), Vec::new());
        for (i, chunk) in far.chunks(CHUNK * 2).enumerate() {
            p.handle_render(now, chunk);
            let start = i * CHUNK * 2;
            let mut mic: Vec<i16> =
                (start..start + chunk.len()).map(|n| if n >= delay { far[n - delay] / 2 } else { 0 }).collect();
            let orig = mic.clone();
            p.handle_capture(now, &mut mic).unwrap();
            if start >= RATE as usize * 2 {
                mic_tail.extend(orig);
                out_tail.extend(mic);
            }
        }
        (level_dbfs(&mic_tail), level_dbfs(&out_tail), p)
    }

    #[test]
    fn echo_is_removed_and_off_leaves_audio_alone() {
        let (mic, out, p) = run(ProcessingConfig { echo_cancellation: true, ..ProcessingConfig::NONE });
        assert!(mic - out > 15.0, "echo {mic} dBFS, after AEC {out} dBFS");
        assert_eq!(p.stats().capture_frames, 400);
        assert_eq!(p.stats().render_frames, 400);
        let (mic, out, p) = run(ProcessingConfig::NONE);
        assert_eq!(mic, out, "off: unchanged");
        assert_eq!(p.stats().capture_frames, 0);
    }

    #[test]
    fn the_synthetic_microphone_tone_stays_audible_with_everything_on() {
        // The tests' synthetic source (a steady 440 Hz tone at -12 dBFS with beeps) goes through
        // the same processing on a box: noise suppression takes about 10 dB off a steady tone
        // (measured: -15 -> -25 dBFS), but it must stay well above the speaking threshold.
        use crate::mic::synthetic::SyntheticMic;
        let mut p = AudioProcessor::new(ProcessingConfig::ALL, 1).unwrap();
        let now = Instant::now();
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for i in 0..300u64 {
            let mut f: Vec<i16> = (i * 960..(i + 1) * 960).map(SyntheticMic::sample).collect();
            p.handle_render(now, &[0; CHUNK * 2]);
            let orig = f.clone();
            p.handle_capture(now, &mut f).unwrap();
            if i >= 200 {
                before.extend(orig);
                after.extend(f);
            }
        }
        let (b, a) = (level_dbfs(&before), level_dbfs(&after));
        assert!(a > -30.0 && a < b + 3.0, "tone {b} dBFS, processed {a} dBFS");
    }

    #[test]
    fn rejects_partial_frames_and_bad_channels() {
        let mut p = AudioProcessor::new(ProcessingConfig::ALL, 2).unwrap();
        assert!(p.handle_capture(Instant::now(), &mut [0; CHUNK]).is_err(), "half a stereo frame");
        assert!(p.handle_capture(Instant::now(), &mut [0; CHUNK * 4]).is_ok());
        assert!(AudioProcessor::new(ProcessingConfig::ALL, 3).is_err());
    }

    #[test]
    fn far_end_keeps_at_most_500_ms_and_taps_what_is_played() {
        let far = FarEnd::new();
        far.push(&vec![1; MAX_FAR_END + 10]);
        assert_eq!(far.take().len(), MAX_FAR_END);
        assert!(far.take().is_empty());
        let mut s = TappedSpeaker::new(Box::new(crate::speaker::NullSpeaker::new()), far.clone());
        s.play(&[5; 480]).unwrap();
        assert_eq!(far.take(), vec![5; 480]);
    }
}
