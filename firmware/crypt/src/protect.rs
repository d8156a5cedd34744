//! The sending side: every RTP and RTCP packet a box sends is protected with its current key
//! (SRTP/SRTCP, AEAD_AES_128_GCM). A rekey replaces the key; packets from then on use only the
//! new one.

use webrtc_srtp::context::Context;
use webrtc_srtp::protection_profile::ProtectionProfile;

use crate::{checked_rtp_header, is_rtcp, CryptError, SrtpKey};

/// Protects one sender's packets.
pub struct Protector {
    key: SrtpKey,
    context: Context,
}

impl std::fmt::Debug for Protector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protector").field("key", &self.key).finish_non_exhaustive()
    }
}

/// A context for `key`, without webrtc-srtp's replay detector (the receiving side keeps its
/// own, moved only by authenticated packets: [`crate::replay`]).
pub(crate) fn context(key: &SrtpKey) -> Result<Context, CryptError> {
    Ok(Context::new(key.master_key(), key.master_salt(), ProtectionProfile::AeadAes128Gcm, None, None)?)
}

impl Protector {
    /// A protector using `key`.
    pub fn new(key: SrtpKey) -> Result<Self, CryptError> {
        let context = context(&key)?;
        Ok(Self { key, context })
    }

    /// The key in use.
    pub fn key(&self) -> &SrtpKey {
        &self.key
    }

    /// Switches to `key` (a rekey): every later packet uses it.
    pub fn rekey(&mut self, key: SrtpKey) -> Result<(), CryptError> {
        self.context = context(&key)?;
        self.key = key;
        Ok(())
    }

    /// SRTP (or SRTCP, told apart by the payload type) of one packet.
    pub fn protect(&mut self, packet: &[u8]) -> Result<Vec<u8>, CryptError> {
        let out = if is_rtcp(packet) {
            self.context.encrypt_rtcp(packet)?
        } else {
            checked_rtp_header(packet)?;
            self.context.encrypt_rtp(packet)?
        };
        Ok(out.to_vec())
    }
}
