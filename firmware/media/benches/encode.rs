//! Media benchmark (`cargo bench -p roomcast-media`, harness = false): prints
//! - rav1e AV1 encode speed (fps) of a textured moving test pattern at 640x360 and 1280x720, at the speed preset the boards use
//!   (10, see board/*.toml) and one slower preset, with 1 and 2 threads, at ~1 Mbit/s, with the
//!   bitrate reached and the PSNR of the result decoded by dav1d (via a temporary IVF file);
//! - Opus encode cost per 20 ms frame;
//! - capture-to-RTP latency (median, p99) of the synthetic pipeline running in real time.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use roomcast_media::camera::synthetic::SyntheticCamera;
use roomcast_media::camera::{Camera, CameraConfig};
use roomcast_media::clock::SystemClock;
use roomcast_media::encoder::rav1e::Rav1eEncoder;
use roomcast_media::encoder::{EncoderConfig, VideoEncoder};
use roomcast_media::frame::VideoFrame;
use roomcast_media::mic::synthetic::SyntheticMic;
use roomcast_media::opus::{OpusConfig, OpusEncoder};
use roomcast_media::pipeline::sender::VideoChain;
use roomcast_rtp::ivf::{IvfHeader, IvfWriter};

/// The synthetic pattern is flat colour bars (nearly free to code); for a camera-like load the
/// bench adds moving smooth texture (value noise on a 16-pixel grid, +-20) and light grain
/// (+-2) to the luma.
fn hash(x: u32, y: u32) -> u32 {
    let mut n = x.wrapping_mul(0x9E37_79B1) ^ y.wrapping_mul(0x85EB_CA77);
    n ^= n >> 15;
    n = n.wrapping_mul(0x2C1B_3C6D);
    n ^ (n >> 12)
}

fn textured(w: u32, h: u32, i: u64) -> VideoFrame {
    let mut f = SyntheticCamera::render(w, h, i, Instant::now());
    let (wu, hu) = (w as usize, h as usize);
    let shift = (i * 2) as usize;
    for y in 0..hu {
        for x in 0..wu {
            let sx = x + shift;
            let (cx, cy) = ((sx / 16) as u32, (y / 16) as u32);
            let (fx, fy) = ((sx % 16) as i32, (y % 16) as i32);
            let v = |a: u32, b: u32| (hash(a, b) % 41) as i32 - 20;
            let top = v(cx, cy) * (16 - fx) + v(cx + 1, cy) * fx;
            let bottom = v(cx, cy + 1) * (16 - fx) + v(cx + 1, cy + 1) * fx;
            let smooth = (top * (16 - fy) + bottom * fy) / 256;
            let grain = (hash(x as u32 ^ (i as u32) << 16, y as u32) % 5) as i32 - 2;
            let p = &mut f.data[y * wu + x];
            *p = (*p as i32 + smooth + grain).clamp(16, 235) as u8;
        }
    }
    f
}

