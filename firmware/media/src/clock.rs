//! The clock trait: capture timestamps and pacing go through it so that tests and the
//! synthetic sources can run on a manual clock, and the real pipeline on the monotonic clock.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A source of monotonic time that can also wait.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Instant;
    /// Waits until `deadline` (returns at once if it has passed).
    fn sleep_until(&self, deadline: Instant);
}

/// The system's monotonic clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep_until(&self, deadline: Instant) {
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
    }
}

/// A clock that only moves when told to, or when something sleeps on it (sleeping jumps
/// to the deadline): synthetic sources on it run as fast as the CPU allows.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<Instant>>,
}

impl ManualClock {
    /// A manual clock starting at the real now.
    pub fn new() -> Self {
        ManualClock { now: Arc::new(Mutex::new(Instant::now())) }
    }
    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn sleep_until(&self, deadline: Instant) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        if deadline > *now {
            *now = deadline;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_jumps_on_sleep_and_never_goes_back() {
        let c = ManualClock::new();
        let t0 = c.now();
        c.sleep_until(t0 + Duration::from_millis(20));
        assert_eq!(c.now() - t0, Duration::from_millis(20));
        c.sleep_until(t0);
        assert_eq!(c.now() - t0, Duration::from_millis(20));
        c.advance(Duration::from_millis(5));
        assert_eq!(c.now() - t0, Duration::from_millis(25));
    }
}
