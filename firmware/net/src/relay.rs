//! [`RelayHandle`]: the tokio driver of the sans-IO [`roomcast_amt::Relay`].
//!
//! One task owns the relay machine and the AMT socket. It feeds the machine the datagrams it
//! receives (in `recvmmsg` batches) and its timer (`poll_timeout`), sends what it asks to
//! (`poll_transmit`), and moves multicast data into the tunnels:
//! - pushed by other code through [`RelayHandle::inject`] (the meeting service),
//! - received on `--inject` sockets (every UDP datagram becomes data of one channel),
//! - received natively on an interface, joined on [`RelayEvent::Subscribe`] and left on
//!   [`RelayEvent::Unsubscribe`] (see [`crate::native`]).
//!
//! Data is encapsulated ONCE per packet and the same bytes are fanned out to every subscribed
//! tunnel with `sendmmsg` ([`crate::mmsg::fan_out`]); a `recvmmsg` batch of an inject socket
//! goes out whole, as (datagram, tunnel) pairs in as few `sendmmsg` calls as they need
//! ([`crate::mmsg::fan_out_each`]): one call per batch for a single gateway. Each message is
//! built contiguous once per packet (headers, checksum, payload copy) and every tunnel's
//! `mmsghdr` points at that one iovec: the per-gateway work is the destination only.
//! Subscriber lists are cached per (S,G) as encoded C addresses and rebuilt only after a
//! control datagram or timer, i.e. when the membership table can have changed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::SeedableRng;
use roomcast_amt::{Access, Relay, RelayConfig, RelayEvent, SourceGroup};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::{NetError, Result};
use crate::mmsg::{fan_out, fan_out_each, Destinations, RecvBatch};
use crate::native::NativeReceiver;
use crate::socket::{bind_tokio_udp, for_socket, interface_index};
use crate::spec::InjectSpec;

/// How many receive batches one wake-up drains before giving other work a turn.
const DRAIN_BATCHES: usize = 16;

/// How long after a change of the relay state the state file is written: changes within this
/// delay (a burst of joins, many refreshes) share one write. A relay killed within this delay
/// of a change restarts without it (the gateway's next refresh repairs that).
const STATE_WRITE_DELAY: Duration = Duration::from_millis(200);

/// Everything a relay driver needs.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Address:port the AMT socket listens on.
    pub listen: SocketAddr,
    /// Protocol settings.
    pub config: RelayConfig,
    /// `--inject` rules.
    pub injects: Vec<InjectSpec>,
    /// Interface to receive native multicast on (none: inject only).
    pub native_interface: Option<String>,
    /// Keep the MAC secrets and the membership table in this file across restarts
    /// ([`crate::state_file`]): restored at start, written shortly after every change and at
    /// shutdown.
    pub state_file: Option<PathBuf>,
    /// Who may receive what from the start (the meeting service starts closed and updates it
    /// with [`RelayHandle::set_access`]); the standalone relay is open.
    pub access: Access,
}

impl RelayOptions {
    /// Default protocol settings, no inject rules, no native multicast.
    pub fn new(listen: SocketAddr) -> RelayOptions {
        RelayOptions {
            listen,
            config: RelayConfig::default(),
            injects: Vec::new(),
            native_interface: None,
            state_file: None,
            access: Access::Open,
        }
    }
}

/// Counters of a running relay (read with [`RelayHandle::stats`]).
#[derive(Debug, Default)]
pub struct RelayCounters {
    tunnels: AtomicUsize,
    control_in: AtomicU64,
    control_rejected: AtomicU64,
    data_in: AtomicU64,
    data_out: AtomicU64,
    send_errors: AtomicU64,
    denied: AtomicU64,
}

