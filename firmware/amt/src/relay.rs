//! The AMT relay state machine (RFC 7450 section 5.3): answers Discovery with Advertisements
//! and Requests with MAC-protected Membership Queries, keeps a membership table per tunnel
//! from verified Membership Updates, expires it, handles Teardown, enforces limits, and tells
//! the driver which (S,G) to receive natively (Subscribe/Unsubscribe).
//!
//! Requests are answered statelessly (the MAC is recomputed when an Update arrives), so a
//! flood of Requests with spoofed sources creates no tunnel state. A tunnel is created only by
//! an Update whose MAC proves the sender received the Query at its address and port.
//!
//! Access limits ([`limits`]): gateways that already have a tunnel are served first (their
//! Requests and Updates use the tunnel's own buckets); Requests and Discoveries that may open
//! a new tunnel pass a token bucket of their source address (bounded LRU table), then a global
//! one; each address holds at most [`RelayConfig::max_tunnels_per_address`] tunnels.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use tracing::debug;

use crate::mac::Secrets;
use crate::rate::TokenBucket;
use crate::wire::group_record::{GroupRecord, RecordType};
use crate::wire::igmp::IgmpV3Query;
use crate::wire::membership::{EncapsulatedQuery, EncapsulatedReport};
use crate::wire::message::{MembershipQuery, MembershipUpdate, Message, MessageType, Teardown};
use crate::wire::mld::MldV2Query;
use crate::{AmtError, SourceGroup, Transmit};

mod access;
mod limits;
mod snapshot;
pub use access::Access;
use limits::{RequestLimiter, TunnelCounts};
pub use snapshot::{MembershipSnapshot, RelaySnapshot, TunnelSnapshot};

/// Relay settings; [`Default`] gives RFC-style timers and conservative limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// Relay address placed in Relay Advertisements (RFC 7450 5.1.2: the unicast address
    /// gateways send Requests to) and the source of the IGMPv3 queries. Unspecified (the
    /// default) means "the local address each Discovery or Request was sent to", as the driver
    /// passes it to [`Relay::handle_datagram_on`]; set it for NAT and anycast setups.
    pub advertised: IpAddr,
    /// Maximum number of tunnels (gateway address + port + nonce).
    pub max_tunnels: usize,
    /// Maximum number of tunnels one address holds (an IPv4 address or an IPv6 /64): one
    /// address cannot take every tunnel. Many boxes behind one NAT share its limit.
    pub max_tunnels_per_address: usize,
    /// Maximum number of (S,G) one tunnel may join.
    pub max_groups_per_tunnel: usize,
    /// Membership Updates accepted per second per tunnel (burst of twice that).
    pub updates_per_second: u32,
    /// Requests and Discoveries of gateways without a tunnel answered per second in total
    /// (burst of twice that). Gateways with a tunnel are not counted.
    pub requests_per_second: u32,
    /// Requests and Discoveries of gateways without a tunnel answered per second per address
    /// (burst of twice that), checked before the global limit.
    pub requests_per_second_per_address: u32,
    /// How many addresses the per-address request buckets remember (least recently seen
    /// forgotten first): bounds the memory a flood from spoofed addresses can take.
    pub tracked_addresses: usize,
    /// Query interval announced in QQIC: gateways refresh this often.
    pub query_interval: Duration,
    /// Maximum response time announced in queries.
    pub query_response_interval: Duration,
    /// Robustness variable announced in queries (QRV).
    pub robustness: u8,
    /// How often the MAC secret is replaced (the previous one stays valid for one more period).
    /// Must be longer than `query_interval`.
    pub secret_rotation: Duration,
    /// Granularity of membership expiry sweeps.
    pub sweep_interval: Duration,
    /// Link-local source address of the MLDv2 queries inside the tunnel.
    pub mld_source: Ipv6Addr,
    /// Put the gateway's address and port as the relay sees them in Membership Queries (G flag,
    /// RFC 7450 5.1.4), which a gateway behind a NAT needs for its Teardown. Off by default: the
    /// Linux kernel's AMT gateway (drivers/net/amt.c) reads the RFC's G and L bits as reserved
    /// bits and drops every query that has them set, so it could never join. Without G, a
    /// gateway leaves with its leave report and the tunnel expires.
    pub query_gateway_address: bool,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            advertised: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            max_tunnels: 4096,
            max_tunnels_per_address: 64,
            max_groups_per_tunnel: 64,
            updates_per_second: 20,
            requests_per_second: 10_000,
            requests_per_second_per_address: 20,
            tracked_addresses: 4096,
            query_interval: Duration::from_secs(125),
            query_response_interval: Duration::from_secs(10),
            robustness: 2,
            secret_rotation: Duration::from_secs(3600),
            sweep_interval: Duration::from_secs(1),
            mld_source: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
            query_gateway_address: false,
        }
    }
}

impl RelayConfig {
    /// Group Membership Interval: how long a membership lives without refresh
    /// (robustness × query interval + query response interval).
    pub fn membership_interval(&self) -> Duration {
        self.query_interval * u32::from(self.robustness.max(1)) + self.query_response_interval
    }
}

/// What the driver must do about native multicast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelayEvent {
    /// The first tunnel joined this (S,G): start receiving it natively.
    Subscribe(SourceGroup),
    /// The last tunnel left this (S,G): stop receiving it.
    Unsubscribe(SourceGroup),
}

/// One tunnel: a gateway endpoint with its current request nonce and memberships.
#[derive(Debug, Clone)]
struct Tunnel {
    /// The gateway's address exactly as the driver reported it (replies and data go there).
    peer: SocketAddr,
    nonce: u32,
    previous_nonce: Option<u32>,
    groups: HashMap<SourceGroup, Instant>,
    /// Membership Updates of this tunnel.
    bucket: TokenBucket,
    /// Requests and Discoveries from this tunnel's endpoint (served before new gateways).
    request_bucket: TokenBucket,
    last_seen: Instant,
}

impl Tunnel {
    fn new(peer: SocketAddr, nonce: u32, config: &RelayConfig, now: Instant) -> Tunnel {
        let ups = config.updates_per_second.max(1);
        Tunnel {
            peer,
            nonce,
            previous_nonce: None,
            groups: HashMap::new(),
            bucket: TokenBucket::new(ups, ups.saturating_mul(2), now),
            request_bucket: TokenBucket::new(ups, ups.saturating_mul(2), now),
            last_seen: now,
        }
    }
}

/// A read-only view of one tunnel, for status displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelInfo {
    /// Gateway address and port, as the driver reported it (the same form
    /// [`Relay::subscribers`] yields).
    pub gateway: SocketAddr,
    /// Current request nonce.
    pub nonce: u32,
    /// Joined (S,G)s.
    pub groups: Vec<SourceGroup>,
}

/// The AMT relay state machine.
#[derive(Debug)]
pub struct Relay {
    config: RelayConfig,
    secrets: Secrets,
    /// Draws the MAC secrets (seeded from the OS by drivers, from a fixed seed in tests).
    rng: StdRng,
    tunnels: HashMap<SocketAddr, Tunnel>,
    subscribers: HashMap<SourceGroup, Vec<SocketAddr>>,
    requests: RequestLimiter,
    tunnels_per_address: TunnelCounts,
    next_sweep: Instant,
    transmits: VecDeque<Transmit>,
    events: VecDeque<RelayEvent>,
    /// Bumped whenever the state worth keeping across a restart changed (see [`Relay::generation`]).
    generation: u64,
    /// Who may receive what ([`Relay::set_access`]).
    access: Access,
    /// Memberships not served because of `access`.
    denied: u64,
}

