//! Video encoders behind one trait: [`VideoEncoder`] takes I420 frames and returns encoded
//! frames (H.264 Annex B access units or AV1 temporal units), makes a keyframe on request and
//! changes bitrate while running.
//!
//! Implementations: [`rav1e::Rav1eEncoder`] and `aom::AomEncoder` (software AV1; libaom in
//! real-time mode, cargo feature `aom`), [`m2m::M2mEncoder`] (V4L2
//! memory-to-memory hardware H.264, probed, never assumed) and [`auto::AutoEncoder`] (hardware
//! when the probe passes, software fallback mid-stream, its choice exposed as
//! [`auto::EncoderState`]; it steps from rav1e to libaom when frames go over budget, measured
//! by [`budget::BudgetWatch`]). [`slow::SlowEncoder`] is the test hook that slows one down.

pub mod adapt;
#[cfg(feature = "aom")]
pub mod aom;
pub mod auto;
pub mod budget;
pub mod m2m;
pub mod rav1e;
pub mod slow;

use crate::error::Result;
use crate::frame::VideoFrame;

/// The codec an encoder produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// H.264, Annex B byte stream (start codes), one access unit per frame.
    H264,
    /// AV1, low-overhead bitstream format (OBUs with size fields), one temporal unit per frame.
    Av1,
}

impl VideoCodec {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "H.264",
            VideoCodec::Av1 => "AV1",
        }
    }
}

/// Settings common to every encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Target bitrate in bit/s.
    pub bitrate_bps: u32,
    /// Frames between keyframes (GOP length).
    pub keyframe_interval: u32,
    /// rav1e speed preset (0 slowest .. 10 fastest); boards use 9-10.
    pub speed: u8,
    /// Encoder threads (rav1e).
    pub threads: usize,
}

impl EncoderConfig {
    /// Checks that `frame` is an I420 frame of the configured size (the software encoders'
    /// input contract); `encoder` names the encoder in the error.
    pub fn check_i420_frame(&self, encoder: &'static str, frame: &VideoFrame) -> Result<()> {
        if (frame.width, frame.height) != (self.width, self.height) {
            return Err(crate::error::MediaError::encoder(
                encoder,
                format!(
                    "frame is {}x{}, encoder configured for {}x{}",
                    frame.width, frame.height, self.width, self.height
                ),
            ));
        }
        if frame.data.len() < VideoFrame::i420_len(frame.width, frame.height) {
            return Err(crate::error::MediaError::BadFrame {
                format: "I420",
                reason: format!("{} bytes", frame.data.len()),
            });
        }
        Ok(())
    }

    /// Sensible defaults for a size and rate: ~1 Mbit/s, keyframe every 2 s, speed 10, 2 threads.
    pub fn new(width: u32, height: u32, fps: u32) -> Self {
        EncoderConfig {
            width,
            height,
            fps,
            bitrate_bps: 1_000_000,
            keyframe_interval: fps.saturating_mul(2).max(1),
            speed: 10,
            threads: 2,
        }
    }
}

/// One encoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// The codec of `data`.
    pub codec: VideoCodec,
    /// Annex B access unit (H.264) or temporal unit (AV1).
    pub data: Vec<u8>,
    /// True for an IDR / key frame.
    pub keyframe: bool,
    /// Index of the captured frame this came from (for RTP timestamps).
    pub index: u64,
    /// Capture time of that frame (for latency).
    pub captured_at: std::time::Instant,
}

/// A video encoder.
pub trait VideoEncoder: Send {
    /// The codec produced.
    fn codec(&self) -> VideoCodec;
    /// Short description ("rav1e speed 10, 2 threads").
    fn describe(&self) -> String;
    /// Encodes one frame; returns zero or more finished frames (encoders may delay output).
    fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<EncodedFrame>>;
    /// Makes the next encoded frame a keyframe.
    fn request_keyframe(&mut self);
    /// Changes the target bitrate while running.
    fn set_bitrate(&mut self, bitrate_bps: u32) -> Result<()>;
    /// Drains frames still inside the encoder (end of stream).
    fn flush(&mut self) -> Result<Vec<EncodedFrame>>;
}

impl<E: VideoEncoder + ?Sized> VideoEncoder for Box<E> {
    fn codec(&self) -> VideoCodec {
        (**self).codec()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<EncodedFrame>> {
        (**self).encode(frame)
    }
    fn request_keyframe(&mut self) {
        (**self).request_keyframe()
    }
    fn set_bitrate(&mut self, bitrate_bps: u32) -> Result<()> {
        (**self).set_bitrate(bitrate_bps)
    }
    fn flush(&mut self) -> Result<Vec<EncodedFrame>> {
        (**self).flush()
    }
}
