//! The meeting service's sans-IO core: meetings with an id and an access token; participants
//! join (room name, capabilities) and get SSRCs, where to send RTP, and their own (S,G) from the
//! configured IPv4 and IPv6 SSM ranges; they leave by a control message, an RTCP BYE, or
//! silence. It is fed control requests, packets and time, and answers with replies and
//! forwarding decisions; keyframe requests (RTCP PLI) go, besides into the reporter's group,
//! straight to the media's sender ([`MeetingService::poll_transmit`]), at most one per
//! [`FEEDBACK_INTERVAL`] per sender; the `roomcast server` driver does the sockets and the AMT relay.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use tracing::{info, warn};

use crate::control::{ControlRequest, Media, Reply, Who};
use crate::media_auth::{self, MediaKey, Sealer, Verifier};
use crate::pool::{GroupPool, Range};
use crate::roster::{
    Caps, ErrorBody, GroupPair, JoinReply, ParticipantInfo, Ports, Roster, SdpPair, SourceGroup, SrtpKey, Ssrcs,
};
use crate::rtp_peek::{peek, Peek};
use crate::token::{Digest, Token};
use crate::{sdp, MeetingError};

/// Shortest time between two keyframe requests the service forwards to one sender (however
/// many receivers ask).
pub const FEEDBACK_INTERVAL: Duration = Duration::from_millis(200);

/// One meeting the service holds.
#[derive(Debug, Clone)]
pub struct MeetingSpec {
    /// The meeting's id (letters, digits, `-`, `_`, `.`).
    pub id: String,
    /// Its access token (redacted in `Debug`).
    pub token: Token,
}

/// The service's settings.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Meetings held.
    pub meetings: Vec<MeetingSpec>,
    /// Source address S of every IPv4 (S,G) (the relay's address as the boxes see it).
    pub source_v4: Ipv4Addr,
    /// Source address S of every IPv6 (S,G).
    pub source_v6: Ipv6Addr,
    /// IPv4 SSM range groups are taken from.
    pub range_v4: Range,
    /// IPv6 SSM range groups are taken from.
    pub range_v6: Range,
    /// A participant from which nothing (RTP, RTCP, keepalive) arrived for this long is removed.
    pub silence_timeout: Duration,
    /// Interval participants are asked to send keepalives at.
    pub keepalive: Duration,
    /// Most participants in one meeting.
    pub max_participants_per_meeting: usize,
    /// Most participants over all meetings.
    pub max_participants_total: usize,
    /// Where participants send RTP (advertised).
    pub rtp_target: SocketAddr,
    /// The AMT relay carrying the groups (advertised).
    pub relay: SocketAddr,
    /// Ports of the streams inside each group.
    pub ports: Ports,
    /// Seed of the id, secret, SSRC and group generator of [`MeetingService::new`] (tests);
    /// the driver uses [`MeetingService::with_rng`] with the OS random source instead.
    pub seed: u64,
    /// This instance's epoch (drawn from the OS random source at start by the driver), sent
    /// in every roster and join reply so boxes notice a restart.
    pub epoch: u64,
}

impl ServiceConfig {
    /// A configuration for tests and the loopback demo: one meeting, all on 127.0.0.1.
    pub fn loopback(meeting: &str, token: &str) -> Self {
        Self {
            meetings: vec![MeetingSpec { id: meeting.into(), token: Token::new(token) }],
            source_v4: Ipv4Addr::LOCALHOST,
            source_v6: Ipv6Addr::LOCALHOST,
            range_v4: "232.10.0.0/24".parse().expect("valid range"),
            range_v6: "ff3e::8000:0/112".parse().expect("valid range"),
            silence_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(2),
            max_participants_per_meeting: 16,
            max_participants_total: 64,
            rtp_target: "127.0.0.1:8472".parse().expect("valid address"),
            relay: "127.0.0.1:2268".parse().expect("valid address"),
            ports: Ports { video: 5004, audio: 5006 },
            seed: 1,
            epoch: 1,
        }
    }
}

/// Why a participant left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// A leave control message.
    Request,
    /// An RTCP BYE for one of its SSRCs.
    RtcpBye,
    /// Nothing arrived for the silence timeout.
    Silence,
}