impl Relay {
    /// Creates a relay whose MAC secrets `rng` draws (now and at every rotation): drivers
    /// seed it from the operating system (`StdRng::from_os_rng()`), tests from a fixed seed.
    /// Out-of-range settings are clamped: the sweep interval to at least 10 ms and the secret
    /// rotation to at least the query interval (a MAC must outlive one refresh cycle).
    pub fn new(mut config: RelayConfig, mut rng: StdRng, now: Instant) -> Self {
        config.sweep_interval = config.sweep_interval.max(Duration::from_millis(10));
        config.secret_rotation = config.secret_rotation.max(config.query_interval);
        Relay {
            secrets: Secrets::new(config.secret_rotation, &mut rng, now),
            rng,
            requests: RequestLimiter::new(
                config.requests_per_second_per_address,
                config.tracked_addresses,
                config.requests_per_second,
                now,
            ),
            tunnels_per_address: TunnelCounts::default(),
            next_sweep: now + config.sweep_interval,
            config,
            tunnels: HashMap::new(),
            subscribers: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            generation: 0,
            access: Access::Open,
            denied: 0,
        }
    }

    /// Replaces the access policy: memberships it no longer allows stop being served at once
    /// (Unsubscribe events where a group loses its last subscriber), memberships it now allows
    /// are served at once (the tunnels reported them already).
    pub fn set_access(&mut self, access: Access) {
        self.access = access;
        let members: Vec<(SourceGroup, SocketAddr)> =
            self.tunnels.values().flat_map(|t| t.groups.keys().map(move |sg| (*sg, t.peer))).collect();
        for (sg, peer) in members {
            let indexed = self.subscribers.get(&sg).is_some_and(|s| s.contains(&peer));
            if self.access.allows(peer.ip(), &sg) {
                if !indexed {
                    self.index(sg, peer);
                }
            } else if indexed {
                self.unindex(sg, peer);
            }
        }
    }

    /// The access policy.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// How many memberships reported in Updates were not served because of the access policy.
    pub fn denied_memberships(&self) -> u64 {
        self.denied
    }

    /// A counter that changes whenever the secrets or the membership table changed (tunnel
    /// created, refreshed, replaced or removed; membership expired; secret rotated): a driver
    /// that keeps a [`Relay::snapshot`] on disk writes a new one when it moved.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The configuration.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Handles one datagram received on the relay's AMT socket.
    ///
    /// Errors name why a datagram was dropped (malformed, MAC mismatch, stale nonce, limits);
    /// the relay state is unchanged by a rejected datagram.
    ///
    /// IPv4-mapped IPv6 senders (dual-stack sockets) are the same gateway as their IPv4 form
    /// for MACs and tunnels; replies and data still go to `from` exactly as given.
    pub fn handle_datagram(&mut self, now: Instant, peer: SocketAddr, datagram: &[u8]) -> Result<(), AmtError> {
        self.handle_datagram_on(now, peer, None, datagram)
    }

    /// [`Relay::handle_datagram`] for a datagram that was sent to the local address `local`
    /// (the driver reads it per datagram with `IP_PKTINFO`/`IPV6_RECVPKTINFO` when it listens on
    /// a wildcard address). Unless [`RelayConfig::advertised`] is set, Advertisements carry that
    /// address and queries take their IGMP source from it; replies are sent from it.
    pub fn handle_datagram_on(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        local: Option<IpAddr>,
        datagram: &[u8],
    ) -> Result<(), AmtError> {
        let from = canonical(peer);
        let local = local.map(|a| a.to_canonical()).filter(|a| !a.is_unspecified());
        match MessageType::of(datagram)? {
            MessageType::RelayDiscovery | MessageType::Request => {
                let msg = Message::decode(datagram)?;
                self.admit_request(from, now)?;
                let relay = self.relay_address(local);
                match msg {
                    Message::RelayDiscovery { nonce } => {
                        self.send(peer, local, &Message::RelayAdvertisement { nonce, relay })
                    }
                    Message::Request { nonce, mld } => self.answer_request(peer, from, local, relay, nonce, mld),
                    _ => Ok(()),
                }
            }
            MessageType::MembershipUpdate => match Message::decode(datagram)? {
                Message::MembershipUpdate(u) => self.handle_update(peer, from, u, now),
                _ => Ok(()),
            },
            MessageType::Teardown => match Message::decode(datagram)? {
                Message::Teardown(t) => self.handle_teardown(t, now),
                _ => Ok(()),
            },
            t => Err(AmtError::UnexpectedMessage { message: t.name(), from }),
        }
    }

    /// Existing tunnels first: a Request or Discovery from a tunnel's endpoint takes a token
    /// of that tunnel; any other passes its address's bucket, then the global one.
    fn admit_request(&mut self, from: SocketAddr, now: Instant) -> Result<(), AmtError> {
        let admitted = match self.tunnels.get_mut(&from) {
            Some(t) => t.request_bucket.take(now),
            None => self.requests.admit(from.ip(), now).is_ok(),
        };
        if admitted {
            Ok(())
        } else {
            Err(AmtError::RateLimited(from))
        }
    }

    /// True if a new tunnel from `from` would be refused (L flag in its queries).
    fn refuses_new_tunnel(&self, from: SocketAddr) -> bool {
        !self.tunnels.contains_key(&from)
            && (self.tunnels.len() >= self.config.max_tunnels
                || self.tunnels_per_address.get(from.ip()) >= self.config.max_tunnels_per_address)
    }

    /// The relay's unicast address as told to gateways: the configured one, else the local
    /// address the datagram arrived on, else unspecified (a driver that cannot tell).
    fn relay_address(&self, local: Option<IpAddr>) -> IpAddr {
        if !self.config.advertised.is_unspecified() {
            return self.config.advertised;
        }
        local.unwrap_or(self.config.advertised)
    }

    fn send(&mut self, to: SocketAddr, source: Option<IpAddr>, msg: &Message) -> Result<(), AmtError> {
        let payload = msg.to_bytes()?;
        self.transmits.push_back(Transmit { destination: to, payload, source });
        Ok(())
    }

    /// Answers a Request with the query protocol its P flag asks for (RFC 7450 5.1.3.4):
    /// MLDv2 for P=1, IGMPv3 for P=0.
    fn answer_request(
        &mut self,
        peer: SocketAddr,
        from: SocketAddr,
        local: Option<IpAddr>,
        relay: IpAddr,
        nonce: u32,
        mld: bool,
    ) -> Result<(), AmtError> {
        let c = &self.config;
        let query = if mld {
            EncapsulatedQuery::Mld {
                source: c.mld_source,
                query: MldV2Query::general(c.query_interval, c.query_response_interval, c.robustness),
            }
        } else {
            // The relay's IPv4 address; with only an IPv6 one known, the IPv4 address the
            // Request came to (dual-stack socket), else unspecified.
            let source = match (relay, local) {
                (IpAddr::V4(a), _) | (_, Some(IpAddr::V4(a))) => a,
                _ => Ipv4Addr::UNSPECIFIED,
            };
            EncapsulatedQuery::Igmp {
                source,
                query: IgmpV3Query::general(c.query_interval, c.query_response_interval, c.robustness),
            }
        };
        let limit = self.refuses_new_tunnel(from);
        let gateway = c.query_gateway_address.then_some(from);
        let q = MembershipQuery { limit, mac: self.secrets.mac(from, nonce), nonce, query, gateway };
        self.send(peer, local, &Message::MembershipQuery(q))
    }

