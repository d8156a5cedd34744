//! `roomcast server`: the meeting service. It drives the sans-IO
//! [`roomcast_meeting::MeetingService`] with three sockets and an embedded AMT relay:
//! - the HTTP/JSON control API on `--listen` (join, leave, keepalive, roster with long poll,
//!   SDP; see `roomcast_meeting::control`), one request per TCP connection;
//! - the media port `--rtp-listen`, where participants send RTP and RTCP (rtcp-mux); each
//!   packet from a known SSRC is injected into its sender's IPv4 and IPv6 (S,G);
//! - the AMT relay on `--relay-listen` ([`roomcast_net::RelayHandle`]) through which boxes and
//!   standard players receive the groups.
//!
//! Silence timeouts run off the core's `poll_timeout`. SIGINT/SIGTERM stop it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use roomcast_meeting::control::{error_response, parse_request, ControlRequest, Reply};
use roomcast_meeting::pool::Range;
use roomcast_meeting::roster::Ports;
use roomcast_meeting::service::{Event, MeetingSpec};
use roomcast_meeting::{MeetingError, MeetingService, ServiceConfig, SourceGroup};
use roomcast_net::{RelayHandle, RelayOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

/// Command-line arguments of `roomcast server`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address of the HTTP/JSON control API.
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:8470")]
    pub listen: SocketAddr,
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
    /// A meeting as ID:TOKEN (repeatable).
    #[arg(long = "meeting", value_name = "ID:TOKEN", required = true, value_parser = parse_meeting)]
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

fn parse_meeting(s: &str) -> Result<MeetingSpec, String> {
    let (id, token) = s.split_once(':').ok_or("expected ID:TOKEN")?;
    if id.is_empty() || token.is_empty() {
        return Err("expected ID:TOKEN with both parts non-empty".into());
    }
    Ok(MeetingSpec { id: id.into(), token: token.into() })
}

fn parse_range(s: &str) -> Result<Range, String> {
    s.parse().map_err(|e: MeetingError| e.to_string())
}

struct Shared {
    svc: Mutex<MeetingService>,
    /// Bumped at every roster change (long polls wait on it).
    changed: watch::Sender<u64>,
}

impl Shared {
    /// Logs the core's events and wakes long polls when a roster changed.
    fn drain_events(&self, svc: &mut MeetingService) {
        let mut changed = false;
        while let Some(ev) = svc.poll_event() {
            match ev {
                Event::Joined { .. } | Event::Left { .. } => changed = true,
                Event::Refused { meeting, error } => tracing::debug!(%meeting, %error, "refused"),
            }
        }
        if changed {
            self.changed.send_modify(|v| *v += 1);
        }
    }
}

fn amt_sg(sg: SourceGroup) -> roomcast_amt::SourceGroup {
    roomcast_amt::SourceGroup { source: sg.source, group: sg.group }
}

/// How long a roster long poll is held.
const LONG_POLL: Duration = Duration::from_secs(10);

/// Runs `roomcast server`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    rt.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let ports = [args.video_port, args.video_port.wrapping_add(1), args.audio_port, args.audio_port.wrapping_add(1)];
    if ports.contains(&0) || args.video_port.abs_diff(args.audio_port) < 2 {
        anyhow::bail!("--video-port and --audio-port need room for RTCP on the next port (e.g. 5004 and 5006)");
    }
    let http =
        TcpListener::bind(args.listen).await.with_context(|| format!("binding the control API on {}", args.listen))?;
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
        ..RelayOptions::new(args.relay_listen)
    })
    .await
    .context("starting the embedded AMT relay")?;
    let source_v4 = args.advertise.unwrap_or(Ipv4Addr::LOCALHOST);
    let advertise = IpAddr::V4(source_v4);
    let cfg = ServiceConfig {
        meetings: args.meetings.clone(),
        source_v4,
        source_v6: args.source_v6,
        range_v4: args.ipv4_range,
        range_v6: args.ipv6_range,
        silence_timeout: Duration::from_secs_f64(args.silence_timeout.clamp(1.0, 3600.0)),
        keepalive: Duration::from_secs_f64((args.silence_timeout / 4.0).clamp(0.5, 60.0)),
        max_participants_per_meeting: args.max_participants,
        max_participants_total: args.max_participants.saturating_mul(args.meetings.len()),
        rtp_target: SocketAddr::new(advertise, media.local_addr()?.port()),
        relay: SocketAddr::new(advertise, relay.local_addr().port()),
        ports: Ports { video: args.video_port, audio: args.audio_port },
        seed: rand_seed(),
    };
    tracing::info!(
        control = %http.local_addr()?,
        media = %media.local_addr()?,
        relay = %relay.local_addr(),
        meetings = ?args.meetings.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        "meeting service running"
    );
    let (changed, _) = watch::channel(0u64);
    let shared = Arc::new(Shared { svc: Mutex::new(MeetingService::new(cfg)), changed });
    let relay = Arc::new(relay);

    let control = tokio::spawn(control_loop(http, shared.clone()));
    let native = match &args.native_out {
        Some(name) => Some(roomcast_net::native::NativeSource::new(
            roomcast_net::socket::interface_index(name).with_context(|| format!("--native-out {name}"))?,
            16,
        )),
        None => None,
    };
    let media_task = tokio::spawn(media_loop(media, shared.clone(), relay.clone(), native));
    let timers = tokio::spawn(timer_loop(shared.clone()));
    let stats = tokio::spawn(stats_loop(shared.clone(), relay.clone()));

    super::relay::wait_for_shutdown().await?;
    for t in [control, media_task, timers, stats] {
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

fn rand_seed() -> u64 {
    let t =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 32)
}

