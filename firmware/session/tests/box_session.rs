//! `BoxSession` against an in-memory meeting service and gateway with a fake clock: join,
//! roster growth and shrink, relay lost and found, service unreachable and refusing, rejoin on
//! a changed epoch, a lower roster version, a keepalive 404 and a silence drop, keyframe
//! requests, mute, orderly shutdown. No sockets, no sleeping.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use roomcast_amt::GatewayState;
use roomcast_meeting::roster::{Caps, GroupPair, JoinReply, ParticipantInfo, Ports, Roster, SdpPair, Ssrcs};
use roomcast_meeting::SourceGroup;
use roomcast_session::{
    BoxSession, Call, CallFailure, Event, ReceiveCounters, RejoinReason, RemoteCounters, SenderCounters, SessionConfig,
    SessionPhase, Transmit,
};

const SERVER: &str = "192.0.2.10";

fn participant(n: u8, room: &str) -> ParticipantInfo {
    let sg = |v6: bool| {
        let (s, g): (IpAddr, IpAddr) = if v6 {
            ("2001:db8::a".parse().unwrap(), format!("ff3e::8000:{n}").parse().unwrap())
        } else {
            (SERVER.parse().unwrap(), format!("232.10.0.{n}").parse().unwrap())
        };
        SourceGroup::new(s, g).expect("test channels are SSM")
    };
    ParticipantInfo {
        id: format!("p{n:02}"),
        room: room.into(),
        ssrc: Ssrcs { video: u32::from(n) * 2, audio: u32::from(n) * 2 + 1 },
        groups: GroupPair { ipv4: sg(false), ipv6: sg(true) },
        ports: Ports { video: 5004, audio: 5006 },
        caps: Caps::default(),
        sdp: SdpPair { ipv4: String::new(), ipv6: String::new() },
        key: None,
        muted: false,
    }
}

/// The meeting service, as far as the box sees it.
struct FakeService {
    up: bool,
    refuse: Option<(u16, String)>,
    epoch: u64,
    version: u64,
    next_id: u8,
    participants: Vec<ParticipantInfo>,
    joins: usize,
    keepalives: usize,
    /// The mute state the latest keepalive told.
    told_muted: Option<bool>,
    leaves: Vec<String>,
}

impl FakeService {
    fn new() -> Self {
        Self {
            up: true,
            refuse: None,
            epoch: 7,
            version: 0,
            next_id: 1,
            participants: Vec::new(),
            joins: 0,
            keepalives: 0,
            told_muted: None,
            leaves: Vec::new(),
        }
    }
    fn roster(&self) -> Roster {
        Roster {
            meeting: "demo".into(),
            version: self.version,
            epoch: self.epoch,
            relay: None,
            participants: self.participants.clone(),
        }
    }
    fn add(&mut self, room: &str) -> String {
        let p = participant(self.next_id, room);
        self.next_id += 1;
        self.version += 1;
        let id = p.id.clone();
        self.participants.push(p);
        id
    }
    fn remove(&mut self, id: &str) {
        self.participants.retain(|p| p.id != id);
        self.version += 1;
    }
    /// SIGKILL and start again: a new epoch, versions from 1, nobody listed.
    fn restart(&mut self) {
        self.epoch += 1;
        self.version = 0;
        self.participants.clear();
    }
    fn knows(&self, id: &str) -> bool {
        self.participants.iter().any(|p| p.id == id)
    }
}

/// The box around the session: what the driver would do with each event.
struct Harness {
    now: Instant,
    s: BoxSession,
    svc: FakeService,
    /// A long poll waiting for a newer roster.
    pending_poll: Option<u64>,
    sgs: BTreeSet<SourceGroup>,
    events: Vec<Event>,
    sending: bool,
    gateway: bool,
    keyframes: usize,
    muted: bool,
}

impl Harness {
    fn new(config: SessionConfig) -> Self {
        let now = Instant::now();
        Self {
            now,
            s: BoxSession::new(config, now),
            svc: FakeService::new(),
            pending_poll: None,
            sgs: BTreeSet::new(),
            events: Vec::new(),
            sending: false,
            gateway: false,
            keyframes: 0,
            muted: false,
        }
    }

    fn unreachable() -> CallFailure {
        CallFailure::Unreachable(format!("meeting service unreachable: {SERVER}:8470: connection refused"))
    }

