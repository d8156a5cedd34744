//! The tokio driver of the box's [`BoxSession`] (roomcast-session), shaped like
//! roomcast-net's gateway driver: one task owns the session, the sender, the AMT gateway
//! handle and the receivers. It runs the requests the session asks for (at most one of each
//! kind in flight, polled inside this task: no task per request), acts on its events (start
//! the media, join and leave (S,G)s, keyframes, mute, stop), feeds it the gateway's state and
//! the media counters, and publishes the status on a `watch`. It draws the box's media key
//! at each join and announces a new one when a participant leaves ([`OwnKey`]), and hands
//! every roster's keys to the receivers. It sleeps until the earliest of
//! the session's deadline, the jitter buffers' and the watchdog's.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use roomcast_crypt::SrtpKey;

use roomcast_amt::GatewayState;
use roomcast_media::audio_processing::TappedSpeaker;
use roomcast_media::speaker::alsa::AlsaSpeaker;
use roomcast_media::speaker::{NullSpeaker, Playback, PlaybackTx, Speaker};
use roomcast_meeting::config::{BoardDefaults, Config, MeetingConfig};
use roomcast_meeting::roster::{JoinReply, Roster};
use roomcast_meeting::MeetingError;
use roomcast_net::native::NativeSender;
use roomcast_net::{Delivery, GatewayHandle, GatewayOptions};
use roomcast_session::{BoxSession, Call, CallFailure, Event, Joined, SenderCounters, SessionConfig, Transmit};
use tokio::sync::{mpsc, watch};

use super::keys::{OwnKey, SWITCH_DELAY};
use super::receive::Receiving;
use super::screen::{Screen, ScreenFeed};
use super::send::{missing_devices, Devices, MicGate, Sending};
use super::status::{BoxPhase, Status, StatusTx};
use super::watchdog::Watchdog;
use super::STEP_LIMIT;
use crate::cmd::meeting_client::{CallError, Service};

/// How often the box's own address (shown on its screens) is looked up again: the first look
/// can come before the network is up (Wi-Fi associating, DHCP pending), and leases move.
const IP_RECHECK: Duration = Duration::from_secs(5);

/// `[amt] relay = "auto"`: the most preferred relay DRIAD (RFC 8777) names for the meeting's
/// source, from `dns` (`[amt] dns`) or else the system's resolver; the RFC 7450 anycast relay
/// when there is none. `random` orders records of equal precedence.
async fn driad_relay(source: IpAddr, dns: Option<SocketAddr>, random: impl FnMut() -> u64) -> SocketAddr {
    let found = match roomcast_net::driad::resolver(dns) {
        Ok(r) => roomcast_net::driad::discover(&r, source, roomcast_net::AMT_PORT, random).await,
        Err(e) => Err(e),
    };
    match found {
        Ok(list) if !list.is_empty() => {
            tracing::info!(%source, relay = %list[0], "DRIAD: relay found");
            list[0]
        }
        Ok(_) => {
            tracing::info!(%source, "DRIAD: no AMTRELAY record; using the anycast relay");
            roomcast_amt::ANYCAST_RELAY
        }
        Err(e) => {
            tracing::warn!(%source, "DRIAD lookup failed: {e}; using the anycast relay");
            roomcast_amt::ANYCAST_RELAY
        }
    }
}

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

