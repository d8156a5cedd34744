//! Sans-IO AMT (RFC 7450): wire formats and the gateway and relay state machines.
//!
//! Bytes and time go in, packets to send and timer deadlines come out; no sockets, no tokio.
//! The tokio drivers live in `roomcast-net`.
//!
//! - [`Gateway`]: finds a relay, opens a tunnel, joins source-specific groups ([`SourceGroup`]),
//!   and yields the multicast data ([`GatewayEvent::Data`], or the zero-copy [`decapsulate`]).
//! - [`Relay`]: serves many gateways, verifies their MACs, keeps their memberships, and tells
//!   the driver which (S,G) to receive ([`RelayEvent`]) and whom to send it to
//!   ([`Relay::subscribers`] + [`encapsulate`]).
//! - [`wire`]: the message formats (every AMT message with its encapsulated IGMPv3/MLDv2 and
//!   IP/UDP packets), beside the state machines (gateway, relay, MAC secrets, rate limits).
//!
//! A gateway and a relay talking without sockets (a driver does the same with UDP):
//!
//! ```
//! use std::time::Instant;
//! use rand::{rngs::StdRng, SeedableRng};
//! use roomcast_amt::{Gateway, GatewayConfig, Relay, RelayConfig, RelayEvent, SourceGroup};
//!
//! let now = Instant::now();
//! let relay_addr: std::net::SocketAddr = "192.0.2.1:2268".parse().unwrap();
//! let gw_addr: std::net::SocketAddr = "198.51.100.9:40000".parse().unwrap();
//! // Randomness is passed in: drivers seed from the OS (`StdRng::from_os_rng()`), tests use a fixed seed.
//! let mut relay = Relay::new(RelayConfig { advertised: relay_addr.ip(), ..RelayConfig::default() }, StdRng::seed_from_u64(1), now);
//! let mut gateway = Gateway::new(GatewayConfig { relay: Some(relay_addr), ..GatewayConfig::default() }, StdRng::seed_from_u64(2), now);
//! let channel: SourceGroup = "10.1.2.3@232.1.1.1".parse().unwrap();
//! gateway.handle_join(now, channel).unwrap();
//! // Discovery, Advertisement, Request, Query, Update:
//! for _ in 0..3 {
//!     while let Some(t) = gateway.poll_transmit() {
//!         relay.handle_datagram(now, gw_addr, &t.payload).unwrap();
//!     }
//!     while let Some(t) = relay.poll_transmit() {
//!         gateway.handle_datagram(now, relay_addr, &t.payload).unwrap();
//!     }
//! }
//! assert_eq!(relay.poll_event(), Some(RelayEvent::Subscribe(channel)));
//! // The relay encapsulates each native multicast datagram once and sends it to every subscriber.
//! let mut datagram = Vec::new();
//! Relay::encapsulate(&channel, 5000, 5004, b"media", &mut datagram).unwrap();
//! for to in relay.subscribers(&channel) {
//!     assert_eq!(to, gw_addr);
//!     let data = gateway.accept_data(relay_addr, &datagram).unwrap().unwrap();
//!     assert_eq!(data.payload, b"media");
//! }
//! ```

#![warn(missing_docs)]

mod error;
mod gateway;
mod mac;
mod rate;
mod relay;
mod source_group;
mod transmit;
pub mod wire;

// The wire formats under their earlier paths (`roomcast_amt::message`, ...).
pub use wire::{group_record, igmp, membership, message, mld, timecode};

pub use error::AmtError;
pub use gateway::{Gateway, GatewayConfig, GatewayEvent, GatewayState, AMT_PORT, ANYCAST_RELAY};
pub use relay::{
    Access, MembershipSnapshot, Relay, RelayConfig, RelayEvent, RelaySnapshot, TunnelInfo, TunnelSnapshot,
};
pub use source_group::{is_ssm_v4, is_ssm_v6, SourceGroup};
pub use transmit::Transmit;
pub use wire::data::{
    decapsulate, encapsulate, encapsulate_header, MulticastData, MulticastDataRef, DATA_TTL, IPV4_DATA_OVERHEAD,
    IPV6_DATA_OVERHEAD,
};
pub use wire::message::{Message, MessageType, ResponseMac};
