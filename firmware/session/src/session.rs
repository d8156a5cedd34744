//! [`BoxSession`]: join (retrying while refused or unreachable), follow the roster (one (S,G)
//! subscription per other participant), keep alive, follow the AMT gateway, rejoin when the
//! service forgot us, leave in order. Inputs are `handle_*(now, …)`, outputs
//! [`BoxSession::poll_transmit`] (control requests), [`BoxSession::poll_event`] (actions) and
//! [`BoxSession::poll_timeout`].
//!
//! The driver runs at most one request of each [`Call`] kind at a time and reports its end
//! (`handle_join_reply`, `handle_roster`, `handle_keepalive_ok`, `handle_left` or
//! `handle_call_failed`); on [`Event::Rejoin`] it drops the roster poll and keepalive in flight.

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use roomcast_amt::GatewayState;
use roomcast_meeting::participant::RosterTracker;
use roomcast_meeting::roster::{Family, GroupPair, JoinReply, ParticipantInfo, Ports, Roster, Ssrcs};
use roomcast_meeting::SourceGroup;

use crate::status::{loss_percent, ReceiveCounters, RemoteStatus, SenderCounters, SessionPhase, SessionStatus};

/// Timers and choices of a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Which family of (S,G) to subscribe to.
    pub family: Family,
    /// `[amt] relay`: use this relay instead of the one the service names.
    pub relay_override: Option<String>,
    /// Start muted.
    pub muted: bool,
    /// Next join attempt after the service could not be reached.
    pub unreachable_retry: Duration,
    /// Next join attempt after the service refused.
    pub refused_retry: Duration,
    /// Next roster poll after a failed one.
    pub roster_retry: Duration,
    /// Pause before joining again after the service dropped us from the roster.
    pub rejoin_pause: Duration,
    /// How often the driver is asked for the media counters ([`Event::SampleMedia`]).
    pub sample_every: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            family: Family::default(),
            relay_override: None,
            muted: false,
            unreachable_retry: Duration::from_secs(2),
            refused_retry: Duration::from_secs(10),
            roster_retry: Duration::from_secs(1),
            rejoin_pause: Duration::from_millis(500),
            sample_every: Duration::from_millis(250),
        }
    }
}

/// A request to the meeting service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// Join the meeting (with the devices' capabilities).
    Join,
    /// Long-poll the roster for a version newer than `since`.
    PollRoster {
        /// The version we have.
        since: u64,
    },
    /// Say we are alive, and whether our microphone is muted (the others see it in the roster).
    Keepalive {
        /// Our participant id.
        participant: String,
        /// The microphone is muted.
        muted: bool,
    },
    /// Leave the meeting.
    Leave {
        /// Our participant id.
        participant: String,
    },
}

/// The kinds of request, for [`BoxSession::handle_call_failed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// [`Transmit::Join`].
    Join,
    /// [`Transmit::PollRoster`].
    Roster,
    /// [`Transmit::Keepalive`].
    Keepalive,
    /// [`Transmit::Leave`].
    Leave,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallFailure {
    /// The service answered with an error status (or a certificate did not match: shown the same way).
    Refused {
        /// HTTP status.
        status: u16,
        /// The service's reason.
        message: String,
    },
    /// No answer, or one that could not be read.
    Unreachable(String),
}

impl fmt::Display for CallFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallFailure::Refused { status, message } => write!(f, "meeting service refused ({status}): {message}"),
            CallFailure::Unreachable(reason) => f.write_str(reason),
        }
    }
}

/// What the service gave us at join, for starting the media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// Our participant id.
    pub participant: String,
    /// SSRCs to send with.
    pub ssrc: Ssrcs,
    /// Where to send RTP and RTCP (the service's media port at the address we reached it on).
    pub send_rtp_to: String,
    /// The AMT relay to tunnel through.
    pub relay: String,
    /// Our own channels.
    pub groups: GroupPair,
    /// Ports of the streams inside the groups.
    pub ports: Ports,
}

