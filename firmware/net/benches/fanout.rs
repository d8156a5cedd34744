//! Relay fan-out and gateway decapsulation benchmark (`cargo bench -p roomcast-net`).
//!
//! What is measured, honestly:
//! - **Relay fan-out** against **the physical reference, built in the same run** (see
//!   `fanout/compare.rs`): the real `RelayHandle` (the same code as `roomcast relay --inject`)
//!   on ONE thread (a current-thread tokio runtime), with N gateway tunnels established by real
//!   AMT handshakes (Discovery/Advertisement/Request/Query/Update) from N UDP sockets on
//!   127.0.0.1, and a minimal recvmmsg + sendmmsg forwarder (no protocol, no runtime, same
//!   datagram size) sending to the SAME N sockets, both pinned to the same CPU. One closed-loop
//!   producer feeds 1316-byte payloads to the active one; one receiver drains the N sockets
//!   (both on the other CPU). Rounds of one slice each, in alternating order; the figure is
//!   roomcast / reference datagrams per CPU-second of the forwarder thread (its pthread CPU
//!   clock; on loopback it includes the kernel's delivery of every datagram, which a real NIC
//!   would not charge to the relay), median and spread over the rounds, and CPU per payload
//!   Mbit. `FANOUT_N=1,10` limits the rows.
//! - A `sendto`-per-gateway loop vs the `sendmmsg` fan-out on the same sockets, to show what
//!   batching saves (pure send loop, no relay machine).
//! - **Gateway decapsulation**: `Gateway::accept_data` (validation + zero-copy decapsulation)
//!   on an in-memory Multicast Data datagram; and the full gateway receive path
//!   (`GatewayHandle`: recvmmsg + accept_data + delivery channel) fed over loopback.

#[path = "fanout/compare.rs"]
mod compare;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use roomcast_amt::{Gateway, GatewayConfig, GatewayState, Relay, RelayConfig, SourceGroup};
use roomcast_net::mmsg::{self, Destinations};
use roomcast_net::{GatewayHandle, GatewayOptions};

const PAYLOAD: usize = 1316;
const RUN: Duration = Duration::from_secs(2);

fn sg() -> SourceGroup {
    "192.0.2.1@232.1.1.1".parse().unwrap()
}

fn raise_fd_limit() {
    // SAFETY: plain get/setrlimit on our own process.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max.min(65536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}

/// Runs a real AMT gateway handshake from `sock` to `relay` and joins `sg`, synchronously.
fn handshake(sock: &UdpSocket, relay: SocketAddr, sg: SourceGroup) {
    let cfg = GatewayConfig { relay: Some(relay), ..GatewayConfig::default() };
    let mut gw = Gateway::new(cfg, rand::SeedableRng::seed_from_u64(1), Instant::now());
    gw.handle_join(Instant::now(), sg).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut buf = [0u8; 2048];
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        let mut sent_update = false;
        while let Some(t) = gw.poll_transmit() {
            sent_update |= t.payload.first() == Some(&0x05);
            sock.send_to(&t.payload, t.destination).unwrap();
        }
        if sent_update && matches!(gw.state(), GatewayState::Joined { .. }) {
            return;
        }
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                let _ = gw.handle_datagram(Instant::now(), from, &buf[..n]);
            }
            Err(_) => gw.handle_timeout(Instant::now()),
        }
    }
    panic!("handshake with the relay failed");
}

/// The CPU the forwarders (roomcast's relay thread and the reference) are pinned to; the
/// producer and the receiver get the other CPU(s) when there are any.
fn forwarder_cpu() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).saturating_sub(1)
}

/// Pins the calling thread to `cpu` (best effort; false if the kernel refused).
fn pin_current_thread(cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET writes inside it; sched_setaffinity(0, ..)
    // affects only the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Pins the calling thread to every CPU but the forwarders' one (if there is another).
fn pin_away_from_forwarder() {
    let f = forwarder_cpu();
    if f > 0 {
        // SAFETY: as in pin_current_thread.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for c in 0..f {
                libc::CPU_SET(c, &mut set);
            }
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
    }
}

fn gateway_sockets(n: usize) -> Vec<UdpSocket> {
    let socks: Vec<UdpSocket> = (0..n).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    for s in &socks {
        roomcast_net::socket::grow_buffers(s, 1 << 20);
    }
    socks
}

/// poll(2) for `events` on `fd`, at most 10 ms.
fn wait_fd(fd: &impl std::os::fd::AsRawFd, events: libc::c_short) {
    let mut p = libc::pollfd { fd: fd.as_raw_fd(), events, revents: 0 };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe {
        libc::poll(&mut p, 1, 10);
    }
}