    fn handle_update(
        &mut self,
        peer: SocketAddr,
        from: SocketAddr,
        u: MembershipUpdate,
        now: Instant,
    ) -> Result<(), AmtError> {
        if !self.secrets.verify(from, u.nonce, &u.mac) {
            return Err(AmtError::MacMismatch(from));
        }
        let gmi = self.config.membership_interval();
        let max_groups = self.config.max_groups_per_tunnel;
        let (old_groups, mut groups) = match self.tunnels.get_mut(&from) {
            Some(t) if t.nonce == u.nonce => {
                if !t.bucket.take(now) {
                    return Err(AmtError::RateLimited(from));
                }
                (t.groups.keys().copied().collect::<Vec<_>>(), t.groups.clone())
            }
            Some(t) if t.previous_nonce == Some(u.nonce) => {
                return Err(AmtError::StaleNonce { from, nonce: u.nonce });
            }
            Some(t) => {
                // The gateway started a new tunnel (new nonce) from the same endpoint. The new
                // tunnel replaces the old one and inherits its memberships, with their timers:
                // the old tunnel's would live on until they expire (RFC 7450 keys a tunnel by
                // address, port and nonce), and both deliver to this same endpoint. The Linux
                // kernel's gateway takes a new nonce every few seconds and reports IGMP and MLD
                // state in separate Updates: starting empty would drop its other family's
                // channels until its next report.
                debug!(%from, old = t.nonce, new = u.nonce, "tunnel renewed with a new nonce");
                (t.groups.keys().copied().collect(), t.groups.clone())
            }
            None => {
                if self.tunnels.len() >= self.config.max_tunnels {
                    return Err(AmtError::TunnelLimit(self.config.max_tunnels));
                }
                let limit = self.config.max_tunnels_per_address;
                if self.tunnels_per_address.get(from.ip()) >= limit {
                    return Err(AmtError::AddressTunnelLimit { from, limit });
                }
                (Vec::new(), HashMap::new())
            }
        };
        let over_limit = apply_report(&mut groups, &u.report, now + gmi, max_groups);
        if !self.tunnels.contains_key(&from) {
            self.tunnels_per_address.add(from.ip());
        }
        let config = &self.config;
        let tunnel = self.tunnels.entry(from).or_insert_with(|| Tunnel::new(peer, u.nonce, config, now));
        if tunnel.nonce != u.nonce {
            tunnel.previous_nonce = Some(tunnel.nonce);
            tunnel.nonce = u.nonce;
        }
        tunnel.last_seen = now;
        tunnel.groups = groups;
        self.generation += 1;
        let old_peer = std::mem::replace(&mut tunnel.peer, peer);
        let new_groups: Vec<SourceGroup> = tunnel.groups.keys().copied().collect();
        for sg in &old_groups {
            if !new_groups.contains(sg) || old_peer != peer {
                self.unindex(*sg, old_peer);
            }
        }
        let denied_before = self.denied;
        for sg in new_groups {
            if !old_groups.contains(&sg) || old_peer != peer {
                self.index(sg, peer);
            }
        }
        if self.denied > denied_before {
            return Err(AmtError::AccessDenied { from, denied: self.denied - denied_before });
        }
        if over_limit {
            return Err(AmtError::GroupLimit { from, limit: max_groups });
        }
        Ok(())
    }

    fn handle_teardown(&mut self, t: Teardown, _now: Instant) -> Result<(), AmtError> {
        let gw = canonical(t.gateway);
        if !self.secrets.verify(gw, t.nonce, &t.mac) {
            return Err(AmtError::MacMismatch(gw));
        }
        match self.tunnels.get(&gw) {
            Some(tunnel) if tunnel.nonce == t.nonce => {
                self.remove_tunnel(gw);
                Ok(())
            }
            Some(tunnel) if tunnel.previous_nonce == Some(t.nonce) => {
                Err(AmtError::StaleNonce { from: gw, nonce: t.nonce })
            }
            _ => Err(AmtError::UnknownTunnel(gw)),
        }
    }

    fn remove_tunnel(&mut self, gw: SocketAddr) {
        if let Some(tunnel) = self.tunnels.remove(&gw) {
            self.tunnels_per_address.remove(gw.ip());
            self.generation += 1;
            for sg in tunnel.groups.into_keys() {
                self.unindex(sg, tunnel.peer);
            }
        }
    }

    /// Serves `sg` to `gw` if the access policy allows it (else counts a denied membership).
    fn index(&mut self, sg: SourceGroup, gw: SocketAddr) {
        if !self.access.allows(gw.ip(), &sg) {
            self.denied += 1;
            return;
        }
        let subs = self.subscribers.entry(sg).or_default();
        if subs.is_empty() {
            self.events.push_back(RelayEvent::Subscribe(sg));
        }
        if !subs.contains(&gw) {
            subs.push(gw);
        }
    }

    fn unindex(&mut self, sg: SourceGroup, gw: SocketAddr) {
        if let Some(subs) = self.subscribers.get_mut(&sg) {
            subs.retain(|a| *a != gw);
            if subs.is_empty() {
                self.subscribers.remove(&sg);
                self.events.push_back(RelayEvent::Unsubscribe(sg));
            }
        }
    }

    /// Runs timers due at `now` (membership expiry, secret rotation).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.secrets.maybe_rotate(now, &mut self.rng) {
            self.generation += 1;
        }
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + self.config.sweep_interval;
        let gmi = self.config.membership_interval();
        let mut expired: Vec<(SourceGroup, SocketAddr)> = Vec::new();
        let mut dead: Vec<SocketAddr> = Vec::new();
        for (gw, t) in self.tunnels.iter_mut() {
            let peer = t.peer;
            t.groups.retain(|sg, expiry| {
                let keep = *expiry > now;
                if !keep {
                    expired.push((*sg, peer));
                }
                keep
            });
            if t.groups.is_empty() && t.last_seen + gmi <= now {
                dead.push(*gw);
            }
        }
        if !expired.is_empty() || !dead.is_empty() {
            self.generation += 1;
        }
        for (sg, gw) in expired {
            debug!(%gw, %sg, "membership expired");
            self.unindex(sg, gw);
        }
        for gw in dead {
            debug!(%gw, "idle tunnel removed");
            self.tunnels.remove(&gw);
            self.tunnels_per_address.remove(gw.ip());
        }
    }

    /// The next instant [`Relay::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let rotate = self.secrets.rotate_at();
        if self.tunnels.is_empty() {
            Some(rotate)
        } else {
            Some(rotate.min(self.next_sweep))
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<RelayEvent> {
        self.events.pop_front()
    }

    /// Builds one AMT Multicast Data message (IP+UDP header with checksums + payload) into
    /// `out`; the same bytes go to every subscriber. Same as [`crate::encapsulate`].
    pub fn encapsulate(
        sg: &SourceGroup,
        source_port: u16,
        dest_port: u16,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), AmtError> {
        crate::encapsulate(sg, source_port, dest_port, payload, out)
    }

    /// The tunnels (gateway endpoints) that joined `sg`; cheap enough to call per packet.
    pub fn subscribers(&self, sg: &SourceGroup) -> impl Iterator<Item = SocketAddr> + '_ {
        self.subscribers.get(sg).into_iter().flatten().copied()
    }

    /// The subscribers of `sg` as a slice (empty if none).
    pub fn subscriber_slice(&self, sg: &SourceGroup) -> &[SocketAddr] {
        self.subscribers.get(sg).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The (S,G)s at least one tunnel joined.
    pub fn subscribed(&self) -> impl Iterator<Item = &SourceGroup> + '_ {
        self.subscribers.keys()
    }

    /// Number of tunnels.
    pub fn tunnel_count(&self) -> usize {
        self.tunnels.len()
    }

    /// A snapshot of every tunnel, for status displays.
    pub fn tunnels(&self) -> Vec<TunnelInfo> {
        self.tunnels
            .values()
            .map(|t| {
                let mut groups: Vec<SourceGroup> = t.groups.keys().copied().collect();
                groups.sort();
                TunnelInfo { gateway: t.peer, nonce: t.nonce, groups }
            })
            .collect()
    }
}

