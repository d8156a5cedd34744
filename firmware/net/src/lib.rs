//! Tokio + socket2 drivers for the AMT relay and gateway of `roomcast-amt`.
//!
//! The protocol lives in the sans-IO machines of `roomcast-amt`; this crate only moves bytes
//! and time in and out of them:
//! - [`relay`]: [`RelayHandle`], the relay driver (control, inject API and sockets, native
//!   multicast, `sendmmsg` fan-out);
//! - [`gateway`]: [`GatewayHandle`], the gateway driver (state watch, join/leave, deliveries,
//!   teardown on close);
//! - [`native`]: native source-specific multicast receive (relay) and re-send (gateway);
//! - [`native_filter`]: the kernel filter that keeps native receive to the joined (S,G);
//! - [`driad`]: relay discovery through DNS (RFC 8777 AMTRELAY records);
//! - [`mmsg`]: batched UDP IO (`sendmmsg` fan-out, `recvmmsg` receive) with a plain fallback;
//! - [`pktinfo`]: the local address of each datagram on wildcard sockets, replies sent from it;
//! - [`socket`]: socket setup, interfaces, source-specific multicast membership;
//! - [`state_file`]: the relay's `--state` file (secrets and memberships across restarts);
//! - [`spec`]: `SOURCE@GROUP:PORT` and friends, as used on the command line.

pub mod driad;
pub mod error;
pub mod gateway;
pub mod mmsg;
pub mod native;
pub mod native_filter;
pub mod pktinfo;
pub mod relay;
mod sockaddr;
pub mod socket;
pub mod spec;
pub mod state_file;

pub use error::{NetError, Result};
pub use gateway::{Delivery, GatewayHandle, GatewayOptions, GatewayStats};
pub use relay::{RelayHandle, RelayOptions, RelayStats};
pub use spec::{ChannelSpec, InjectSpec, AMT_PORT};
