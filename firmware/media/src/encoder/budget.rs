//! Frame-budget watch, sans-IO: fed each frame's encode time with the `now` it finished at, it
//! says when the encoder has been over its budget (1/fps) for a sustained window.
//!
//! The window is the last second of frames (at least [`MIN_FRAMES`] frames, looked at only once it
//! spans [`WINDOW`]); it is "over" when at least [`OVER_SHARE`] of those frames took longer than the
//! budget. One slow frame (a keyframe, a scheduler hiccup) never trips it; an encoder that cannot
//! keep the frame rate trips it about one second after it started to lag.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back the watch looks.
pub const WINDOW: Duration = Duration::from_secs(1);
/// Fewest frames in the window before it judges.
pub const MIN_FRAMES: usize = 5;
/// Share of frames over budget, in percent, that counts as "over budget".
pub const OVER_SHARE_PERCENT: usize = 75;
/// The same share as a fraction (for docs and messages).
pub const OVER_SHARE: f64 = OVER_SHARE_PERCENT as f64 / 100.0;

/// Why the watch tripped (for the log and the display's reason).
#[derive(Debug, Clone, PartialEq)]
pub struct OverBudget {
    /// Frames over the budget in the window.
    pub over: usize,
    /// Frames in the window.
    pub frames: usize,
    /// The budget (1/fps).
    pub budget: Duration,
    /// Median encode time in the window.
    pub median: Duration,
    /// The time the window spans.
    pub span: Duration,
}

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} frames over the {:.1} ms budget in {:.1} s (median {:.1} ms)",
            self.over,
            self.frames,
            self.budget.as_secs_f64() * 1000.0,
            self.span.as_secs_f64(),
            self.median.as_secs_f64() * 1000.0
        )
    }
}

/// The per-frame encode-time watch.
#[derive(Debug, Clone)]
pub struct BudgetWatch {
    budget: Duration,
    frames: VecDeque<(Instant, Duration)>,
}

impl BudgetWatch {
    /// A watch for `fps` frames per second (budget 1/fps).
    pub fn new(fps: u32) -> Self {
        BudgetWatch { budget: Duration::from_secs(1) / fps.max(1), frames: VecDeque::new() }
    }

    /// The frame budget.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// Forgets every frame (after a switch of encoder).
    pub fn reset(&mut self) {
        self.frames.clear();
    }

    /// One frame took `took` to encode and finished at `now`. Returns `Some` when the window
    /// is over budget (and then starts a new window, so the next verdict needs a new second).
    pub fn handle_frame(&mut self, now: Instant, took: Duration) -> Option<OverBudget> {
        self.frames.push_back((now, took));
        while let Some(&(t, _)) = self.frames.front() {
            if now.saturating_duration_since(t) > WINDOW {
                self.frames.pop_front();
            } else {
                break;
            }
        }
        let first = self.frames.front()?.0;
        // The oldest frame finished `took` after it started: count that in the span.
        let span = now.saturating_duration_since(first) + self.frames.front()?.1;
        if self.frames.len() < MIN_FRAMES || span < WINDOW {
            return None;
        }
        let over = self.frames.iter().filter(|(_, d)| *d > self.budget).count();
        if over * 100 < self.frames.len() * OVER_SHARE_PERCENT {
            return None;
        }
        let mut times: Vec<Duration> = self.frames.iter().map(|(_, d)| *d).collect();
        times.sort();
        let verdict =
            OverBudget { over, frames: self.frames.len(), budget: self.budget, median: times[times.len() / 2], span };
        self.frames.clear();
        Some(verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `n` frames paced at `interval`, each taking `took`; returns the frame index that tripped.
    fn run(watch: &mut BudgetWatch, t: &mut Instant, n: usize, interval: Duration, took: Duration) -> Option<usize> {
        for i in 0..n {
            *t += interval.max(took);
            if watch.handle_frame(*t, took).is_some() {
                return Some(i);
            }
        }
        None
    }

    #[test]
    fn fast_frames_never_trip() {
        let mut w = BudgetWatch::new(15);
        let mut t = Instant::now();
        assert_eq!(run(&mut w, &mut t, 300, Duration::from_millis(66), Duration::from_millis(40)), None);
    }

    #[test]
    fn sustained_slow_frames_trip_after_about_a_second() {
        let mut w = BudgetWatch::new(15);
        let mut t = Instant::now();
        let tripped = run(&mut w, &mut t, 100, Duration::from_millis(66), Duration::from_millis(90)).unwrap();
        // 90 ms per frame: a second of frames is 11-12 of them.
        assert!((9..=12).contains(&tripped), "{tripped}");
    }

    #[test]
    fn isolated_slow_frames_do_not_trip() {
        let mut w = BudgetWatch::new(30);
        let mut t = Instant::now();
        for i in 0..300 {
            let took = if i % 3 == 0 { Duration::from_millis(50) } else { Duration::from_millis(10) };
            t += Duration::from_millis(33);
            assert!(w.handle_frame(t, took).is_none(), "frame {i}");
        }
    }

    #[test]
    fn verdict_describes_the_window() {
        let mut w = BudgetWatch::new(10);
        let mut t = Instant::now();
        let mut verdict = None;
        for _ in 0..30 {
            t += Duration::from_millis(200);
            verdict = verdict.or(w.handle_frame(t, Duration::from_millis(200)));
        }
        let v = verdict.unwrap();
        assert_eq!(v.budget, Duration::from_millis(100));
        assert_eq!(v.over, v.frames);
        assert!(v.to_string().contains("over the 100.0 ms budget"), "{v}");
    }
}
