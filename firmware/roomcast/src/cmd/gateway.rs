//! `roomcast gateway`: a standalone AMT gateway around [`roomcast_net::GatewayHandle`].
//!
//! Joins every `--join SOURCE@GROUP:PORT` channel through the relay and delivers each
//! received UDP payload of those channels to `--forward ADDR:PORT` (so VLC or ffplay can play
//! it), or with `--forward native` re-sends it as native multicast to GROUP:PORT on
//! `--interface`. SIGINT/SIGTERM leave the groups and tear the tunnel down before exiting.
//! With `--meeting-server URL --meeting ID --room NAME` the channel and relay come from the
//! meeting's roster instead, and the gateway joins the meeting watch-only ([`room`]): it then
//! holds the room's SRTP key and forwards decrypted RTP ([`keys`]). Channels given by `--join`
//! are forwarded as they arrive (a meeting's media stays ciphertext without its credentials).
//!
//! `--relay auto` finds the relay by DRIAD (RFC 8777: AMTRELAY records of the first channel's
//! source, [`roomcast_net::driad`]), then falls back to the RFC 7450 anycast address
//! 192.52.193.1. With several candidates, a relay that stops answering (the gateway machine
//! reports `RelayLost`) is left for the next one; after the last the records are looked up again.

mod keys;
mod room;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use roomcast_amt::{GatewayConfig, GatewayState};
use roomcast_net::native::NativeSender;
use roomcast_net::socket::interface_index;
use roomcast_net::spec::{parse_relay_addr, parse_socket_addr};
use roomcast_net::{ChannelSpec, GatewayHandle, GatewayOptions};

/// Where delivered payloads go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// Plain UDP to this address.
    Unicast(SocketAddr),
    /// Native multicast to GROUP:PORT on `--interface`.
    Native,
}

impl FromStr for Forward {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "native" {
            return Ok(Forward::Native);
        }
        parse_socket_addr(s).map(Forward::Unicast).map_err(|e| format!("{e} (or the word `native`)"))
    }
}

/// Which relay to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayChoice {
    /// This one.
    Addr(SocketAddr),
    /// DRIAD, then the anycast address.
    Auto,
}

/// Command-line arguments of `roomcast gateway`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The AMT relay, ADDR[:PORT] (port 2268 by default), or `auto`: the relays the first
    /// channel's source names in DNS (DRIAD, RFC 8777), then the anycast 192.52.193.1. With
    /// --room: the service's relay unless given.
    #[arg(long, value_name = "ADDR[:PORT]|auto", value_parser = parse_relay, required_unless_present = "meeting_server")]
    pub relay: Option<RelayChoice>,
    /// DNS server for `--relay auto`, ADDR[:PORT] (default: the system's, /etc/resolv.conf).
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = parse_dns)]
    pub dns: Option<SocketAddr>,
    /// A channel to receive, SOURCE@GROUP:PORT (repeatable); IPv6 too:
    /// 2001:db8::1@ff3e::8000:1:5004 (the last :PORT is the port).
    #[arg(long, value_name = "SOURCE@GROUP:PORT", required_unless_present = "meeting_server", value_parser = parse_channel)]
    pub join: Vec<ChannelSpec>,
    /// A room of a meeting instead of --join.
    #[command(flatten)]
    pub room: room::RoomArgs,
    /// Where to deliver the payloads: ADDR:PORT (plain UDP, e.g. 127.0.0.1:5004 for VLC or
    /// ffplay) or `native` (multicast to GROUP:PORT on --interface).
    #[arg(long, value_name = "ADDR:PORT|native")]
    pub forward: Forward,
    /// Interface for `--forward native`.
    #[arg(long, value_name = "IFNAME")]
    pub interface: Option<String>,
    /// TTL / hop limit of natively re-sent multicast.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub ttl: u32,
    /// Local address of the gateway's AMT socket (default: any address, any port).
    #[arg(long, value_name = "ADDR:PORT", value_parser = parse_bind)]
    pub bind: Option<SocketAddr>,
    /// Refresh the tunnel (Request, Query, Update) at least this often, in seconds, whatever
    /// the relay's query interval. This bounds how long a restarted relay goes unnoticed: the
    /// default of 3 s lets data resume within about 3 s of a relay restart, for three small
    /// control packets per refresh.
    #[arg(long, value_name = "SECONDS", default_value_t = 3.0, value_parser = super::relay::parse_seconds)]
    pub max_refresh: f64,
    /// Send Requests to the address the relay's Advertisement came from instead of the one it
    /// names: for a relay behind NAT that advertises the address its other clients reach it by
    /// (e.g. a `roomcast server --advertise 10.0.2.2` serving QEMU guests, used from its own host).
    #[arg(long)]
    pub ignore_advertised_address: bool,
}

fn parse_relay(s: &str) -> Result<RelayChoice, String> {
    if s == "auto" {
        return Ok(RelayChoice::Auto);
    }
    parse_relay_addr(s).map(RelayChoice::Addr).map_err(|e| format!("{e} (or the word `auto`)"))
}

