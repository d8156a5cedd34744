//! `roomcast relay` as a standard RFC 7450 gateway sees it, with AMT messages built byte by
//! byte in this test (not with roomcast-amt):
//! - the Relay Advertisement carries a real unicast address: the local address a Discovery was
//!   sent to when the relay listens on 0.0.0.0, the `--listen` address when it is specific, the
//!   `--advertise` address when given (RFC 7450 5.1.2); replies come from that address and the
//!   IGMPv3 query inside the Membership Query has it as its source;
//! - tshark dissects every message of these exchanges, and of the restart runs (everything the
//!   quiet gateway sends and receives), with nothing malformed.

mod amt_util;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use amt_util::*;

fn start_relay(args: &[&str]) -> Proc {
    let mut a = vec!["relay".to_string()];
    a.extend(args.iter().map(|s| s.to_string()));
    let relay = Proc::spawn("relay", &a);
    assert!(relay.wait_log(0, &["AMT relay listening"], Duration::from_secs(10)), "relay: {:?}", relay.log());
    relay
}

/// Sends `msg` to `to` from `sock` until an answer of AMT type `ty` arrives (bounded).
fn ask(sock: &UdpSocket, to: SocketAddr, msg: &[u8], ty: u8) -> (Vec<u8>, SocketAddr) {
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut buf = [0u8; 2048];
    for _ in 0..25 {
        sock.send_to(msg, to).unwrap();
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            if buf.first() == Some(&ty) {
                return (buf[..n].to_vec(), from);
            }
        }
    }
    panic!("no AMT type {ty} answer from {to}");
}

/// One Discovery/Advertisement and Request/Query exchange with the relay reached at `to`;
/// returns the advertised address, the IGMP query source and the four datagrams seen.
fn handshake(to: SocketAddr) -> (IpAddr, Ipv4Addr, Vec<Datagram>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = sock.local_addr().unwrap();
    let disc = amt_discovery(0x1234_5678);
    let (adv, adv_from) = ask(&sock, to, &disc, 0x02);
    assert_eq!(adv_from, to, "the Advertisement comes from the address the Discovery went to");
    let (nonce, relay) = advertisement(&adv).expect("a well-formed Relay Advertisement");
    assert_eq!(nonce, 0x1234_5678);
    let req = amt_request(0x0bad_cafe);
    let (query, query_from) = ask(&sock, to, &req, 0x04);
    assert_eq!(query_from, to);
    assert!(query_mac(&query).is_some());
    let source = query_igmp_source(&query).expect("an IGMPv3 query for P=0");
    let frames = vec![(me, to, disc), (to, me, adv), (me, to, req), (to, me, query)];
    (relay, source, frames)
}

