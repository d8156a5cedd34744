//! End-to-end test of `roomcast relay` and `roomcast gateway` over loopback (RFC 7450 AMT):
//! one dual-stack relay (with `--inject` sockets feeding one IPv4 and one IPv6 SSM channel),
//! three gateway processes (two tunnels over IPv4, one over IPv6) forwarding to UDP sockets of
//! this test. Checks, in order:
//! 1. sequence-numbered 1316-byte payloads arrive intact, complete and in order on every
//!    gateway that joined the channel (and only there);
//! 2. a gateway stopped with SIGTERM tears down: it exits 0, the relay drops its tunnel, and
//!    nothing more reaches its forward address;
//! 3. a relay killed (SIGKILL) and restarted on the same port is found again and data resumes
//!    within 5 s;
//! 4. a spoofed Membership Update with a wrong MAC (raw UDP socket here, after a genuine
//!    Request/Query exchange) changes nothing: the spoofer gets no data, the others still do.
//!
//! A second test pushes a real MPEG-TS stream from ffmpeg through the tunnel and has ffprobe
//! decode it at the gateway's forward address (skipped outside CI without ffmpeg/ffprobe).

mod amt_util;

use std::collections::HashMap;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use amt_util::*;

const V4_CHANNEL: &str = "192.0.2.1@232.1.1.1:5004";
const V6_CHANNEL: &str = "2001:db8::1@ff3e::8000:1:5006";
const TAG_V4: u8 = 4;
const TAG_V6: u8 = 6;
const TAG_PROBE: u8 = 0xee;

struct Relay {
    port: u16,
    inject_v4: u16,
    inject_v6: u16,
}

impl Relay {
    fn args(&self) -> Vec<String> {
        vec![
            "relay".into(),
            "--listen".into(),
            // Dual-stack: gw1/gw2 reach it over IPv4, gw3 over IPv6.
            format!("[::]:{}", self.port),
            // The G flag (off by default, for the kernel's gateway) lets gateways send Teardown.
            "--query-gateway-address".into(),
            "--inject".into(),
            format!("127.0.0.1:{}={V4_CHANNEL}", self.inject_v4),
            "--inject".into(),
            format!("127.0.0.1:{}={V6_CHANNEL}", self.inject_v6),
        ]
    }
}

fn gateway_args(relay_port: u16, joins: &[&str], forward: u16) -> Vec<String> {
    gateway_args_via("127.0.0.1", relay_port, joins, forward)
}

fn gateway_args_via(relay_host: &str, relay_port: u16, joins: &[&str], forward: u16) -> Vec<String> {
    let mut a = vec!["gateway".into(), "--relay".into(), format!("{relay_host}:{relay_port}")];
    for j in joins {
        a.push("--join".into());
        a.push((*j).into());
    }
    // Default refresh settings on purpose: the restart check tests what users get.
    a.extend(["--forward".into(), format!("127.0.0.1:{forward}")]);
    a
}

fn recv_socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    roomcast_net::socket::grow_buffers(&s, 4 << 20);
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    s
}

