//! Gateways and a relay wired together through an in-memory network with a fake clock:
//! joins over IPv4 and IPv6 groups, data fan-out, leave, relay restart and outage, spoofed
//! updates, close. Everything the drivers in `roomcast-net` do, minus the sockets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use roomcast_amt::{
    Gateway, GatewayConfig, GatewayEvent, GatewayState, Message, Relay, RelayConfig, RelayEvent, SourceGroup,
};

const RELAY: &str = "192.0.2.1:2268";

fn sg(s: &str) -> SourceGroup {
    s.parse().unwrap()
}

fn relay_config() -> RelayConfig {
    RelayConfig {
        advertised: "192.0.2.1".parse().unwrap(),
        query_interval: Duration::from_secs(2),
        query_response_interval: Duration::from_secs(1),
        // The G flag (off by default) lets the gateways send Teardown, which these tests check.
        query_gateway_address: true,
        ..RelayConfig::default()
    }
}

fn gateway_config() -> GatewayConfig {
    GatewayConfig {
        relay: Some(RELAY.parse().unwrap()),
        initial_retransmit: Duration::from_millis(250),
        max_retransmit: Duration::from_secs(1),
        relay_lost_holdoff: Duration::from_millis(250),
        ..GatewayConfig::default()
    }
}

struct Net {
    now: Instant,
    relay_addr: SocketAddr,
    relay: Option<Relay>,
    gateways: Vec<(SocketAddr, Gateway)>,
    /// Payloads received per gateway index.
    received: HashMap<usize, Vec<Vec<u8>>>,
    subscribed: Vec<SourceGroup>,
}

impl Net {
    fn new(n: usize) -> Self {
        let now = Instant::now();
        let gateways = (0..n)
            .map(|i| {
                let addr: SocketAddr = format!("198.51.100.{}:{}", i + 1, 40000 + i).parse().unwrap();
                (addr, Gateway::new(gateway_config(), StdRng::seed_from_u64(i as u64), now))
            })
            .collect();
        Net {
            now,
            relay_addr: RELAY.parse().unwrap(),
            relay: Some(Relay::new(relay_config(), StdRng::seed_from_u64(100), now)),
            gateways,
            received: HashMap::new(),
            subscribed: Vec::new(),
        }
    }

