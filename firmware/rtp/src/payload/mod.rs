//! RTP payload formats: the [`packetizer`] traits and one module per codec, [`h264`]
//! (RFC 6184), [`av1`] (the AOM RTP payload format) and [`opus`] (RFC 7587), with the frame
//! reassembly they share.

pub mod av1;
pub mod h264;
pub mod opus;
pub mod packetizer;
pub(crate) mod reassembly;
