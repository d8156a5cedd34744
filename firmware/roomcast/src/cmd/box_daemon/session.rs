//! One meeting session of the box: join (retrying while refused or unreachable), then run
//! until SIGTERM: the sender, the AMT gateway with a join per other participant, the roster
//! long poll, keepalives, receiving and playback, and the status; then leave in order. A box
//! the service dropped (silence timeout) joins again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use roomcast_amt::GatewayState;
use roomcast_meeting::config::{BoardDefaults, Config, MeetingConfig};
use roomcast_meeting::participant::RosterTracker;
use roomcast_meeting::roster::{JoinReply, Roster};
use roomcast_meeting::MeetingError;
use roomcast_net::native::NativeSender;
use roomcast_net::{GatewayHandle, GatewayOptions};
use tokio::sync::{mpsc, watch};

use super::http::{CallError, Service};
use super::playback::{spawn_playback, AlsaSpeaker, Mixer, NullSpeaker, Speaker};
use super::receive::Receiving;
use super::send::{missing_devices, Devices, MicGate, Sending};
use super::status::{lock, BoxPhase, SharedStatus};
use super::watchdog::Watchdog;
use super::STEP_LIMIT;

async fn resolve(addr: &str, default_port: u16) -> Result<SocketAddr, String> {
    let with_port =
        if addr.parse::<SocketAddr>().is_ok() || addr.rsplit_once(':').is_some_and(|(h, _)| !h.contains(':')) {
            addr.to_string()
        } else {
            format!("{addr}:{default_port}")
        };
    let mut addrs = tokio::net::lookup_host(with_port.as_str()).await.map_err(|e| format!("{with_port}: {e}"))?;
    addrs.next().ok_or_else(|| format!("{with_port}: no address"))
}

fn open_speaker(cfg: &Config, board: &BoardDefaults) -> (Box<dyn Speaker>, Option<String>) {
    let name = if cfg.audio.playback == "auto" { board.playback.as_str() } else { cfg.audio.playback.as_str() };
    let name = if name == "auto" { "default" } else { name };
    match name {
        "none" | "null" | "synthetic" => (Box::new(NullSpeaker::new()), None),
        dev => match AlsaSpeaker::open(dev) {
            Ok(s) => (Box::new(s), None),
            Err(e) => (Box::new(NullSpeaker::new()), Some(e)),
        },
    }
}

/// The box's own address on the way to `to` (installers need it on the screen); no packet is sent.
pub(super) fn local_ip_towards(to: SocketAddr) -> Option<std::net::IpAddr> {
    let bind: SocketAddr =
        if to.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
    let s = std::net::UdpSocket::bind(bind).ok()?;
    s.connect(to).ok()?;
    s.local_addr().ok().map(|l| l.ip())
}

/// Why a session ended.
enum End {
    Shutdown,
    Rejoin,
}

