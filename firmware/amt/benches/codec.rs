//! Benchmark (not a test): throughput of the sans-IO data plane and control plane on one core.
//! Prints packets/s and Mbit/s for encapsulation and decapsulation of 1316-byte payloads
//! (IPv4 and IPv6 groups), relay Request/Update handling, and subscriber lookup.
//! Run with `cargo bench -p roomcast-amt`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn seeded(seed: u64) -> rand::rngs::StdRng {
    rand::SeedableRng::seed_from_u64(seed)
}

use roomcast_amt::{decapsulate, encapsulate, Gateway, GatewayConfig, Message, Relay, RelayConfig, SourceGroup};

const PAYLOAD: usize = 1316;

/// Runs `f` repeatedly for about `for_` and returns operations per second.
fn rate(for_: Duration, mut f: impl FnMut()) -> f64 {
    // Warm up.
    for _ in 0..1000 {
        f();
    }
    let start = Instant::now();
    let mut n: u64 = 0;
    while start.elapsed() < for_ {
        for _ in 0..1000 {
            f();
        }
        n += 1000;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn report(name: &str, pps: f64, bytes: usize) {
    let mbit = pps * bytes as f64 * 8.0 / 1e6;
    let ns = 1e9 / pps;
    println!("{name:<48} {pps:>12.0} pkt/s {mbit:>10.0} Mbit/s {ns:>8.0} ns/pkt");
}

fn main() {
    let d = Duration::from_millis(700);
    let payload = vec![0x47u8; PAYLOAD];
    println!("roomcast-amt codec benchmark, {PAYLOAD}-byte payloads, one core");
    for sg in ["10.0.0.1@232.1.1.1", "2001:db8::1@ff3e::8000:1"] {
        let sg: SourceGroup = sg.parse().unwrap();
        let fam = if sg.is_ipv4() { "IPv4" } else { "IPv6" };
        let mut out = Vec::with_capacity(2048);
        let pps = rate(d, || {
            encapsulate(black_box(&sg), 4000, 5004, black_box(&payload), &mut out).unwrap();
            black_box(&out);
        });
        report(&format!("encapsulate {fam} (checksums)"), pps, PAYLOAD);
        let pps = rate(d, || {
            let r = decapsulate(black_box(&out)).unwrap();
            black_box(r.payload.len());
        });
        report(&format!("decapsulate {fam} (verify checksums)"), pps, PAYLOAD);
    }

    // Gateway fast path: data from the relay for a joined group.
    let t0 = Instant::now();
    let relay_addr: SocketAddr = "192.0.2.1:2268".parse().unwrap();
    let gw_addr: SocketAddr = "198.51.100.9:40000".parse().unwrap();
    let mut relay = Relay::new(RelayConfig { advertised: relay_addr.ip(), ..RelayConfig::default() }, seeded(1), t0);
    let mut gw = Gateway::new(GatewayConfig { relay: Some(relay_addr), ..GatewayConfig::default() }, seeded(2), t0);
    let sg: SourceGroup = "10.0.0.1@232.1.1.1".parse().unwrap();
    gw.handle_join(t0, sg).unwrap();
    for _ in 0..4 {
        while let Some(t) = gw.poll_transmit() {
            let _ = relay.handle_datagram(t0, gw_addr, &t.payload);
        }
        while let Some(t) = relay.poll_transmit() {
            let _ = gw.handle_datagram(t0, relay_addr, &t.payload);
        }
    }
    assert_eq!(relay.subscribers(&sg).count(), 1, "joined");
    let mut data = Vec::new();
    encapsulate(&sg, 4000, 5004, &payload, &mut data).unwrap();
    let pps = rate(d, || {
        let r = gw.accept_data(black_box(relay_addr), black_box(&data)).unwrap().unwrap();
        black_box(r.payload.len());
    });
    report("Gateway::accept_data (filter + decapsulate)", pps, PAYLOAD);

    // Relay control plane.
    let req = Message::Request { nonce: 1, mld: false }.to_bytes().unwrap();
    let mut relay2 = Relay::new(
        RelayConfig {
            requests_per_second: u32::MAX / 4,
            requests_per_second_per_address: u32::MAX / 4,
            ..RelayConfig::default()
        },
        seeded(3),
        t0,
    );
    let rps = rate(d, || {
        relay2.handle_datagram(t0, gw_addr, black_box(&req)).unwrap();
        black_box(relay2.poll_transmit());
    });
    println!("{:<48} {rps:>12.0} req/s (query with HMAC-SHA-256 MAC)", "Relay Request -> Query");
    let lookups = rate(d, || {
        black_box(relay.subscribers(black_box(&sg)).count());
    });
    println!("{:<48} {lookups:>12.0} lookups/s", "Relay::subscribers");
}
