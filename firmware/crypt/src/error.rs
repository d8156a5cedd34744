//! The crate's error type.

/// What went wrong protecting or unprotecting a packet, or reading a key.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CryptError {
    /// A key in a roster or request that is not 28 bytes of hex.
    #[error("bad media key: {0}")]
    BadKey(String),
    /// SRTP refused the packet (not RTP, too short, authentication failed, replayed).
    #[error("srtp: {0}")]
    Srtp(String),
    /// No key of this sender decrypts the packet.
    #[error("no key of this sender decrypts the packet")]
    NoKey,
}

impl From<webrtc_srtp::Error> for CryptError {
    fn from(e: webrtc_srtp::Error) -> Self {
        CryptError::Srtp(e.to_string())
    }
}