    /// Delivers queued datagrams until nothing moves.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.gateways.len() {
                let (addr, g) = &mut self.gateways[i];
                while let Some(t) = g.poll_transmit() {
                    moved = true;
                    assert_eq!(t.destination, self.relay_addr);
                    if let Some(r) = self.relay.as_mut() {
                        let _ = r.handle_datagram(self.now, *addr, &t.payload);
                    }
                }
            }
            if let Some(r) = self.relay.as_mut() {
                while let Some(t) = r.poll_transmit() {
                    moved = true;
                    if let Some((_, g)) = self.gateways.iter_mut().find(|(a, _)| *a == t.destination) {
                        let _ = g.handle_datagram(self.now, self.relay_addr, &t.payload);
                    }
                }
                while let Some(e) = r.poll_event() {
                    match e {
                        RelayEvent::Subscribe(s) => {
                            assert!(!self.subscribed.contains(&s), "double subscribe {s}");
                            self.subscribed.push(s)
                        }
                        RelayEvent::Unsubscribe(s) => {
                            assert!(self.subscribed.contains(&s), "unsubscribe without subscribe {s}");
                            self.subscribed.retain(|x| *x != s)
                        }
                    }
                }
            }
            for (i, (_, g)) in self.gateways.iter_mut().enumerate() {
                while let Some(e) = g.poll_event() {
                    if let GatewayEvent::Data(d) = e {
                        self.received.entry(i).or_default().push(d.payload);
                    }
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// Advances the fake clock to `now + dt`, firing every timer on the way.
    fn advance(&mut self, dt: Duration) {
        let end = self.now + dt;
        self.pump();
        loop {
            let next = self
                .gateways
                .iter()
                .filter_map(|(_, g)| g.poll_timeout())
                .chain(self.relay.as_ref().and_then(|r| r.poll_timeout()))
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    for (_, g) in &mut self.gateways {
                        g.handle_timeout(self.now);
                    }
                    if let Some(r) = self.relay.as_mut() {
                        r.handle_timeout(self.now);
                    }
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    /// The relay's native-multicast side: one datagram of `s` to every subscriber.
    fn send_data(&mut self, s: &SourceGroup, payload: &[u8]) {
        let Some(r) = self.relay.as_ref() else { return };
        let mut buf = Vec::new();
        Relay::encapsulate(s, 4000, 5004, payload, &mut buf).unwrap();
        let subs: Vec<SocketAddr> = r.subscribers(s).collect();
        for to in subs {
            if let Some((_, g)) = self.gateways.iter_mut().find(|(a, _)| *a == to) {
                g.handle_datagram(self.now, self.relay_addr, &buf).unwrap();
            }
        }
        self.pump();
    }

    fn take(&mut self, i: usize) -> Vec<Vec<u8>> {
        self.received.remove(&i).unwrap_or_default()
    }

    /// The relay process dies: its state (and native subscriptions) are gone.
    fn kill_relay(&mut self) {
        self.relay = None;
        self.subscribed.clear();
    }

    fn join(&mut self, i: usize, s: SourceGroup) {
        let now = self.now;
        self.gateways[i].1.handle_join(now, s).unwrap();
        self.pump();
    }
}

#[test]
fn three_gateways_ipv4_and_ipv6_groups_data_in_order() {
    let v4 = sg("10.0.0.1@232.1.1.1");
    let v6 = sg("2001:db8::1@ff3e::8000:1");
    let mut net = Net::new(3);
    net.join(0, v4);
    net.join(1, v4);
    net.join(1, v6);
    net.join(2, v6);
    net.advance(Duration::from_secs(1));
    for (_, g) in &net.gateways {
        assert_eq!(g.state(), &GatewayState::Joined { relay: RELAY.parse().unwrap() });
    }
    assert_eq!(net.relay.as_ref().unwrap().tunnel_count(), 3);
    net.subscribed.sort();
    assert_eq!(net.subscribed, vec![v4, v6]);
    for n in 0u8..50 {
        net.send_data(&v4, &[4, n]);
        net.send_data(&v6, &[6, n]);
    }
    let in_order = |tag: u8| (0u8..50).map(|n| vec![tag, n]).collect::<Vec<_>>();
    assert_eq!(net.take(0), in_order(4));
    let both = net.take(1);
    assert_eq!(both.iter().filter(|p| p[0] == 4).cloned().collect::<Vec<_>>(), in_order(4));
    assert_eq!(both.iter().filter(|p| p[0] == 6).cloned().collect::<Vec<_>>(), in_order(6));
    assert_eq!(net.take(2), in_order(6));
    // Memberships survive many refresh cycles.
    net.advance(Duration::from_secs(60));
    net.send_data(&v4, b"late");
    assert_eq!(net.take(0), vec![b"late".to_vec()]);
}

#[test]
fn a_gateway_that_leaves_stops_receiving() {
    let v4 = sg("10.0.0.1@232.1.1.1");
    let mut net = Net::new(2);
    net.join(0, v4);
    net.join(1, v4);
    net.advance(Duration::from_secs(1));
    let now = net.now;
    net.gateways[0].1.handle_leave(now, v4);
    net.pump();
    net.send_data(&v4, b"x");
    assert!(net.take(0).is_empty());
    assert_eq!(net.take(1), vec![b"x".to_vec()]);
    assert_eq!(net.subscribed, vec![v4]);
    // Leaving the last group tore the tunnel down.
    assert_eq!(net.relay.as_ref().unwrap().tunnel_count(), 1);
    let now = net.now;
    net.gateways[1].1.handle_leave(now, v4);
    net.pump();
    assert!(net.subscribed.is_empty(), "last leave unsubscribes natively");
    net.advance(Duration::from_secs(30));
    assert_eq!(net.relay.as_ref().unwrap().tunnel_count(), 0);
    // Both gateways keep an empty tunnel handshake alive and can join again.
    net.join(0, v4);
    net.send_data(&v4, b"again");
    assert_eq!(net.take(0), vec![b"again".to_vec()]);
}

#[test]
fn restarted_relay_is_rejoined_and_data_resumes_within_5s() {
    let v4 = sg("10.0.0.1@232.1.1.1");
    let v6 = sg("2001:db8::1@ff3e::8000:1");
    let mut net = Net::new(3);
    net.join(0, v4);
    net.join(1, v6);
    net.join(2, v4);
    net.advance(Duration::from_secs(1));
    // Kill: the relay disappears for 1.5 s (datagrams to it are lost), then a new process
    // with a new secret and an empty table starts at the same address.
    net.kill_relay();
    net.advance(Duration::from_millis(1500));
    net.relay = Some(Relay::new(relay_config(), StdRng::seed_from_u64(101), net.now));
    let restarted = net.now;
    let mut resumed = None;
    while net.now < restarted + Duration::from_secs(10) {
        net.advance(Duration::from_millis(100));
        net.send_data(&v4, b"d4");
        net.send_data(&v6, b"d6");
        let r0 = net.take(0);
        let r1 = net.take(1);
        let r2 = net.take(2);
        if !r0.is_empty() && !r1.is_empty() && !r2.is_empty() {
            resumed = Some(net.now - restarted);
            break;
        }
    }
    let resumed = resumed.expect("data resumed");
    eprintln!("data resumed {resumed:?} after the relay restarted");
    assert!(resumed <= Duration::from_secs(5), "resumed after {resumed:?}");
}

#[test]
fn restarted_relay_with_default_timers_is_rejoined_within_5s() {
    // Default timers everywhere (RFC query interval of 125 s): the gateway's silence probe and
    // bounded retransmission backoff find the restarted relay, whatever the outage length.
    let s = sg("10.0.0.1@232.1.1.1");
    for outage in [Duration::ZERO, Duration::from_secs(3), Duration::from_secs(20)] {
        let mut net = Net::new(2);
        let defaults = RelayConfig { advertised: "192.0.2.1".parse().unwrap(), ..RelayConfig::default() };
        net.relay = Some(Relay::new(defaults.clone(), StdRng::seed_from_u64(102), net.now));
        for i in 0..2 {
            let now = net.now;
            let config = GatewayConfig { relay: Some(RELAY.parse().unwrap()), ..GatewayConfig::default() };
            net.gateways[i].1 = Gateway::new(config, StdRng::seed_from_u64(i as u64), now);
            net.join(i, s);
        }
        for _ in 0..30 {
            net.advance(Duration::from_millis(100));
            net.send_data(&s, b"live");
        }
        assert!(!net.take(0).is_empty() && !net.take(1).is_empty());
        net.kill_relay();
        net.advance(outage);
        // A restarted relay draws a new secret.
        net.relay = Some(Relay::new(defaults, StdRng::seed_from_u64(103), net.now));
        let restarted = net.now;
        let mut resumed = None;
        while net.now < restarted + Duration::from_secs(20) {
            net.advance(Duration::from_millis(100));
            net.send_data(&s, b"live");
            if !net.take(0).is_empty() && !net.take(1).is_empty() {
                resumed = Some(net.now - restarted);
                break;
            }
        }
        let resumed = resumed.expect("data resumed");
        eprintln!("default timers, outage {outage:?}: data resumed {resumed:?} after the relay restarted");
        assert!(resumed <= Duration::from_secs(5), "outage {outage:?}: resumed after {resumed:?}");
    }
}

#[test]
fn long_outage_leads_to_rediscovery() {
    let v4 = sg("10.0.0.1@232.1.1.1");
    let mut net = Net::new(1);
    net.join(0, v4);
    net.advance(Duration::from_secs(1));
    net.kill_relay();
    net.advance(Duration::from_secs(10));
    let state = net.gateways[0].1.state().clone();
    assert!(matches!(state, GatewayState::Discovering | GatewayState::RelayLost { .. }), "{state:?}");
    net.relay = Some(Relay::new(relay_config(), StdRng::seed_from_u64(101), net.now));
    net.advance(Duration::from_secs(3));
    assert_eq!(net.gateways[0].1.state(), &GatewayState::Joined { relay: RELAY.parse().unwrap() });
    net.send_data(&v4, b"back");
    assert_eq!(net.take(0), vec![b"back".to_vec()]);
}

#[test]
fn spoofed_update_with_wrong_mac_changes_nothing() {
    let v4 = sg("10.0.0.1@232.1.1.1");
    let victim_group = sg("10.0.0.1@232.9.9.9");
    let mut net = Net::new(1);
    net.join(0, v4);
    net.advance(Duration::from_secs(1));
    let victim = net.gateways[0].0;
    let nonce = net.gateways[0].1.request_nonce();
    let report = roomcast_amt::membership::EncapsulatedReport::Igmp {
        source: "0.0.0.0".parse().unwrap(),
        report: roomcast_amt::igmp::IgmpV3Report {
            records: vec![
                roomcast_amt::group_record::GroupRecord {
                    record_type: roomcast_amt::group_record::RecordType::ChangeToInclude,
                    group: "232.1.1.1".parse().unwrap(),
                    sources: vec![],
                },
                roomcast_amt::group_record::GroupRecord {
                    record_type: roomcast_amt::group_record::RecordType::AllowNewSources,
                    group: "232.9.9.9".parse().unwrap(),
                    sources: vec!["10.0.0.1".parse().unwrap()],
                },
            ],
        },
    };
    let spoof = Message::MembershipUpdate(roomcast_amt::message::MembershipUpdate {
        mac: roomcast_amt::ResponseMac([0x13; 6]),
        nonce,
        report,
    })
    .to_bytes()
    .unwrap();
    let now = net.now;
    let r = net.relay.as_mut().unwrap();
    assert!(matches!(r.handle_datagram(now, victim, &spoof), Err(roomcast_amt::AmtError::MacMismatch(_))));
    assert!(r.poll_event().is_none());
    assert_eq!(r.subscribers(&v4).collect::<Vec<_>>(), vec![victim]);
    assert_eq!(r.subscribers(&victim_group).count(), 0);
    net.send_data(&v4, b"still");
    assert_eq!(net.take(0), vec![b"still".to_vec()]);
}

#[test]
fn close_tears_the_tunnel_down() {
    let v4 = sg("10.0.0.1@232.1.1.1");
    let mut net = Net::new(2);
    net.join(0, v4);
    net.join(1, v4);
    net.advance(Duration::from_secs(1));
    let now = net.now;
    net.gateways[0].1.handle_close(now);
    net.pump();
    assert_eq!(net.relay.as_ref().unwrap().tunnel_count(), 1);
    assert_eq!(net.relay.as_ref().unwrap().subscribers(&v4).collect::<Vec<_>>(), vec![net.gateways[1].0]);
    assert_eq!(net.gateways[0].1.state(), &GatewayState::Closed);
}
