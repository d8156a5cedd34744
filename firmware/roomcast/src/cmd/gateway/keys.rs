//! The room's media key for `roomcast gateway --meeting-server` (sans-IO): the gateway joined
//! the meeting watch-only, so the join reply and every later roster it asks for as that
//! participant carry the senders' SRTP keys. [`RoomKeys`] follows the key of the one room it
//! forwards and decrypts each received SRTP/SRTCP packet into plain RTP/RTCP for the local
//! player (the current key, and the previous one for `roomcast_crypt::OVERLAP` after a rekey).

use std::time::Instant;

use roomcast_crypt::{CryptError, UnprotectStats, Unprotector};
use roomcast_meeting::roster::Roster;

/// The key state of the forwarded room's sender.
#[derive(Debug)]
pub struct RoomKeys {
    /// The room's participant id (its groups are the ones joined; a rejoin gets new ones).
    participant: String,
    unprotector: Option<Unprotector>,
    /// Packets dropped because no key was known yet.
    keyless: u64,
}

impl RoomKeys {
    /// Follows `participant`'s key, starting from `roster` (the join reply's).
    pub fn new(now: Instant, participant: &str, roster: &Roster) -> Result<Self, CryptError> {
        let mut keys = Self { participant: participant.to_string(), unprotector: None, keyless: 0 };
        keys.handle_roster(now, roster)?;
        Ok(keys)
    }

    /// Whether a key is known.
    pub fn has_key(&self) -> bool {
        self.unprotector.is_some()
    }

    /// A newer roster: the participant's key (if it changed) becomes current, the previous one
    /// stays accepted for the overlap. A roster without the participant changes nothing.
    pub fn handle_roster(&mut self, now: Instant, roster: &Roster) -> Result<(), CryptError> {
        let Some(key) = roster.participants.iter().find(|p| p.id == self.participant).and_then(|p| p.key.clone())
        else {
            return Ok(());
        };
        match self.unprotector.as_mut() {
            Some(u) => u.handle_key(now, key),
            None => {
                self.unprotector = Some(Unprotector::new(key)?);
                Ok(())
            }
        }
    }

    /// The plain packet of one received SRTP or SRTCP packet, or why not (no key yet, or no
    /// key authenticates it: forged, corrupted, replayed, or from a key not yet announced).
    pub fn unprotect(&mut self, now: Instant, packet: &[u8]) -> Result<Vec<u8>, CryptError> {
        match self.unprotector.as_mut() {
            Some(u) => u.unprotect(now, packet),
            None => {
                self.keyless += 1;
                Err(CryptError::NoKey)
            }
        }
    }

    /// Drops the previous key once its overlap is over.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(u) = self.unprotector.as_mut() {
            u.handle_timeout(now);
        }
    }

    /// When [`Self::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.unprotector.as_ref().and_then(Unprotector::poll_timeout)
    }

    /// The decryption counters (packets without any known key count as failed).
    pub fn stats(&self) -> UnprotectStats {
        let mut s = self.unprotector.as_ref().map(Unprotector::stats).unwrap_or_default();
        s.failed += self.keyless;
        s
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use roomcast_crypt::{Protector, SrtpKey, OVERLAP};
    use roomcast_meeting::roster::{GroupPair, ParticipantInfo, Ports, SdpPair, SourceGroup, Ssrcs};

    use super::*;

    fn roster(version: u64, keys: &[(&str, Option<&SrtpKey>)]) -> Roster {
        let sg = SourceGroup { source: "10.0.0.1".parse().unwrap(), group: "232.1.0.1".parse().unwrap() };
        let participants = keys
            .iter()
            .map(|(id, key)| ParticipantInfo {
                id: id.to_string(),
                room: format!("room-{id}"),
                ssrc: Ssrcs { video: 1, audio: 2 },
                groups: GroupPair { ipv4: sg, ipv6: sg },
                ports: Ports { video: 5004, audio: 5006 },
                sdp: SdpPair { ipv4: String::new(), ipv6: String::new() },
                caps: Default::default(),
                key: key.cloned(),
                muted: false,
            })
            .collect();
        Roster { meeting: "m".into(), version, epoch: 1, relay: None, participants }
    }

    fn rtp(seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 111];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]);
        p.extend_from_slice(b"opus payload");
        p
    }

    #[test]
    fn follows_the_rooms_key_through_a_rekey_and_ignores_the_others() {
        let t0 = Instant::now();
        let (k0, other) = (SrtpKey::from_os(0), SrtpKey::from_os(0));
        let mut tx = Protector::new(k0.clone()).unwrap();
        let mut keys = RoomKeys::new(t0, "a", &roster(3, &[("a", Some(&k0)), ("b", Some(&other))])).unwrap();
        assert_eq!(keys.unprotect(t0, &tx.protect(&rtp(1)).unwrap()).unwrap(), rtp(1));
        // B's key is not the room's.
        let mut from_b = Protector::new(other).unwrap();
        assert!(keys.unprotect(t0, &from_b.protect(&rtp(2)).unwrap()).is_err());
        // A rekeys: both keys work during the overlap, only the new one after it.
        let k1 = SrtpKey::from_os(1);
        keys.handle_roster(t0, &roster(4, &[("a", Some(&k1))])).unwrap();
        let late_old = tx.protect(&rtp(3)).unwrap();
        tx.rekey(k1).unwrap();
        assert_eq!(keys.unprotect(t0, &tx.protect(&rtp(4)).unwrap()).unwrap(), rtp(4));
        assert_eq!(keys.unprotect(t0, &late_old).unwrap(), rtp(3));
        assert_eq!(keys.poll_timeout(), Some(t0 + OVERLAP));
        let mut stale = Protector::new(k0).unwrap();
        let after = t0 + OVERLAP + Duration::from_millis(1);
        keys.handle_timeout(after);
        assert!(keys.unprotect(after, &stale.protect(&rtp(9)).unwrap()).is_err(), "old key gone after the overlap");
        let s = keys.stats();
        assert_eq!((s.ok, s.failed, s.by_previous), (3, 2, 1));
    }

    #[test]
    fn a_room_without_a_key_decrypts_nothing_until_one_arrives() {
        let t0 = Instant::now();
        let mut keys = RoomKeys::new(t0, "a", &roster(1, &[("a", None)])).unwrap();
        assert!(!keys.has_key());
        let k = SrtpKey::from_os(0);
        let packet = Protector::new(k.clone()).unwrap().protect(&rtp(1)).unwrap();
        assert!(keys.unprotect(t0, &packet).is_err());
        assert_eq!(keys.stats().failed, 1);
        keys.handle_roster(t0, &roster(2, &[("a", Some(&k))])).unwrap();
        assert_eq!(keys.unprotect(t0, &packet).unwrap(), rtp(1));
    }
}
