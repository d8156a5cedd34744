//! The echo benchmark's scene (`common/echo_scene.rs`: espeak-ng far end through a 20/100/200 ms
//! room, near-end speech, double talk at 5-8 s) run through WebRTC's audio processing module
//! (`sonora`) with each of the settings its public `Config` offers beside the box's default
//! (`cargo bench -p roomcast-media --bench echo_knobs`, harness = false): noise suppression
//! level, NS on the linear AEC output, AEC3's transparent mode (HMM), its enforced high-pass
//! filter, AGC2's adaptive digital gain, and the 48 kHz internal rate. It prints the same
//! measures as `echo` (ERLE, near-end level kept alone and in double talk) for the search of
//! defaults that keep double talk within 3 dB without losing ERLE >= 25 dB. sonora 0.2 builds
//! AEC3 from `EchoCanceller3Config::default()` (only the transparent mode is passed through), so
//! the suppressor's own double-talk tuning is not among these knobs.

#[path = "common/echo_scene.rs"]
mod echo_scene;

use std::time::Instant;

use echo_scene::{convolve, measure, room, to_i16, Outcome, Scene};
use rand::SeedableRng;
use roomcast_media::audio_processing::{CHUNK, RATE};
use sonora::config::{
    AdaptiveDigital, EchoCanceller, GainController2, MaxProcessingRate, NoiseSuppression, NoiseSuppressionLevel,
    Pipeline, TransparentModeType,
};
use sonora::{AudioProcessing, StreamConfig};

fn run(cfg: sonora::Config, scene: &Scene, echo: &[f32]) -> Outcome {
    let mut apm = AudioProcessing::builder()
        .config(cfg)
        .capture_config(StreamConfig::new(RATE, 1))
        .render_config(StreamConfig::new(RATE, 1))
        .build();
    let _ = apm.set_stream_delay_ms(0);
    let far: Vec<i16> = scene.far.iter().map(|&v| to_i16(v)).collect();
    let mut out = Vec::with_capacity(far.len());
    let (mut scratch, mut cleaned) = (vec![0i16; CHUNK], vec![0i16; CHUNK]);
    let start = Instant::now();
    for (i, f) in far.chunks_exact(CHUNK).enumerate() {
        apm.process_render_i16(f, &mut scratch).expect("render");
        let mic: Vec<i16> =
            (i * CHUNK..(i + 1) * CHUNK).map(|n| to_i16(echo[n] + scene.near[n] + scene.noise[n])).collect();
        apm.process_capture_i16(&mic, &mut cleaned).expect("capture");
        out.extend(cleaned.iter().map(|&s| f32::from(s) / 32768.0));
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / (out.len() / CHUNK) as f64;
    measure(&out, echo, &scene.near, apm.statistics().delay_ms, us)
}

fn main() {
    let Some(espeak) = roomcast_test_support::require_tool("espeak-ng") else { return };
    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    let scene = Scene::new(&espeak, &mut rng);
    let ns = |level| Some(NoiseSuppression { level, ..Default::default() });
    let adaptive = |a: AdaptiveDigital| Some(GainController2 { adaptive_digital: Some(a), ..Default::default() });
    // What AudioProcessor builds with everything on (media/src/audio_processing.rs).
    let default = sonora::Config {
        echo_canceller: Some(EchoCanceller::default()),
        noise_suppression: ns(NoiseSuppressionLevel::Moderate),
        gain_controller2: Some(GainController2::default()),
        ..Default::default()
    };
    let modes: Vec<(&str, sonora::Config)> = vec![
        ("box default (AEC3, NS moderate, AGC2 limiter)", default.clone()),
        ("AEC3 alone", sonora::Config { echo_canceller: Some(EchoCanceller::default()), ..Default::default() }),
        ("NS low", sonora::Config { noise_suppression: ns(NoiseSuppressionLevel::Low), ..default.clone() }),
        ("NS high", sonora::Config { noise_suppression: ns(NoiseSuppressionLevel::High), ..default.clone() }),
        (
            "NS on the linear AEC output",
            sonora::Config {
                noise_suppression: Some(NoiseSuppression {
                    level: NoiseSuppressionLevel::Moderate,
                    analyze_linear_aec_output_when_available: true,
                }),
                ..default.clone()
            },
        ),
        (
            "AEC3 transparent mode HMM",
            sonora::Config {
                echo_canceller: Some(EchoCanceller {
                    transparent_mode: TransparentModeType::Hmm,
                    ..Default::default()
                }),
                ..default.clone()
            },
        ),
        (
            "AEC3 without the enforced HPF",
            sonora::Config {
                echo_canceller: Some(EchoCanceller { enforce_high_pass_filtering: false, ..Default::default() }),
                ..default.clone()
            },
        ),
        (
            "AGC2 adaptive digital (defaults)",
            sonora::Config { gain_controller2: adaptive(AdaptiveDigital::default()), ..default.clone() },
        ),
        (
            "AGC2 adaptive, 0 dB start, 6 dB max",
            sonora::Config {
                gain_controller2: adaptive(AdaptiveDigital {
                    initial_gain_db: 0.0,
                    max_gain_db: 6.0,
                    ..Default::default()
                }),
                ..default.clone()
            },
        ),
        (
            "48 kHz internal rate",
            sonora::Config {
                pipeline: Pipeline {
                    maximum_internal_processing_rate: MaxProcessingRate::Rate48kHz,
                    ..Default::default()
                },
                ..default.clone()
            },
        ),
    ];
    println!("echo knobs: the echo benchmark's scene through sonora's public settings (targets: ERLE 2-5 s >= 25 dB, near end within 3 dB)");
    for delay_ms in [20, 100, 200] {
        let taps = room(delay_ms, &mut rng);
        let echo = convolve(&scene.far, &taps);
        println!("\nroom: direct path {delay_ms} ms, RT60 200 ms tail");
        println!(
            "  {:<46} {:>9} {:>9} {:>9} {:>11} {:>11} {:>10}",
            "settings", "ERLE 0-1", "ERLE 1-2", "ERLE 2-5", "near alone", "double talk", "us/10 ms"
        );
        for (name, cfg) in &modes {
            let o = run(cfg.clone(), &scene, &echo);
            println!(
                "  {name:<46} {:>6.1} dB {:>6.1} dB {:>6.1} dB {:>+8.1} dB {:>+8.1} dB {:>10.0}",
                o.erle[0], o.erle[1], o.erle[2], o.near_alone, o.double_talk, o.us_per_10ms
            );
        }
    }
}
