//! In-process tests of the relay and gateway drivers ([`RelayHandle`], [`GatewayHandle`])
//! over loopback, with the real `roomcast-amt` machines: delivery intact and in order for
//! IPv4 and IPv6 channels, the state watch, leave and close/teardown, inject sockets, relay
//! restart on the same port, and native IPv4 source-specific multicast received on `lo`.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::Bytes;
use roomcast_amt::{GatewayState, SourceGroup};
use roomcast_net::{ChannelSpec, Delivery, GatewayHandle, GatewayOptions, InjectSpec, RelayHandle, RelayOptions};
use tokio::sync::mpsc::Receiver;

const V4: &str = "192.0.2.1@232.1.1.1";
const V6: &str = "2001:db8::1@ff3e::8000:1";

fn sg(s: &str) -> SourceGroup {
    s.parse().unwrap()
}

fn relay_opts(listen: SocketAddr) -> RelayOptions {
    let mut o = RelayOptions::new(listen);
    o.config.query_interval = Duration::from_secs(1);
    o
}

fn gateway_opts(relay: SocketAddr) -> GatewayOptions {
    let mut o = GatewayOptions::new(relay);
    o.bind = Some("127.0.0.1:0".parse().unwrap());
    o.config.max_refresh_interval = Some(Duration::from_secs(1));
    o
}

async fn wait_joined(gw: &GatewayHandle) {
    let mut w = gw.state();
    tokio::time::timeout(Duration::from_secs(5), w.wait_for(|s| matches!(s, GatewayState::Joined { .. })))
        .await
        .expect("gateway did not reach Joined in 5 s")
        .unwrap();
}

