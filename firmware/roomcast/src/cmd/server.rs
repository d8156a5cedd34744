//! `roomcast server`: the meeting service. It drives the sans-IO
//! [`roomcast_meeting::MeetingService`] with three sockets and an embedded AMT relay:
//! - the HTTP/JSON control API on `--listen` (join, leave, keepalive, roster with long poll,
//!   SDP; see `roomcast_meeting::control`) over TLS with a certificate kept in `--tls-dir`
//!   (plain HTTP only on a loopback address), one request per connection ([`http`]);
//! - the media port `--rtp-listen`, where participants send RTP and RTCP (rtcp-mux); each
//!   packet from a known SSRC is injected into its sender's IPv4 and IPv6 (S,G);
//! - the AMT relay on `--relay-listen` ([`roomcast_net::RelayHandle`]) through which boxes and
//!   standard players receive the groups; it serves a meeting's groups only to the addresses
//!   its participants joined from (a `roomcast gateway --meeting-server` joins watch-only).
//!
//! One task ([`core`]) owns the service, the media socket and the timers (it sleeps until the
//! core's `poll_timeout`); the HTTP connections send it commands. SIGINT/SIGTERM stop it.

mod core;
mod credentials;
mod http;
mod tls_dir;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::TryRngCore;
use roomcast_meeting::pool::Range;
use roomcast_meeting::roster::Ports;
use roomcast_meeting::service::MeetingSpec;
use roomcast_meeting::{MeetingError, MeetingService, ServiceConfig};
use roomcast_net::{RelayHandle, RelayOptions};
use tokio::net::{TcpListener, UdpSocket};

/// Command-line arguments of `roomcast server`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address of the HTTP/JSON control API: HTTPS, or plain HTTP on a loopback address
    /// (127.0.0.1, ::1) when no --tls-dir is given.
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:8470")]
    pub listen: SocketAddr,
    /// Keep the control API's TLS certificate and key here (cert.pem, key.pem mode 0600),
    /// made self-signed on first start; its fingerprint (`fingerprint sha256:...`) is logged at
    /// every start, for the boxes' `[meeting] fingerprint`. Default: $STATE_DIRECTORY/tls,
    /// else $XDG_STATE_HOME/roomcast/tls, else ~/.local/state/roomcast/tls. Given with a loopback
    /// --listen, it turns TLS on there too.
    #[arg(long, value_name = "DIR")]
    pub tls_dir: Option<PathBuf>,
    /// Print the certificate's fingerprint (making the certificate if there is none yet in
    /// --tls-dir) and exit.
    #[arg(long)]
    pub print_fingerprint: bool,
    /// Address participants send their RTP/RTCP to.
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:8472")]
    pub rtp_listen: SocketAddr,
    /// Address of the embedded AMT relay.
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:2268")]
    pub relay_listen: SocketAddr,
    /// The address this host is known by: the IPv4 source S of every group, and the address
    /// told to participants for the media port and the relay (roomcast boxes use the address
    /// they reached the control API at, with these ports). E.g. 10.0.2.2 for the QEMU demo.
    /// When given, the embedded relay's Advertisements carry it too (NAT, anycast); else they
    /// carry the `--relay-listen` address, or for a wildcard one the address each Discovery
    /// was sent to. Default 127.0.0.1.
    #[arg(long, value_name = "IPV4")]
    pub advertise: Option<Ipv4Addr>,
    /// Put each gateway's address and port, as the relay sees them, in its Membership Queries
    /// (RFC 7450 G flag) so gateways behind a NAT can send Teardown. Off by default: the Linux
    /// kernel's AMT gateway drops queries with the G flag set (see the README's AMT interop table).
    #[arg(long)]
    pub query_gateway_address: bool,
    /// IPv6 source S of every IPv6 group.
    #[arg(long, value_name = "IPV6", default_value = "fd00:726f:6f6d::1")]
    pub source_v6: Ipv6Addr,
    /// The meetings: a file of `ID TOKEN` lines (`#` comments), not readable by group or
    /// others. $ROOMCAST_MEETINGS may hold the same lines (or entries separated by `;`).
    #[arg(long = "meetings", value_name = "FILE")]
    pub meetings_file: Option<PathBuf>,
    /// A meeting as ID:TOKEN (repeatable). Kept for demos; it warns, since every user sees a
    /// command line (ps): prefer --meetings FILE or $ROOMCAST_MEETINGS.
    #[arg(long = "meeting", value_name = "ID:TOKEN", value_parser = credentials::parse_flag)]
    pub meetings: Vec<MeetingSpec>,
    /// IPv4 SSM range participants' groups are taken from.
    #[arg(long, value_name = "232.X.X.X/N", default_value = "232.10.0.0/24", value_parser = parse_range)]
    pub ipv4_range: Range,
    /// IPv6 SSM range participants' groups are taken from.
    #[arg(long, value_name = "FF3X::/N", default_value = "ff3e::8000:0/112", value_parser = parse_range)]
    pub ipv6_range: Range,
    /// Seconds of silence (no RTP, RTCP or keepalive) after which a participant is removed.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub silence_timeout: f64,
    /// Most participants in one meeting.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub max_participants: usize,
    /// UDP port of the video RTP inside every participant's group (RTCP on the next port).
    #[arg(long, value_name = "PORT", default_value_t = 5004)]
    pub video_port: u16,
    /// UDP port of the audio RTP inside every participant's group (RTCP on the next port).
    #[arg(long, value_name = "PORT", default_value_t = 5006)]
    pub audio_port: u16,
    /// AMT query interval in seconds (gateways refresh their joins this often).
    #[arg(long, value_name = "SECONDS", default_value_t = 20.0)]
    pub query_interval: f64,
    /// Keep the embedded relay's MAC secrets and membership table in FILE across restarts
    /// (written shortly after each change and on SIGTERM, atomically, mode 0600; restored at
    /// start): boxes and standard gateways keep receiving after a restart.
    #[arg(long, value_name = "FILE")]
    pub state: Option<std::path::PathBuf>,
    /// Also send every participant's stream as native source-specific multicast on IFACE (from
    /// S itself, TTL 16), so any AMT relay on a multicast network can serve the groups. The
    /// sources (--advertise, --source-v6) must be addresses of this host.
    #[arg(long, value_name = "IFACE")]
    pub native_out: Option<String>,
}

