//! The relay's access limits under attack, over loopback (issue 13, item 4): one address
//! (127.0.0.1) floods the relay while a legitimate gateway on another loopback address
//! (127.0.0.2) starts during the flood and must receive data within 2 s.
//!
//! - Tunnel exhaustion: the attacker opens real tunnels (Request, Query, Update with a valid
//!   MAC) from 200 ports, more than the relay's 100 tunnels. A control run without the
//!   per-address cap shows the same attack locks the legitimate gateway out.
//! - Request flood: one address sends Requests and Discoveries at 50,000 packets/s, 25 times
//!   the relay's global rate (set to 2,000/s here; the flood was 23 times the default
//!   10,000/s) and 2,500 times its per-address one; the gateway starts after 1 s of it. Without
//!   per-address buckets the flood takes about 24 of every 25 answers. (The issue measured 232,600/s against a release build; on
//!   this shared 2-core machine a debug-build relay cannot always drain that, and then the
//!   kernel drops the gateway's datagrams from the full socket queue before the relay sees
//!   them, whatever its admission rules. Pacing keeps the test about those rules.)
//!
//! The issue measured 20 s floods; these last 3-6 s: the relay keeps no state that grows with
//! the flood's length (the tunnel count is capped, the request buckets refill at a fixed
//! rate), so the property is the same. Every loop is bounded in time and count.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use roomcast_amt::{Gateway, GatewayConfig, Message, SourceGroup};
use roomcast_net::{Delivery, GatewayHandle, GatewayOptions, RelayHandle, RelayOptions};
use tokio::sync::mpsc::Receiver;

const CHANNEL: &str = "192.0.2.1@232.1.1.1";

/// Packets per second of the Request flood.
const FLOOD_RATE: f64 = 50_000.0;

fn relay_opts() -> RelayOptions {
    let mut o = RelayOptions::new("127.0.0.1:0".parse().unwrap());
    o.config.query_interval = Duration::from_secs(1);
    o
}

/// The legitimate gateway, on another address than the attacker.
async fn legitimate_gateway(relay: SocketAddr) -> (GatewayHandle, Receiver<Delivery>) {
    let mut o = GatewayOptions::new(relay);
    o.bind = Some("127.0.0.2:0".parse().unwrap());
    o.config.max_refresh_interval = Some(Duration::from_secs(1));
    let (gw, rx) = GatewayHandle::spawn(o).await.unwrap();
    gw.join(CHANNEL.parse().unwrap()).await.unwrap();
    (gw, rx)
}

/// Injects probes until `rx` gets one; the time that took, or None after `timeout`.
async fn time_to_data(relay: &RelayHandle, rx: &mut Receiver<Delivery>, timeout: Duration) -> Option<Duration> {
    let sg: SourceGroup = CHANNEL.parse().unwrap();
    let start = Instant::now();
    while start.elapsed() < timeout {
        relay.inject(sg, 1, 9, Bytes::from_static(b"probe")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        if rx.try_recv().is_ok() {
            return Some(start.elapsed());
        }
    }
    None
}

/// An attacker thread that runs `tunnels` real roomcast gateway machines, each on its own
/// port of 127.0.0.1, joined to the channel and refreshing, until `stop` or `limit`.
fn tunnel_attacker(relay: SocketAddr, tunnels: usize, stop: Arc<AtomicBool>, limit: Duration) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let now = Instant::now();
        let cfg = GatewayConfig {
            relay: Some(relay),
            initial_retransmit: Duration::from_millis(100),
            max_refresh_interval: Some(Duration::from_millis(500)),
            silence_probe: None,
            ..GatewayConfig::default()
        };
        let mut gws: Vec<(UdpSocket, Gateway)> = (0..tunnels)
            .map(|_| {
                let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
                sock.set_nonblocking(true).unwrap();
                let mut gw = Gateway::new(cfg.clone(), rand::SeedableRng::from_os_rng(), now);
                gw.handle_join(now, CHANNEL.parse().unwrap()).unwrap();
                (sock, gw)
            })
            .collect();
        let mut buf = vec![0u8; 2048];
        while !stop.load(Ordering::Relaxed) && now.elapsed() < limit {
            let now = Instant::now();
            for (sock, gw) in gws.iter_mut() {
                for _ in 0..64 {
                    match sock.recv_from(&mut buf) {
                        Ok((n, from)) => {
                            let _ = gw.handle_datagram(now, from, &buf[..n]);
                        }
                        Err(_) => break,
                    }
                }
                if gw.poll_timeout().is_some_and(|t| t <= now) {
                    gw.handle_timeout(now);
                }
                while let Some(t) = gw.poll_transmit() {
                    let _ = sock.send_to(&t.payload, t.destination);
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    })
}

/// Returns the tunnel count once it stopped growing for 300 ms (or at `limit`).
async fn settled_tunnels(relay: &RelayHandle, limit: Duration) -> usize {
    let start = Instant::now();
    let mut last = (relay.stats().tunnels, Instant::now());
    while start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let n = relay.stats().tunnels;
        if n != last.0 {
            last = (n, Instant::now());
        } else if n > 0 && last.1.elapsed() > Duration::from_millis(300) {
            break;
        }
    }
    last.0
}