fn parse_dns(s: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    parse_socket_addr(s).map_err(|e| e.to_string())
}

/// The relays to try in order (`None`: anycast discovery).
async fn candidates(choice: RelayChoice, source: IpAddr, dns: Option<SocketAddr>) -> Vec<Option<SocketAddr>> {
    let RelayChoice::Addr(a) = choice else {
        let found = match roomcast_net::driad::resolver(dns) {
            Ok(r) => roomcast_net::driad::discover(&r, source, roomcast_net::AMT_PORT, rand_u64).await,
            Err(e) => Err(e),
        };
        let mut list: Vec<Option<SocketAddr>> = match found {
            Ok(l) => l.into_iter().map(Some).collect(),
            Err(e) => {
                tracing::warn!(%source, "DRIAD lookup failed: {e}");
                Vec::new()
            }
        };
        list.push(None);
        tracing::info!(%source, relays = ?list, "DRIAD: relays to try (None: anycast discovery)");
        return list;
    };
    vec![Some(a)]
}

/// Randomness for DRIAD's choice among equal precedences (no crypto need: spreads load).
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64));
    h.finish()
}

fn parse_bind(s: &str) -> Result<SocketAddr, String> {
    parse_socket_addr(s).map_err(|e| e.to_string())
}

fn parse_channel(s: &str) -> Result<ChannelSpec, String> {
    s.parse().map_err(|e: roomcast_net::NetError| e.to_string())
}

enum Output {
    Unicast { v4: Option<std::net::UdpSocket>, v6: Option<std::net::UdpSocket>, to: SocketAddr },
    Native(NativeSender),
}

impl Output {
    fn open(args: &Args) -> anyhow::Result<Output> {
        match args.forward {
            Forward::Unicast(to) => {
                let bind =
                    if to.is_ipv4() { IpAddr::V4(Ipv4Addr::UNSPECIFIED) } else { IpAddr::V6(Ipv6Addr::UNSPECIFIED) };
                let s = std::net::UdpSocket::bind((bind, 0))
                    .with_context(|| format!("--forward {to}: cannot open a UDP socket"))?;
                s.set_nonblocking(true)?;
                let (v4, v6) = if to.is_ipv4() { (Some(s), None) } else { (None, Some(s)) };
                Ok(Output::Unicast { v4, v6, to })
            }
            Forward::Native => {
                let Some(name) = &args.interface else {
                    bail!("--forward native needs --interface IFNAME (the interface to send multicast on)");
                };
                let idx = interface_index(name).with_context(|| format!("--interface {name}"))?;
                Ok(Output::Native(NativeSender::new(idx, args.ttl).context("--forward native")?))
            }
        }
    }

    fn send(&self, group: SocketAddr, payload: &[u8]) -> std::io::Result<()> {
        match self {
            Output::Unicast { v4, v6, to } => {
                let s = v4.as_ref().or(v6.as_ref()).ok_or_else(|| std::io::Error::other("no socket"))?;
                s.send_to(payload, to).map(|_| ())
            }
            Output::Native(n) => n.send(group, payload),
        }
    }
}

/// Runs `roomcast gateway`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.interface.is_some() && args.forward != Forward::Native {
        tracing::warn!("--interface is only used with --forward native; ignoring it");
    }
    let configured = match args.relay {
        Some(RelayChoice::Addr(a)) => Some(a),
        _ => None,
    };
    let output = Output::open(&args)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    rt.block_on(async move {
        let (choice, join, membership, decrypt) = match &args.room.meeting_server {
            Some(_) => {
                let (relay, c, m, keys) = room::resolve(&args.room, configured).await?;
                let choice = args.relay.filter(|r| *r == RelayChoice::Auto).unwrap_or(RelayChoice::Addr(relay));
                let decrypt = Decrypt { keys, rosters: m.rosters.clone() };
                (choice, vec![c], Some(m), Some(decrypt))
            }
            None => (args.relay.context("--relay is required")?, args.join.clone(), None, None),
        };
        let result = receive(&args, &output, choice, join, decrypt).await;
        if let Some(m) = membership {
            m.leave().await;
        }
        result
    })
}

/// The room's key state and the rosters that bring its rekeys (with `--meeting-server`).
struct Decrypt {
    keys: keys::RoomKeys,
    rosters: tokio::sync::watch::Receiver<roomcast_meeting::roster::Roster>,
}

/// Sleeps until `at` (forever without one).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// The next roster change (`Err`: the follower stopped; pending forever without `decrypt`).
async fn rosters_changed(decrypt: &mut Option<Decrypt>) -> Result<(), tokio::sync::watch::error::RecvError> {
    match decrypt {
        Some(d) => d.rosters.changed().await,
        None => std::future::pending().await,
    }
}

