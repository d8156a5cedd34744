//! Pipelines the box daemon and the `stream`/`record` commands run:
//! [`sender`] (camera + mic -> encoders -> RTP/RTCP packets handed to a sink) and
//! [`receiver`] (RTP/RTCP packets in -> jitter buffer -> depacketizers -> Opus PCM and
//! encoded video frames out), and [`recorder`] (the receiver's output into files). Both cores are sans-IO (fed packets and `Instant`s); the
//! threaded [`sender::SenderPipeline`] drives capture devices, which block.
//!
//! Port layout (like RTP/AVP with RTCP on port+1): video RTP on `port`, video RTCP `port+1`,
//! audio RTP `port+2`, audio RTCP `port+3`. Payload types: [`PT_H264`], [`PT_AV1`], [`PT_OPUS`].

pub mod receiver;
pub mod recorder;
pub mod sender;

use std::net::IpAddr;

use roomcast_rtp::sdp::{MediaDescription, SessionDescription};

use crate::encoder::VideoCodec;

/// Dynamic payload type of H.264 video.
pub const PT_H264: u8 = 96;
/// Dynamic payload type of AV1 video (distinct from H.264 so a receiver can follow a
/// mid-stream fallback from hardware H.264 to software AV1).
pub const PT_AV1: u8 = 97;
/// Dynamic payload type of Opus audio.
pub const PT_OPUS: u8 = 111;
/// H.264 profile-level-id of what the hardware path asks for: constrained baseline, level 4.0.
pub const H264_PROFILE_LEVEL_ID: &str = "42e028";

/// The video payload type of a codec.
pub fn video_payload_type(codec: VideoCodec) -> u8 {
    match codec {
        VideoCodec::H264 => PT_H264,
        VideoCodec::Av1 => PT_AV1,
    }
}

/// The codec of a video payload type.
pub fn video_codec_of(pt: u8) -> Option<VideoCodec> {
    match pt {
        PT_H264 => Some(VideoCodec::H264),
        PT_AV1 => Some(VideoCodec::Av1),
        _ => None,
    }
}

/// What an SDP needs to say about a stream.
#[derive(Debug, Clone)]
pub struct StreamDescription {
    /// Session name (`s=`).
    pub name: String,
    /// Sender address (`o=`).
    pub origin: IpAddr,
    /// Destination (`c=`): unicast receiver or multicast group.
    pub destination: IpAddr,
    /// Video RTP port (audio is `port + 2`).
    pub port: u16,
    /// Video codec.
    pub video: VideoCodec,
    /// Frame rate (`a=framerate`).
    pub fps: u32,
    /// Audio channels.
    pub audio_channels: u8,
    /// Opus in-band FEC on.
    pub fec: bool,
}

/// Builds the SDP of a stream.
pub fn build_sdp(d: &StreamDescription) -> SessionDescription {
    let video = match d.video {
        VideoCodec::H264 => MediaDescription::h264(d.port, PT_H264, H264_PROFILE_LEVEL_ID, Some(d.fps as f64)),
        VideoCodec::Av1 => MediaDescription::av1(d.port, PT_AV1, Some(d.fps as f64)),
    };
    let audio = MediaDescription::opus(d.port.wrapping_add(2), PT_OPUS, d.audio_channels == 2, d.fec);
    SessionDescription::new(&d.name, d.origin, d.destination).with_media(video).with_media(audio)
}

#[cfg(test)]
mod tests;
