//! Fuzz target: a Gateway and a Relay driven by arbitrary input — arbitrary datagrams from
//! arbitrary senders, joins/leaves, clock jumps, and honest exchanges between the two — must
//! never panic, and the relay's subscriber index must stay consistent with its tunnels, also
//! across a snapshot/restore (the `--state` file's restart) and with datagrams that name the
//! local address they arrived on (wildcard listen).
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rand::rngs::StdRng;
use rand::SeedableRng;
use roomcast_amt::{Gateway, GatewayConfig, Relay, RelayConfig, SourceGroup};

const GROUPS: [&str; 3] = ["10.0.0.1@232.1.1.1", "10.0.0.2@232.1.1.1", "2001:db8::1@ff3e::8000:1"];

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut now = t0;
    let relay_addr: SocketAddr = "192.0.2.1:2268".parse().unwrap();
    let senders: [SocketAddr; 3] = [
        "198.51.100.1:4000".parse().unwrap(),
        "198.51.100.2:4000".parse().unwrap(),
        "[2001:db8::9]:4000".parse().unwrap(),
    ];
    let mut relay = Relay::new(
        RelayConfig { advertised: relay_addr.ip(), max_tunnels: 2, max_groups_per_tunnel: 2, ..RelayConfig::default() },
        StdRng::seed_from_u64(1),
        t0,
    );
    let mut gw = Gateway::new(GatewayConfig { relay: Some(relay_addr), ..GatewayConfig::default() }, StdRng::seed_from_u64(2), t0);
    let groups: Vec<SourceGroup> = GROUPS.iter().map(|s| s.parse().unwrap()).collect();
    let mut rest = data;
    while let [op, arg, tail @ ..] = rest {
        rest = tail;
        match op % 6 {
            0 | 1 => {
                let len = usize::from(*arg).min(rest.len());
                let (dgram, tail) = rest.split_at(len);
                rest = tail;
                if op % 6 == 0 {
                    let local = [None, Some("127.0.0.1".parse().unwrap()), Some("::".parse().unwrap())];
                    let local = local[usize::from(*arg / 3) % 3];
                    let _ = relay.handle_datagram_on(now, senders[usize::from(*arg) % 3], local, dgram);
                } else {
                    let _ = gw.handle_datagram(now, relay_addr, dgram);
                }
            }
            2 => {
                let sg = groups[usize::from(*arg) % groups.len()];
                if arg & 0x80 == 0 {
                    let _ = gw.handle_join(now, sg);
                } else {
                    gw.handle_leave(now, sg);
                }
            }
            3 => {
                now += Duration::from_millis(u64::from(*arg) * 250);
                gw.handle_timeout(now);
                relay.handle_timeout(now);
            }
            4 => {
                // Honest exchange: deliver everything queued between the two.
                for _ in 0..4 {
                    while let Some(t) = gw.poll_transmit() {
                        let _ = relay.handle_datagram(now, senders[0], &t.payload);
                    }
                    while let Some(t) = relay.poll_transmit() {
                        if t.destination == senders[0] {
                            let _ = gw.handle_datagram(now, relay_addr, &t.payload);
                        }
                    }
                }
            }
            _ => {
                if arg & 1 == 0 {
                    gw.handle_close(now);
                }
                if arg & 2 != 0 {
                    // Relay restart from its snapshot, after a downtime of 0-63 s.
                    let down = Duration::from_secs(u64::from(arg >> 2));
                    relay = Relay::restore(relay.config().clone(), &relay.snapshot(now), down, StdRng::seed_from_u64(3), now);
                }
                while gw.poll_event().is_some() {}
                while relay.poll_event().is_some() {}
            }
        }
        assert!(relay.tunnel_count() <= 2);
        let tunnels = relay.tunnels();
        for sg in relay.subscribed().copied().collect::<Vec<_>>() {
            for sub in relay.subscribers(&sg) {
                assert!(tunnels.iter().any(|t| t.gateway == sub && t.groups.contains(&sg)), "index out of sync");
            }
        }
        for t in &tunnels {
            assert!(t.groups.len() <= 2);
            for sg in &t.groups {
                assert!(relay.subscribers(sg).any(|a| a == t.gateway), "tunnel missing from index");
            }
        }
        if let Some(deadline) = gw.poll_timeout() {
            assert!(deadline >= t0);
        }
    }
});
