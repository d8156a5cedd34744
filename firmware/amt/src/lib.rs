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
//! - [`message`]: every AMT message with its encapsulated IGMPv3/MLDv2 and IP/UDP packets.

#![warn(missing_docs)]

mod checksum;
mod data;
mod error;
mod gateway;
pub mod group_record;
pub mod igmp;
mod ip;
mod mac;
pub mod membership;
pub mod message;
pub mod mld;
mod rate;
mod reader;
mod relay;
mod source_group;
pub mod timecode;
mod transmit;

pub use data::{decapsulate, encapsulate, MulticastData, MulticastDataRef, DATA_TTL, IPV4_DATA_OVERHEAD, IPV6_DATA_OVERHEAD};
pub use error::AmtError;
pub use gateway::{Gateway, GatewayConfig, GatewayEvent, GatewayState, AMT_PORT, ANYCAST_RELAY};
pub use relay::{Relay, RelayConfig, RelayEvent, TunnelInfo};
pub use source_group::{is_ssm_v4, is_ssm_v6, SourceGroup};
pub use transmit::Transmit;
pub use message::{Message, MessageType, ResponseMac};