/// A snapshot of [`RelayCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Open tunnels.
    pub tunnels: usize,
    /// AMT control datagrams received.
    pub control_in: u64,
    /// ...of which the relay machine rejected (bad MAC, malformed, over limits...).
    pub control_rejected: u64,
    /// Multicast data packets taken in (injected, inject sockets, native).
    pub data_in: u64,
    /// Encapsulated datagrams sent to tunnels.
    pub data_out: u64,
    /// Sends that failed.
    pub send_errors: u64,
    /// Memberships not served because of the access policy.
    pub denied: u64,
}

enum Command {
    Inject { sg: SourceGroup, source_port: u16, dest_port: u16, payload: Bytes },
    Shutdown(oneshot::Sender<()>),
}

/// A running relay. Dropping it stops the relay (like [`RelayHandle::shutdown`], without waiting).
#[derive(Debug)]
pub struct RelayHandle {
    tx: mpsc::Sender<Command>,
    access: watch::Sender<Access>,
    local_addr: SocketAddr,
    counters: Arc<RelayCounters>,
    task: Option<JoinHandle<()>>,
    native_active: bool,
}

impl RelayHandle {
    /// Binds the AMT socket and the inject sockets, opens native multicast if asked, and
    /// spawns the relay on the current tokio runtime.
    pub async fn spawn(opts: RelayOptions) -> Result<RelayHandle> {
        let sock = bind_tokio_udp(opts.listen)?;
        let local_addr = sock.local_addr()?;
        let mut config = opts.config.clone();
        // RFC 7450 5.1.2: Advertisements carry the relay's unicast address. A specific listen
        // address is it (unless configured otherwise); on a wildcard address the relay reads
        // each datagram's local address and answers from it.
        let wildcard = local_addr.ip().is_unspecified();
        if config.advertised.is_unspecified() && !wildcard {
            config.advertised = local_addr.ip().to_canonical();
        }
        if wildcard {
            crate::pktinfo::enable_local_address(&sock, local_addr.is_ipv6()).map_err(|source| NetError::Socket {
                what: "asking for the local address of received datagrams (IP_PKTINFO)".into(),
                source,
            })?;
        }
        let native = match &opts.native_interface {
            // A wrong interface name is a configuration error; missing privileges are not:
            // the relay then runs inject-only (best mode available) and says so.
            Some(name) => match NativeReceiver::new(interface_index(name)?) {
                Ok(n) => {
                    tracing::info!(interface = %name, "native multicast receive enabled");
                    Some(n)
                }
                Err(e) => {
                    tracing::error!(interface = %name, "native multicast disabled, relaying injected data only: {e}");
                    None
                }
            },
            None => None,
        };
        let (tx, rx) = mpsc::channel(1024);
        let mut injects = Vec::new();
        for rule in &opts.injects {
            let sock = bind_tokio_udp(rule.listen)?;
            tracing::info!(listen = %rule.listen, channel = %rule.channel, "injecting UDP datagrams");
            injects.push(InjectSocket { sock, sg: rule.channel.source_group(), dest_port: rule.channel.port });
        }
        let native_active = native.is_some();
        let counters = Arc::new(RelayCounters::default());
        tracing::info!(advertised = %config.advertised, wildcard, "relay address in Advertisements");
        let relay = match &opts.state_file {
            Some(path) => match crate::state_file::load(path, SystemTime::now()) {
                Ok(Some((snap, age))) => {
                    tracing::info!(path = %path.display(), tunnels = snap.tunnels.len(), ?age, "relay state restored");
                    Relay::restore(config, &snap, age, StdRng::from_os_rng(), Instant::now())
                }
                Ok(None) => {
                    tracing::info!(path = %path.display(), "no relay state yet: starting fresh");
                    Relay::new(config, StdRng::from_os_rng(), Instant::now())
                }
                Err(e) => {
                    tracing::warn!("{e}; starting fresh");
                    Relay::new(config, StdRng::from_os_rng(), Instant::now())
                }
            },
            None => Relay::new(config, StdRng::from_os_rng(), Instant::now()),
        };
        let mut relay = relay;
        relay.set_access(opts.access.clone());
        let (access_tx, access_rx) = watch::channel(opts.access.clone());
        let driver = Driver {
            relay,
            access: access_rx,
            sock,
            native,
            counters: counters.clone(),
            cache: HashMap::new(),
            batch: if wildcard {
                RecvBatch::with_local_addresses(crate::mmsg::RECV_BATCH, crate::mmsg::MAX_DATAGRAM)
            } else {
                RecvBatch::default()
            },
            out: Vec::with_capacity(2048),
            last_tunnels: 0,
            v6: local_addr.is_ipv6(),
            wildcard,
            injects,
            inject_batch: RecvBatch::default(),
            frames: Vec::new(),
            saved_generation: None,
            state_file: opts.state_file.clone(),
            write_at: None,
        };
        tracing::info!(%local_addr, "AMT relay listening");
        let task = tokio::spawn(driver.run(rx));
        Ok(RelayHandle { tx, access: access_tx, local_addr, counters, task: Some(task), native_active })
    }

