//! The AMT gateway state machine (RFC 7450 section 5.2): relay discovery, Request/Query
//! handshake, membership updates with IGMPv3/MLDv2 reports for every joined (S,G), periodic
//! refresh on the querier's interval, retransmission with backoff, re-discovery, teardown.
//! Sans-IO: datagrams and time in, datagrams, events and deadlines out.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::Rng;

use tracing::{debug, info};

use crate::wire::group_record::{GroupRecord, RecordType};
use crate::wire::igmp::IgmpV3Report;
use crate::wire::membership::{EncapsulatedQuery, EncapsulatedReport};
use crate::wire::message::{MembershipQuery, MembershipUpdate, Message, MessageType, ResponseMac, Teardown};
use crate::wire::mld::MldV2Report;
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
    /// Upper bound of the retransmission delay (kept short: a lost relay is looked for at
    /// least this often, so a restarted one is found quickly).
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
    /// When joined to at least one group and no data arrived for this long, send an early
    /// refresh Request (probe) instead of waiting for the query interval, so a restarted relay
    /// (which lost our memberships) is re-joined within about twice this delay. The probe
    /// interval doubles while the silence lasts, up to the query interval. `None` disables.
    pub silence_probe: Option<Duration>,
    /// Source address of the IGMPv3 reports inside the tunnel.
    pub igmp_source: Ipv4Addr,
    /// Link-local source address of the MLDv2 reports inside the tunnel.
    pub mld_source: Ipv6Addr,
    /// Send Requests to the address the Relay Advertisement names (RFC 7450 §5.1.2; the
    /// default). When false, to the address it came from: for a relay behind NAT that advertises
    /// the address its other clients reach it by (the QEMU demo host, `--advertise 10.0.2.2`).
    pub follow_advertised_address: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            relay: None,
            initial_retransmit: Duration::from_secs(1),
            max_retransmit: Duration::from_secs(4),
            request_retries: 3,
            relay_lost_holdoff: Duration::from_secs(1),
            max_refresh_interval: None,
            unsolicited_report_interval: Duration::from_secs(1),
            robustness: 2,
            silence_probe: Some(Duration::from_secs(1)),
            igmp_source: Ipv4Addr::UNSPECIFIED,
            mld_source: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
            follow_advertised_address: true,
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
    /// [`Gateway::handle_close`] was called; nothing more is sent.
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

/// True if `a` and `b` are the same UDP endpoint, treating IPv4-mapped IPv6 as IPv4.
fn same_endpoint(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
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
    /// Set by the data path, cleared by the silence probe timer.
    data_seen: Cell<bool>,
    /// Next silence check and the current probe spacing.
    probe_at: Option<Instant>,
    probe_gap: Duration,
    transmits: VecDeque<Transmit>,
    events: VecDeque<GatewayEvent>,
    /// Draws the discovery and request nonces.
    rng: StdRng,
}

impl Gateway {
    /// Creates a gateway whose nonces `rng` draws: drivers seed it from the operating system
    /// (`StdRng::from_os_rng()`), tests from a fixed seed. The first Relay Discovery is queued
    /// immediately. Retransmission delays are clamped to at least 10 ms.
    pub fn new(mut config: GatewayConfig, rng: StdRng, now: Instant) -> Self {
        config.initial_retransmit = config.initial_retransmit.max(Duration::from_millis(10));
        config.max_retransmit = config.max_retransmit.max(config.initial_retransmit);
        let mut g = Gateway {
            config,
            phase: Phase::Closed,
            state: GatewayState::Closed,
            discovery_nonce: 0,
            request_nonce: 0,
            groups: BTreeSet::new(),
            pending: BTreeMap::new(),
            next_report: None,
            data_seen: Cell::new(false),
            probe_at: None,
            probe_gap: Duration::ZERO,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            rng,
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
            Ok(payload) => self.transmits.push_back(Transmit { destination: to, payload, source: None }),
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
            // Logged once, by the driver that polls the event (roomcast_net).
            self.state = state.clone();
            self.events.push_back(GatewayEvent::StateChanged(state));
        }
    }

    fn start_discovery(&mut self, now: Instant) {
        self.discovery_nonce = self.rng.random();
        let target = self.discovery_target();
        self.send(target, &Message::RelayDiscovery { nonce: self.discovery_nonce });
        let next_send = now + self.backoff(0);
        self.set_phase(Phase::Discovering { attempts: 1, next_send });
    }

    /// P flags of our Requests (RFC 7450 5.1.3.4: the relay answers with the query protocol
    /// asked for): P=0 (IGMPv3) when an IPv4 (S,G) is joined or none is, P=1 (MLDv2) when an
    /// IPv6 one is; a gateway with both families sends both Requests, same nonce.
    fn request_protocols(&self) -> (bool, bool) {
        let v6 = self.groups.iter().any(|sg| !sg.is_ipv4());
        let v4 = self.groups.iter().any(SourceGroup::is_ipv4) || !v6;
        (v4, v6)
    }

    fn send_request(&mut self, relay: SocketAddr) {
        let (v4, v6) = self.request_protocols();
        let nonce = self.request_nonce;
        if v4 {
            self.send(relay, &Message::Request { nonce, mld: false });
        }
        if v6 {
            self.send(relay, &Message::Request { nonce, mld: true });
        }
    }

