//! [`Transmit`]: a datagram a state machine wants its driver to send.

use std::net::{IpAddr, SocketAddr};

/// One UDP datagram to send from the AMT socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// The complete AMT message.
    pub payload: Vec<u8>,
    /// The local address to send it from, when it matters: a relay on a wildcard address answers
    /// from the address the request was sent to (`None`: the socket's own choice).
    pub source: Option<IpAddr>,
}
