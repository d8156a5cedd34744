//! Bitrate reached against target on camera-like content (see `common/camlike.rs`) at the
//! boards' sizes: the encoder must land within +-15 % of an 800 kbit/s target. Short clips and
//! the fastest preset keep it cheap.

#[path = "common/camlike.rs"]
mod camlike;

use std::time::Instant;

use roomcast_media::encoder::rav1e::Rav1eEncoder;
use roomcast_media::encoder::{EncoderConfig, VideoEncoder};
use roomcast_media::frame::VideoFrame;

const FPS: u32 = 30;
const FRAMES: u32 = 45;
const TARGET_BPS: u32 = 800_000;

/// Encodes the clip and returns the bitrate reached in bit/s.
fn bitrate_of(encoder: &mut dyn VideoEncoder, frames: &[Vec<u8>], width: u32, height: u32) -> f64 {
    let mut bytes = 0usize;
    let mut out = 0usize;
    for (i, data) in frames.iter().enumerate() {
        let frame = VideoFrame { width, height, data: data.clone(), index: i as u64, captured_at: Instant::now() };
        for f in encoder.encode(&frame).unwrap() {
            bytes += f.data.len();
            out += 1;
        }
    }
    for f in encoder.flush().unwrap() {
        bytes += f.data.len();
        out += 1;
    }
    assert_eq!(out, frames.len(), "every frame comes out");
    bytes as f64 * 8.0 * FPS as f64 / frames.len() as f64
}

fn config(width: u32, height: u32) -> EncoderConfig {
    let mut c = EncoderConfig::new(width, height, FPS);
    c.bitrate_bps = TARGET_BPS;
    c.speed = 10;
    c.threads = 2;
    c
}

fn check(name: &str, width: u32, height: u32, make: impl Fn(EncoderConfig) -> Box<dyn VideoEncoder>) {
    let Some(frames) = camlike::raw_frames(width, height, FPS, FRAMES) else { return };
    let mut enc = make(config(width, height));
    let reached = bitrate_of(enc.as_mut(), &frames, width, height);
    let ratio = reached / TARGET_BPS as f64;
    eprintln!("{name} {width}x{height}: {:.0} kbit/s for {} kbit/s ({ratio:.2}x)", reached / 1000.0, TARGET_BPS / 1000);
    assert!(
        (0.85..=1.15).contains(&ratio),
        "{name} {width}x{height}: {reached:.0} bit/s is not within 15 % of {TARGET_BPS}"
    );
}

#[test]
fn rav1e_holds_the_bitrate_on_camera_like_content() {
    let make = |c| Box::new(Rav1eEncoder::new(c).unwrap()) as Box<dyn VideoEncoder>;
    check("rav1e", 640, 360, make);
    check("rav1e", 1280, 720, make);
}

#[cfg(feature = "aom")]
#[test]
fn aom_holds_the_bitrate_on_camera_like_content() {
    use roomcast_media::encoder::aom::AomEncoder;
    let make = |c| Box::new(AomEncoder::new(c).unwrap()) as Box<dyn VideoEncoder>;
    check("libaom", 640, 360, make);
    check("libaom", 1280, 720, make);
}
