//! The AMT gateway state machine (RFC 7450 section 5.2): relay discovery, Request/Query
//! handshake, membership updates with IGMPv3/MLDv2 reports for every joined (S,G), periodic
//! refresh on the querier's interval, retransmission with backoff, re-discovery, teardown.
//! Sans-IO: datagrams and time in, datagrams, events and deadlines out.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use tracing::{debug, info};

use crate::group_record::{GroupRecord, RecordType};
use crate::igmp::IgmpV3Report;
use crate::membership::EncapsulatedReport;
use crate::message::{MembershipQuery, MembershipUpdate, Message, MessageType, ResponseMac, Teardown};
use crate::mld::MldV2Report;
use crate::{decapsulate, AmtError, MulticastData, MulticastDataRef, SourceGroup, Transmit};

/// The RFC 7450 relay discovery anycast address (192.52.193.1) and the AMT port (2268).
pub const ANYCAST_RELAY: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 52, 193, 1)), AMT_PORT);
/// The IANA-assigned AMT UDP port.
pub const AMT_PORT: u16 = 2268;

/// Gateway settings; [`Default`] gives RFC-style timers and anycast discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Where Relay Discovery is sent; `None` means the RFC 7450 anycast address [`ANYCAST_RELAY`].
    pub relay: Option<SocketAddr>,
    /// First retransmission delay of Discovery and Request messages (doubles on every retry).
    pub initial_retransmit: Duration,
    /// Upper bound of the retransmission delay.
    pub max_retransmit: Duration,
    /// Requests sent without any Membership Query before the relay is declared lost.
    pub request_retries: u32,
    /// How long the gateway stays in `RelayLost` before discovering again.
    pub relay_lost_holdoff: Duration,
    /// Upper bound on the refresh interval taken from the relay's QQIC (`None`: follow the relay).
    pub max_refresh_interval: Option<Duration>,
    /// Spacing of the retransmissions of state-change reports (IGMPv3/MLDv2 unsolicited report interval).
    pub unsolicited_report_interval: Duration,
    /// How many times each state-change report is sent (robustness variable).
    pub robustness: u8,
    /// Source address of the IGMPv3 reports inside the tunnel.
    pub igmp_source: Ipv4Addr,
    /// Link-local source address of the MLDv2 reports inside the tunnel.
    pub mld_source: Ipv6Addr,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            relay: None,
            initial_retransmit: Duration::from_secs(1),
            max_retransmit: Duration::from_secs(30),
            request_retries: 3,
            relay_lost_holdoff: Duration::from_secs(1),
            max_refresh_interval: None,
            unsolicited_report_interval: Duration::from_secs(1),
            robustness: 2,
            igmp_source: Ipv4Addr::UNSPECIFIED,
            mld_source: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
        }
    }
}

/// What the gateway is doing, for a status display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayState {
    /// Sending Relay Discovery, waiting for an Advertisement.
    Discovering,
    /// Found a relay; sent a Request, waiting for its Membership Query.
    Requesting {
        /// The relay.
        relay: SocketAddr,
    },
    /// Tunnel established: the relay's MAC is known, joined groups are reported and refreshed.
    Joined {
        /// The relay.
        relay: SocketAddr,
    },
    /// The relay stopped answering; discovery restarts at `retry_at`.
    RelayLost {
        /// When discovery starts again.
        retry_at: Instant,
    },
    /// [`Gateway::close`] was called; nothing more is sent.
    Closed,
}

/// Something the driver should act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayEvent {
    /// A multicast UDP datagram of a joined (S,G).
    Data(MulticastData),
    /// The gateway state changed.
    StateChanged(GatewayState),
}

/// Refresh interval used until the relay's first query tells us its QQIC (RFC 3376 default).
const DEFAULT_QUERY_INTERVAL: Duration = Duration::from_secs(125);

/// What the gateway is doing internally (richer than [`GatewayState`]).
#[derive(Debug, Clone)]
enum Phase {
    Discovering {
        attempts: u32,
        next_send: Instant,
    },
    Requesting {
        relay: SocketAddr,
        attempts: u32,
        next_send: Instant,
    },
    Joined {
        relay: SocketAddr,
        mac: ResponseMac,
        /// Gateway address/port the relay saw (G flag), needed for Teardown.
        seen_as: Option<SocketAddr>,
        /// When the next refresh Request is due.
        next_request: Instant,
        /// Refresh Request outstanding: (attempts, retransmit deadline).
        refresh: Option<(u32, Instant)>,
        /// Query interval in use.
        interval: Duration,
    },
    RelayLost {
        retry_at: Instant,
    },
    Closed,
}