/// `HOST[:PORT]` of `[meeting] server`, with or without a `http://` / `https://` scheme and a path.
fn server_authority(server: &str) -> &str {
    let rest = server.split_once("://").map_or(server, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

fn open_speaker(cfg: &Config, board: &BoardDefaults) -> (Box<dyn Speaker>, Option<roomcast_media::MediaError>) {
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

fn failure(e: CallError) -> CallFailure {
    match e {
        CallError::Service(MeetingError::Refused { status, message }) => CallFailure::Refused { status, message },
        // A certificate that does not match the pin, a [meeting] the client cannot use: shown
        // like a refusal (retried slowly), status 0.
        e @ (CallError::Fingerprint { .. } | CallError::Config(_)) => {
            tracing::error!("{e}");
            CallFailure::Refused { status: 0, message: e.to_string() }
        }
        other => CallFailure::Unreachable(other.to_string()),
    }
}

type CallFuture<T> = Pin<Box<dyn Future<Output = Result<T, CallError>> + Send>>;

/// One request in flight, polled by the driver's `select!` (the boxed future survives the
/// other branches winning).
struct InFlight<T>(Option<CallFuture<T>>);

impl<T> InFlight<T> {
    fn none() -> Self {
        Self(None)
    }
    fn start(&mut self, f: impl Future<Output = Result<T, CallError>> + Send + 'static) {
        self.0 = Some(Box::pin(f));
    }
    /// Resolves when the request ends; pending forever when there is none.
    async fn done(&mut self) -> Result<T, CallError> {
        match self.0.as_mut() {
            Some(f) => {
                let r = f.await;
                self.0 = None;
                r
            }
            None => std::future::pending().await,
        }
    }
}

/// Everything one box runs in the meeting, owned by the driver task.
struct Driver<'a> {
    cfg: &'a Config,
    board: &'a BoardDefaults,
    /// `[meeting] server` as `HOST[:PORT]`, to find the address the service is reached at.
    server: String,
    service: Service,
    session: BoxSession,
    status_tx: StatusTx,
    /// The box's own part of the status (room, address, mic level).
    base: Status,
    early_errors: Vec<String>,
    gate: MicGate,
    playback: PlaybackTx,
    devices: Option<Devices>,
    missing_at_start: Vec<String>,
    encoder_state: Option<roomcast_media::encoder::auto::SharedEncoderState>,
    server_ip: Option<IpAddr>,
    /// When [`Status::ip`] was last looked up.
    ip_checked: Option<Instant>,
    sending: Option<Sending>,
    gateway: Option<GatewayHandle>,
    deliveries: Option<mpsc::Receiver<Delivery>>,
    gw_state: Option<watch::Receiver<GatewayState>>,
    receiving: Option<Receiving>,
    /// The screen thread's queue (`[screen] output` other than none).
    screen: Option<ScreenFeed>,
    join: InFlight<(JoinReply, Option<IpAddr>)>,
    roster: InFlight<Option<Roster>>,
    keepalive: InFlight<()>,
    leave: InFlight<()>,
    /// The box's own media key and the sender's protector.
    own_key: OwnKey,
    /// The participant id of the current join (for the rekey request).
    participant: Option<String>,
    /// A new key being announced; it is the answer once the sender may use it.
    rekey: InFlight<SrtpKey>,
}

/// Runs the box in the meeting until shutdown.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    cfg: Config,
    meeting: MeetingConfig,
    board: BoardDefaults,
    status_tx: StatusTx,
    gate: MicGate,
    mut mute_presses: mpsc::UnboundedReceiver<()>,
    mut shutdown: watch::Receiver<bool>,
    wd: &mut Watchdog,
) -> anyhow::Result<()> {
    let server = server_authority(&meeting.server).to_string();
    let service = match Service::new(&meeting) {
        Ok(s) => s,
        Err(e) => {
            // A [meeting] the client cannot use (plain http to another host...): shown until
            // shutdown, the watchdog fed meanwhile.
            tracing::error!("{e}");
            status_tx.send_modify(|s| {
                s.phase = BoxPhase::Refused { reason: e.to_string(), status: 0 };
                s.error(e.to_string());
            });
            loop {
                tokio::select! {
                    r = shutdown.wait_for(|stop| *stop) => { let _ = r; return Ok(()); }
                    _ = wd.due() => wd.handle_timeout(tokio::time::Instant::now()),
                }
            }
        }
    };
    let (problem_tx, mut problems) = mpsc::unbounded_channel::<String>();

    // Playback runs for the whole life of the daemon.
    let (speaker, speaker_err) = open_speaker(&cfg, &board);
    if let Some(e) = speaker_err {
        let _ = problem_tx.send(format!("playback: {e}; playing nothing"));
    }
    tracing::info!(speaker = %speaker.describe(), "playback");
    let tx = problem_tx.clone();
    // What is played is the echo canceller's far end (the microphone's GatedMic takes it).
    let speaker = Box::new(TappedSpeaker::new(speaker, gate.far_end.clone()));
    let (playback, playback_tx) = Playback::spawn(speaker, move |e| {
        let _ = tx.send(e.to_string());
    })?;
    // The room's screen, for the daemon's life too: its own thread decodes and composes.
    let screen = Screen::spawn(&cfg.screen, &cfg.display, status_tx.subscribe(), problem_tx.clone());
    // Presses from before the configuration was read do not count: it says muted or not.
    while mute_presses.try_recv().is_ok() {}

    let now = Instant::now();
    let config = SessionConfig {
        family: cfg.amt.family,
        relay_override: cfg.amt.relay.clone(),
        muted: cfg.audio.muted,
        ..SessionConfig::default()
    };
    let base = status_tx.borrow().clone();
    let mut d = Driver {
        cfg: &cfg,
        board: &board,
        server,
        service,
        session: BoxSession::new(config, now),
        status_tx,
        early_errors: base.errors.clone(),
        base,
        gate,
        playback: playback_tx,
        devices: None,
        missing_at_start: Vec::new(),
        encoder_state: None,
        server_ip: None,
        ip_checked: None,
        sending: None,
        gateway: None,
        deliveries: None,
        gw_state: None,
        receiving: None,
        screen: screen.as_ref().and_then(Screen::feed),
        join: InFlight::none(),
        roster: InFlight::none(),
        keepalive: InFlight::none(),
        leave: InFlight::none(),
        own_key: OwnKey::new(),
        participant: None,
        rekey: InFlight::none(),
    };
    let mut shutting_down = *shutdown.borrow();
    if shutting_down {
        d.session.handle_shutdown(now);
    }

    // The box's main loop: it also feeds the hardware watchdog, at the deadline the watchdog
    // names, so a stalled loop stops feeding it.
    loop {
        let now = Instant::now();
        if d.session.poll_timeout().is_some_and(|t| t <= now) {
            d.session.handle_timeout(now);
        }
        d.work(wd).await;
        d.send_feedback();
        if d.session.is_closed() {
            break;
        }
        let deadline = [d.session.poll_timeout(), d.receiving.as_ref().and_then(Receiving::poll_timeout)]
            .into_iter()
            .flatten()
            .min();
        tokio::select! {
            r = shutdown.changed(), if !shutting_down => {
                if r.is_err() || *shutdown.borrow() {
                    shutting_down = true;
                    d.session.handle_shutdown(Instant::now());
                }
            }
            _ = wd.due() => wd.handle_timeout(tokio::time::Instant::now()),
            Some(()) = mute_presses.recv() => d.session.handle_mute_toggle(Instant::now()),
            Some(p) = problems.recv() => d.session.handle_problem(Instant::now(), p),
            Some(delivery) = async { match d.deliveries.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                if let Some(r) = d.receiving.as_mut() {
                    r.on_delivery(delivery, Instant::now());
                }
            }
            Ok(()) = async { match d.gw_state.as_mut() { Some(w) => w.changed().await, None => std::future::pending().await } } => {
                if let Some(state) = d.gw_state.as_ref().map(|w| w.borrow().clone()) {
                    d.session.handle_gateway_state(Instant::now(), state);
                }
            }
            r = d.join.done() => match r {
                Ok((reply, reached_at)) => {
                    d.participant = Some(reply.participant.clone());
                    d.session.handle_join_reply(Instant::now(), reply, reached_at)
                }
                Err(e) => d.session.handle_call_failed(Instant::now(), Call::Join, failure(e)),
            },
            r = d.roster.done() => match r {
                Ok(roster) => {
                    if let (Some(r), Some(roster)) = (d.receiving.as_mut(), roster.as_ref()) {
                        r.handle_roster(Instant::now(), roster);
                    }
                    d.session.handle_roster(Instant::now(), roster)
                }
                Err(e) => d.session.handle_call_failed(Instant::now(), Call::Roster, failure(e)),
            },
            r = d.keepalive.done() => match r {
                Ok(()) => d.session.handle_keepalive_ok(Instant::now()),
                Err(e) => d.session.handle_call_failed(Instant::now(), Call::Keepalive, failure(e)),
            },
            r = d.leave.done() => match r {
                Ok(()) => d.session.handle_left(Instant::now()),
                Err(e) => d.session.handle_call_failed(Instant::now(), Call::Leave, failure(e)),
            },
            r = d.rekey.done() => match r {
                Ok(key) => {
                    let id = key.id();
                    if let Some(tail) = d.own_key.handle_announced(Instant::now(), key) {
                        tracing::info!(key_id = id, old_key_ms = tail.as_millis() as u64, "rekeyed after a leave");
                    }
                }
                Err(e) => {
                    d.own_key.handle_announce_failed();
                    d.session.handle_problem(Instant::now(), format!("announcing a new media key: {e}"));
                }
            },
            _ = sleep_until(deadline) => {
                if let Some(r) = d.receiving.as_mut() {
                    r.handle_timeout(Instant::now());
                }
            }
        }
    }
    d.publish();
    drop(d);
    drop(screen);
    let _ = tokio::task::spawn_blocking(move || playback.stop()).await;
    Ok(())
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

impl Driver<'_> {
    /// Runs what the session asks for until it asks for nothing more.
    async fn work(&mut self, wd: &mut Watchdog) {
        for _ in 0..64 {
            let mut moved = false;
            while let Some(t) = self.session.poll_transmit() {
                moved = true;
                self.transmit(t, wd).await;
            }
            while let Some(e) = self.session.poll_event() {
                moved = true;
                self.act(e, wd).await;
            }
            if !moved {
                return;
            }
        }
    }

    /// The receivers' RTCP feedback (PLI, RR) out through the sender's media socket; the
    /// loss the others report on our video into the sender's adaptation.
    fn send_feedback(&mut self) {
        let Some(r) = self.receiving.as_mut() else { return };
        while let Some(p) = r.poll_transmit() {
            if let Some(s) = &self.sending {
                s.send_feedback(&p);
            }
        }
        // What the others report on our video steers the sender's bitrate.
        let now = Instant::now();
        for fraction_lost in r.take_loss_reports() {
            if let Some(s) = &self.sending {
                s.handle_loss(now, fraction_lost);
            }
        }
    }

    fn publish(&mut self) {
        let mut s = self.base.clone();
        s.apply_session(self.session.status(), &self.early_errors);
        // What another task owns stays as that task last set it: init's Wi-Fi status (the
        // daemon's watch_wifi). Replacing it with the copy taken when the session started kept
        // the box's Wi-Fi state at `connecting` for as long as it was in the meeting.
        self.status_tx.send_modify(|now| {
            s.wifi = now.wifi.take();
            *now = s;
        });
    }

    async fn transmit(&mut self, t: Transmit, wd: &mut Watchdog) {
        match t {
            Transmit::Join => {
                if self.devices.is_none() {
                    self.open_devices(wd).await;
                }
                let caps = self.devices.as_ref().map(|d| d.caps.clone()).unwrap_or_default();
                if caps.video.is_none() && caps.audio.is_none() {
                    tracing::info!("no camera and no microphone: joining watch-only (receiving, sending nothing)");
                }
                let (svc, room) = (self.service.clone(), self.cfg.room.name.clone());
                let server_ip = self.server_ip;
                let key = self.own_key.handle_join();
                self.rekey = InFlight::none();
                self.join.start(async move { svc.join_keyed(&room, &caps, Some(&key)).await.map(|r| (r, server_ip)) });
            }
            Transmit::PollRoster { since } => {
                let svc = self.service.clone();
                self.roster.start(async move { svc.roster(Some(since)).await });
            }
            Transmit::Keepalive { participant, muted } => {
                let svc = self.service.clone();
                self.keepalive.start(async move { svc.keepalive(&participant, Some(muted)).await });
            }
            Transmit::Leave { participant } => {
                let svc = self.service.clone();
                self.leave.start(async move { svc.leave(&participant).await });
            }
        }
    }

    /// Opens the devices and encoder for the next join (its capabilities go in the request)
    /// and finds the box's address on the way to the service.
    async fn open_devices(&mut self, wd: &mut Watchdog) {
        let mut devices = Devices::open(self.cfg, &self.board.camera, &self.board.microphone, &self.gate);
        if self.cfg.screen.self_view {
            if let Some(feed) = &self.screen {
                devices.show_self_view(feed.clone());
            }
        }
        wd.handle_timeout(tokio::time::Instant::now());
        let server = wd.drive(STEP_LIMIT, resolve(&self.server, 8470)).await.ok();
        self.server_ip = server.map(|a| a.ip());
        self.base.ip = server.and_then(local_ip_towards);
        self.ip_checked = Some(Instant::now());
        self.missing_at_start = devices.missing.clone();
        self.encoder_state = devices.encoder_state.clone();
        let now = Instant::now();
        for p in &devices.problems {
            self.session.handle_problem(now, p.clone());
        }
        let mut counters = SenderCounters { missing: devices.missing.clone(), ..Default::default() };
        if let Some(es) = &devices.encoder_state {
            let es = es.lock().unwrap_or_else(|e| e.into_inner()).clone();
            counters.encoder = Some((es.label().to_string(), es.reason().to_string()));
            // The board says which encoder `auto` should end up with: a mismatch is shown, not fatal.
            let hardware = es.label().starts_with("HW");
            if !self.board.expected_encoder.is_empty() && (self.board.expected_encoder == "hardware") != hardware {
                self.session.handle_problem(
                    now,
                    format!(
                        "encoder: board {} expects {} but runs {} ({})",
                        self.board.name,
                        self.board.expected_encoder,
                        es.label(),
                        es.reason()
                    ),
                );
            }
        }
        self.session.handle_sender_status(now, counters);
        self.devices = Some(devices);
    }

    async fn act(&mut self, e: Event, wd: &mut Watchdog) {
        match e {
            Event::Joined(j) => self.start_media(j, wd).await,
            Event::JoinSg { info, sg } => {
                if let Some(r) = self.receiving.as_mut() {
                    if let Err(e) = r.add(*info) {
                        self.session.handle_problem(Instant::now(), format!("receiver: {e}"));
                    }
                }
                if let Some(g) = &self.gateway {
                    if let Err(e) = g.join(sg).await {
                        self.session.handle_problem(Instant::now(), format!("joining {sg}: {e}"));
                    }
                }
            }
            Event::LeaveSg { id, sg } => {
                if let Some(g) = &self.gateway {
                    if let Err(e) = g.leave(sg).await {
                        tracing::warn!("leaving {sg}: {e}");
                    }
                }
                if let Some(r) = self.receiving.as_mut() {
                    r.remove(&id);
                }
                self.start_rekey();
            }
            Event::RequestKeyframe => {
                // A newcomer's first keyframe; `[debug] keyframe_requests = false` leaves only the periodic one.
                if let Some(s) = self.sending.as_ref().filter(|_| self.cfg.debug.keyframe_requests) {
                    s.request_keyframe();
                }
            }
            Event::SetMuted(m) => self.gate.muted.store(m, Ordering::Relaxed),
            Event::SampleMedia => self.sample(),
            Event::StopSending => {
                if let Some(s) = self.sending.take() {
                    let errors = wd
                        .drive(STEP_LIMIT, async { tokio::task::spawn_blocking(move || s.stop()).await })
                        .await
                        .unwrap_or_default();
                    for e in errors {
                        tracing::warn!("sender: {e}");
                    }
                }
            }
            Event::StopReceiving => {
                self.deliveries = None;
                self.gw_state = None;
                if let Some(g) = self.gateway.take() {
                    wd.drive(STEP_LIMIT, g.close()).await;
                }
                if let Some(mut r) = self.receiving.take() {
                    r.finish_all();
                }
            }
            Event::Rejoin(_) => {
                // The old participant's requests; the new join (already started when its
                // timer was due at once) stays.
                self.roster = InFlight::none();
                self.keepalive = InFlight::none();
            }
            Event::StatusChanged => self.publish(),
            Event::Closed => {}
        }
    }

    /// A participant left: draw a new key and announce it; the sender switches when the
    /// service took it and [`SWITCH_DELAY`] passed.
    fn start_rekey(&mut self) {
        let Some(participant) = self.participant.clone() else { return };
        let Some(key) = self.own_key.handle_leave(Instant::now()) else { return };
        let svc = self.service.clone();
        self.rekey.start(async move {
            svc.set_key(&participant, &key).await?;
            tokio::time::sleep(SWITCH_DELAY).await;
            Ok(key)
        });
    }

    /// The sender, the gateway and the receivers for the meeting just joined.
    async fn start_media(&mut self, j: Joined, wd: &mut Watchdog) {
        tracing::info!(participant = %j.participant, "joined: starting media");
        let target = match wd.drive(STEP_LIMIT, resolve(&j.send_rtp_to, 8472)).await {
            Ok(a) => a,
            Err(e) => return self.session.handle_media_failed(Instant::now(), format!("send_rtp_to {e}")),
        };
        if let Some(devices) = self.devices.take() {
            match (self.service.media_sealer(&j.participant), self.service.media_downlink(&j.participant)) {
                (Some(sealer), Some(downlink)) => {
                    let crypt = self.own_key.protector();
                    match Sending::start(devices, j.ssrc, &self.cfg.room.name, target, crypt, sealer, downlink) {
                        Ok(s) => self.sending = Some(s),
                        Err(e) => self.session.handle_problem(Instant::now(), format!("sender: {e}")),
                    }
                }
                _ => self.session.handle_problem(Instant::now(), "sender: no participant secret".into()),
            }
        }
        let relay = if j.relay == "auto" {
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng();
            let random = move || rand::RngCore::next_u64(&mut rng);
            // The source of the groups this box joins ([amt] family) names the relay.
            let source = match self.cfg.amt.family {
                roomcast_meeting::roster::Family::Ipv6 => j.groups.ipv6.source,
                roomcast_meeting::roster::Family::Ipv4 => j.groups.ipv4.source,
            };
            Ok(wd.drive(STEP_LIMIT, driad_relay(source, self.cfg.amt.dns, random)).await)
        } else {
            wd.drive(STEP_LIMIT, resolve(&j.relay, roomcast_net::AMT_PORT)).await
        };
        match relay {
            Ok(relay) => match GatewayHandle::spawn(GatewayOptions::new(relay)).await {
                Ok((g, rx)) => {
                    self.gw_state = Some(g.state());
                    self.gateway = Some(g);
                    self.deliveries = Some(rx);
                }
                Err(e) => self.session.handle_problem(Instant::now(), format!("AMT gateway: {e}")),
            },
            Err(e) => self.session.handle_problem(Instant::now(), format!("AMT relay {e}")),
        }
        let net = &self.cfg.network;
        let lan = if net.lan_multicast {
            let ifname = net.lan_interface.clone().unwrap_or_else(|| net.interface.clone());
            match roomcast_net::socket::interface_index(&ifname)
                .and_then(|i| NativeSender::new(i, u32::from(net.lan_ttl)))
            {
                Ok(s) => Some(s),
                Err(e) => {
                    self.session.handle_problem(Instant::now(), format!("LAN re-send on {ifname}: {e}"));
                    None
                }
            }
        } else {
            None
        };
        let record = self.cfg.debug.record_dir.clone();
        let mut receiving =
            Receiving::new(self.cfg.amt.family, self.playback.clone(), record, lan).with_screen(self.screen.clone());
        receiving.set_feedback_ssrc(j.ssrc.video);
        receiving.set_keyframe_requests(self.cfg.debug.keyframe_requests);
        self.receiving = Some(receiving);
    }

    /// Looks the box's address on the way to the service up again when [`IP_RECHECK`] passed
    /// since the last look; publishes the status when it changed.
    fn refresh_ip(&mut self, now: Instant) {
        let (Some(server), Some(checked)) = (self.server_ip, self.ip_checked) else { return };
        if now < checked + IP_RECHECK {
            return;
        }
        self.ip_checked = Some(now);
        let ip = local_ip_towards(SocketAddr::new(server, 9));
        if ip != self.base.ip {
            tracing::info!(old = ?self.base.ip, new = ?ip, "the box's address changed");
            self.base.ip = ip;
            self.publish();
        }
    }

    /// Reads the media counters into the session and the status.
    fn sample(&mut self) {
        let now = Instant::now();
        self.refresh_ip(now);
        if let Some(r) = self.receiving.as_mut() {
            r.handle_timeout(now);
            for e in r.take_errors() {
                self.session.handle_problem(now, e);
            }
            self.session.handle_media(now, r.counters(now));
        }
        self.base.mic_level_dbfs = self.gate.level_dbfs();
        let mode = self.sending.as_ref().and_then(Sending::mode);
        self.base.video_mode = mode.as_ref().map_or_else(|| "none".into(), |m| m.label());
        self.base.video_mode_short = mode.as_ref().and_then(|m| m.short());
        let sender_status = self.sending.as_ref().map(Sending::status).unwrap_or_default();
        let mut c =
            SenderCounters { missing: missing_devices(&self.missing_at_start, &sender_status), ..Default::default() };
        if let Some(es) = &self.encoder_state {
            let es = es.lock().unwrap_or_else(|e| e.into_inner()).clone();
            c.encoder = Some((es.label().to_string(), es.reason().to_string()));
        }
        if let Some(snd) = &self.sending {
            c.bytes = snd.counters.bytes.load(Ordering::Relaxed);
            c.video_packets = snd.counters.video_packets.load(Ordering::Relaxed);
            c.audio_packets = snd.counters.audio_packets.load(Ordering::Relaxed);
            c.video_frames = snd.counters.video_frames.load(Ordering::Relaxed);
            c.ended = snd.ended();
        }
        self.session.handle_sender_status(now, c);
    }
}

impl Drop for Driver<'_> {
    fn drop(&mut self) {
        if let Some(mut r) = self.receiving.take() {
            r.finish_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::server_authority;

    #[test]
    fn the_server_address_is_found_with_or_without_a_scheme() {
        assert_eq!(server_authority("10.0.2.2:8470"), "10.0.2.2:8470");
        assert_eq!(server_authority("https://meet.example:8443/"), "meet.example:8443");
        assert_eq!(server_authority("http://[::1]:8470/v1"), "[::1]:8470");
        assert_eq!(server_authority("meet.example"), "meet.example");
    }
}
