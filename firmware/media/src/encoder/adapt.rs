//! Media adaptation, sans-IO: fed each frame's encode time and the receivers' reported loss
//! (RTCP RR fraction lost) with the `now` they happened at, it picks the sender's mode: which
//! share of the camera's frames is encoded (frame rate) and the bitrate.
//!
//! - CPU (as WebRTC's overuse detector): when, over the last [`WINDOW`] (at least
//!   [`MIN_FRAMES`] frames), [`OVER_SHARE_PERCENT`] of the frames took longer than the budget
//!   of the current frame rate, the frame rate steps down (every 2nd, then 3rd, 4th frame);
//!   after [`CPU_CALM`] in which the mean encode time over the window stayed under
//!   [`UNDERUSE_PERCENT`] of the budget of the next higher rate, it climbs one step (a mean, as
//!   WebRTC's encode usage, so one slow frame on a loaded machine does not restart the wait).
//! - Loss: a report over [`LOSS_HIGH`] steps the bitrate down (75 %, 50 %, 35 %), at most one
//!   step per [`LOSS_HOLD`]; after [`LOSS_CALM`] of reports under [`LOSS_LOW`] it climbs one.
//!
//! A step down answers within about one window; climbing two steps takes about
//! 2 × [`CPU_CALM`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How far back the CPU watch looks.
pub const WINDOW: Duration = Duration::from_secs(1);
/// Fewest frames in the window before it judges.
pub const MIN_FRAMES: usize = 5;
/// Share of frames over the budget, in percent, that steps the frame rate down.
pub const OVER_SHARE_PERCENT: usize = 75;
/// A window whose mean encode time is under this share of the next rate's budget (percent)
/// counts as calm.
pub const UNDERUSE_PERCENT: u32 = 70;
/// Calm time before the frame rate climbs a step.
pub const CPU_CALM: Duration = Duration::from_secs(3);
/// Frame-rate divisors (encode every n-th camera frame).
pub const FPS_DIVISORS: [u32; 4] = [1, 2, 3, 4];
/// Bitrate shares (percent of the configured bitrate).
pub const BITRATE_PERCENT: [u32; 4] = [100, 75, 50, 35];
/// Reported loss (fraction lost, 1/256) that steps the bitrate down: 10 %.
pub const LOSS_HIGH: u8 = 26;
/// Reported loss under which the bitrate may climb: 2 %.
pub const LOSS_LOW: u8 = 5;
/// Least time between two bitrate steps down.
pub const LOSS_HOLD: Duration = Duration::from_secs(1);
/// Time of low loss before the bitrate climbs a step.
pub const LOSS_CALM: Duration = Duration::from_secs(4);

/// The sender's current mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// Frames encoded per second.
    pub fps: u32,
    /// Encode every n-th camera frame.
    pub fps_divisor: u32,
    /// Video bitrate.
    pub bitrate_bps: u32,
    /// Why the mode is below full ("" at full).
    pub reason: &'static str,
}

impl Mode {
    /// True at full frame rate and bitrate.
    pub fn is_full(&self) -> bool {
        self.reason.is_empty()
    }

    /// A short label for the display and the state file: "full", or e.g. "15 fps 750 kbit/s (cpu)".
    pub fn label(&self) -> String {
        if self.is_full() {
            "full".into()
        } else {
            format!("{} fps {} kbit/s ({})", self.fps, self.bitrate_bps / 1000, self.reason)
        }
    }

    /// The status display's form: `None` at full, else e.g. "15fps 750k".
    pub fn short(&self) -> Option<String> {
        (!self.is_full()).then(|| format!("{}fps {}k", self.fps, self.bitrate_bps / 1000))
    }
}

/// The mode, shared with the display.
pub type SharedMode = Arc<Mutex<Mode>>;

/// The adaptation controller.
#[derive(Debug, Clone)]
pub struct Adaptation {
    fps: u32,
    bitrate_bps: u32,
    cpu_step: usize,
    loss_step: usize,
    frames: VecDeque<(Instant, Duration)>,
    calm_since: Option<Instant>,
    last_loss_step: Option<Instant>,
    low_loss_since: Option<Instant>,
    changed: bool,
}

