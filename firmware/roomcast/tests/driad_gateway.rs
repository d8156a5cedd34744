//! `roomcast gateway --relay auto`: the relay comes from DRIAD (RFC 8777). dnsmasq on loopback
//! serves the source's AMTRELAY records: relay A (127.0.0.77, precedence 1) and relay B
//! (127.0.0.78, precedence 2), two `roomcast relay` processes on the AMT port 2268 of those
//! addresses, both fed the same numbered datagrams of the channel. The gateway must take A;
//! after A is killed (SIGKILL) it must move to B and deliver again within 5 s, in order.
//! A source without records falls back to anycast (logged). Needs dnsmasq (Debian dnsmasq-base).

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use roomcast_net::driad::{reverse_name, AMTRELAY};
use roomcast_test_support::dnsmasq::Dnsmasq;

const BIN: &str = env!("CARGO_BIN_EXE_roomcast");
const SOURCE: &str = "192.0.2.40";
const CHANNEL: &str = "192.0.2.40@232.4.4.4:5004";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str], log: &Path) -> Proc {
    let f = std::fs::File::create(log).unwrap();
    Proc(
        Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "info,roomcast_net=debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap(),
    )
}

fn wait_log(log: &Path, needle: &str, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if std::fs::read_to_string(log).unwrap_or_default().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn gateway_finds_its_relay_by_driad_and_moves_when_it_dies() {
    let Some(bin) = roomcast_test_support::require_tool("dnsmasq") else { return };
    let dir = tempdir();
    let records = vec![
        (reverse_name(SOURCE.parse().unwrap()), AMTRELAY, vec![1, 0x01, 127, 0, 0, 77]),
        (reverse_name(SOURCE.parse().unwrap()), AMTRELAY, vec![2, 0x01, 127, 0, 0, 78]),
    ];
    let dns = Dnsmasq::start(&bin, &records, &[]);
    let inject = [free_port(), free_port()];
    let relay_log = [dir.join("relay-a.log"), dir.join("relay-b.log")];
    let mut relays: Vec<Option<Proc>> = ["127.0.0.77:2268", "127.0.0.78:2268"]
        .iter()
        .zip(inject)
        .zip(&relay_log)
        .map(|((listen, port), log)| {
            let inj = format!("127.0.0.1:{port}={CHANNEL}");
            let p = spawn(&["relay", "--listen", listen, "--inject", &inj], log);
            assert!(wait_log(log, "AMT relay listening", Duration::from_secs(10)), "relay {listen} did not start");
            Some(p)
        })
        .collect();
    // The channel's datagrams, numbered, into both relays every 20 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            let end = Instant::now() + Duration::from_secs(60);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                n += 1;
                for p in inject {
                    let _ = s.send_to(format!("seq {n}").as_bytes(), ("127.0.0.1", p));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let fwd = format!("127.0.0.1:{}", rx.local_addr().unwrap().port());
    let gw_log = dir.join("gateway.log");
    let dns_arg = dns.addr.to_string();
    let _gw = spawn(&["gateway", "--relay", "auto", "--dns", &dns_arg, "--join", CHANNEL, "--forward", &fwd], &gw_log);
    let recv_until = |n: usize, within: Duration| -> Vec<(Instant, u64)> {
        let end = Instant::now() + within;
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while got.len() < n && Instant::now() < end {
            if let Ok(k) = rx.recv(&mut buf) {
                if let Some(seq) = std::str::from_utf8(&buf[..k]).ok().and_then(|t| t.strip_prefix("seq ")) {
                    got.push((Instant::now(), seq.parse().unwrap()));
                }
            }
        }
        got
    };
    let before = recv_until(50, Duration::from_secs(10));
    let log = std::fs::read_to_string(&gw_log).unwrap_or_default();
    assert_eq!(before.len(), 50, "no data through the DRIAD relay; gateway log:\n{log}");
    assert!(log.contains("127.0.0.77:2268"), "the gateway did not take the preferred relay A:\n{log}");
    assert!(std::fs::read_to_string(&relay_log[0]).unwrap().contains("first tunnel joined"), "relay A has no tunnel");
    // Kill A; B must take over.
    let killed = Instant::now();
    drop(relays[0].take());
    let after = recv_until(50, Duration::from_secs(15));
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    let log = std::fs::read_to_string(&gw_log).unwrap_or_default();
    assert_eq!(after.len(), 50, "no data after relay A died; gateway log:\n{log}");
    // Datagrams already queued before the kill may arrive first: the move is the first one
    // that came through B, i.e. the first arrival after the longest silence.
    let resumed = after.iter().map(|(t, _)| *t).find(|t| t.duration_since(killed) > Duration::from_millis(200));
    let took = resumed.map(|t| t.duration_since(killed)).unwrap_or_default();
    eprintln!("DRIAD failover: data back {took:?} after relay A was killed");
    assert!(took < Duration::from_secs(5), "moving to relay B took {took:?}");
    assert!(log.contains("relay lost"), "{log}");
    assert!(std::fs::read_to_string(&relay_log[1]).unwrap().contains("first tunnel joined"), "relay B has no tunnel");
    let seqs: Vec<u64> = before.iter().chain(&after).map(|(_, n)| *n).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "out of order across the move: {seqs:?}");
    drop(relays);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_source_without_records_falls_back_to_anycast() {
    let Some(bin) = roomcast_test_support::require_tool("dnsmasq") else { return };
    let dir = tempdir();
    let dns = Dnsmasq::start(&bin, &[], &[]);
    let log = dir.join("gateway.log");
    let dns_arg = dns.addr.to_string();
    let mut gw =
        spawn(&["gateway", "--relay", "auto", "--dns", &dns_arg, "--join", CHANNEL, "--forward", "127.0.0.1:9"], &log);
    let found = wait_log(&log, "using relay (None: anycast discovery)", Duration::from_secs(10));
    let _ = gw.0.kill();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(found, "{text}");
    assert!(text.contains("DRIAD: relays to try") && text.contains("relays=[None]"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("rc-driad-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