    /// Answers every request and acts on every event until nothing moves (bounded).
    fn pump(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            if let Some(since) = self.pending_poll {
                if self.svc.up && self.svc.version != since {
                    self.pending_poll = None;
                    let r = self.svc.roster();
                    self.s.handle_roster(self.now, Some(r));
                    moved = true;
                }
            }
            while let Some(t) = self.s.poll_transmit() {
                moved = true;
                self.answer(t);
            }
            while let Some(e) = self.s.poll_event() {
                moved = true;
                self.act(&e);
                self.events.push(e);
            }
            if !moved {
                return;
            }
        }
        panic!("the session keeps producing work");
    }

    fn answer(&mut self, t: Transmit) {
        let now = self.now;
        match t {
            Transmit::Join => {
                if !self.svc.up {
                    return self.s.handle_call_failed(now, Call::Join, Self::unreachable());
                }
                if let Some((status, message)) = self.svc.refuse.clone() {
                    return self.s.handle_call_failed(now, Call::Join, CallFailure::Refused { status, message });
                }
                self.svc.joins += 1;
                let id = self.svc.add("Blue");
                let me = self.svc.participants.last().unwrap().clone();
                let reply = JoinReply {
                    participant: id,
                    secret: "00".repeat(16),
                    epoch: self.svc.epoch,
                    ssrc: me.ssrc,
                    send_rtp_to: "203.0.113.1:8472".into(),
                    relay: "203.0.113.1:2268".into(),
                    groups: me.groups,
                    ports: me.ports,
                    keepalive_ms: 2000,
                    silence_timeout_ms: 10_000,
                    roster: self.svc.roster(),
                };
                self.s.handle_join_reply(now, reply, Some(SERVER.parse().unwrap()));
            }
            Transmit::PollRoster { since } => {
                if !self.svc.up {
                    self.s.handle_call_failed(now, Call::Roster, Self::unreachable());
                } else {
                    self.pending_poll = Some(since);
                }
            }
            Transmit::Keepalive { participant, muted } => {
                self.svc.told_muted = Some(muted);
                if !self.svc.up {
                    self.s.handle_call_failed(now, Call::Keepalive, Self::unreachable());
                } else if self.svc.knows(&participant) {
                    self.svc.keepalives += 1;
                    self.s.handle_keepalive_ok(now);
                } else {
                    let f = CallFailure::Refused { status: 404, message: "no such participant".into() };
                    self.s.handle_call_failed(now, Call::Keepalive, f);
                }
            }
            Transmit::Leave { participant } => {
                self.svc.leaves.push(participant.clone());
                self.svc.remove(&participant);
                self.s.handle_left(now);
            }
        }
    }

    fn act(&mut self, e: &Event) {
        match e {
            Event::Joined(j) => {
                assert_eq!(j.send_rtp_to, format!("{SERVER}:8472"), "media goes where the service answered");
                self.sending = true;
                self.gateway = true;
                self.s.handle_gateway_state(self.now, GatewayState::Discovering);
            }
            Event::JoinSg { sg, .. } => assert!(self.sgs.insert(*sg), "joined twice: {sg}"),
            Event::LeaveSg { sg, .. } => assert!(self.sgs.remove(sg), "left unjoined: {sg}"),
            Event::RequestKeyframe => self.keyframes += 1,
            Event::SetMuted(m) => self.muted = *m,
            Event::SampleMedia => {
                let c = SenderCounters { bytes: 0, ..Default::default() };
                self.s.handle_sender_status(self.now, c);
            }
            Event::StopSending => self.sending = false,
            Event::StopReceiving => {
                self.gateway = false;
                self.sgs.clear();
            }
            Event::Rejoin(_) => self.pending_poll = None,
            Event::StatusChanged | Event::Closed => {}
        }
    }

    /// Runs the clock forward by `d`, waking at each deadline the session names.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        self.pump();
        for _ in 0..100_000 {
            match self.s.poll_timeout() {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.s.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = end;
        self.pump();
    }

    fn phase(&self) -> SessionPhase {
        self.s.status().phase.clone()
    }

    fn relay_up(&mut self) {
        let relay = "192.0.2.10:2268".parse().unwrap();
        self.s.handle_gateway_state(self.now, GatewayState::Requesting { relay });
        self.s.handle_gateway_state(self.now, GatewayState::Joined { relay });
        self.pump();
    }

    fn rejoins(&self) -> Vec<RejoinReason> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Rejoin(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }
}