/// A state-change report still to be (re)sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    join: bool,
    remaining: u8,
}

/// The AMT gateway state machine.
///
/// Life cycle: `Discovering` (Relay Discovery with backoff) → `Requesting` (Request with a
/// fresh random nonce, backoff) → `Joined` (Membership Query received: its MAC authenticates
/// Membership Updates carrying IGMPv3/MLDv2 reports of every joined (S,G); a new Request is
/// sent every query interval, and every Query is answered with a current-state report, so a
/// restarted relay (new MAC) is re-joined at the next refresh). Unanswered Requests lead to
/// `RelayLost` and discovery again with a new nonce.
#[derive(Debug)]
pub struct Gateway {
    config: GatewayConfig,
    phase: Phase,
    state: GatewayState,
    discovery_nonce: u32,
    request_nonce: u32,
    groups: BTreeSet<SourceGroup>,
    pending: BTreeMap<SourceGroup, Pending>,
    next_report: Option<Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<GatewayEvent>,
}

impl Gateway {
    /// Creates a gateway; the first Relay Discovery is queued immediately.
    pub fn new(config: GatewayConfig, now: Instant) -> Self {
        let mut g = Gateway {
            config,
            phase: Phase::Closed,
            state: GatewayState::Closed,
            discovery_nonce: 0,
            request_nonce: 0,
            groups: BTreeSet::new(),
            pending: BTreeMap::new(),
            next_report: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        g.start_discovery(now);
        g
    }

    /// The configuration.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// Where discovery goes.
    fn discovery_target(&self) -> SocketAddr {
        self.config.relay.unwrap_or(ANYCAST_RELAY)
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32.checked_shl(attempts.min(20)).unwrap_or(u32::MAX);
        self.config.initial_retransmit.saturating_mul(factor).min(self.config.max_retransmit)
    }

    fn send(&mut self, to: SocketAddr, msg: &Message) {
        match msg.to_bytes() {
            Ok(payload) => self.transmits.push_back(Transmit { destination: to, payload }),
            // Only reachable with absurd group counts; nothing sensible can be sent then.
            Err(e) => debug!(error = %e, "could not encode {}", msg.message_type().name()),
        }
    }

    fn set_phase(&mut self, phase: Phase) {
        let state = match &phase {
            Phase::Discovering { .. } => GatewayState::Discovering,
            Phase::Requesting { relay, .. } => GatewayState::Requesting { relay: *relay },
            Phase::Joined { relay, .. } => GatewayState::Joined { relay: *relay },
            Phase::RelayLost { retry_at } => GatewayState::RelayLost { retry_at: *retry_at },
            Phase::Closed => GatewayState::Closed,
        };
        self.phase = phase;
        if state != self.state {
            info!(?state, "AMT gateway state");
            self.state = state.clone();
            self.events.push_back(GatewayEvent::StateChanged(state));
        }
    }

    fn start_discovery(&mut self, now: Instant) {
        self.discovery_nonce = rand::random();
        let target = self.discovery_target();
        self.send(target, &Message::RelayDiscovery { nonce: self.discovery_nonce });
        let next_send = now + self.backoff(0);
        self.set_phase(Phase::Discovering { attempts: 1, next_send });
    }

    /// P flag of our Requests: MLD only when every joined group is IPv6.
    fn wants_mld(&self) -> bool {
        !self.groups.is_empty() && self.groups.iter().all(|sg| !sg.is_ipv4())
    }

    fn send_request(&mut self, relay: SocketAddr) {
        let msg = Message::Request { nonce: self.request_nonce, mld: self.wants_mld() };
        self.send(relay, &msg);
    }

    /// Starts a new tunnel with `relay`: fresh random nonce, Request sent now.
    fn start_request(&mut self, relay: SocketAddr, now: Instant) {
        self.request_nonce = rand::random();
        self.pending.clear();
        self.next_report = None;
        self.send_request(relay);
        let next_send = now + self.backoff(0);
        self.set_phase(Phase::Requesting { relay, attempts: 1, next_send });
    }

    fn relay_lost(&mut self, now: Instant, holdoff: Duration) {
        self.pending.clear();
        self.next_report = None;
        self.set_phase(Phase::RelayLost { retry_at: now + holdoff });
    }

    /// Joins (S,G): it is reported to the relay now (if a tunnel is up) and on every refresh.
    pub fn join(&mut self, sg: SourceGroup, now: Instant) -> Result<(), AmtError> {
        sg.validate()?;
        if matches!(self.phase, Phase::Closed) {
            return Err(AmtError::Closed);
        }
        if !self.groups.insert(sg) {
            return Ok(());
        }
        if matches!(self.phase, Phase::Joined { .. }) {
            self.pending.insert(sg, Pending { join: true, remaining: self.config.robustness.max(1) });
            self.send_pending(now);
        }
        Ok(())
    }

    /// Leaves (S,G). Leaving the last group sends the leave report and a Teardown, then starts
    /// a fresh (empty) tunnel with a new nonce so the relay holds no state for this gateway.
    pub fn leave(&mut self, sg: SourceGroup, now: Instant) {
        if !self.groups.remove(&sg) {
            return;
        }
        let Phase::Joined { relay, mac, seen_as, .. } = self.phase.clone() else {
            return;
        };
        self.pending.insert(sg, Pending { join: false, remaining: self.config.robustness.max(1) });
        if self.groups.is_empty() {
            if let Some(gateway) = seen_as {
                // One leave report, then Teardown; the relay forgets the tunnel.
                self.pending.retain(|_, p| !p.join);
                self.send_report(relay, mac, &self.pending_records_all(), now);
                self.send(relay, &Message::Teardown(Teardown { mac, nonce: self.request_nonce, gateway }));
                self.start_request(relay, now);
                return;
            }
        }
        self.send_pending(now);
    }

    fn pending_records_all(&self) -> Vec<(SourceGroup, RecordType)> {
        self.pending
            .iter()
            .map(|(sg, p)| (*sg, if p.join { RecordType::AllowNewSources } else { RecordType::BlockOldSources }))
            .collect()
    }

    /// Sends one round of the pending state-change reports and schedules the next.
    fn send_pending(&mut self, now: Instant) {
        let Phase::Joined { relay, mac, .. } = self.phase else { return };
        let records = self.pending_records_all();
        if records.is_empty() {
            self.next_report = None;
            return;
        }
        self.send_report(relay, mac, &records, now);
        for p in self.pending.values_mut() {
            p.remaining = p.remaining.saturating_sub(1);
        }
        self.pending.retain(|_, p| p.remaining > 0);
        self.next_report = if self.pending.is_empty() { None } else { Some(now + self.config.unsolicited_report_interval) };
    }

    /// Sends Membership Update(s): one IGMPv3 report for IPv4 (S,G)s, one MLDv2 report for IPv6.
    fn send_report(&mut self, relay: SocketAddr, mac: ResponseMac, records: &[(SourceGroup, RecordType)], _now: Instant) {
        let mut v4: BTreeMap<(u8, Ipv4Addr), Vec<Ipv4Addr>> = BTreeMap::new();
        let mut v6: BTreeMap<(u8, Ipv6Addr), Vec<Ipv6Addr>> = BTreeMap::new();
        for (sg, ty) in records {
            match (sg.source, sg.group) {
                (IpAddr::V4(s), IpAddr::V4(g)) => v4.entry((ty.to_u8(), g)).or_default().push(s),
                (IpAddr::V6(s), IpAddr::V6(g)) => v6.entry((ty.to_u8(), g)).or_default().push(s),
                _ => {}
            }
        }
        let nonce = self.request_nonce;
        if !v4.is_empty() {
            let records = v4
                .into_iter()
                .map(|((ty, group), sources)| GroupRecord { record_type: RecordType::from_u8(ty), group, sources })
                .collect();
            let report = EncapsulatedReport::Igmp { source: self.config.igmp_source, report: IgmpV3Report { records } };
            self.send(relay, &Message::MembershipUpdate(MembershipUpdate { mac, nonce, report }));
        }
        if !v6.is_empty() {
            let records = v6
                .into_iter()
                .map(|((ty, group), sources)| GroupRecord { record_type: RecordType::from_u8(ty), group, sources })
                .collect();
            let report = EncapsulatedReport::Mld { source: self.config.mld_source, report: MldV2Report { records } };
            self.send(relay, &Message::MembershipUpdate(MembershipUpdate { mac, nonce, report }));
        }
    }

    /// The joined (S,G)s, sorted.
    pub fn groups(&self) -> impl Iterator<Item = &SourceGroup> + '_ {
        self.groups.iter()
    }