fn parse_range(s: &str) -> Result<Range, String> {
    s.parse().map_err(|e: MeetingError| e.to_string())
}

/// Runs `roomcast server`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    rt.block_on(serve(args))
}

/// The default `--tls-dir`.
fn default_tls_dir() -> anyhow::Result<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = var("STATE_DIRECTORY") {
        return Ok(d.join("tls"));
    }
    if let Some(d) = var("XDG_STATE_HOME") {
        return Ok(d.join("roomcast/tls"));
    }
    match var("HOME") {
        Some(h) => Ok(h.join(".local/state/roomcast/tls")),
        None => anyhow::bail!("no $HOME for the default --tls-dir: give --tls-dir DIR"),
    }
}

/// The names the self-signed certificate is made for (boxes pin its fingerprint, so these
/// only matter to clients that check names, e.g. curl with --cacert).
fn certificate_names(args: &Args) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if !args.listen.ip().is_unspecified() {
        names.push(args.listen.ip().to_string());
    }
    if let Some(a) = args.advertise {
        names.push(a.to_string());
    }
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let h = h.trim();
        if !h.is_empty() && h.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.') {
            names.push(h.to_string());
        }
    }
    names.sort();
    names.dedup();
    names
}

/// TLS for the control API, or `None` for plain HTTP (loopback only, with a warning).
fn control_tls(args: &Args) -> anyhow::Result<Option<tls_dir::Identity>> {
    if args.tls_dir.is_none() && args.listen.ip().is_loopback() && !args.print_fingerprint {
        tracing::warn!(
            listen = %args.listen,
            "control API in plain HTTP (loopback only): tokens cross the loopback in clear; give --tls-dir DIR for TLS"
        );
        return Ok(None);
    }
    let dir = match &args.tls_dir {
        Some(d) => d.clone(),
        None => default_tls_dir()?,
    };
    let id = tls_dir::load_or_create(&dir, certificate_names(args))?;
    if id.created {
        tracing::info!(dir = %dir.display(), "made a new self-signed certificate for the control API");
    }
    tracing::info!(cert = %id.cert_path.display(), "control API certificate: fingerprint {}", id.fingerprint);
    Ok(Some(id))
}

/// Raises the soft open-file limit to the hard one: the connection cap needs the descriptors.
fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