/// Something the driver may log or count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A participant joined.
    Joined {
        /// Meeting id.
        meeting: String,
        /// Participant.
        info: Box<ParticipantInfo>,
    },
    /// A participant left.
    Left {
        /// Meeting id.
        meeting: String,
        /// Participant id.
        participant: String,
        /// Its room.
        room: String,
        /// Why.
        reason: LeaveReason,
    },
    /// A participant announced a new media key (a rekey): the roster moved on.
    Rekeyed {
        /// Meeting id.
        meeting: String,
        /// Participant id.
        participant: String,
        /// The new key's id.
        key_id: u32,
    },
    /// A participant's state in the roster changed (its mute): the roster's version moved.
    Changed {
        /// Meeting id.
        meeting: String,
        /// Participant id.
        participant: String,
    },
    /// A request was refused (wrong token, limits...).
    Refused {
        /// Meeting id asked for.
        meeting: String,
        /// Why.
        error: MeetingError,
    },
}

/// Where one received packet goes: the first `len` bytes of the datagram (its media
/// authentication trailer stripped), into the sender's groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// Bytes of the datagram to forward (the packet without its trailer).
    pub len: usize,
    /// The sender's channels (inject into both families).
    pub groups: GroupPair,
    /// Source port to use inside the group.
    pub sport: u16,
    /// Destination port inside the group.
    pub dport: u16,
}

#[derive(Debug, Clone)]
struct Participant {
    info: ParticipantInfo,
    /// Digest of its secret (leave and keepalive must present the secret).
    secret: Digest,
    last_seen: Instant,
    /// The source address of its newest authenticated packet.
    latched: Option<SocketAddr>,
    /// When a keyframe request was last forwarded to it.
    last_feedback: Option<Instant>,
    /// Seals the keyframe requests the service sends it (the downlink key from its secret).
    downlink: std::sync::Arc<Sealer>,
    /// Checks its media's authentication trailers (key from its secret) and replay window.
    media: Verifier,
    /// The address its join (then its latest keepalive) came from: the relay serves the
    /// meeting's groups to it.
    address: Option<IpAddr>,
}

#[derive(Debug)]
struct Meeting {
    token: Digest,
    version: u64,
    participants: BTreeMap<u64, Participant>, // keyed by join order
    next_order: u64,
}

/// The meeting service state machine.
#[derive(Debug)]
pub struct MeetingService {
    cfg: ServiceConfig,
    meetings: HashMap<String, Meeting>,
    by_ssrc: HashMap<u32, (String, u64)>,
    pool_v4: GroupPool,
    pool_v6: GroupPool,
    rng: Rand,
    events: Vec<Event>,
    /// Feedback to send to a sender's address (unicast).
    transmits: std::collections::VecDeque<(SocketAddr, Vec<u8>)>,
    total: usize,
    /// Compared with when the meeting is unknown, so that costs what a wrong token costs.
    dummy: Digest,
    /// Bumped whenever [`MeetingService::access_table`] may have changed.
    access_generation: u64,
    /// Media datagrams of a known SSRC dropped because their authentication failed.
    media_rejected: u64,
}

/// The random source of ids, secrets, SSRCs and groups.
struct Rand(Box<dyn RngCore + Send>);

impl std::fmt::Debug for Rand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rand")
    }
}

/// What an unknown meeting and a wrong token both answer (401): nothing tells them apart.
pub const UNAUTHORIZED: &str = "unknown meeting or wrong token";

fn check_room(room: &str) -> Result<(), MeetingError> {
    let n = room.chars().count();
    if n == 0 || n > 64 {
        return Err(MeetingError::BadRequest("room name must be 1 to 64 characters".into()));
    }
    if room.chars().any(char::is_control) {
        return Err(MeetingError::BadRequest("room name has control characters".into()));
    }
    Ok(())
}

