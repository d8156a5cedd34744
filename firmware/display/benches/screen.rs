//! The far end's CPU (`cargo bench -p roomcast-display --bench screen`, harness = false): four
//! remote rooms at 640x360, each an AV1 stream (libaom real-time, 800 kbit/s, the camera-like
//! clip of roomcast-media's benches when ffmpeg is there, else the test pattern), decoded by
//! four dav1d decoders (one thread each) and composed into a 2x2 screen at 1280x720 and
//! 1920x1080. Prints CPU ms per screen (this process's CPU time) and the share of one core at
//! 15 and 30 screens a second, beside the reference measured in the same run: dav1d decoding
//! the four streams alone, and composing alone (the same four pictures, no decoding).

#[path = "../../media/tests/common/camlike.rs"]
mod camlike;
#[path = "../tests/common/pattern.rs"]
mod pattern;

use std::time::{Duration, Instant};

use embedded_graphics::prelude::Size;
use roomcast_display::screen::{Compositor, I420Planes, Layout, Status, Tile};
use roomcast_media::decode::av1::{Av1Decoder, DecodedPicture};
use roomcast_media::encoder::auto::SoftwareKind;
use roomcast_media::encoder::{EncodedFrame, EncoderConfig};
use roomcast_media::frame::VideoFrame;

const W: u32 = 640;
const H: u32 = 360;
const FRAMES: u32 = 60;
const ROOMS: usize = 4;
const NAMES: [&str; ROOMS] = ["Oslo", "Lisbon", "Nairobi", "Lab 3"];

fn cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn stream(room: usize, source: &[Vec<u8>]) -> Vec<EncodedFrame> {
    let mut cfg = EncoderConfig::new(W, H, 15);
    cfg.bitrate_bps = 800_000;
    cfg.threads = 1;
    let mut enc = SoftwareKind::DEFAULT.open(cfg).expect("encoder");
    let mut out = Vec::new();
    // Each room starts at another frame so the four streams differ.
    for i in 0..source.len() {
        let data = source[(i + room * 7) % source.len()].clone();
        out.extend(
            enc.encode(&VideoFrame { width: W, height: H, data, index: i as u64, captured_at: Instant::now() })
                .expect("encode"),
        );
    }
    out.extend(enc.flush().expect("flush"));
    out
}

fn planes(p: &DecodedPicture) -> I420Planes<'_> {
    p.planes()
}

/// Decodes every stream's frame `i`; returns the newest pictures.
fn decode_round(
    decoders: &mut [Av1Decoder],
    streams: &[Vec<EncodedFrame>],
    i: usize,
    now: Instant,
) -> Vec<DecodedPicture> {
    decoders
        .iter_mut()
        .zip(streams)
        .filter_map(|(d, s)| {
            let f = &s[i % s.len()];
            d.handle_frame(now, f.index as u32 * 6000, &f.data).expect("decode");
            let mut last = None;
            while let Some(p) = d.poll_picture() {
                last = Some(p);
            }
            last
        })
        .collect()
}

fn status() -> Status {
    Status {
        room: "Blue room".into(),
        meeting: "Weekly sync".into(),
        encoder: "SW AV1".into(),
        send_kbps: 800,
        recv_kbps: 3200,
        loss_percent: 0.0,
        muted: false,
    }
}

fn compose(c: &mut Compositor, pictures: &[DecodedPicture]) {
    let tiles: Vec<Tile<'_>> = pictures
        .iter()
        .enumerate()
        .map(|(i, p)| Tile { name: NAMES[i], muted: i == 3, speaking: i == 0, picture: Some(planes(p)) })
        .collect();
    std::hint::black_box(c.compose(&tiles, None, &status()).expect("compose"));
}

fn report(what: &str, cpu: Duration, screens: u32) {
    let ms = cpu.as_secs_f64() * 1000.0 / f64::from(screens);
    println!(
        "{what:<46} {ms:>8.2} CPU-ms/screen  {:>6.1} % of a core @15  {:>6.1} % @30",
        ms * 15.0 / 10.0,
        ms * 30.0 / 10.0
    );
}

fn fresh(n: usize) -> Vec<Av1Decoder> {
    (0..n).map(|_| Av1Decoder::new(1).expect("dav1d")).collect()
}

fn main() {
    println!(
        "roomcast-display screen benchmark ({} CPUs): {ROOMS} remote rooms {W}x{H}, {FRAMES} frames each, AV1 800 kbit/s",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at start: {}", load.trim());
    }
    let source = match camlike::raw_frames(W, H, 15, FRAMES) {
        Some(f) => {
            println!("source: the camera-like clip (pan and zoom over a photograph, grain)");
            f
        }
        None => {
            println!("source: the test pattern (no ffmpeg for the camera-like clip)");
            (0..FRAMES).map(|i| pattern::picture(W, H, 0, u64::from(i))).collect()
        }
    };
    let streams: Vec<Vec<EncodedFrame>> = (0..ROOMS).map(|r| stream(r, &source)).collect();
    let bytes: usize = streams.iter().flatten().map(|f| f.data.len()).sum();
    println!(
        "streams: {} frames, {:.0} kbit/s each on average",
        streams[0].len(),
        bytes as f64 * 8.0 * 15.0 / (ROOMS as f64 * FRAMES as f64) / 1000.0
    );
    let n = streams[0].len();
    let now = Instant::now();

    // Reference: decoding alone (two passes over the streams, each pass from a keyframe).
    let cpu0 = cpu_time();
    for _ in 0..2 {
        let mut decoders = fresh(ROOMS);
        for i in 0..n {
            std::hint::black_box(decode_round(&mut decoders, &streams, i, now));
        }
    }
    let decode_only = cpu_time() - cpu0;
    report("reference: dav1d decoding 4 x 640x360", decode_only, 2 * n as u32);

    // Pictures for composing alone.
    let mut decoders = fresh(ROOMS);
    let pictures = decode_round(&mut decoders, &streams, 0, now);
    for size in [Size::new(1280, 720), Size::new(1920, 1080)] {
        let mut c = Compositor::new(size, Layout::Auto);
        let rounds = 2 * n as u32;
        let cpu0 = cpu_time();
        for _ in 0..rounds {
            compose(&mut c, &pictures);
        }
        report(&format!("compose alone, 2x2 at {}x{}", size.width, size.height), cpu_time() - cpu0, rounds);

        let cpu0 = cpu_time();
        for _ in 0..2 {
            let mut decoders = fresh(ROOMS);
            for i in 0..n {
                let pics = decode_round(&mut decoders, &streams, i, now);
                compose(&mut c, &pics);
            }
        }
        report(&format!("decode 4 + compose 2x2 at {}x{}", size.width, size.height), cpu_time() - cpu0, 2 * n as u32);
    }
}
