//! `roomcast gateway`: a standalone AMT gateway around [`roomcast_net::GatewayHandle`].
//!
//! Joins every `--join SOURCE@GROUP:PORT` channel through the relay and delivers each
//! received UDP payload of those channels to `--forward ADDR:PORT` (so VLC or ffplay can play
//! it), or with `--forward native` re-sends it as native multicast to GROUP:PORT on
//! `--interface`. SIGINT/SIGTERM leave the groups and tear the tunnel down before exiting.
//! With `--meeting-server HOST:PORT --meeting ID --room NAME` the channel and relay come from
//! the meeting's roster instead ([`room`]).

mod room;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context};
use roomcast_amt::GatewayConfig;
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

/// Command-line arguments of `roomcast gateway`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The AMT relay, ADDR[:PORT] (port 2268 by default). With --room: the service's relay.
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = parse_relay, required_unless_present = "meeting_server")]
    pub relay: Option<SocketAddr>,
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

fn parse_relay(s: &str) -> Result<SocketAddr, String> {
    parse_relay_addr(s).map_err(|e| e.to_string())
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
    let (relay, join) = match &args.room.meeting_server {
        Some(_) => room::resolve(&args.room, args.relay).map(|(r, c)| (r, vec![c]))?,
        None => (args.relay.context("--relay is required")?, args.join.clone()),
    };
    let output = Output::open(&args)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    rt.block_on(async move {
        let mut config = GatewayConfig { relay: Some(relay), ..GatewayConfig::default() };
        config.max_refresh_interval = Some(Duration::from_secs_f64(args.max_refresh));
        config.follow_advertised_address = !args.ignore_advertised_address;
        let opts = GatewayOptions { bind: args.bind, config, delivery_capacity: 4096 };
        let (gateway, mut deliveries) = GatewayHandle::spawn(opts).await.context("starting the AMT gateway")?;
        // (group, port) pairs we deliver; several ports of one (S,G) share one join.
        let wanted: HashSet<(IpAddr, IpAddr, u16)> = join.iter().map(|c| (c.source, c.group, c.port)).collect();
        let mut joined = HashSet::new();
        for c in &join {
            let sg = c.source_group();
            if joined.insert(sg) {
                gateway.join(sg).await.with_context(|| format!("--join {c}"))?;
            }
        }
        let mut forwarded: u64 = 0;
        let mut errors: u64 = 0;
        let shutdown = super::relay::wait_for_shutdown();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                r = &mut shutdown => { r?; break; }
                d = deliveries.recv() => {
                    let Some(d) = d else { break };
                    if !wanted.contains(&(d.source.ip(), d.group.ip(), d.group.port())) {
                        continue;
                    }
                    match output.send(d.group, &d.payload) {
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
        }
        let stats = gateway.stats();
        tracing::info!(forwarded, errors, ?stats, "tearing down");
        gateway.close().await;
        Ok(())
    })
}
