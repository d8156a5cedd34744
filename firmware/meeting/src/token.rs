//! Secrets that must never be logged: a meeting's access token and a participant's secret.
//! [`Token`]'s `Debug` is redacted and it has no `Display`; the service keeps only SHA-256
//! digests ([`Digest`]) and compares them in constant time, so neither the length nor the
//! first differing byte of a guess shows in the time an answer takes.

use std::fmt;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// A secret string (an access token or a participant secret).
#[derive(Clone, Default)]
pub struct Token(String);

impl Token {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, to put in a request header. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Its SHA-256 digest.
    pub fn digest(&self) -> Digest {
        Digest(Sha256::digest(self.0.as_bytes()).into())
    }

    /// `bytes` random bytes as lowercase hex (the caller draws them from the OS random source).
    pub fn from_random(bytes: &[u8]) -> Self {
        Self(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Tokens compare by digest, in constant time (for tests and `ControlRequest`'s `PartialEq`).
impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        self.digest().matches(&other.digest())
    }
}

impl Eq for Token {}

impl From<&str> for Token {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

/// The SHA-256 digest of a [`Token`]: what the service stores and compares.
#[derive(Clone, Copy)]
pub struct Digest([u8; 32]);

impl Digest {
    /// Constant-time equality.
    pub fn matches(&self, other: &Digest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_redacted_and_compare_by_digest() {
        let t = Token::new("hunter2-very-secret");
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
        assert!(!format!("{:?}", t.digest()).contains("hunter2"));
        assert_eq!(t, Token::from("hunter2-very-secret"));
        assert_ne!(t, Token::from("hunter2"));
        assert_ne!(t, Token::from(""));
        assert!(t.digest().matches(&Token::new("hunter2-very-secret").digest()));
        assert_eq!(Token::from_random(&[0xab, 0x01]).expose(), "ab01");
    }
}
