//! Relay fan-out against the physical reference, measured in interleaved slices.
//!
//! Both forwarders exist at the same time, pinned to the same CPU, and send to the SAME N
//! gateway sockets: roomcast's `RelayHandle` (the `--inject` path, N real AMT tunnels) and a
//! minimal recvmmsg + sendmmsg forwarder built here (no protocol, no runtime, datagrams of the
//! same size). One producer feeds whichever forwarder is active, closed-loop: it keeps at most
//! `window` datagrams queued at that forwarder's input, so the forwarder is never idle, its input
//! never overflows, and a switch leaves at most `window` datagrams to finish. One receiver drains
//! the N sockets. A round measures one slice of each, in alternating order (AB, BA, AB, ...),
//! each slice after a warm-up and only once the other forwarder has finished its queue; the ratio
//! of a round compares the two slices' datagrams per CPU-second of the forwarder thread.
//! `FANOUT_VERBOSE=1` prints every slice.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use roomcast_net::mmsg::{self, Destinations, RecvBatch};
use roomcast_net::{InjectSpec, RelayHandle, RelayOptions};

use crate::{forwarder_cpu, handshake, pin_away_from_forwarder, pin_current_thread, sg, thread_cpu_of, PAYLOAD};

/// No forwarder is fed.
const IDLE: usize = usize::MAX;
/// Warm-up after a switch, before a slice is measured.
const WARM: Duration = Duration::from_millis(100);
/// Length of one measured slice.
pub const SLICE: Duration = Duration::from_millis(400);
/// Rounds per row (one slice of each forwarder per round).
pub const ROUNDS: usize = 15;

/// One measured slice of one forwarder.
#[derive(Debug, Clone, Copy)]
pub struct Slice {
    /// Datagrams the kernel accepted from the forwarder.
    pub sent: u64,
    /// Wall-clock length.
    pub secs: f64,
    /// CPU time (user + sys) of the forwarder thread.
    pub cpu: Duration,
}

impl Slice {
    /// Datagrams per CPU-second.
    pub fn per_cpu(&self) -> f64 {
        self.sent as f64 / self.cpu.as_secs_f64().max(1e-9)
    }

    /// Datagrams per wall-clock second.
    pub fn pps(&self) -> f64 {
        self.sent as f64 / self.secs.max(1e-9)
    }

    /// CPU microseconds per Mbit of payload sent.
    pub fn us_per_mbit(&self) -> f64 {
        let mbit = self.sent as f64 * PAYLOAD as f64 * 8.0 / 1e6;
        self.cpu.as_secs_f64() * 1e6 / mbit.max(1e-9)
    }

    /// Share of its CPU the forwarder thread got.
    pub fn share(&self) -> f64 {
        self.cpu.as_secs_f64() / self.secs.max(1e-9)
    }
}

/// One row: the (roomcast, reference) slices of every round.
pub struct Row {
    pub rounds: Vec<(Slice, Slice)>,
    /// Rounds whose switch did not finish in time (their slices may overlap the other's work).
    pub unsettled: usize,
}

impl Row {
    /// roomcast / reference datagrams per CPU-second, per round, sorted.
    pub fn ratios(&self) -> Vec<f64> {
        let mut r: Vec<f64> = self.rounds.iter().map(|(a, b)| a.per_cpu() / b.per_cpu().max(1e-9)).collect();
        r.sort_by(f64::total_cmp);
        r
    }
}

/// Median of a non-empty list (sorted here).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// What the producer and the measurement need to know about one forwarder.
struct Forwarder {
    input: SocketAddr,
    /// Datagrams taken from its input so far.
    consumed: Box<dyn Fn() -> u64 + Send + Sync>,
    /// (datagram, gateway) pairs done so far (sent or failed), and of those sent.
    done: Box<dyn Fn() -> (u64, u64) + Send + Sync>,
}

