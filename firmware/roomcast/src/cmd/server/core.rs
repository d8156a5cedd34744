//! The one task that owns the sans-IO [`MeetingService`]: it takes control requests as commands
//! with a oneshot reply channel, reads the media socket and injects into the relay, answers long
//! polls when the roster passes their version (or at their deadline), sends keyframe requests
//! (RTCP PLI) the service routes to a sender back from the media socket, and sleeps until the
//! earliest of the core's `poll_timeout`, the long polls' deadlines and the stats log. Refusals
//! are counted per address (answers slow down after 10) and logged at most a few lines a second.
//! After every change of the meetings it gives the relay the service's access table: the relay
//! serves a meeting's groups only to the addresses its participants joined from.

use roomcast_net::native::NativeSource;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use roomcast_meeting::control::{ControlRequest, Reply};
use roomcast_meeting::service::Event;
use roomcast_meeting::throttle::{Allow, Backoff, LogLimiter};
use roomcast_meeting::MeetingService;
use roomcast_net::RelayHandle;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

/// How long a roster long poll is held.
pub const LONG_POLL: Duration = Duration::from_secs(10);
/// Most long polls held at once (the HTTP layer's connection cap keeps it lower in practice).
const MAX_WAITERS: usize = 4096;
/// The stats line's interval.
const STATS_EVERY: Duration = Duration::from_secs(30);

/// A control request and where its answer goes.
pub struct Command {
    /// The peer's address (for back-off and logs).
    pub peer: SocketAddr,
    /// The parsed request.
    pub req: ControlRequest,
    /// The reply and how long the HTTP layer holds it before sending (back-off).
    pub reply: oneshot::Sender<(Reply, Duration)>,
}

/// The HTTP layer's handle on the core.
#[derive(Clone)]
pub struct CoreHandle(mpsc::Sender<Command>);

impl CoreHandle {
    /// Sends a request to the core and waits for its answer (`None`: the core stopped).
    pub async fn control(&self, peer: SocketAddr, req: ControlRequest) -> Option<(Reply, Duration)> {
        let (tx, rx) = oneshot::channel();
        self.0.send(Command { peer, req, reply: tx }).await.ok()?;
        rx.await.ok()
    }
}

/// A command channel: the handle for the HTTP layer, the receiver for [`run`].
pub fn channel() -> (CoreHandle, mpsc::Receiver<Command>) {
    let (tx, rx) = mpsc::channel(256);
    (CoreHandle(tx), rx)
}

struct Waiter {
    meeting: String,
    since: u64,
    /// Answer with the media keys (a participant asked, with its secret).
    keys: bool,
    deadline: Instant,
    delay: Duration,
    reply: oneshot::Sender<(Reply, Duration)>,
}

struct Core {
    svc: MeetingService,
    relay: Arc<RelayHandle>,
    /// `--native-out`: every stream also as native SSM on that interface.
    native: Option<NativeSource>,
    waiters: Vec<Waiter>,
    backoff: Backoff,
    refusal_log: LogLimiter,
    dropped: u64,
    next_stats: Instant,
    /// The service's access generation last pushed to the relay.
    access_pushed: Option<u64>,
}

/// Runs the core until the command channel closes or the relay stops.
pub async fn run(
    svc: MeetingService,
    mut commands: mpsc::Receiver<Command>,
    media: UdpSocket,
    relay: Arc<RelayHandle>,
    native: Option<NativeSource>,
) {
    let mut core = Core {
        svc,
        relay,
        native,
        waiters: Vec::new(),
        backoff: Backoff::new(),
        refusal_log: LogLimiter::new(5, Duration::from_secs(1)),
        dropped: 0,
        next_stats: Instant::now() + STATS_EVERY,
        access_pushed: None,
    };
    core.push_access();
    let mut buf = vec![0u8; 65536];
    loop {
        let wake = core.next_deadline();
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(cmd) => core.handle_command(Instant::now(), cmd),
                None => return,
            },
            r = media.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    if !core.handle_packet(Instant::now(), from, &buf[..n]) {
                        return;
                    }
                    // Keyframe requests to the media's sender (rate-limited by the service).
                    while let Some((to, data)) = core.svc.poll_transmit() {
                        if let Err(e) = media.try_send_to(&data, to) {
                            tracing::debug!(%to, "feedback to the sender: {e}");
                        }
                    }
                }
                Err(e) => tracing::debug!("media receive error: {e}"),
            },
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => core.handle_timeout(Instant::now()),
        }
        core.drain_events(Instant::now());
    }
}

