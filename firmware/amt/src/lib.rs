//! Sans-IO AMT (RFC 7450): wire formats and the gateway and relay state machines.
//!
//! Bytes and time go in, packets to send and timer deadlines come out; no sockets, no tokio.
//! The tokio drivers live in `roomcast-net`.
