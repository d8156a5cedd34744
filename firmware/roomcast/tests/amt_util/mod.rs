//! Helpers of the AMT end-to-end test (`amt_e2e.rs`): spawning `roomcast relay|gateway`
//! processes with their log lines collected, sequence-numbered payloads, and hand-built AMT
//! messages for the spoofing check (built here byte by byte from RFC 7450 / RFC 3376, not
//! with roomcast-amt, so the test does not trust the code it tests).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Size of every test payload (an MPEG-TS-over-UDP sized datagram).
pub const PAYLOAD: usize = 1316;

/// A free UDP port on the loopback (bound then released; fine for a test).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `roomcast` subcommand with its stderr lines (ANSI colours stripped) collected.
pub struct Proc {
    pub name: String,
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c2 in chars.by_ref() {
                if c2.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Proc {
    /// Starts `roomcast ARGS...` with info logs on stderr.
    pub fn spawn(name: &str, args: &[String]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_roomcast"))
            .args(args)
            .env("RUST_LOG", "info,roomcast_amt=debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start roomcast {args:?}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let l2 = lines.clone();
        let tag = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let line = strip_ansi(&line);
                if std::env::var_os("AMT_E2E_VERBOSE").is_some() {
                    eprintln!("[{tag}] {line}");
                }
                l2.lock().unwrap().push(line);
            }
        });
        Proc { name: name.to_owned(), child, lines }
    }

    /// All log lines so far.
    pub fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Number of log lines so far.
    pub fn log_len(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// Waits until a log line at index >= `from` contains every one of `needles`.
    pub fn wait_log(&self, from: usize, needles: &[&str], timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.lines.lock().unwrap().iter().skip(from).any(|l| needles.iter().all(|n| l.contains(n))) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Sends a signal (e.g. libc::SIGTERM) to the process.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
    }

    /// Waits for the process to exit (up to `timeout`) and returns its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Asserts the process is still running (it did not die on its own).
    pub fn assert_running(&mut self) {
        if let Some(st) = self.child.try_wait().unwrap() {
            panic!("{} exited unexpectedly with {st}; log:\n{}", self.name, self.log().join("\n"));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test payload: channel tag, 32-bit sequence number, then bytes derived from both.
pub fn payload(tag: u8, seq: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(PAYLOAD);
    p.push(tag);
    p.extend_from_slice(&seq.to_be_bytes());
    let mut x = seq.wrapping_mul(2654435761).wrapping_add(u32::from(tag));
    while p.len() < PAYLOAD {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p.push(x as u8);
    }
    p
}

/// Checks a received payload; returns (tag, seq) if it is intact.
pub fn check_payload(p: &[u8]) -> Option<(u8, u32)> {
    if p.len() != PAYLOAD {
        return None;
    }
    let tag = p[0];
    let seq = u32::from_be_bytes([p[1], p[2], p[3], p[4]]);
    (payload(tag, seq) == p).then_some((tag, seq))
}

/// Receives every datagram arriving on `sock` within `window` (socket must have a read timeout set).
pub fn drain(sock: &UdpSocket, window: Duration) -> Vec<Vec<u8>> {
    let end = Instant::now() + window;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while Instant::now() < end {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            out.push(buf[..n].to_vec());
        }
    }
    out
}

/// Receives datagrams on `sock` (read timeout set) until `done` is set AND nothing arrived for
/// `quiet`, or `cap` elapsed: robust to a slow, loaded machine.
pub fn drain_until_quiet(
    sock: &UdpSocket,
    done: &std::sync::atomic::AtomicBool,
    quiet: Duration,
    cap: Duration,
) -> Vec<Vec<u8>> {
    let start = Instant::now();
    let mut last = Instant::now();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while start.elapsed() < cap {
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                out.push(buf[..n].to_vec());
                last = Instant::now();
            }
            Err(_) => {
                if done.load(std::sync::atomic::Ordering::SeqCst) && last.elapsed() >= quiet {
                    break;
                }
            }
        }
    }
    out
}

/// Internet checksum (RFC 1071).
pub fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) } else { u16::from_be_bytes([c[0], 0]) };
        sum += u32::from(w);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// AMT Request (RFC 7450 5.1.3), P flag clear (IGMP), with `nonce`.
pub fn amt_request(nonce: u32) -> Vec<u8> {
    let mut m = vec![0x03, 0x00, 0x00, 0x00];
    m.extend_from_slice(&nonce.to_be_bytes());
    m
}