fn joined() -> Harness {
    let mut h = Harness::new(SessionConfig::default());
    h.svc.add("Green");
    h.advance(Duration::from_millis(10));
    h.relay_up();
    assert_eq!(h.phase(), SessionPhase::InMeeting);
    h
}

#[test]
fn joins_subscribes_to_the_others_and_asks_for_a_keyframe() {
    let mut h = Harness::new(SessionConfig::default());
    assert_eq!(h.phase(), SessionPhase::Joining);
    h.svc.add("Green");
    h.advance(Duration::from_millis(10));
    assert_eq!(h.svc.joins, 1);
    let st = h.s.status();
    assert_eq!(st.participant.as_deref(), Some("p02"));
    assert_eq!(st.roster, ["Green", "Blue"]);
    assert_eq!(st.relay, format!("{SERVER}:2268"), "the relay at the address the service answered on");
    assert_eq!(h.phase(), SessionPhase::FindingRelay { relay: format!("{SERVER}:2268") });
    let green = participant(1, "Green").groups.ipv4;
    assert_eq!(h.sgs, BTreeSet::from([green]), "only the other participant's (S,G), never our own");
    assert_eq!(h.keyframes, 1, "someone new was present: a keyframe for them");
    assert!(h.sending && h.gateway);
    h.relay_up();
    assert_eq!(h.phase(), SessionPhase::InMeeting);
    assert_eq!(h.s.others().len(), 1);
}

#[test]
fn relay_override_replaces_the_advertised_relay() {
    let cfg = SessionConfig { relay_override: Some("198.51.100.7:2268".into()), ..SessionConfig::default() };
    let mut h = Harness::new(cfg);
    h.advance(Duration::from_millis(10));
    assert_eq!(h.s.status().relay, "198.51.100.7:2268");
    assert_eq!(h.keyframes, 0, "alone in the meeting: nobody to send a keyframe to");
}

#[test]
fn roster_growth_and_shrink_join_and_leave_channels() {
    let mut h = joined();
    let kf = h.keyframes;
    let red = h.svc.add("Red");
    h.advance(Duration::from_millis(10));
    assert_eq!(h.sgs.len(), 2);
    assert_eq!(h.keyframes, kf + 1);
    assert_eq!(h.s.status().roster, ["Green", "Blue", "Red"]);
    let v = h.s.status().roster_version;
    h.svc.remove(&red);
    h.advance(Duration::from_millis(10));
    assert_eq!(h.sgs, BTreeSet::from([participant(1, "Green").groups.ipv4]));
    assert_eq!(h.keyframes, kf + 1, "a departure asks for no keyframe");
    assert_eq!(h.s.status().roster_version, v + 1);
    assert!(h.events.iter().any(|e| matches!(e, Event::LeaveSg { id, .. } if *id == red)));
    assert!(h.rejoins().is_empty());
}

#[test]
fn ipv6_family_subscribes_to_ipv6_groups() {
    let cfg = SessionConfig { family: roomcast_meeting::roster::Family::Ipv6, ..SessionConfig::default() };
    let mut h = Harness::new(cfg);
    h.svc.add("Green");
    h.advance(Duration::from_millis(10));
    assert_eq!(h.sgs, BTreeSet::from([participant(1, "Green").groups.ipv6]));
}

#[test]
fn relay_lost_and_found() {
    let mut h = joined();
    let retry_at = h.now + Duration::from_secs(3);
    h.s.handle_gateway_state(h.now, GatewayState::RelayLost { retry_at });
    h.pump();
    assert_eq!(h.phase(), SessionPhase::RelayLost { relay: format!("{SERVER}:2268"), retry_at });
    h.s.handle_gateway_state(h.now, GatewayState::Discovering);
    assert!(matches!(h.phase(), SessionPhase::FindingRelay { .. }));
    h.relay_up();
    assert_eq!(h.phase(), SessionPhase::InMeeting);
    assert!(h.rejoins().is_empty(), "a lost relay is the gateway's business, not a rejoin");
}

