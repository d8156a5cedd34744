//! The AMT relay state machine (RFC 7450 section 5.3): answers Discovery with Advertisements
//! and Requests with MAC-protected Membership Queries, keeps a membership table per tunnel
//! from verified Membership Updates, expires it, handles Teardown, enforces limits, and tells
//! the driver which (S,G) to receive natively (Subscribe/Unsubscribe).
//!
//! Requests are answered statelessly (the MAC is recomputed when an Update arrives), so a
//! flood of Requests with spoofed sources creates no state. A tunnel is created only by an
//! Update whose MAC proves the sender received the Query at its address and port.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use tracing::debug;

use crate::group_record::{GroupRecord, RecordType};
use crate::igmp::IgmpV3Query;
use crate::mac::Secrets;
use crate::membership::{EncapsulatedQuery, EncapsulatedReport};
use crate::message::{MembershipQuery, MembershipUpdate, Message, MessageType, Teardown};
use crate::mld::MldV2Query;
use crate::rate::TokenBucket;
use crate::{AmtError, SourceGroup, Transmit};

/// Relay settings; [`Default`] gives RFC-style timers and conservative limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// Relay address placed in Relay Advertisements (the unicast address gateways send Requests
    /// to). If unspecified, gateways of this crate use the address the Advertisement came from.
    pub advertised: IpAddr,
    /// Maximum number of tunnels (gateway address + port + nonce).
    pub max_tunnels: usize,
    /// Maximum number of (S,G) one tunnel may join.
    pub max_groups_per_tunnel: usize,
    /// Membership Updates accepted per second per tunnel (burst of twice that).
    pub updates_per_second: u32,
    /// Requests and Discoveries answered per second in total (burst of twice that).
    pub requests_per_second: u32,
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
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            advertised: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            max_tunnels: 4096,
            max_groups_per_tunnel: 64,
            updates_per_second: 20,
            requests_per_second: 10_000,
            query_interval: Duration::from_secs(125),
            query_response_interval: Duration::from_secs(10),
            robustness: 2,
            secret_rotation: Duration::from_secs(3600),
            sweep_interval: Duration::from_secs(1),
            mld_source: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
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
    nonce: u32,
    previous_nonce: Option<u32>,
    groups: HashMap<SourceGroup, Instant>,
    bucket: TokenBucket,
    last_seen: Instant,
}

/// A read-only view of one tunnel, for status displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelInfo {
    /// Gateway address and port.
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
    tunnels: HashMap<SocketAddr, Tunnel>,
    subscribers: HashMap<SourceGroup, Vec<SocketAddr>>,
    request_bucket: TokenBucket,
    next_sweep: Instant,
    transmits: VecDeque<Transmit>,
    events: VecDeque<RelayEvent>,
}

