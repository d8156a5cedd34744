//! End-to-end media encryption for roomcast: SRTP and SRTCP with AEAD_AES_128_GCM (RFC 7714)
//! through the maintained `webrtc-srtp` crate, one key per sender.
//!
//! Why SRTP and not SFrame: the RTP header stays readable, so every payload format, the SDP,
//! the jitter buffer, loss statistics and the service's SSRC routing stay as they are; each
//! packet is authenticated (16-byte GCM tag) and replay-checked. SFrame would need a generic
//! RTP packetization that no standard player speaks.
//!
//! - [`key`]: a sender's [`SrtpKey`] (key id, master key and salt; zeroized on drop, redacted
//!   `Debug`, hex in JSON).
//! - [`protect`]: [`Protector`], the sending side (one current key, replaced at a rekey).
//! - [`unprotect`]: [`Unprotector`], the receiving side for one remote sender: the current and,
//!   for a short overlap after a rekey, the previous key (trial decryption: SRTP has no key id
//!   in the packet), with counters of packets that failed.
//! - [`replay`]: the replay windows, moved only by packets that authenticated.

pub mod error;
pub mod key;
pub mod protect;
pub mod replay;
pub mod unprotect;

pub use error::CryptError;
pub use key::SrtpKey;
pub use protect::Protector;
pub use unprotect::{UnprotectStats, Unprotector, OVERLAP};

/// Bytes SRTP adds to an RTP packet (the GCM tag).
pub const SRTP_OVERHEAD: usize = 16;
/// Bytes SRTCP adds to an RTCP packet (the GCM tag and the 4-byte E flag and index).
pub const SRTCP_OVERHEAD: usize = 20;

/// The RTP header of `packet`, checked by our fuzzed parser with every RFC 8285 extension
/// element inside its extension: rtp 0.17 (under webrtc-srtp) reads elements past the
/// extension's end and panics on one that claims more bytes than the packet has (the fuzz
/// smoke found it), so nothing reaches webrtc-srtp unchecked.
pub(crate) fn checked_rtp_header(packet: &[u8]) -> Result<roomcast_rtp::RtpHeader, CryptError> {
    let parsed = roomcast_rtp::parse_rtp(packet).map_err(|e| CryptError::Srtp(format!("rtp header: {e}")))?;
    if let Some(ext) = &parsed.header.extension {
        ext.check_elements().map_err(|e| CryptError::Srtp(e.to_string()))?;
    }
    Ok(parsed.header)
}

/// Whether a datagram is RTCP (payload type 192..=223 in the second byte, RFC 5761) rather
/// than RTP.
pub fn is_rtcp(data: &[u8]) -> bool {
    data.len() >= 2 && (192..=223).contains(&data[1])
}