#[test]
fn service_unreachable_retries_every_2s_then_joins() {
    let mut h = Harness::new(SessionConfig::default());
    h.svc.up = false;
    h.advance(Duration::from_millis(10));
    assert!(matches!(h.phase(), SessionPhase::ServiceUnreachable { .. }), "{:?}", h.phase());
    assert!(h.s.status().errors.last().unwrap().contains("unreachable"));
    assert_eq!(h.s.poll_timeout(), Some(h.now - Duration::from_millis(10) + Duration::from_secs(2)));
    h.advance(Duration::from_secs(5));
    assert_eq!(h.svc.joins, 0);
    assert_eq!(h.s.status().errors.len(), 1, "the same problem is listed once");
    h.svc.up = true;
    h.advance(Duration::from_secs(2));
    assert_eq!(h.svc.joins, 1);
    assert!(matches!(h.phase(), SessionPhase::FindingRelay { .. }));
}

#[test]
fn a_refused_join_is_shown_and_retried_slowly() {
    let mut h = Harness::new(SessionConfig::default());
    h.svc.refuse = Some((403, "wrong access token".into()));
    h.advance(Duration::from_millis(10));
    assert_eq!(h.phase(), SessionPhase::Refused { reason: "wrong access token".into(), status: 403 });
    h.svc.refuse = None;
    h.advance(Duration::from_secs(9));
    assert_eq!(h.svc.joins, 0, "no retry before 10 s");
    h.advance(Duration::from_secs(1));
    assert_eq!(h.svc.joins, 1);
}

#[test]
fn keepalives_follow_the_session_deadline_one_at_a_time() {
    let mut h = joined();
    let before = h.svc.keepalives;
    h.advance(Duration::from_millis(10_100));
    // One at join, then every 2 s.
    assert_eq!(h.svc.keepalives - before, 5, "keepalive_ms = 2000 over 10 s");
    // A keepalive still in flight is not doubled.
    let t = h.s.poll_timeout().unwrap();
    h.now = t + Duration::from_secs(2);
    h.s.handle_timeout(h.now);
    let mut sent = 0;
    while let Some(tx) = h.s.poll_transmit() {
        if matches!(tx, Transmit::Keepalive { .. }) {
            sent += 1;
        }
    }
    h.now += Duration::from_secs(2);
    h.s.handle_timeout(h.now);
    while let Some(tx) = h.s.poll_transmit() {
        if matches!(tx, Transmit::Keepalive { .. }) {
            sent += 1;
        }
    }
    assert_eq!(sent, 1);
}

#[test]
fn rejoins_at_once_when_the_epoch_changes() {
    let mut h = joined();
    h.svc.restart();
    h.svc.add("Green");
    h.advance(Duration::from_millis(1));
    assert_eq!(h.rejoins(), [RejoinReason::EpochChanged { joined: 7, now: 8 }]);
    assert_eq!(h.svc.joins, 2, "joined again without waiting");
    assert!(h.s.status().participant.is_some());
    assert_eq!(h.s.status().roster, ["Green", "Blue"]);
    assert!(h.sending && h.gateway, "media restarted");
}

#[test]
fn rejoins_at_once_when_the_roster_version_goes_back() {
    let mut h = joined();
    // Same epoch (a service without one says 0), version lower than seen.
    let seen = h.s.status().roster_version;
    let mut old = h.svc.roster();
    old.version = 1;
    old.epoch = 0;
    h.pending_poll = None;
    h.s.handle_roster(h.now, Some(old));
    h.advance(Duration::ZERO);
    assert_eq!(h.rejoins(), [RejoinReason::VersionWentBack { seen, got: 1 }]);
    assert_eq!(h.svc.joins, 2);
}

#[test]
fn the_same_version_again_changes_nothing() {
    let mut h = joined();
    let r = h.svc.roster();
    h.pending_poll = None;
    let n = h.events.len();
    h.s.handle_roster(h.now, Some(r));
    h.pump();
    assert!(h.rejoins().is_empty());
    assert!(!h.events[n..].iter().any(|e| matches!(e, Event::JoinSg { .. } | Event::LeaveSg { .. })));
}

#[test]
fn rejoins_at_once_on_a_keepalive_404() {
    let mut h = joined();
    // The service forgot us without a roster change the long poll would see.
    let me = h.s.status().participant.clone().unwrap();
    h.svc.participants.retain(|p| p.id != me);
    h.advance(Duration::from_millis(2100));
    assert_eq!(h.rejoins(), [RejoinReason::Unknown]);
    assert_eq!(h.svc.joins, 2);
    assert_ne!(h.s.status().participant.as_deref(), Some(me.as_str()));
}

