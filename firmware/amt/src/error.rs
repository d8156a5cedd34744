//! The one error type of `roomcast-amt`: every way untrusted bytes, bad configuration or a
//! protocol rule can be rejected, each naming the problem.

use std::net::SocketAddr;

/// Everything that can go wrong in the AMT protocol core.
///
/// Parsers return these instead of panicking; the state machines return them from
/// `handle_datagram` so a driver can count or log rejected datagrams and keep running.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmtError {
    /// The input ended before a field was complete.
    #[error("{what} truncated: need {needed} bytes, got {got}")]
    Truncated {
        /// Which structure was being parsed.
        what: &'static str,
        /// Bytes required.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
    /// A length field or the overall size of a structure is impossible.
    #[error("{what} has an invalid length {len}")]
    BadLength {
        /// Which structure.
        what: &'static str,
        /// The offending length.
        len: usize,
    },
    /// AMT version nibble other than 0.
    #[error("unsupported AMT version {0} (only version 0 exists)")]
    BadVersion(u8),
    /// AMT message type outside 1..=7.
    #[error("unknown AMT message type {0}")]
    UnknownType(u8),
    /// A checksum did not verify.
    #[error("bad {what} checksum")]
    BadChecksum {
        /// Which checksum (IPv4 header, UDP, IGMP, MLD).
        what: &'static str,
    },
    /// A protocol/type/version field holds a value this implementation does not accept here.
    #[error("unexpected {what} value {value}")]
    Unexpected {
        /// Which field.
        what: &'static str,
        /// The value found.
        value: u32,
    },
    /// An encapsulated IP packet is a fragment; AMT data and IGMP/MLD are never fragmented here.
    #[error("fragmented IP packets are not supported")]
    Fragmented,
    /// Payload too large to fit an IP packet.
    #[error("payload of {0} bytes does not fit one IP packet")]
    PayloadTooLarge(usize),
    /// A textual source/group could not be parsed.
    #[error("invalid source-group {input:?}: {reason}")]
    InvalidSourceGroup {
        /// What was given.
        input: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Source and group address of different families.
    #[error("source and group must be the same address family")]
    FamilyMismatch,
    /// The group is not a source-specific multicast group (232.0.0.0/8 or ff3x::/32).
    #[error("group {0} is not in the SSM range (232.0.0.0/8 or ff3x::/32)")]
    NotSsm(std::net::IpAddr),
    /// The source is not a usable unicast address.
    #[error("source {0} is not a unicast address")]
    BadSource(std::net::IpAddr),
    /// Response MAC did not verify against the current or previous relay secret.
    #[error("response MAC from {0} does not verify")]
    MacMismatch(SocketAddr),
    /// An update/teardown used a nonce the tunnel has already replaced.
    #[error("stale request nonce {nonce:#010x} from {from}")]
    StaleNonce {
        /// Who sent it.
        from: SocketAddr,
        /// The nonce.
        nonce: u32,
    },
    /// A nonce that does not match the one this gateway is using.
    #[error("nonce {got:#010x} does not match expected {expected:#010x}")]
    NonceMismatch {
        /// Expected nonce.
        expected: u32,
        /// Received nonce.
        got: u32,
    },
    /// No tunnel exists for this gateway endpoint and nonce.
    #[error("no tunnel for {0}")]
    UnknownTunnel(SocketAddr),
    /// The relay already serves its maximum number of tunnels.
    #[error("tunnel limit reached ({0} tunnels)")]
    TunnelLimit(usize),
    /// The gateway's address already holds its maximum number of tunnels.
    #[error("tunnel limit reached for the address of {from} ({limit} tunnels per address)")]
    AddressTunnelLimit {
        /// The gateway.
        from: SocketAddr,
        /// The configured limit.
        limit: usize,
    },
    /// The access policy does not let this gateway receive some (S,G)s it reported (kept in
    /// its tunnel, not served).
    #[error("{from} may not receive {denied} of the (S,G)s it joined (access policy)")]
    AccessDenied {
        /// The gateway.
        from: std::net::SocketAddr,
        /// How many memberships were denied.
        denied: u64,
    },
    /// A tunnel tried to join more groups than allowed.
    #[error("group limit reached for {from} ({limit} groups per tunnel)")]
    GroupLimit {
        /// The gateway.
        from: SocketAddr,
        /// The configured limit.
        limit: usize,
    },
    /// Too many messages from one sender in a short time.
    #[error("rate limit exceeded by {0}")]
    RateLimited(SocketAddr),
    /// A valid message that this role does not accept (e.g. a Request sent to a gateway).
    #[error("unexpected {message} from {from}")]
    UnexpectedMessage {
        /// Message name.
        message: &'static str,
        /// Sender.
        from: SocketAddr,
    },
    /// The gateway has been closed.
    #[error("the gateway is closed")]
    Closed,
}
