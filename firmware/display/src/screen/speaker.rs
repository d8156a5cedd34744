//! The active speaker from the rooms' audio levels, sans-IO: fed `(now, room, dBFS)` for each
//! audio frame, it names the room to highlight. A room becomes active once it has been the
//! loudest one above [`THRESHOLD_DBFS`] for [`TAKE_OVER`]; the active room stays active until
//! another takes over or it has been quiet for [`HOLD`] (so pauses between words don't flicker).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Quieter than this is not speech.
pub const THRESHOLD_DBFS: f32 = -45.0;
/// How long a room must be the loudest to take over.
pub const TAKE_OVER: Duration = Duration::from_millis(300);
/// How long the active room stays active after it went quiet.
pub const HOLD: Duration = Duration::from_millis(1500);
/// A level older than this no longer counts (the room stopped sending audio).
const STALE: Duration = Duration::from_millis(250);

/// The tracker.
#[derive(Debug, Default)]
pub struct SpeakerTracker {
    levels: HashMap<String, (Instant, f32)>,
    last_loud: HashMap<String, Instant>,
    active: Option<String>,
    candidate: Option<(String, Instant)>,
}

impl SpeakerTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// One level measurement of `room`'s audio at `now`.
    pub fn handle_level(&mut self, now: Instant, room: &str, dbfs: f32) {
        let dbfs = if dbfs.is_finite() { dbfs } else { -120.0 };
        self.levels.insert(room.to_owned(), (now, dbfs));
        if dbfs >= THRESHOLD_DBFS {
            self.last_loud.insert(room.to_owned(), now);
        }
        self.update(now);
    }

    /// A room left: forget it.
    pub fn remove(&mut self, room: &str) {
        self.levels.remove(room);
        self.last_loud.remove(room);
        if self.active.as_deref() == Some(room) {
            self.active = None;
        }
        if self.candidate.as_ref().is_some_and(|(r, _)| r == room) {
            self.candidate = None;
        }
    }

    /// The room to highlight as of `now`.
    pub fn active(&mut self, now: Instant) -> Option<&str> {
        self.update(now);
        self.active.as_deref()
    }

    fn update(&mut self, now: Instant) {
        let loudest = self
            .levels
            .iter()
            .filter(|(_, (at, db))| now.saturating_duration_since(*at) <= STALE && *db >= THRESHOLD_DBFS)
            .max_by(|a, b| a.1 .1.total_cmp(&b.1 .1).then_with(|| b.0.cmp(a.0)))
            .map(|(room, _)| room.clone());
        match loudest {
            Some(room) if self.active.as_ref() == Some(&room) => self.candidate = None,
            Some(room) => match &self.candidate {
                Some((c, since)) if *c == room => {
                    if now.saturating_duration_since(*since) >= TAKE_OVER {
                        self.active = Some(room);
                        self.candidate = None;
                    }
                }
                _ => self.candidate = Some((room, now)),
            },
            None => self.candidate = None,
        }
        if let Some(a) = &self.active {
            let quiet_for = self.last_loud.get(a).map_or(Duration::MAX, |t| now.saturating_duration_since(*t));
            if quiet_for > HOLD {
                self.active = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds 20 ms audio frames for `ms` with the given levels; returns the active room after.
    fn speak(t: &mut SpeakerTracker, now: &mut Instant, ms: u64, levels: &[(&str, f32)]) -> Option<String> {
        for _ in 0..ms / 20 {
            *now += Duration::from_millis(20);
            for (room, db) in levels {
                t.handle_level(*now, room, *db);
            }
        }
        t.active(*now).map(str::to_owned)
    }

    #[test]
    fn loudest_room_takes_over_after_a_moment_and_holds_through_pauses() {
        let mut t = SpeakerTracker::new();
        let mut now = Instant::now();
        assert_eq!(speak(&mut t, &mut now, 200, &[("a", -20.0), ("b", -60.0)]), None, "not yet");
        assert_eq!(speak(&mut t, &mut now, 200, &[("a", -20.0), ("b", -60.0)]).as_deref(), Some("a"));
        // A pause shorter than the hold keeps a.
        assert_eq!(speak(&mut t, &mut now, 1000, &[("a", -70.0), ("b", -70.0)]).as_deref(), Some("a"));
        // b speaks: takes over after 300 ms, not at once.
        assert_eq!(speak(&mut t, &mut now, 100, &[("a", -70.0), ("b", -25.0)]).as_deref(), Some("a"));
        assert_eq!(speak(&mut t, &mut now, 400, &[("a", -70.0), ("b", -25.0)]).as_deref(), Some("b"));
        // Silence longer than the hold: nobody.
        assert_eq!(speak(&mut t, &mut now, 2000, &[("a", -70.0), ("b", -70.0)]), None);
    }

    #[test]
    fn a_room_that_leaves_is_forgotten_and_nan_is_quiet() {
        let mut t = SpeakerTracker::new();
        let mut now = Instant::now();
        assert_eq!(speak(&mut t, &mut now, 500, &[("a", -10.0)]).as_deref(), Some("a"));
        t.remove("a");
        assert_eq!(t.active(now), None);
        assert_eq!(speak(&mut t, &mut now, 500, &[("c", f32::NAN)]), None);
    }
}