/// Why the box joins again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejoinReason {
    /// The roster no longer lists us (the service's silence timeout).
    Dropped,
    /// A roster came from another service instance (it restarted).
    EpochChanged {
        /// The epoch we joined under.
        joined: u64,
        /// The roster's.
        now: u64,
    },
    /// The roster version went back (a restarted service counting again).
    VersionWentBack {
        /// The highest version seen.
        seen: u64,
        /// The roster's.
        got: u64,
    },
    /// The service answered 404 to a keepalive or roster poll: it does not know us.
    Unknown,
    /// The media could not start (e.g. the send address did not resolve).
    MediaFailed,
}

impl fmt::Display for RejoinReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejoinReason::Dropped => f.write_str("no longer in the roster"),
            RejoinReason::EpochChanged { joined, now } => {
                write!(f, "the meeting service restarted (epoch {joined:x} -> {now:x})")
            }
            RejoinReason::VersionWentBack { seen, got } => write!(f, "roster version went back ({seen} -> {got})"),
            RejoinReason::Unknown => f.write_str("the meeting service does not know us (404)"),
            RejoinReason::MediaFailed => f.write_str("the media could not start"),
        }
    }
}

/// Something the driver does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Joined: start the sender and the AMT gateway.
    Joined(Joined),
    /// Start receiving a participant and join its (S,G) at the gateway.
    JoinSg {
        /// The participant.
        info: Box<ParticipantInfo>,
        /// Its channel of the configured family.
        sg: SourceGroup,
    },
    /// Stop receiving participant `id` and leave its (S,G).
    LeaveSg {
        /// The participant.
        id: String,
        /// Its channel.
        sg: SourceGroup,
    },
    /// Ask the sender for a keyframe (someone new needs one).
    RequestKeyframe,
    /// Mute or unmute the microphone.
    SetMuted(bool),
    /// Feed back the media counters (`handle_sender_status`, and refresh the receive figures).
    SampleMedia,
    /// Stop the sender (it says RTCP BYE).
    StopSending,
    /// Close the AMT gateway (Teardown) and finish every receiver and recording.
    StopReceiving,
    /// The session starts over with a new join; drop the old participant's roster poll and
    /// keepalive in flight (no join is in flight while in the meeting).
    Rejoin(RejoinReason),
    /// [`BoxSession::status`] changed.
    StatusChanged,
    /// Left the meeting: the driver can stop.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Joining,
    InMeeting,
    Leaving,
    Left,
}

/// A timer that fires once at `at` unless its request is still in flight.
#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    at: Option<Instant>,
    in_flight: bool,
}

impl Slot {
    fn due(&self, now: Instant) -> bool {
        !self.in_flight && self.at.is_some_and(|t| t <= now)
    }
    fn deadline(&self) -> Option<Instant> {
        if self.in_flight {
            None
        } else {
            self.at
        }
    }
}

/// The box's meeting session (sans-IO).
#[derive(Debug)]
pub struct BoxSession {
    config: SessionConfig,
    stage: Stage,
    status: SessionStatus,
    status_dirty: bool,
    join: Slot,
    roster: Slot,
    keepalive: Slot,
    keepalive_every: Duration,
    /// The mute state the last keepalive told the service.
    told_muted: Option<bool>,
    sample_at: Option<Instant>,
    tracker: Option<RosterTracker>,
    epoch: u64,
    /// Bytes sent and when, at the start of the send-rate window.
    send_window: Option<(Instant, u64)>,
    /// Bytes received and when, at the start of the receive-rate window.
    recv_window: Option<(Instant, u64)>,
    sender_end_reported: bool,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

fn on_server(reached_at: Option<IpAddr>, advertised: &str) -> String {
    match (reached_at, advertised.parse::<SocketAddr>()) {
        (Some(ip), Ok(a)) => SocketAddr::new(ip, a.port()).to_string(),
        _ => advertised.to_string(),
    }
}

impl BoxSession {
    /// A session that joins at once.
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        let status = SessionStatus::new(config.muted);
        Self {
            config,
            stage: Stage::Joining,
            status,
            status_dirty: true,
            join: Slot { at: Some(now), in_flight: false },
            roster: Slot::default(),
            keepalive: Slot::default(),
            keepalive_every: Duration::from_secs(5),
            told_muted: None,
            sample_at: None,
            tracker: None,
            epoch: 0,
            send_window: None,
            recv_window: None,
            sender_end_reported: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The status now.
    pub fn status(&self) -> &SessionStatus {
        &self.status
    }

    /// The other participants, in roster order.
    pub fn others(&self) -> Vec<&ParticipantInfo> {
        self.tracker.as_ref().map(RosterTracker::others).unwrap_or_default()
    }

    /// True once the session has left the meeting (or shut down before joining).
    pub fn is_closed(&self) -> bool {
        self.stage == Stage::Left
    }

    /// The next request to make.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next action; [`Event::StatusChanged`] comes last, once per change batch.
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        if std::mem::take(&mut self.status_dirty) {
            return Some(Event::StatusChanged);
        }
        None
    }