/// Runs the tunnel attack against a relay with `per_address` tunnels per address: (the
/// attacker's tunnels, the legitimate gateway's time to data, if it got any within 2 s).
async fn tunnel_exhaustion(per_address: usize) -> (usize, Option<Duration>) {
    let mut opts = relay_opts();
    opts.config.max_tunnels = 100;
    opts.config.max_tunnels_per_address = per_address;
    // Only the tunnel cap defends here: the attacker gets all the Queries it asks for.
    opts.config.requests_per_second_per_address = 1_000_000;
    let relay = RelayHandle::spawn(opts).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let attacker = tunnel_attacker(relay.local_addr(), 200, stop.clone(), Duration::from_secs(8));
    let attacker_tunnels = settled_tunnels(&relay, Duration::from_secs(3)).await;
    let (gw, mut rx) = legitimate_gateway(relay.local_addr()).await;
    let waited = time_to_data(&relay, &mut rx, Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    attacker.join().unwrap();
    gw.close().await;
    relay.shutdown().await;
    (attacker_tunnels, waited)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_tunnel() {
    let (tunnels, waited) = tunnel_exhaustion(64).await;
    assert_eq!(tunnels, 64, "the attacker's address holds its share, no more");
    let waited = waited.expect("the legitimate gateway received nothing within 2 s of the attack");
    eprintln!("tunnel attack from one address: attacker holds {tunnels} of 100 tunnels, data after {waited:?}");

    // Control: without the per-address cap the same attack fills the relay.
    let (tunnels, waited) = tunnel_exhaustion(usize::MAX).await;
    assert_eq!(tunnels, 100);
    assert_eq!(waited, None, "without the cap the attack locks the gateway out (else this test proves nothing)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_flood_from_one_address_does_not_delay_a_new_gateway() {
    let mut opts = relay_opts();
    opts.config.requests_per_second = 2_000;
    let relay = RelayHandle::spawn(opts).await.unwrap();
    let target = relay.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let socks: Vec<UdpSocket> = (0..8).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
            let msgs = [
                Message::Request { nonce: 7, mld: false }.to_bytes().unwrap(),
                Message::RelayDiscovery { nonce: 7 }.to_bytes().unwrap(),
            ];
            let start = Instant::now();
            let mut sent = 0u64;
            while sent < 1_000_000 && !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(6) {
                for _ in 0..250 {
                    let i = sent as usize;
                    let _ = socks[i % socks.len()].send_to(&msgs[(i / 8) % 2], target);
                    sent += 1;
                }
                // Paced at FLOOD_RATE: sleep until this many packets are due.
                let due = start + Duration::from_secs_f64(sent as f64 / FLOOD_RATE);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            sent as f64 / start.elapsed().as_secs_f64()
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (gw, mut rx) = legitimate_gateway(target).await;
    let waited = time_to_data(&relay, &mut rx, Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let rate = flood.join().unwrap();
    let rejected = relay.stats().control_rejected;
    gw.close().await;
    relay.shutdown().await;
    eprintln!("Request flood of {rate:.0} packets/s from one address: {rejected} refused, data after {waited:?}");
    assert!(rejected > 1000, "the flood reached the relay ({rejected} refused)");
    let waited = waited.expect("the legitimate gateway received nothing within 2 s of starting during the flood");
    // Stricter than the 2 s: none of its Discovery/Request answers was refused, or it
    // would have waited for its 1 s retransmission. (Without per-address buckets, this flood
    // delayed it 1.04 s, 1.04 s and > 2 s in three runs.)
    assert!(waited < Duration::from_secs(1), "data only after {waited:?}: an answer was lost to the flood");
}
