//! The one error type of `roomcast-net` (driver and socket-setup failures).
//!
//! Protocol errors stay inside the sans-IO machines of `roomcast-amt` (they are logged and the
//! offending datagram dropped); what surfaces here is what a caller can act on: a socket that
//! could not be bound, an interface that does not exist, a driver that has already stopped.

use std::net::SocketAddr;

/// Errors of the relay and gateway drivers.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Binding a UDP socket failed (address in use, not local, no permission...).
    #[error("cannot bind UDP socket to {addr}: {source}")]
    Bind {
        /// The address we tried to bind.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A network interface named on the command line or in the config does not exist.
    #[error("network interface {name:?} not found: {source}")]
    Interface {
        /// Interface name as given.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A socket option or multicast membership call failed.
    #[error("{what}: {source}")]
    Socket {
        /// What we were doing.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A textual SOURCE@GROUP:PORT (or similar) specification was malformed.
    #[error("invalid {what} {input:?}: {reason}")]
    Parse {
        /// What kind of value was being parsed (e.g. "group spec").
        what: &'static str,
        /// The offending text.
        input: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The relay state file (`--state`) could not be read or written. The message never
    /// contains the file's content (it holds secrets).
    #[error("relay state file {path}: {reason}")]
    StateFile {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The driver task has stopped (it was closed or failed), so the command cannot be delivered.
    #[error("the {0} driver has stopped")]
    Stopped(&'static str),
    /// An AMTRELAY record (RFC 8777) whose data is malformed.
    #[error("malformed AMTRELAY record: {0}")]
    AmtRelayRecord(&'static str),
    /// A DNS lookup of relay discovery (DRIAD) failed.
    #[error("DNS lookup of {name}: {reason}")]
    Dns {
        /// The name looked up.
        name: String,
        /// Why it failed.
        reason: String,
    },
    /// Any other IO error of the driver loop.
    #[error("network IO error: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias of this crate.
pub type Result<T, E = NetError> = std::result::Result<T, E>;