    /// Starts a new tunnel with `relay`: fresh random nonce, Request sent now.
    fn start_request(&mut self, relay: SocketAddr, now: Instant) {
        self.request_nonce = self.rng.random();
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
    pub fn handle_join(&mut self, now: Instant, sg: SourceGroup) -> Result<(), AmtError> {
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
    pub fn handle_leave(&mut self, now: Instant, sg: SourceGroup) {
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
        self.next_report =
            if self.pending.is_empty() { None } else { Some(now + self.config.unsolicited_report_interval) };
    }

    /// Sends Membership Update(s): one IGMPv3 report for IPv4 (S,G)s, one MLDv2 report for IPv6.
    fn send_report(
        &mut self,
        relay: SocketAddr,
        mac: ResponseMac,
        records: &[(SourceGroup, RecordType)],
        _now: Instant,
    ) {
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
    ///
    /// An IPv4-mapped IPv6 sender (dual-stack socket) is the same host as its IPv4 form.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) -> Result<(), AmtError> {
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

    fn handle_advertisement(
        &mut self,
        from: SocketAddr,
        nonce: u32,
        relay: IpAddr,
        now: Instant,
    ) -> Result<(), AmtError> {
        if nonce != self.discovery_nonce {
            return Err(AmtError::NonceMismatch { expected: self.discovery_nonce, got: nonce });
        }
        let ip = if relay.is_unspecified() || !self.config.follow_advertised_address {
            from.ip()
        } else {
            relay.to_canonical()
        };
        // Talk to the relay in the address family of the socket the advertisement came in on.
        let ip = match (ip, from.ip()) {
            (IpAddr::V4(v4), IpAddr::V6(_)) => IpAddr::V6(v4.to_ipv6_mapped()),
            (ip, _) => ip,
        };
        let relay = SocketAddr::new(ip, from.port());
        match self.phase.clone() {
            Phase::Discovering { .. } => {
                debug!(%relay, "relay advertised");
                self.start_request(relay, now);
                Ok(())
            }
            Phase::Requesting { relay: current, .. } | Phase::Joined { relay: current, .. }
                if !same_endpoint(current, relay) =>
            {
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
        if !same_endpoint(from, relay) {
            return Err(AmtError::UnexpectedMessage {
                message: "Membership Query from a host that is not our relay",
                from,
            });
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
        if old_mac.is_none() {
            self.reset_probe(now);
        }
        self.set_phase(Phase::Joined {
            relay,
            mac: q.mac,
            seen_as: q.gateway,
            next_request: now + interval,
            refresh: None,
            interval,
        });
        // Answer the general query with the current state of every joined (S,G) of its own
        // protocol: an IGMPv3 query gets the IPv4 channels, an MLDv2 query the IPv6 ones.
        let mld = matches!(q.query, EncapsulatedQuery::Mld { .. });
        let records: Vec<(SourceGroup, RecordType)> =
            self.groups.iter().filter(|sg| sg.is_ipv4() != mld).map(|sg| (*sg, RecordType::ModeIsInclude)).collect();
        if !records.is_empty() {
            self.send_report(relay, q.mac, &records, now);
        }
        Ok(())
    }

    /// Restarts silence detection with the initial probe spacing.
    fn reset_probe(&mut self, now: Instant) {
        self.data_seen.set(false);
        self.probe_gap = self.config.silence_probe.unwrap_or(Duration::ZERO);
        self.probe_at = self.config.silence_probe.map(|d| now + d);
    }

    /// Silence probe timer: if no data arrived since the last check, refresh early.
    fn check_silence(&mut self, now: Instant) {
        let (Some(at), Some(base)) = (self.probe_at, self.config.silence_probe) else { return };
        if now < at {
            return;
        }
        let Phase::Joined { relay, mac, seen_as, next_request, refresh, interval } = self.phase else { return };
        if self.data_seen.replace(false) || self.groups.is_empty() {
            self.probe_gap = base;
        } else {
            if refresh.is_none() {
                debug!(%relay, "no data for {:?}: probing the relay", self.probe_gap);
                self.send_request(relay);
                let r = Some((1, now + self.backoff(0)));
                self.phase = Phase::Joined { relay, mac, seen_as, next_request, refresh: r, interval };
            }
            self.probe_gap = (self.probe_gap * 2).min(interval.max(base));
        }
        self.probe_at = Some(now + self.probe_gap);
    }

    /// Fast path for data: if `datagram` is Multicast Data from the current relay for a joined
    /// (S,G), returns it borrowed (no event is queued). Returns `Ok(None)` for any other AMT
    /// message type, which the caller then passes to [`Gateway::handle_datagram`].
    pub fn accept_data<'a>(
        &self,
        from: SocketAddr,
        datagram: &'a [u8],
    ) -> Result<Option<MulticastDataRef<'a>>, AmtError> {
        if MessageType::of(datagram)? != MessageType::MulticastData {
            return Ok(None);
        }
        match self.phase {
            Phase::Joined { relay, .. } | Phase::Requesting { relay, .. } if same_endpoint(relay, from) => {}
            _ => {
                return Err(AmtError::UnexpectedMessage {
                    message: "Multicast Data from a host that is not our relay",
                    from,
                })
            }
        }
        let data = decapsulate(datagram)?;
        if !self.groups.contains(&data.source_group()) {
            return Err(AmtError::UnexpectedMessage { message: "Multicast Data for an (S,G) not joined", from });
        }
        self.data_seen.set(true);
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
                self.check_silence(now);
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
                let t = self.next_report.map_or(t, |r| r.min(t));
                Some(self.probe_at.map_or(t, |p| p.min(t)))
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
    pub fn handle_close(&mut self, now: Instant) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::igmp::IgmpV3Query;
    use crate::wire::mld::MldV2Query;

    const RELAY: &str = "192.0.2.1:2268";
    const ME: &str = "198.51.100.9:40000";

    fn relay() -> SocketAddr {
        RELAY.parse().unwrap()
    }

    fn sg(s: &str) -> SourceGroup {
        s.parse().unwrap()
    }

    /// A fixed seed: every run draws the same nonces.
    fn rng() -> StdRng {
        rand::SeedableRng::seed_from_u64(7)
    }

    fn cfg() -> GatewayConfig {
        GatewayConfig {
            relay: Some(relay()),
            initial_retransmit: Duration::from_secs(1),
            max_retransmit: Duration::from_secs(8),
            request_retries: 3,
            relay_lost_holdoff: Duration::from_secs(2),
            silence_probe: None,
            ..GatewayConfig::default()
        }
    }

    fn drain(g: &mut Gateway) -> Vec<(SocketAddr, Message)> {
        std::iter::from_fn(|| g.poll_transmit())
            .map(|t| (t.destination, Message::decode(&t.payload).expect("gateway emits valid messages")))
            .collect()
    }

    fn events(g: &mut Gateway) -> Vec<GatewayEvent> {
        std::iter::from_fn(|| g.poll_event()).collect()
    }

    fn discovery_nonce(msgs: &[(SocketAddr, Message)]) -> u32 {
        match msgs {
            [(_, Message::RelayDiscovery { nonce })] => *nonce,
            other => panic!("expected one discovery, got {other:?}"),
        }
    }

    fn query(nonce: u32, mac: [u8; 6], qqic_secs: u64, limit: bool) -> Vec<u8> {
        Message::MembershipQuery(MembershipQuery {
            limit,
            mac: ResponseMac(mac),
            nonce,
            query: EncapsulatedQuery::Igmp {
                source: Ipv4Addr::new(192, 0, 2, 1),
                query: IgmpV3Query::general(Duration::from_secs(qqic_secs), Duration::from_secs(10), 2),
            },
            gateway: Some(ME.parse().unwrap()),
        })
        .to_bytes()
        .unwrap()
    }

    /// Drives a gateway to Requesting and returns its request nonce.
    fn to_requesting(g: &mut Gateway, t: Instant) -> u32 {
        let n = discovery_nonce(&drain(g));
        let adv = Message::RelayAdvertisement { nonce: n, relay: relay().ip() }.to_bytes().unwrap();
        g.handle_datagram(t, relay(), &adv).unwrap();
        match drain(g).as_slice() {
            [(to, Message::Request { nonce, .. })] => {
                assert_eq!(*to, relay());
                *nonce
            }
            // Channels of both families: a P=0 and a P=1 request of the same tunnel.
            [(a, Message::Request { nonce, mld: false }), (b, Message::Request { nonce: n6, mld: true })]
                if n6 == nonce && *a == relay() && *b == relay() =>
            {
                *nonce
            }
            other => panic!("expected a request, got {other:?}"),
        }
    }

    fn to_joined(g: &mut Gateway, t: Instant, qqic: u64) -> (u32, Vec<(SocketAddr, Message)>) {
        let nonce = to_requesting(g, t);
        g.handle_datagram(t, relay(), &query(nonce, [1, 2, 3, 4, 5, 6], qqic, false)).unwrap();
        assert_eq!(g.state(), &GatewayState::Joined { relay: relay() });
        (nonce, drain(g))
    }

    #[test]
    fn discovery_goes_to_anycast_by_default() {
        let t0 = Instant::now();
        let mut g = Gateway::new(GatewayConfig::default(), rng(), t0);
        let msgs = drain(&mut g);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].0, "192.52.193.1:2268".parse().unwrap());
        assert_eq!(events(&mut g), vec![GatewayEvent::StateChanged(GatewayState::Discovering)]);
    }

    #[test]
    fn discovery_retransmits_with_exponential_backoff() {
        let t0 = Instant::now();
        let mut g = Gateway::new(cfg(), rng(), t0);
        let n = discovery_nonce(&drain(&mut g));
        let mut t = t0;
        for expected_gap in [1u64, 2, 4, 8, 8, 8] {
            let next = g.poll_timeout().unwrap();
            assert_eq!(next - t, Duration::from_secs(expected_gap));
            g.handle_timeout(next - Duration::from_millis(1));
            assert!(g.poll_transmit().is_none(), "nothing before the deadline");
            g.handle_timeout(next);
            assert_eq!(discovery_nonce(&drain(&mut g)), n, "retransmission keeps the nonce");
            t = next;
        }
        assert_eq!(g.state(), &GatewayState::Discovering);
    }

    #[test]
    fn silence_probes_back_off_and_data_resets_them() {
        let t0 = Instant::now();
        let mut g = Gateway::new(GatewayConfig { silence_probe: Some(Duration::from_secs(1)), ..cfg() }, rng(), t0);
        let a = sg("10.0.0.1@232.1.1.1");
        g.handle_join(t0, a).unwrap();
        let (nonce, _) = to_joined(&mut g, t0, 125);
        let requests_at = |g: &mut Gateway, t: Instant| -> usize {
            g.handle_timeout(t);
            drain(g).iter().filter(|(_, m)| matches!(m, Message::Request { .. })).count()
        };
        let secs = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(g.poll_timeout(), Some(secs(1)));
        assert_eq!(requests_at(&mut g, secs(1)), 1, "silent for 1 s: probe");
        g.handle_datagram(secs(1), relay(), &query(nonce, [1, 2, 3, 4, 5, 6], 125, false)).unwrap();
        assert!(matches!(drain(&mut g).as_slice(), [(_, Message::MembershipUpdate(_))]), "re-reported");
        assert_eq!(g.poll_timeout(), Some(secs(3)), "probe spacing doubled");
        assert_eq!(requests_at(&mut g, secs(3)), 1);
        g.handle_datagram(secs(3), relay(), &query(nonce, [1, 2, 3, 4, 5, 6], 125, false)).unwrap();
        drain(&mut g);
        // Data arrives: the next check sees it and sends nothing; spacing is back to 1 s.
        let mut pkt = Vec::new();
        crate::encapsulate(&a, 1, 5004, b"x", &mut pkt).unwrap();
        g.handle_datagram(secs(4), relay(), &pkt).unwrap();
        assert_eq!(g.poll_timeout(), Some(secs(7)));
        assert_eq!(requests_at(&mut g, secs(7)), 0);
        assert_eq!(g.poll_timeout(), Some(secs(8)));
        assert_eq!(requests_at(&mut g, secs(8)), 1, "silent again");
    }

    #[test]
    fn no_silence_probe_without_groups() {
        let t0 = Instant::now();
        let mut g = Gateway::new(GatewayConfig { silence_probe: Some(Duration::from_secs(1)), ..cfg() }, rng(), t0);
        to_joined(&mut g, t0, 125);
        for s in 1..10 {
            g.handle_timeout(t0 + Duration::from_secs(s));
        }
        assert!(drain(&mut g).is_empty());
    }

    #[test]
    fn zero_retransmit_delay_is_clamped() {
        let t0 = Instant::now();
        let g = Gateway::new(
            GatewayConfig { initial_retransmit: Duration::ZERO, max_retransmit: Duration::ZERO, ..cfg() },
            rng(),
            t0,
        );
        assert_eq!(g.poll_timeout(), Some(t0 + Duration::from_millis(10)));
    }

    #[test]
    fn advertisement_with_wrong_nonce_is_ignored() {
        let t0 = Instant::now();
        let mut g = Gateway::new(cfg(), rng(), t0);
        let n = discovery_nonce(&drain(&mut g));
        let adv = Message::RelayAdvertisement { nonce: n.wrapping_add(1), relay: relay().ip() }.to_bytes().unwrap();
        assert!(matches!(g.handle_datagram(t0, relay(), &adv), Err(AmtError::NonceMismatch { .. })));
        assert_eq!(g.state(), &GatewayState::Discovering);
        assert!(drain(&mut g).is_empty());
    }

    #[test]
    fn advertisement_starts_request_with_random_nonce() {
        let t0 = Instant::now();
        let mut a = Gateway::new(cfg(), rand::SeedableRng::seed_from_u64(1), t0);
        let mut b = Gateway::new(cfg(), rand::SeedableRng::seed_from_u64(2), t0);
        let na = to_requesting(&mut a, t0);
        let nb = to_requesting(&mut b, t0);
        assert_ne!(na, nb, "nonces come from the RNG");
        let mut c = Gateway::new(cfg(), rand::SeedableRng::seed_from_u64(1), t0);
        assert_eq!(to_requesting(&mut c, t0), na, "the same seed draws the same nonces");
        assert_eq!(a.state(), &GatewayState::Requesting { relay: relay() });
        assert_eq!(a.request_nonce(), na);
    }

    #[test]
    fn unspecified_advertised_address_means_sender() {
        let t0 = Instant::now();
        let mut g = Gateway::new(cfg(), rng(), t0);
        let n = discovery_nonce(&drain(&mut g));
        let adv = Message::RelayAdvertisement { nonce: n, relay: Ipv4Addr::UNSPECIFIED.into() }.to_bytes().unwrap();
        g.handle_datagram(t0, relay(), &adv).unwrap();
        assert_eq!(g.state(), &GatewayState::Requesting { relay: relay() });
    }

    #[test]
    fn the_advertised_address_is_followed_unless_told_not_to() {
        let t0 = Instant::now();
        let elsewhere: IpAddr = Ipv4Addr::new(192, 0, 2, 7).into();
        for (follow, expected) in [(true, SocketAddr::new(elsewhere, relay().port())), (false, relay())] {
            let mut g = Gateway::new(GatewayConfig { follow_advertised_address: follow, ..cfg() }, rng(), t0);
            let n = discovery_nonce(&drain(&mut g));
            let adv = Message::RelayAdvertisement { nonce: n, relay: elsewhere }.to_bytes().unwrap();
            g.handle_datagram(t0, relay(), &adv).unwrap();
            assert_eq!(g.state(), &GatewayState::Requesting { relay: expected }, "follow = {follow}");
        }
    }

    fn mld_query(nonce: u32, mac: [u8; 6], qqic_secs: u64) -> Vec<u8> {
        Message::MembershipQuery(MembershipQuery {
            limit: false,
            mac: ResponseMac(mac),
            nonce,
            query: EncapsulatedQuery::Mld {
                source: "fe80::1".parse().unwrap(),
                query: MldV2Query::general(Duration::from_secs(qqic_secs), Duration::from_secs(10), 2),
            },
            gateway: Some(ME.parse().unwrap()),
        })
        .to_bytes()
        .unwrap()
    }

    #[test]
    fn dual_family_gateway_requests_both_protocols_and_answers_each_query_in_its_own() {
        let t0 = Instant::now();
        let mut g = Gateway::new(cfg(), rng(), t0);
        g.handle_join(t0, sg("10.0.0.1@232.1.1.1")).unwrap();
        g.handle_join(t0, sg("10.0.0.2@232.1.1.1")).unwrap();
        g.handle_join(t0, sg("2001:db8::1@ff3e::8000:1")).unwrap();
        let n = discovery_nonce(&drain(&mut g));
        let adv = Message::RelayAdvertisement { nonce: n, relay: relay().ip() }.to_bytes().unwrap();
        g.handle_datagram(t0, relay(), &adv).unwrap();
        let nonce = match drain(&mut g).as_slice() {
            [(a, Message::Request { nonce: n4, mld: false }), (b, Message::Request { nonce: n6, mld: true })] => {
                assert_eq!((*a, *b), (relay(), relay()));
                assert_eq!(n4, n6, "one tunnel, one nonce");
                *n4
            }
            other => panic!("expected a P=0 and a P=1 request, got {other:?}"),
        };
        // The IGMPv3 query is answered with the IPv4 channels only.
        g.handle_datagram(t0, relay(), &query(nonce, [1, 2, 3, 4, 5, 6], 125, false)).unwrap();
        assert_eq!(g.state(), &GatewayState::Joined { relay: relay() });
        match drain(&mut g).as_slice() {
            [(to, Message::MembershipUpdate(u))] => {
                assert_eq!(*to, relay());
                assert_eq!(u.mac, ResponseMac([1, 2, 3, 4, 5, 6]));
                assert_eq!(u.nonce, nonce);
                let EncapsulatedReport::Igmp { report, .. } = &u.report else { panic!("{u:?}") };
                assert_eq!(report.records.len(), 1);
                assert_eq!(report.records[0].record_type, RecordType::ModeIsInclude);
                assert_eq!(report.records[0].group, Ipv4Addr::new(232, 1, 1, 1));
                assert_eq!(report.records[0].sources, vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)]);
            }
            other => panic!("expected one IGMPv3 report, got {other:?}"),
        }
        // The MLDv2 query with the IPv6 channels only.
        g.handle_datagram(t0, relay(), &mld_query(nonce, [1, 2, 3, 4, 5, 6], 125)).unwrap();
        match drain(&mut g).as_slice() {
            [(_, Message::MembershipUpdate(u))] => {
                let EncapsulatedReport::Mld { report, .. } = &u.report else { panic!("{u:?}") };
                assert_eq!(report.records.len(), 1);
                assert_eq!(report.records[0].group, "ff3e::8000:1".parse::<Ipv6Addr>().unwrap());
                assert_eq!(report.records[0].sources, vec!["2001:db8::1".parse::<Ipv6Addr>().unwrap()]);
            }
            other => panic!("expected one MLDv2 report, got {other:?}"),
        }
        // Refreshes ask for both again.
        let t1 = g.poll_timeout().unwrap();
        g.handle_timeout(t1);
        assert!(matches!(
            drain(&mut g).as_slice(),
            [(_, Message::Request { mld: false, .. }), (_, Message::Request { mld: true, .. })]
        ));
        let ev = events(&mut g);
        assert!(ev.contains(&GatewayEvent::StateChanged(GatewayState::Joined { relay: relay() })));
    }

    #[test]
    fn a_query_of_a_family_without_channels_gets_no_report() {
        let t0 = Instant::now();
        let mut g = Gateway::new(cfg(), rng(), t0);
        g.handle_join(t0, sg("10.0.0.1@232.1.1.1")).unwrap();
        let nonce = to_requesting(&mut g, t0);
        g.handle_datagram(t0, relay(), &mld_query(nonce, [3; 6], 125)).unwrap();
        assert!(drain(&mut g).is_empty(), "no IPv6 channel: nothing to report to an MLD query");
        assert_eq!(g.state(), &GatewayState::Joined { relay: relay() });
    }

    #[test]
    fn ipv6_only_gateway_requests_mld_query() {
        let t0 = Instant::now();
        let mut g = Gateway::new(cfg(), rng(), t0);
        g.handle_join(t0, sg("2001:db8::1@ff3e::8000:1")).unwrap();
        let n = discovery_nonce(&drain(&mut g));
        let adv = Message::RelayAdvertisement { nonce: n, relay: relay().ip() }.to_bytes().unwrap();
        g.handle_datagram(t0, relay(), &adv).unwrap();
        assert!(matches!(drain(&mut g).as_slice(), [(_, Message::Request { mld: true, .. })]));
    }

    #[test]
    fn request_retransmits_then_relay_lost_then_rediscovers() {
        let t0 = Instant::now();
        let mut g = Gateway::new(cfg(), rng(), t0);
        let nonce = to_requesting(&mut g, t0);
        let t1 = g.poll_timeout().unwrap();
        assert_eq!(t1 - t0, Duration::from_secs(1));
        g.handle_timeout(t1);
        assert!(matches!(drain(&mut g).as_slice(), [(_, Message::Request { nonce: n, .. })] if *n == nonce));
        let t2 = g.poll_timeout().unwrap();
        assert_eq!(t2 - t1, Duration::from_secs(2));
        g.handle_timeout(t2);
        assert_eq!(drain(&mut g).len(), 1);
        let t3 = g.poll_timeout().unwrap();
        assert_eq!(t3 - t2, Duration::from_secs(4));
        g.handle_timeout(t3);
        assert!(drain(&mut g).is_empty(), "three requests unanswered: relay lost");
        assert_eq!(g.state(), &GatewayState::RelayLost { retry_at: t3 + Duration::from_secs(2) });
        let t4 = g.poll_timeout().unwrap();
        g.handle_timeout(t4);
        assert_eq!(g.state(), &GatewayState::Discovering);
        // Discovery again, and the next tunnel gets a fresh request nonce.
        let n2 = to_requesting(&mut g, t4);
        assert_ne!(n2, nonce);
    }

    #[test]
    fn refreshes_on_the_querier_interval_and_follows_a_new_mac() {
        let t0 = Instant::now();
        let mut g = Gateway::new(cfg(), rng(), t0);
        g.handle_join(t0, sg("10.0.0.1@232.1.1.1")).unwrap();
        let (nonce, _) = to_joined(&mut g, t0, 10);
        let t1 = g.poll_timeout().unwrap();
        assert_eq!(t1 - t0, Duration::from_secs(10), "QQIC 10 s");
        g.handle_timeout(t1);
        assert!(matches!(drain(&mut g).as_slice(), [(_, Message::Request { nonce: n, mld: false })] if *n == nonce));
        // Relay restarted: it answers with a different MAC; the gateway re-reports with it.
        g.handle_datagram(t1, relay(), &query(nonce, [9, 9, 9, 9, 9, 9], 10, false)).unwrap();
        match drain(&mut g).as_slice() {
            [(_, Message::MembershipUpdate(u))] => assert_eq!(u.mac, ResponseMac([9; 6])),
            other => panic!("{other:?}"),
        }
        assert_eq!(g.poll_timeout().unwrap() - t1, Duration::from_secs(10));
    }

    #[test]
    fn silent_relay_during_refresh_is_lost() {
        let t0 = Instant::now();
        let mut g = Gateway::new(cfg(), rng(), t0);
        g.handle_join(t0, sg("10.0.0.1@232.1.1.1")).unwrap();
        to_joined(&mut g, t0, 10);
        let mut sent = 0;
        for _ in 0..10 {
            let t = g.poll_timeout().unwrap();
            g.handle_timeout(t);
            sent += drain(&mut g).len();
            if matches!(g.state(), GatewayState::RelayLost { .. }) {
                break;
            }
        }
        assert_eq!(sent, 3, "one refresh request + two retransmissions");
        assert!(matches!(g.state(), GatewayState::RelayLost { .. }));
    }

    #[test]
    fn max_refresh_interval_caps_qqic() {
        let t0 = Instant::now();
        let mut g =
            Gateway::new(GatewayConfig { max_refresh_interval: Some(Duration::from_secs(3)), ..cfg() }, rng(), t0);
        to_joined(&mut g, t0, 125);
        assert_eq!(g.poll_timeout().unwrap() - t0, Duration::from_secs(3));
    }

    #[test]
    fn stale_nonce_or_foreign_query_changes_nothing() {
        let t0 = Instant::now();
        let mut g = Gateway::new(cfg(), rng(), t0);
        let nonce = to_requesting(&mut g, t0);
        let stale = query(nonce.wrapping_add(1), [1; 6], 10, false);
        assert!(matches!(g.handle_datagram(t0, relay(), &stale), Err(AmtError::NonceMismatch { .. })));
        let other: SocketAddr = "203.0.113.5:2268".parse().unwrap();
        assert!(matches!(
            g.handle_datagram(t0, other, &query(nonce, [1; 6], 10, false)),
            Err(AmtError::UnexpectedMessage { .. })
        ));
        assert_eq!(g.state(), &GatewayState::Requesting { relay: relay() });
        assert!(drain(&mut g).is_empty());
    }

    #[test]
    fn join_while_joined_sends_state_change_robustness_times() {
        let t0 = Instant::now();
        let mut g = Gateway::new(cfg(), rng(), t0);
        to_joined(&mut g, t0, 125);
        g.handle_join(t0, sg("10.0.0.1@232.1.1.1")).unwrap();
        let first = drain(&mut g);
        match first.as_slice() {
            [(
                _,
                Message::MembershipUpdate(MembershipUpdate { report: EncapsulatedReport::Igmp { report, .. }, .. }),
            )] => {
                assert_eq!(report.records[0].record_type, RecordType::AllowNewSources)
            }
            other => panic!("{other:?}"),
        }
        let t1 = g.poll_timeout().unwrap();
        assert_eq!(t1 - t0, Duration::from_secs(1));
        g.handle_timeout(t1);
        assert_eq!(drain(&mut g).len(), 1, "second copy");
        let t2 = g.poll_timeout().unwrap();
        assert_eq!(t2 - t0, Duration::from_secs(125), "then only the refresh remains");
        // Joining twice is a no-op.
        g.handle_join(t1, sg("10.0.0.1@232.1.1.1")).unwrap();
        assert!(drain(&mut g).is_empty());
        let asm = SourceGroup { source: "10.0.0.1".parse().unwrap(), group: "239.1.1.1".parse().unwrap() };
        assert!(matches!(g.handle_join(t1, asm), Err(AmtError::NotSsm(_))));
    }

    #[test]
    fn leaving_one_group_blocks_it_leaving_the_last_tears_down() {
        let t0 = Instant::now();
        let mut g = Gateway::new(cfg(), rng(), t0);
        let a = sg("10.0.0.1@232.1.1.1");
        let b = sg("2001:db8::1@ff3e::8000:1");
        g.handle_join(t0, a).unwrap();
        g.handle_join(t0, b).unwrap();
        let (nonce, _) = to_joined(&mut g, t0, 125);
        g.handle_leave(t0, a);
        match drain(&mut g).as_slice() {
            [(
                _,
                Message::MembershipUpdate(MembershipUpdate { report: EncapsulatedReport::Igmp { report, .. }, .. }),
            )] => {
                assert_eq!(report.records[0].record_type, RecordType::BlockOldSources)
            }
            other => panic!("{other:?}"),
        }
        g.handle_leave(t0, b);
        let msgs = drain(&mut g);
        assert_eq!(msgs.len(), 4, "{msgs:?}");
        // The still-pending leave of `a` is repeated together with the leave of `b`.
        assert!(matches!(
            &msgs[0].1,
            Message::MembershipUpdate(MembershipUpdate { report: EncapsulatedReport::Igmp { .. }, .. })
        ));
        assert!(matches!(
            &msgs[1].1,
            Message::MembershipUpdate(MembershipUpdate { report: EncapsulatedReport::Mld { .. }, .. })
        ));
        match &msgs[2].1 {
            Message::Teardown(t) => {
                assert_eq!(t.nonce, nonce);
                assert_eq!(t.gateway, ME.parse().unwrap());
                assert_eq!(t.mac, ResponseMac([1, 2, 3, 4, 5, 6]));
            }
            other => panic!("{other:?}"),
        }
        match &msgs[3].1 {
            Message::Request { nonce: n, .. } => assert_ne!(*n, nonce, "fresh tunnel"),
            other => panic!("{other:?}"),
        }
        assert_eq!(g.state(), &GatewayState::Requesting { relay: relay() });
    }

    #[test]
    fn close_leaves_and_tears_down() {
        let t0 = Instant::now();
        let mut g = Gateway::new(cfg(), rng(), t0);
        g.handle_join(t0, sg("10.0.0.1@232.1.1.1")).unwrap();
        let (nonce, _) = to_joined(&mut g, t0, 125);
        g.handle_close(t0);
        let msgs = drain(&mut g);
        assert!(matches!(&msgs[0].1, Message::MembershipUpdate(_)));
        assert!(matches!(&msgs[1].1, Message::Teardown(t) if t.nonce == nonce));
        assert_eq!(g.state(), &GatewayState::Closed);
        assert_eq!(g.poll_timeout(), None);
        assert_eq!(g.handle_join(t0, sg("10.0.0.1@232.1.1.1")), Err(AmtError::Closed));
        assert_eq!(g.handle_datagram(t0, relay(), &query(nonce, [1; 6], 1, false)), Err(AmtError::Closed));
    }

    #[test]
    fn data_is_delivered_only_from_the_relay_for_joined_groups() {
        let t0 = Instant::now();
        let mut g = Gateway::new(cfg(), rng(), t0);
        let a = sg("10.0.0.1@232.1.1.1");
        g.handle_join(t0, a).unwrap();
        to_joined(&mut g, t0, 125);
        events(&mut g);
        let mut pkt = Vec::new();
        crate::encapsulate(&a, 1234, 5004, b"media", &mut pkt).unwrap();
        g.handle_datagram(t0, relay(), &pkt).unwrap();
        match events(&mut g).as_slice() {
            [GatewayEvent::Data(d)] => {
                assert_eq!(d.payload, b"media");
                assert_eq!(d.group, "232.1.1.1:5004".parse().unwrap());
                assert_eq!(d.source, "10.0.0.1:1234".parse().unwrap());
            }
            other => panic!("{other:?}"),
        }
        let fast = g.accept_data(relay(), &pkt).unwrap().unwrap();
        assert_eq!(fast.payload, b"media");
        let other: SocketAddr = "203.0.113.5:2268".parse().unwrap();
        assert!(g.handle_datagram(t0, other, &pkt).is_err());
        crate::encapsulate(&sg("10.0.0.9@232.1.1.1"), 1234, 5004, b"x", &mut pkt).unwrap();
        assert!(g.handle_datagram(t0, relay(), &pkt).is_err());
        assert!(events(&mut g).is_empty());
        // Dual-stack sockets report IPv4 peers as mapped addresses: same relay.
        crate::encapsulate(&a, 1234, 5004, b"y", &mut pkt).unwrap();
        g.handle_datagram(t0, "[::ffff:192.0.2.1]:2268".parse().unwrap(), &pkt).unwrap();
        assert_eq!(events(&mut g).len(), 1);
    }

    #[test]
    fn dual_stack_socket_keeps_talking_ipv6_mapped() {
        let t0 = Instant::now();
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:2268".parse().unwrap();
        let mut g = Gateway::new(GatewayConfig { relay: Some(mapped), ..cfg() }, rng(), t0);
        g.handle_join(t0, sg("10.0.0.1@232.1.1.1")).unwrap();
        let n = discovery_nonce(&drain(&mut g));
        let adv = Message::RelayAdvertisement { nonce: n, relay: relay().ip() }.to_bytes().unwrap();
        g.handle_datagram(t0, mapped, &adv).unwrap();
        let req = drain(&mut g);
        assert_eq!(req[0].0, mapped, "request goes out in the socket's family");
        let Message::Request { nonce, .. } = req[0].1 else { panic!() };
        g.handle_datagram(t0, mapped, &query(nonce, [1; 6], 125, false)).unwrap();
        assert_eq!(g.state(), &GatewayState::Joined { relay: mapped });
        let mut pkt = Vec::new();
        crate::encapsulate(&sg("10.0.0.1@232.1.1.1"), 1, 5004, b"x", &mut pkt).unwrap();
        assert!(g.accept_data(mapped, &pkt).unwrap().is_some());
        assert!(g.accept_data(relay(), &pkt).unwrap().is_some(), "IPv4 form is the same relay");
    }

    #[test]
    fn limit_flag_makes_a_new_gateway_back_off() {
        let t0 = Instant::now();
        let mut g = Gateway::new(cfg(), rng(), t0);
        g.handle_join(t0, sg("10.0.0.1@232.1.1.1")).unwrap();
        let nonce = to_requesting(&mut g, t0);
        g.handle_datagram(t0, relay(), &query(nonce, [1; 6], 125, true)).unwrap();
        assert_eq!(g.state(), &GatewayState::RelayLost { retry_at: t0 + Duration::from_secs(8) });
        assert!(drain(&mut g).is_empty(), "no update sent to a full relay");
    }

    #[test]
    fn advertisement_of_another_relay_moves_the_tunnel() {
        let t0 = Instant::now();
        let mut g = Gateway::new(cfg(), rng(), t0);
        g.handle_join(t0, sg("10.0.0.1@232.1.1.1")).unwrap();
        let n = discovery_nonce(&drain(&mut g));
        let (first_nonce, _) = {
            let adv = Message::RelayAdvertisement { nonce: n, relay: relay().ip() }.to_bytes().unwrap();
            g.handle_datagram(t0, relay(), &adv).unwrap();
            let req = drain(&mut g);
            let Message::Request { nonce, .. } = req[0].1 else { panic!() };
            g.handle_datagram(t0, relay(), &query(nonce, [1; 6], 125, false)).unwrap();
            (nonce, drain(&mut g))
        };
        let new_relay: SocketAddr = "192.0.2.77:2268".parse().unwrap();
        let adv = Message::RelayAdvertisement { nonce: n, relay: new_relay.ip() }.to_bytes().unwrap();
        g.handle_datagram(t0, new_relay, &adv).unwrap();
        let msgs = drain(&mut g);
        assert!(matches!(&msgs[0], (to, Message::Teardown(_)) if *to == relay()));
        assert!(matches!(&msgs[1], (to, Message::Request { nonce, .. }) if *to == new_relay && *nonce != first_nonce));
        assert_eq!(g.state(), &GatewayState::Requesting { relay: new_relay });
    }

    #[test]
    fn mld_query_is_accepted() {
        let t0 = Instant::now();
        let mut g = Gateway::new(cfg(), rng(), t0);
        g.handle_join(t0, sg("2001:db8::1@ff3e::8000:1")).unwrap();
        let nonce = to_requesting(&mut g, t0);
        let q = Message::MembershipQuery(MembershipQuery {
            limit: false,
            mac: ResponseMac([4; 6]),
            nonce,
            query: EncapsulatedQuery::Mld {
                source: "fe80::1".parse().unwrap(),
                query: MldV2Query::general(Duration::from_secs(20), Duration::from_secs(10), 2),
            },
            gateway: None,
        });
        g.handle_datagram(t0, relay(), &q.to_bytes().unwrap()).unwrap();
        assert!(matches!(drain(&mut g).as_slice(), [(_, Message::MembershipUpdate(_))]));
        assert_eq!(g.poll_timeout().unwrap() - t0, Duration::from_secs(20));
    }
}
