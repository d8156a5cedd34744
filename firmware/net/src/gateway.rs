//! [`GatewayHandle`]: the tokio driver of the sans-IO [`roomcast_amt::Gateway`].
//!
//! One task owns the gateway machine and its UDP socket. Datagrams are received in
//! `recvmmsg` batches; Multicast Data from the relay goes through the machine's zero-copy
//! fast path ([`Gateway::accept_data`]) straight into the delivery channel, everything else
//! through [`Gateway::handle_datagram`]. Timers come from `poll_timeout`. The state is
//! published on a `tokio::sync::watch` (the box's display shows it), joins and leaves are
//! commands, and [`GatewayHandle::close`] tears the tunnel down (Teardown sent) before the
//! task ends.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use roomcast_amt::{Gateway, GatewayConfig, GatewayEvent, GatewayState, MulticastDataRef, SourceGroup};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::{NetError, Result};
use crate::mmsg::RecvBatch;
use crate::socket::{bind_tokio_udp, for_socket};

/// How many receive batches one wake-up drains before giving other work a turn.
const DRAIN_BATCHES: usize = 16;

/// Everything a gateway driver needs.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Local address of the gateway's UDP socket (`None`: the unspecified address of the
    /// relay's family, any port).
    pub bind: Option<SocketAddr>,
    /// Protocol settings (relay address, timers).
    pub config: GatewayConfig,
    /// Capacity of the delivery channel; when the consumer is slower, packets are dropped
    /// (and counted) rather than stalling the tunnel.
    pub delivery_capacity: usize,
}

impl GatewayOptions {
    /// A gateway using the relay at `relay`, default timers.
    pub fn new(relay: SocketAddr) -> GatewayOptions {
        GatewayOptions {
            bind: None,
            config: GatewayConfig { relay: Some(relay), ..GatewayConfig::default() },
            delivery_capacity: 4096,
        }
    }
}

/// One multicast UDP datagram received through the tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Source address S and UDP source port.
    pub source: SocketAddr,
    /// Group address G and UDP destination port.
    pub group: SocketAddr,
    /// UDP payload.
    pub payload: Bytes,
}

impl Delivery {
    /// The (S,G) of this datagram.
    pub fn source_group(&self) -> SourceGroup {
        SourceGroup { source: self.source.ip(), group: self.group.ip() }
    }

    fn from_ref(d: &MulticastDataRef<'_>) -> Delivery {
        Delivery { source: d.source, group: d.group, payload: Bytes::copy_from_slice(d.payload) }
    }
}

/// Counters of a running gateway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayStats {
    /// Datagrams delivered to the channel.
    pub delivered: u64,
    /// Datagrams dropped because the channel was full.
    pub dropped: u64,
    /// Datagrams the machine rejected (malformed, wrong relay, unjoined group...).
    pub rejected: u64,
}

#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    dropped: AtomicU64,
    rejected: AtomicU64,
}

enum Command {
    Join(SourceGroup, oneshot::Sender<Result<(), roomcast_amt::AmtError>>),
    Leave(SourceGroup, oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
}

/// A running gateway. Dropping it closes the tunnel (Teardown sent) in the background.
#[derive(Debug)]
pub struct GatewayHandle {
    tx: mpsc::Sender<Command>,
    state: watch::Receiver<GatewayState>,
    local_addr: SocketAddr,
    counters: Arc<Counters>,
    task: Option<JoinHandle<()>>,
}

impl GatewayHandle {
    /// Binds the socket and spawns the gateway on the current tokio runtime. Returns the
    /// handle and the channel the joined groups' datagrams arrive on.
    pub async fn spawn(opts: GatewayOptions) -> Result<(GatewayHandle, mpsc::Receiver<Delivery>)> {
        let bind = opts.bind.unwrap_or_else(|| {
            let ipv6 = opts.config.relay.is_some_and(|r| r.is_ipv6());
            let ip = if ipv6 { IpAddr::V6(Ipv6Addr::UNSPECIFIED) } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) };
            SocketAddr::new(ip, 0)
        });
        let sock = bind_tokio_udp(bind)?;
        let local_addr = sock.local_addr()?;
        let now = Instant::now();
        let gateway = Gateway::new(opts.config.clone(), rand::SeedableRng::from_os_rng(), now);
        let (state_tx, state_rx) = watch::channel(gateway.state().clone());
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let (data_tx, data_rx) = mpsc::channel(opts.delivery_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let driver = Driver {
            gateway,
            sock,
            state_tx,
            data_tx,
            counters: counters.clone(),
            batch: RecvBatch::default(),
            v6: local_addr.is_ipv6(),
        };
        tracing::info!(%local_addr, relay = ?opts.config.relay, "AMT gateway started");
        let task = tokio::spawn(driver.run(cmd_rx));
        Ok((GatewayHandle { tx: cmd_tx, state: state_rx, local_addr, counters, task: Some(task) }, data_rx))
    }