/// Sends probes into both channels until every (socket, tag) pair in `want` got one, or `timeout`.
fn wait_flowing(
    src: &UdpSocket,
    relay: &Relay,
    want: &[(&UdpSocket, u8)],
    timeout: Duration,
) -> Result<Duration, String> {
    let start = Instant::now();
    let mut seen = vec![false; want.len()];
    let mut buf = vec![0u8; 65536];
    while start.elapsed() < timeout {
        src.send_to(&payload(TAG_PROBE, u32::from(TAG_V4)), ("127.0.0.1", relay.inject_v4)).unwrap();
        src.send_to(&payload(TAG_PROBE, u32::from(TAG_V6)), ("127.0.0.1", relay.inject_v6)).unwrap();
        // Drain each distinct socket once, then mark every (socket, tag) pair it satisfied.
        for (i, (sock, _)) in want.iter().enumerate() {
            if want[..i].iter().any(|(s, _)| std::ptr::eq(*s, *sock)) {
                continue;
            }
            while let Ok((n, _)) = sock.recv_from(&mut buf) {
                if let Some((TAG_PROBE, t)) = check_payload(&buf[..n]) {
                    for (j, (s2, tag2)) in want.iter().enumerate() {
                        if std::ptr::eq(*s2, *sock) && t == u32::from(*tag2) {
                            seen[j] = true;
                        }
                    }
                }
            }
        }
        if seen.iter().all(|s| *s) {
            return Ok(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    Err(format!("data not flowing after {timeout:?}: reached {seen:?}"))
}

/// Sends `count` payloads per channel (seq `first..`), paced, and returns what each socket got,
/// probes removed, as (tag, seq) in arrival order.
fn send_and_collect(
    src: &UdpSocket,
    relay: &Relay,
    first: u32,
    count: u32,
    socks: &[&UdpSocket],
) -> Vec<Vec<(u8, u32)>> {
    // One reader thread per socket while we send, so no receive buffer overflows; each reads
    // until the sender is done and its socket has been quiet for 400 ms.
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let done = &done;
        let readers: Vec<_> = socks
            .iter()
            .map(|s| {
                scope.spawn(move || drain_until_quiet(s, done, Duration::from_millis(400), Duration::from_secs(15)))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        for seq in first..first + count {
            src.send_to(&payload(TAG_V4, seq), ("127.0.0.1", relay.inject_v4)).unwrap();
            src.send_to(&payload(TAG_V6, seq), ("127.0.0.1", relay.inject_v6)).unwrap();
            if seq % 5 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        readers
            .into_iter()
            .map(|r| {
                r.join()
                    .unwrap()
                    .iter()
                    .map(|p| check_payload(p).unwrap_or_else(|| panic!("corrupted payload of {} bytes", p.len())))
                    .filter(|(tag, _)| *tag != TAG_PROBE)
                    .collect()
            })
            .collect()
    })
}

fn assert_complete_in_order(got: &[(u8, u32)], tag: u8, first: u32, count: u32, who: &str) {
    let seqs: Vec<u32> = got.iter().filter(|(t, _)| *t == tag).map(|(_, s)| *s).collect();
    let expected: Vec<u32> = (first..first + count).collect();
    if seqs != expected {
        let missing: Vec<u32> = expected.iter().copied().filter(|s| !seqs.contains(s)).collect();
        let out_of_order = seqs.windows(2).filter(|w| w[1] <= w[0]).count();
        panic!(
            "{who}: channel {tag} must arrive complete and in order: got {} of {count}, {} missing \
             (first missing: {:?}), {out_of_order} out of order or duplicated",
            seqs.len(),
            missing.len(),
            &missing[..missing.len().min(20)]
        );
    }
}

#[test]
fn relay_and_three_gateways_over_loopback() {
    let t0 = Instant::now();
    let relay_cfg = Relay { port: free_udp_port(), inject_v4: free_udp_port(), inject_v6: free_udp_port() };
    let mut relay = Proc::spawn("relay", &relay_cfg.args());
    assert!(
        relay.wait_log(0, &["AMT relay listening"], Duration::from_secs(10)),
        "relay did not start: {:?}",
        relay.log()
    );

    let (f1, f2, f3) = (recv_socket(), recv_socket(), recv_socket());
    let port = |s: &UdpSocket| s.local_addr().unwrap().port();
    let mut g1 = Proc::spawn("gw1", &gateway_args(relay_cfg.port, &[V4_CHANNEL, V6_CHANNEL], port(&f1)));
    let mut g2 = Proc::spawn("gw2", &gateway_args(relay_cfg.port, &[V4_CHANNEL], port(&f2)));
    let mut g3 = Proc::spawn("gw3", &gateway_args_via("[::1]", relay_cfg.port, &[V6_CHANNEL], port(&f3)));
    let src = UdpSocket::bind("127.0.0.1:0").unwrap();

    // --- 1. data intact, complete, in order, only where joined ---
    let took = wait_flowing(
        &src,
        &relay_cfg,
        &[(&f1, TAG_V4), (&f1, TAG_V6), (&f2, TAG_V4), (&f3, TAG_V6)],
        Duration::from_secs(10),
    )
    .unwrap_or_else(|e| panic!("{e}\nrelay log:\n{}\ngw1 log:\n{}", relay.log().join("\n"), g1.log().join("\n")));
    eprintln!("tunnels up and data flowing after {took:?}");
    assert!(
        relay.wait_log(0, &["tunnel count changed", "tunnels=3"], Duration::from_secs(2)),
        "relay should count 3 tunnels"
    );
    let got = send_and_collect(&src, &relay_cfg, 0, 300, &[&f1, &f2, &f3]);
    assert_complete_in_order(&got[0], TAG_V4, 0, 300, "gw1");
    assert_complete_in_order(&got[0], TAG_V6, 0, 300, "gw1");
    assert_complete_in_order(&got[1], TAG_V4, 0, 300, "gw2");
    assert_complete_in_order(&got[2], TAG_V6, 0, 300, "gw3");
    assert!(got[1].iter().all(|(t, _)| *t == TAG_V4), "gw2 joined only the IPv4 channel");
    assert!(got[2].iter().all(|(t, _)| *t == TAG_V6), "gw3 joined only the IPv6 channel");

    // --- 2. a gateway that leaves stops receiving; the relay drops its tunnel ---
    let mark = relay.log_len();
    g2.signal(libc::SIGTERM);
    let st = g2.wait_exit(Duration::from_secs(5)).expect("gw2 must exit after SIGTERM");
    assert!(st.success(), "gw2 exit status {st}; log:\n{}", g2.log().join("\n"));
    assert!(g2.wait_log(0, &["AMT gateway closed"], Duration::from_secs(2)), "gw2 must log its teardown");
    assert!(
        relay.wait_log(mark, &["tunnel count changed", "tunnels=2"], Duration::from_secs(3)),
        "relay must drop gw2's tunnel on Teardown; relay log:\n{}",
        relay.log().join("\n")
    );
    drain(&f2, Duration::from_millis(100));
    let got = send_and_collect(&src, &relay_cfg, 1000, 100, &[&f1, &f2, &f3]);
    assert!(got[1].is_empty(), "gw2 left but still {} datagrams arrived", got[1].len());
    assert_complete_in_order(&got[0], TAG_V4, 1000, 100, "gw1 after gw2 left");
    assert_complete_in_order(&got[2], TAG_V6, 1000, 100, "gw3 after gw2 left");

    // --- 3. relay killed and restarted on the same port: found again within 5 s ---
    relay.signal(libc::SIGKILL);
    relay.wait_exit(Duration::from_secs(5)).expect("relay must die on SIGKILL");
    std::thread::sleep(Duration::from_millis(300));
    let restarted = Instant::now();
    let mut relay = Proc::spawn("relay2", &relay_cfg.args());
    assert!(
        relay.wait_log(0, &["AMT relay listening"], Duration::from_secs(5)),
        "relay restart failed: {:?}",
        relay.log()
    );
    let resumed =
        wait_flowing(&src, &relay_cfg, &[(&f1, TAG_V4), (&f1, TAG_V6), (&f3, TAG_V6)], Duration::from_secs(5))
            .unwrap_or_else(|e| {
                panic!(
                    "{e} after relay restart\nrelay log:\n{}\ngw1 log:\n{}",
                    relay.log().join("\n"),
                    g1.log().join("\n")
                )
            });
    eprintln!("data resumed {:?} after the relay restarted", restarted.elapsed());
    assert!(resumed < Duration::from_secs(5), "resumed only {resumed:?} after the relay was up again");
    let got = send_and_collect(&src, &relay_cfg, 2000, 100, &[&f1, &f3]);
    assert_complete_in_order(&got[0], TAG_V4, 2000, 100, "gw1 after relay restart");
    assert_complete_in_order(&got[1], TAG_V6, 2000, 100, "gw3 after relay restart");

    // --- 4. spoofed Membership Update with a wrong MAC changes nothing ---
    let spoofer = UdpSocket::bind("127.0.0.1:0").unwrap();
    spoofer.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let relay_addr = sa(&format!("127.0.0.1:{}", relay_cfg.port));
    let nonce = 0x5eed_f00d;
    let report = igmpv3_report("192.0.2.1".parse().unwrap(), "232.1.1.1".parse().unwrap());
    let mut real_mac = None;
    for _ in 0..10 {
        spoofer.send_to(&amt_request(nonce), relay_addr).unwrap();
        if let Some(mac) = drain(&spoofer, Duration::from_millis(200)).iter().find_map(|m| query_mac(m)) {
            real_mac = Some(mac);
            break;
        }
    }
    let real_mac = real_mac.expect("the relay must answer a Request with a Membership Query");
    let mut wrong = real_mac;
    wrong[5] ^= 0x01;
    let tunnels_before = relay.log().iter().filter(|l| l.contains("tunnel count changed")).count();
    for _ in 0..3 {
        spoofer.send_to(&amt_update(wrong, nonce, &report), relay_addr).unwrap();
        spoofer.send_to(&amt_update([0; 6], 1, &report), relay_addr).unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    drain(&spoofer, Duration::from_millis(50));
    let got = send_and_collect(&src, &relay_cfg, 3000, 100, &[&f1]);
    let spoofed: Vec<Vec<u8>> =
        drain(&spoofer, Duration::from_millis(200)).into_iter().filter(|m| m.first() == Some(&0x06)).collect();
    assert!(spoofed.is_empty(), "spoofer received {} Multicast Data messages", spoofed.len());
    assert_complete_in_order(&got[0], TAG_V4, 3000, 100, "gw1 during spoofing");
    let tunnels_after = relay.log().iter().filter(|l| l.contains("tunnel count changed")).count();
    assert_eq!(tunnels_before, tunnels_after, "a spoofed update must not change the tunnel table");

    // Sanity of the spoof itself: the same update with the RIGHT MAC is accepted (so the test
    // would catch a relay that ignores MACs rather than one that ignores our message).
    spoofer.send_to(&amt_update(real_mac, nonce, &report), relay_addr).unwrap();
    let mut genuine = false;
    let end = Instant::now() + Duration::from_secs(3);
    let mut seq = 4000;
    while !genuine && Instant::now() < end {
        src.send_to(&payload(TAG_V4, seq), ("127.0.0.1", relay_cfg.inject_v4)).unwrap();
        seq += 1;
        genuine = drain(&spoofer, Duration::from_millis(50)).iter().any(|m| m.first() == Some(&0x06));
    }
    assert!(
        genuine,
        "an update with the correct MAC must be accepted (the wrong-MAC check would be vacuous otherwise)"
    );

    let mut statuses = HashMap::new();
    for (name, g) in [("gw1", &mut g1), ("gw3", &mut g3)] {
        g.assert_running();
        g.signal(libc::SIGTERM);
        statuses.insert(name, g.wait_exit(Duration::from_secs(5)));
    }
    relay.signal(libc::SIGTERM);
    let rst = relay.wait_exit(Duration::from_secs(5));
    for (name, st) in statuses {
        assert!(st.is_some_and(|s| s.success()), "{name} must exit cleanly on SIGTERM: {st:?}");
    }
    assert!(rst.is_some_and(|s| s.success()), "relay must exit cleanly on SIGTERM: {rst:?}");
    eprintln!("amt_e2e took {:?}", t0.elapsed());
}

/// A real MPEG-TS stream (ffmpeg -> `--inject` socket -> relay -> tunnel -> gateway ->
/// `--forward`) is decoded by ffprobe on the far side: what a VLC/ffplay user would do.
#[test]
fn ffmpeg_stream_through_the_tunnel_is_decodable() {
    let (Some(ffmpeg), Some(ffprobe)) =
        (roomcast_test_support::require_tool("ffmpeg"), roomcast_test_support::require_tool("ffprobe"))
    else {
        return;
    };
    let relay_port = free_udp_port();
    let inject = free_udp_port();
    let forward = free_udp_port();
    let _relay = Proc::spawn(
        "relay",
        &[
            "relay".into(),
            "--listen".into(),
            format!("127.0.0.1:{relay_port}"),
            "--inject".into(),
            format!("127.0.0.1:{inject}={V4_CHANNEL}"),
        ],
    );
    let gw = Proc::spawn("gw", &gateway_args(relay_port, &[V4_CHANNEL], forward));
    assert!(gw.wait_log(0, &["state=Joined"], Duration::from_secs(5)), "gateway did not join: {:?}", gw.log());
    let mut enc = std::process::Command::new(ffmpeg)
        .args(["-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "8"])
        .args(["-c:v", "mpeg2video", "-f", "mpegts"])
        .arg(format!("udp://127.0.0.1:{inject}?pkt_size=1316"))
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("ffmpeg");
    let probe = std::process::Command::new(ffprobe)
        .args(["-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "compact"])
        .arg(format!("udp://127.0.0.1:{forward}?timeout=6000000"))
        .output()
        .expect("ffprobe");
    let _ = enc.kill();
    let _ = enc.wait();
    let out = String::from_utf8_lossy(&probe.stdout);
    assert!(
        out.contains("codec_name=mpeg2video") && out.contains("width=320") && out.contains("height=240"),
        "ffprobe must decode the tunnelled stream; stdout: {out}; stderr: {}",
        String::from_utf8_lossy(&probe.stderr)
    );
}
