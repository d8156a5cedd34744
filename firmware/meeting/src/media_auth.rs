//! Hop-by-hop authentication of a participant's media on its unicast leg to the service (issue
//! 13 item 5): every RTP and RTCP datagram the box sends carries a trailer
//! `counter (u64, big-endian) || tag (12 bytes)`, where `tag` is HMAC-SHA256 over the packet and
//! the counter, truncated to 96 bits, keyed with HKDF-SHA256 of the participant's secret (from
//! the join reply; ring's `hkdf` and `hmac`). The service checks the tag (constant time), refuses
//! counters it saw or that fell out of a 64-packet window (replays), strips the trailer and
//! forwards the rest. Only an authenticated packet latches (or, after NAT rebinding,
//! re-latches) the participant's source address, so forged media and forged RTCP BYE from a
//! spoofed address change nothing. The multicast carries only what the box sealed (the e2e
//! ciphertext), never the trailer.

use std::sync::atomic::{AtomicU64, Ordering};

use ring::{hkdf, hmac};
use subtle::ConstantTimeEq;

/// Bytes of the counter.
const COUNTER_LEN: usize = 8;
/// Bytes of the truncated tag.
const TAG_LEN: usize = 12;
/// Bytes the trailer adds to every packet.
pub const TRAILER_LEN: usize = COUNTER_LEN + TAG_LEN;
/// How far behind the highest counter seen a packet may arrive (reordering) and still count.
pub const REPLAY_WINDOW: u64 = 64;

const SALT: &[u8] = b"roomcast media authentication";
const INFO: &[u8] = b"roomcast/media-auth/v1 box->service";
const DOWNLINK_INFO: &[u8] = b"roomcast/media-auth/v1 service->box";

/// The media authentication key of one participant.
#[derive(Clone)]
pub struct MediaKey(hmac::Key);

impl std::fmt::Debug for MediaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MediaKey(<redacted>)")
    }
}

impl MediaKey {
    /// The key derived from a participant's secret (as the join reply gives it).
    pub fn from_secret(secret: &str) -> Self {
        Self::derive(secret, INFO)
    }

    /// The key of the other direction, service -> box (the keyframe requests the service sends a
    /// sender): another HKDF output of the same secret, so a box's own sealed datagram reflected
    /// back to it never verifies as the service's.
    pub fn downlink_from_secret(secret: &str) -> Self {
        Self::derive(secret, DOWNLINK_INFO)
    }

    fn derive(secret: &str, info: &[u8]) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(secret.as_bytes());
        let info = [info];
        let okm = prk.expand(&info, hmac::HMAC_SHA256).expect("one SHA-256 output is a valid HKDF length");
        MediaKey(hmac::Key::from(okm))
    }

    fn tag(&self, packet: &[u8], counter: &[u8]) -> [u8; TAG_LEN] {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(packet);
        ctx.update(counter);
        let full = ctx.sign();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full.as_ref()[..TAG_LEN]);
        tag
    }
}

/// The box's side: appends the trailer with the next counter. Shared by the threads that send.
#[derive(Debug)]
pub struct Sealer {
    key: MediaKey,
    next: AtomicU64,
}

impl Sealer {
    /// A sealer for `key` whose first counter is `first` (the box starts at 1 after each join:
    /// a new join has a new secret, so counters never repeat under one key).
    pub fn new(key: MediaKey, first: u64) -> Self {
        Self { key, next: AtomicU64::new(first) }
    }

    /// `packet` with its trailer appended into `out` (cleared first).
    pub fn seal_into(&self, packet: &[u8], out: &mut Vec<u8>) {
        let counter = self.next.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        out.clear();
        out.reserve(packet.len() + TRAILER_LEN);
        out.extend_from_slice(packet);
        out.extend_from_slice(&counter);
        out.extend_from_slice(&self.key.tag(packet, &counter));
    }

    /// `packet` with its trailer.
    pub fn seal(&self, packet: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.seal_into(packet, &mut out);
        out
    }
}

/// Splits a datagram into (packet, counter, tag); `None` when it is too short to carry a trailer.
/// Never panics on untrusted bytes.
pub fn split(datagram: &[u8]) -> Option<(&[u8], u64, &[u8])> {
    let body_len = datagram.len().checked_sub(TRAILER_LEN)?;
    let (packet, trailer) = datagram.split_at(body_len);
    let (counter, tag) = trailer.split_at(COUNTER_LEN);
    let counter = u64::from_be_bytes(counter.try_into().ok()?);
    Some((packet, counter, tag))
}

/// Why a datagram did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Shorter than a trailer.
    Short,
    /// The tag does not match (forged, or another participant's key).
    BadTag,
    /// A counter already seen, or too old for the window.
    Replay,
}