impl Core {
    /// The earliest of the service's timer, the long polls' deadlines and the stats line.
    fn next_deadline(&self) -> Instant {
        let waiters = self.waiters.iter().map(|w| w.deadline).min();
        [self.svc.poll_timeout(), waiters, Some(self.next_stats)].into_iter().flatten().min().unwrap_or(self.next_stats)
    }

    fn handle_command(&mut self, now: Instant, Command { peer, req, reply }: Command) {
        tracing::trace!(%peer, ?req, "control request");
        let is_leave = matches!(req, ControlRequest::Leave { .. });
        let answer = self.svc.handle_control_from(now, peer.ip(), req);
        if let Reply::Json { status: 401, .. } = answer {
            self.backoff.handle_failure(now, peer.ip());
        }
        let delay = self.backoff.delay(now, peer.ip());
        self.log_reply(now, peer, is_leave, &answer);
        match answer {
            Reply::WaitRoster { meeting, since, keys } => {
                if self.waiters.len() >= MAX_WAITERS {
                    self.waiters.retain(|w| !w.reply.is_closed());
                }
                if self.waiters.len() >= MAX_WAITERS {
                    let busy = Reply::json(503, &serde_json::json!({"error": "too many long polls; retry"}));
                    let _ = reply.send((busy, delay));
                } else {
                    self.waiters.push(Waiter { meeting, since, keys, deadline: now + LONG_POLL, delay, reply });
                }
            }
            other => {
                let _ = reply.send((other, delay));
            }
        }
    }

    /// Not found is a normal answer (a room not joined yet); refusals are counted and logged
    /// a few lines a second at most, never with the token.
    fn log_reply(&mut self, now: Instant, peer: SocketAddr, is_leave: bool, reply: &Reply) {
        let Reply::Json { status, body } = reply else { return };
        match status {
            404 if is_leave => tracing::debug!(%peer, "leave of a participant already gone"),
            404 => tracing::debug!(%peer, %body, "not found"),
            400..=499 => match self.refusal_log.allow(now) {
                Allow::Log { suppressed } => {
                    let body: String = body.chars().take(200).collect();
                    tracing::warn!(%peer, status, %body, suppressed, "control request refused");
                }
                Allow::Drop => {}
            },
            _ => {}
        }
    }

