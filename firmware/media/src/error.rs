//! The crate's one error type: every capture, conversion, encoder and pipeline failure of
//! roomcast-media is a [`MediaError`] naming what went wrong and where.

use std::path::PathBuf;

/// Result alias of roomcast-media.
pub type Result<T> = std::result::Result<T, MediaError>;

/// Everything that can go wrong in roomcast-media.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// A device node could not be opened or queried.
    #[error("device {path}: {what}: {source}")]
    Device {
        /// The device (e.g. `/dev/video0` or `hw:Loopback,1`).
        path: PathBuf,
        /// What we were doing.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The device disappeared (unplugged); the caller may retry opening it.
    #[error("device {0} is gone (unplugged?)")]
    DeviceGone(PathBuf),
    /// The device offers nothing we can use.
    #[error("device {path}: {reason}")]
    Unsupported {
        /// The device.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// A frame buffer had the wrong size or layout for its declared format.
    #[error("bad {format} frame: {reason}")]
    BadFrame {
        /// The pixel format.
        format: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// An MJPEG frame could not be decoded.
    #[error("MJPEG decode failed: {0}")]
    Jpeg(String),
    /// The microphone (ALSA) failed.
    #[error("ALSA {device}: {what}: {message}")]
    Alsa {
        /// The ALSA device name.
        device: String,
        /// What we were doing.
        what: &'static str,
        /// The ALSA error text.
        message: String,
    },
    /// A video encoder failed.
    #[error("{encoder} encoder: {reason}")]
    Encoder {
        /// Which encoder ("rav1e", "V4L2 M2M H.264").
        encoder: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// A video decoder failed (bad or unsupported stream; the decoder keeps going).
    #[error("{decoder} decoder: {reason}")]
    Decoder {
        /// Which decoder ("dav1d").
        decoder: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// A Y4M input (file camera) is malformed.
    #[error("Y4M input: {0}")]
    Y4m(crate::camera::y4m::Y4mFault),
    /// Opus failed.
    #[error("Opus: {0}")]
    Opus(String),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// RTP/RTCP/SDP processing failed.
    #[error("RTP: {0}")]
    Rtp(String),
    /// Other IO.
    #[error("{what}: {source}")]
    Io {
        /// What we were doing.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl MediaError {
    /// An encoder error.
    pub fn encoder(encoder: &'static str, reason: impl Into<String>) -> Self {
        MediaError::Encoder { encoder, reason: reason.into() }
    }
    /// An IO error with context.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        MediaError::Io { what: what.into(), source }
    }
}