/// Receives `join` through the relays of `choice` and forwards until SIGINT/SIGTERM; with
/// `decrypt`, each payload is decrypted first (what no key authenticates is dropped).
async fn receive(
    args: &Args,
    output: &Output,
    choice: RelayChoice,
    join: Vec<ChannelSpec>,
    mut decrypt: Option<Decrypt>,
) -> anyhow::Result<()> {
    {
        let source = join.first().map(|c| c.source).context("no channel to join")?;
        if choice == RelayChoice::Auto && join.iter().any(|c| c.source != source) {
            tracing::warn!(%source, "--relay auto: channels of several sources; using the relays of the first one");
        }
        let mut relays = candidates(choice, source, args.dns).await;
        // (group, port) pairs we deliver; several ports of one (S,G) share one join.
        let wanted: HashSet<(IpAddr, IpAddr, u16)> = join.iter().map(|c| (c.source, c.group, c.port)).collect();
        let mut forwarded: u64 = 0;
        let mut errors: u64 = 0;
        let mut undecryptable: u64 = 0;
        let mut rosters_open = decrypt.is_some();
        let shutdown = super::relay::wait_for_shutdown();
        tokio::pin!(shutdown);
        let mut next = 0usize;
        loop {
            let relay = relays[next % relays.len()];
            let mut config = GatewayConfig { relay, ..GatewayConfig::default() };
            config.max_refresh_interval = Some(Duration::from_secs_f64(args.max_refresh));
            config.follow_advertised_address = !args.ignore_advertised_address;
            let failover = relays.len() > 1;
            if failover {
                // Another relay is waiting: give up on a silent one sooner (~2.5 s after data stops).
                config.initial_retransmit = Duration::from_millis(500);
                config.request_retries = 2;
            }
            let opts = GatewayOptions { bind: args.bind, config, delivery_capacity: 4096 };
            let (gateway, mut deliveries) = GatewayHandle::spawn(opts).await.context("starting the AMT gateway")?;
            tracing::info!(relay = ?relay, "using relay (None: anycast discovery)");
            let mut joined = HashSet::new();
            for c in &join {
                let sg = c.source_group();
                if joined.insert(sg) {
                    gateway.join(sg).await.with_context(|| format!("--join {c}"))?;
                }
            }
            let mut state = gateway.state();
            let lost = loop {
                let key_deadline = decrypt.as_ref().and_then(|d| d.keys.poll_timeout());
                tokio::select! {
                    r = &mut shutdown => { r?; break false; }
                    r = state.changed(), if failover => {
                        if r.is_err() || matches!(*state.borrow(), GatewayState::RelayLost { .. }) {
                            break true;
                        }
                    }
                    _ = sleep_until(key_deadline), if key_deadline.is_some() => {
                        if let Some(dec) = decrypt.as_mut() {
                            dec.keys.handle_timeout(Instant::now());
                        }
                    }
                    r = rosters_changed(&mut decrypt), if rosters_open => {
                        let Some(dec) = decrypt.as_mut().filter(|_| r.is_ok()) else {
                            rosters_open = false; // the follower stopped: keep the keys we have
                            continue;
                        };
                        let roster = dec.rosters.borrow_and_update().clone();
                        if let Err(e) = dec.keys.handle_roster(Instant::now(), &roster) {
                            tracing::warn!("media key in roster {}: {e}", roster.version);
                        }
                    }
                    d = deliveries.recv() => {
                        let Some(d) = d else { break false };
                        if !wanted.contains(&(d.source.ip(), d.group.ip(), d.group.port())) {
                            continue;
                        }
                        let decrypted;
                        let plain: &[u8] = match decrypt.as_mut() {
                            Some(dec) => match dec.keys.unprotect(Instant::now(), &d.payload) {
                                Ok(p) => {
                                    decrypted = p;
                                    &decrypted
                                }
                                Err(e) => {
                                    undecryptable += 1;
                                    if undecryptable.is_power_of_two() {
                                        tracing::warn!("dropped a packet no media key decrypts ({undecryptable} so far): {e}");
                                    }
                                    continue;
                                }
                            },
                            None => &d.payload,
                        };
                        match output.send(d.group, plain) {
                            Ok(()) => forwarded += 1,
                            Err(e) => {
                                errors += 1;
                                if errors.is_power_of_two() {
                                    tracing::warn!("forwarding failed ({errors} so far): {e}");
                                }
                            }
                        }
                    }
                }
            };
            let stats = gateway.stats();
            if !lost {
                let decryption = decrypt.as_ref().map(|d| d.keys.stats());
                tracing::info!(forwarded, errors, undecryptable, ?decryption, ?stats, "tearing down");
                gateway.close().await;
                return Ok(());
            }
            tracing::warn!(relay = ?relay, ?stats, "relay lost: moving to the next one");
            gateway.close().await;
            next += 1;
            if next.is_multiple_of(relays.len()) {
                relays = candidates(choice, source, args.dns).await;
            }
        }
    }
}
