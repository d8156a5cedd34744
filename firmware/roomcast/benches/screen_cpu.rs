//! CPU of the room's screen with four remote rooms (`cargo bench -p roomcast --bench screen_cpu`,
//! harness = false): four 640x360 AV1 streams at 15 fps (libaom real-time, 800 kbit/s, one
//! thread; the camera-like clip of roomcast-media's benches when ffmpeg is there, else the
//! synthetic camera), encoded first, then played in real time into what the box's screen thread
//! (`ScreenCore`) runs: one dav1d decoder with 2 threads per room and the compositor's 2x2 layout
//! at 1280x720, recomposed when a picture changed, at most every 33 ms.
//!
//! Prints CPU-seconds per second of video (getrusage of this process: user + system, every
//! thread including dav1d's) and the frames per second reached (pictures decoded per room,
//! screens composed), beside references measured in the same run with the same pacing: the
//! decoding alone and the composing alone (the same four pictures, 30 screens a second), and
//! then the whole work unpaced (as fast as it goes: the headroom).

#[path = "../../media/tests/common/camlike.rs"]
mod camlike;

use std::time::{Duration, Instant};

use roomcast_display::screen::{Compositor, Layout, Status, Tile};
use roomcast_display::FrameSize;
use roomcast_media::camera::synthetic::SyntheticCamera;
use roomcast_media::decode::av1::{Av1Decoder, DecodedPicture};
use roomcast_media::encoder::auto::SoftwareKind;
use roomcast_media::encoder::{EncodedFrame, EncoderConfig};
use roomcast_media::frame::VideoFrame;

const W: u32 = 640;
const H: u32 = 360;
const FPS: u32 = 15;
/// Frames per stream (keyframes every 2 s, so the loop restarts on one).
const FRAMES: u32 = 60;
const ROOMS: usize = 4;
const NAMES: [&str; ROOMS] = ["Oslo", "Lisbon", "Nairobi", "Lab 3"];
const WINDOW: Duration = Duration::from_secs(10);
const MIN_INTERVAL: Duration = Duration::from_millis(33);

/// User + system CPU time of the whole process (getrusage).
fn cpu() -> Duration {
    // SAFETY: an all-zero rusage is valid, and getrusage only writes into it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn stream(room: usize, source: &[Vec<u8>]) -> Vec<EncodedFrame> {
    let mut cfg = EncoderConfig::new(W, H, FPS);
    cfg.bitrate_bps = 800_000;
    cfg.threads = 1;
    let mut enc = SoftwareKind::Aom.open(cfg).expect("libaom");
    let mut out = Vec::new();
    for i in 0..source.len() {
        // Each room starts at another frame so the four streams differ.
        let data = source[(i + room * 7) % source.len()].clone();
        let frame = VideoFrame { width: W, height: H, data, index: i as u64, captured_at: Instant::now() };
        out.extend(enc.encode(&frame).expect("encode"));
    }
    out.extend(enc.flush().expect("flush"));
    out
}

fn status() -> Status {
    Status {
        room: "Blue room".into(),
        meeting: "Weekly sync".into(),
        encoder: "SW AV1".into(),
        send_kbps: 800,
        recv_kbps: 3200,
        ..Default::default()
    }
}

fn compose(c: &mut Compositor, pictures: &[Option<DecodedPicture>]) {
    let tiles: Vec<Tile<'_>> = pictures
        .iter()
        .enumerate()
        .map(|(i, p)| Tile { name: NAMES[i], muted: i == 3, speaking: i == 0, picture: p.as_ref().map(|p| p.planes()) })
        .collect();
    std::hint::black_box(c.compose(&tiles, None, &status()).expect("compose"));
}

#[derive(Clone, Copy)]
struct Work {
    decode: bool,
    compose: bool,
    /// Real time (15 fps per room, screens at most every 33 ms) or as fast as it goes.
    paced: bool,
}

struct Outcome {
    /// CPU-seconds per second of video processed (a room's 15 pictures decoded, or 30 screens
    /// composed for composing alone): the load a box carries in real time, even when this
    /// machine could not give the run the CPU to keep up.
    cpu_per_video_s: f64,
    cpu_per_s: f64,
    pictures_per_room_s: f64,
    screens_s: f64,
}

/// Each room's first picture (what composing alone shows).
fn first_pictures(streams: &[Vec<EncodedFrame>]) -> Vec<Option<DecodedPicture>> {
    streams
        .iter()
        .map(|s| {
            let mut d = Av1Decoder::new(1).expect("dav1d");
            d.handle_frame(Instant::now(), 0, &s[0].data).expect("decode");
            d.poll_picture()
        })
        .collect()
}