impl Adaptation {
    /// A controller for a camera at `fps` and a configured `bitrate_bps`.
    pub fn new(fps: u32, bitrate_bps: u32) -> Self {
        Adaptation {
            fps: fps.max(1),
            bitrate_bps,
            cpu_step: 0,
            loss_step: 0,
            frames: VecDeque::new(),
            calm_since: None,
            last_loss_step: None,
            low_loss_since: None,
            changed: false,
        }
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        let divisor = FPS_DIVISORS[self.cpu_step];
        let reason = match (self.cpu_step > 0, self.loss_step > 0) {
            (false, false) => "",
            (true, false) => "cpu",
            (false, true) => "loss",
            (true, true) => "cpu+loss",
        };
        Mode {
            fps: (self.fps / divisor).max(1),
            fps_divisor: divisor,
            bitrate_bps: (u64::from(self.bitrate_bps) * u64::from(BITRATE_PERCENT[self.loss_step]) / 100) as u32,
            reason,
        }
    }

    /// True once after the mode changed (the caller then applies it).
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    fn budget(&self, step: usize) -> Duration {
        Duration::from_secs(1) * FPS_DIVISORS[step] / self.fps
    }

    /// One frame took `took` to encode and finished at `now`.
    pub fn handle_encode(&mut self, now: Instant, took: Duration) {
        self.frames.push_back((now, took));
        while self.frames.front().is_some_and(|&(t, _)| now.saturating_duration_since(t) > WINDOW) {
            self.frames.pop_front();
        }
        let budget = self.budget(self.cpu_step);
        let span = self.frames.front().map_or(Duration::ZERO, |&(t, d)| now.saturating_duration_since(t) + d);
        let over = self.frames.iter().filter(|(_, d)| *d > budget).count();
        if self.frames.len() >= MIN_FRAMES
            && span >= WINDOW
            && over * 100 >= self.frames.len() * OVER_SHARE_PERCENT
            && self.cpu_step + 1 < FPS_DIVISORS.len()
        {
            self.cpu_step += 1;
            self.frames.clear();
            self.calm_since = None;
            self.changed = true;
            tracing::info!(step = self.cpu_step, "encoder over its budget: lower frame rate");
            return;
        }
        if self.cpu_step == 0 {
            return;
        }
        let total: Duration = self.frames.iter().map(|(_, d)| *d).sum();
        let mean = total / self.frames.len().max(1) as u32;
        let calm = self.frames.len() >= MIN_FRAMES && mean < self.budget(self.cpu_step - 1) * UNDERUSE_PERCENT / 100;
        if !calm {
            self.calm_since = None;
            return;
        }
        let since = *self.calm_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= CPU_CALM {
            self.cpu_step -= 1;
            self.frames.clear();
            self.calm_since = None;
            self.changed = true;
            tracing::info!(step = self.cpu_step, "encoder keeps up again: higher frame rate");
        }
    }

