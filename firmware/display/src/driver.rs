//! The [`Display`] driver the box daemon owns: feed it the state and `now` whenever either may
//! have changed (or at [`Display::poll_timeout`]); it renders off-screen, sends a frame only when
//! it differs from the last one sent, at most once per [`MIN_REDRAW_INTERVAL`], and never lets
//! a missing or failing display stop the daemon: failures are logged and returned as
//! [`Outcome::Failed`], the backend drops to none and is reopened after [`RETRY_INTERVAL`].

use crate::backend::{self, Backend, BackendChoice};
use crate::{render, DisplayError, DisplayState, Frame, Phase};
use std::time::{Duration, Instant};

/// At most this often a new frame is sent (4 per second) to screens up to 320x240; larger
/// ones get a proportionally longer interval, up to 4x (see [`Display::min_interval_for_current`]).
pub const MIN_REDRAW_INTERVAL: Duration = Duration::from_millis(250);
/// After a failure, or when no display was found, try to open one again after this long.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(10);

/// What one [`Display::handle_state`] did.
#[derive(Debug)]
pub enum Outcome {
    /// A new frame was sent to the display.
    Sent,
    /// The screen already shows this; nothing sent.
    Unchanged,
    /// The last frame went out less than [`MIN_REDRAW_INTERVAL`] ago; call again at `until`.
    RateLimited {
        /// When a frame may be sent again.
        until: Instant,
    },
    /// No display (none configured, none found, or waiting to retry after a failure).
    NoDisplay,
    /// The display failed now (already logged); it is dropped and retried later.
    Failed(DisplayError),
}

type Opener = Box<dyn FnMut(&BackendChoice) -> Result<Box<dyn Backend>, DisplayError> + Send>;

/// A rate-limited, redraw-on-change, self-healing display.
pub struct Display {
    choice: BackendChoice,
    opener: Opener,
    backend: Option<Box<dyn Backend>>,
    /// When to try opening a backend again (None: try at the next update).
    reopen_at: Option<Instant>,
    /// The state and frame last sent, and when.
    last_state: Option<DisplayState>,
    last_frame: Option<Frame>,
    last_sent_at: Option<Instant>,
    /// Reuse of the render buffer between frames.
    spare: Option<Frame>,
    min_interval: Duration,
    retry_interval: Duration,
}

impl Display {
    /// A display that opens `choice` (lazily, at the first update).
    pub fn new(choice: BackendChoice) -> Self {
        Self::with_opener(choice, Box::new(|c: &BackendChoice| backend::open(c)))
    }

    /// A display that opens its backend with `opener` (tests inject fake backends with this).
    pub fn with_opener(choice: BackendChoice, opener: Opener) -> Self {
        Display {
            choice,
            opener,
            backend: None,
            reopen_at: None,
            last_state: None,
            last_frame: None,
            last_sent_at: None,
            spare: None,
            min_interval: MIN_REDRAW_INTERVAL,
            retry_interval: RETRY_INTERVAL,
        }
    }

    /// Changes the rate limit (default [`MIN_REDRAW_INTERVAL`]).
    pub fn set_min_interval(&mut self, d: Duration) {
        self.min_interval = d;
    }

    /// Changes the reopen delay (default [`RETRY_INTERVAL`]).
    pub fn set_retry_interval(&mut self, d: Duration) {
        self.retry_interval = d;
    }

    /// The backend in use, described, if any.
    pub fn backend_description(&self) -> Option<String> {
        self.backend.as_ref().map(|b| b.describe())
    }

