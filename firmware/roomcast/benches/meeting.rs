//! Meeting benchmark (`cargo bench -p roomcast --bench meeting`): prints CPU and memory of
//! 1. one `roomcast box` in a three-party meeting (all three boxes: synthetic 640x360 camera
//!    at 15 fps, software AV1 encoder at 800 kbit/s, synthetic mic, Opus) and of the meeting
//!    service (`roomcast server`) carrying it;
//! 2. the meeting service alone with N = 4, 8, 16 light participants made here (each sends
//!    ~0.9 Mbit/s of RTP and receives every other participant through its own AMT gateway),
//!    as CPU and memory per participant.
//!
//! CPU is utime+stime from /proc/PID/stat over a measured window, in percent of one core;
//! memory is VmHWM (peak resident set) from /proc/PID/status. Figures, not pass/fail.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use roomcast_meeting::client;
use roomcast_meeting::roster::{AudioCaps, Caps, JoinReply, VideoCaps};
use roomcast_net::{GatewayHandle, GatewayOptions};

const BIN: &str = env!("CARGO_BIN_EXE_roomcast");
const TOKEN: &str = "bench";

fn port_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
fn port_tcp() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// CPU seconds (user + system) of a process.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields after the command: state is index 0, utime 11, stime 12.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

/// A `/proc/PID/status` field in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[String], log: &Path) -> Proc {
    let log = std::fs::File::create(log).unwrap();
    Proc(
        Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

fn server(dir: &Path, http: u16, media: u16, relay: u16, max: usize) -> Proc {
    let p = spawn(
        &[
            "server".into(),
            "--listen".into(),
            format!("127.0.0.1:{http}"),
            "--rtp-listen".into(),
            format!("127.0.0.1:{media}"),
            "--relay-listen".into(),
            format!("127.0.0.1:{relay}"),
            "--meeting".into(),
            format!("bench:{TOKEN}"),
            "--max-participants".into(),
            max.to_string(),
        ],
        &dir.join(format!("server-{http}.log")),
    );
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(10), "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    p
}

fn box_config(dir: &Path, room: &str, http: u16) -> PathBuf {
    let path = dir.join(format!("{room}.toml"));
    std::fs::write(
        &path,
        format!(
            "[room]\nname = \"{room}\"\n[meeting]\nserver = \"127.0.0.1:{http}\"\nid = \"bench\"\ntoken = \"{TOKEN}\"\n\
             [video]\nsource = \"synthetic\"\nwidth = 640\nheight = 360\nfps = 15\nbitrate_kbps = 800\nencoder = \"software\"\n\
             software_speed = 10\nthreads = 1\n[audio]\nsource = \"synthetic\"\nplayback = \"null\"\n[display]\nkind = \"none\"\n\
             [debug]\nstate_file = \"{}/state-{room}.json\"\n",
            dir.display()
        ),
    )
    .unwrap();
    path
}

fn state(dir: &Path, room: &str) -> serde_json::Value {
    std::fs::read_to_string(dir.join(format!("state-{room}.json")))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .map(|v| v["status"].clone())
        .unwrap_or_default()
}

fn three_boxes(dir: &Path) {
    let (http, media, relay) = (port_tcp(), port_udp(), port_udp());
    let srv = server(dir, http, media, relay, 16);
    let boxes: Vec<Proc> = ["A", "B", "C"]
        .iter()
        .map(|r| {
            let cfg = box_config(dir, r, http);
            spawn(
                &["box".into(), "--config".into(), cfg.display().to_string(), "--board".into(), "/nonexistent".into()],
                &dir.join(format!("box-{r}.log")),
            )
        })
        .collect();
    // Warm up until A receives both others.
    let start = Instant::now();
    loop {
        let s = state(dir, "A");
        let ok = s["phase"]["name"] == "in-meeting"
            && s["others"]
                .as_array()
                .is_some_and(|o| o.len() == 2 && o.iter().all(|p| p["video_frames"].as_u64() > Some(0)));
        if ok {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "box A never got into the meeting: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let a = boxes[0].0.id();
    let sp = srv.0.id();
    let window = Duration::from_secs(20);
    let (a0, s0, f0, t0) =
        (cpu_seconds(a), cpu_seconds(sp), state(dir, "A")["video_frames_sent"].as_u64().unwrap_or(0), Instant::now());
    std::thread::sleep(window);
    let dt = t0.elapsed().as_secs_f64();
    let (a1, s1) = (cpu_seconds(a), cpu_seconds(sp));
    let st = state(dir, "A");
    let f1 = st["video_frames_sent"].as_u64().unwrap_or(0);
    println!("== one box in a three-party meeting (640x360@15 software AV1, 800 kbit/s, Opus 32 kbit/s; all three boxes on this host, {} cores) ==", std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!(
        "box A: CPU {:.1}% of one core, VmHWM {} kB, VmRSS {} kB, threads {}",
        (a1 - a0) / dt * 100.0,
        status_kb(a, "VmHWM:"),
        status_kb(a, "VmRSS:"),
        status_kb(a, "Threads:")
    );
    println!(
        "box A: encoded and sent {:.1} fps, send {} kbit/s, receive {} kbit/s, loss {}%, encoder {}",
        (f1 - f0) as f64 / dt,
        st["send_kbps"],
        st["recv_kbps"],
        st["loss_percent"],
        st["encoder"]
    );
    for o in st["others"].as_array().cloned().unwrap_or_default() {
        println!(
            "box A receives {}: {} video frames, {} audio frames, loss {}%",
            o["room"], o["video_frames"], o["audio_frames"], o["loss_percent"]
        );
    }
    println!(
        "meeting service with 3 participants: CPU {:.2}% of one core ({:.2}% per participant), VmHWM {} kB",
        (s1 - s0) / dt * 100.0,
        (s1 - s0) / dt * 100.0 / 3.0,
        status_kb(sp, "VmHWM:")
    );
    drop(boxes);
    drop(srv);
}

fn http(port: u16, req: &[u8]) -> client::Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(req).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    client::parse_response(&buf).unwrap()
}

fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, len: usize) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.resize(len, 0xab);
    p
}

fn light_participants(dir: &Path, n: usize) {
    let (http_port, media, relay) = (port_tcp(), port_udp(), port_udp());
    let srv = server(dir, http_port, media, relay, n);
    let caps = Caps {
        video: Some(VideoCaps { codec: "AV1".into(), payload_type: 97, width: 640, height: 360, fps: 25, fmtp: None }),
        audio: Some(AudioCaps { codec: "opus".into(), payload_type: 111, channels: 1 }),
    };
    let joins: Vec<JoinReply> = (0..n)
        .map(|i| {
            client::decode_join(&http(http_port, &client::join("h", "bench", TOKEN, &format!("P{i}"), &caps))).unwrap()
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let delivered = Arc::new(AtomicU64::new(0));
    let relay_addr: SocketAddr = format!("127.0.0.1:{relay}").parse().unwrap();
    let gateways: Vec<GatewayHandle> = rt.block_on(async {
        let mut gws = Vec::new();
        for (i, _) in joins.iter().enumerate() {
            let (g, mut rx) = GatewayHandle::spawn(GatewayOptions::new(relay_addr)).await.unwrap();
            for (j, other) in joins.iter().enumerate() {
                if i != j {
                    let sg = other.groups.ipv4;
                    g.join(roomcast_amt::SourceGroup { source: sg.source, group: sg.group }).await.unwrap();
                }
            }
            let d = delivered.clone();
            tokio::spawn(async move {
                while rx.recv().await.is_some() {
                    d.fetch_add(1, Ordering::Relaxed);
                }
            });
            gws.push(g);
        }
        gws
    });
    // Senders: every 20 ms each participant sends one audio packet (120 B) and two video
    // packets (1100 B): ~0.9 Mbit/s each.
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let ssrcs: Vec<(u32, u32)> = joins.iter().map(|j| (j.ssrc.video, j.ssrc.audio)).collect();
    // Each participant seals its packets as a box does (the service forwards only authenticated media).
    let sealers: Vec<roomcast_meeting::media_auth::Sealer> = joins
        .iter()
        .map(|j| {
            roomcast_meeting::media_auth::Sealer::new(roomcast_meeting::media_auth::MediaKey::from_secret(&j.secret), 1)
        })
        .collect();
    let target: SocketAddr = format!("127.0.0.1:{media}").parse().unwrap();
    let sender = std::thread::spawn(move || {
        let socks: Vec<UdpSocket> = ssrcs.iter().map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
        let mut seq = 0u16;
        let mut next = Instant::now();
        let mut sent = 0u64;
        while !s2.load(Ordering::Relaxed) {
            for (k, (v, a)) in ssrcs.iter().enumerate() {
                let ts = u32::from(seq).wrapping_mul(960);
                let seal = |p: Vec<u8>| sealers[k].seal(&p);
                let _ = socks[k].send_to(&seal(rtp(111, seq, ts, *a, 120)), target);
                let _ = socks[k].send_to(&seal(rtp(97, seq.wrapping_mul(2), ts, *v, 1100)), target);
                let _ =
                    socks[k].send_to(&seal(rtp(97 | 0x80, seq.wrapping_mul(2).wrapping_add(1), ts, *v, 1100)), target);
                sent += 3;
            }
            seq = seq.wrapping_add(1);
            next += Duration::from_millis(20);
            if let Some(d) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
        }
        sent
    });
    std::thread::sleep(Duration::from_secs(3));
    let sp = srv.0.id();
    let window = Duration::from_secs(10);
    let (c0, d0, t0) = (cpu_seconds(sp), delivered.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(window);
    let dt = t0.elapsed().as_secs_f64();
    let (c1, d1) = (cpu_seconds(sp), delivered.load(Ordering::Relaxed));
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    let cpu = (c1 - c0) / dt * 100.0;
    let expected_pps = (n * (n - 1) * 150) as f64;
    println!(
        "meeting service, {n:2} participants (~0.9 Mbit/s each, full mesh via AMT): CPU {cpu:5.1}% of one core = {:.2}% per participant; VmHWM {} kB in all; delivered {:.0} of {expected_pps:.0} pkt/s to the gateways (sent {sent} packets)",
        cpu / n as f64,
        status_kb(sp, "VmHWM:"),
        (d1 - d0) as f64 / dt,
    );
    rt.block_on(async {
        for g in gateways {
            g.close().await;
        }
    });
    drop(srv);
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would too: run only under bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("roomcast-meeting-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    three_boxes(&dir);
    for n in [4, 8, 16] {
        light_participants(&dir, n);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