    /// When [`BoxSession::handle_timeout`] should run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let join = if self.stage == Stage::Joining { self.join.deadline() } else { None };
        let in_meeting = self.stage == Stage::InMeeting;
        [join, self.roster.deadline(), self.keepalive.deadline(), self.sample_at]
            .into_iter()
            .enumerate()
            .filter(|(i, _)| *i == 0 || in_meeting)
            .filter_map(|(_, t)| t)
            .min()
    }

    /// Time passed: join, poll the roster, keep alive, sample the media when due.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.stage {
            Stage::Joining if self.join.due(now) => {
                self.join = Slot { at: None, in_flight: true };
                self.transmits.push_back(Transmit::Join);
            }
            Stage::InMeeting => {
                let me = self.status.participant.clone().unwrap_or_default();
                if self.keepalive.at.is_some_and(|t| t <= now) {
                    // Always rescheduled; a keepalive still in flight is not doubled.
                    if !self.keepalive.in_flight {
                        self.keepalive.in_flight = true;
                        let muted = self.status.muted;
                        self.told_muted = Some(muted);
                        self.transmits.push_back(Transmit::Keepalive { participant: me, muted });
                    }
                    self.keepalive.at = Some(now + self.keepalive_every);
                }
                if self.roster.due(now) {
                    self.roster = Slot { at: None, in_flight: true };
                    let since = self.tracker.as_ref().map_or(0, RosterTracker::version);
                    self.transmits.push_back(Transmit::PollRoster { since });
                }
                if self.sample_at.is_some_and(|t| t <= now) {
                    self.sample_at = Some(now + self.config.sample_every);
                    self.events.push_back(Event::SampleMedia);
                }
            }
            _ => {}
        }
    }

    /// The service admitted us (under its instance `reply.epoch`; 0: a service without one).
    /// `reached_at` is the address its control API answered on: the media port and the relay
    /// are taken there (the advertised address may be a NAT's), with the ports it named.
    pub fn handle_join_reply(&mut self, now: Instant, reply: JoinReply, reached_at: Option<IpAddr>) {
        let epoch = reply.epoch;
        self.join.in_flight = false;
        match self.stage {
            Stage::Joining => {}
            Stage::Leaving => {
                // Shut down while the join was under way: leave at once.
                self.transmits.push_back(Transmit::Leave { participant: reply.participant });
                return;
            }
            Stage::InMeeting | Stage::Left => return,
        }
        let me = reply.participant.clone();
        let relay = self.config.relay_override.clone().unwrap_or_else(|| on_server(reached_at, &reply.relay));
        let send_rtp_to = on_server(reached_at, &reply.send_rtp_to);
        tracing::info!(participant = %me, v4 = %reply.groups.ipv4, v6 = %reply.groups.ipv6, %relay, %send_rtp_to, epoch, "joined the meeting");
        self.stage = Stage::InMeeting;
        self.epoch = epoch;
        self.tracker = Some(RosterTracker::new(me.clone(), self.config.family));
        self.keepalive_every = Duration::from_millis(reply.keepalive_ms.clamp(500, 60_000));
        self.keepalive = Slot { at: Some(now), in_flight: false };
        self.roster = Slot { at: Some(now), in_flight: false };
        self.sample_at = Some(now + self.config.sample_every);
        self.send_window = Some((now, 0));
        self.recv_window = Some((now, 0));
        self.sender_end_reported = false;
        self.status.participant = Some(me.clone());
        self.status.relay = relay.clone();
        self.status.phase = SessionPhase::FindingRelay { relay: relay.clone() };
        self.status_dirty = true;
        self.events.push_back(Event::Joined(Joined {
            participant: me,
            ssrc: reply.ssrc,
            send_rtp_to,
            relay,
            groups: reply.groups,
            ports: reply.ports,
        }));
        self.apply_roster(now, reply.roster);
    }

    /// A roster poll ended: `None` when the long poll timed out unchanged. A roster of another
    /// instance (`roster.epoch`, 0: unknown) than the one we joined, or with a lower version
    /// than seen, means the service restarted: join again at once.
    pub fn handle_roster(&mut self, now: Instant, roster: Option<Roster>) {
        if self.stage != Stage::InMeeting {
            return;
        }
        self.roster = Slot { at: Some(now), in_flight: false };
        if let Some(r) = roster {
            self.apply_roster(now, r);
        }
    }

    fn apply_roster(&mut self, now: Instant, roster: Roster) {
        let Some(tracker) = self.tracker.as_mut() else { return };
        let epoch = roster.epoch;
        if self.epoch != 0 && epoch != 0 && epoch != self.epoch {
            let reason = RejoinReason::EpochChanged { joined: self.epoch, now: epoch };
            return self.rejoin(now, reason, Duration::ZERO);
        }
        if roster.version < tracker.version() {
            let reason = RejoinReason::VersionWentBack { seen: tracker.version(), got: roster.version };
            return self.rejoin(now, reason, Duration::ZERO);
        }
        let diff = tracker.update(roster);
        for (id, sg) in diff.leave {
            tracing::info!(participant = %id, channel = %sg, "participant left: leaving its channel");
            self.events.push_back(Event::LeaveSg { id, sg });
        }
        let joined_someone = !diff.join.is_empty();
        for info in diff.join {
            let sg = info.groups.get(self.config.family);
            tracing::info!(room = %info.room, channel = %sg, "participant present: joining its channel");
            self.events.push_back(Event::JoinSg { info: Box::new(info), sg });
        }
        if joined_someone {
            self.events.push_back(Event::RequestKeyframe);
        }
        self.status.roster = tracker.rooms();
        self.status.roster_version = tracker.version();
        // A mute shows at once, not at the next media sample.
        for o in &mut self.status.others {
            if let Some(info) = tracker.others().into_iter().find(|p| p.id == o.id) {
                o.muted = info.muted;
            }
        }
        self.status_dirty = true;
        if !tracker.am_listed() {
            self.rejoin(now, RejoinReason::Dropped, self.config.rejoin_pause);
        }
    }

    /// A keepalive was answered (a refusal shown meanwhile is over).
    pub fn handle_keepalive_ok(&mut self, now: Instant) {
        self.keepalive.in_flight = false;
        if self.told_muted.is_some_and(|m| m != self.status.muted) {
            // The mute changed while that keepalive was on its way: tell the new state now.
            self.keepalive.at = Some(now);
        }
        if self.stage == Stage::InMeeting && matches!(self.status.phase, SessionPhase::Refused { .. }) {
            self.status.phase = self.meeting_phase();
            self.status_dirty = true;
        }
    }

    /// The phase the gateway's state gives while in the meeting.
    fn meeting_phase(&self) -> SessionPhase {
        let relay = self.status.relay.clone();
        match self.status.gateway {
            Some(GatewayState::Joined { .. }) => SessionPhase::InMeeting,
            Some(GatewayState::RelayLost { retry_at }) => SessionPhase::RelayLost { relay, retry_at },
            _ => SessionPhase::FindingRelay { relay },
        }
    }

    /// The leave request was answered.
    pub fn handle_left(&mut self, now: Instant) {
        if self.stage == Stage::Leaving {
            tracing::info!("left the meeting");
            self.finish(now);
        }
    }

    /// A request failed.
    pub fn handle_call_failed(&mut self, now: Instant, call: Call, failure: CallFailure) {
        match call {
            Call::Join => {
                self.join.in_flight = false;
                match self.stage {
                    Stage::Joining => {}
                    Stage::Leaving => return self.finish(now),
                    _ => return,
                }
                let retry = match &failure {
                    CallFailure::Refused { status, message } => {
                        tracing::error!(status, "the meeting service refused the join: {message}");
                        self.status.phase = SessionPhase::Refused { reason: message.clone(), status: *status };
                        self.status.error(format!("join refused ({status}): {message}"));
                        self.config.refused_retry
                    }
                    CallFailure::Unreachable(reason) => {
                        self.status.phase = SessionPhase::ServiceUnreachable { reason: reason.clone() };
                        self.status.error(reason.clone());
                        self.config.unreachable_retry
                    }
                };
                self.status_dirty = true;
                self.join.at = Some(now + retry);
            }
            Call::Roster | Call::Keepalive => {
                if call == Call::Roster {
                    self.roster = Slot { at: Some(now + self.config.roster_retry), in_flight: false };
                } else {
                    self.keepalive.in_flight = false;
                }
                if self.stage != Stage::InMeeting {
                    return;
                }
                match failure {
                    CallFailure::Refused { status: 404, .. } => self.rejoin(now, RejoinReason::Unknown, Duration::ZERO),
                    CallFailure::Refused { status: 401, message } => {
                        // Bad credentials, not a restart: shown like a refused join, no rejoin.
                        self.status.error(format!("meeting service refused (401): {message}"));
                        self.status.phase = SessionPhase::Refused { reason: message, status: 401 };
                        self.status_dirty = true;
                    }
                    other => tracing::debug!("{call:?}: {other}"),
                }
            }
            Call::Leave => {
                match failure {
                    CallFailure::Refused { status: 404, .. } => {
                        tracing::info!("left the meeting (BYE already removed us)")
                    }
                    other => tracing::warn!("leave request: {other}"),
                }
                if self.stage == Stage::Leaving {
                    self.finish(now);
                }
            }
        }
    }

    /// The AMT gateway's state changed.
    pub fn handle_gateway_state(&mut self, _now: Instant, state: GatewayState) {
        if state == GatewayState::Closed {
            self.status.gateway = Some(state);
        } else {
            self.status.gateway = Some(state);
            if self.stage == Stage::InMeeting {
                self.status.phase = self.meeting_phase();
            }
        }
        self.status_dirty = true;
    }

    /// The sender's counters (after [`Event::SampleMedia`]).
    pub fn handle_sender_status(&mut self, now: Instant, c: SenderCounters) {
        if let Some((since, bytes)) = self.send_window {
            let dt = now.saturating_duration_since(since);
            if dt >= Duration::from_secs(1) {
                let kbps = c.bytes.saturating_sub(bytes) * 8 / (dt.as_millis().max(1) as u64);
                self.status.send_kbps = u32::try_from(kbps).unwrap_or(u32::MAX);
                self.send_window = Some((now, c.bytes));
            }
        }
        if c.ended && !self.sender_end_reported {
            self.sender_end_reported = true;
            self.status.error("a capture thread stopped (device lost or encoder failed); receiving continues".into());
        }
        let s = &mut self.status;
        s.packets_sent = (c.video_packets, c.audio_packets);
        s.video_frames_sent = c.video_frames;
        s.missing = c.missing;
        if c.encoder.is_some() {
            s.encoder = c.encoder;
        }
        self.status_dirty = true;
    }

    /// The receivers' totals (after [`Event::SampleMedia`]): the per-participant figures in
    /// roster order, the overall loss and the receive bitrate.
    pub fn handle_media(&mut self, now: Instant, c: ReceiveCounters) {
        if let Some((since, bytes)) = self.recv_window {
            let dt = now.saturating_duration_since(since);
            if dt >= Duration::from_secs(1) {
                let kbps = c.bytes.saturating_sub(bytes) * 8 / (dt.as_millis().max(1) as u64);
                self.status.recv_kbps = u32::try_from(kbps).unwrap_or(u32::MAX);
                self.recv_window = Some((now, c.bytes));
            }
        }
        let (mut expected, mut received) = (0, 0);
        let mut others = Vec::new();
        for info in self.others() {
            let Some(r) = c.remotes.iter().find(|r| r.id == info.id) else { continue };
            let (e, got) = r.expected_received;
            expected += e;
            received += got;
            others.push(RemoteStatus {
                id: info.id.clone(),
                room: info.room.clone(),
                channel: info.groups.get(self.config.family).to_string(),
                counters: r.clone(),
                loss_percent: loss_percent(e, got),
                muted: info.muted,
            });
        }
        self.status.others = others;
        self.status.loss_percent = loss_percent(expected, received);
        self.status_dirty = true;
    }

    /// The mute button (or SIGUSR1) was pressed.
    pub fn handle_mute_toggle(&mut self, now: Instant) {
        let muted = !self.status.muted;
        tracing::info!(muted, "mute toggled");
        self.status.muted = muted;
        self.status_dirty = true;
        self.events.push_back(Event::SetMuted(muted));
        // The others learn it from the next keepalive: send it now (after the one in flight).
        if self.stage == Stage::InMeeting && !self.keepalive.in_flight && self.keepalive.at.is_some() {
            self.keepalive.at = Some(now);
        }
    }

    /// A problem to show (a device, a receiver, a recording).
    pub fn handle_problem(&mut self, _now: Instant, problem: String) {
        self.status.error(problem);
        self.status_dirty = true;
    }

    /// The media could not start after [`Event::Joined`]: shown, then a new join.
    pub fn handle_media_failed(&mut self, now: Instant, problem: String) {
        self.status.error(problem);
        if self.stage == Stage::InMeeting {
            self.rejoin(now, RejoinReason::MediaFailed, self.config.rejoin_pause);
        }
    }

    /// SIGTERM: stop sending (BYE), leave, close the tunnel.
    pub fn handle_shutdown(&mut self, now: Instant) {
        match self.stage {
            Stage::Joining if self.join.in_flight => {
                // The answer decides: a reply is left at once, a failure ends it.
                self.stage = Stage::Leaving;
                self.status.phase = SessionPhase::Leaving;
            }
            Stage::Joining => self.finish(now),
            Stage::InMeeting => {
                self.stage = Stage::Leaving;
                self.status.phase = SessionPhase::Leaving;
                self.events.push_back(Event::StopSending);
                let participant = self.status.participant.clone().unwrap_or_default();
                self.transmits.push_back(Transmit::Leave { participant });
            }
            Stage::Leaving | Stage::Left => return,
        }
        self.status_dirty = true;
        self.roster = Slot::default();
        self.keepalive = Slot::default();
        self.sample_at = None;
    }

    fn finish(&mut self, _now: Instant) {
        if self.status.gateway.is_some() {
            self.events.push_back(Event::StopReceiving);
            self.status.gateway = Some(GatewayState::Closed);
        }
        self.stage = Stage::Left;
        self.status.phase = SessionPhase::Left;
        self.status_dirty = true;
        self.events.push_back(Event::Closed);
    }

    fn rejoin(&mut self, now: Instant, reason: RejoinReason, pause: Duration) {
        tracing::warn!("{reason}: joining again");
        self.events.push_back(Event::StopSending);
        self.events.push_back(Event::StopReceiving);
        self.events.push_back(Event::Rejoin(reason));
        self.stage = Stage::Joining;
        self.tracker = None;
        self.epoch = 0;
        self.join = Slot { at: Some(now + pause), in_flight: false };
        self.roster = Slot::default();
        self.keepalive = Slot::default();
        self.sample_at = None;
        self.send_window = None;
        self.recv_window = None;
        self.transmits.clear();
        let s = &mut self.status;
        s.participant = None;
        s.phase = SessionPhase::Joining;
        s.others.clear();
        (s.recv_kbps, s.loss_percent) = (0, 0.0);
        if s.gateway.is_some() {
            s.gateway = Some(GatewayState::Closed);
        }
        self.status_dirty = true;
    }
}