async fn serve(args: Args) -> anyhow::Result<()> {
    if args.print_fingerprint {
        let id = control_tls(&args)?.context("no TLS")?;
        println!("fingerprint {}", id.fingerprint);
        return Ok(());
    }
    let ports = [args.video_port, args.video_port.wrapping_add(1), args.audio_port, args.audio_port.wrapping_add(1)];
    if ports.contains(&0) || args.video_port.abs_diff(args.audio_port) < 2 {
        anyhow::bail!("--video-port and --audio-port need room for RTCP on the next port (e.g. 5004 and 5006)");
    }
    let env = std::env::var(credentials::ENV).ok();
    let meetings = credentials::gather(args.meetings_file.as_deref(), env, &args.meetings)?;
    let tls = control_tls(&args)?.map(|id| tokio_rustls::TlsAcceptor::from(Arc::new(id.config)));
    raise_fd_limit();
    let http = bind_control(args.listen).with_context(|| format!("binding the control API on {}", args.listen))?;
    let media = UdpSocket::bind(args.rtp_listen)
        .await
        .with_context(|| format!("binding the media port {}", args.rtp_listen))?;
    let relay_cfg = roomcast_amt::RelayConfig {
        query_interval: Duration::from_secs_f64(args.query_interval.clamp(1.0, 3600.0)),
        advertised: args.advertise.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), IpAddr::V4),
        query_gateway_address: args.query_gateway_address,
        ..Default::default()
    };
    let relay = RelayHandle::spawn(RelayOptions {
        config: relay_cfg,
        state_file: args.state.clone(),
        // Closed until the core gives it the meetings' participants.
        access: roomcast_amt::Access::closed(),
        ..RelayOptions::new(args.relay_listen)
    })
    .await
    .context("starting the embedded AMT relay")?;
    let source_v4 = args.advertise.unwrap_or(Ipv4Addr::LOCALHOST);
    let advertise = IpAddr::V4(source_v4);
    let cfg = ServiceConfig {
        max_participants_total: args.max_participants.saturating_mul(meetings.len()),
        meetings,
        source_v4,
        source_v6: args.source_v6,
        range_v4: args.ipv4_range,
        range_v6: args.ipv6_range,
        silence_timeout: Duration::from_secs_f64(args.silence_timeout.clamp(1.0, 3600.0)),
        keepalive: Duration::from_secs_f64((args.silence_timeout / 4.0).clamp(0.5, 60.0)),
        max_participants_per_meeting: args.max_participants,
        rtp_target: SocketAddr::new(advertise, media.local_addr()?.port()),
        relay: SocketAddr::new(advertise, relay.local_addr().port()),
        ports: Ports { video: args.video_port, audio: args.audio_port },
        seed: 0,
        epoch: os_random_u64().context("reading the OS random source for the instance epoch")?,
    };
    tracing::info!(
        control = %http.local_addr()?,
        tls = tls.is_some(),
        media = %media.local_addr()?,
        relay = %relay.local_addr(),
        meetings = ?cfg.meetings.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        epoch = cfg.epoch,
        "meeting service running"
    );
    // Ids, secrets, SSRCs and groups from the OS random source.
    let svc = MeetingService::with_rng(cfg, rand::rngs::OsRng.unwrap_err());
    let relay = Arc::new(relay);
    let (handle, commands) = core::channel();
    let native = match &args.native_out {
        Some(name) => Some(roomcast_net::native::NativeSource::new(
            roomcast_net::socket::interface_index(name).with_context(|| format!("--native-out {name}"))?,
            16,
        )),
        None => None,
    };
    let core_task = tokio::spawn(core::run(svc, commands, media, relay.clone(), native));
    let control = tokio::spawn(http::serve(http, tls, http::Limits::default(), handle));

    super::relay::wait_for_shutdown().await?;
    for t in [control, core_task] {
        t.abort();
        // Wait until the task is gone, so its handle on the relay is dropped.
        let _ = t.await;
    }
    match Arc::try_unwrap(relay) {
        // A clean stop writes the --state file.
        Ok(relay) => relay.shutdown().await,
        Err(_) => tracing::warn!("the relay is still in use; stopping without a clean shutdown"),
    }
    Ok(())
}

/// The control API's listener, with a long accept queue (4096, as the kernel allows) so a burst
/// of connections does not push honest SYNs into retransmission.
fn bind_control(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(4096)
}

/// A u64 from the operating system's random source (getrandom(2)).
fn os_random_u64() -> anyhow::Result<u64> {
    getrandom::u64().map_err(|e| anyhow::anyhow!("getrandom: {e}"))
}