    /// The gateway socket's local address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Joins (S,G) (reported to the relay at once if the tunnel is up).
    pub async fn join(&self, sg: SourceGroup) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Command::Join(sg, tx)).await.map_err(|_| NetError::Stopped("gateway"))?;
        rx.await.map_err(|_| NetError::Stopped("gateway"))?.map_err(|e| NetError::Parse {
            what: "source-group",
            input: sg.to_string(),
            reason: e.to_string(),
        })
    }

    /// Leaves (S,G).
    pub async fn leave(&self, sg: SourceGroup) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Command::Leave(sg, tx)).await.map_err(|_| NetError::Stopped("gateway"))?;
        rx.await.map_err(|_| NetError::Stopped("gateway"))
    }

    /// A watch of the gateway state (Discovering, Requesting, Joined, RelayLost, Closed).
    pub fn state(&self) -> watch::Receiver<GatewayState> {
        self.state.clone()
    }

    /// Current counters.
    pub fn stats(&self) -> GatewayStats {
        GatewayStats {
            delivered: self.counters.delivered.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            rejected: self.counters.rejected.load(Ordering::Relaxed),
        }
    }

    /// Leaves every group, sends Teardown to the relay, and waits for the task to end.
    pub async fn close(mut self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

struct Driver {
    gateway: Gateway,
    sock: UdpSocket,
    state_tx: watch::Sender<GatewayState>,
    data_tx: mpsc::Sender<Delivery>,
    counters: Arc<Counters>,
    batch: RecvBatch,
    /// The socket is IPv6: IPv4 relays are addressed as mapped IPv6.
    v6: bool,
}

impl Driver {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        loop {
            let deadline = self.gateway.poll_timeout();
            tokio::select! {
                biased;
                cmd = rx.recv() => match cmd {
                    Some(Command::Join(sg, reply)) => {
                        let r = self.gateway.handle_join(Instant::now(), sg);
                        if r.is_ok() {
                            tracing::info!(%sg, "joined");
                        }
                        let _ = reply.send(r);
                    }
                    Some(Command::Leave(sg, reply)) => {
                        self.gateway.handle_leave(Instant::now(), sg);
                        tracing::info!(%sg, "left");
                        let _ = reply.send(());
                    }
                    Some(Command::Close(reply)) => {
                        self.close().await;
                        let _ = reply.send(());
                        return;
                    }
                    None => {
                        // Every handle is gone: tear down and stop.
                        self.close().await;
                        return;
                    }
                },
                r = self.sock.readable() => {
                    if let Err(e) = r {
                        tracing::error!("gateway socket failed: {e}");
                        break;
                    }
                    self.receive();
                }
                _ = sleep_until(deadline) => self.gateway.handle_timeout(Instant::now()),
            }
            self.flush().await;
        }
        self.close().await;
    }

    fn deliver(&self, d: Delivery) {
        match self.data_tx.try_send(d) {
            Ok(()) => {
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // Nobody listens (yet/anymore): the tunnel keeps running.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Drains queued datagrams in batches: data through the fast path, the rest into the machine.
    fn receive(&mut self) {
        for _ in 0..DRAIN_BATCHES {
            let batch = &mut self.batch;
            match self.sock.try_io(Interest::READABLE, || batch.recv(&self.sock)) {
                Ok(_) => {
                    let now = Instant::now();
                    for d in self.batch.iter() {
                        if d.truncated {
                            self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        match self.gateway.accept_data(d.from, d.data) {
                            Ok(Some(data)) => {
                                let delivery = Delivery::from_ref(&data);
                                self.deliver(delivery);
                            }
                            Ok(None) => {
                                if let Err(e) = self.gateway.handle_datagram(now, d.from, d.data) {
                                    self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                                    tracing::debug!(from = %d.from, "rejected datagram: {e}");
                                }
                            }
                            Err(e) => {
                                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                                tracing::debug!(from = %d.from, "rejected data: {e}");
                            }
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!("gateway socket receive error: {e}");
                    break;
                }
            }
        }
    }

    async fn flush(&mut self) {
        while let Some(t) = self.gateway.poll_transmit() {
            if let Err(e) = self.sock.send_to(&t.payload, for_socket(t.destination, self.v6)).await {
                tracing::debug!(to = %t.destination, "send failed: {e}");
            }
        }
        while let Some(ev) = self.gateway.poll_event() {
            match ev {
                GatewayEvent::Data(d) => {
                    self.deliver(Delivery { source: d.source, group: d.group, payload: Bytes::from(d.payload) });
                }
                GatewayEvent::StateChanged(s) => {
                    // The one log line per state change (the core and the box only forward it).
                    tracing::info!(state = ?s, "AMT gateway state");
                    self.state_tx.send_replace(s);
                }
            }
        }
    }

    async fn close(&mut self) {
        self.gateway.handle_close(Instant::now());
        self.flush().await;
        self.state_tx.send_replace(self.gateway.state().clone());
        tracing::info!("AMT gateway closed");
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}