    /// Returns false when the relay stopped.
    fn handle_packet(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> bool {
        let Some(fwd) = self.svc.handle_packet(now, from, data) else { return true };
        // The packet without its media authentication trailer.
        let data = &data[..fwd.len.min(data.len())];
        let payload = Bytes::copy_from_slice(data);
        for sg in [fwd.groups.ipv4, fwd.groups.ipv6] {
            if let Some(n) = &mut self.native {
                if let Err(e) = n.send(sg.source, sg.group, fwd.sport, fwd.dport, data) {
                    tracing::debug!(source = %sg.source, group = %sg.group, "native out: {e}");
                }
            }
            match self.relay.try_inject(sg, fwd.sport, fwd.dport, payload.clone()) {
                Ok(true) => {}
                Ok(false) => {
                    self.dropped += 1;
                    if self.dropped.is_power_of_two() {
                        tracing::warn!(dropped = self.dropped, "relay queue full: packets dropped");
                    }
                }
                Err(e) => {
                    tracing::error!("relay stopped: {e}");
                    return false;
                }
            }
        }
        true
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.svc.handle_timeout(now);
        // Long polls at their deadline get the roster as it is.
        let (due, held): (Vec<Waiter>, Vec<Waiter>) =
            std::mem::take(&mut self.waiters).into_iter().partition(|w| now >= w.deadline || w.reply.is_closed());
        self.waiters = held;
        for w in due {
            self.answer(w);
        }
        if now >= self.next_stats {
            self.next_stats = now + STATS_EVERY;
            tracing::info!(participants = self.svc.participant_count(), relay = ?self.relay.stats(), "stats");
        }
    }

    fn answer(&self, w: Waiter) {
        let roster = if w.keys { self.svc.roster_with_keys(&w.meeting) } else { self.svc.roster(&w.meeting) };
        let reply = match roster {
            Some(r) => Reply::json(200, &r),
            None => Reply::json(404, &serde_json::json!({"error": "meeting gone"})),
        };
        let _ = w.reply.send((reply, w.delay));
    }

    /// Gives the relay the service's access table if it may have changed.
    fn push_access(&mut self) {
        let generation = self.svc.access_generation();
        if self.access_pushed == Some(generation) {
            return;
        }
        self.access_pushed = Some(generation);
        let table = self.svc.access_table();
        tracing::debug!(addresses = table.len(), "relay access table updated");
        self.relay.set_access(roomcast_amt::Access::Members(table));
    }

    /// Logs the core's events and answers the long polls whose roster moved on.
    fn drain_events(&mut self, _now: Instant) {
        self.push_access();
        let mut changed = false;
        while let Some(ev) = self.svc.poll_event() {
            match ev {
                Event::Joined { .. } | Event::Left { .. } | Event::Rekeyed { .. } | Event::Changed { .. } => {
                    changed = true
                }
                Event::Refused { .. } => {} // logged with the peer in log_reply
            }
        }
        if !changed || self.waiters.is_empty() {
            return;
        }
        let svc = &self.svc;
        let (ready, held): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|w| svc.roster_version(&w.meeting).map_or(true, |v| v > w.since));
        self.waiters = held;
        for w in ready {
            self.answer(w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomcast_meeting::control::parse_request;
    use roomcast_meeting::roster::{AudioCaps, Caps};
    use roomcast_meeting::{client, ServiceConfig};
    use roomcast_net::RelayOptions;

    fn req(raw: &[u8]) -> ControlRequest {
        parse_request(raw).unwrap().0
    }

    fn status(r: &Reply) -> u16 {
        match r {
            Reply::Json { status, .. } => *status,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn the_core_answers_long_polls_on_change_and_slows_guessers() {
        let relay = Arc::new(RelayHandle::spawn(RelayOptions::new("127.0.0.1:0".parse().unwrap())).await.unwrap());
        let media = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let svc = MeetingService::new(ServiceConfig::loopback("demo", "secret"));
        let (core, commands) = channel();
        let task = tokio::spawn(run(svc, commands, media, relay, None));
        let peer: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        let caps =
            Caps { video: None, audio: Some(AudioCaps { codec: "opus".into(), payload_type: 111, channels: 1 }) };

        let (r, _) = core.control(peer, req(&client::join("h", "demo", "secret", "A", &caps))).await.unwrap();
        assert_eq!(status(&r), 200);
        let (r, _) = core.control(peer, req(&client::roster("h", "demo", "secret", None))).await.unwrap();
        let Reply::Json { body, .. } = r else { panic!() };
        let version = serde_json::from_str::<serde_json::Value>(&body).unwrap()["version"].as_u64().unwrap();

        // A long poll at the current version is held until the roster moves on.
        let poll = {
            let core = core.clone();
            tokio::spawn(
                async move { core.control(peer, req(&client::roster("h", "demo", "secret", Some(version)))).await },
            )
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!poll.is_finished(), "the long poll waits");
        let (r, _) = core.control(peer, req(&client::join("h", "demo", "secret", "B", &caps))).await.unwrap();
        assert_eq!(status(&r), 200);
        let (r, _) = tokio::time::timeout(Duration::from_secs(2), poll).await.unwrap().unwrap().unwrap();
        let Reply::Json { status: 200, body } = r else { panic!("{r:?}") };
        assert!(body.contains("\"room\":\"B\""), "{body}");

        // Ten failures are free, the eleventh is held back; another address is not.
        for i in 0..11 {
            let (r, delay) = core.control(peer, req(&client::roster("h", "demo", "wrong", None))).await.unwrap();
            assert_eq!(status(&r), 401);
            assert_eq!(delay.is_zero(), i < 10, "failure {}: {delay:?}", i + 1);
        }
        let other: SocketAddr = "192.0.2.8:5000".parse().unwrap();
        let (_, delay) = core.control(other, req(&client::roster("h", "demo", "secret", None))).await.unwrap();
        assert!(delay.is_zero());
        task.abort();
    }

    /// A gateway at `bind` joined to `sg`.
    async fn gateway(
        relay: SocketAddr,
        bind: &str,
        sg: roomcast_amt::SourceGroup,
    ) -> tokio::sync::mpsc::Receiver<roomcast_net::Delivery> {
        let mut o = roomcast_net::GatewayOptions::new(relay);
        o.bind = Some(bind.parse().unwrap());
        o.config.max_refresh_interval = Some(Duration::from_secs(1));
        let (gw, rx) = roomcast_net::GatewayHandle::spawn(o).await.unwrap();
        gw.join(sg).await.unwrap();
        std::mem::forget(gw); // kept running until the test's runtime ends
        rx
    }

    /// Sends RTP of `ssrc` to the media port for `dur`; counts what `rxs` got.
    async fn send_and_count(
        media: SocketAddr,
        ssrc: u32,
        dur: Duration,
        rxs: &mut [&mut tokio::sync::mpsc::Receiver<roomcast_net::Delivery>],
        sealer: &roomcast_meeting::media_auth::Sealer,
    ) -> Vec<usize> {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut counts = vec![0; rxs.len()];
        let start = Instant::now();
        let mut seq: u16 = 0;
        while start.elapsed() < dur {
            let mut p = vec![0x80, 111];
            p.extend_from_slice(&seq.to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, 0]);
            p.extend_from_slice(&ssrc.to_be_bytes());
            p.extend_from_slice(b"audio");
            sock.send_to(&sealer.seal(&p), media).await.unwrap();
            seq = seq.wrapping_add(1);
            tokio::time::sleep(Duration::from_millis(20)).await;
            for (rx, n) in rxs.iter_mut().zip(counts.iter_mut()) {
                while rx.try_recv().is_ok() {
                    *n += 1;
                }
            }
        }
        counts
    }

    #[tokio::test]
    async fn the_embedded_relay_serves_a_meetings_groups_only_to_its_participants() {
        let mut opts = RelayOptions::new("127.0.0.1:0".parse().unwrap());
        opts.access = roomcast_amt::Access::closed();
        opts.config.query_interval = Duration::from_secs(1);
        let relay = Arc::new(RelayHandle::spawn(opts).await.unwrap());
        let relay_addr = relay.local_addr();
        let media = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let media_addr = media.local_addr().unwrap();
        let svc = MeetingService::new(ServiceConfig::loopback("demo", "secret"));
        let (core, commands) = channel();
        let task = tokio::spawn(run(svc, commands, media, relay, None));
        let caps =
            Caps { video: None, audio: Some(AudioCaps { codec: "opus".into(), payload_type: 111, channels: 1 }) };
        // The sender joins from 127.0.0.1, a watch-only box from 127.0.0.2; 127.0.0.3 never joins.
        let sender: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let (r, _) = core.control(sender, req(&client::join("h", "demo", "secret", "A", &caps))).await.unwrap();
        let Reply::Json { status: 200, body } = r else { panic!("{r:?}") };
        let a: roomcast_meeting::roster::JoinReply = serde_json::from_str(&body).unwrap();
        let box_peer: SocketAddr = "127.0.0.2:5000".parse().unwrap();
        let (r, _) =
            core.control(box_peer, req(&client::join("h", "demo", "secret", "W", &Caps::default()))).await.unwrap();
        let Reply::Json { status: 200, body } = r else { panic!("{r:?}") };
        let w: roomcast_meeting::roster::JoinReply = serde_json::from_str(&body).unwrap();
        let sealer = roomcast_meeting::media_auth::Sealer::new(
            roomcast_meeting::media_auth::MediaKey::from_secret(&a.secret),
            1,
        );

        let mut member = gateway(relay_addr, "127.0.0.2:0", a.groups.ipv4).await;
        let mut stranger = gateway(relay_addr, "127.0.0.3:0", a.groups.ipv4).await;
        let counts = send_and_count(
            media_addr,
            a.ssrc.audio,
            Duration::from_secs(3),
            &mut [&mut member, &mut stranger],
            &sealer,
        )
        .await;
        assert!(counts[0] >= 20, "the joined box receives: {counts:?}");
        assert_eq!(counts[1], 0, "a gateway whose address never joined receives nothing: {counts:?}");

        // The watch-only box leaves: its address receives no more.
        let leave = client::leave("h", "demo", "secret", &w.participant, &w.secret);
        let (r, _) = core.control(box_peer, req(&leave)).await.unwrap();
        assert_eq!(status(&r), 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
        while member.try_recv().is_ok() {}
        let counts = send_and_count(
            media_addr,
            a.ssrc.audio,
            Duration::from_secs(2),
            &mut [&mut member, &mut stranger],
            &sealer,
        )
        .await;
        assert_eq!(counts, [0, 0], "after the leave nobody else receives");
        task.abort();
    }
}