/// IPv4 packet with Router Alert carrying an IGMPv3 report (RFC 3376 4.2):
/// one ALLOW_NEW_SOURCES(5) record for (source, group), sent to 224.0.0.22.
pub fn igmpv3_report(source: Ipv4Addr, group: Ipv4Addr) -> Vec<u8> {
    let mut igmp = vec![0x22, 0, 0, 0, 0, 0, 0, 1]; // type, reserved, checksum, reserved, 1 record
    igmp.extend_from_slice(&[5, 0, 0, 1]); // record type, aux len, 1 source
    igmp.extend_from_slice(&group.octets());
    igmp.extend_from_slice(&source.octets());
    let c = inet_checksum(&igmp);
    igmp[2..4].copy_from_slice(&c.to_be_bytes());
    let total = 24 + igmp.len();
    let mut ip = vec![0x46, 0xc0, (total >> 8) as u8, total as u8, 0, 0, 0, 0, 1, 2, 0, 0];
    ip.extend_from_slice(&[0, 0, 0, 0]); // source 0.0.0.0
    ip.extend_from_slice(&[224, 0, 0, 22]);
    ip.extend_from_slice(&[0x94, 0x04, 0, 0]); // Router Alert option
    let c = inet_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&igmp);
    ip
}

/// AMT Membership Update (RFC 7450 5.1.5) with the given MAC and nonce.
pub fn amt_update(mac: [u8; 6], nonce: u32, encapsulated: &[u8]) -> Vec<u8> {
    let mut m = vec![0x05, 0x00];
    m.extend_from_slice(&mac);
    m.extend_from_slice(&nonce.to_be_bytes());
    m.extend_from_slice(encapsulated);
    m
}

/// The Response MAC of an AMT Membership Query (RFC 7450 5.1.4), if `q` is one.
pub fn query_mac(q: &[u8]) -> Option<[u8; 6]> {
    if q.len() < 12 || q[0] != 0x04 {
        return None;
    }
    q[2..8].try_into().ok()
}

/// Address helper.
pub fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// AMT Relay Discovery (RFC 7450 5.1.1) with `nonce`.
pub fn amt_discovery(nonce: u32) -> Vec<u8> {
    let mut m = vec![0x01, 0x00, 0x00, 0x00];
    m.extend_from_slice(&nonce.to_be_bytes());
    m
}

/// The (nonce, relay address) of an AMT Relay Advertisement (RFC 7450 5.1.2), if `a` is one.
pub fn advertisement(a: &[u8]) -> Option<(u32, std::net::IpAddr)> {
    if a.first() != Some(&0x02) || a.len() < 12 {
        return None;
    }
    let nonce = u32::from_be_bytes(a[4..8].try_into().ok()?);
    let relay = match a.len() {
        12 => std::net::IpAddr::from(<[u8; 4]>::try_from(&a[8..12]).ok()?),
        24 => std::net::IpAddr::from(<[u8; 16]>::try_from(&a[8..24]).ok()?),
        _ => return None,
    };
    Some((nonce, relay))
}

/// The source address of the IPv4 packet (the IGMPv3 query) inside an AMT Membership Query.
pub fn query_igmp_source(q: &[u8]) -> Option<Ipv4Addr> {
    if q.first() != Some(&0x04) || q.len() < 12 + 20 || q[12] >> 4 != 4 {
        return None;
    }
    Some(Ipv4Addr::new(q[24], q[25], q[26], q[27]))
}

/// One UDP datagram seen on the wire: (from, to, payload).
pub type Datagram = (SocketAddr, SocketAddr, Vec<u8>);

/// A pcap file (link type raw IP) of UDP datagrams (from, to, payload), IPv4 only, UDP
/// checksum left 0 ("none", valid for IPv4): enough for tshark to dissect the AMT inside.
pub fn pcap_udp(datagrams: &[Datagram]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&101u32.to_le_bytes()); // LINKTYPE_RAW
    for (i, (from, to, payload)) in datagrams.iter().enumerate() {
        let (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) = (from.ip(), to.ip()) else { panic!("IPv4 only") };
        let udp_len = 8 + payload.len();
        let total = 20 + udp_len;
        let mut ip = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, 17, 0, 0];
        ip.extend_from_slice(&s.octets());
        ip.extend_from_slice(&d.octets());
        let c = inet_checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        ip.extend_from_slice(&from.port().to_be_bytes());
        ip.extend_from_slice(&to.port().to_be_bytes());
        ip.extend_from_slice(&(udp_len as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 0]);
        ip.extend_from_slice(payload);
        out.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(ip.len() as u32).to_le_bytes());
        out.extend_from_slice(&(ip.len() as u32).to_le_bytes());
        out.extend_from_slice(&ip);
    }
    out
}