impl Relay {
    /// Creates a relay with a fresh random secret.
    pub fn new(config: RelayConfig, now: Instant) -> Self {
        let rps = config.requests_per_second.max(1);
        Relay {
            secrets: Secrets::new(config.secret_rotation, now),
            request_bucket: TokenBucket::new(rps, rps.saturating_mul(2), now),
            next_sweep: now + config.sweep_interval,
            config,
            tunnels: HashMap::new(),
            subscribers: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Handles one datagram received on the relay's AMT socket.
    ///
    /// Errors name why a datagram was dropped (malformed, MAC mismatch, stale nonce, limits);
    /// the relay state is unchanged by a rejected datagram.
    pub fn handle_datagram(&mut self, from: SocketAddr, datagram: &[u8], now: Instant) -> Result<(), AmtError> {
        let from = canonical(from);
        match MessageType::of(datagram)? {
            MessageType::RelayDiscovery | MessageType::Request => {
                let msg = Message::decode(datagram)?;
                if !self.request_bucket.take(now) {
                    return Err(AmtError::RateLimited(from));
                }
                match msg {
                    Message::RelayDiscovery { nonce } => {
                        let adv = Message::RelayAdvertisement { nonce, relay: self.config.advertised };
                        self.send(from, &adv)
                    }
                    Message::Request { nonce, mld } => self.answer_request(from, nonce, mld),
                    _ => Ok(()),
                }
            }
            MessageType::MembershipUpdate => match Message::decode(datagram)? {
                Message::MembershipUpdate(u) => self.handle_update(from, u, now),
                _ => Ok(()),
            },
            MessageType::Teardown => match Message::decode(datagram)? {
                Message::Teardown(t) => self.handle_teardown(t, now),
                _ => Ok(()),
            },
            t => Err(AmtError::UnexpectedMessage { message: t.name(), from }),
        }
    }

    fn send(&mut self, to: SocketAddr, msg: &Message) -> Result<(), AmtError> {
        let payload = msg.to_bytes()?;
        self.transmits.push_back(Transmit { destination: to, payload });
        Ok(())
    }

    fn answer_request(&mut self, from: SocketAddr, nonce: u32, mld: bool) -> Result<(), AmtError> {
        let c = &self.config;
        let query = if mld {
            EncapsulatedQuery::Mld {
                source: c.mld_source,
                query: MldV2Query::general(c.query_interval, c.query_response_interval, c.robustness),
            }
        } else {
            let source = match c.advertised {
                IpAddr::V4(a) => a,
                IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
            };
            EncapsulatedQuery::Igmp {
                source,
                query: IgmpV3Query::general(c.query_interval, c.query_response_interval, c.robustness),
            }
        };
        let limit = self.tunnels.len() >= c.max_tunnels && !self.tunnels.contains_key(&from);
        let q = MembershipQuery { limit, mac: self.secrets.mac(from, nonce), nonce, query, gateway: Some(from) };
        self.send(from, &Message::MembershipQuery(q))
    }

    fn handle_update(&mut self, from: SocketAddr, u: MembershipUpdate, now: Instant) -> Result<(), AmtError> {
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
                // The gateway started a new tunnel (new nonce) from the same endpoint: the new
                // tunnel replaces the old one; memberships start from this update.
                debug!(%from, old = t.nonce, new = u.nonce, "tunnel replaced by a new nonce");
                (t.groups.keys().copied().collect(), HashMap::new())
            }
            None => {
                if self.tunnels.len() >= self.config.max_tunnels {
                    return Err(AmtError::TunnelLimit(self.config.max_tunnels));
                }
                (Vec::new(), HashMap::new())
            }
        };
        let over_limit = apply_report(&mut groups, &u.report, now + gmi, max_groups);
        let ups = self.config.updates_per_second.max(1);
        let tunnel = self.tunnels.entry(from).or_insert_with(|| Tunnel {
            nonce: u.nonce,
            previous_nonce: None,
            groups: HashMap::new(),
            bucket: TokenBucket::new(ups, ups.saturating_mul(2), now),
            last_seen: now,
        });
        if tunnel.nonce != u.nonce {
            tunnel.previous_nonce = Some(tunnel.nonce);
            tunnel.nonce = u.nonce;
        }
        tunnel.last_seen = now;
        tunnel.groups = groups;
        let new_groups: Vec<SourceGroup> = tunnel.groups.keys().copied().collect();
        for sg in &old_groups {
            if !new_groups.contains(sg) {
                self.unindex(*sg, from);
            }
        }
        for sg in new_groups {
            if !old_groups.contains(&sg) {
                self.index(sg, from);
            }
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
            Some(tunnel) if tunnel.previous_nonce == Some(t.nonce) => Err(AmtError::StaleNonce { from: gw, nonce: t.nonce }),
            _ => Err(AmtError::UnknownTunnel(gw)),
        }
    }

    fn remove_tunnel(&mut self, gw: SocketAddr) {
        if let Some(tunnel) = self.tunnels.remove(&gw) {
            for sg in tunnel.groups.into_keys() {
                self.unindex(sg, gw);
            }
        }
    }

    fn index(&mut self, sg: SourceGroup, gw: SocketAddr) {
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
        self.secrets.maybe_rotate(now);
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + self.config.sweep_interval;
        let gmi = self.config.membership_interval();
        let mut expired: Vec<(SourceGroup, SocketAddr)> = Vec::new();
        let mut dead: Vec<SocketAddr> = Vec::new();
        for (gw, t) in self.tunnels.iter_mut() {
            t.groups.retain(|sg, expiry| {
                let keep = *expiry > now;
                if !keep {
                    expired.push((*sg, *gw));
                }
                keep
            });
            if t.groups.is_empty() && t.last_seen + gmi <= now {
                dead.push(*gw);
            }
        }
        for (sg, gw) in expired {
            debug!(%gw, %sg, "membership expired");
            self.unindex(sg, gw);
        }
        for gw in dead {
            debug!(%gw, "idle tunnel removed");
            self.tunnels.remove(&gw);
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
            .iter()
            .map(|(gw, t)| {
                let mut groups: Vec<SourceGroup> = t.groups.keys().copied().collect();
                groups.sort();
                TunnelInfo { gateway: *gw, nonce: t.nonce, groups }
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
        recs.iter()
            .map(|r| (r.record_type, r.group.into(), r.sources.iter().map(|s| (*s).into()).collect()))
            .collect()
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
