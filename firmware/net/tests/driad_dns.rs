//! DRIAD against a real DNS server: dnsmasq on 127.0.0.1 (a port of its own, no upstream, only
//! its `--dns-rr` records) serving AMTRELAY records (type 260) of every relay type, a relay name
//! with its A record, a source without records and a malformed record. Needs dnsmasq (Debian
//! dnsmasq-base): skipped outside CI when missing.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use roomcast_net::driad::{self, reverse_name};

struct Dnsmasq(Child);

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// dnsmasq on 127.0.0.1 serving `records` (name, RDATA) of type 260 and `hosts` (name, address).
fn dnsmasq(bin: &std::path::Path, records: &[(String, Vec<u8>)], hosts: &[(&str, &str)]) -> (Dnsmasq, SocketAddr) {
    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = Command::new(bin);
    cmd.args(["--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--keep-in-foreground", "--bind-interfaces"])
        .args(["--listen-address=127.0.0.1", "--user=root", "--pid-file", "--log-queries", "--log-facility=-"])
        .arg(format!("--port={port}"))
        // Authoritative for the reverse zones: a name without records is NXDOMAIN, not REFUSED.
        .args(["--local=/in-addr.arpa/", "--local=/ip6.arpa/", "--local=/test/"]);
    for (name, rdata) in records {
        cmd.arg(format!("--dns-rr={},260,{}", name.trim_end_matches('.'), hex(rdata)));
    }
    for (name, addr) in hosts {
        cmd.arg(format!("--host-record={name},{addr}"));
    }
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("dnsmasq");
    let d = Dnsmasq(child);
    // Ready when it answers on its port (bounded).
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let end = Instant::now() + Duration::from_secs(5);
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    // A minimal query for "test." type A: id 1, RD, one question.
    let q = [0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 4, b't', b'e', b's', b't', 0, 0, 1, 0, 1];
    loop {
        assert!(Instant::now() < end, "dnsmasq did not answer on {addr}");
        let _ = probe.send_to(&q, addr);
        let mut buf = [0u8; 512];
        if probe.recv(&mut buf).is_ok() {
            break;
        }
    }
    (d, addr)
}

#[test]
fn driad_finds_relays_through_amtrelay_records() {
    let Some(bin) = roomcast_test_support::require_tool("dnsmasq") else { return };
    let s1: IpAddr = "192.0.2.10".parse().unwrap();
    let s2: IpAddr = "2001:db8::10".parse().unwrap();
    let none: IpAddr = "192.0.2.11".parse().unwrap();
    let bad: IpAddr = "192.0.2.12".parse().unwrap();
    let v6 = [&[0u8, 0x82][..], &"2001:db8::7".parse::<std::net::Ipv6Addr>().unwrap().octets()].concat();
    let records = vec![
        // S1: an IPv4 relay at precedence 10 and a named relay at 5 (preferred).
        (reverse_name(s1), vec![10, 0x01, 192, 0, 2, 7]),
        (reverse_name(s1), [&[5u8, 0x03][..], b"\x05relay\x04site\x04test\x00"].concat()),
        // S2: an IPv6 relay, D bit set.
        (reverse_name(s2), v6),
        // Malformed (IPv4 relay of 3 bytes) and "no relay": nothing usable.
        (reverse_name(bad), vec![0, 0x01, 192, 0, 2]),
        (reverse_name(bad), vec![0, 0x00]),
    ];
    let (_dns, server) = dnsmasq(&bin, &records, &[("relay.site.test", "127.0.0.9")]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let resolver = driad::resolver(Some(server)).unwrap();
        let mut n = 0u64;
        let mut random = move || {
            n += 1;
            n
        };
        let found = driad::discover(&resolver, s1, 2268, &mut random).await.unwrap();
        assert_eq!(found, vec!["127.0.0.9:2268".parse().unwrap(), "192.0.2.7:2268".parse().unwrap()]);
        let found = driad::discover(&resolver, s2, 2268, &mut random).await.unwrap();
        assert_eq!(found, vec!["[2001:db8::7]:2268".parse().unwrap()]);
        assert_eq!(driad::discover(&resolver, none, 2268, &mut random).await.unwrap(), vec![]);
        assert_eq!(driad::discover(&resolver, bad, 2268, &mut random).await.unwrap(), vec![]);
    });
}