/// Measures one row of `n` gateways.
pub fn row(n: usize) -> Row {
    let socks = crate::gateway_sockets(n);
    let (relay, relay_input, relay_thread, relay_stop) = start_relay();
    for s in &socks {
        handshake(s, relay.local_addr(), sg());
    }
    let end = Instant::now() + Duration::from_secs(10);
    while relay.stats().tunnels < n && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(relay.stats().tunnels, n, "every gateway must have a tunnel");
    let reference = Reference::start(socks.iter().map(|s| s.local_addr().unwrap()));
    let forwarders = Arc::new([
        {
            let (a, b) = (relay.clone(), relay.clone());
            Forwarder {
                input: relay_input,
                consumed: Box::new(move || a.stats().data_in),
                done: Box::new(move || {
                    let s = b.stats();
                    (s.data_out + s.send_errors, s.data_out)
                }),
            }
        },
        {
            let (a, b, c) = (reference.consumed.clone(), reference.done.clone(), reference.sent.clone());
            Forwarder {
                input: reference.input,
                consumed: Box::new(move || a.load(Ordering::Relaxed)),
                done: Box::new(move || (b.load(Ordering::Relaxed), c.load(Ordering::Relaxed))),
            }
        },
    ]);
    // Enough queued input that the forwarder runs saturated (full receive batches, many per
    // wake-up) even when the producer gets the CPU in bursts; few datagrams where one is a lot
    // of work (many gateways), so that a switch finishes quickly.
    let window = match n {
        0..=10 => 512,
        11..=100 => 64,
        _ => 8,
    };
    let load = Load::start(socks, forwarders.clone(), window);
    let threads = [&relay_thread, &reference.thread];
    let mut rounds = Vec::with_capacity(ROUNDS);
    let mut unsettled = 0;
    for round in 0..ROUNDS {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        let mut slices = [None, None];
        for f in order {
            load.active.store(f, Ordering::Relaxed);
            std::thread::sleep(WARM);
            let (s0, c0, t0) = ((forwarders[f].done)().1, thread_cpu_of(threads[f]), Instant::now());
            std::thread::sleep(SLICE);
            let (s1, c1) = ((forwarders[f].done)().1, thread_cpu_of(threads[f]));
            let secs = t0.elapsed().as_secs_f64();
            load.active.store(IDLE, Ordering::Relaxed);
            let slice = Slice { sent: s1 - s0, secs, cpu: c1.saturating_sub(c0) };
            if std::env::var_os("FANOUT_VERBOSE").is_some() {
                eprintln!("n={n} round {round} {}: {slice:?}", ["roomcast", "reference"][f]);
            }
            slices[f] = Some(slice);
            if !load.settle(f, n as u64) {
                unsettled += 1;
            }
        }
        rounds.push((slices[0].unwrap(), slices[1].unwrap()));
    }
    load.stop();
    drop(forwarders);
    reference.stop();
    relay_stop.send(()).unwrap();
    relay_thread.join().unwrap();
    drop(relay);
    Row { rounds, unsettled }
}

/// The relay on one pinned thread with a current-thread runtime (as `roomcast relay` runs
/// it), one `--inject` socket for the bench's channel.
fn start_relay() -> (Arc<RelayHandle>, SocketAddr, JoinHandle<()>, tokio::sync::oneshot::Sender<()>) {
    let inject_port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (relay_tx, relay_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("relay".into())
        .spawn(move || {
            pin_current_thread(forwarder_cpu());
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let mut opts = RelayOptions::new("127.0.0.1:0".parse().unwrap());
                opts.config.max_tunnels = 4096;
                opts.config.requests_per_second = 1_000_000;
                // Every gateway of the bench is on 127.0.0.1: lift the per-address limits.
                opts.config.max_tunnels_per_address = 4096;
                opts.config.requests_per_second_per_address = 1_000_000;
                opts.injects.push(InjectSpec {
                    listen: SocketAddr::from(([127, 0, 0, 1], inject_port)),
                    channel: "192.0.2.1@232.1.1.1:5004".parse().unwrap(),
                });
                relay_tx.send(Arc::new(RelayHandle::spawn(opts).await.unwrap())).unwrap();
                let _ = stop_rx.await;
            })
        })
        .unwrap();
    let relay = relay_rx.recv().unwrap();
    (relay, SocketAddr::from(([127, 0, 0, 1], inject_port)), thread, stop_tx)
}

