//! Cost of the sans-IO meeting core (`cargo bench -p roomcast-meeting`): joins, control
//! request parsing, and routing of RTP per packet with 16 participants, plus the process's
//! peak memory (VmHWM) after holding 1000 participants. CPU time only of the core, no IO:
//! the end-to-end figures of `roomcast server` and `roomcast box` are in
//! `cargo bench -p roomcast --bench meeting`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use roomcast_meeting::control::parse_request;
use roomcast_meeting::roster::{AudioCaps, Caps, VideoCaps};
use roomcast_meeting::{client, MeetingService, ServiceConfig};

fn caps() -> Caps {
    Caps {
        video: Some(VideoCaps { codec: "AV1".into(), payload_type: 97, width: 640, height: 360, fps: 15, fmtp: None }),
        audio: Some(AudioCaps { codec: "opus".into(), payload_type: 111, channels: 1 }),
    }
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let t0 = Instant::now();
    let before = vm_hwm_kb();
    let mut cfg = ServiceConfig::loopback("bench", "tok");
    cfg.max_participants_per_meeting = 1000;
    cfg.max_participants_total = 1000;
    cfg.range_v4 = "232.10.0.0/16".parse().unwrap();
    let mut svc = MeetingService::new(cfg);
    let start = Instant::now();
    for i in 0..1000 {
        // The reply (which carries the whole roster) is dropped, as the driver does after sending it.
        std::hint::black_box(svc.join(t0, "bench", &format!("room {i}"), caps()).unwrap());
    }
    let per_join = start.elapsed() / 1000;
    let after = vm_hwm_kb();
    println!(
        "join: {per_join:?} per join while growing to 1000 participants (each reply carries the roster); VmHWM {before} kB -> {after} kB = {:.1} kB per participant (roster with SDPs)",
        (after.saturating_sub(before)) as f64 / 1000.0
    );

    let raw = client::roster("h", "bench", "tok", None);
    let n = 20_000;
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(parse_request(&raw).unwrap());
    }
    println!("control request parse: {:?} per request", start.elapsed() / n);

    let mut cfg = ServiceConfig::loopback("bench", "tok");
    cfg.max_participants_per_meeting = 16;
    let mut svc = MeetingService::new(cfg);
    let joins: Vec<_> = (0..16).map(|i| svc.join(t0, "bench", &format!("r{i}"), caps()).unwrap()).collect();
    let packets: Vec<(SocketAddr, Vec<u8>, roomcast_meeting::media_auth::Sealer)> = joins
        .iter()
        .enumerate()
        .map(|(i, j)| {
            let mut p = vec![0x80, 97, 0, 1, 0, 0, 0, 0];
            p.extend_from_slice(&j.ssrc.video.to_be_bytes());
            p.resize(1200, 0);
            let key = roomcast_meeting::media_auth::MediaKey::from_secret(&j.secret);
            (
                SocketAddr::from(([127, 0, 0, 1], 40_000 + i as u16)),
                p,
                roomcast_meeting::media_auth::Sealer::new(key, 1),
            )
        })
        .collect();
    let rounds = 100_000;
    // Reference in the same run: the box's side alone (sealing, the trailer's HMAC-SHA256).
    let mut out = Vec::with_capacity(1300);
    let start = Instant::now();
    for r in 0..rounds {
        let (_, p, sealer) = &packets[r % packets.len()];
        sealer.seal_into(p, &mut out);
        std::hint::black_box(&out);
    }
    let seal = start.elapsed() / rounds as u32;
    let start = Instant::now();
    let mut now = t0;
    let mut forwarded = 0usize;
    for r in 0..rounds {
        now += Duration::from_micros(10);
        let (from, p, sealer) = &packets[r % packets.len()];
        sealer.seal_into(p, &mut out);
        forwarded += usize::from(std::hint::black_box(svc.handle_packet(now, *from, &out)).is_some());
    }
    assert_eq!(forwarded, rounds, "every sealed packet verifies");
    let per = start.elapsed() / rounds as u32;
    let route = per.saturating_sub(seal);
    println!(
        "RTP routing with 16 participants, 1200-byte packets: {route:?} per packet (verify + route) = {:.0} \
         packets/s on one core; reference: sealing alone {seal:?}, seal + verify + route {per:?}",
        1.0 / route.as_secs_f64().max(1e-12)
    );
}
