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

#[path = "common/echo_scene.rs"]
mod echo_scene;

use std::time::Instant;

use echo_scene::{convolve, db, measure, power, room, to_i16, Outcome, Scene, FRAME};
use rand::SeedableRng;
use roomcast_media::audio_processing::{AudioProcessor, ProcessingConfig, RATE};

fn run(config: ProcessingConfig, scene: &Scene, echo: &[f32]) -> Outcome {
    let mut p = AudioProcessor::new(config, 1).expect("processor");
    let far_i: Vec<i16> = scene.far.iter().map(|&v| to_i16(v)).collect();
    let mut out = Vec::with_capacity(scene.far.len());
    let start = Instant::now();
    for (i, f) in far_i.chunks_exact(FRAME).enumerate() {
        let now = Instant::now();
        p.handle_render(now, f);
        let r = i * FRAME..(i + 1) * FRAME;
        let mut mic: Vec<i16> = r.clone().map(|n| to_i16(echo[n] + scene.near[n] + scene.noise[n])).collect();
        p.handle_capture(now, &mut mic).expect("capture");
        out.extend(mic.iter().map(|&s| f32::from(s) / 32768.0));
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / (out.len() / (RATE as usize / 100)) as f64;
    measure(&out, echo, &scene.near, p.stats().delay_ms, us)
}

fn main() {
    let Some(espeak) = roomcast_test_support::require_tool("espeak-ng") else { return };
    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    let scene = Scene::new(&espeak, &mut rng);
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
        let echo = convolve(&scene.far, &taps);
        println!(
            "\nroom: direct path {delay_ms} ms, RT60 200 ms tail; echo level {:.1} dBFS, near end {:.1} dBFS",
            db(power(&echo[..5 * RATE as usize])),
            db(power(&scene.near[5 * RATE as usize..]))
        );
        println!(
            "  {:<38} {:>9} {:>9} {:>9} {:>11} {:>11} {:>9} {:>10}",
            "[audio]", "ERLE 0-1", "ERLE 1-2", "ERLE 2-5", "near alone", "double talk", "delay est", "us/10 ms"
        );
        for (name, cfg) in modes {
            let o = run(cfg, &scene, &echo);
            let est = o.delay_estimate.map_or("-".to_owned(), |d| format!("{d} ms"));
            println!(
                "  {name:<38} {:>6.1} dB {:>6.1} dB {:>6.1} dB {:>+8.1} dB {:>+8.1} dB {est:>9} {:>10.0}",
                o.erle[0], o.erle[1], o.erle[2], o.near_alone, o.double_talk, o.us_per_10ms
            );
        }
    }
}
