//! The receiving side for one remote sender: its current key and, for [`OVERLAP`] after a
//! rekey, its previous one. SRTP carries no key id, so a packet the current key does not
//! authenticate is tried with the previous key while the overlap lasts (trial decryption:
//! AES-GCM's tag makes a wrong key fail, never decrypt to garbage). Counters say how many
//! packets failed and when the previous key last decrypted one.

use std::time::{Duration, Instant};

use webrtc_srtp::context::Context;

use crate::protect::context;
use crate::replay::{Kind, Streams, MAX_STREAMS};
use crate::{checked_rtp_header, is_rtcp, CryptError, SrtpKey};

/// How long after a rekey the previous key is still accepted.
pub const OVERLAP: Duration = Duration::from_secs(2);

/// The shortest SRTCP packet AEAD_AES_128_GCM can produce: RTCP header and sender SSRC (8), the
/// 16-byte tag and the 4-byte E flag + index (RFC 7714 §9.1).
const MIN_SRTCP_LEN: usize = 8 + 16 + 4;

struct Keyed {
    key: SrtpKey,
    context: Context,
    /// Replay windows, moved only by packets that authenticated ([`crate::replay`]).
    replay: Streams,
}

impl Keyed {
    fn new(key: SrtpKey) -> Result<Self, CryptError> {
        Ok(Self { context: context(&key)?, key, replay: Streams::default() })
    }

    fn open(&mut self, packet: &[u8]) -> Result<Vec<u8>, CryptError> {
        let rtcp = is_rtcp(packet);
        // webrtc-srtp 0.17 indexes an SRTCP packet's sender SSRC before checking its length (a 4-byte
        // datagram panicked in the fuzz smoke): refuse anything shorter than header + SSRC, tag and index.
        if rtcp && packet.len() < MIN_SRTCP_LEN {
            return Err(CryptError::Srtp(format!("srtcp packet of {} bytes is too short", packet.len())));
        }
        let (ssrc, kind, index) = if rtcp {
            let ssrc = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
            let t = &packet[packet.len() - 4..];
            (ssrc, Kind::Rtcp, u64::from(u32::from_be_bytes([t[0], t[1], t[2], t[3]]) & 0x7fff_ffff))
        } else {
            let h = checked_rtp_header(packet)?;
            (h.ssrc, Kind::Rtp, self.replay.rtp_index(h.ssrc, h.sequence_number))
        };
        if !self.replay.is_fresh(ssrc, kind, index) {
            return Err(CryptError::Srtp(format!("ssrc {ssrc:08x} index {index}: replayed or too old")));
        }
        let out = if rtcp { self.context.decrypt_rtcp(packet)? } else { self.context.decrypt_rtp(packet)? };
        // Authenticated: now it counts.
        if !self.replay.accept(ssrc, kind, index) {
            return Err(CryptError::Srtp(format!("ssrc {ssrc:08x}: more than {MAX_STREAMS} streams on one key")));
        }
        Ok(out.to_vec())
    }
}

/// Counters of one sender's unprotection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnprotectStats {
    /// Packets decrypted (either key).
    pub ok: u64,
    /// Packets no key authenticated (forged, corrupted, replayed, or a key not yet known).
    pub failed: u64,
    /// Packets the previous key decrypted during the overlap.
    pub by_previous: u64,
}

/// Unprotects one remote sender's packets.
pub struct Unprotector {
    current: Keyed,
    previous: Option<(Keyed, Instant)>,
    stats: UnprotectStats,
    /// When the previous key last decrypted a packet, and when the current key arrived.
    previous_last_used: Option<Instant>,
    rekeyed_at: Option<Instant>,
}

impl std::fmt::Debug for Unprotector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unprotector")
            .field("current", &self.current.key)
            .field("previous", &self.previous.as_ref().map(|(k, until)| (&k.key, until)))
            .field("stats", &self.stats)
            .finish()
    }
}

impl Unprotector {
    /// An unprotector for a sender whose key is `key`.
    pub fn new(key: SrtpKey) -> Result<Self, CryptError> {
        Ok(Self {
            current: Keyed::new(key)?,
            previous: None,
            stats: UnprotectStats::default(),
            previous_last_used: None,
            rekeyed_at: None,
        })
    }

    /// The current key's id.
    pub fn key_id(&self) -> u32 {
        self.current.key.id()
    }

    /// The sender announced `key` at `now`: it becomes current, the old one stays accepted
    /// until `now + OVERLAP`. The same key again, or an older one (a stale roster), changes
    /// nothing.
    pub fn handle_key(&mut self, now: Instant, key: SrtpKey) -> Result<(), CryptError> {
        if key == self.current.key || key.id() < self.current.key.id() {
            return Ok(());
        }
        let old = std::mem::replace(&mut self.current, Keyed::new(key)?);
        self.previous = Some((old, now + OVERLAP));
        self.rekeyed_at = Some(now);
        Ok(())
    }

    /// The plain packet, or why not.
    pub fn unprotect(&mut self, now: Instant, packet: &[u8]) -> Result<Vec<u8>, CryptError> {
        if let Ok(plain) = self.current.open(packet) {
            self.stats.ok += 1;
            return Ok(plain);
        }
        self.handle_timeout(now);
        if let Some((prev, _)) = self.previous.as_mut() {
            if let Ok(plain) = prev.open(packet) {
                self.stats.ok += 1;
                self.stats.by_previous += 1;
                self.previous_last_used = Some(now);
                return Ok(plain);
            }
        }
        self.stats.failed += 1;
        Err(CryptError::NoKey)
    }

    /// Drops the previous key once its overlap is over.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.previous.as_ref().is_some_and(|(_, until)| now >= *until) {
            self.previous = None;
        }
    }

    /// When the previous key must be dropped.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.previous.as_ref().map(|(_, until)| *until)
    }

    /// The counters.
    pub fn stats(&self) -> UnprotectStats {
        self.stats
    }

    /// How long after the last rekey the previous key last decrypted a packet (`None` if it
    /// never did since).
    pub fn previous_key_tail(&self) -> Option<Duration> {
        match (self.rekeyed_at, self.previous_last_used) {
            (Some(r), Some(u)) if u >= r => Some(u - r),
            _ => None,
        }
    }
}