    /// True if `sg` is joined.
    pub fn is_joined(&self, sg: &SourceGroup) -> bool {
        self.groups.contains(sg)
    }

    /// The request nonce of the current tunnel (for status displays and tests).
    pub fn request_nonce(&self) -> u32 {
        self.request_nonce
    }

    /// Handles one datagram received on the gateway's AMT socket.
    ///
    /// Data for joined groups becomes [`GatewayEvent::Data`]; control messages drive the state
    /// machine. Errors name why a datagram was ignored; the state is unchanged by them.
    pub fn handle_datagram(&mut self, from: SocketAddr, datagram: &[u8], now: Instant) -> Result<(), AmtError> {
        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
        if matches!(self.phase, Phase::Closed) {
            return Err(AmtError::Closed);
        }
        if MessageType::of(datagram)? == MessageType::MulticastData {
            if let Some(data) = self.accept_data(from, datagram)? {
                self.events.push_back(GatewayEvent::Data(data.to_owned()));
            }
            return Ok(());
        }
        match Message::decode(datagram)? {
            Message::RelayAdvertisement { nonce, relay } => self.handle_advertisement(from, nonce, relay, now),
            Message::MembershipQuery(q) => self.handle_query(from, q, now),
            other => Err(AmtError::UnexpectedMessage { message: other.message_type().name(), from }),
        }
    }

