//! `roomcast listen`: joins one source-specific channel natively on one interface (e.g. the Linux
//! kernel's AMT gateway device `amt0`) and prints every datagram it receives, one line each:
//! `listen: recv N BYTES <payload as text>`. A diagnostic tool, used by the kernel interop test
//! (image/tests/amt_kernel.rs) inside the QEMU guest. It leaves the channel (IGMPv3/MLDv2 leave
//! sent by the kernel) before it exits.
//!
//! With `--send N` it is the channel's source instead: N datagrams `roomcast-seq 1`, `roomcast-seq
//! 2`, ... from SOURCE (an address of the interface, e.g. of a kernel AMT relay device `amtr`) to
//! GROUP:PORT out of the interface, one every `--interval-ms`. A failed send reopens the socket
//! (looking the interface up again) for the next datagram, so the source survives the interface
//! being deleted and created again.

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::Context;
use roomcast_net::native::multicast_source_socket;
use roomcast_net::socket::{interface_index, join_source_group, leave_source_group};
use roomcast_net::ChannelSpec;

/// Command-line arguments of `roomcast listen`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The channel to join, SOURCE@GROUP:PORT (IPv4 or IPv6).
    #[arg(long, value_name = "SOURCE@GROUP:PORT", value_parser = parse_channel)]
    pub channel: ChannelSpec,
    /// The interface to join it on.
    #[arg(long, value_name = "IFNAME")]
    pub interface: String,
    /// Stop after this many datagrams.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub count: u64,
    /// Stop after this many seconds in any case.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0, value_parser = super::relay::parse_seconds)]
    pub timeout: f64,
    /// Send this many numbered datagrams from SOURCE to GROUP:PORT instead of receiving.
    #[arg(long, value_name = "N")]
    pub send: Option<u64>,
    /// Spacing of the datagrams of --send, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 20)]
    pub interval_ms: u64,
}

fn parse_channel(s: &str) -> Result<ChannelSpec, String> {
    s.parse().map_err(|e: roomcast_net::NetError| e.to_string())
}

/// Runs `roomcast listen`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(n) = args.send {
        return send(&args, n);
    }
    let ch = &args.channel;
    let ifindex = interface_index(&args.interface)?;
    let bind: SocketAddr = if ch.group.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, ch.port).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, ch.port).into()
    };
    let sock = UdpSocket::bind(bind).with_context(|| format!("binding {bind}"))?;
    join_source_group(&sock, ifindex, ch.source, ch.group)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "listen: joined {ch} on {} (#{ifindex})", args.interface)?;
    out.flush()?;
    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout);
    let mut buf = vec![0u8; 65536];
    let mut received = 0u64;
    while received < args.count {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        sock.set_read_timeout(Some(left.min(Duration::from_millis(500)))).context("setting the read timeout")?;
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                received += 1;
                let text: String = String::from_utf8_lossy(&buf[..n.min(64)])
                    .chars()
                    .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '.' })
                    .collect();
                writeln!(out, "listen: recv {received} {n} from {from} {text}")?;
                out.flush()?;
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(e).context("receiving"),
        }
    }
    leave_source_group(&sock, ifindex, ch.source, ch.group)?;
    writeln!(out, "listen: left {ch} after {received} datagrams")?;
    out.flush()?;
    Ok(())
}

/// A UDP socket bound to the channel's source address, sending out of the interface.
fn source_socket(args: &Args) -> anyhow::Result<UdpSocket> {
    let ch = &args.channel;
    let ifindex = interface_index(&args.interface)?;
    Ok(multicast_source_socket(ch.source, ifindex, 8)?)
}

/// `--send N`: the channel's numbered datagrams.
fn send(args: &Args, count: u64) -> anyhow::Result<()> {
    let ch = &args.channel;
    let to = SocketAddr::new(ch.group, ch.port);
    let interval = Duration::from_millis(args.interval_ms);
    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout);
    let mut out = std::io::stdout().lock();
    let (mut sent, mut failed) = (0u64, 0u64);
    let mut sock = None;
    let mut next = Instant::now();
    for n in 1..=count {
        if Instant::now() >= deadline {
            break;
        }
        if sock.is_none() {
            sock = source_socket(args).map_err(|e| tracing::debug!("no source socket yet: {e:#}")).ok();
        }
        match sock.as_ref().map(|s| s.send_to(format!("roomcast-seq {n}").as_bytes(), to)) {
            Some(Ok(_)) => sent += 1,
            Some(Err(e)) => {
                failed += 1;
                if failed.is_power_of_two() {
                    writeln!(out, "listen: send {n} failed ({failed} so far): {e}")?;
                }
                sock = None;
            }
            None => failed += 1,
        }
        next += interval;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    writeln!(out, "listen: sent {sent} datagrams to {to} from {}, {failed} failed", ch.source)?;
    out.flush()?;
    Ok(())
}