/// IPv4-mapped IPv6 socket addresses (from dual-stack sockets) are the IPv4 endpoint.
fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// Applies the group records of a report to a tunnel's membership map. Only source-specific
/// include-mode records are honoured (RFC 4604 SSM semantics): IS_IN, ALLOW and TO_IN add or
/// refresh (S,G)s, TO_IN also drops the group's sources not listed, BLOCK removes. Exclude-mode
/// (any-source) records and (S,G)s outside the SSM range are ignored. Returns true if some
/// (S,G)s were refused because of `max_groups`.
fn apply_report(
    groups: &mut HashMap<SourceGroup, Instant>,
    report: &EncapsulatedReport,
    expiry: Instant,
    max_groups: usize,
) -> bool {
    fn records<A: Copy + Into<IpAddr>>(recs: &[GroupRecord<A>]) -> Vec<(RecordType, IpAddr, Vec<IpAddr>)> {
        recs.iter().map(|r| (r.record_type, r.group.into(), r.sources.iter().map(|s| (*s).into()).collect())).collect()
    }
    let recs = match report {
        EncapsulatedReport::Igmp { report, .. } => records(&report.records),
        EncapsulatedReport::Mld { report, .. } => records(&report.records),
    };
    let mut over = false;
    for (ty, group, sources) in recs {
        match ty {
            RecordType::ModeIsInclude | RecordType::AllowNewSources | RecordType::ChangeToInclude => {
                if ty == RecordType::ChangeToInclude {
                    groups.retain(|sg, _| sg.group != group || sources.contains(&sg.source));
                }
                for source in sources {
                    let Ok(sg) = SourceGroup::new(source, group) else { continue };
                    if let Some(e) = groups.get_mut(&sg) {
                        *e = expiry;
                    } else if groups.len() < max_groups {
                        groups.insert(sg, expiry);
                    } else {
                        over = true;
                    }
                }
            }
            RecordType::BlockOldSources => {
                for source in sources {
                    groups.remove(&SourceGroup { source, group });
                }
            }
            RecordType::ModeIsExclude | RecordType::ChangeToExclude | RecordType::Other(_) => {}
        }
    }
    over
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::igmp::IgmpV3Report;
    use crate::wire::message::ResponseMac;
    use crate::wire::mld::MldV2Report;

    const GW: &str = "198.51.100.9:40000";

    fn gw() -> SocketAddr {
        GW.parse().unwrap()
    }

    fn sg(s: &str) -> SourceGroup {
        s.parse().unwrap()
    }

    /// A fixed seed: every run draws the same secrets.
    pub(super) fn rng() -> StdRng {
        rand::SeedableRng::seed_from_u64(7)
    }

    fn cfg() -> RelayConfig {
        RelayConfig {
            advertised: "192.0.2.1".parse().unwrap(),
            query_gateway_address: true,
            query_interval: Duration::from_secs(10),
            query_response_interval: Duration::from_secs(2),
            robustness: 2,
            ..RelayConfig::default()
        }
    }

    fn drain(r: &mut Relay) -> Vec<(SocketAddr, Message)> {
        std::iter::from_fn(|| r.poll_transmit())
            .map(|t| (t.destination, Message::decode(&t.payload).expect("relay emits valid messages")))
            .collect()
    }

    fn events(r: &mut Relay) -> Vec<RelayEvent> {
        std::iter::from_fn(|| r.poll_event()).collect()
    }

    /// Request → Query; returns the query.
    fn request(r: &mut Relay, from: SocketAddr, nonce: u32, mld: bool, now: Instant) -> MembershipQuery {
        let req = Message::Request { nonce, mld }.to_bytes().unwrap();
        r.handle_datagram(now, from, &req).unwrap();
        match drain(r).as_slice() {
            [(to, Message::MembershipQuery(q))] => {
                assert_eq!(*to, from);
                q.clone()
            }
            other => panic!("{other:?}"),
        }
    }

    /// An Update with one record for `sg` (used by the snapshot tests too).
    pub(super) fn update_for(mac: ResponseMac, nonce: u32, ty: RecordType, sg: SourceGroup) -> Vec<u8> {
        let (g, s) = (sg.group.to_string(), sg.source.to_string());
        update(mac, nonce, &[(ty, &g, &[&s])])
    }

    fn update(mac: ResponseMac, nonce: u32, records: &[(RecordType, &str, &[&str])]) -> Vec<u8> {
        let v4 = records.first().map(|r| r.1.contains('.')).unwrap_or(true);
        let report = if v4 {
            EncapsulatedReport::Igmp {
                source: Ipv4Addr::UNSPECIFIED,
                report: IgmpV3Report {
                    records: records
                        .iter()
                        .map(|(t, g, s)| GroupRecord {
                            record_type: *t,
                            group: g.parse().unwrap(),
                            sources: s.iter().map(|a| a.parse().unwrap()).collect(),
                        })
                        .collect(),
                },
            }
        } else {
            EncapsulatedReport::Mld {
                source: "fe80::2".parse().unwrap(),
                report: MldV2Report {
                    records: records
                        .iter()
                        .map(|(t, g, s)| GroupRecord {
                            record_type: *t,
                            group: g.parse().unwrap(),
                            sources: s.iter().map(|a| a.parse().unwrap()).collect(),
                        })
                        .collect(),
                },
            }
        };
        Message::MembershipUpdate(MembershipUpdate { mac, nonce, report }).to_bytes().unwrap()
    }

    fn join(
        r: &mut Relay,
        from: SocketAddr,
        nonce: u32,
        group: &str,
        source: &str,
        now: Instant,
    ) -> Result<(), AmtError> {
        let q = request(r, from, nonce, !group.contains('.'), now);
        r.handle_datagram(now, from, &update(q.mac, nonce, &[(RecordType::ModeIsInclude, group, &[source])]))
    }

    #[test]
    fn members_access_serves_only_allowed_gateways_and_follows_the_table() {
        let t0 = Instant::now();
        let mut r = Relay::new(cfg(), rng(), t0);
        r.set_access(Access::closed());
        let ch = sg("192.0.2.50@232.1.1.1");
        let member: SocketAddr = "198.51.100.9:40000".parse().unwrap();
        let stranger: SocketAddr = "203.0.113.7:40000".parse().unwrap();
        let allow = |addrs: &[SocketAddr]| {
            Access::Members(addrs.iter().map(|a| (a.ip(), std::collections::HashSet::from([ch]))).collect())
        };
        r.set_access(allow(&[member]));
        join(&mut r, member, 1, "232.1.1.1", "192.0.2.50", t0).unwrap();
        let denied = join(&mut r, stranger, 2, "232.1.1.1", "192.0.2.50", t0);
        assert!(matches!(denied, Err(AmtError::AccessDenied { denied: 1, .. })), "{denied:?}");
        assert_eq!(r.subscriber_slice(&ch), [member], "the stranger's membership is not served");
        assert_eq!(r.denied_memberships(), 1);
        assert_eq!(events(&mut r), [RelayEvent::Subscribe(ch)]);
        // The member leaves the meeting: served no more, at once.
        r.set_access(allow(&[]));
        assert!(r.subscriber_slice(&ch).is_empty());
        assert_eq!(events(&mut r), [RelayEvent::Unsubscribe(ch)]);
        // The stranger joins the meeting: its reported membership is served without a new report.
        r.set_access(allow(&[stranger]));
        assert_eq!(r.subscriber_slice(&ch), [stranger]);
        r.set_access(Access::Open);
        let mut subs = r.subscriber_slice(&ch).to_vec();
        subs.sort();
        assert_eq!(subs, [member, stranger], "open serves everyone");
    }

    #[test]
    fn discovery_is_answered_with_the_advertised_address() {
        let t0 = Instant::now();
        let mut r = Relay::new(cfg(), rng(), t0);
        r.handle_datagram(t0, gw(), &Message::RelayDiscovery { nonce: 99 }.to_bytes().unwrap()).unwrap();
        assert_eq!(
            drain(&mut r),
            vec![(gw(), Message::RelayAdvertisement { nonce: 99, relay: "192.0.2.1".parse().unwrap() })]
        );
        let mut r6 = Relay::new(RelayConfig { advertised: "2001:db8::1".parse().unwrap(), ..cfg() }, rng(), t0);
        r6.handle_datagram(t0, gw(), &Message::RelayDiscovery { nonce: 1 }.to_bytes().unwrap()).unwrap();
        assert!(matches!(drain(&mut r6).as_slice(), [(_, Message::RelayAdvertisement { relay: IpAddr::V6(_), .. })]));
    }

    #[test]
    fn unconfigured_relay_advertises_and_queries_from_the_local_address() {
        let t0 = Instant::now();
        let mut r = Relay::new(RelayConfig { advertised: Ipv4Addr::UNSPECIFIED.into(), ..cfg() }, rng(), t0);
        let disc = Message::RelayDiscovery { nonce: 5 }.to_bytes().unwrap();
        for local in ["127.0.0.1", "198.51.100.1", "::ffff:203.0.113.4", "2001:db8::2"] {
            let local: IpAddr = local.parse().unwrap();
            r.handle_datagram_on(t0, gw(), Some(local), &disc).unwrap();
            let t = r.poll_transmit().unwrap();
            assert_eq!(t.source, Some(local.to_canonical()), "answered from where it was asked");
            let adv = Message::decode(&t.payload).unwrap();
            assert_eq!(adv, Message::RelayAdvertisement { nonce: 5, relay: local.to_canonical() });
        }
        let req = Message::Request { nonce: 1, mld: false }.to_bytes().unwrap();
        r.handle_datagram_on(t0, gw(), Some("198.51.100.1".parse().unwrap()), &req).unwrap();
        match drain(&mut r).as_slice() {
            [(_, Message::MembershipQuery(MembershipQuery { query: EncapsulatedQuery::Igmp { source, .. }, .. }))] => {
                assert_eq!(*source, Ipv4Addr::new(198, 51, 100, 1))
            }
            other => panic!("{other:?}"),
        }
        // A wildcard local address (driver could not tell) and no configuration: unspecified.
        r.handle_datagram_on(t0, gw(), Some(Ipv4Addr::UNSPECIFIED.into()), &disc).unwrap();
        let t = r.poll_transmit().unwrap();
        assert_eq!(t.source, None);
        assert!(
            matches!(Message::decode(&t.payload).unwrap(), Message::RelayAdvertisement { relay, .. } if relay.is_unspecified())
        );
    }

    #[test]
    fn configured_address_wins_over_the_local_one() {
        let t0 = Instant::now();
        let mut r = Relay::new(RelayConfig { advertised: "192.0.2.7".parse().unwrap(), ..cfg() }, rng(), t0);
        let disc = Message::RelayDiscovery { nonce: 5 }.to_bytes().unwrap();
        r.handle_datagram_on(t0, gw(), Some("10.0.0.5".parse().unwrap()), &disc).unwrap();
        assert_eq!(
            drain(&mut r),
            vec![(gw(), Message::RelayAdvertisement { nonce: 5, relay: "192.0.2.7".parse().unwrap() })]
        );
        let req = Message::Request { nonce: 1, mld: false }.to_bytes().unwrap();
        r.handle_datagram_on(t0, gw(), Some("10.0.0.5".parse().unwrap()), &req).unwrap();
        match drain(&mut r).as_slice() {
            [(_, Message::MembershipQuery(MembershipQuery { query: EncapsulatedQuery::Igmp { source, .. }, .. }))] => {
                assert_eq!(*source, Ipv4Addr::new(192, 0, 2, 7))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn queries_carry_no_gateway_address_by_default() {
        let t0 = Instant::now();
        let mut r = Relay::new(RelayConfig { query_gateway_address: false, ..cfg() }, rng(), t0);
        let q = request(&mut r, gw(), 7, false, t0);
        assert_eq!(q.gateway, None);
        let bytes = Message::MembershipQuery(q).to_bytes().unwrap();
        assert_eq!(bytes[1], 0, "no G or L bit: the kernel's gateway drops queries with either");
        assert!(!RelayConfig::default().query_gateway_address);
    }

    #[test]
    fn request_gets_a_query_with_mac_g_flag_and_the_asked_protocol() {
        let t0 = Instant::now();
        let mut r = Relay::new(cfg(), rng(), t0);
        let q4 = request(&mut r, gw(), 7, false, t0);
        assert_eq!(q4.nonce, 7);
        assert_eq!(q4.gateway, Some(gw()));
        assert!(!q4.limit);
        match &q4.query {
            EncapsulatedQuery::Igmp { source, query } => {
                assert_eq!(*source, Ipv4Addr::new(192, 0, 2, 1));
                assert_eq!(query.query_interval(), Duration::from_secs(10));
                assert_eq!(query.max_response_time(), Duration::from_secs(2));
                assert_eq!(query.qrv, 2);
            }
            other => panic!("{other:?}"),
        }
        let q6 = request(&mut r, gw(), 7, true, t0);
        assert!(matches!(q6.query, EncapsulatedQuery::Mld { .. }));
        assert_eq!(q6.mac, q4.mac, "MAC depends only on address, port and nonce");
        let other_port = request(&mut r, "198.51.100.9:40001".parse().unwrap(), 7, false, t0);
        assert_ne!(other_port.mac, q4.mac);
        assert_ne!(request(&mut r, gw(), 8, false, t0).mac, q4.mac);
        assert_eq!(r.tunnel_count(), 0, "requests create no state");
    }

    #[test]
    fn verified_updates_build_the_table_and_subscribe_events() {
        let t0 = Instant::now();
        let mut r = Relay::new(cfg(), rng(), t0);
        let a = sg("10.0.0.1@232.1.1.1");
        join(&mut r, gw(), 1, "232.1.1.1", "10.0.0.1", t0).unwrap();
        assert_eq!(events(&mut r), vec![RelayEvent::Subscribe(a)]);
        assert_eq!(r.subscribers(&a).collect::<Vec<_>>(), vec![gw()]);
        let gw2: SocketAddr = "203.0.113.7:5000".parse().unwrap();
        join(&mut r, gw2, 2, "232.1.1.1", "10.0.0.1", t0).unwrap();
        assert!(events(&mut r).is_empty(), "second subscriber: no new native join");
        assert_eq!(r.subscriber_slice(&a).len(), 2);
        assert_eq!(r.tunnel_count(), 2);
        // IPv6 (S,G) over the same IPv4 tunnel.
        join(&mut r, gw(), 1, "ff3e::8000:1", "2001:db8::1", t0).unwrap();
        assert_eq!(events(&mut r), vec![RelayEvent::Subscribe(sg("2001:db8::1@ff3e::8000:1"))]);
        // Leaves.
        let q = request(&mut r, gw(), 1, false, t0);
        r.handle_datagram(t0, gw(), &update(q.mac, 1, &[(RecordType::BlockOldSources, "232.1.1.1", &["10.0.0.1"])]))
            .unwrap();
        assert!(events(&mut r).is_empty());
        assert_eq!(r.subscribers(&a).collect::<Vec<_>>(), vec![gw2]);
        let q2 = request(&mut r, gw2, 2, false, t0);
        r.handle_datagram(t0, gw2, &update(q2.mac, 2, &[(RecordType::ChangeToInclude, "232.1.1.1", &[])])).unwrap();
        assert_eq!(events(&mut r), vec![RelayEvent::Unsubscribe(a)]);
        assert_eq!(r.subscribers(&a).count(), 0);
        let infos = r.tunnels();
        assert_eq!(infos.len(), 2);
    }

    #[test]
    fn wrong_or_copied_mac_changes_nothing() {
        let t0 = Instant::now();
        let mut r = Relay::new(cfg(), rng(), t0);
        let q = request(&mut r, gw(), 1, false, t0);
        let mut bad = q.mac;
        bad.0[5] ^= 1;
        let spoof = update(bad, 1, &[(RecordType::ModeIsInclude, "232.1.1.1", &["10.0.0.1"])]);
        assert_eq!(r.handle_datagram(t0, gw(), &spoof), Err(AmtError::MacMismatch(gw())));
        // A valid MAC replayed from another address or with another nonce is rejected too.
        let good = update(q.mac, 1, &[(RecordType::ModeIsInclude, "232.1.1.1", &["10.0.0.1"])]);
        let attacker: SocketAddr = "203.0.113.66:40000".parse().unwrap();
        assert_eq!(r.handle_datagram(t0, attacker, &good), Err(AmtError::MacMismatch(attacker)));
        let other_nonce = update(q.mac, 2, &[(RecordType::ModeIsInclude, "232.1.1.1", &["10.0.0.1"])]);
        assert!(r.handle_datagram(t0, gw(), &other_nonce).is_err());
        assert_eq!(r.tunnel_count(), 0);
        assert!(events(&mut r).is_empty());
    }

    #[test]
    fn a_new_nonce_replaces_the_tunnel_and_the_old_nonce_is_stale() {
        let t0 = Instant::now();
        let mut r = Relay::new(cfg(), rng(), t0);
        let a = sg("10.0.0.1@232.1.1.1");
        let q1 = request(&mut r, gw(), 1, false, t0);
        join(&mut r, gw(), 1, "232.1.1.1", "10.0.0.1", t0).unwrap();
        events(&mut r);
        // Gateway restarts its tunnel with nonce 2 and re-joins the same group: no churn.
        join(&mut r, gw(), 2, "232.1.1.1", "10.0.0.1", t0).unwrap();
        assert!(events(&mut r).is_empty());
        assert_eq!(r.tunnel_count(), 1);
        assert_eq!(r.tunnels()[0].nonce, 2);
        // An update still carrying nonce 1 (valid MAC) is stale.
        let old = update(q1.mac, 1, &[(RecordType::ModeIsInclude, "232.1.1.9", &["10.0.0.1"])]);
        assert_eq!(r.handle_datagram(t0, gw(), &old), Err(AmtError::StaleNonce { from: gw(), nonce: 1 }));
        assert_eq!(r.subscribers(&a).count(), 1);
        // A new tunnel that joins something else keeps the old memberships (same endpoint; the
        // kernel's gateway reports IGMP and MLD state in separate Updates) until they expire.
        join(&mut r, gw(), 3, "232.1.1.2", "10.0.0.1", t0).unwrap();
        assert_eq!(events(&mut r), vec![RelayEvent::Subscribe(sg("10.0.0.1@232.1.1.2"))]);
        assert_eq!(r.subscribers(&a).count(), 1);
        r.handle_timeout(t0 + cfg().membership_interval() + Duration::from_secs(2));
        let mut gone = events(&mut r);
        gone.sort_by_key(|e| format!("{e:?}"));
        assert_eq!(gone, vec![RelayEvent::Unsubscribe(a), RelayEvent::Unsubscribe(sg("10.0.0.1@232.1.1.2"))]);
    }

    #[test]
    fn memberships_expire_without_refresh_and_refresh_extends_them() {
        let t0 = Instant::now();
        let mut r = Relay::new(cfg(), rng(), t0);
        let gmi = cfg().membership_interval();
        assert_eq!(gmi, Duration::from_secs(22));
        join(&mut r, gw(), 1, "232.1.1.1", "10.0.0.1", t0).unwrap();
        events(&mut r);
        // Refresh at t0+15 s.
        join(&mut r, gw(), 1, "232.1.1.1", "10.0.0.1", t0 + Duration::from_secs(15)).unwrap();
        let mut t = t0;
        while t < t0 + Duration::from_secs(36) {
            t = r.poll_timeout().unwrap();
            r.handle_timeout(t);
        }
        assert!(events(&mut r).is_empty(), "refreshed at 15 s, so alive until 37 s");
        while t < t0 + Duration::from_secs(38) {
            t = r.poll_timeout().unwrap();
            r.handle_timeout(t);
        }
        assert_eq!(events(&mut r), vec![RelayEvent::Unsubscribe(sg("10.0.0.1@232.1.1.1"))]);
        // The empty tunnel is removed once idle for a membership interval.
        while r.tunnel_count() > 0 && t < t0 + Duration::from_secs(80) {
            t = r.poll_timeout().unwrap();
            r.handle_timeout(t);
        }
        assert_eq!(r.tunnel_count(), 0);
        assert!(r.poll_timeout().unwrap() > t + Duration::from_secs(60), "idle relay only wakes for rotation");
    }

    #[test]
    fn teardown_removes_the_tunnel_even_from_a_new_nat_address() {
        let t0 = Instant::now();
        let mut r = Relay::new(cfg(), rng(), t0);
        let q = request(&mut r, gw(), 5, false, t0);
        join(&mut r, gw(), 5, "232.1.1.1", "10.0.0.1", t0).unwrap();
        events(&mut r);
        let mut bad = Teardown { mac: ResponseMac([0; 6]), nonce: 5, gateway: gw() };
        let bytes = Message::Teardown(bad.clone()).to_bytes().unwrap();
        assert_eq!(r.handle_datagram(t0, gw(), &bytes), Err(AmtError::MacMismatch(gw())));
        bad.mac = q.mac;
        let good = Message::Teardown(bad).to_bytes().unwrap();
        r.handle_datagram(t0, "203.0.113.1:1".parse().unwrap(), &good).unwrap();
        assert_eq!(r.tunnel_count(), 0);
        assert_eq!(events(&mut r), vec![RelayEvent::Unsubscribe(sg("10.0.0.1@232.1.1.1"))]);
        assert_eq!(r.handle_datagram(t0, gw(), &good), Err(AmtError::UnknownTunnel(gw())));
    }

    #[test]
    fn tunnel_limit_sets_l_flag_and_refuses_new_tunnels() {
        let t0 = Instant::now();
        let mut r = Relay::new(RelayConfig { max_tunnels: 2, ..cfg() }, rng(), t0);
        for port in 1..=2u16 {
            join(&mut r, SocketAddr::new(gw().ip(), port), 1, "232.1.1.1", "10.0.0.1", t0).unwrap();
        }
        let third = SocketAddr::new(gw().ip(), 3);
        let q = request(&mut r, third, 1, false, t0);
        assert!(q.limit, "L flag: not accepting new tunnels");
        assert!(!request(&mut r, SocketAddr::new(gw().ip(), 1), 1, false, t0).limit, "existing tunnels still refresh");
        let u = update(q.mac, 1, &[(RecordType::ModeIsInclude, "232.1.1.1", &["10.0.0.1"])]);
        assert_eq!(r.handle_datagram(t0, third, &u), Err(AmtError::TunnelLimit(2)));
        assert_eq!(r.tunnel_count(), 2);
    }

    #[test]
    fn group_limit_applies_what_fits() {
        let t0 = Instant::now();
        let mut r = Relay::new(RelayConfig { max_groups_per_tunnel: 2, ..cfg() }, rng(), t0);
        let q = request(&mut r, gw(), 1, false, t0);
        let u = update(q.mac, 1, &[(RecordType::ModeIsInclude, "232.1.1.1", &["10.0.0.1", "10.0.0.2", "10.0.0.3"])]);
        assert_eq!(r.handle_datagram(t0, gw(), &u), Err(AmtError::GroupLimit { from: gw(), limit: 2 }));
        assert_eq!(r.tunnels()[0].groups.len(), 2);
        assert_eq!(events(&mut r).len(), 2);
    }

    #[test]
    fn update_rate_is_limited_per_tunnel() {
        let t0 = Instant::now();
        let mut r = Relay::new(RelayConfig { updates_per_second: 2, ..cfg() }, rng(), t0);
        let q = request(&mut r, gw(), 1, false, t0);
        let u = update(q.mac, 1, &[(RecordType::ModeIsInclude, "232.1.1.1", &["10.0.0.1"])]);
        // First update creates the tunnel; burst of 4 more allowed; then limited.
        let results: Vec<_> = (0..8).map(|_| r.handle_datagram(t0, gw(), &u)).collect();
        assert_eq!(results.iter().filter(|x| x.is_ok()).count(), 5, "{results:?}");
        assert_eq!(results[7], Err(AmtError::RateLimited(gw())));
        assert!(r.handle_datagram(t0 + Duration::from_secs(1), gw(), &u).is_ok(), "refilled");
        // Another gateway is not affected.
        join(&mut r, "203.0.113.7:5000".parse().unwrap(), 9, "232.1.1.1", "10.0.0.1", t0).unwrap();
    }

    #[test]
    fn new_gateway_requests_are_limited_globally() {
        let t0 = Instant::now();
        let mut r = Relay::new(RelayConfig { requests_per_second: 1, ..cfg() }, rng(), t0);
        let req = Message::Request { nonce: 1, mld: false }.to_bytes().unwrap();
        assert!(r.handle_datagram(t0, gw(), &req).is_ok());
        assert!(r.handle_datagram(t0, gw(), &req).is_ok());
        assert_eq!(r.handle_datagram(t0, gw(), &req), Err(AmtError::RateLimited(gw())));
        assert_eq!(drain(&mut r).len(), 2);
    }

    #[test]
    fn one_address_holds_at_most_its_tunnel_share() {
        let t0 = Instant::now();
        let mut r = Relay::new(RelayConfig { max_tunnels_per_address: 3, ..cfg() }, rng(), t0);
        let at = |ip: &str, port: u16| SocketAddr::new(ip.parse().unwrap(), port);
        for port in 1..=3 {
            join(&mut r, at("203.0.113.66", port), 1, "232.1.1.1", "10.0.0.1", t0).unwrap();
        }
        let q = request(&mut r, at("203.0.113.66", 4), 1, false, t0);
        assert!(q.limit, "L flag for the address that is full");
        let u = update(q.mac, 1, &[(RecordType::ModeIsInclude, "232.1.1.1", &["10.0.0.1"])]);
        let fourth = at("203.0.113.66", 4);
        assert_eq!(r.handle_datagram(t0, fourth, &u), Err(AmtError::AddressTunnelLimit { from: fourth, limit: 3 }));
        // The same address through a dual-stack socket is the same address.
        let mapped = at("::ffff:203.0.113.66", 5);
        let q = request(&mut r, mapped, 1, false, t0);
        let u = update(q.mac, 1, &[(RecordType::ModeIsInclude, "232.1.1.1", &["10.0.0.1"])]);
        assert!(matches!(r.handle_datagram(t0, mapped, &u), Err(AmtError::AddressTunnelLimit { .. })));
        // Existing tunnels of the full address refresh; other addresses are not affected.
        assert!(!request(&mut r, at("203.0.113.66", 2), 1, false, t0).limit);
        join(&mut r, at("198.51.100.20", 1), 1, "232.1.1.1", "10.0.0.1", t0).unwrap();
        assert_eq!(r.tunnel_count(), 4);
        // A teardown frees one place for that address.
        let q1 = request(&mut r, at("203.0.113.66", 1), 1, false, t0);
        let t = Teardown { mac: q1.mac, nonce: 1, gateway: at("203.0.113.66", 1) };
        r.handle_datagram(t0, at("203.0.113.66", 1), &Message::Teardown(t).to_bytes().unwrap()).unwrap();
        join(&mut r, fourth, 1, "232.1.1.1", "10.0.0.1", t0).unwrap();
        // So does expiry.
        let later = t0 + cfg().membership_interval() * 3;
        r.handle_timeout(later);
        assert_eq!(r.tunnel_count(), 0);
        for port in 10..13 {
            join(&mut r, at("203.0.113.66", port), 1, "232.1.1.1", "10.0.0.1", later).unwrap();
        }
    }

    #[test]
    fn a_request_flood_from_one_address_leaves_the_others_served() {
        let t0 = Instant::now();
        let mut r = Relay::new(RelayConfig { requests_per_second_per_address: 10, ..cfg() }, rng(), t0);
        let attacker: SocketAddr = "203.0.113.66:40000".parse().unwrap();
        let req = Message::Request { nonce: 1, mld: false }.to_bytes().unwrap();
        let disc = Message::RelayDiscovery { nonce: 1 }.to_bytes().unwrap();
        let mut answered = 0;
        for i in 0..10_000u32 {
            let from = SocketAddr::new(attacker.ip(), 1024 + (i % 60_000) as u16);
            let msg = if i % 2 == 0 { &req } else { &disc };
            answered += usize::from(r.handle_datagram(t0, from, msg).is_ok());
        }
        assert_eq!(answered, 20, "one burst for the address, whatever the ports");
        assert_eq!(drain(&mut r).len(), 20);
        // A new gateway elsewhere opens its tunnel in the middle of the flood.
        join(&mut r, gw(), 1, "232.1.1.1", "10.0.0.1", t0).unwrap();
        assert_eq!(events(&mut r), vec![RelayEvent::Subscribe(sg("10.0.0.1@232.1.1.1"))]);
        assert_eq!(r.handle_datagram(t0, attacker, &req), Err(AmtError::RateLimited(attacker)));
        // The attacker's address gets its rate back, not more.
        let t1 = t0 + Duration::from_secs(1);
        let after = (0..100).filter(|_| r.handle_datagram(t1, attacker, &req).is_ok()).count();
        assert_eq!(after, 10);
    }

    #[test]
    fn existing_tunnels_are_served_when_new_gateways_are_refused() {
        let t0 = Instant::now();
        let mut r = Relay::new(RelayConfig { requests_per_second: 2, ..cfg() }, rng(), t0);
        join(&mut r, gw(), 1, "232.1.1.1", "10.0.0.1", t0).unwrap();
        // Spoofed sources use up the global budget for new gateways.
        let req = Message::Request { nonce: 9, mld: false }.to_bytes().unwrap();
        for i in 0..100u32 {
            let _ = r.handle_datagram(t0, SocketAddr::new(IpAddr::from((0x0a00_0000 + i).to_be_bytes()), 1), &req);
        }
        drain(&mut r);
        let newcomer: SocketAddr = "198.51.100.77:1".parse().unwrap();
        assert_eq!(r.handle_datagram(t0, newcomer, &req), Err(AmtError::RateLimited(newcomer)));
        // The gateway with a tunnel still refreshes (Request, Query, Update) at the same instant.
        join(&mut r, gw(), 1, "232.1.1.1", "10.0.0.1", t0).unwrap();
        join(&mut r, gw(), 2, "232.1.1.2", "10.0.0.1", t0).unwrap();
        assert_eq!(r.tunnels()[0].groups.len(), 2);
    }

    #[test]
    fn secret_rotation_accepts_the_previous_secret_only() {
        let t0 = Instant::now();
        let rot = Duration::from_secs(100);
        let mut r = Relay::new(RelayConfig { secret_rotation: rot, ..cfg() }, rng(), t0);
        let q = request(&mut r, gw(), 1, false, t0);
        assert_eq!(r.poll_timeout(), Some(t0 + rot));
        r.handle_timeout(t0 + rot);
        let q2 = request(&mut r, gw(), 1, false, t0 + rot);
        assert_ne!(q.mac, q2.mac, "rotated");
        let u = update(q.mac, 1, &[(RecordType::ModeIsInclude, "232.1.1.1", &["10.0.0.1"])]);
        assert!(r.handle_datagram(t0 + rot, gw(), &u).is_ok(), "previous secret accepted");
        r.handle_timeout(t0 + rot * 2);
        let u2 = update(q.mac, 1, &[(RecordType::ModeIsInclude, "232.1.1.2", &["10.0.0.1"])]);
        assert_eq!(r.handle_datagram(t0 + rot * 2, gw(), &u2), Err(AmtError::MacMismatch(gw())));
    }

    #[test]
    fn rotation_never_shorter_than_the_query_interval() {
        let t0 = Instant::now();
        let r = Relay::new(
            RelayConfig { secret_rotation: Duration::ZERO, sweep_interval: Duration::ZERO, ..cfg() },
            rng(),
            t0,
        );
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(10)));
        assert_eq!(r.config().sweep_interval, Duration::from_millis(10));
    }

    #[test]
    fn any_source_and_non_ssm_records_are_ignored() {
        let t0 = Instant::now();
        let mut r = Relay::new(cfg(), rng(), t0);
        let q = request(&mut r, gw(), 1, false, t0);
        let u = update(
            q.mac,
            1,
            &[
                (RecordType::ChangeToExclude, "232.1.1.1", &[]),
                (RecordType::ModeIsExclude, "232.1.1.2", &[]),
                (RecordType::ModeIsInclude, "239.1.1.1", &["10.0.0.1"]),
                (RecordType::Other(42), "232.1.1.3", &["10.0.0.1"]),
            ],
        );
        r.handle_datagram(t0, gw(), &u).unwrap();
        assert!(events(&mut r).is_empty());
        assert!(r.tunnels()[0].groups.is_empty());
    }

    #[test]
    fn dual_stack_peers_are_answered_as_received() {
        let t0 = Instant::now();
        let mut r = Relay::new(cfg(), rng(), t0);
        let mapped: SocketAddr = "[::ffff:198.51.100.9]:40000".parse().unwrap();
        let q = request(&mut r, mapped, 1, false, t0);
        assert_eq!(q.gateway, Some(gw()), "G flag carries the IPv4 form");
        assert_eq!(q.mac, request(&mut r, gw(), 1, false, t0).mac, "same gateway, same MAC");
        let u = update(q.mac, 1, &[(RecordType::ModeIsInclude, "232.1.1.1", &["10.0.0.1"])]);
        r.handle_datagram(t0, mapped, &u).unwrap();
        assert_eq!(r.subscribers(&sg("10.0.0.1@232.1.1.1")).collect::<Vec<_>>(), vec![mapped]);
        let t = Message::Teardown(Teardown { mac: q.mac, nonce: 1, gateway: gw() }).to_bytes().unwrap();
        r.handle_datagram(t0, mapped, &t).unwrap();
        assert_eq!(r.tunnel_count(), 0);
        assert_eq!(r.subscribers(&sg("10.0.0.1@232.1.1.1")).count(), 0);
    }

    #[test]
    fn relay_bound_messages_only() {
        let t0 = Instant::now();
        let mut r = Relay::new(cfg(), rng(), t0);
        let adv = Message::RelayAdvertisement { nonce: 1, relay: "192.0.2.1".parse().unwrap() }.to_bytes().unwrap();
        assert!(matches!(r.handle_datagram(t0, gw(), &adv), Err(AmtError::UnexpectedMessage { .. })));
        let mut data = Vec::new();
        crate::encapsulate(&sg("10.0.0.1@232.1.1.1"), 1, 2, b"x", &mut data).unwrap();
        assert!(matches!(r.handle_datagram(t0, gw(), &data), Err(AmtError::UnexpectedMessage { .. })));
        assert!(r.handle_datagram(t0, gw(), &[0xff; 3]).is_err());
        assert!(drain(&mut r).is_empty());
    }
}