    /// Whether native multicast receive is running (asked for AND the raw sockets could be opened).
    pub fn native_active(&self) -> bool {
        self.native_active
    }

    /// The address the AMT socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Pushes one UDP payload as multicast data of (S,G) with the given UDP ports into every
    /// tunnel that joined it. Waits when the driver's queue is full (back-pressure).
    pub async fn inject(&self, sg: SourceGroup, source_port: u16, dest_port: u16, payload: Bytes) -> Result<()> {
        self.tx
            .send(Command::Inject { sg, source_port, dest_port, payload })
            .await
            .map_err(|_| NetError::Stopped("relay"))
    }

    /// Like [`inject`](Self::inject) but never waits: a full queue drops the packet
    /// (returns `Ok(false)`), as a real-time stream should.
    pub fn try_inject(&self, sg: SourceGroup, source_port: u16, dest_port: u16, payload: Bytes) -> Result<bool> {
        match self.tx.try_send(Command::Inject { sg, source_port, dest_port, payload }) {
            Ok(()) => Ok(true),
            Err(mpsc::error::TrySendError::Full(_)) => Ok(false),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(NetError::Stopped("relay")),
        }
    }

    /// Replaces the access policy (the latest one wins; the relay applies it before its next
    /// datagram).
    pub fn set_access(&self, access: Access) {
        self.access.send_replace(access);
    }

    /// Current counters.
    pub fn stats(&self) -> RelayStats {
        let c = &self.counters;
        RelayStats {
            tunnels: c.tunnels.load(Ordering::Relaxed),
            control_in: c.control_in.load(Ordering::Relaxed),
            control_rejected: c.control_rejected.load(Ordering::Relaxed),
            data_in: c.data_in.load(Ordering::Relaxed),
            data_out: c.data_out.load(Ordering::Relaxed),
            send_errors: c.send_errors.load(Ordering::Relaxed),
            denied: c.denied.load(Ordering::Relaxed),
        }
    }