/// Injects probes into `sg` until `rx` gets one (the relay has the membership), returns the time taken.
async fn wait_flowing(
    relay: &RelayHandle,
    sgs: &[SourceGroup],
    rx: &mut Receiver<Delivery>,
    timeout: Duration,
) -> Duration {
    let start = Instant::now();
    let mut seen = vec![false; sgs.len()];
    while start.elapsed() < timeout {
        for s in sgs {
            relay.inject(*s, 1, 9, Bytes::from_static(b"probe")).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        while let Ok(d) = rx.try_recv() {
            if let Some(i) = sgs.iter().position(|s| *s == d.source_group()) {
                seen[i] = true;
            }
        }
        if seen.iter().all(|s| *s) {
            return start.elapsed();
        }
    }
    panic!("data not flowing after {timeout:?}: {seen:?}");
}

fn payload(tag: u8, seq: u32) -> Bytes {
    let mut v = vec![tag; 1316];
    v[1..5].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in v.iter_mut().enumerate().skip(5) {
        *b = (seq as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
    Bytes::from(v)
}

/// Collects deliveries with dest port 5004 (the measured traffic) until `n` or `timeout`.
async fn collect(rx: &mut Receiver<Delivery>, n: usize, timeout: Duration) -> Vec<Delivery> {
    let mut out = Vec::new();
    let end = tokio::time::Instant::now() + timeout;
    while out.len() < n {
        match tokio::time::timeout_at(end, rx.recv()).await {
            Ok(Some(d)) if d.group.port() == 5004 => out.push(d),
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    out
}

#[tokio::test]
async fn two_gateways_get_ipv4_and_ipv6_channels_intact_and_in_order() {
    let relay = RelayHandle::spawn(relay_opts("127.0.0.1:0".parse().unwrap())).await.unwrap();
    let (a, mut arx) = GatewayHandle::spawn(gateway_opts(relay.local_addr())).await.unwrap();
    let (b, mut brx) = GatewayHandle::spawn(gateway_opts(relay.local_addr())).await.unwrap();
    a.join(sg(V4)).await.unwrap();
    a.join(sg(V6)).await.unwrap();
    b.join(sg(V4)).await.unwrap();
    wait_joined(&a).await;
    wait_joined(&b).await;
    wait_flowing(&relay, &[sg(V4), sg(V6)], &mut arx, Duration::from_secs(5)).await;
    wait_flowing(&relay, &[sg(V4)], &mut brx, Duration::from_secs(5)).await;
    assert_eq!(relay.stats().tunnels, 2);

    for seq in 0..200u32 {
        relay.inject(sg(V4), 4000, 5004, payload(4, seq)).await.unwrap();
        relay.inject(sg(V6), 6000, 5004, payload(6, seq)).await.unwrap();
        if seq % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let got_a = collect(&mut arx, 400, Duration::from_secs(3)).await;
    let got_b = collect(&mut brx, 200, Duration::from_secs(3)).await;
    for (tag, sgs, port) in [(4u8, V4, 4000u16), (6, V6, 6000)] {
        let mine: Vec<&Delivery> = got_a.iter().filter(|d| d.source_group() == sg(sgs)).collect();
        assert_eq!(mine.len(), 200, "gateway A, channel {sgs}");
        for (seq, d) in mine.iter().enumerate() {
            assert_eq!(d.payload, payload(tag, seq as u32), "payload {seq} of {sgs} intact and in order");
            assert_eq!(d.source.port(), port);
            assert_eq!(d.group.ip(), sg(sgs).group);
        }
    }
    assert_eq!(got_b.len(), 200);
    assert!(got_b.iter().all(|d| d.source_group() == sg(V4)), "B joined only the IPv4 channel");
    let st = relay.stats();
    assert!(st.data_out >= 600, "{st:?}");
    assert_eq!(a.stats().dropped, 0);
    relay.shutdown().await;
}

#[tokio::test]
async fn dual_stack_relay_serves_ipv4_and_ipv6_gateways() {
    let relay = RelayHandle::spawn(relay_opts("[::]:0".parse().unwrap())).await.unwrap();
    let port = relay.local_addr().port();
    let mut o4 = gateway_opts(SocketAddr::from(([127, 0, 0, 1], port)));
    o4.bind = None; // the driver picks 0.0.0.0:0 for an IPv4 relay
    let mut o6 = gateway_opts(format!("[::1]:{port}").parse().unwrap());
    o6.bind = Some("[::1]:0".parse().unwrap());
    let (g4, mut r4) = GatewayHandle::spawn(o4).await.unwrap();
    let (g6, mut r6) = GatewayHandle::spawn(o6).await.unwrap();
    assert!(g4.local_addr().is_ipv4());
    for g in [&g4, &g6] {
        g.join(sg(V6)).await.unwrap();
    }
    wait_flowing(&relay, &[sg(V6)], &mut r4, Duration::from_secs(5)).await;
    wait_flowing(&relay, &[sg(V6)], &mut r6, Duration::from_secs(5)).await;
    assert_eq!(relay.stats().tunnels, 2);
    g4.close().await;
    g6.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn state_watch_leave_and_close_teardown() {
    // Teardown needs the gateway's address as the relay sees it (G flag, off by default).
    let mut opts = relay_opts("127.0.0.1:0".parse().unwrap());
    opts.config.query_gateway_address = true;
    let relay = RelayHandle::spawn(opts).await.unwrap();
    let (gw, mut rx) = GatewayHandle::spawn(gateway_opts(relay.local_addr())).await.unwrap();
    let mut states = gw.state();
    let mut seen = vec![states.borrow().clone()];
    gw.join(sg(V4)).await.unwrap();
    gw.join(sg(V6)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !matches!(seen.last(), Some(GatewayState::Joined { .. })) && Instant::now() < deadline {
        if tokio::time::timeout(Duration::from_millis(200), states.changed()).await.is_ok() {
            seen.push(states.borrow_and_update().clone());
        }
    }
    assert!(matches!(seen.first(), Some(GatewayState::Discovering)), "{seen:?}");
    assert!(matches!(seen.last(), Some(GatewayState::Joined { relay: r }) if *r == relay.local_addr()), "{seen:?}");
    wait_flowing(&relay, &[sg(V4), sg(V6)], &mut rx, Duration::from_secs(5)).await;

    // Leaving one group stops its data, the other keeps flowing.
    gw.leave(sg(V6)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    while rx.try_recv().is_ok() {}
    for seq in 0..20 {
        relay.inject(sg(V6), 1, 5004, payload(6, seq)).await.unwrap();
        relay.inject(sg(V4), 1, 5004, payload(4, seq)).await.unwrap();
    }
    let got = collect(&mut rx, 40, Duration::from_millis(500)).await;
    assert_eq!(got.len(), 20, "only the IPv4 channel after leaving IPv6");
    assert!(got.iter().all(|d| d.source_group() == sg(V4)));

    // close(): Teardown reaches the relay, which drops the tunnel; the watch says Closed.
    assert_eq!(relay.stats().tunnels, 1);
    let watch = gw.state();
    gw.close().await;
    assert_eq!(*watch.borrow(), GatewayState::Closed);
    let deadline = Instant::now() + Duration::from_secs(3);
    while relay.stats().tunnels != 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(relay.stats().tunnels, 0, "the relay must drop the tunnel on Teardown");
    relay.shutdown().await;
}

#[tokio::test]
async fn inject_socket_turns_datagrams_into_channel_data() {
    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut opts = relay_opts("127.0.0.1:0".parse().unwrap());
    let rule: InjectSpec = format!("127.0.0.1:{port}={V6}:5004").parse().unwrap();
    opts.injects.push(rule);
    let relay = RelayHandle::spawn(opts).await.unwrap();
    let (gw, mut rx) = GatewayHandle::spawn(gateway_opts(relay.local_addr())).await.unwrap();
    gw.join(sg(V6)).await.unwrap();
    wait_joined(&gw).await;
    let src = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut got = None;
    for _ in 0..100 {
        src.send_to(b"from the inject socket", ("127.0.0.1", port)).unwrap();
        if let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
            got = Some(d);
            break;
        }
    }
    let d = got.expect("inject socket data must reach the gateway");
    assert_eq!(&d.payload[..], b"from the inject socket");
    assert_eq!(d.group, SocketAddr::new(sg(V6).group, 5004));
    assert_eq!(d.source, SocketAddr::new(sg(V6).source, src.local_addr().unwrap().port()));
    let ch: ChannelSpec = format!("{V6}:5004").parse().unwrap();
    assert_eq!(ch.source_group(), sg(V6));
    gw.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn restarted_relay_on_the_same_port_is_found_again() {
    let relay = RelayHandle::spawn(relay_opts("127.0.0.1:0".parse().unwrap())).await.unwrap();
    let addr = relay.local_addr();
    let (gw, mut rx) = GatewayHandle::spawn(gateway_opts(addr)).await.unwrap();
    gw.join(sg(V4)).await.unwrap();
    wait_flowing(&relay, &[sg(V4)], &mut rx, Duration::from_secs(5)).await;
    relay.shutdown().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let relay = RelayHandle::spawn(relay_opts(addr)).await.unwrap();
    let took = wait_flowing(&relay, &[sg(V4)], &mut rx, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(5), "resumed after {took:?}");
    gw.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn stopped_drivers_report_it() {
    let relay = RelayHandle::spawn(relay_opts("127.0.0.1:0".parse().unwrap())).await.unwrap();
    let (gw, _rx) = GatewayHandle::spawn(gateway_opts(relay.local_addr())).await.unwrap();
    // An invalid (non-SSM) group is refused with a named error.
    let bad = SourceGroup { source: "10.0.0.1".parse().unwrap(), group: "239.1.1.1".parse().unwrap() };
    let e = gw.join(bad).await.unwrap_err().to_string();
    assert!(e.contains("239.1.1.1"), "{e}");
    gw.close().await;
    relay.shutdown().await;
    // Binding the same port twice names the address.
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let e = RelayHandle::spawn(relay_opts(taken.local_addr().unwrap())).await.unwrap_err().to_string();
    assert!(e.contains(&taken.local_addr().unwrap().to_string()), "{e}");
    // A native interface that does not exist is named in the error.
    let mut o = relay_opts("127.0.0.1:0".parse().unwrap());
    o.native_interface = Some("nosuchif9".into());
    let e = RelayHandle::spawn(o).await.unwrap_err().to_string();
    assert!(e.contains("nosuchif9"), "{e}");
}

/// Native IPv4 SSM on the loopback interface: the relay joins (127.0.0.1, 232.9.9.x) on `lo`
/// when the gateway subscribes and forwards what a local sender multicasts there.
#[tokio::test]
async fn native_ipv4_multicast_is_received_and_forwarded() {
    // A group of its own per process, so concurrent runs of this test do not see each other.
    let pid = std::process::id();
    let group = format!("232.9.{}.{}", (pid >> 8) & 0xff, pid & 0xff);
    let channel = sg(&format!("127.0.0.1@{group}"));
    let mut opts = relay_opts("127.0.0.1:0".parse().unwrap());
    opts.native_interface = Some("lo".into());
    let relay = RelayHandle::spawn(opts).await.unwrap();
    if !relay.native_active() {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "native multicast needs CAP_NET_RAW in CI");
        eprintln!("SKIPPED native_ipv4_multicast_is_received_and_forwarded: no CAP_NET_RAW for raw UDP sockets");
        return;
    }
    let (gw, mut rx) = GatewayHandle::spawn(gateway_opts(relay.local_addr())).await.unwrap();
    gw.join(channel).await.unwrap();
    wait_joined(&gw).await;

    let sender = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    sender.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into()).unwrap();
    sender.set_multicast_if_v4(&"127.0.0.1".parse().unwrap()).unwrap();
    sender.set_multicast_loop_v4(true).unwrap();
    let sender: UdpSocket = sender.into();
    let dest: SocketAddr = format!("{group}:5010").parse().unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seq = 0u32;
    while got.len() < 5 && Instant::now() < deadline {
        sender.send_to(&seq.to_be_bytes(), dest).unwrap();
        seq += 1;
        if let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
            // Only our sender's datagrams count (anything else on this (S,G) is another test's).
            if d.source == sender.local_addr().unwrap() {
                got.push(d);
            }
        }
    }
    assert!(got.len() >= 5, "native multicast must reach the gateway (got {})", got.len());
    for d in &got {
        assert_eq!(d.source_group(), channel);
        assert_eq!(d.group.port(), 5010);
        assert_eq!(d.source, sender.local_addr().unwrap());
        assert_eq!(d.payload.len(), 4);
    }
    let seqs: Vec<u32> = got.iter().map(|d| u32::from_be_bytes(d.payload[..4].try_into().unwrap())).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    gw.close().await;
    relay.shutdown().await;
}