#[test]
fn a_keepalive_401_is_shown_as_a_refusal_not_a_rejoin() {
    let mut h = joined();
    // Past the next keepalive (every 2 s).
    h.now += Duration::from_secs(2);
    h.s.handle_timeout(h.now);
    let mut keepalive = None;
    while let Some(tx) = h.s.poll_transmit() {
        if matches!(tx, Transmit::Keepalive { .. }) {
            keepalive = Some(tx);
        } else {
            h.answer(tx);
        }
    }
    assert!(keepalive.is_some());
    let f = CallFailure::Refused { status: 401, message: "unknown meeting or wrong token".into() };
    h.s.handle_call_failed(h.now, Call::Keepalive, f);
    h.pump();
    assert_eq!(h.phase(), SessionPhase::Refused { reason: "unknown meeting or wrong token".into(), status: 401 });
    assert!(h.rejoins().is_empty());
    // The next keepalive is answered: back in the meeting.
    h.advance(Duration::from_millis(2100));
    assert_eq!(h.phase(), SessionPhase::InMeeting);
}

#[test]
fn dropped_from_the_roster_rejoins_after_a_pause() {
    let mut h = joined();
    let me = h.s.status().participant.clone().unwrap();
    h.svc.remove(&me);
    h.advance(Duration::from_millis(10));
    assert_eq!(h.rejoins(), [RejoinReason::Dropped]);
    assert_eq!(h.svc.joins, 1, "pauses before joining again");
    assert!(!h.sending && !h.gateway && h.sgs.is_empty(), "media stopped meanwhile");
    assert_eq!(h.phase(), SessionPhase::Joining);
    h.advance(Duration::from_millis(500));
    assert_eq!(h.svc.joins, 2);
}

#[test]
fn a_restart_with_the_service_down_for_a_while_comes_back() {
    let mut h = joined();
    h.svc.up = false;
    h.svc.restart();
    h.advance(Duration::from_secs(3));
    // The keepalive failed (unreachable: no rejoin yet), the roster poll retries.
    assert!(h.rejoins().is_empty());
    h.svc.up = true;
    h.advance(Duration::from_secs(3));
    // The first answer of the new instance (a roster of another epoch or a keepalive 404) rejoins.
    assert_eq!(h.rejoins().len(), 1, "{:?}", h.rejoins());
    assert!(h.svc.knows(h.s.status().participant.as_deref().unwrap()));
}

#[test]
fn mute_toggles_the_gate_and_the_status() {
    let cfg = SessionConfig { muted: true, ..SessionConfig::default() };
    let mut h = Harness::new(cfg);
    h.muted = true;
    assert!(h.s.status().muted);
    h.s.handle_mute_toggle(h.now);
    h.pump();
    assert!(!h.muted && !h.s.status().muted);
    h.s.handle_mute_toggle(h.now);
    h.pump();
    assert!(h.muted && h.s.status().muted);
}

#[test]
fn a_mute_reaches_the_service_at_once_with_a_keepalive() {
    let mut h = joined();
    h.advance(Duration::from_millis(300));
    assert_eq!(h.svc.told_muted, Some(false));
    let before = h.svc.keepalives;
    h.s.handle_mute_toggle(h.now);
    h.advance(Duration::from_millis(1));
    assert_eq!(h.svc.told_muted, Some(true), "told at once, not at the next 2 s keepalive");
    assert_eq!(h.svc.keepalives, before + 1);
    // A toggle while a keepalive is on its way: the new state follows its answer.
    h.now += Duration::from_secs(2);
    h.s.handle_timeout(h.now);
    let tx = std::iter::from_fn(|| h.s.poll_transmit()).find(|t| matches!(t, Transmit::Keepalive { .. }));
    assert_eq!(tx, Some(Transmit::Keepalive { participant: "p02".into(), muted: true }));
    h.s.handle_mute_toggle(h.now);
    assert!(!std::iter::from_fn(|| h.s.poll_transmit()).any(|t| matches!(t, Transmit::Keepalive { .. })));
    h.s.handle_keepalive_ok(h.now);
    h.advance(Duration::from_millis(1));
    assert_eq!(h.svc.told_muted, Some(false), "the unmute followed the answered keepalive");
}

