//! A DNS server for tests: dnsmasq on 127.0.0.1 at a port of its own, with no upstream and
//! only the records the test gives (`--dns-rr` generic records, `--host-record` A/AAAA),
//! authoritative for the reverse zones and `.test` (a name without records is NXDOMAIN).
//! Killed when dropped.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running dnsmasq.
pub struct Dnsmasq {
    child: Child,
    /// Where it answers (UDP).
    pub addr: SocketAddr,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dnsmasq {
    /// Starts `bin` serving `records` (name, RR type, RDATA) and `hosts` (name, address); waits
    /// (at most 5 s) until it answers.
    pub fn start(bin: &Path, records: &[(String, u16, Vec<u8>)], hosts: &[(&str, &str)]) -> Dnsmasq {
        let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut cmd = Command::new(bin);
        cmd.args(["--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--keep-in-foreground", "--bind-interfaces"])
            .args(["--listen-address=127.0.0.1", "--user=root", "--pid-file", "--log-facility=-"])
            .arg(format!("--port={port}"))
            .args(["--local=/in-addr.arpa/", "--local=/ip6.arpa/", "--local=/test/"]);
        for (name, rtype, rdata) in records {
            let hex: String = rdata.iter().map(|x| format!("{x:02x}")).collect();
            cmd.arg(format!("--dns-rr={},{rtype},{hex}", name.trim_end_matches('.')));
        }
        for (name, addr) in hosts {
            cmd.arg(format!("--host-record={name},{addr}"));
        }
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("dnsmasq");
        let d = Dnsmasq { child, addr: SocketAddr::from(([127, 0, 0, 1], port)) };
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        // A minimal query for "test." type A: id 1, RD, one question.
        let q = [0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 4, b't', b'e', b's', b't', 0, 0, 1, 0, 1];
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            assert!(Instant::now() < end, "dnsmasq did not answer on {}", d.addr);
            let _ = probe.send_to(&q, d.addr);
            let mut buf = [0u8; 512];
            if probe.recv(&mut buf).is_ok() {
                return d;
            }
        }
    }
}