fn psnr_i420(a: &[u8], b: &[u8]) -> f64 {
    let n = a.len().min(b.len());
    let mse: f64 = a[..n].iter().zip(&b[..n]).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum::<f64>() / n as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

/// Decodes an IVF with dav1d into Y4M and returns the I420 frames.
fn dav1d_decode(ivf: &std::path::Path, w: usize, h: usize) -> Option<Vec<Vec<u8>>> {
    let y4m = ivf.with_extension("y4m");
    let out = Command::new("dav1d").args(["-q", "-i"]).arg(ivf).arg("-o").arg(&y4m).output().ok()?;
    if !out.status.success() {
        eprintln!("dav1d failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let data = std::fs::read(&y4m).ok()?;
    let _ = std::fs::remove_file(&y4m);
    let frame_len = VideoFrame::i420_len(w as u32, h as u32);
    let mut frames = Vec::new();
    let mut pos = data.iter().position(|&b| b == b'\n')? + 1;
    while pos < data.len() {
        let nl = data[pos..].iter().position(|&b| b == b'\n')? + pos + 1;
        let end = nl + frame_len;
        if end > data.len() {
            break;
        }
        frames.push(data[nl..end].to_vec());
        pos = end;
    }
    Some(frames)
}

/// CPU time used by this process so far (all threads): the figure that does not depend on
/// what else the machine runs.
fn cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn bench_rav1e(w: u32, h: u32, speed: u8, threads: usize, frames: u64) {
    let mut cfg = EncoderConfig::new(w, h, 30);
    cfg.bitrate_bps = 1_000_000;
    cfg.speed = speed;
    cfg.threads = threads;
    cfg.keyframe_interval = 60;
    let mut enc = Rav1eEncoder::new(cfg).expect("encoder");
    let sources: Vec<VideoFrame> = (0..frames).map(|i| textured(w, h, i)).collect();
    let start = Instant::now();
    let cpu0 = cpu_time();
    let mut out = Vec::new();
    for f in &sources {
        out.extend(enc.encode(f).expect("encode"));
    }
    out.extend(enc.flush().expect("flush"));
    let secs = start.elapsed().as_secs_f64();
    let cpu_ms = (cpu_time() - cpu0).as_secs_f64() * 1000.0 / frames as f64;
    let bytes: usize = out.iter().map(|f| f.data.len()).sum();
    let kbps = bytes as f64 * 8.0 / (frames as f64 / 30.0) / 1000.0;
    let ivf = std::env::temp_dir().join(format!("roomcast-bench-{w}x{h}-{speed}-{threads}-{}.ivf", std::process::id()));
    let mut writer =
        IvfWriter::new(std::fs::File::create(&ivf).expect("ivf"), IvfHeader::av1_90khz(w as u16, h as u16))
            .expect("ivf");
    for (i, f) in out.iter().enumerate() {
        writer.write_frame(i as u64 * 3000, &f.data).expect("ivf write");
    }
    writer.finish().expect("ivf finish");
    let psnr = match dav1d_decode(&ivf, w as usize, h as usize) {
        Some(decoded) if decoded.len() == sources.len() => {
            let p: f64 =
                decoded.iter().zip(&sources).map(|(d, s)| psnr_i420(d, &s.data)).sum::<f64>() / decoded.len() as f64;
            format!("{p:.2} dB")
        }
        Some(decoded) => format!("n/a (dav1d gave {} of {} frames)", decoded.len(), sources.len()),
        None => "n/a (dav1d missing or failed)".into(),
    };
    let _ = std::fs::remove_file(&ivf);
    println!(
        "rav1e {w}x{h} speed {speed} threads {threads}: {:.1} fps wall ({frames} frames in {secs:.2} s), {cpu_ms:.1} CPU-ms/frame (= {:.1} fps per core), {kbps:.0} kbit/s at 1000 target, PSNR {psnr}",
        frames as f64 / secs,
        1000.0 / cpu_ms
    );
}

fn bench_opus() {
    let mut enc = OpusEncoder::new(OpusConfig::default()).expect("opus");
    let frames: Vec<Vec<i16>> =
        (0..500u64).map(|f| (0..960).map(|i| SyntheticMic::sample(f * 960 + i)).collect()).collect();
    let cpu0 = cpu_time();
    let mut bytes = 0;
    for f in &frames {
        bytes += enc.encode_pcm(f).expect("encode").len();
    }
    let per = (cpu_time() - cpu0) / frames.len() as u32;
    println!(
        "opus encode (mono, 32 kbit/s, FEC on, complexity default): {:.1} CPU-us per 20 ms frame ({:.2}% of one core), {:.0} bytes/frame",
        per.as_secs_f64() * 1e6,
        per.as_secs_f64() / 0.020 * 100.0,
        bytes as f64 / frames.len() as f64
    );
}

fn bench_latency(w: u32, h: u32, frames: u64) {
    let mut cfg = EncoderConfig::new(w, h, 30);
    cfg.bitrate_bps = 1_000_000;
    let mut cam =
        SyntheticCamera::new(CameraConfig { width: w, height: h, fps: 30 }, Arc::new(SystemClock)).expect("camera");
    let mut chain = VideoChain::new(
        Rav1eEncoder::new(cfg).expect("encoder"),
        1,
        "bench",
        1200,
        &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1),
        Arc::new(SystemClock),
    );
    for _ in 0..frames {
        let f = cam.capture().expect("capture");
        chain.handle_frame(Instant::now(), SystemTime::now(), &f).expect("frame");
        while chain.poll_transmit().is_some() {}
    }
    chain.handle_close(Instant::now(), SystemTime::now()).expect("close");
    while chain.poll_transmit().is_some() {}
    let mut lat: Vec<Duration> = chain.stats().latencies.clone();
    // The frames drained at the end of the run wait for the flush, not for the encoder: skip them.
    lat.truncate(lat.len().saturating_sub(5));
    lat.sort();
    let pick = |q: f64| lat.get(((lat.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or_default();
    println!(
        "capture-to-RTP latency, synthetic {w}x{h}@30 real time, rav1e speed 10 2 threads: median {:.1} ms, p99 {:.1} ms over {} frames (includes rav1e's 4-frame lookahead = 133 ms at 30 fps)",
        pick(0.5).as_secs_f64() * 1000.0,
        pick(0.99).as_secs_f64() * 1000.0,
        lat.len()
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing: run either way.
    let t0 = Instant::now();
    println!("roomcast-media benchmark ({} CPUs)", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at start: {}", load.trim());
    }
    for (w, h, frames) in [(640u32, 360u32, 60u64), (1280, 720, 30)] {
        for threads in [1usize, 2] {
            bench_rav1e(w, h, 10, threads, frames);
        }
    }
    bench_rav1e(640, 360, 8, 2, 30);
    bench_opus();
    bench_latency(640, 360, 90);
    println!("total bench time {:.1} s", t0.elapsed().as_secs_f64());
}