    fn handle_advertisement(&mut self, from: SocketAddr, nonce: u32, relay: IpAddr, now: Instant) -> Result<(), AmtError> {
        if nonce != self.discovery_nonce {
            return Err(AmtError::NonceMismatch { expected: self.discovery_nonce, got: nonce });
        }
        let ip = if relay.is_unspecified() { from.ip() } else { relay.to_canonical() };
        let relay = SocketAddr::new(ip, from.port());
        match self.phase.clone() {
            Phase::Discovering { .. } => {
                debug!(%relay, "relay advertised");
                self.start_request(relay, now);
                Ok(())
            }
            Phase::Requesting { relay: current, .. } | Phase::Joined { relay: current, .. } if current != relay => {
                // A different relay answered our discovery: move the tunnel there cleanly.
                info!(old = %current, new = %relay, "switching to a new relay");
                if let Phase::Joined { mac, seen_as: Some(gateway), .. } = self.phase {
                    self.send(current, &Message::Teardown(Teardown { mac, nonce: self.request_nonce, gateway }));
                }
                self.start_request(relay, now);
                Ok(())
            }
            _ => Ok(()), // duplicate advertisement
        }
    }

    fn handle_query(&mut self, from: SocketAddr, q: MembershipQuery, now: Instant) -> Result<(), AmtError> {
        let (relay, old_mac) = match &self.phase {
            Phase::Requesting { relay, .. } => (*relay, None),
            Phase::Joined { relay, mac, .. } => (*relay, Some(*mac)),
            _ => return Err(AmtError::UnexpectedMessage { message: "Membership Query", from }),
        };
        if from != relay {
            return Err(AmtError::UnexpectedMessage { message: "Membership Query from a host that is not our relay", from });
        }
        if q.nonce != self.request_nonce {
            return Err(AmtError::NonceMismatch { expected: self.request_nonce, got: q.nonce });
        }
        if q.limit && old_mac.is_none() && !self.groups.is_empty() {
            // The relay accepts no new tunnels: look for another one later.
            info!(%relay, "relay is at its tunnel limit (L flag)");
            let holdoff = self.config.max_retransmit;
            self.relay_lost(now, holdoff);
            return Ok(());
        }
        if old_mac.is_some_and(|m| m != q.mac) {
            info!(%relay, "relay MAC changed (relay restart or secret rotation): re-reporting");
        }
        let (qi, _qrv) = q.query.interval_and_robustness();
        let mut interval = if qi.is_zero() { DEFAULT_QUERY_INTERVAL } else { qi };
        if let Some(max) = self.config.max_refresh_interval {
            interval = interval.min(max);
        }
        self.set_phase(Phase::Joined {
            relay,
            mac: q.mac,
            seen_as: q.gateway,
            next_request: now + interval,
            refresh: None,
            interval,
        });
        // Answer the general query with the current state of every joined (S,G).
        let records: Vec<(SourceGroup, RecordType)> =
            self.groups.iter().map(|sg| (*sg, RecordType::ModeIsInclude)).collect();
        if !records.is_empty() {
            self.send_report(relay, q.mac, &records, now);
        }
        Ok(())
    }