/// The physical reference: recvmmsg up to 32 datagrams, prefix each with a header as long as
/// AMT's (so the datagrams are the same size as the relay's), sendmmsg every (datagram,
/// gateway) pair, waiting with poll(2) when a socket is not ready.
struct Reference {
    input: SocketAddr,
    consumed: Arc<AtomicU64>,
    done: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Reference {
    fn start(gateways: impl Iterator<Item = SocketAddr>) -> Reference {
        let dests = Destinations::new(gateways);
        let input = roomcast_net::socket::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let input_addr = input.local_addr().unwrap();
        let out = roomcast_net::socket::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let (consumed, done, sent) = (Arc::default(), Arc::default(), Arc::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (consumed, done, sent, stop): (Arc<AtomicU64>, Arc<AtomicU64>, Arc<AtomicU64>, _) =
                (Arc::clone(&consumed), Arc::clone(&done), Arc::clone(&sent), stop.clone());
            std::thread::Builder::new()
                .name("reference".into())
                .spawn(move || {
                    pin_current_thread(forwarder_cpu());
                    let header = [0u8; roomcast_amt::IPV4_DATA_OVERHEAD];
                    let mut batch = RecvBatch::new(32, 2048);
                    let mut bufs: Vec<Vec<u8>> = (0..32).map(|_| Vec::with_capacity(2048)).collect();
                    while !stop.load(Ordering::Relaxed) {
                        match batch.recv(&input) {
                            Ok(k) => {
                                consumed.fetch_add(k as u64, Ordering::Relaxed);
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                crate::wait_fd(&input, libc::POLLIN);
                                continue;
                            }
                            Err(_) => continue,
                        }
                        let mut k = 0;
                        for d in batch.iter() {
                            bufs[k].clear();
                            bufs[k].extend_from_slice(&header);
                            bufs[k].extend_from_slice(d.data);
                            k += 1;
                        }
                        let payloads: Vec<&[u8]> = bufs[..k].iter().map(Vec::as_slice).collect();
                        let total = k * dests.len();
                        let mut i = 0;
                        while i < total {
                            match mmsg::send_each_to_many(&out, &payloads, &dests, i) {
                                Ok(m) => {
                                    i += m;
                                    sent.fetch_add(m as u64, Ordering::Relaxed);
                                    done.fetch_add(m as u64, Ordering::Relaxed);
                                }
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                    crate::wait_fd(&out, libc::POLLOUT)
                                }
                                Err(_) => {
                                    i += 1;
                                    done.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                })
                .unwrap()
        };
        Reference { input: input_addr, consumed, done, sent, stop, thread }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
    }
}

/// The producer (closed-loop, feeding the active forwarder) and the receiver draining the N
/// gateway sockets, both away from the forwarders' CPU.
struct Load {
    active: Arc<AtomicUsize>,
    /// Datagrams the producer sent to each forwarder (lost ones written off, see `settle`).
    produced: Arc<[AtomicU64; 2]>,
    forwarders: Arc<[Forwarder; 2]>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(socks: Vec<UdpSocket>, forwarders: Arc<[Forwarder; 2]>, window: u64) -> Load {
        let gateways = socks.len() as u64;
        for s in &socks {
            s.set_nonblocking(true).unwrap();
        }
        let active = Arc::new(AtomicUsize::new(IDLE));
        let produced: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let stop = Arc::new(AtomicBool::new(false));
        let receiver = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("receiver".into())
                .spawn(move || {
                    pin_away_from_forwarder();
                    let mut batch = RecvBatch::new(64, 2048);
                    while !stop.load(Ordering::Relaxed) {
                        let mut got = 0usize;
                        for s in &socks {
                            while let Ok(k) = batch.recv(s) {
                                got += k;
                                if k < 64 {
                                    break;
                                }
                            }
                        }
                        if got < socks.len() / 2 {
                            std::thread::sleep(Duration::from_micros(500));
                        }
                    }
                })
                .unwrap()
        };
        let producer = {
            let (active, produced, forwarders, stop) =
                (active.clone(), produced.clone(), forwarders.clone(), stop.clone());
            std::thread::Builder::new()
                .name("producer".into())
                .spawn(move || {
                    pin_away_from_forwarder();
                    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                    s.set_nonblocking(true).unwrap();
                    let dests: Vec<Destinations> =
                        forwarders.iter().map(|f| Destinations::new(std::iter::repeat_n(f.input, 32))).collect();
                    let payload = vec![0x47u8; PAYLOAD];
                    // (forwarder, consumed count, since when) while its queue stays full.
                    let mut full_since: Option<(usize, u64, Instant)> = None;
                    while !stop.load(Ordering::Relaxed) {
                        let f = active.load(Ordering::Relaxed);
                        if f == IDLE {
                            std::thread::sleep(Duration::from_millis(1));
                            continue;
                        }
                        let consumed = (forwarders[f].consumed)();
                        let queued = produced[f].load(Ordering::Relaxed).saturating_sub(consumed);
                        let room = window.saturating_sub(queued).min(32) as usize;
                        if room == 0 {
                            // The kernel dropped input datagrams (a small net.core.rmem_max) if the forwarder
                            // finished all it took and took nothing more for 50 ms: write them off, or feeding
                            // would stop.
                            let idle = (forwarders[f].done)().0 >= consumed * gateways;
                            match full_since {
                                Some((g, c, t)) if g == f && c == consumed && idle => {
                                    if t.elapsed() > Duration::from_millis(50) {
                                        produced[f].store(consumed, Ordering::Relaxed);
                                    }
                                }
                                _ => full_since = Some((f, consumed, Instant::now())),
                            }
                            std::thread::sleep(Duration::from_micros(20));
                            continue;
                        }
                        if let Ok(k) = mmsg::send_same_to_many(&s, &payload, &dests[f], 32 - room) {
                            produced[f].fetch_add(k as u64, Ordering::Relaxed);
                        }
                    }
                })
                .unwrap()
        };
        Load { active, produced, forwarders, stop, threads: vec![receiver, producer] }
    }

    /// Waits (at most 10 s) until forwarder `f` took everything it was sent and finished every
    /// (datagram, gateway) pair of it. Input datagrams the kernel dropped are written off after
    /// they stayed missing for 100 ms. False if it did not settle in time.
    fn settle(&self, f: usize, n: u64) -> bool {
        let fw = &self.forwarders[f];
        std::thread::sleep(Duration::from_millis(5)); // the producer's last send
        let end = Instant::now() + Duration::from_secs(10);
        let mut stuck_since: Option<(u64, Instant)> = None;
        while Instant::now() < end {
            let consumed = (fw.consumed)();
            let produced = self.produced[f].load(Ordering::Relaxed);
            let (done, _) = (fw.done)();
            if done >= consumed * n {
                if consumed >= produced {
                    std::thread::sleep(Duration::from_millis(5));
                    return true;
                }
                match stuck_since {
                    Some((c, t)) if c == consumed && t.elapsed() > Duration::from_millis(100) => {
                        self.produced[f].store(consumed, Ordering::Relaxed);
                    }
                    Some((c, _)) if c == consumed => {}
                    _ => stuck_since = Some((consumed, Instant::now())),
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    }

    fn stop(self) {
        self.active.store(IDLE, Ordering::Relaxed);
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
    }
}

/// What an epoll registration of the sending socket costs per datagram (1 gateway, 32-datagram
/// `sendmmsg` calls, on the forwarders' CPU): a plain socket (the reference), one registered
/// for EPOLLIN|EPOLLOUT edge-triggered (what tokio does with a `UdpSocket`), one for EPOLLIN
/// only; the epoll set is harvested after every call, as a runtime does. Each sent datagram's
/// release walks the socket's wait queue when anything is registered on it. Returns the CPU ns
/// per datagram of each, medians of interleaved rounds.
pub fn registration_cost() -> [f64; 3] {
    std::thread::Builder::new()
        .name("registration".into())
        .spawn(|| {
            pin_current_thread(forwarder_cpu());
            let dst = UdpSocket::bind("127.0.0.1:0").unwrap();
            let dests = Destinations::new([dst.local_addr().unwrap()]);
            let datagram = vec![0x47u8; PAYLOAD + roomcast_amt::IPV4_DATA_OVERHEAD];
            let payloads: Vec<&[u8]> = (0..32).map(|_| datagram.as_slice()).collect();
            let events = [0, libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLET, libc::EPOLLIN | libc::EPOLLET];
            let socks: Vec<(UdpSocket, i32)> = events
                .iter()
                .map(|&ev| {
                    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                    s.set_nonblocking(true).unwrap();
                    roomcast_net::socket::grow_buffers(&s, 4 << 20);
                    // SAFETY: plain epoll calls on fds we own; the event struct lives for the call.
                    let ep = unsafe {
                        if ev == 0 {
                            -1
                        } else {
                            let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
                            let mut e = libc::epoll_event { events: ev as u32, u64: 0 };
                            libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, std::os::fd::AsRawFd::as_raw_fd(&s), &mut e);
                            ep
                        }
                    };
                    (s, ep)
                })
                .collect();
            let mut per = [Vec::new(), Vec::new(), Vec::new()];
            for _round in 0..7 {
                for (i, (s, ep)) in socks.iter().enumerate() {
                    let (c0, t0) = (own_cpu(), Instant::now());
                    let mut sent = 0u64;
                    while t0.elapsed() < Duration::from_millis(60) {
                        sent += mmsg::send_each_to_many(s, &payloads, &dests, 0).unwrap_or(0) as u64;
                        if *ep >= 0 {
                            let mut out = [libc::epoll_event { events: 0, u64: 0 }; 4];
                            // SAFETY: epoll_wait writes at most 4 events into `out`.
                            unsafe { libc::epoll_wait(*ep, out.as_mut_ptr(), 4, 0) };
                        }
                    }
                    per[i].push((own_cpu() - c0).as_nanos() as f64 / sent.max(1) as f64);
                }
            }
            for (_, ep) in &socks {
                if *ep >= 0 {
                    // SAFETY: closing the epoll fds this function created.
                    unsafe { libc::close(*ep) };
                }
            }
            per.map(median)
        })
        .unwrap()
        .join()
        .unwrap()
}

/// CPU time of the calling thread.
fn own_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
