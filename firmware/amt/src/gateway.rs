//! The AMT gateway state machine (RFC 7450 section 5.2): relay discovery, Request/Query
//! handshake, membership updates with IGMPv3/MLDv2 reports for every joined (S,G), periodic
//! refresh on the querier's interval, retransmission with backoff, re-discovery, teardown.
//! Sans-IO: datagrams and time in, datagrams, events and deadlines out.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::{AmtError, MulticastData, MulticastDataRef, SourceGroup, Transmit};

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

/// The AMT gateway state machine.
#[derive(Debug)]
pub struct Gateway {
    config: GatewayConfig,
    state: GatewayState,
    transmits: VecDeque<Transmit>,
    events: VecDeque<GatewayEvent>,
    groups: Vec<SourceGroup>,
}

impl Gateway {
    /// Creates a gateway that starts discovering its relay at `now`.
    pub fn new(config: GatewayConfig, _now: Instant) -> Self {
        Gateway {
            config,
            state: GatewayState::Discovering,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            groups: Vec::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// Joins (S,G): it is reported to the relay now (if a tunnel is up) and on every refresh.
    pub fn join(&mut self, sg: SourceGroup, _now: Instant) -> Result<(), AmtError> {
        sg.validate()?;
        if !self.groups.contains(&sg) {
            self.groups.push(sg);
        }
        Ok(())
    }

    /// Leaves (S,G); leaving the last group tears the tunnel down.
    pub fn leave(&mut self, sg: SourceGroup, _now: Instant) {
        self.groups.retain(|g| *g != sg);
    }

    /// The joined (S,G)s.
    pub fn groups(&self) -> &[SourceGroup] {
        &self.groups
    }

    /// True if `sg` is joined.
    pub fn is_joined(&self, sg: &SourceGroup) -> bool {
        self.groups.contains(sg)
    }

    /// Handles one datagram received on the gateway's AMT socket.
    pub fn handle_datagram(&mut self, _from: SocketAddr, _datagram: &[u8], _now: Instant) -> Result<(), AmtError> {
        Ok(())
    }

    /// Fast path for data: if `datagram` is Multicast Data from the current relay for a joined
    /// (S,G), returns it borrowed (no event is queued). Returns `Ok(None)` for any other AMT
    /// message, which the caller then passes to [`Gateway::handle_datagram`].
    pub fn accept_data<'a>(
        &self,
        _from: SocketAddr,
        _datagram: &'a [u8],
    ) -> Result<Option<MulticastDataRef<'a>>, AmtError> {
        Ok(None)
    }

    /// Runs timers that are due at `now`.
    pub fn handle_timeout(&mut self, _now: Instant) {}

    /// The next instant [`Gateway::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
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

    /// Leaves every group, sends a Teardown and stops.
    pub fn close(&mut self, _now: Instant) {
        self.state = GatewayState::Closed;
    }
}