/// The service's side for one participant: the key and the replay window.
#[derive(Debug, Clone)]
pub struct Verifier {
    key: MediaKey,
    /// Highest counter accepted (0: none yet; the box's counters start at 1).
    highest: u64,
    /// Bit i set: counter `highest - i` was accepted.
    seen: u64,
}

/// What a verified datagram is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified<'a> {
    /// The packet without its trailer (what is forwarded).
    pub packet: &'a [u8],
    /// Whether its counter is the highest seen so far (not a late, reordered packet): only
    /// such a packet moves the latched source address.
    pub newest: bool,
}

impl Verifier {
    /// A verifier with an empty window.
    pub fn new(key: MediaKey) -> Self {
        Self { key, highest: 0, seen: 0 }
    }

    /// Checks `datagram`'s tag and counter; on success records the counter and returns the
    /// packet without its trailer. A rejected datagram changes nothing.
    pub fn verify<'a>(&mut self, datagram: &'a [u8]) -> Result<Verified<'a>, Rejected> {
        let (packet, counter, tag) = split(datagram).ok_or(Rejected::Short)?;
        let expected = self.key.tag(packet, &counter.to_be_bytes());
        if !bool::from(expected.ct_eq(tag)) {
            return Err(Rejected::BadTag);
        }
        if counter == 0 {
            return Err(Rejected::Replay);
        }
        if counter > self.highest {
            let shift = counter - self.highest;
            self.seen = if shift >= 64 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.highest = counter;
            return Ok(Verified { packet, newest: true });
        }
        let age = self.highest - counter;
        if age >= REPLAY_WINDOW || self.seen & (1 << age) != 0 {
            return Err(Rejected::Replay);
        }
        self.seen |= 1 << age;
        Ok(Verified { packet, newest: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Sealer, Verifier) {
        let secret = "00112233445566778899aabbccddeeff";
        (Sealer::new(MediaKey::from_secret(secret), 1), Verifier::new(MediaKey::from_secret(secret)))
    }

    #[test]
    fn sealed_packets_verify_and_lose_their_trailer() {
        let (s, mut v) = pair();
        let sealed = s.seal(b"rtp packet");
        assert_eq!(sealed.len(), 10 + TRAILER_LEN);
        assert_eq!(v.verify(&sealed), Ok(Verified { packet: b"rtp packet", newest: true }));
    }

    #[test]
    fn forgeries_replays_and_other_keys_are_refused() {
        let (s, mut v) = pair();
        let sealed = s.seal(b"payload");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(v.verify(&bad), Err(Rejected::BadTag), "flipped bit in byte {i}");
        }
        assert_eq!(v.verify(&sealed[..5]), Err(Rejected::Short));
        assert!(v.verify(&sealed).is_ok());
        assert_eq!(v.verify(&sealed), Err(Rejected::Replay), "the same packet twice");
        let other = Sealer::new(MediaKey::from_secret("another participant's secret"), 1);
        assert_eq!(v.verify(&other.seal(b"payload")), Err(Rejected::BadTag));
        let downlink = Sealer::new(MediaKey::downlink_from_secret("00112233445566778899aabbccddeeff"), 99);
        assert_eq!(v.verify(&downlink.seal(b"payload")), Err(Rejected::BadTag), "the other direction's key");
        let zero = Sealer::new(MediaKey::from_secret("00112233445566778899aabbccddeeff"), 0);
        assert_eq!(
            Verifier::new(MediaKey::from_secret("00112233445566778899aabbccddeeff")).verify(&zero.seal(b"x")),
            Err(Rejected::Replay)
        );
    }

    #[test]
    fn the_window_takes_reordered_packets_once_and_refuses_old_ones() {
        let (s, mut v) = pair();
        let packets: Vec<Vec<u8>> = (0..100).map(|i| s.seal(format!("p{i}").as_bytes())).collect();
        assert!(v.verify(&packets[99]).unwrap().newest);
        // 99 - 64 = 35 is the oldest still inside the window.
        assert_eq!(v.verify(&packets[34]), Err(Rejected::Replay), "too old");
        let late = v.verify(&packets[40]).unwrap();
        assert!(!late.newest);
        assert_eq!(v.verify(&packets[40]), Err(Rejected::Replay));
        assert!(v.verify(&packets[98]).is_ok());
        // A jump far ahead clears the window.
        let far = Sealer::new(MediaKey::from_secret("00112233445566778899aabbccddeeff"), 1000);
        assert!(v.verify(&far.seal(b"x")).unwrap().newest);
        assert_eq!(v.verify(&packets[97]), Err(Rejected::Replay));
    }
}
