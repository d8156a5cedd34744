//! The one error type of roomcast-rtp: every parser, packetizer, depacketizer and writer in the
//! crate reports problems as an [`RtpError`] naming what was wrong with the input.

/// Everything that can go wrong in roomcast-rtp.
#[derive(Debug, thiserror::Error)]
pub enum RtpError {
    /// The input ended before a field that must be there.
    #[error("{what} truncated: need {needed} bytes, have {have}")]
    Truncated {
        /// Which structure was being read.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        have: usize,
    },
    /// RTP/RTCP version field was not 2.
    #[error("unsupported RTP/RTCP version {0} (expected 2)")]
    BadVersion(u8),
    /// Padding length byte is zero or larger than the payload.
    #[error("invalid padding length {padding} for {available} payload bytes")]
    BadPadding {
        /// The padding count from the last byte.
        padding: usize,
        /// Bytes available for payload + padding.
        available: usize,
    },
    /// A configured maximum packet size leaves no room for payload.
    #[error("max packet size {max} is too small (at least {min} bytes needed)")]
    PacketSizeTooSmall {
        /// Configured maximum.
        max: usize,
        /// Minimum this packetizer needs.
        min: usize,
    },
    /// A frame handed to a packetizer was empty or not in the expected bitstream format.
    #[error("invalid {codec} frame: {reason}")]
    InvalidFrame {
        /// Codec name.
        codec: &'static str,
        /// What was wrong.
        reason: &'static str,
    },
    /// An RTP payload did not follow its payload format.
    #[error("malformed {codec} RTP payload: {reason}")]
    MalformedPayload {
        /// Codec name.
        codec: &'static str,
        /// What was wrong.
        reason: &'static str,
    },
    /// An RFC 8285 header extension element runs past the extension block.
    #[error("RTP header extension element at byte {at} of {len}: {reason}")]
    BadExtensionElement {
        /// The element's offset in the extension data.
        at: usize,
        /// The extension data's length.
        len: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// An RTCP packet was malformed.
    #[error("malformed RTCP: {0}")]
    Rtcp(&'static str),
    /// An SDP description could not be parsed or lacks something required.
    #[error("SDP line {line}: {reason}")]
    Sdp {
        /// 1-based line number (0 when not about one line).
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// An I/O error from a file writer's sink.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Shorthand for results in this crate.
pub type Result<T, E = RtpError> = std::result::Result<T, E>;

pub(crate) fn truncated(what: &'static str, needed: usize, have: usize) -> RtpError {
    RtpError::Truncated { what, needed, have }
}