/// CPU time (user+sys) of another (running) thread of this process, via its CPU clock.
fn thread_cpu_of<T>(h: &std::thread::JoinHandle<T>) -> Duration {
    use std::os::unix::thread::JoinHandleExt;
    let pthread = h.as_pthread_t();
    let mut clock: libc::clockid_t = 0;
    // SAFETY: the thread is alive (not joined); we only read its CPU clock.
    unsafe {
        if libc::pthread_getcpuclockid(pthread, &mut clock) != 0 {
            return Duration::ZERO;
        }
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(clock, &mut ts);
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}

/// sendto-per-destination vs sendmmsg, same payload, same N sockets; returns (sendto pps, sendmmsg pps).
fn send_loop_compare(n: usize) -> (f64, f64) {
    let socks: Vec<UdpSocket> = (0..n).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    let dests = Destinations::new(socks.iter().map(|s| s.local_addr().unwrap()));
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    roomcast_net::socket::grow_buffers(&tx, 4 << 20);
    tx.set_nonblocking(true).unwrap();
    let mut out = Vec::new();
    roomcast_amt::encapsulate(&sg(), 1, 5004, &[0x47; PAYLOAD], &mut out).unwrap();
    let run = Duration::from_millis(300);
    let measure = |batched: bool| {
        let t0 = Instant::now();
        let mut sent = 0u64;
        while t0.elapsed() < run {
            if batched {
                let mut i = 0;
                while i < dests.len() {
                    match mmsg::send_same_to_many(&tx, &out, &dests, i) {
                        Ok(k) => i += k,
                        Err(_) => i += 1,
                    }
                }
            } else {
                for d in dests.addrs() {
                    let _ = mmsg::send_one(&tx, &out, d);
                }
            }
            sent += dests.len() as u64;
        }
        sent as f64 / t0.elapsed().as_secs_f64()
    };
    // Interleaved, best of three each: the machine may be shared.
    let (mut a, mut b) = (0f64, 0f64);
    for _ in 0..3 {
        a = a.max(measure(false));
        b = b.max(measure(true));
    }
    drop(socks);
    (a, b)
}

/// Gateway in Joined state with an in-memory relay; returns (gateway, relay address).
fn joined_gateway() -> (Gateway, SocketAddr) {
    let gw_addr: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let relay_addr: SocketAddr = "127.0.0.1:2268".parse().unwrap();
    let now = Instant::now();
    let mut relay = Relay::new(RelayConfig::default(), rand::SeedableRng::seed_from_u64(2), now);
    let mut gw = Gateway::new(
        GatewayConfig { relay: Some(relay_addr), ..GatewayConfig::default() },
        rand::SeedableRng::seed_from_u64(3),
        now,
    );
    gw.handle_join(now, sg()).unwrap();
    for _ in 0..20 {
        while let Some(t) = gw.poll_transmit() {
            let _ = relay.handle_datagram(now, gw_addr, &t.payload);
        }
        while let Some(t) = relay.poll_transmit() {
            let _ = gw.handle_datagram(now, relay_addr, &t.payload);
        }
    }
    assert!(matches!(gw.state(), GatewayState::Joined { .. }), "{:?}", gw.state());
    (gw, relay_addr)
}

fn decap_in_memory() -> f64 {
    let (gw, relay_addr) = joined_gateway();
    let mut dgram = Vec::new();
    roomcast_amt::encapsulate(&sg(), 1, 5004, &[0x47; PAYLOAD], &mut dgram).unwrap();
    let t0 = Instant::now();
    let mut n = 0u64;
    let mut bytes = 0usize;
    while t0.elapsed() < Duration::from_secs(1) {
        for _ in 0..1000 {
            let d = gw.accept_data(relay_addr, std::hint::black_box(&dgram)).unwrap().unwrap();
            bytes += d.payload.len();
        }
        n += 1000;
    }
    std::hint::black_box(bytes);
    n as f64 / t0.elapsed().as_secs_f64()
}

/// Full gateway receive path: a fake "relay" socket does the handshake with a real
/// GatewayHandle and then blasts Multicast Data at it; deliveries are counted.
fn decap_socket_path() -> (f64, u64) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let relay_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    roomcast_net::socket::grow_buffers(&relay_sock, 4 << 20);
    let relay_addr = relay_sock.local_addr().unwrap();
    // A relay machine answers the handshake on the fake relay socket (in a thread).
    let (gw_addr_tx, gw_addr_rx) = std::sync::mpsc::channel();
    let rs = relay_sock.try_clone().unwrap();
    let responder = std::thread::spawn(move || {
        let mut relay = Relay::new(RelayConfig::default(), rand::SeedableRng::seed_from_u64(4), Instant::now());
        rs.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let mut buf = [0u8; 2048];
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok((n, from)) = rs.recv_from(&mut buf) {
                let _ = relay.handle_datagram(Instant::now(), from, &buf[..n]);
                while let Some(t) = relay.poll_transmit() {
                    rs.send_to(&t.payload, t.destination).unwrap();
                }
                if relay.subscribers(&sg()).next().is_some() {
                    gw_addr_tx.send(from).unwrap();
                    return;
                }
            }
        }
    });
    let (total, secs) = rt.block_on(async {
        let mut opts = GatewayOptions::new(relay_addr);
        opts.bind = Some("127.0.0.1:0".parse().unwrap());
        opts.delivery_capacity = 65536;
        let (gw, mut rx) = GatewayHandle::spawn(opts).await.unwrap();
        gw.join(sg()).await.unwrap();
        let gw_addr = tokio::task::spawn_blocking(move || gw_addr_rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .await
            .unwrap();
        responder.join().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let blaster = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                relay_sock.set_nonblocking(true).unwrap();
                let mut out = Vec::new();
                roomcast_amt::encapsulate(&sg(), 1, 5004, &[0x47; PAYLOAD], &mut out).unwrap();
                let dests = Destinations::new(std::iter::repeat_n(gw_addr, 32));
                while !stop.load(Ordering::Relaxed) {
                    if mmsg::send_same_to_many(&relay_sock, &out, &dests, 0).is_err() {
                        std::thread::yield_now();
                    }
                }
            })
        };
        let t0 = Instant::now();
        let mut count = 0u64;
        while t0.elapsed() < RUN {
            if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
                count += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        blaster.join().unwrap();
        (count, t0.elapsed().as_secs_f64())
    });
    (total as f64 / secs, total)
}

