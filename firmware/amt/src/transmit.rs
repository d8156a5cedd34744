//! [`Transmit`]: a datagram a state machine wants its driver to send.

use std::net::SocketAddr;

/// One UDP datagram to send from the AMT socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// The complete AMT message.
    pub payload: Vec<u8>,
}
