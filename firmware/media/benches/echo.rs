//! Echo benchmark (`cargo bench -p roomcast-media --bench echo`, harness = false): far-end speech
//! (espeak-ng, an American male voice) goes through a synthesised room impulse response (a direct
//! path after 20, 100 or 200 ms, then a sparse reverberant tail decaying with RT60 = 200 ms) into
//! the "microphone", with near-end speech (espeak-ng, a British female voice, another text) and a
//! faint noise floor added. The microphone runs through [`AudioProcessor`] 20 ms at a time with the
//! far end as its reference, as the box does. Timeline: 0-8 s far end, 5-8 s double talk,
//! 8-12 s near end alone. Per delay and per `[audio]` setting it prints:
//! - ERLE (10·log10 of echo power over output power) over 2-5 s, far end only, after at most 2 s
//!   of convergence (target ≥ 25 dB), and over 0-1 s and 1-2 s (convergence);
//! - the near-end speech level kept: output level minus the clean near-end level, near end alone
//!   (8.5-12 s) and in double talk (5.5-8 s) (target within 3 dB);
//! - AEC3's own delay estimate against the true delay, and CPU time per 10 ms frame.
//!
//! The comparison rows with echo cancellation off (nothing at all; noise suppression and gain
//! only) are measured in the same run on the same signals.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use roomcast_media::audio_processing::{AudioProcessor, ProcessingConfig, RATE};

const FAR_TEXT: &str = "The quarterly figures are in. Sales in the northern region grew by eleven percent, \
    while the south stayed flat. We will review the numbers again next week, after the audit.";
const NEAR_TEXT: &str = "Could you repeat the last part please? I think the line dropped for a moment, \
    and I missed what you said about the southern region and the audit.";
const SECONDS: usize = 12;
const FRAME: usize = RATE as usize / 50;

fn speech(espeak: &Path, voice: &str, text: &str) -> Vec<f32> {
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
fn place(s: &[f32], from: usize, to: usize, total: usize) -> Vec<f32> {
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

/// Sparse room impulse response: (tap, gain).
fn room(delay_ms: usize, rng: &mut impl Rng) -> Vec<(usize, f32)> {
    let d = delay_ms * RATE as usize / 1000;
    let mut taps = vec![(d, 0.5f32)];
    let rt60_s = 0.2f32;
    // Amplitude falls 60 dB in rt60: exp(-6.91 t / rt60).
    for _ in 0..300 {
        let t = rng.random_range(0.001f32..0.25);
        let g = 0.25 * (-6.91 * t / rt60_s).exp() * if rng.random_bool(0.5) { 1.0 } else { -1.0 };
        taps.push((d + (t * RATE as f32) as usize, g));
    }
    taps
}

fn convolve(x: &[f32], taps: &[(usize, f32)]) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    for &(t, g) in taps {
        for (o, &v) in y[t.min(x.len())..].iter_mut().zip(x) {
            *o += g * v;
        }
    }
    y
}

fn to_i16(x: f32) -> i16 {
    (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

fn power(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len().max(1) as f64
}

fn db(p: f64) -> f64 {
    10.0 * p.max(1e-15).log10()
}

struct Outcome {
    erle: [f64; 3],
    near_alone: f64,
    double_talk: f64,
    delay_estimate: Option<i32>,
    us_per_10ms: f64,
}

fn run(config: ProcessingConfig, far: &[f32], echo: &[f32], near: &[f32], noise: &[f32]) -> Outcome {
    let mut p = AudioProcessor::new(config, 1).expect("processor");
    let far_i: Vec<i16> = far.iter().map(|&v| to_i16(v)).collect();
    let mut out = Vec::with_capacity(far.len());
    let start = Instant::now();
    for (i, f) in far_i.chunks_exact(FRAME).enumerate() {
        let now = Instant::now();
        p.handle_render(now, f);
        let r = i * FRAME..(i + 1) * FRAME;
        let mut mic: Vec<i16> = r.clone().map(|n| to_i16(echo[n] + near[n] + noise[n])).collect();
        p.handle_capture(now, &mut mic).expect("capture");
        out.extend(mic.iter().map(|&s| f32::from(s) / 32768.0));
    }
    let elapsed = start.elapsed();
    let s = |a: f64, b: f64| (a * RATE as f64) as usize..(b * RATE as f64) as usize;
    let erle = |a, b| db(power(&echo[s(a, b)])) - db(power(&out[s(a, b)]));
    Outcome {
        erle: [erle(0.0, 1.0), erle(1.0, 2.0), erle(2.0, 5.0)],
        near_alone: db(power(&out[s(8.5, 12.0)])) - db(power(&near[s(8.5, 12.0)])),
        double_talk: db(power(&out[s(5.5, 8.0)])) - db(power(&near[s(5.5, 8.0)])),
        delay_estimate: p.stats().delay_ms,
        us_per_10ms: elapsed.as_secs_f64() * 1e6 / (out.len() / (RATE as usize / 100)) as f64,
    }
}

fn main() {
    let Some(espeak) = roomcast_test_support::require_tool("espeak-ng") else { return };
    let total = SECONDS * RATE as usize;
    let far_speech = speech(&espeak, "en-us", FAR_TEXT);
    let near_speech = speech(&espeak, "en-gb+f3", NEAR_TEXT);
    let far = place(&far_speech, 0, 8 * RATE as usize, total);
    let near = place(&near_speech, 5 * RATE as usize, total, total);
    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    // A noise floor at about -65 dBFS (a quiet room and the microphone's own noise).
    let noise: Vec<f32> = (0..total).map(|_| rng.random_range(-0.001f32..0.001)).collect();
    let modes = [
        ("off (nothing)", ProcessingConfig::NONE),
        ("echo_cancellation = false (ns, agc)", ProcessingConfig { echo_cancellation: false, ..ProcessingConfig::ALL }),
        ("echo cancellation only", ProcessingConfig { echo_cancellation: true, ..ProcessingConfig::NONE }),
        ("all on (default)", ProcessingConfig::ALL),
    ];
    println!("echo benchmark: far end {:.1} s of espeak-ng en-us, near end en-gb+f3, 48 kHz mono, 20 ms frames", 8.0);
    println!("ERLE target >= 25 dB after <= 2 s; near end kept within 3 dB");
    for delay_ms in [20, 100, 200] {
        let taps = room(delay_ms, &mut rng);
        let echo = convolve(&far, &taps);
        println!(
            "\nroom: direct path {delay_ms} ms, RT60 200 ms tail; echo level {:.1} dBFS, near end {:.1} dBFS",
            db(power(&echo[..5 * RATE as usize])),
            db(power(&near[5 * RATE as usize..]))
        );
        println!(
            "  {:<38} {:>9} {:>9} {:>9} {:>11} {:>11} {:>9} {:>10}",
            "[audio]", "ERLE 0-1", "ERLE 1-2", "ERLE 2-5", "near alone", "double talk", "delay est", "us/10 ms"
        );
        for (name, cfg) in modes {
            let o = run(cfg, &far, &echo, &near, &noise);
            let est = o.delay_estimate.map_or("-".to_owned(), |d| format!("{d} ms"));
            println!(
                "  {name:<38} {:>6.1} dB {:>6.1} dB {:>6.1} dB {:>+8.1} dB {:>+8.1} dB {est:>9} {:>10.0}",
                o.erle[0], o.erle[1], o.erle[2], o.near_alone, o.double_talk, o.us_per_10ms
            );
        }
    }
}