/// tshark over the datagrams: AMT types, the advertised IPv4 address, nothing malformed.
fn dissect(name: &str, frames: &[Datagram], advertised: Ipv4Addr) {
    let Some(tshark) = roomcast_test_support::require_tool("tshark") else { return };
    let dir = std::env::temp_dir().join(format!("roomcast-amt-standard-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("amt.pcap");
    std::fs::write(&file, pcap_udp(frames)).unwrap();
    // The relay is not on port 2268 here: tell tshark its port is AMT.
    let relay_port = format!("udp.port=={},amt", frames[0].1.port());
    let out = Command::new(tshark)
        .arg("-r")
        .arg(&file)
        .args(["-d", &relay_port])
        .args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"])
        .args(["-e", "amt.type", "-e", "amt.relay_address.ipv4", "-e", "igmp.type", "-e", "_ws.malformed"])
        .args(["-e", "_ws.expert.severity"])
        .output()
        .expect("tshark runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "tshark failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Vec<&str>> = stdout.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    let types: Vec<&str> = lines.iter().map(|f| f[0]).collect();
    assert_eq!(types, ["1", "2", "3", "4"], "{stdout}");
    assert_eq!(lines[1][1], advertised.to_string(), "advertised address as tshark reads it:\n{stdout}");
    assert_eq!(lines[3][2], "0x11", "an IGMP membership query inside the Membership Query:\n{stdout}");
    for f in &lines {
        assert!(f[3].is_empty(), "malformed: {stdout}");
        for sev in f[4].split(',').filter(|s| !s.is_empty()) {
            let v = u32::from_str_radix(sev.trim_start_matches("0x"), 16).or_else(|_| sev.parse()).unwrap_or(u32::MAX);
            assert!(v < 0x0060_0000, "expert warning or error: {stdout}");
        }
    }
}

#[test]
fn wildcard_relay_advertises_the_address_each_discovery_was_sent_to() {
    let port = free_udp_port();
    let _relay = start_relay(&["--listen", &format!("0.0.0.0:{port}")]);
    // Two local addresses of the same wildcard socket: each answer names its own.
    for local in [Ipv4Addr::LOCALHOST, Ipv4Addr::new(127, 0, 0, 2)] {
        let to = SocketAddr::new(local.into(), port);
        let (relay, source, frames) = handshake(to);
        assert_eq!(relay, IpAddr::V4(local), "Advertisement of a relay listening on 0.0.0.0, reached at {local}");
        assert_eq!(source, local, "IGMP query source");
        dissect(&format!("wild-{local}"), &frames, local);
    }
}

#[test]
fn specific_listen_and_advertise_options_set_the_advertised_address() {
    let port = free_udp_port();
    let _relay = start_relay(&["--listen", &format!("127.0.0.1:{port}")]);
    let (relay, source, frames) = handshake(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port));
    assert_eq!(relay, IpAddr::V4(Ipv4Addr::LOCALHOST), "the --listen address");
    assert_eq!(source, Ipv4Addr::LOCALHOST);
    dissect("listen", &frames, Ipv4Addr::LOCALHOST);

    let nat = Ipv4Addr::new(192, 0, 2, 7);
    let port = free_udp_port();
    let _relay = start_relay(&["--listen", &format!("0.0.0.0:{port}"), "--advertise", "192.0.2.7"]);
    let (relay, source, frames) = handshake(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port));
    assert_eq!(relay, IpAddr::V4(nat), "--advertise wins");
    assert_eq!(source, nat);
    dissect("advertise", &frames, nat);
}

/// A gateway that behaves like a standard one with a 125 s refresh interval: one Request,
/// one Update, then it only listens (it never notices a relay restart by itself). Every
/// datagram it sends or receives is kept for tshark.
struct QuietGateway {
    sock: UdpSocket,
    relay: SocketAddr,
    seen: std::cell::RefCell<Vec<Datagram>>,
}

impl QuietGateway {
    fn join(relay: SocketAddr, source: Ipv4Addr, group: Ipv4Addr) -> QuietGateway {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let me = sock.local_addr().unwrap();
        let nonce = 0x5eed_0001;
        let req = amt_request(nonce);
        let (query, _) = ask(&sock, relay, &req, 0x04);
        let mac = query_mac(&query).unwrap();
        let update = amt_update(mac, nonce, &igmpv3_report(source, group));
        sock.send_to(&update, relay).unwrap();
        let seen = vec![(me, relay, req), (relay, me, query), (me, relay, update)];
        QuietGateway { sock, relay, seen: std::cell::RefCell::new(seen) }
    }

    /// Receives one datagram (read timeout set), keeping it if it came from the relay.
    fn recv(&self, buf: &mut [u8]) -> Option<usize> {
        let (n, from) = self.sock.recv_from(buf).ok()?;
        if from == self.relay {
            self.seen.borrow_mut().push((from, self.sock.local_addr().unwrap(), buf[..n].to_vec()));
        }
        Some(n)
    }

    /// Waits (bounded) for the first AMT Multicast Data while `poke` keeps data coming.
    fn first_data(&self, timeout: Duration, mut poke: impl FnMut()) -> Option<Duration> {
        let start = std::time::Instant::now();
        self.sock.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut buf = [0u8; 2048];
        while start.elapsed() < timeout {
            poke();
            while let Some(n) = self.recv(&mut buf) {
                if n > 0 && buf[0] == 0x06 {
                    return Some(start.elapsed());
                }
            }
        }
        None
    }

    fn drain(&self) {
        self.sock.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let end = std::time::Instant::now() + Duration::from_millis(100);
        let mut buf = [0u8; 2048];
        while std::time::Instant::now() < end {
            self.recv(&mut buf);
        }
    }

    /// tshark over everything this gateway exchanged with the relay: only AMT, nothing
    /// malformed, no expert warning; a Request, a Query, an Update and `min_data` Multicast Data
    /// messages at least.
    fn dissect(&self, name: &str, min_data: usize) {
        let Some(tshark) = roomcast_test_support::require_tool("tshark") else { return };
        let dir = std::env::temp_dir().join(format!("roomcast-amt-standard-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("amt.pcap");
        std::fs::write(&file, pcap_udp(&self.seen.borrow())).unwrap();
        let d = roomcast_test_support::tshark::dissect_amt(&tshark, &file, &[self.relay.port()]);
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!("tshark over the {name} run: {:?}", d.by_type);
        d.assert_clean();
        assert_eq!(d.by_type.values().sum::<usize>(), self.seen.borrow().len(), "every datagram is AMT: {d:?}");
        assert!(d.count(3) >= 1 && d.count(4) >= 1 && d.count(5) >= 1, "{d:?}");
        assert!(d.count(6) >= min_data, "{d:?}");
    }
}

#[test]
fn relay_restart_with_state_goes_unnoticed_by_a_gateway_refreshing_every_125_s() {
    const CHANNEL: &str = "192.0.2.1@232.1.1.1:5004";
    let dir = std::env::temp_dir().join(format!("roomcast-relay-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("relay.state");
    let (port, inject) = (free_udp_port(), free_udp_port());
    let relay_addr = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
    let args = |with_state: bool| {
        let mut a = vec![
            "--listen".to_string(),
            relay_addr.to_string(),
            "--inject".into(),
            format!("127.0.0.1:{inject}={CHANNEL}"),
            "--query-interval".into(),
            "125".into(),
        ];
        if with_state {
            a.extend(["--state".into(), state.display().to_string()]);
        }
        a
    };
    let start = |with_state: bool| {
        let a = args(with_state);
        start_relay(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let src = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut seq = 0u32;
    let mut poke = || {
        seq += 1;
        let _ = src.send_to(&payload(1, seq), ("127.0.0.1", inject));
    };
    let (s, g) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(232, 1, 1, 1));

    // Control: without --state a restarted relay forgets the gateway, which stays silent.
    let mut relay = start(false);
    let gw = QuietGateway::join(relay_addr, s, g);
    assert!(gw.first_data(Duration::from_secs(5), &mut poke).is_some(), "data flows");
    relay.signal(libc::SIGKILL);
    relay.wait_exit(Duration::from_secs(5)).expect("relay killed");
    gw.drain();
    let relay = start(false);
    assert_eq!(gw.first_data(Duration::from_secs(3), &mut poke), None, "without --state nothing comes back");
    drop(relay);
    gw.dissect("restart-without-state", 1);

    // With --state: killed with SIGKILL and restarted 5 times, data resumes each time.
    let mut relay = start(true);
    let gw = QuietGateway::join(relay_addr, s, g);
    assert!(gw.first_data(Duration::from_secs(5), &mut poke).is_some(), "data flows");
    // The relay writes its state shortly after the change (coalesced); wait for that write
    // rather than for a fixed time, which a loaded machine overruns.
    let written = std::time::Instant::now();
    let joined = || {
        roomcast_net::state_file::load(&state, std::time::SystemTime::now())
            .ok()
            .flatten()
            .is_some_and(|(snap, _)| snap.tunnels.iter().any(|t| !t.groups.is_empty()))
    };
    while !joined() {
        assert!(written.elapsed() < Duration::from_secs(10), "the relay wrote no state with the join within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut resumed = Vec::new();
    for round in 0..5 {
        relay.signal(libc::SIGKILL);
        relay.wait_exit(Duration::from_secs(5)).expect("relay killed");
        let killed = std::time::Instant::now();
        gw.drain();
        relay = start(true);
        let first = gw.first_data(Duration::from_secs(10), &mut poke);
        let Some(_) = first else {
            panic!("round {round}: no data within 10 s of the restart; relay log:\n{}", relay.log().join("\n"))
        };
        resumed.push(killed.elapsed());
        assert!(relay.log().iter().any(|l| l.contains("relay state restored")), "round {round}");
    }
    gw.dissect("restart-with-state", 6);
    resumed.sort();
    let median = resumed[2];
    eprintln!(
        "data resumed after SIGKILL + restart (incl. process start): {resumed:?}, median {median:?} (target < 2 s)"
    );

    // SIGTERM writes the state too; the file is private and its secret never reaches the log.
    relay.signal(libc::SIGTERM);
    assert!(relay.wait_exit(Duration::from_secs(5)).is_some_and(|st| st.success()));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&state).unwrap();
    let secret = text.split("\"secret\":").nth(1).and_then(|r| r.split(']').next()).expect("a secret in the file");
    assert!(secret.len() > 60, "{secret}");
    assert!(relay.log().iter().all(|l| !l.contains(secret)), "the secret must not be logged");
    let _ = std::fs::remove_dir_all(&dir);
}