fn run(work: Work, streams: &[Vec<EncodedFrame>]) -> Outcome {
    let mut decoders: Vec<Av1Decoder> = (0..ROOMS).map(|_| Av1Decoder::new(2).expect("dav1d")).collect();
    let mut pictures = if work.decode { (0..ROOMS).map(|_| None).collect() } else { first_pictures(streams) };
    let mut comp = Compositor::new(FrameSize::new(1280, 720), Layout::Auto);
    let (mut decoded, mut screens) = (0u64, 0u64);
    let mut next_frame = [0usize; ROOMS];
    let mut dirty = true;
    let mut last_screen: Option<Instant> = None;
    let frame_gap = Duration::from_micros(1_000_000 / u64::from(FPS));
    let (t0, c0) = (Instant::now(), cpu());
    // Room r's frame k is due at t0 + k/15 s + r * 16 ms (the rooms' clocks are not aligned).
    let due = |r: usize, k: usize| t0 + frame_gap * k as u32 + Duration::from_millis(16 * r as u64);
    while t0.elapsed() < WINDOW {
        let now = Instant::now();
        let mut did = false;
        for r in 0..ROOMS {
            if work.decode && (!work.paced || now >= due(r, next_frame[r])) {
                let s = &streams[r];
                let f = &s[next_frame[r] % s.len()];
                decoders[r].handle_frame(now, next_frame[r] as u32, &f.data).expect("decode");
                while let Some(p) = decoders[r].poll_picture() {
                    pictures[r] = Some(p);
                    decoded += 1;
                    dirty = true;
                }
                next_frame[r] += 1;
                did = true;
            }
        }
        // Composing alone: a new screen whenever the pacing allows (30 a second).
        let changed = dirty || !work.decode;
        if work.compose && changed && (!work.paced || last_screen.is_none_or(|l| now >= l + MIN_INTERVAL)) {
            compose(&mut comp, &pictures);
            screens += 1;
            last_screen = Some(now);
            dirty = false;
            did = true;
        }
        if work.paced && !did {
            // Sleep until the next frame or screen is due (as the box's screen thread does).
            let mut wake = (0..ROOMS).filter(|_| work.decode).map(|r| due(r, next_frame[r])).min();
            if work.compose {
                let s = last_screen.map_or(now, |l| l + MIN_INTERVAL);
                if changed {
                    wake = Some(wake.map_or(s, |w| w.min(s)));
                }
            }
            let wake = wake.unwrap_or(now + Duration::from_millis(10));
            std::thread::sleep(wake.saturating_duration_since(Instant::now()));
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let used = (cpu() - c0).as_secs_f64();
    let video_s = if work.decode { decoded as f64 / ROOMS as f64 / f64::from(FPS) } else { screens as f64 / 30.0 };
    Outcome {
        cpu_per_video_s: used / video_s.max(1e-9),
        cpu_per_s: used / wall,
        pictures_per_room_s: decoded as f64 / ROOMS as f64 / wall,
        screens_s: screens as f64 / wall,
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    println!(
        "screen CPU benchmark ({} CPUs, load average {}): {ROOMS} remote rooms {W}x{H}@{FPS} AV1 800 kbit/s, dav1d (2 threads each), 2x2 at 1280x720, {} s per row",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split(' ').take(3).collect::<Vec<_>>().join(" "),
        WINDOW.as_secs()
    );
    let source = match camlike::raw_frames(W, H, FPS, FRAMES) {
        Some(f) => {
            println!("source: the camera-like clip (pan and zoom over a detailed still, grain)");
            f
        }
        None => {
            println!("source: the synthetic camera (no ffmpeg for the camera-like clip)");
            (0..FRAMES).map(|i| SyntheticCamera::render(W, H, u64::from(i), Instant::now()).data).collect()
        }
    };
    let streams: Vec<Vec<EncodedFrame>> = (0..ROOMS).map(|r| stream(r, &source)).collect();
    let rows = [
        ("decode 4 + compose 2x2, real time", Work { decode: true, compose: true, paced: true }),
        ("reference: decode 4 alone, real time", Work { decode: true, compose: false, paced: true }),
        ("reference: compose alone, 30 screens/s", Work { decode: false, compose: true, paced: true }),
        ("decode 4 + compose, unpaced (headroom)", Work { decode: true, compose: true, paced: false }),
    ];
    println!(
        "  {:<42} {:>18} {:>16} {:>16} {:>10}",
        "", "CPU-s/s of video", "CPU-s/wall s", "pictures/s/room", "screens/s"
    );
    for (name, work) in rows {
        let o = run(work, &streams);
        println!(
            "  {name:<42} {:>18.3} {:>16.3} {:>16.1} {:>10.1}",
            o.cpu_per_video_s, o.cpu_per_s, o.pictures_per_room_s, o.screens_s
        );
    }
}