/// The 1-minute load average, now.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().next().unwrap_or("?").to_owned()
}

fn main() {
    raise_fd_limit();
    println!("roomcast-net fan-out benchmark ({PAYLOAD}-byte payloads, loopback)");
    println!("mmsg batching available: {}", mmsg::mmsg_available());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average at start: {} (on a busy machine threads do not get whole cores; the per-core columns divide by the CPU time actually used)",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!();
    println!(
        "Relay fan-out: roomcast (RelayHandle, --inject path, real AMT tunnels) vs the reference forwarder\n\
         (recvmmsg + sendmmsg, same datagram size), both pinned to CPU {}, same producer, same N gateway sockets;\n\
         {} rounds per row, each one slice of each ({} ms after a warm-up), in alternating order:",
        forwarder_cpu(),
        compare::ROUNDS,
        compare::SLICE.as_millis()
    );
    println!(
        "{:>8} | {:>10} | {:>8} | {:>7} | {:>11} | {:>10} | {:>11} | {:>11} | {:>9} | {:>14}",
        "gateways",
        "sent pkt/s",
        "Mbit/s",
        "CPU got",
        "CPU us/Mbit",
        "ref pkt/s",
        "ref us/Mbit",
        "ratio/CPU-s",
        "min-max",
        "load avg"
    );
    // FANOUT_N=1,10 limits the rows (for profiling one case).
    let rows: Vec<usize> = std::env::var("FANOUT_N")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 10, 100, 1000]);
    for n in rows {
        let row = compare::row(n);
        let ratios = row.ratios();
        let (lo, hi) = (ratios[0], ratios[ratios.len() - 1]);
        let of = |f: &dyn Fn(&compare::Slice) -> f64, which: usize| {
            compare::median(row.rounds.iter().map(|p| if which == 0 { f(&p.0) } else { f(&p.1) }).collect())
        };
        let pps = of(&|s| s.pps(), 0);
        println!(
            "{:>8} | {:>10.0} | {:>8.1} | {:>6.0}% | {:>11.1} | {:>10.0} | {:>11.1} | {:>11.2} | {:.2}-{:.2} | {:>14}{}",
            n,
            pps,
            pps * PAYLOAD as f64 * 8.0 / 1e6,
            of(&|s| s.share(), 0) * 100.0,
            of(&|s| s.us_per_mbit(), 0),
            of(&|s| s.pps(), 1),
            of(&|s| s.us_per_mbit(), 1),
            compare::median(ratios.clone()),
            lo,
            hi,
            loadavg(),
            if row.unsettled > 0 { format!("  ({} switches unsettled)", row.unsettled) } else { String::new() },
        );
    }
    println!(
        "(medians over the rounds; ratio/CPU-s: roomcast datagrams per CPU-second of its thread / the reference's,\n\
         per round; min-max: its spread over the rounds; CPU got: the share of CPU {} the relay thread got;\n\
         CPU us/Mbit: forwarder CPU per Mbit of payload ({PAYLOAD} B per datagram))",
        forwarder_cpu()
    );
    println!();
    let [plain, inout, inonly] = compare::registration_cost();
    println!(
        "Send path CPU per datagram by epoll registration of the sending socket (1 gateway, 32 per sendmmsg):\n  \
         none (reference) {plain:.0} ns, EPOLLIN|EPOLLOUT|EPOLLET (tokio UdpSocket) {inout:.0} ns, EPOLLIN|EPOLLET {inonly:.0} ns"
    );
    println!();
    println!("Send loop only (encapsulated datagram to N sockets):");
    println!("{:>9} | {:>16} | {:>16} | {:>7}", "gateways", "sendto pkt/s", "sendmmsg pkt/s", "gain");
    for n in [100usize, 1000] {
        let (a, b) = send_loop_compare(n);
        println!("{:>9} | {:>16.0} | {:>16.0} | {:>6.2}x", n, a, b, b / a);
    }
    println!();
    println!("Gateway decapsulation:");
    println!("  accept_data (validate + zero-copy decapsulate, in memory): {:>12.0} pkt/s", decap_in_memory());
    let (pps, total) = decap_socket_path();
    println!("  GatewayHandle receive path (recvmmsg + accept_data + channel): {:>9.0} pkt/s ({total} delivered)", pps);
}