    /// Shows `state` as of `now` if it changed and the rate limit allows.
    pub fn handle_state(&mut self, now: Instant, state: &DisplayState) -> Outcome {
        if self.backend.is_none() {
            if matches!(self.choice, BackendChoice::None) {
                return Outcome::NoDisplay;
            }
            if self.reopen_at.is_some_and(|t| now < t) {
                return Outcome::NoDisplay;
            }
            match (self.opener)(&self.choice) {
                Ok(b) => {
                    tracing::info!(display = %b.describe(), "display opened");
                    self.backend = Some(b);
                    self.reopen_at = None;
                    self.last_frame = None;
                    self.last_state = None;
                }
                Err(e) => {
                    // Quietly: "no display" is a normal configuration, logged at debug.
                    tracing::debug!(error = %e, "no display; will retry");
                    self.reopen_at = Some(now + self.retry_interval);
                    return Outcome::NoDisplay;
                }
            }
        }
        // Same state and nothing time-dependent on screen: nothing to do, not even a render.
        if self.last_state.as_ref() == Some(state) && !has_countdown(&state.phase) {
            return Outcome::Unchanged;
        }
        let min_interval = self.min_interval_for_current();
        if let Some(t) = self.last_sent_at {
            let until = t + min_interval;
            if now < until {
                return Outcome::RateLimited { until };
            }
        }
        let Some(backend) = self.backend.as_mut() else { return Outcome::NoDisplay };
        let size = backend.size();
        let mut frame = match self.spare.take() {
            Some(f) if f.width() == size.width && f.height() == size.height => f,
            _ => Frame::new(size),
        };
        render::draw(state, now, &mut frame);
        if self.last_frame.as_ref() == Some(&frame) {
            self.last_state = Some(state.clone());
            self.spare = Some(frame);
            return Outcome::Unchanged;
        }
        match backend.show(&frame, self.last_frame.as_ref()) {
            Ok(()) => {
                self.spare = self.last_frame.replace(frame);
                self.last_state = Some(state.clone());
                self.last_sent_at = Some(now);
                Outcome::Sent
            }
            Err(e) => {
                tracing::warn!(display = %backend.describe(), error = %e, "display failed; retrying in {:?}", self.retry_interval);
                self.backend = None;
                self.last_frame = None;
                self.last_state = None;
                self.reopen_at = Some(now + self.retry_interval);
                Outcome::Failed(e)
            }
        }
    }

    /// The rate limit for the current backend: [`MIN_REDRAW_INTERVAL`] (or the value set) up to
    /// 320x240 pixels, growing with the pixel count above that, to at most 4x, so a big
    /// framebuffer on a slow CPU (1280x800 under QEMU's emulation costs ~0.2 s per frame)
    /// cannot eat the box's CPU.
    pub fn min_interval_for_current(&self) -> Duration {
        let Some(b) = &self.backend else { return self.min_interval };
        let size = b.size();
        let area = u64::from(size.width) * u64::from(size.height);
        let factor = area.div_ceil(320 * 240).clamp(1, 4) as u32;
        self.min_interval * factor
    }

    /// When [`Display::handle_state`] should be called again even if the state does not change:
    /// the next countdown tick, the end of a rate limit with a change pending, or a reopen
    /// attempt. `None` when nothing is pending.
    pub fn poll_timeout(&self, now: Instant, state: &DisplayState) -> Option<Instant> {
        if self.backend.is_none() {
            return match self.choice {
                BackendChoice::None => None,
                _ => Some(self.reopen_at.unwrap_or(now)),
            };
        }
        let earliest = self.last_sent_at.map_or(now, |t| t + self.min_interval_for_current());
        let pending = self.last_state.as_ref() != Some(state);
        let tick = match &state.phase {
            Phase::RelayLost { retry_at, .. } => {
                let left = retry_at.remaining(now);
                // The displayed whole-second value changes when `left` crosses a second boundary.
                let to_boundary = match left.subsec_nanos() {
                    0 => Duration::from_secs(1),
                    n => Duration::from_nanos(u64::from(n)),
                };
                (!left.is_zero()).then(|| now + to_boundary)
            }
            _ => None,
        };
        match (pending, tick) {
            (true, _) => Some(earliest.max(now)),
            (false, Some(t)) => Some(t.max(earliest)),
            (false, None) => None,
        }
    }
}

fn has_countdown(phase: &Phase) -> bool {
    matches!(phase, Phase::RelayLost { .. })
}
