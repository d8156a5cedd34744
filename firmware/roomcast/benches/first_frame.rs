//! Time to first frame (`cargo bench -p roomcast --bench first_frame`): room A already sends
//! (synthetic 320x180 camera at 15 fps, software AV1, a keyframe every 2 s) in a meeting on a
//! loopback `roomcast server`; room B's box joins, again and again at varied phases of A's
//! keyframe interval, and the bench takes, from B's own log, the time from its join
//! ("joined: starting media") to the first video frame of A its receiver can decode ("first
//! video frame": the depacketizer passes nothing before a keyframe). Twice, A restarted for
//! each: keyframes on demand (B's RTCP PLI through the service to A, and A's keyframe for a
//! newcomer in its roster; the default) and off (`[debug] keyframe_requests = false` on both,
//! the reference: B waits for A's periodic keyframe). Runs on the debug binary with
//! `cargo test -p roomcast --bench first_frame` (a release build works too: `cargo bench`).
//! Prints median and p99 of each. `ROOMCAST_TTFF_TRIALS` sets the joins per mode (default 15).

#[path = "../tests/meeting_util/mod.rs"]
mod meeting_util;

use std::path::Path;
use std::time::{Duration, Instant};

use meeting_util::{box_config, spawn_box, spawn_server, ServerPorts};

const MEETING: &str = "ttff";
const TOKEN: &str = "ttff-token";

/// Seconds since midnight of a log line's RFC 3339 timestamp (`2026-12-01T13:21:48.276285Z`).
fn line_time(line: &str) -> Option<f64> {
    let t = line.get(11..26)?;
    let (h, m, s) =
        (t.get(0..2)?.parse::<f64>().ok()?, t.get(3..5)?.parse::<f64>().ok()?, t.get(6..)?.parse::<f64>().ok()?);
    Some(h * 3600.0 + m * 60.0 + s)
}

/// The time between the first lines of `log` containing `from` and `to`, once both are there.
fn between(log: &Path, from: &str, to: &str) -> Option<Duration> {
    let text = std::fs::read_to_string(log).ok()?;
    let a = text.lines().find(|l| l.contains(from)).and_then(line_time)?;
    let b = text.lines().find(|l| l.contains(to)).and_then(line_time)?;
    let mut d = b - a;
    if d < 0.0 {
        d += 86_400.0; // midnight
    }
    Some(Duration::from_secs_f64(d))
}

fn config(dir: &Path, room: &str, server: &str, video: &str, debug: &str) -> std::path::PathBuf {
    let path = box_config(dir, room, server, MEETING, TOKEN, "");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text
        .replace("width = 160\nheight = 90\nfps = 5\nbitrate_kbps = 100\n", video)
        .replace("keyframe_interval_s = 1\n", "keyframe_interval_s = 2\n")
        .replace("[debug]\n", &format!("[debug]\n{debug}"))
        .replace("[audio]\n", "[audio]\necho_cancellation = false\nnoise_suppression = false\nauto_gain = false\n");
    std::fs::write(&path, text).unwrap();
    path
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let trials: usize = std::env::var("ROOMCAST_TTFF_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(15);
    let dir = std::env::temp_dir().join(format!("roomcast-ttff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ports = ServerPorts::free();
    let _server = spawn_server("server", &ports.server_args(10), &dir.join("server.log"), MEETING, TOKEN);
    let server = format!("http://127.0.0.1:{}", ports.http);
    println!("time to first frame, join -> first decodable video frame of the room already sending");
    println!("(loopback, A: 320x180 15 fps AV1, keyframe every 2 s; {trials} joins per mode)");
    for (label, debug) in
        [("on demand (PLI, default)", ""), ("off (periodic keyframe only)", "keyframe_requests = false\n")]
    {
        // A fresh room A per mode, with the same setting (it also makes a keyframe for a newcomer).
        let a_room = if debug.is_empty() { "A" } else { "A2" };
        let a_cfg = config(&dir, a_room, &server, "width = 320\nheight = 180\nfps = 15\nbitrate_kbps = 300\n", debug);
        let mut a = spawn_box(&dir, a_room, &a_cfg);
        let a_log = dir.join(format!("box-{a_room}.log"));
        meeting_util::wait_for("A joined", Duration::from_secs(30), || {
            (std::fs::read_to_string(&a_log).unwrap_or_default().contains("joined: starting media"), ())
        });
        std::thread::sleep(Duration::from_secs(2));
        let mut times = Vec::new();
        let mut missed = 0;
        for i in 0..trials {
            let room = format!("B{}{i}", if debug.is_empty() { "p" } else { "n" });
            let cfg = config(&dir, &room, &server, "width = 160\nheight = 90\nfps = 5\nbitrate_kbps = 100\n", debug);
            let log = dir.join(format!("box-{room}.log"));
            let mut b = spawn_box(&dir, &room, &cfg);
            let start = Instant::now();
            let mut got = None;
            while start.elapsed() < Duration::from_secs(20) && got.is_none() {
                std::thread::sleep(Duration::from_millis(20));
                got = between(&log, "joined: starting media", "first video frame");
            }
            match got {
                Some(d) => times.push(d),
                None => missed += 1,
            }
            b.signal(libc::SIGTERM);
            let _ = b.wait(Duration::from_secs(10));
            // Vary the phase of the next join against A's 2 s keyframe interval.
            std::thread::sleep(Duration::from_millis(150 + (i as u64 * 370) % 900));
        }
        a.signal(libc::SIGTERM);
        let _ = a.wait(Duration::from_secs(10));
        times.sort();
        if times.is_empty() {
            println!("{label:34} no first frame in {trials} joins");
            continue;
        }
        println!(
            "{label:34} median {:6.0} ms  p99 {:6.0} ms  min {:6.0} ms  max {:6.0} ms  ({} joins, {missed} without a frame in 20 s)",
            percentile(&times, 0.5).as_secs_f64() * 1000.0,
            percentile(&times, 0.99).as_secs_f64() * 1000.0,
            times[0].as_secs_f64() * 1000.0,
            times[times.len() - 1].as_secs_f64() * 1000.0,
            times.len(),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