/// Runs the box in the meeting until shutdown.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    cfg: Config,
    meeting: MeetingConfig,
    board: BoardDefaults,
    status: SharedStatus,
    gate: MicGate,
    mut shutdown: watch::Receiver<bool>,
    wd: &mut Watchdog,
) -> anyhow::Result<()> {
    let service = match Service::new(&meeting) {
        Ok(s) => s,
        Err(e) => {
            // A [meeting] the client cannot use (plain http to another host...): shown until shutdown.
            tracing::error!("{e}");
            {
                let mut s = lock(&status);
                s.phase = BoxPhase::Refused { reason: e.to_string(), status: 0 };
                s.error(e.to_string());
            }
            let _ = shutdown.wait_for(|stop| *stop).await;
            return Ok(());
        }
    };

    // Playback runs for the whole life of the daemon.
    let mixer = Arc::new(Mutex::new(Mixer::default()));
    let stop_playback = Arc::new(AtomicBool::new(false));
    let (speaker, speaker_err) = open_speaker(&cfg, &board);
    if let Some(e) = speaker_err {
        lock(&status).error(format!("playback: {e}; playing nothing"));
    }
    tracing::info!(speaker = %speaker.describe(), "playback");
    let st = status.clone();
    let playback = spawn_playback(mixer.clone(), speaker, stop_playback.clone(), move |e| lock(&st).error(e))?;

    loop {
        if *shutdown.borrow() {
            break;
        }
        let devices = Devices::open(&cfg, &board.camera, &board.microphone, &gate);
        wd.handle_timeout(tokio::time::Instant::now());
        let my_ip = match wd.drive(STEP_LIMIT, resolve(&service.server, 8470)).await {
            Ok(a) => local_ip_towards(a),
            Err(_) => None,
        };
        {
            let mut s = lock(&status);
            s.ip = my_ip;
            s.missing = devices.missing.clone();
            for p in &devices.problems {
                s.error(p.clone());
            }
            // The board says which encoder `auto` should end up with: a mismatch is shown, not fatal.
            if let (Some(es), false) = (&devices.encoder_state, board.expected_encoder.is_empty()) {
                let es = es.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let hardware = es.label().starts_with("HW");
                if (board.expected_encoder == "hardware") != hardware {
                    s.error(format!(
                        "encoder: board {} expects {} but runs {} ({})",
                        board.name,
                        board.expected_encoder,
                        es.label(),
                        es.reason()
                    ));
                }
            }
            s.phase = BoxPhase::Joining;
        }
        let Some(reply) = join(&service, &cfg, &devices, &status, &mut shutdown, wd).await else { break };
        match in_meeting(&cfg, &service, reply, devices, &status, &gate, mixer.clone(), &mut shutdown, wd).await {
            End::Shutdown => break,
            End::Rejoin => {
                tracing::warn!("no longer in the roster: joining again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    lock(&status).phase = BoxPhase::Left;
    stop_playback.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || playback.join()).await;
    Ok(())
}

/// Joins, retrying; `None` on shutdown.
async fn join(
    service: &Service,
    cfg: &Config,
    devices: &Devices,
    status: &SharedStatus,
    shutdown: &mut watch::Receiver<bool>,
    wd: &mut Watchdog,
) -> Option<JoinReply> {
    loop {
        let wait = match wd.drive(STEP_LIMIT, service.join(&cfg.room.name, &devices.caps)).await {
            Ok(reply) => return Some(reply),
            Err(CallError::Service(MeetingError::Refused { status: code, message })) => {
                tracing::error!(status = code, "the meeting service refused the join: {message}");
                let mut s = lock(status);
                s.phase = BoxPhase::Refused { reason: message.clone(), status: code };
                s.error(format!("join refused ({code}): {message}"));
                Duration::from_secs(10)
            }
            Err(e @ (CallError::Fingerprint { .. } | CallError::Config(_))) => {
                tracing::error!("{e}");
                let mut s = lock(status);
                s.phase = BoxPhase::Refused { reason: e.to_string(), status: 0 };
                s.error(e.to_string());
                Duration::from_secs(10)
            }
            Err(e) => {
                let mut s = lock(status);
                s.phase = BoxPhase::ServiceUnreachable { reason: e.to_string() };
                s.error(e.to_string());
                Duration::from_secs(2)
            }
        };
        let stop = wd
            .drive(STEP_LIMIT, async {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => false,
                    _ = shutdown.changed() => true,
                }
            })
            .await;
        if stop {
            return None;
        }
    }
}

/// Long-polls the roster into `tx` until the channel closes.
async fn roster_poller(service: Service, mut version: u64, tx: mpsc::Sender<Roster>) {
    loop {
        match service.roster(Some(version)).await {
            Ok(Some(r)) => {
                version = r.version;
                if tx.send(r).await.is_err() {
                    return;
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!("roster poll: {e}");
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn in_meeting(
    cfg: &Config,
    service: &Service,
    reply: JoinReply,
    devices: Devices,
    status: &SharedStatus,
    gate: &MicGate,
    mixer: Arc<Mutex<Mixer>>,
    shutdown: &mut watch::Receiver<bool>,
    wd: &mut Watchdog,
) -> End {
    let me = reply.participant.clone();
    // The media port and the embedded relay live in the service's process: reach them at the
    // address the control API answered on (the advertised one may be a NAT's, e.g. 10.0.2.2
    // for a QEMU guest), with the ports the service named. `[amt] relay` overrides the relay.
    let server_addr = wd.drive(STEP_LIMIT, resolve(&service.server, 8470)).await.ok();
    let server_ip = server_addr.map(|a| a.ip());
    let my_ip = server_addr.and_then(local_ip_towards);
    let on_server = |advertised: &str| -> String {
        match (server_ip, advertised.parse::<SocketAddr>()) {
            (Some(ip), Ok(a)) => SocketAddr::new(ip, a.port()).to_string(),
            _ => advertised.to_string(),
        }
    };
    let relay_text = cfg.amt.relay.clone().unwrap_or_else(|| on_server(&reply.relay));
    let send_to = on_server(&reply.send_rtp_to);
    tracing::info!(participant = %me, v4 = %reply.groups.ipv4, v6 = %reply.groups.ipv6, relay = %relay_text, %send_to, "joined the meeting");
    {
        let mut s = lock(status);
        s.participant = Some(me.clone());
        s.ip = my_ip;
        s.relay = relay_text.clone();
        s.phase = BoxPhase::FindingRelay { relay: relay_text.clone() };
    }

    // Sender.
    let encoder_state = devices.encoder_state.clone();
    let missing_at_start = devices.missing.clone();
    let target = match wd.drive(STEP_LIMIT, resolve(&send_to, 8472)).await {
        Ok(a) => a,
        Err(e) => {
            lock(status).error(format!("send_rtp_to {e}"));
            return End::Rejoin;
        }
    };
    let sending = match Sending::start(devices, reply.ssrc, &cfg.room.name, target) {
        Ok(s) => Some(s),
        Err(e) => {
            lock(status).error(format!("sender: {e}"));
            None
        }
    };

    // Gateway.
    let (gateway, mut deliveries) = match wd.drive(STEP_LIMIT, resolve(&relay_text, roomcast_net::AMT_PORT)).await {
        Ok(relay) => match GatewayHandle::spawn(GatewayOptions::new(relay)).await {
            Ok((g, d)) => (Some(g), Some(d)),
            Err(e) => {
                lock(status).error(format!("AMT gateway: {e}"));
                (None, None)
            }
        },
        Err(e) => {
            lock(status).error(format!("AMT relay {e}"));
            (None, None)
        }
    };
    let mut gw_state = gateway.as_ref().map(|g| g.state());

    let lan = if cfg.network.lan_multicast {
        let ifname = cfg.network.lan_interface.clone().unwrap_or_else(|| cfg.network.interface.clone());
        match roomcast_net::socket::interface_index(&ifname)
            .and_then(|i| NativeSender::new(i, u32::from(cfg.network.lan_ttl)))
        {
            Ok(s) => Some(s),
            Err(e) => {
                lock(status).error(format!("LAN re-send on {ifname}: {e}"));
                None
            }
        }
    } else {
        None
    };
    let mut receiving = Receiving::new(cfg.amt.family, mixer, cfg.debug.record_dir.clone(), lan);
    let mut tracker = RosterTracker::new(me.clone(), cfg.amt.family);

    let (roster_tx, mut roster_rx) = mpsc::channel::<Roster>(8);
    let poller = tokio::spawn(roster_poller(service.clone(), reply.roster.version, roster_tx.clone()));
    let _ = roster_tx.send(reply.roster.clone()).await;
    drop(roster_tx);

    let keepalive_every = Duration::from_millis(reply.keepalive_ms.clamp(500, 60_000));
    let mut keepalive = tokio::time::interval(keepalive_every);
    let mut status_tick = tokio::time::interval(Duration::from_millis(250));
    let mut poll_tick = tokio::time::interval(Duration::from_millis(10));
    let (mut last_bytes, mut last_at) = (0u64, Instant::now());
    let mut sender_end_reported = false;

    // The box's main control loop: it also feeds the hardware watchdog, at the deadline the
    // watchdog names, so a stalled loop stops feeding it.
    let end = loop {
        tokio::select! {
            _ = shutdown.changed() => break End::Shutdown,
            _ = wd.due() => wd.handle_timeout(tokio::time::Instant::now()),
            Some(d) = async { match deliveries.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                receiving.on_delivery(d, Instant::now());
            }
            Some(roster) = roster_rx.recv() => {
                let diff = tracker.update(roster);
                for (id, sg) in diff.leave {
                    tracing::info!(participant = %id, channel = %sg, "participant left: leaving its channel");
                    if let Some(g) = &gateway {
                        if let Err(e) = g.leave(sg).await {
                            tracing::warn!("leaving {sg}: {e}");
                        }
                    }
                    receiving.remove(&id);
                }
                let joined_someone = !diff.join.is_empty();
                for info in diff.join {
                    let sg = info.groups.get(cfg.amt.family);
                    tracing::info!(room = %info.room, channel = %sg, "participant present: joining its channel");
                    if let Err(e) = receiving.add(info) {
                        lock(status).error(format!("receiver: {e}"));
                    }
                    if let Some(g) = &gateway {
                        if let Err(e) = g.join(sg).await {
                            lock(status).error(format!("joining {sg}: {e}"));
                        }
                    }
                }
                if joined_someone {
                    if let Some(s) = &sending {
                        s.request_keyframe();
                    }
                }
                {
                    let mut s = lock(status);
                    s.roster = tracker.rooms();
                    s.roster_version = tracker.version();
                }
                if !tracker.am_listed() {
                    break End::Rejoin;
                }
            }
            Ok(()) = async { match gw_state.as_mut() { Some(w) => w.changed().await, None => std::future::pending().await } } => {
                let state = gw_state.as_ref().map(|w| w.borrow().clone());
                if let Some(state) = state {
                    let mut s = lock(status);
                    s.gateway = (&state).into();
                    s.phase = match state {
                        GatewayState::Joined { .. } => BoxPhase::InMeeting,
                        GatewayState::RelayLost { retry_at } => BoxPhase::RelayLost { relay: relay_text.clone(), retry_at: Some(roomcast_display::Deadline(retry_at)) },
                        _ => BoxPhase::FindingRelay { relay: relay_text.clone() },
                    };
                }
            }
            _ = keepalive.tick() => {
                let svc = service.clone();
                let id = me.clone();
                tokio::spawn(async move {
                    if let Err(e) = svc.keepalive(&id).await {
                        tracing::debug!("keepalive: {e}");
                    }
                });
            }
            _ = poll_tick.tick() => {
                receiving.poll(Instant::now());
            }
            _ = status_tick.tick() => {
                let now = Instant::now();
                let order: Vec<String> = tracker.others().iter().map(|p| p.id.clone()).collect();
                let (others, loss) = receiving.statuses(&order, now);
                let mut s = lock(status);
                s.others = others;
                s.loss_percent = loss;
                s.recv_kbps = receiving.recv_kbps;
                s.muted = gate.muted.load(Ordering::Relaxed);
                s.mic_level_dbfs = gate.level_dbfs();
                let sender_status = sending.as_ref().map(Sending::status).unwrap_or_default();
                s.missing = missing_devices(&missing_at_start, &sender_status);
                if let Some(es) = &encoder_state {
                    let es = es.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    s.encoder = es.label().to_string();
                    s.encoder_reason = es.reason().to_string();
                }
                if let Some(snd) = &sending {
                    let bytes = snd.counters.bytes.load(Ordering::Relaxed);
                    let dt = now.saturating_duration_since(last_at);
                    if dt >= Duration::from_secs(1) {
                        s.send_kbps = ((bytes - last_bytes) * 8 / dt.as_millis().max(1) as u64) as u32;
                        last_bytes = bytes;
                        last_at = now;
                    }
                    s.packets_sent = super::status::PacketCounts { video: snd.counters.video_packets.load(Ordering::Relaxed), audio: snd.counters.audio_packets.load(Ordering::Relaxed) };
                    s.video_frames_sent = snd.counters.video_frames.load(Ordering::Relaxed);
                    if snd.ended() && !sender_end_reported {
                        sender_end_reported = true;
                        s.error("a capture thread stopped (device lost or encoder failed); receiving continues".to_string());
                    }
                }
                for e in receiving.take_errors() {
                    s.error(e);
                }
            }
        }
    };

    // Orderly leave: BYE (from the sender's last packets), leave request, AMT teardown.
    if matches!(end, End::Shutdown) {
        lock(status).phase = BoxPhase::Leaving;
    }
    poller.abort();
    // The leave is one step of the loop: the watchdog is fed meanwhile, for STEP_LIMIT at most.
    wd.drive(STEP_LIMIT, async {
        if let Some(s) = sending {
            let errors = tokio::task::spawn_blocking(move || s.stop()).await.unwrap_or_default();
            for e in errors {
                tracing::warn!("sender: {e}");
            }
        }
        if matches!(end, End::Shutdown) {
            match service.leave(&me).await {
                Ok(()) => tracing::info!("left the meeting"),
                Err(CallError::Service(MeetingError::Refused { status: 404, .. })) => {
                    tracing::info!("left the meeting (BYE already removed us)")
                }
                Err(e) => tracing::warn!("leave request: {e}"),
            }
        }
        if let Some(g) = gateway {
            g.close().await;
            lock(status).gateway = super::status::GatewayStatus::Closed;
        }
    })
    .await;
    receiving.finish_all();
    end
}
