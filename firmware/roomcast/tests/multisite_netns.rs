//! Many relays behind one source, on a multicast network, in network namespaces the test makes:
//! - `src`: the channel's source, `roomcast listen --send` multicasting 10.1.0.1@232.9.9.9:5004
//!   (what `roomcast server --native-out` does for every participant; that building block has its
//!   own test in net/tests/native_netns.rs);
//! - `rt`: a multicast router, smcroute (Debian) with a static (S,G) route to both relay links,
//!   also the unicast router between every namespace;
//! - `r1`, `r2`: `roomcast relay --native-interface` taking the channel as native SSM;
//! - `ga`, `gb`: two sites with two `roomcast gateway --relay auto` each and a DNS server of their
//!   own (dnsmasq) whose AMTRELAY records name the site's relay first and the other second.
//!
//! Checked: every gateway receives in order through its site's relay; relay r1 killed with SIGKILL
//! → site A's gateways move to r2 and receive again within 5 s, in order; site B never stops.
//! dumpcap in the router's namespace captures every AMT datagram of the run (UDP 2268, on all
//! its links, bounded in time and count); tshark dissects each as AMT, nothing malformed.
//! Needs root, `ip` (iproute2), smcrouted (smcroute), dnsmasq, dumpcap and tshark: skipped outside
//! CI when missing.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use roomcast_net::driad::{reverse_name, AMTRELAY};
use roomcast_test_support::dnsmasq::Dnsmasq;
use roomcast_test_support::require_tool;
use roomcast_test_support::tshark::{dissect_amt, Capture};

const BIN: &str = env!("CARGO_BIN_EXE_roomcast");
const CHANNEL: &str = "10.1.0.1@232.9.9.9:5004";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The test's namespaces, deleted when dropped.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ip(args: &str) {
    let st = Command::new("ip").args(args.split_whitespace()).status().expect("ip");
    assert!(st.success(), "ip {args} failed");
}

/// Runs `f` on a thread inside namespace `ns`: sockets it opens and processes it starts live there.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).unwrap();
        // SAFETY: setns(2) on this thread only, with an open namespace file.
        assert_eq!(unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns {path}");
        f()
    })
    .join()
    .expect("thread in the namespace")
}