    /// Fast path for data: if `datagram` is Multicast Data from the current relay for a joined
    /// (S,G), returns it borrowed (no event is queued). Returns `Ok(None)` for any other AMT
    /// message type, which the caller then passes to [`Gateway::handle_datagram`].
    pub fn accept_data<'a>(&self, from: SocketAddr, datagram: &'a [u8]) -> Result<Option<MulticastDataRef<'a>>, AmtError> {
        if MessageType::of(datagram)? != MessageType::MulticastData {
            return Ok(None);
        }
        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
        match self.phase {
            Phase::Joined { relay, .. } | Phase::Requesting { relay, .. } if relay == from => {}
            _ => return Err(AmtError::UnexpectedMessage { message: "Multicast Data from a host that is not our relay", from }),
        }
        let data = decapsulate(datagram)?;
        if !self.groups.contains(&data.source_group()) {
            return Err(AmtError::UnexpectedMessage { message: "Multicast Data for an (S,G) not joined", from });
        }
        Ok(Some(data))
    }

    /// Runs timers that are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.phase.clone() {
            Phase::Discovering { attempts, next_send } if now >= next_send => {
                let target = self.discovery_target();
                self.send(target, &Message::RelayDiscovery { nonce: self.discovery_nonce });
                let next_send = now + self.backoff(attempts);
                self.phase = Phase::Discovering { attempts: attempts + 1, next_send };
            }
            Phase::Requesting { relay, attempts, next_send } if now >= next_send => {
                if attempts >= self.config.request_retries.max(1) {
                    info!(%relay, "relay does not answer Requests");
                    let holdoff = self.config.relay_lost_holdoff;
                    self.relay_lost(now, holdoff);
                } else {
                    self.send_request(relay);
                    let next_send = now + self.backoff(attempts);
                    self.phase = Phase::Requesting { relay, attempts: attempts + 1, next_send };
                }
            }
            Phase::Joined { relay, mac, seen_as, next_request, refresh, interval } => {
                match refresh {
                    None if now >= next_request => {
                        self.send_request(relay);
                        let r = Some((1, now + self.backoff(0)));
                        self.phase = Phase::Joined { relay, mac, seen_as, next_request, refresh: r, interval };
                    }
                    Some((attempts, deadline)) if now >= deadline => {
                        if attempts >= self.config.request_retries.max(1) {
                            info!(%relay, "relay stopped answering refresh Requests");
                            let holdoff = self.config.relay_lost_holdoff;
                            self.relay_lost(now, holdoff);
                            return;
                        }
                        self.send_request(relay);
                        let r = Some((attempts + 1, now + self.backoff(attempts)));
                        self.phase = Phase::Joined { relay, mac, seen_as, next_request, refresh: r, interval };
                    }
                    _ => {}
                }
                if self.next_report.is_some_and(|t| now >= t) {
                    self.send_pending(now);
                }
            }
            Phase::RelayLost { retry_at } if now >= retry_at => self.start_discovery(now),
            _ => {}
        }
    }

    /// The next instant [`Gateway::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Discovering { next_send, .. } | Phase::Requesting { next_send, .. } => Some(*next_send),
            Phase::Joined { next_request, refresh, .. } => {
                let t = refresh.map(|(_, d)| d).unwrap_or(*next_request);
                Some(self.next_report.map_or(t, |r| r.min(t)))
            }
            Phase::RelayLost { retry_at } => Some(*retry_at),
            Phase::Closed => None,
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<GatewayEvent> {
        self.events.pop_front()
    }

    /// The current state.
    pub fn state(&self) -> &GatewayState {
        &self.state
    }

    /// The relay in use, if one was found.
    pub fn relay(&self) -> Option<SocketAddr> {
        match self.state {
            GatewayState::Requesting { relay } | GatewayState::Joined { relay } => Some(relay),
            _ => None,
        }
    }

    /// Leaves every group (one leave report), sends a Teardown if the relay told us how it
    /// sees us (G flag), and stops: nothing more is sent, every later call is a no-op.
    pub fn close(&mut self, now: Instant) {
        if let Phase::Joined { relay, mac, seen_as, .. } = self.phase {
            let records: Vec<(SourceGroup, RecordType)> =
                self.groups.iter().map(|sg| (*sg, RecordType::BlockOldSources)).collect();
            if !records.is_empty() {
                self.send_report(relay, mac, &records, now);
            }
            if let Some(gateway) = seen_as {
                self.send(relay, &Message::Teardown(Teardown { mac, nonce: self.request_nonce, gateway }));
            }
        }
        self.groups.clear();
        self.pending.clear();
        self.next_report = None;
        self.set_phase(Phase::Closed);
    }
}
