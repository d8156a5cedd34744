//! A sender's media key: the SRTP master key (16 bytes) and master salt (12 bytes) of
//! AEAD_AES_128_GCM, with a key id that grows at every rekey. The material is zeroized on drop,
//! `Debug` shows only the id, and JSON carries it as `{"id":N,"key":"56 hex digits"}`.

use rand::{CryptoRng, TryRngCore};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, Zeroizing};

use crate::CryptError;

/// Master key length of AEAD_AES_128_GCM.
pub const MASTER_KEY_LEN: usize = 16;
/// Master salt length of AEAD_AES_128_GCM.
pub const MASTER_SALT_LEN: usize = 12;
/// Key and salt together.
pub const MATERIAL_LEN: usize = MASTER_KEY_LEN + MASTER_SALT_LEN;

/// One sender's key.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKey {
    id: u32,
    material: Zeroizing<[u8; MATERIAL_LEN]>,
}

impl SrtpKey {
    /// A fresh key with id `id`, drawn from `rng` (the box passes the OS random source).
    pub fn generate(id: u32, rng: &mut impl CryptoRng) -> Self {
        let mut material = Zeroizing::new([0u8; MATERIAL_LEN]);
        rng.fill_bytes(material.as_mut());
        Self { id, material }
    }

    /// A fresh key from the operating system's random source.
    pub fn from_os(id: u32) -> Self {
        Self::generate(id, &mut rand::rngs::OsRng.unwrap_err())
    }

    /// A key from its parts.
    pub fn from_bytes(id: u32, material: [u8; MATERIAL_LEN]) -> Self {
        Self { id, material: Zeroizing::new(material) }
    }

    /// The key id (0 at join, one more at every rekey).
    pub fn id(&self) -> u32 {
        self.id
    }

    pub(crate) fn master_key(&self) -> &[u8] {
        &self.material[..MASTER_KEY_LEN]
    }

    pub(crate) fn master_salt(&self) -> &[u8] {
        &self.material[MASTER_KEY_LEN..]
    }

    /// Parses the hex form (56 digits); never panics.
    pub fn from_hex(id: u32, hex_text: &str) -> Result<Self, CryptError> {
        let mut material = Zeroizing::new([0u8; MATERIAL_LEN]);
        hex::decode_to_slice(hex_text, material.as_mut())
            .map_err(|e| CryptError::BadKey(format!("want {} hex digits: {e}", 2 * MATERIAL_LEN)))?;
        Ok(Self { id, material })
    }
}

impl std::fmt::Debug for SrtpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SrtpKey {{ id: {}, material: <redacted> }}", self.id)
    }
}

#[derive(Serialize, Deserialize)]
struct Wire {
    id: u32,
    key: String,
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl Serialize for SrtpKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Wire { id: self.id, key: hex::encode(self.material.as_ref()) }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for SrtpKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = Wire::deserialize(d)?;
        SrtpKey::from_hex(w.id, &w.key).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_json_round_trips() {
        let k = SrtpKey::from_bytes(3, [0xab; MATERIAL_LEN]);
        let dbg = format!("{k:?}");
        assert!(!dbg.to_lowercase().contains("abab"), "{dbg}");
        assert!(dbg.contains("id: 3"));
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(json, format!("{{\"id\":3,\"key\":\"{}\"}}", "ab".repeat(MATERIAL_LEN)));
        assert_eq!(serde_json::from_str::<SrtpKey>(&json).unwrap(), k);
    }

    #[test]
    fn bad_keys_are_refused() {
        for bad in ["", "abcd", &"zz".repeat(MATERIAL_LEN), &"ab".repeat(MATERIAL_LEN + 1)] {
            let json = format!("{{\"id\":1,\"key\":\"{bad}\"}}");
            assert!(serde_json::from_str::<SrtpKey>(&json).is_err(), "{bad}");
        }
    }

    #[test]
    fn os_keys_differ() {
        assert_ne!(SrtpKey::from_os(0), SrtpKey::from_os(0));
    }
}
