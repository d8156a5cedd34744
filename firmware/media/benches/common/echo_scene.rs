//! The echo benchmarks' scene (shared by `echo.rs` and `echo_knobs.rs`, `#[path]`-included):
//! espeak-ng speech at 48 kHz, the synthesised room impulse response, the level measures.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use rand::Rng;
use roomcast_media::audio_processing::RATE;

pub const FAR_TEXT: &str = "The quarterly figures are in. Sales in the northern region grew by eleven percent, \
    while the south stayed flat. We will review the numbers again next week, after the audit.";
pub const NEAR_TEXT: &str = "Could you repeat the last part please? I think the line dropped for a moment, \
    and I missed what you said about the southern region and the audit.";
pub const SECONDS: usize = 12;
pub const FRAME: usize = RATE as usize / 50;

pub fn speech(espeak: &Path, voice: &str, text: &str) -> Vec<f32> {
    let wav = std::env::temp_dir().join(format!("roomcast-echo-bench-{}-{voice}.wav", std::process::id()));
    let ok = Command::new(espeak)
        .args(["-v", voice, "-s", "165", "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "espeak-ng -v {voice} failed");
    let mut reader = hound::WavReader::open(&wav).expect("espeak-ng's WAV");
    let spec = reader.spec();
    assert_eq!((spec.channels, spec.bits_per_sample), (1, 16), "{spec:?}");
    let src: Vec<f32> = reader.samples::<i16>().map(|s| f32::from(s.unwrap()) / 32768.0).collect();
    let _ = std::fs::remove_file(&wav);
    // To 48 kHz (espeak-ng speaks at 22050 Hz): linear interpolation, enough for a test signal.
    let ratio = f64::from(spec.sample_rate) / f64::from(RATE);
    let n = (src.len() as f64 / ratio) as usize;
    let out: Vec<f32> = (0..n)
        .map(|i| {
            let x = i as f64 * ratio;
            let j = x as usize;
            let f = (x - j as f64) as f32;
            let a = src[j];
            let b = *src.get(j + 1).unwrap_or(&a);
            a + (b - a) * f
        })
        .collect();
    // Normalised to -20 dBFS RMS over the voiced part.
    let voiced: Vec<f32> = out.iter().copied().filter(|s| s.abs() > 1e-3).collect();
    let rms = (voiced.iter().map(|s| s * s).sum::<f32>() / voiced.len().max(1) as f32).sqrt();
    out.iter().map(|s| s * 0.1 / rms.max(1e-6)).collect()
}

/// Repeats `s` (with 300 ms gaps) to fill `len` samples starting at `from`; silence elsewhere.
pub fn place(s: &[f32], from: usize, to: usize, total: usize) -> Vec<f32> {
    let mut out = vec![0.0; total];
    let gap = RATE as usize * 3 / 10;
    let mut i = from;
    while i < to {
        for (k, &v) in s.iter().enumerate() {
            if i + k >= to {
                break;
            }
            out[i + k] = v;
        }
        i += s.len() + gap;
    }
    out
}

/// Sparse room impulse response: (tap, gain); a direct path after `delay_ms`, then a tail with
/// RT60 200 ms.
pub fn room(delay_ms: usize, rng: &mut impl Rng) -> Vec<(usize, f32)> {
    room_rt60(delay_ms, 0.2, rng)
}

/// [`room`] with a tail of reverberation time `rt60_s` (300 reflections over 1.25 RT60).
pub fn room_rt60(delay_ms: usize, rt60_s: f32, rng: &mut impl Rng) -> Vec<(usize, f32)> {
    let d = delay_ms * RATE as usize / 1000;
    let mut taps = vec![(d, 0.5f32)];
    // Amplitude falls 60 dB in rt60: exp(-6.91 t / rt60).
    for _ in 0..300 {
        let t = rng.random_range(0.001f32..1.25 * rt60_s);
        let g = 0.25 * (-6.91 * t / rt60_s).exp() * if rng.random_bool(0.5) { 1.0 } else { -1.0 };
        taps.push((d + (t * RATE as f32) as usize, g));
    }
    taps
}

pub fn convolve(x: &[f32], taps: &[(usize, f32)]) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    for &(t, g) in taps {
        for (o, &v) in y[t.min(x.len())..].iter_mut().zip(x) {
            *o += g * v;
        }
    }
    y
}

pub fn to_i16(x: f32) -> i16 {
    (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

pub fn power(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len().max(1) as f64
}

pub fn db(p: f64) -> f64 {
    10.0 * p.max(1e-15).log10()
}

pub struct Outcome {
    pub erle: [f64; 3],
    pub near_alone: f64,
    pub double_talk: f64,
    pub delay_estimate: Option<i32>,
    pub us_per_10ms: f64,
}

/// The measures of one run: `out` is the processed microphone over the whole timeline
/// (0-8 s far end, 5-8 s double talk, 8-12 s near end alone).
pub fn measure(out: &[f32], echo: &[f32], near: &[f32], delay_estimate: Option<i32>, us_per_10ms: f64) -> Outcome {
    let s = |a: f64, b: f64| (a * RATE as f64) as usize..(b * RATE as f64) as usize;
    let erle = |a, b| db(power(&echo[s(a, b)])) - db(power(&out[s(a, b)]));
    Outcome {
        erle: [erle(0.0, 1.0), erle(1.0, 2.0), erle(2.0, 5.0)],
        near_alone: db(power(&out[s(8.5, 12.0)])) - db(power(&near[s(8.5, 12.0)])),
        double_talk: db(power(&out[s(5.5, 8.0)])) - db(power(&near[s(5.5, 8.0)])),
        delay_estimate,
        us_per_10ms,
    }
}

/// The far end, the near end and the noise floor of the 12 s timeline.
pub struct Scene {
    pub far: Vec<f32>,
    pub near: Vec<f32>,
    pub noise: Vec<f32>,
}

impl Scene {
    /// Speaks both texts with espeak-ng; the noise floor (about -65 dBFS: a quiet room and the
    /// microphone's own noise) comes from `rng`.
    pub fn new(espeak: &Path, rng: &mut impl Rng) -> Self {
        let total = SECONDS * RATE as usize;
        let far_speech = speech(espeak, "en-us", FAR_TEXT);
        let near_speech = speech(espeak, "en-gb+f3", NEAR_TEXT);
        let far = place(&far_speech, 0, 8 * RATE as usize, total);
        let near = place(&near_speech, 5 * RATE as usize, total, total);
        let noise: Vec<f32> = (0..total).map(|_| rng.random_range(-0.001f32..0.001)).collect();
        Scene { far, near, noise }
    }
}
