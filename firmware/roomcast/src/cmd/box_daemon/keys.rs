//! The box's own media key: drawn from the OS random source at every join (sent in the join
//! request), and replaced when a participant leaves (a rekey, sent with `PUT …/key`), so a
//! departed room cannot decrypt what follows. The sender protects with the shared
//! [`Protector`]; the switch to a new key waits [`SWITCH_DELAY`] after the service took it,
//! so the other boxes' roster long polls bring it before the first packet that needs it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use roomcast_crypt::{Protector, SrtpKey};

use super::send::SharedProtector;

/// From the service's answer to a new key until the sender uses it.
pub const SWITCH_DELAY: Duration = Duration::from_millis(250);

/// The box's key state (sans-IO: the driver does the requests).
pub struct OwnKey {
    protector: SharedProtector,
    /// When the leave that asked for the pending rekey was seen.
    leave_seen: Option<Instant>,
}

impl Default for OwnKey {
    fn default() -> Self {
        Self::new()
    }
}

impl OwnKey {
    /// A placeholder key until the first join draws one.
    pub fn new() -> Self {
        let protector = Protector::new(SrtpKey::from_os(0)).expect("a generated key has the right length");
        Self { protector: Arc::new(Mutex::new(protector)), leave_seen: None }
    }

    /// The protector the sender shares.
    pub fn protector(&self) -> SharedProtector {
        self.protector.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Protector> {
        self.protector.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh key (id 0) for a join; the sender uses it from now on.
    pub fn handle_join(&mut self) -> SrtpKey {
        let key = SrtpKey::from_os(0);
        self.leave_seen = None;
        let _ = self.lock().rekey(key.clone());
        key
    }

    /// A participant left at `now`: the next key to announce (the current one's id plus one),
    /// unless a rekey is already on its way (`None`: that one covers this leave too).
    pub fn handle_leave(&mut self, now: Instant) -> Option<SrtpKey> {
        if self.leave_seen.is_some() {
            return None;
        }
        self.leave_seen = Some(now);
        let id = self.lock().key().id().wrapping_add(1);
        Some(SrtpKey::from_os(id))
    }

    /// The service took `key` and [`SWITCH_DELAY`] passed: the sender switches to it. Returns
    /// how long after the leave the old key stopped being used.
    pub fn handle_announced(&mut self, now: Instant, key: SrtpKey) -> Option<Duration> {
        let _ = self.lock().rekey(key);
        self.leave_seen.take().map(|t| now.saturating_duration_since(t))
    }

    /// The announcement failed: the next leave tries again.
    pub fn handle_announce_failed(&mut self) {
        self.leave_seen = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leave_rekeys_once_with_a_growing_id_and_the_sender_switches_when_announced() {
        let mut k = OwnKey::new();
        let joined = k.handle_join();
        assert_eq!(k.protector().lock().unwrap().key(), &joined);
        let t0 = Instant::now();
        let next = k.handle_leave(t0).expect("a rekey");
        assert_eq!(next.id(), 1);
        assert!(k.handle_leave(t0).is_none(), "one rekey in flight covers a second leave");
        assert_eq!(k.protector().lock().unwrap().key(), &joined, "not before the service took it");
        let tail = k.handle_announced(t0 + Duration::from_millis(300), next.clone());
        assert_eq!(tail, Some(Duration::from_millis(300)));
        assert_eq!(k.protector().lock().unwrap().key(), &next);
        assert_eq!(k.handle_leave(t0).unwrap().id(), 2);
        k.handle_announce_failed();
        assert_eq!(k.handle_leave(t0).unwrap().id(), 2);
    }
}
