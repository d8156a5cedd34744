//! The wire formats, as smoltcp's `wire` module keeps them: every AMT message ([`message`]),
//! the IGMPv3 and MLDv2 messages and their group records, the IPv4/IPv6 (+UDP) packets AMT
//! encapsulates ([`membership`], multicast data), checksums and time codes. Parsers take
//! untrusted bytes and return [`crate::AmtError`] instead of panicking; nothing here keeps
//! state. The state machines beside this folder ([`crate::Gateway`], [`crate::Relay`]) use it.
//!
//! The public modules are also re-exported at the crate root (`roomcast_amt::message`, ...).

pub(crate) mod checksum;
pub(crate) mod data;
pub mod group_record;
pub mod igmp;
pub(crate) mod ip;
pub mod membership;
pub mod message;
pub mod mld;
pub(crate) mod reader;
pub mod timecode;