/// Most control connections handled at once (a flood waits in the listen backlog).
const MAX_CONNECTIONS: usize = 256;

async fn control_loop(http: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        match http.accept().await {
            Ok((stream, peer)) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Err(e) = tokio::time::timeout(LONG_POLL * 2, handle_conn(stream, peer, shared)).await {
                        tracing::debug!(%peer, "control connection timed out: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle_conn(mut stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let req = loop {
        let n = match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        };
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        match parse_request(&buf) {
            Ok((req, _)) => break req,
            Err(MeetingError::Incomplete) => continue,
            Err(e) => {
                tracing::info!(%peer, error = %e, "bad control request");
                stream.write_all(&error_response(&e)).await?;
                return stream.shutdown().await;
            }
        }
    };
    tracing::debug!(%peer, ?req, "control request");
    // A box's leave after its RTCP BYE already removed it is a normal 404.
    let is_leave = matches!(req, ControlRequest::Leave { .. });
    let mut rx = shared.changed.subscribe();
    let reply = {
        let mut svc = shared.svc.lock().expect("service lock");
        let r = svc.handle_control(Instant::now(), req);
        shared.drain_events(&mut svc);
        r
    };
    // Not found is a normal answer (a room not joined yet); wrong tokens and bad requests warn.
    match &reply {
        Reply::Json { status: 404, body } if is_leave => {
            tracing::debug!(%peer, %body, "leave of a participant already gone")
        }
        Reply::Json { status: 404, body } => tracing::info!(%peer, %body, "not found"),
        Reply::Json { status: status @ (400..=499), body } => {
            tracing::warn!(%peer, status, %body, "control request refused")
        }
        _ => {}
    }
    let bytes = match reply {
        Reply::WaitRoster { meeting, since } => {
            let deadline = tokio::time::Instant::now() + LONG_POLL;
            loop {
                let version = shared.svc.lock().expect("service lock").roster_version(&meeting);
                if version.map_or(true, |v| v > since) {
                    break;
                }
                if tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
                    break;
                }
            }
            let svc = shared.svc.lock().expect("service lock");
            match svc.roster(&meeting) {
                Some(r) => Reply::json(200, &r).encode(),
                None => Reply::json(404, &serde_json::json!({"error": "meeting gone"})).encode(),
            }
        }
        other => other.encode(),
    };
    stream.write_all(&bytes).await?;
    stream.shutdown().await
}

async fn media_loop(
    sock: UdpSocket,
    shared: Arc<Shared>,
    relay: Arc<RelayHandle>,
    mut native: Option<roomcast_net::native::NativeSource>,
) {
    let mut buf = vec![0u8; 65536];
    let mut dropped = 0u64;
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("media receive error: {e}");
                continue;
            }
        };
        let data = &buf[..n];
        let fwd = {
            let mut svc = shared.svc.lock().expect("service lock");
            let f = svc.handle_packet(Instant::now(), from, data);
            shared.drain_events(&mut svc);
            f
        };
        let Some(fwd) = fwd else { continue };
        let payload = Bytes::copy_from_slice(data);
        for sg in [fwd.groups.ipv4, fwd.groups.ipv6] {
            if let Some(n) = &mut native {
                if let Err(e) = n.send(sg.source, sg.group, fwd.sport, fwd.dport, data) {
                    tracing::debug!(source = %sg.source, group = %sg.group, "native out: {e}");
                }
            }
            match relay.try_inject(amt_sg(sg), fwd.sport, fwd.dport, payload.clone()) {
                Ok(true) => {}
                Ok(false) => {
                    dropped += 1;
                    if dropped.is_power_of_two() {
                        tracing::warn!(dropped, "relay queue full: packets dropped");
                    }
                }
                Err(e) => {
                    tracing::error!("relay stopped: {e}");
                    return;
                }
            }
        }
    }
}

async fn timer_loop(shared: Arc<Shared>) {
    loop {
        let next = shared.svc.lock().expect("service lock").poll_timeout();
        let wake = next
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(1))
            .min(tokio::time::Instant::now() + Duration::from_secs(1));
        tokio::time::sleep_until(wake).await;
        let mut svc = shared.svc.lock().expect("service lock");
        svc.handle_timeout(Instant::now());
        shared.drain_events(&mut svc);
    }
}

async fn stats_loop(shared: Arc<Shared>, relay: Arc<RelayHandle>) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    tick.tick().await;
    loop {
        tick.tick().await;
        let participants = shared.svc.lock().expect("service lock").participant_count();
        tracing::info!(participants, relay = ?relay.stats(), "stats");
    }
}
