//! Token guessing against `roomcast server` on loopback (issue 13, item 2): after 10 wrong tokens
//! from one address its answers slow down (while another address is answered at once), and a
//! bounded burst of guessing from 200 loopback addresses grows the service's log by so little
//! that 60 s of it adds less than 1 MB. The wrong tokens never appear in the log.

mod meeting_util;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use meeting_util::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

const MEETING: &str = "guess";
const TOKEN: &str = "guess-token-7yH2kLp9";

/// One GET of the roster from source address `from`; the status and how long the answer took.
async fn roster_from(from: Ipv4Addr, port: u16, token: &str, meeting: &str) -> Option<(u16, Duration)> {
    let t = Instant::now();
    let sock = TcpSocket::new_v4().ok()?;
    sock.bind(SocketAddr::new(from.into(), 0)).ok()?;
    let mut s = sock.connect(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)).await.ok()?;
    let req = format!(
        "GET /v1/meetings/{meeting}/roster HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await.ok()?.ok()?;
    let text = String::from_utf8_lossy(&buf);
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((status, t.elapsed()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_slow_down_and_barely_grow_the_log() {
    let dir = std::env::temp_dir().join(format!("roomcast-meeting-guessing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (http, media, relay) = (free_tcp_port(), free_udp_port(), free_udp_port());
    let log = dir.join("server.log");
    let args: Vec<String> = [
        "server",
        "--listen",
        &format!("127.0.0.1:{http}"),
        "--rtp-listen",
        &format!("127.0.0.1:{media}"),
        "--relay-listen",
        &format!("127.0.0.1:{relay}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let _server = Proc::spawn_env("server", &args, &log, &[("ROOMCAST_MEETINGS", &format!("{MEETING} {TOKEN}"))]);
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    let honest = Ipv4Addr::new(127, 0, 0, 3);
    let start = Instant::now();
    while roster_from(honest, http, TOKEN, MEETING).await.map(|r| r.0) != Some(200) {
        assert!(start.elapsed() < Duration::from_secs(10), "the service did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 1. Ten free failures, then slower answers to that address only.
    let mut fast = Vec::new();
    for i in 0..10 {
        let (status, took) = roster_from(attacker, http, &format!("guess-{i}"), MEETING).await.unwrap();
        assert_eq!(status, 401);
        fast.push(took);
    }
    let mut slow = Vec::new();
    for i in 10..14 {
        let (status, took) = roster_from(attacker, http, &format!("guess-{i}"), MEETING).await.unwrap();
        assert_eq!(status, 401);
        slow.push(took);
    }
    let (_, honest_took) = roster_from(honest, http, TOKEN, MEETING).await.unwrap();
    let (unknown_status, _) = roster_from(honest, http, TOKEN, "no-such-meeting").await.unwrap();
    assert_eq!(unknown_status, 401, "an unknown meeting answers like a wrong token");
    let fast_max = *fast.iter().max().unwrap();
    eprintln!("answers to the guesser: first 10 up to {fast_max:?}, then {slow:?}; an honest request {honest_took:?}");
    assert!(slow[3] >= Duration::from_millis(700), "the 14th failure is answered after >= 800 ms: {slow:?}");
    assert!(slow[3] > fast_max * 4, "later answers slow down: fast {fast:?}, slow {slow:?}");
    assert!(honest_took < slow[3] / 2, "another address is not slowed: {honest_took:?} vs {slow:?}");

    // 2. A bounded burst of guessing from 200 addresses, 32 at a time; the log must stay small.
    let before = std::fs::metadata(&log).unwrap().len();
    let answered = Arc::new(AtomicU64::new(0));
    let burst = Duration::from_secs(10);
    let began = Instant::now();
    let tasks: Vec<_> = (0..32u32)
        .map(|t| {
            let answered = answered.clone();
            tokio::spawn(async move {
                let mut n = 0u32;
                // Bounded by time and by count.
                while began.elapsed() < burst && n < 100_000 {
                    let from = Ipv4Addr::new(127, 0, 1 + (t % 4) as u8, (1 + (n * 32 + t) % 50) as u8);
                    let guess = format!("wrong-{t}-{n}");
                    if let Some((401, _)) =
                        tokio::time::timeout(Duration::from_secs(2), roster_from(from, http, &guess, MEETING))
                            .await
                            .ok()
                            .flatten()
                    {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = began.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let grown = std::fs::metadata(&log).unwrap().len() - before;
    let answered = answered.load(Ordering::Relaxed);
    let per_minute = grown as f64 * 60.0 / elapsed.as_secs_f64();
    eprintln!(
        "{answered} wrong tokens answered in {elapsed:.1?}; the log grew {grown} bytes ({per_minute:.0} bytes per minute at this rate)"
    );
    assert!(answered >= 500, "the burst must be a real one to mean anything ({answered} answered)");
    // One log line per refusal would be ~200 bytes each.
    assert!(grown < answered * 40, "{grown} bytes of log for {answered} refusals: refusals are not rate-limited");
    assert!(per_minute < 1_000_000.0, "60 s of guessing would add {per_minute:.0} bytes of log");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("wrong-0-") && !text.contains("guess-1") && !text.contains(TOKEN), "tokens in the log");
    assert!(text.contains("suppressed"), "the limiter says how many refusals it left out");
    let _ = std::fs::remove_dir_all(&dir);
}
