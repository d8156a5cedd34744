//! Half-open connections against `roomcast server`'s control API on loopback (issue 13, item 1):
//! 2,000 connections from one address and 2,000 spread over 20 addresses, each sending half a
//! request head and reconnecting whenever the service closes it, while 20 rooms join from
//! another address: every join succeeds, each in under 1 s (the per-address and global caps and
//! the request-head deadline keep the attackers from filling the service). On the way: a repeated
//! Content-Length (400), a body over 16 KiB (413) and a head over 8 KiB (431) are refused.

mod meeting_util;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use meeting_util::*;
use roomcast_meeting::client;
use roomcast_meeting::roster::{AudioCaps, Caps};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

const MEETING: &str = "flood";
const TOKEN: &str = "flood-token-Qm4Rt8";

async fn connect_from(from: Ipv4Addr, port: u16) -> Option<tokio::net::TcpStream> {
    let sock = TcpSocket::new_v4().ok()?;
    sock.bind(SocketAddr::new(from.into(), 0)).ok()?;
    let connect = sock.connect(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port));
    tokio::time::timeout(Duration::from_secs(3), connect).await.ok()?.ok()
}

/// Holds a half-sent request head open until the service closes it, then opens another a
/// second later, until `stop`.
async fn half_open(from: Ipv4Addr, port: u16, stop: Arc<AtomicBool>, held: Arc<AtomicU64>) {
    let began = Instant::now();
    let mut first = true;
    while !stop.load(Ordering::Relaxed) && began.elapsed() < Duration::from_secs(60) {
        if !std::mem::take(&mut first) {
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
        let Some(mut s) = connect_from(from, port).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        held.fetch_add(1, Ordering::Relaxed);
        let _ = s.write_all(b"POST /v1/meetings/flood/participants HTTP/1.1\r\nHost: x\r\n").await;
        let mut buf = [0u8; 512];
        // Until the service closes it (or 10 s, or stop).
        let until = Instant::now() + Duration::from_secs(10);
        while !stop.load(Ordering::Relaxed) && Instant::now() < until {
            match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                _ => {}
            }
        }
    }
}

async fn join(port: u16, room: &str) -> (u16, Duration) {
    let t = Instant::now();
    let caps = Caps { video: None, audio: Some(AudioCaps { codec: "opus".into(), payload_type: 111, channels: 1 }) };
    let Some(mut s) = connect_from(Ipv4Addr::LOCALHOST, port).await else { return (0, t.elapsed()) };
    let req = client::join("x", MEETING, TOKEN, room, &caps);
    if s.write_all(&req).await.is_err() {
        return (0, t.elapsed());
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let status = client::parse_response(&buf).map(|r| r.status).unwrap_or(0);
    (status, t.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_succeed_under_a_half_open_connection_flood() {
    let dir = std::env::temp_dir().join(format!("roomcast-meeting-flood-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (http, media, relay) = (free_tcp_port(), free_udp_port(), free_udp_port());
    let args: Vec<String> = [
        "server",
        "--listen",
        &format!("127.0.0.1:{http}"),
        "--rtp-listen",
        &format!("127.0.0.1:{media}"),
        "--relay-listen",
        &format!("127.0.0.1:{relay}"),
        "--max-participants",
        "32",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let _server = Proc::spawn_env(
        "server",
        &args,
        &dir.join("server.log"),
        &[("ROOMCAST_MEETINGS", &format!("{MEETING} {TOKEN}"))],
    );
    wait_for("the control API", Duration::from_secs(10), || (http_get(http, "/v1/health", "").0 == 200, ()));

    // Framing limits, on the way: a repeated Content-Length, a body over 16 KiB, a head over 8 KiB.
    let raw = |req: String| async move {
        let mut s = connect_from(Ipv4Addr::LOCALHOST, http).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        client::parse_response(&buf).map(|r| r.status).unwrap_or(0)
    };
    let join_head =
        format!("POST /v1/meetings/{MEETING}/participants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n");
    assert_eq!(raw(format!("{join_head}Content-Length: 2\r\nContent-Length: 2\r\n\r\n{{}}")).await, 400);
    assert_eq!(raw(format!("{join_head}Content-Length: 20000\r\n\r\n{}", "x".repeat(20000))).await, 413);
    assert_eq!(raw(format!("{join_head}X-Pad: {}\r\nContent-Length: 2\r\n\r\n{{}}", "p".repeat(9000))).await, 431);

    let stop = Arc::new(AtomicBool::new(false));
    let held = Arc::new(AtomicU64::new(0));
    let mut attackers = Vec::new();
    for i in 0..4000u32 {
        let from = if i < 2000 { Ipv4Addr::new(127, 0, 0, 2) } else { Ipv4Addr::new(127, 0, 2, 1 + (i % 20) as u8) };
        attackers.push(tokio::spawn(half_open(from, http, stop.clone(), held.clone())));
    }
    // Let the flood build up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut times = Vec::new();
    for i in 0..20 {
        let (status, took) = join(http, &format!("Room {i}")).await;
        assert_eq!(status, 200, "join {i} during the flood answered {status} after {took:?}");
        times.push(took);
    }
    let connections = held.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        let _ = a.await;
    }
    let slowest = times.iter().max().unwrap();
    eprintln!("20 of 20 joins during a flood of {connections} half-open connections; slowest {slowest:?}");
    assert!(connections >= 1000, "the flood opened only {connections} connections");
    assert!(times.iter().all(|t| *t < Duration::from_secs(1)), "every join under 1 s: {times:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