    /// Stops the relay and waits until its socket is closed.
    pub async fn shutdown(mut self) {
        let (done_tx, done_rx) = oneshot::channel();
        if self.tx.send(Command::Shutdown(done_tx)).await.is_ok() {
            let _ = done_rx.await;
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

struct Driver {
    relay: Relay,
    /// The owner's access policy.
    access: watch::Receiver<Access>,
    sock: UdpSocket,
    native: Option<NativeReceiver>,
    counters: Arc<RelayCounters>,
    /// (S,G) -> encoded subscriber addresses; cleared whenever membership may have changed.
    cache: HashMap<SourceGroup, Destinations>,
    batch: RecvBatch,
    out: Vec<u8>,
    last_tunnels: usize,
    /// The AMT socket is IPv6 (dual-stack): IPv4 peers must be addressed as mapped IPv6.
    v6: bool,
    /// The AMT socket is bound to a wildcard address: replies name their source address.
    wildcard: bool,
    /// `--inject` sockets, owned here: their datagrams are fanned out a whole receive batch at a time.
    injects: Vec<InjectSocket>,
    inject_batch: RecvBatch,
    /// The encapsulated messages of one inject batch (buffers reused), each sent as one iovec
    /// to every tunnel.
    frames: Vec<Vec<u8>>,
    /// `--state` file, the relay generation last written there, and when the next write is due.
    state_file: Option<PathBuf>,
    saved_generation: Option<u64>,
    write_at: Option<Instant>,
}

impl Driver {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        // Restored memberships: native joins and counters before the first datagram.
        self.flush().await;
        self.saved_generation = Some(self.relay.generation());
        // One timer for the relay machine's deadline, moved only when the deadline moves (not
        // registered anew on every wake-up).
        let timer = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        loop {
            let deadline = self.relay.poll_timeout();
            if deadline != armed {
                if let Some(d) = deadline {
                    timer.as_mut().reset(tokio::time::Instant::from_std(d));
                }
                armed = deadline;
            }
            // Not biased: under a flood of control datagrams the socket is always readable, and
            // a fixed order would starve the timers and the injected media (or, the other way
            // round, a saturated inject stream the control socket). Each branch does bounded work.
            tokio::select! {
                _ = sleep_until(self.write_at) => self.save_state(),
                r = self.access.changed() => {
                    if r.is_ok() {
                        let access = self.access.borrow_and_update().clone();
                        self.relay.set_access(access);
                        self.cache.clear();
                    }
                }
                r = self.sock.readable() => {
                    if let Err(e) = r {
                        tracing::error!("AMT socket failed: {e}");
                        break;
                    }
                    self.receive_control();
                }
                _ = &mut timer, if armed.is_some() => {
                    armed = None;
                    self.relay.handle_timeout(Instant::now());
                    self.cache.clear();
                }
                cmd = rx.recv() => match cmd {
                    Some(Command::Inject { sg, source_port, dest_port, payload }) => {
                        self.forward(&sg, source_port, dest_port, &payload).await;
                        // Drain what else is queued without re-running the select.
                        for _ in 0..64 {
                            match rx.try_recv() {
                                Ok(Command::Inject { sg, source_port, dest_port, payload }) => {
                                    self.forward(&sg, source_port, dest_port, &payload).await;
                                }
                                Ok(Command::Shutdown(done)) => {
                                    self.finish().await;
                                    let _ = done.send(());
                                    return;
                                }
                                Err(_) => break,
                            }
                        }
                    }
                    Some(Command::Shutdown(done)) => {
                        self.finish().await;
                        let _ = done.send(());
                        return;
                    }
                    None => break,
                },
                i = inject_ready(&self.injects) => self.receive_inject(i).await,
                pkt = recv_native(&mut self.native) => match pkt {
                    Ok(p) => {
                        let sg = SourceGroup { source: p.source.ip(), group: p.group.ip() };
                        self.forward(&sg, p.source.port(), p.group.port(), &p.payload).await;
                    }
                    Err(e) => tracing::warn!("native multicast receive failed: {e}"),
                },
            }
            self.flush().await;
        }
        self.finish().await;
    }

    /// Reads queued AMT datagrams (batched) into the relay machine.
    fn receive_control(&mut self) {
        for _ in 0..DRAIN_BATCHES {
            let batch = &mut self.batch;
            match self.sock.try_io(Interest::READABLE, || batch.recv(&self.sock)) {
                Ok(_) => {
                    let now = Instant::now();
                    for d in self.batch.iter() {
                        self.counters.control_in.fetch_add(1, Ordering::Relaxed);
                        if d.truncated {
                            self.counters.control_rejected.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        if let Err(e) = self.relay.handle_datagram_on(now, d.from, d.local, d.data) {
                            self.counters.control_rejected.fetch_add(1, Ordering::Relaxed);
                            if let roomcast_amt::AmtError::AccessDenied { .. } = e {
                                // Rate-limited: the 1st, 2nd, 4th, 8th... denial.
                                let n = self.counters.denied.fetch_add(1, Ordering::Relaxed) + 1;
                                if n.is_power_of_two() {
                                    tracing::warn!(from = %d.from, denied = n, "membership refused: {e}");
                                }
                            }
                            tracing::debug!(from = %d.from, "rejected AMT datagram: {e}");
                        }
                    }
                    self.cache.clear();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!("AMT socket receive error: {e}");
                    break;
                }
            }
        }
    }

    /// Sends the machine's control datagrams and acts on its events.
    async fn flush(&mut self) {
        while let Some(t) = self.relay.poll_transmit() {
            let to = for_socket(t.destination, self.v6);
            let sent = match t.source {
                Some(src) if self.wildcard => {
                    let (sock, v6) = (&self.sock, self.v6);
                    match sock
                        .async_io(Interest::WRITABLE, || crate::pktinfo::send_from(sock, &t.payload, &to, src, v6))
                        .await
                    {
                        // The kernel refused that source (e.g. a link-local address without its
                        // interface): let it choose one rather than not answer.
                        Err(e) => {
                            tracing::debug!(%src, to = %t.destination, "cannot answer from the local address: {e}");
                            self.sock.send_to(&t.payload, to).await.map(|_| ())
                        }
                        ok => ok,
                    }
                }
                _ => self.sock.send_to(&t.payload, to).await.map(|_| ()),
            };
            if let Err(e) = sent {
                self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(to = %t.destination, "send failed: {e}");
            }
        }
        while let Some(ev) = self.relay.poll_event() {
            self.cache.clear();
            match ev {
                RelayEvent::Subscribe(sg) => {
                    tracing::info!(%sg, "first tunnel joined");
                    if let Some(n) = &mut self.native {
                        if let Err(e) = n.join(sg.source, sg.group) {
                            tracing::warn!(%sg, "cannot receive natively: {e}");
                        }
                    }
                }
                RelayEvent::Unsubscribe(sg) => {
                    tracing::info!(%sg, "last tunnel left");
                    if let Some(n) = &mut self.native {
                        if let Err(e) = n.leave(sg.source, sg.group) {
                            tracing::warn!(%sg, "cannot leave native group: {e}");
                        }
                    }
                }
            }
        }
        self.schedule_save();
        let tunnels = self.relay.tunnel_count();
        if tunnels != self.last_tunnels {
            tracing::info!(tunnels, "tunnel count changed");
            self.last_tunnels = tunnels;
            self.counters.tunnels.store(tunnels, Ordering::Relaxed);
        }
    }

    /// Reads queued datagrams of inject socket `i` (batched) and fans each batch out with as
    /// few `sendmmsg` calls as the (datagram, tunnel) pairs need: one call carries a whole
    /// batch to a single gateway, or one datagram to many.
    async fn receive_inject(&mut self, i: usize) {
        let Some(inject) = self.injects.get(i) else { return };
        let (sg, dest_port) = (inject.sg, inject.dest_port);
        for _ in 0..DRAIN_BATCHES {
            let batch = &mut self.inject_batch;
            let sock = &self.injects[i].sock;
            match sock.try_io(Interest::READABLE, || batch.recv(sock)) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!("inject socket receive error: {e}");
                    break;
                }
            }
            let k = self.inject_batch.len();
            self.counters.data_in.fetch_add(k as u64, Ordering::Relaxed);
            let relay = &self.relay;
            let v6 = self.v6;
            let dests = self
                .cache
                .entry(sg)
                .or_insert_with(|| Destinations::new(relay.subscribers(&sg).map(|a| for_socket(a, v6))));
            if dests.is_empty() {
                continue;
            }
            if self.frames.len() < k {
                self.frames.resize_with(k, || Vec::with_capacity(2048));
            }
            // Each message is built once, contiguous, and the same single iovec goes to every
            // tunnel: the copy is per packet, the kernel's gather work would be per message.
            let mut datagrams: [&[u8]; crate::mmsg::RECV_BATCH] = [&[]; crate::mmsg::RECV_BATCH];
            let mut n = 0;
            for (d, frame) in self.inject_batch.iter().zip(self.frames.iter_mut()) {
                if d.truncated || n == datagrams.len() {
                    continue;
                }
                match roomcast_amt::encapsulate(&sg, d.from.port(), dest_port, d.data, frame) {
                    Ok(()) => {
                        datagrams[n] = frame.as_slice();
                        n += 1;
                    }
                    Err(e) => tracing::debug!(%sg, "cannot encapsulate: {e}"),
                }
            }
            let r = fan_out_each(&self.sock, &datagrams[..n], dests, &self.counters.data_out).await;
            self.counters.send_errors.fetch_add(r.failed as u64, Ordering::Relaxed);
        }
    }

    /// Encapsulates one payload once and fans it out to the (S,G)'s tunnels.
    async fn forward(&mut self, sg: &SourceGroup, source_port: u16, dest_port: u16, payload: &[u8]) {
        self.counters.data_in.fetch_add(1, Ordering::Relaxed);
        let relay = &self.relay;
        let v6 = self.v6;
        let dests = self
            .cache
            .entry(*sg)
            .or_insert_with(|| Destinations::new(relay.subscribers(sg).map(|a| for_socket(a, v6))));
        if dests.is_empty() {
            return;
        }
        if let Err(e) = Relay::encapsulate(sg, source_port, dest_port, payload, &mut self.out) {
            tracing::debug!(%sg, "cannot encapsulate: {e}");
            return;
        }
        let r = fan_out(&self.sock, &self.out, dests, &self.counters.data_out).await;
        self.counters.send_errors.fetch_add(r.failed as u64, Ordering::Relaxed);
    }

    async fn finish(&mut self) {
        self.flush().await;
        if self.saved_generation != Some(self.relay.generation()) {
            self.save_state();
        }
        tracing::info!("AMT relay stopped");
    }

    /// Writes the state file now (if there is one) and clears the pending write.
    fn save_state(&mut self) {
        self.write_at = None;
        let Some(path) = &self.state_file else { return };
        let generation = self.relay.generation();
        match crate::state_file::save(path, &self.relay.snapshot(Instant::now()), SystemTime::now()) {
            Ok(()) => {
                tracing::debug!(path = %path.display(), generation, "relay state written");
                self.saved_generation = Some(generation);
            }
            Err(e) => {
                // Retry later, not on every datagram (a full or read-only disk stays so a while).
                tracing::warn!("{e}; retrying in 5 s");
                self.write_at = Some(Instant::now() + Duration::from_secs(5));
            }
        }
    }

    /// Schedules a state file write when the relay state moved since the last one.
    fn schedule_save(&mut self) {
        if self.state_file.is_some()
            && self.write_at.is_none()
            && self.saved_generation != Some(self.relay.generation())
        {
            self.write_at = Some(Instant::now() + STATE_WRITE_DELAY);
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

/// One `--inject` socket and the channel its datagrams become.
struct InjectSocket {
    sock: UdpSocket,
    sg: SourceGroup,
    dest_port: u16,
}

/// Resolves with the index of an inject socket that is readable (never, without any).
async fn inject_ready(injects: &[InjectSocket]) -> usize {
    std::future::poll_fn(|cx| {
        for (i, s) in injects.iter().enumerate() {
            // An error (socket failed) also wakes us; the receive then reports it.
            if s.sock.poll_recv_ready(cx).is_ready() {
                return std::task::Poll::Ready(i);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

async fn recv_native(native: &mut Option<NativeReceiver>) -> std::io::Result<crate::native::NativePacket> {
    match native {
        Some(n) => n.recv().await,
        None => std::future::pending().await,
    }
}
