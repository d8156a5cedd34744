//! The meeting: the sans-IO meeting service and participant logic, its HTTP/JSON control
//! protocol, and the box's configuration (`roomcast.toml` and board defaults).
//!
//! - [`service`]: the meeting service's state machine (join, roster, leave, silence timeout),
//!   fed control requests, RTP/RTCP packets and time; it says where each packet is forwarded.
//! - [`control`]: the control protocol (HTTP/1.1 + JSON, documented there and in the
//!   README): request parsing from untrusted bytes, response encoding.
//! - [`client`]: the participant side of the control protocol (request encoding, response parsing).
//! - [`participant`]: the box's roster tracking: which (S,G) to join and leave.
//! - [`config`]: `roomcast.toml` with validation errors naming the key and line.
//! - [`sdp`]: the SDP describing one participant's SSM group.

pub mod client;
pub mod config;
pub mod control;
pub mod endpoint;
pub mod error;
pub mod media_auth;
pub mod participant;
pub mod pool;
pub mod roster;
pub mod rtp_peek;
pub mod sdp;
pub mod service;
pub mod throttle;
pub mod tls;
pub mod token;

pub use error::MeetingError;
pub use roster::{Caps, GroupPair, ParticipantInfo, Roster, SourceGroup};
pub use service::{MeetingService, ServiceConfig};
