//! Sans-IO RTP/RTCP/SDP for roomcast: RTP header parsing and building, packetizers and
//! depacketizers for H.264 (RFC 6184), AV1 (AOM RTP payload format) and Opus (RFC 7587),
//! RTCP reports, SDP descriptions, a receive-side jitter buffer, and the file writers the
//! recorder needs (IVF, Annex B, Ogg Opus). No sockets, no clocks: callers feed bytes and
//! `Instant`s and get packets, frames and deadlines back.
//!
//! Layout: [`wire`] (RTP header, RTCP, sequence numbers, SDP), [`payload`] (packetizers and
//! depacketizers per codec), [`file`] (IVF, Annex B, Ogg Opus), [`jitter`], [`clock`].
//!
//! Sending: create a [`Packetizer`] per stream (`H264Packetizer::new(ssrc, pt, AMT_MAX_RTP_PACKET_SIZE, first_sequence)`,
//! the first sequence number drawn by the caller: the crate reads no clock and no randomness),
//! call `packetize(frame, rtp_timestamp, &mut out)` per encoded frame and send each `out` entry
//! as one UDP datagram. Receiving: [`jitter::JitterBuffer`] -> [`parse_rtp`] -> a [`Depacketizer`].

#![warn(missing_docs)]

pub mod clock;
mod error;
pub mod file;
pub mod jitter;
pub mod payload;
pub mod wire;

// The modules at their former paths (`roomcast_rtp::rtcp`, `roomcast_rtp::ivf`, ...).
pub use file::{annexb, ivf, ogg_opus};
use payload::reassembly;
pub use payload::{av1, h264, opus, packetizer};
pub use wire::{header, rtcp, sdp, seq};

pub use av1::{Av1Depacketizer, Av1Packetizer};
pub use clock::{MediaClock, AMT_MAX_RTP_PACKET_SIZE, AMT_TUNNEL_OVERHEAD, OPUS_CLOCK_RATE, VIDEO_CLOCK_RATE};
pub use error::{Result, RtpError};
pub use h264::{H264Depacketizer, H264Packetizer};
pub use header::{build_rtp, parse_rtp, RtpExtension, RtpHeader, RtpPacket};
pub use opus::{OpusDepacketizer, OpusPacketizer};
pub use packetizer::{Depacketizer, DepacketizerStats, Frame, Packetizer, RtpSender};
pub use reassembly::MAX_FRAME_SIZE;
pub use seq::SeqExtender;