/// Checks what a participant says it sends. Neither video nor audio is a watch-only
/// participant (a room without camera and microphone, a `roomcast gateway` listener): it joins
/// and receives like any other, and its group stays silent.
fn check_caps(caps: &Caps) -> Result<(), MeetingError> {
    if let Some(v) = &caps.video {
        if !matches!(v.codec.as_str(), "AV1" | "H264") {
            return Err(MeetingError::BadRequest(format!("video codec {:?} unsupported", v.codec)));
        }
        if !(96..=127).contains(&v.payload_type) || v.fps == 0 || v.width == 0 || v.height == 0 {
            return Err(MeetingError::BadRequest("video payload type/size/fps out of range".into()));
        }
        if v.fmtp.as_ref().is_some_and(|f| f.len() > 256) {
            return Err(MeetingError::BadRequest("video fmtp too long".into()));
        }
    }
    if let Some(a) = &caps.audio {
        if a.codec != "opus" {
            return Err(MeetingError::BadRequest(format!("audio codec {:?} unsupported", a.codec)));
        }
        if !(96..=127).contains(&a.payload_type) || !(1..=2).contains(&a.channels) {
            return Err(MeetingError::BadRequest("audio payload type/channels out of range".into()));
        }
    }
    Ok(())
}

fn error_reply(e: &MeetingError) -> Reply {
    if matches!(e, MeetingError::UnknownMeeting(_) | MeetingError::WrongToken(_)) {
        return Reply::json(401, &ErrorBody { error: UNAUTHORIZED.into() });
    }
    let status = match e {
        MeetingError::UnknownParticipant(_) | MeetingError::UnknownRoom { .. } => 404,
        MeetingError::Limit(_) | MeetingError::PoolExhausted(_) => 503,
        _ => 400,
    };
    Reply::json(status, &ErrorBody { error: e.to_string() })
}

impl MeetingService {
    /// A service holding `cfg.meetings`, all empty, drawing ids, secrets, SSRCs and groups
    /// from a generator seeded with `cfg.seed` (deterministic: for tests and benches).
    pub fn new(cfg: ServiceConfig) -> Self {
        let rng = StdRng::seed_from_u64(cfg.seed);
        Self::with_rng(cfg, rng)
    }

    /// A service drawing from `rng` (the driver passes the OS random source).
    pub fn with_rng(cfg: ServiceConfig, rng: impl RngCore + Send + 'static) -> Self {
        let meetings = cfg
            .meetings
            .iter()
            .map(|m| {
                (
                    m.id.clone(),
                    Meeting { token: m.token.digest(), version: 1, participants: BTreeMap::new(), next_order: 0 },
                )
            })
            .collect();
        Self {
            pool_v4: GroupPool::new(cfg.range_v4),
            pool_v6: GroupPool::new(cfg.range_v6),
            rng: Rand(Box::new(rng)),
            dummy: Token::new("no meeting has this token").digest(),
            meetings,
            by_ssrc: HashMap::new(),
            events: Vec::new(),
            transmits: std::collections::VecDeque::new(),
            total: 0,
            access_generation: 0,
            media_rejected: 0,
            cfg,
        }
    }

    /// The settings.
    pub fn config(&self) -> &ServiceConfig {
        &self.cfg
    }