    /// A receiver reported `fraction_lost` (1/256) on our video at `now`.
    pub fn handle_loss(&mut self, now: Instant, fraction_lost: u8) {
        if fraction_lost >= LOSS_HIGH {
            self.low_loss_since = None;
            let held = self.last_loss_step.is_some_and(|t| now < t + LOSS_HOLD);
            if !held && self.loss_step + 1 < BITRATE_PERCENT.len() {
                self.loss_step += 1;
                self.last_loss_step = Some(now);
                self.changed = true;
                tracing::info!(step = self.loss_step, fraction_lost, "receivers report loss: lower bitrate");
            }
        } else if fraction_lost < LOSS_LOW {
            let since = *self.low_loss_since.get_or_insert(now);
            if self.loss_step > 0 && now.saturating_duration_since(since) >= LOSS_CALM {
                self.loss_step -= 1;
                self.low_loss_since = Some(now);
                self.changed = true;
                tracing::info!(step = self.loss_step, "loss gone: higher bitrate");
            }
        } else {
            self.low_loss_since = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a 30 fps camera for `secs` from `t`: a frame is encoded when the mode keeps it and
    /// the encoder is free (a busy encoder misses camera frames, as a real-time sender does),
    /// each taking `took`. Returns the time of the first mode change and the frames encoded in
    /// the last second.
    fn run(a: &mut Adaptation, t: &mut Instant, secs: u64, took: Duration) -> (Option<Duration>, usize) {
        let start = *t;
        let mut busy_until = start;
        let mut changed = None;
        let mut encoded = Vec::new();
        for camera in 1..=secs * 30 {
            let at = start + Duration::from_millis(1000 * camera / 30);
            if camera % u64::from(a.mode().fps_divisor) != 0 || at < busy_until {
                continue;
            }
            busy_until = at + took;
            a.handle_encode(busy_until, took);
            encoded.push(at);
            if a.take_changed() && changed.is_none() {
                changed = Some(busy_until - start);
            }
        }
        *t = start + Duration::from_secs(secs);
        let last = encoded.iter().filter(|e| **e + Duration::from_secs(1) > *t).count();
        (changed, last)
    }

    #[test]
    fn an_occasional_slow_frame_does_not_hold_the_climb_back() {
        let mut a = Adaptation::new(20, 1_000_000);
        let mut t = Instant::now();
        run(&mut a, &mut t, 3, Duration::from_millis(120));
        assert_eq!(a.mode().fps_divisor, 3, "{:?}", a.mode());
        // Fast again, but every 8th frame takes 60 ms (over 70 % of the full rate's 50 ms).
        let mut climbed = None;
        for i in 1..=200u64 {
            let took = Duration::from_millis(if i % 8 == 0 { 60 } else { 8 });
            t += Duration::from_millis(50);
            a.handle_encode(t, took);
            if a.mode().is_full() {
                climbed = Some(i);
                break;
            }
        }
        let frames = climbed.expect("back at the full rate");
        assert!(frames * 50 <= 10_000, "after {frames} frames");
        // And a mean over the budget does keep it down.
        let mut b = Adaptation::new(20, 1_000_000);
        let mut t = Instant::now();
        run(&mut b, &mut t, 3, Duration::from_millis(120));
        for _ in 0..200 {
            t += Duration::from_millis(50);
            b.handle_encode(t, Duration::from_millis(80));
        }
        assert!(b.mode().fps_divisor >= 2, "{:?}", b.mode());
    }

    #[test]
    fn a_slow_encoder_steps_down_within_2_s_keeps_real_time_and_climbs_back_within_10_s() {
        let mut a = Adaptation::new(30, 1_000_000);
        let mut t = Instant::now();
        let (changed, _) = run(&mut a, &mut t, 5, Duration::from_millis(10));
        assert_eq!((changed, a.mode().is_full()), (None, true));
        // 55 ms per frame at 30 fps (33 ms budget): half the frames fit.
        let (changed, fps) = run(&mut a, &mut t, 6, Duration::from_millis(55));
        assert!(changed.expect("stepped down") <= Duration::from_secs(2), "{changed:?}");
        let m = a.mode();
        assert_eq!((m.fps_divisor, m.reason), (2, "cpu"), "{m:?}");
        assert!((13..=16).contains(&fps), "real time at the lower rate: {fps} frames in the last second");
        assert_eq!(m.label(), "15 fps 1000 kbit/s (cpu)");
        assert_eq!(m.short().as_deref(), Some("15fps 1000k"));
        // Fast again: back to full within 10 s.
        let (changed, fps) = run(&mut a, &mut t, 10, Duration::from_millis(10));
        assert!(changed.is_some());
        assert!(a.mode().is_full(), "{:?}", a.mode());
        assert!(fps >= 29, "{fps}");
    }

    #[test]
    fn a_very_slow_encoder_steps_down_further_and_one_slow_frame_does_nothing() {
        let mut a = Adaptation::new(30, 1_000_000);
        let mut t = Instant::now();
        for i in 0..300 {
            t += Duration::from_millis(33);
            a.handle_encode(t, if i % 10 == 0 { Duration::from_millis(200) } else { Duration::from_millis(10) });
        }
        assert!(a.mode().is_full());
        let (_, fps) = run(&mut a, &mut t, 8, Duration::from_millis(110));
        assert_eq!(a.mode().fps_divisor, 4, "{:?}", a.mode());
        assert!((6..=9).contains(&fps), "{fps}");
    }

    #[test]
    fn reported_loss_lowers_the_bitrate_held_per_second_and_it_climbs_back() {
        let mut a = Adaptation::new(30, 1_000_000);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        a.handle_loss(at(0), 3);
        assert!(a.mode().is_full() && !a.take_changed());
        a.handle_loss(at(100), 40); // 15 %
        assert!(a.take_changed());
        assert_eq!((a.mode().bitrate_bps, a.mode().reason), (750_000, "loss"));
        a.handle_loss(at(600), 40); // held
        assert_eq!(a.mode().bitrate_bps, 750_000);
        a.handle_loss(at(1100), 40);
        assert_eq!(a.mode().bitrate_bps, 500_000);
        // Low loss: one step up after LOSS_CALM, the next after another.
        for s in 2..=10 {
            a.handle_loss(at(1100 + 1000 * s), 0);
        }
        assert!(a.mode().is_full(), "{:?}", a.mode());
        assert_eq!(a.mode().label(), "full");
        assert_eq!(a.mode().short(), None);
    }
}