fn spawn_in(ns: &str, args: Vec<String>, log: PathBuf) -> Proc {
    in_ns(ns, move || {
        let f = std::fs::File::create(&log).unwrap();
        Proc(
            Command::new(BIN)
                .args(&args)
                .env("RUST_LOG", "info,roomcast_net=debug")
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(f.try_clone().unwrap())
                .stderr(f)
                .spawn()
                .unwrap(),
        )
    })
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

/// What one gateway delivered: (arrival, sequence number).
struct Rx {
    name: String,
    sock: UdpSocket,
    got: Vec<(Instant, u64)>,
    log: PathBuf,
}

impl Rx {
    fn drain(&mut self) {
        let mut buf = [0u8; 256];
        while let Ok(n) = self.sock.recv(&mut buf) {
            let seq = std::str::from_utf8(&buf[..n]).ok().and_then(|t| t.strip_prefix("roomcast-seq "));
            if let Some(seq) = seq.and_then(|s| s.trim().parse().ok()) {
                self.got.push((Instant::now(), seq));
            }
        }
    }
}

#[test]
fn gateways_find_their_sites_relay_by_driad_and_move_when_it_dies() {
    let (Some(_), Some(smcrouted), Some(dnsmasq), Some(dumpcap), Some(tshark)) = (
        require_tool("ip"),
        require_tool("smcrouted"),
        require_tool("dnsmasq"),
        require_tool("dumpcap"),
        require_tool("tshark"),
    ) else {
        return;
    };
    let tag = format!("rcms{}", std::process::id());
    let names: Vec<String> = ["src", "rt", "r1", "r2", "ga", "gb"].iter().map(|n| format!("{tag}-{n}")).collect();
    let ns = |n: &str| format!("{tag}-{n}");
    for n in &names {
        if !Command::new("ip").args(["netns", "add", n]).status().is_ok_and(|s| s.success()) {
            assert!(!roomcast_test_support::under_ci(), "cannot create network namespaces under CI");
            eprintln!("SKIPPED: cannot create network namespaces (needs root)");
            return;
        }
    }
    let _namespaces = Namespaces(names.clone());
    let dir = std::env::temp_dir().join(&tag);
    std::fs::create_dir_all(&dir).unwrap();
    // Links: (namespace, its interface, address, router's interface, router's address).
    let links = [
        ("src", "s0", "10.1.0.1", "rt0", "10.1.0.254"),
        ("r1", "m1", "10.2.1.2", "rt1", "10.2.1.1"),
        ("r2", "m2", "10.2.2.2", "rt2", "10.2.2.1"),
        ("ga", "a0", "10.3.1.2", "rta", "10.3.1.1"),
        ("gb", "b0", "10.3.2.2", "rtb", "10.3.2.1"),
    ];
    let rt = ns("rt");
    for n in &names {
        ip(&format!("-n {n} link set lo up"));
    }
    for (n, dev, addr, rdev, raddr) in links {
        let n = ns(n);
        ip(&format!("-n {rt} link add {rdev} type veth peer name {dev} netns {n}"));
        ip(&format!("-n {rt} addr add {raddr}/24 dev {rdev}"));
        ip(&format!("-n {rt} link set {rdev} up"));
        ip(&format!("-n {n} addr add {addr}/24 dev {dev}"));
        ip(&format!("-n {n} link set {dev} up"));
        ip(&format!("-n {n} route add default via {raddr}"));
    }
    in_ns(&rt, || {
        for (k, v) in [("net/ipv4/ip_forward", "1"), ("net/ipv4/conf/all/rp_filter", "0")] {
            std::fs::write(format!("/proc/sys/{k}"), v).unwrap();
        }
    });
    // The multicast router: the channel from the source's link to both relay links.
    let conf = dir.join("smcroute.conf");
    std::fs::write(
        &conf,
        "phyint rt0 enable\nphyint rt1 enable\nphyint rt2 enable\nmroute from rt0 source 10.1.0.1 group 232.9.9.9 to rt1 rt2\n",
    )
    .unwrap();
    let smc_log = dir.join("smcroute.log");
    let _router = {
        let (conf, dir, log) = (conf.clone(), dir.clone(), smc_log.clone());
        in_ns(&rt, move || {
            let f = std::fs::File::create(&log).unwrap();
            Proc(
                Command::new(&smcrouted)
                    .args(["-n", "-N", "-l", "debug", "-f"])
                    .arg(&conf)
                    .arg("-u")
                    .arg(dir.join("smcroute.sock"))
                    .arg("-P")
                    .arg(dir.join("smcroute.pid"))
                    .stdin(Stdio::null())
                    .stdout(f.try_clone().unwrap())
                    .stderr(f)
                    .spawn()
                    .unwrap(),
            )
        })
    };
    // Every AMT datagram of the run, on every link of the router (so each twice: in and out).
    let pcap = dir.join("amt.pcapng");
    let mut capture = {
        let (d, p) = (dumpcap.clone(), pcap.clone());
        in_ns(&rt, move || Capture::start(&d, &["any"], "udp port 2268", &p, 120, 100_000))
    };
    // The relays, taking the channel natively.
    let mut relays: Vec<Option<Proc>> = [("r1", "10.2.1.2", "m1"), ("r2", "10.2.2.2", "m2")]
        .iter()
        .map(|(n, addr, dev)| {
            let log = dir.join(format!("relay-{n}.log"));
            let args = ["relay", "--listen", &format!("{addr}:2268"), "--native-interface", dev].map(String::from);
            let p = spawn_in(&ns(n), args.to_vec(), log.clone());
            assert!(wait_log(&log, "AMT relay listening", Duration::from_secs(10)), "relay {n} did not start");
            Some(p)
        })
        .collect();
    // The sites: DNS naming their own relay first, two gateways each.
    let source: std::net::IpAddr = "10.1.0.1".parse().unwrap();
    let rec = move |pref: u8, last: u8| (reverse_name(source), AMTRELAY, vec![pref, 0x01, 10, 2, last, 2]);
    let mut dns = Vec::new();
    let mut gateways = Vec::new();
    let mut rxs = Vec::new();
    for (site, own, other) in [("ga", 1u8, 2u8), ("gb", 2, 1)] {
        let bin = dnsmasq.clone();
        let records = [rec(1, own), rec(2, other)];
        let d = in_ns(&ns(site), move || Dnsmasq::start(&bin, &records, &[]));
        for i in 0..2 {
            let sock = in_ns(&ns(site), || UdpSocket::bind("127.0.0.1:0").unwrap());
            sock.set_nonblocking(true).unwrap();
            let log = dir.join(format!("gateway-{site}{i}.log"));
            let args = ["gateway", "--relay", "auto", "--dns", &d.addr.to_string(), "--join", CHANNEL]
                .into_iter()
                .chain(["--forward", &sock.local_addr().unwrap().to_string()])
                .map(String::from)
                .collect();
            gateways.push(spawn_in(&ns(site), args, log.clone()));
            rxs.push(Rx { name: format!("{site}{i}"), sock, got: Vec::new(), log });
        }
        dns.push(d);
    }
    let _source = spawn_in(
        &ns("src"),
        ["listen", "--channel", CHANNEL, "--interface", "s0", "--send", "2000", "--timeout", "60"]
            .map(String::from)
            .to_vec(),
        dir.join("source.log"),
    );
    // Phase 1: everyone receives through its site's relay.
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end && rxs.iter().any(|r| r.got.len() < 100) {
        rxs.iter_mut().for_each(Rx::drain);
        std::thread::sleep(Duration::from_millis(10));
    }
    for r in &rxs {
        let log = std::fs::read_to_string(&r.log).unwrap_or_default();
        assert!(r.got.len() >= 100, "{}: {} datagrams; log:\n{log}", r.name, r.got.len());
        let own = if r.name.starts_with("ga") { "10.2.1.2:2268" } else { "10.2.2.2:2268" };
        assert!(
            log.contains(&format!("state=Joined {{ relay: {own} }}")),
            "{}: not through its site's relay:\n{log}",
            r.name
        );
    }
    // Phase 2: r1 dies.
    let killed = Instant::now();
    drop(relays[0].take());
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end && rxs.iter().any(|r| r.got.iter().filter(|(t, _)| *t > killed).count() < 100) {
        rxs.iter_mut().for_each(Rx::drain);
        std::thread::sleep(Duration::from_millis(10));
    }
    for r in &rxs {
        let log = std::fs::read_to_string(&r.log).unwrap_or_default();
        let after: Vec<Instant> = r.got.iter().map(|(t, _)| *t).filter(|t| *t > killed).collect();
        assert!(after.len() >= 100, "{}: {} datagrams after r1 died; log:\n{log}", r.name, after.len());
        let seqs: Vec<u64> = r.got.iter().map(|(_, n)| *n).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{}: out of order", r.name);
        let longest = r.got.windows(2).map(|w| w[1].0 - w[0].0).max().unwrap_or_default();
        eprintln!("{}: {} datagrams, longest silence {longest:?}", r.name, r.got.len());
        if r.name.starts_with("ga") {
            assert!(log.contains("relay lost"), "{}: never left r1:\n{log}", r.name);
            assert!(longest < Duration::from_secs(5), "{}: moving to r2 took {longest:?}", r.name);
        } else {
            assert!(longest < Duration::from_secs(1), "{}: site B stopped for {longest:?}", r.name);
        }
    }
    drop(gateways);
    drop(relays);
    let dumpcap_log = capture.stop();
    let d = dissect_amt(&tshark, &pcap, &[2268]);
    eprintln!("tshark over the run's AMT datagrams (each seen twice): {:?}", d.by_type);
    d.assert_clean();
    // Four gateways join (Request, Query, Update each), two of them again at r2; data to all.
    assert!(d.count(3) >= 12 && d.count(4) >= 12 && d.count(5) >= 12, "{d:?}\n{dumpcap_log}");
    assert!(d.count(6) >= 2 * 4 * 200, "{d:?}\n{dumpcap_log}");
    let _ = std::fs::remove_dir_all(&dir);
}