    /// Takes the next event to log.
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.events.is_empty() {
            None
        } else {
            Some(self.events.remove(0))
        }
    }

    /// Number of participants over all meetings.
    pub fn participant_count(&self) -> usize {
        self.total
    }

    /// The roster of `meeting` (without checking a token: for the driver).
    pub fn roster(&self, meeting: &str) -> Option<Roster> {
        self.roster_keyed(meeting, false)
    }

    /// The roster of `meeting` with the members' media keys (only for a participant's request).
    pub fn roster_with_keys(&self, meeting: &str) -> Option<Roster> {
        self.roster_keyed(meeting, true)
    }

    fn roster_keyed(&self, meeting: &str, keys: bool) -> Option<Roster> {
        let m = self.meetings.get(meeting)?;
        let info = |p: &Participant| {
            let mut info = p.info.clone();
            if !keys {
                info.key = None;
            }
            info
        };
        Some(Roster {
            meeting: meeting.to_string(),
            version: m.version,
            epoch: self.cfg.epoch,
            relay: Some(self.cfg.relay.to_string()),
            participants: m.participants.values().map(info).collect(),
        })
    }

    /// Current roster version of `meeting`.
    pub fn roster_version(&self, meeting: &str) -> Option<u64> {
        self.meetings.get(meeting).map(|m| m.version)
    }

    /// Checks the token: digests compared in constant time, the same work for an unknown
    /// meeting. The driver logs refusals (rate-limited) with the peer's address.
    fn authorize(&mut self, meeting: &str, token: &Token) -> Result<(), MeetingError> {
        let presented = token.digest();
        let known = self.meetings.get(meeting).map(|m| m.token);
        let matches = presented.matches(&known.unwrap_or(self.dummy));
        let result = match known {
            None => Err(MeetingError::UnknownMeeting(meeting.to_string())),
            Some(_) if !matches => Err(MeetingError::WrongToken(meeting.to_string())),
            Some(_) => Ok(()),
        };
        if let Err(e) = &result {
            self.events.push(Event::Refused { meeting: meeting.to_string(), error: e.clone() });
        }
        result
    }

    /// The participant `id` of `meeting` if `secret` is its secret; a wrong secret answers
    /// like an unknown participant.
    fn member(&mut self, meeting: &str, id: &str, secret: Option<&Token>) -> Result<(&mut Meeting, u64), MeetingError> {
        let secret = secret.ok_or_else(|| {
            MeetingError::BadRequest("missing X-Roomcast-Secret (the participant's secret from the join reply)".into())
        })?;
        let digest = secret.digest();
        let m = self.meetings.get_mut(meeting).ok_or_else(|| MeetingError::UnknownMeeting(meeting.to_string()))?;
        let order = m
            .participants
            .iter()
            .find(|(_, p)| p.info.id == id && p.secret.matches(&digest))
            .map(|(o, _)| *o)
            .ok_or_else(|| MeetingError::UnknownParticipant(id.to_string()))?;
        Ok((m, order))
    }

    /// Handles one control request at `now` (from an address not known: a join from it gives
    /// no relay access; see [`Self::handle_control_from`]).
    pub fn handle_control(&mut self, now: Instant, req: ControlRequest) -> Reply {
        match self.control(now, None, req) {
            Ok(r) => r,
            Err(e) => error_reply(&e),
        }
    }

    /// Handles one control request at `now` that came from `peer`: a join, then each
    /// keepalive, records the participant's address, which [`Self::access_table`] lets receive
    /// the meeting's groups from the relay.
    pub fn handle_control_from(&mut self, now: Instant, peer: IpAddr, req: ControlRequest) -> Reply {
        match self.control(now, Some(peer.to_canonical()), req) {
            Ok(r) => r,
            Err(e) => error_reply(&e),
        }
    }

    /// Who may receive what from the embedded relay: the address of every participant maps
    /// to every (S,G) (both families) of its meeting, its own included.
    pub fn access_table(&self) -> HashMap<IpAddr, HashSet<SourceGroup>> {
        let mut table: HashMap<IpAddr, HashSet<SourceGroup>> = HashMap::new();
        for m in self.meetings.values() {
            let groups: HashSet<SourceGroup> =
                m.participants.values().flat_map(|p| [p.info.groups.ipv4, p.info.groups.ipv6]).collect();
            for addr in m.participants.values().filter_map(|p| p.address) {
                table.entry(addr).or_default().extend(groups.iter().copied());
            }
        }
        table
    }

    /// A counter that moves whenever [`Self::access_table`] may have changed (join, leave,
    /// expiry, a participant's address): the driver pushes the table to the relay when it moved.
    pub fn access_generation(&self) -> u64 {
        self.access_generation
    }

    fn control(&mut self, now: Instant, peer: Option<IpAddr>, req: ControlRequest) -> Result<Reply, MeetingError> {
        match req {
            ControlRequest::Health => Ok(Reply::json(200, &serde_json::json!({"ok": true}))),
            ControlRequest::Index => Ok(Reply::Text(crate::control::INDEX_PAGE.to_string())),
            ControlRequest::Join { meeting, token, body } => {
                self.authorize(&meeting, &token)?;
                let mut reply = self.join_keyed(now, &meeting, &body.room, body.caps, body.key)?;
                if body.muted {
                    self.set_muted(&meeting, &reply.participant);
                    reply.roster = self.roster(&meeting).expect("just joined");
                }
                if let Some(addr) = peer {
                    self.set_address(&meeting, &reply.participant, addr);
                }
                Ok(Reply::json(200, &reply))
            }
            ControlRequest::Leave { meeting, token, participant, secret } => {
                self.authorize(&meeting, &token)?;
                let (_, order) = self.member(&meeting, &participant, secret.as_ref())?;
                self.remove(&meeting, order, LeaveReason::Request);
                Ok(Reply::json(200, &serde_json::json!({"left": participant})))
            }
            ControlRequest::Keepalive { meeting, token, participant, secret, body } => {
                self.authorize(&meeting, &token)?;
                let epoch = self.cfg.epoch;
                let (m, order) = self.member(&meeting, &participant, secret.as_ref())?;
                let mut moved = false;
                let mut changed = false;
                if let Some(p) = m.participants.get_mut(&order) {
                    p.last_seen = now;
                    if peer.is_some() && p.address != peer {
                        p.address = peer;
                        moved = true;
                    }
                    if let Some(muted) = body.muted.filter(|&muted| muted != p.info.muted) {
                        p.info.muted = muted;
                        changed = true;
                    }
                }
                if changed {
                    m.version += 1;
                    info!(meeting, %participant, muted = body.muted, "participant state");
                    self.events.push(Event::Changed { meeting: meeting.clone(), participant: participant.clone() });
                }
                let m = self.meetings.get(&meeting).expect("member found it");
                let reply = Reply::json(200, &serde_json::json!({"version": m.version, "epoch": epoch}));
                if moved {
                    self.access_generation += 1;
                }
                Ok(reply)
            }
            ControlRequest::Roster { meeting, token, since, participant, secret } => {
                self.authorize(&meeting, &token)?;
                // Keys only to a participant that proves it with its secret.
                let keys = match &participant {
                    Some(id) => {
                        self.member(&meeting, id, secret.as_ref())?;
                        true
                    }
                    None => false,
                };
                let version = self.roster_version(&meeting).unwrap_or(0);
                match since {
                    // A version past ours was seen from another instance (we restarted): answer
                    // at once, so the client sees the new epoch without waiting out the poll.
                    Some(v) if v == version => Ok(Reply::WaitRoster { meeting, since: v, keys }),
                    _ => {
                        let roster = self.roster_keyed(&meeting, keys).ok_or(MeetingError::UnknownMeeting(meeting))?;
                        Ok(Reply::json(200, &roster))
                    }
                }
            }
            ControlRequest::SetKey { meeting, token, participant, secret, key } => {
                self.authorize(&meeting, &token)?;
                let (m, order) = self.member(&meeting, &participant, secret.as_ref())?;
                let p = m.participants.get_mut(&order).ok_or(MeetingError::UnknownParticipant(participant.clone()))?;
                if p.info.key.as_ref().is_some_and(|k| key.id() <= k.id()) {
                    return Err(MeetingError::BadRequest("a new key's id must be above the current one's".into()));
                }
                let key_id = key.id();
                p.info.key = Some(key);
                p.last_seen = now;
                m.version += 1;
                let version = m.version;
                info!(meeting, participant, key_id, "new media key");
                self.events.push(Event::Rekeyed { meeting, participant, key_id });
                Ok(Reply::json(200, &serde_json::json!({"version": version, "key_id": key_id})))
            }
            ControlRequest::Sdp { meeting, token, participant, family, forward } => {
                self.authorize(&meeting, &token)?;
                let m = self.meetings.get(&meeting).ok_or(MeetingError::UnknownMeeting(meeting.clone()))?;
                let p = match participant {
                    Who::Id(id) => {
                        m.participants.values().find(|p| p.info.id == id).ok_or(MeetingError::UnknownParticipant(id))?
                    }
                    Who::Room(room) => match m.participants.values().rev().find(|p| p.info.room == room) {
                        Some(p) => p,
                        None => {
                            let present = self.roster(&meeting).map(|r| r.room_names()).unwrap_or_default();
                            return Err(MeetingError::UnknownRoom { room, present });
                        }
                    },
                };
                let body = match (forward, family) {
                    (Some((addr, media)), _) => {
                        let mut caps = p.info.caps.clone();
                        match media {
                            Media::Audio => caps.video = None,
                            Media::Video => caps.audio = None,
                        }
                        let ports = Ports { video: addr.port(), audio: addr.port() };
                        sdp::for_unicast(1, &p.info.room, &meeting, addr.ip(), ports, p.info.ssrc, &caps)
                    }
                    (None, crate::roster::Family::Ipv4) => p.info.sdp.ipv4.clone(),
                    (None, crate::roster::Family::Ipv6) => p.info.sdp.ipv6.clone(),
                };
                Ok(Reply::Sdp(body))
            }
        }
    }

    fn fresh_ssrc(&mut self) -> u32 {
        loop {
            let s: u32 = self.rng.0.random();
            if s != 0 && !self.by_ssrc.contains_key(&s) {
                return s;
            }
        }
    }

    /// Adds a participant without a media key (token already checked).
    pub fn join(&mut self, now: Instant, meeting: &str, room: &str, caps: Caps) -> Result<JoinReply, MeetingError> {
        self.join_keyed(now, meeting, room, caps, None)
    }

    /// Adds a participant with its media key (token already checked); the reply's roster
    /// carries every member's key.
    pub fn join_keyed(
        &mut self,
        now: Instant,
        meeting: &str,
        room: &str,
        caps: Caps,
        key: Option<SrtpKey>,
    ) -> Result<JoinReply, MeetingError> {
        check_room(room)?;
        check_caps(&caps)?;
        let limit = self.cfg.max_participants_per_meeting;
        let count = self
            .meetings
            .get(meeting)
            .ok_or_else(|| MeetingError::UnknownMeeting(meeting.to_string()))?
            .participants
            .len();
        let refuse = |this: &mut Self, e: MeetingError| {
            warn!(meeting, room, error = %e, "join refused");
            this.events.push(Event::Refused { meeting: meeting.to_string(), error: e.clone() });
            Err(e)
        };
        if count >= limit {
            return refuse(self, MeetingError::Limit(format!("meeting is full ({limit} participants)")));
        }
        if self.total >= self.cfg.max_participants_total {
            return refuse(
                self,
                MeetingError::Limit(format!("service is full ({} participants)", self.cfg.max_participants_total)),
            );
        }
        let g4 = match self.pool_v4.allocate(&mut self.rng.0) {
            Ok(g) => g,
            Err(e) => return refuse(self, e),
        };
        let g6 = match self.pool_v6.allocate(&mut self.rng.0) {
            Ok(g) => g,
            Err(e) => {
                self.pool_v4.release(g4);
                return refuse(self, e);
            }
        };
        let groups = GroupPair {
            ipv4: SourceGroup { source: IpAddr::V4(self.cfg.source_v4), group: g4 },
            ipv6: SourceGroup { source: IpAddr::V6(self.cfg.source_v6), group: g6 },
        };
        let ssrc = Ssrcs { video: self.fresh_ssrc(), audio: 0 };
        self.by_ssrc.insert(ssrc.video, (String::new(), 0)); // reserve while drawing the next
        let ssrc = Ssrcs { audio: self.fresh_ssrc(), ..ssrc };
        let id = format!("{:016x}", self.rng.0.random::<u64>());
        let secret = Token::from_random(&self.rng.0.random::<[u8; 16]>());
        let session: u64 = self.rng.0.random::<u32>().into();
        let ports = self.cfg.ports;
        let info = ParticipantInfo {
            id: id.clone(),
            room: room.to_string(),
            ssrc,
            groups,
            ports,
            sdp: SdpPair {
                ipv4: sdp::for_group(session, room, meeting, &groups.ipv4, ports, ssrc, &caps),
                ipv6: sdp::for_group(session, room, meeting, &groups.ipv6, ports, ssrc, &caps),
            },
            caps,
            key,
            muted: false,
        };
        let m = self.meetings.get_mut(meeting).expect("checked above");
        let order = m.next_order;
        m.next_order += 1;
        m.version += 1;
        self.access_generation += 1;
        m.participants.insert(
            order,
            Participant {
                info: info.clone(),
                secret: secret.digest(),
                last_seen: now,
                latched: None,
                last_feedback: None,
                downlink: std::sync::Arc::new(Sealer::new(MediaKey::downlink_from_secret(secret.expose()), 1)),
                media: Verifier::new(MediaKey::from_secret(secret.expose())),
                address: None,
            },
        );
        self.by_ssrc.insert(ssrc.video, (meeting.to_string(), order));
        self.by_ssrc.insert(ssrc.audio, (meeting.to_string(), order));
        self.total += 1;
        info!(meeting, room, participant = %id, v4 = %groups.ipv4, v6 = %groups.ipv6, "joined");
        let info = ParticipantInfo { key: None, ..info };
        self.events.push(Event::Joined { meeting: meeting.to_string(), info: Box::new(info) });
        Ok(JoinReply {
            participant: id,
            secret: secret.expose().to_string(),
            epoch: self.cfg.epoch,
            ssrc,
            send_rtp_to: self.cfg.rtp_target.to_string(),
            relay: self.cfg.relay.to_string(),
            groups,
            ports,
            keepalive_ms: self.cfg.keepalive.as_millis() as u64,
            silence_timeout_ms: self.cfg.silence_timeout.as_millis() as u64,
            roster: self.roster_with_keys(meeting).expect("meeting exists"),
        })
    }

    /// A participant that joined muted (its join's version covers it: no event of its own).
    fn set_muted(&mut self, meeting: &str, participant: &str) {
        let Some(m) = self.meetings.get_mut(meeting) else { return };
        if let Some(p) = m.participants.values_mut().find(|p| p.info.id == participant) {
            p.info.muted = true;
        }
    }

    fn set_address(&mut self, meeting: &str, participant: &str, addr: IpAddr) {
        let Some(m) = self.meetings.get_mut(meeting) else { return };
        if let Some(p) = m.participants.values_mut().find(|p| p.info.id == participant) {
            p.address = Some(addr);
            self.access_generation += 1;
        }
    }

    /// Removes a participant by id.
    pub fn leave(&mut self, meeting: &str, participant: &str, reason: LeaveReason) -> Result<(), MeetingError> {
        let m = self.meetings.get(meeting).ok_or_else(|| MeetingError::UnknownMeeting(meeting.to_string()))?;
        let order = m
            .participants
            .iter()
            .find(|(_, p)| p.info.id == participant)
            .map(|(o, _)| *o)
            .ok_or_else(|| MeetingError::UnknownParticipant(participant.to_string()))?;
        self.remove(meeting, order, reason);
        Ok(())
    }

    fn remove(&mut self, meeting: &str, order: u64, reason: LeaveReason) {
        let Some(m) = self.meetings.get_mut(meeting) else { return };
        let Some(p) = m.participants.remove(&order) else { return };
        m.version += 1;
        self.total -= 1;
        self.access_generation += 1;
        self.by_ssrc.remove(&p.info.ssrc.video);
        self.by_ssrc.remove(&p.info.ssrc.audio);
        self.pool_v4.release(p.info.groups.ipv4.group);
        self.pool_v6.release(p.info.groups.ipv6.group);
        info!(meeting, room = %p.info.room, participant = %p.info.id, ?reason, "left");
        self.events.push(Event::Left {
            meeting: meeting.to_string(),
            participant: p.info.id,
            room: p.info.room,
            reason,
        });
    }

    /// Handles one datagram that arrived on the media port from `from`. Returns where to
    /// forward it (its first [`Forward::len`] bytes), or `None` to drop it: not RTP/RTCP, an
    /// unknown SSRC, or a media authentication trailer ([`media_auth`]) that does not verify
    /// with the participant's key or replays a counter. Only an authenticated packet is
    /// forwarded, keeps the participant alive, latches its source address (the newest packet's,
    /// so a NAT rebinding re-latches) or lets its RTCP BYE remove it.
    pub fn handle_packet(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> Option<Forward> {
        let (packet, _, _) = media_auth::split(data)?;
        let kind = peek(packet)?;
        let ssrc = match &kind {
            Peek::Rtp { ssrc } | Peek::Rtcp { ssrc, .. } => *ssrc,
        };
        let (meeting, order) = self.by_ssrc.get(&ssrc)?.clone();
        let m = self.meetings.get_mut(&meeting)?;
        let p = m.participants.get_mut(&order)?;
        let verified = match p.media.verify(data) {
            Ok(v) => v,
            Err(why) => {
                self.media_rejected += 1;
                if self.media_rejected.is_power_of_two() {
                    warn!(%from, ?why, rejected = self.media_rejected, "media that does not authenticate dropped");
                }
                return None;
            }
        };
        if verified.newest && p.latched != Some(from) {
            if let Some(old) = p.latched {
                info!(participant = %p.info.id, %old, new = %from, "media source moved (NAT rebinding): re-latched");
            }
            p.latched = Some(from);
        }
        p.last_seen = now;
        // RTP to the stream's port, RTCP to port + 1 (RFC 3550 §11).
        let base = if ssrc == p.info.ssrc.video { p.info.ports.video } else { p.info.ports.audio };
        let dport = base.wrapping_add(u16::from(matches!(kind, Peek::Rtcp { .. })));
        let fwd = Forward { len: verified.packet.len(), groups: p.info.groups, sport: dport, dport };
        let own = p.info.ssrc;
        if let Peek::Rtcp { pli, .. } = &kind {
            for media in pli {
                self.forward_feedback(now, &meeting, *media, verified.packet);
            }
        }
        if let Peek::Rtcp { bye, .. } = &kind {
            if bye.iter().any(|b| *b == own.video || *b == own.audio) {
                self.remove(&meeting, order, LeaveReason::RtcpBye);
            }
        }
        Some(fwd)
    }

    /// A PLI on `media` reached the service (authenticated, trailer stripped): to its sender's
    /// latched address, sealed with that sender's downlink key so the box knows it came from the
    /// service ([`MediaKey::downlink_from_secret`]), unless one went there less than
    /// [`FEEDBACK_INTERVAL`] ago.
    fn forward_feedback(&mut self, now: Instant, meeting: &str, media: u32, data: &[u8]) {
        let Some((m, order)) = self.by_ssrc.get(&media) else { return };
        if m != meeting {
            return;
        }
        let Some(q) = self.meetings.get_mut(meeting).and_then(|m| m.participants.get_mut(order)) else { return };
        if q.info.ssrc.video != media {
            return; // keyframes are of video
        }
        let Some(addr) = q.latched else { return };
        if q.last_feedback.is_some_and(|t| now < t + FEEDBACK_INTERVAL) {
            return;
        }
        q.last_feedback = Some(now);
        self.transmits.push_back((addr, q.downlink.seal(data)));
    }

    /// The next feedback datagram to send (unicast, to a sender's address, from the media port).
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    /// Media datagrams of a known SSRC dropped because they did not authenticate.
    pub fn media_rejected(&self) -> u64 {
        self.media_rejected
    }

    /// The source address `participant`'s media is latched to (its newest authenticated packet's).
    pub fn latched(&self, meeting: &str, participant: &str) -> Option<SocketAddr> {
        self.meetings.get(meeting)?.participants.values().find(|p| p.info.id == participant)?.latched
    }

    /// The next instant [`Self::handle_timeout`] must be called at.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.meetings
            .values()
            .flat_map(|m| m.participants.values())
            .map(|p| p.last_seen + self.cfg.silence_timeout)
            .min()
    }

    /// Removes participants silent for the silence timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        let silent: Vec<(String, u64)> = self
            .meetings
            .iter()
            .flat_map(|(id, m)| {
                m.participants
                    .iter()
                    .filter(|(_, p)| now >= p.last_seen + self.cfg.silence_timeout)
                    .map(move |(o, _)| (id.clone(), *o))
            })
            .collect();
        for (meeting, order) in silent {
            self.remove(&meeting, order, LeaveReason::Silence);
        }
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