#[test]
fn sender_counters_give_the_send_rate_and_one_capture_error() {
    let mut h = joined();
    let t0 = h.now;
    let c = |bytes, ended| SenderCounters {
        bytes,
        video_packets: 3,
        audio_packets: 9,
        video_frames: 1,
        ended,
        missing: vec!["camera".into()],
        encoder: Some(("SW AV1".into(), "no hardware encoder".into())),
    };
    // The window started at the join, 10 ms before t0.
    h.s.handle_sender_status(t0 + Duration::from_millis(1990), c(250_000, false));
    assert_eq!(h.s.status().send_kbps, 1000);
    assert_eq!(h.s.status().packets_sent, (3, 9));
    assert_eq!(h.s.status().missing, ["camera"]);
    h.s.handle_sender_status(t0 + Duration::from_secs(3), c(250_000, true));
    h.s.handle_sender_status(t0 + Duration::from_secs(4), c(250_000, true));
    assert_eq!(h.s.status().send_kbps, 0);
    let n = h.s.status().errors.iter().filter(|e| e.contains("capture thread")).count();
    assert_eq!(n, 1);
}

#[test]
fn receive_counters_give_roster_ordered_figures_loss_and_rate() {
    let mut h = joined();
    let red = h.svc.add("Red");
    h.advance(Duration::from_millis(10));
    let t0 = h.now - Duration::from_millis(20);
    let remote = |id: &str, e, r| RemoteCounters {
        id: id.into(),
        packets: r,
        expected_received: (e, r),
        speaking: id == "p01",
        ..Default::default()
    };
    // Reported out of order, plus one the roster no longer lists.
    let c = ReceiveCounters {
        bytes: 500_000,
        remotes: vec![remote(&red, 100, 90), remote("p01", 300, 300), remote("gone", 5, 0)],
    };
    h.s.handle_media(t0 + Duration::from_secs(2), c);
    let st = h.s.status();
    let rooms: Vec<&str> = st.others.iter().map(|o| o.room.as_str()).collect();
    assert_eq!(rooms, ["Green", "Red"], "roster order, known participants only");
    assert_eq!(st.others[0].channel, participant(1, "Green").groups.ipv4.to_string());
    assert!(st.others[0].counters.speaking);
    assert_eq!(st.others[1].loss_percent, 10.0);
    assert_eq!(st.loss_percent, 2.5, "10 lost of 400 expected");
    assert_eq!(st.recv_kbps, 2000);
    // A rejoin forgets them.
    let me = st.participant.clone().unwrap();
    h.svc.remove(&me);
    h.advance(Duration::from_millis(10));
    assert!(h.s.status().others.is_empty());
}

#[test]
fn orderly_shutdown_stops_sending_then_leaves_then_closes_the_tunnel() {
    let mut h = joined();
    let me = h.s.status().participant.clone().unwrap();
    let n = h.events.len();
    h.s.handle_shutdown(h.now);
    assert_eq!(h.phase(), SessionPhase::Leaving);
    h.pump();
    assert_eq!(h.svc.leaves, [me]);
    let order: Vec<&Event> = h.events[n..]
        .iter()
        .filter(|e| matches!(e, Event::StopSending | Event::StopReceiving | Event::Closed))
        .collect();
    assert_eq!(order, [&Event::StopSending, &Event::StopReceiving, &Event::Closed]);
    assert_eq!(h.phase(), SessionPhase::Left);
    assert_eq!(h.s.status().gateway, Some(GatewayState::Closed));
    assert!(h.s.is_closed());
    assert_eq!(h.s.poll_timeout(), None, "nothing more to wake for");
}

#[test]
fn shutdown_while_joining_leaves_once_the_join_answers() {
    let mut h = Harness::new(SessionConfig::default());
    h.s.handle_timeout(h.now);
    assert_eq!(h.s.poll_transmit(), Some(Transmit::Join));
    h.s.handle_shutdown(h.now);
    // The join was admitted meanwhile: the participant is left at once.
    h.answer(Transmit::Join);
    h.pump();
    assert_eq!(h.svc.leaves.len(), 1);
    assert!(h.s.is_closed());
    assert!(!h.events.iter().any(|e| matches!(e, Event::Joined(_))), "no media for a box that is leaving");
}

#[test]
fn shutdown_before_any_join_ends_at_once() {
    let mut h = Harness::new(SessionConfig::default());
    h.svc.up = false;
    h.advance(Duration::from_millis(10));
    h.s.handle_shutdown(h.now);
    h.pump();
    assert!(h.s.is_closed());
    assert!(h.events.contains(&Event::Closed));
    assert!(h.svc.leaves.is_empty());
}
