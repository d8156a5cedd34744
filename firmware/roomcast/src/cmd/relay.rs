//! `roomcast relay`: a standalone AMT relay (RFC 7450) around [`roomcast_net::RelayHandle`].
//!
//! Data enters through `--inject` sockets (each UDP datagram becomes multicast data of one
//! SOURCE@GROUP:PORT channel) and/or natively from `--native-interface` (source-specific
//! joins made when the first gateway joins a channel). SIGINT/SIGTERM stop it cleanly.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use roomcast_amt::RelayConfig;
use roomcast_net::spec::parse_relay_addr;
use roomcast_net::{InjectSpec, RelayHandle, RelayOptions};

/// Command-line arguments of `roomcast relay`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address and UDP port to serve AMT on, e.g. 0.0.0.0:2268 or [::]:2268 (port 2268 if omitted).
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Turn every UDP datagram received on ADDR:PORT into multicast data of SOURCE@GROUP:PORT
    /// (repeatable), e.g. 127.0.0.1:6000=192.0.2.1@232.1.1.1:5004.
    #[arg(long, value_name = "ADDR:PORT=SOURCE@GROUP:PORT", value_parser = parse_inject)]
    pub inject: Vec<InjectSpec>,
    /// Also receive the joined channels as native multicast on this interface (needs CAP_NET_RAW).
    #[arg(long, value_name = "IFNAME")]
    pub native_interface: Option<String>,
    /// Query interval announced to gateways, in seconds: how often they must refresh their
    /// membership (roomcast gateways also refresh at least every `--max-refresh`, 3 s).
    #[arg(long, value_name = "SECONDS", default_value_t = 125.0, value_parser = parse_seconds)]
    pub query_interval: f64,
    /// Maximum number of tunnels (gateways).
    #[arg(long, value_name = "N", default_value_t = RelayConfig::default().max_tunnels)]
    pub max_tunnels: usize,
    /// Maximum number of tunnels one address holds (an IPv4 address or an IPv6 /64), so one
    /// address cannot take every tunnel; boxes behind one NAT share it.
    #[arg(long, value_name = "N", default_value_t = RelayConfig::default().max_tunnels_per_address)]
    pub max_tunnels_per_address: usize,
    /// Requests and Discoveries answered per second per address (burst of twice that) for
    /// gateways without a tunnel; gateways with a tunnel are served first, on their own budget.
    #[arg(long, value_name = "N", default_value_t = RelayConfig::default().requests_per_second_per_address)]
    pub requests_per_address: u32,
    /// Requests and Discoveries answered per second in all (burst of twice that) for gateways
    /// without a tunnel.
    #[arg(long, value_name = "N", default_value_t = RelayConfig::default().requests_per_second)]
    pub requests_per_second: u32,
    /// Relay address put in Relay Advertisements (and the IGMP queries' source), for NAT and
    /// anycast setups. Default: the `--listen` address, or for a wildcard listen address the
    /// local address each Discovery was sent to.
    #[arg(long, value_name = "ADDR")]
    pub advertise: Option<IpAddr>,
    /// Keep the MAC secrets and the membership table in FILE across restarts (written shortly
    /// after each change and on SIGTERM, atomically, mode 0600; restored at start), so gateways
    /// that refresh only every query interval keep receiving after a restart.
    #[arg(long, value_name = "FILE")]
    pub state: Option<std::path::PathBuf>,
    /// Put each gateway's address and port, as the relay sees them, in its Membership Queries
    /// (RFC 7450 G flag) so gateways behind a NAT can send Teardown. Off by default: the Linux
    /// kernel's AMT gateway drops queries with the G flag set (see the README's AMT interop table).
    #[arg(long)]
    pub query_gateway_address: bool,
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    parse_relay_addr(s).map_err(|e| e.to_string())
}

fn parse_inject(s: &str) -> Result<InjectSpec, String> {
    s.parse().map_err(|e: roomcast_net::NetError| e.to_string())
}

pub(crate) fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.1..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds between 0.1 and 86400")),
    }
}

/// Runs `roomcast relay`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    rt.block_on(async move {
        let config = RelayConfig {
            query_interval: Duration::from_secs_f64(args.query_interval),
            max_tunnels: args.max_tunnels,
            max_tunnels_per_address: args.max_tunnels_per_address,
            requests_per_second_per_address: args.requests_per_address,
            requests_per_second: args.requests_per_second,
            advertised: args.advertise.unwrap_or(RelayConfig::default().advertised),
            query_gateway_address: args.query_gateway_address,
            ..RelayConfig::default()
        };
        let opts = RelayOptions {
            listen: args.listen,
            config,
            injects: args.inject.clone(),
            native_interface: args.native_interface.clone(),
            state_file: args.state.clone(),
            // Anyone may receive: the media is end-to-end encrypted.
            access: roomcast_amt::Access::Open,
        };
        let relay = RelayHandle::spawn(opts).await.context("starting the AMT relay")?;
        wait_for_shutdown().await?;
        tracing::info!(stats = ?relay.stats(), "stopping");
        relay.shutdown().await;
        Ok(())
    })
}

/// Resolves on the first SIGINT or SIGTERM (shared with `roomcast gateway`).
pub(crate) async fn wait_for_shutdown() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => tracing::info!(target: "roomcast", "SIGTERM received"),
        _ = int.recv() => tracing::info!(target: "roomcast", "SIGINT received"),
    }
    Ok(())
}
