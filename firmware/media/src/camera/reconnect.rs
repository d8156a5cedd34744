//! Keeps a camera stream alive across device loss: [`ReconnectingCamera`] wraps any
//! [`Camera`] with a way to reopen it. When the camera errors (USB unplug, driver error) it
//! delivers black frames at the negotiated rate, tries to reopen the device every second, and
//! resumes when a camera of the same size is back. Frame indices stay continuous, so encoders
//! and receivers never notice more than a black picture.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Camera, CaptureFormat};
use crate::clock::Clock;
use crate::error::Result;
use crate::frame::VideoFrame;

/// How often a lost camera is reopened.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Opens the camera again.
pub type Reopen = Box<dyn FnMut() -> Result<Box<dyn Camera>> + Send>;

/// A camera that survives its device going away.
pub struct ReconnectingCamera {
    current: Option<Box<dyn Camera>>,
    reopen: Reopen,
    format: CaptureFormat,
    description: String,
    clock: Arc<dyn Clock>,
    next_index: u64,
    next_retry: Instant,
    next_black: Option<Instant>,
    losses: u64,
}

impl ReconnectingCamera {
    /// Wraps an opened camera; `reopen` is called (at most once a second) while it is lost.
    pub fn new(first: Box<dyn Camera>, reopen: Reopen, clock: Arc<dyn Clock>) -> Self {
        let format = first.format();
        let description = first.describe();
        let now = clock.now();
        ReconnectingCamera {
            current: Some(first),
            reopen,
            format,
            description,
            clock,
            next_index: 0,
            next_retry: now,
            next_black: None,
            losses: 0,
        }
    }

    /// Times the camera was lost so far.
    pub fn losses(&self) -> u64 {
        self.losses
    }

    fn try_reopen(&mut self) {
        let now = self.clock.now();
        if now < self.next_retry {
            return;
        }
        self.next_retry = now + RETRY_INTERVAL;
        match (self.reopen)() {
            Ok(cam) => {
                let f = cam.format();
                if (f.width, f.height) == (self.format.width, self.format.height) {
                    tracing::info!(camera = %cam.describe(), "camera is back");
                    self.format = f;
                    self.current = Some(cam);
                    self.next_black = None;
                } else {
                    tracing::warn!(camera = %cam.describe(), "camera came back at {}x{}, stream is {}x{}: still sending black", f.width, f.height, self.format.width, self.format.height);
                }
            }
            Err(e) => tracing::debug!("camera reopen failed: {e}"),
        }
    }

    fn black(&mut self) -> VideoFrame {
        let now = self.clock.now();
        let due = self.next_black.unwrap_or(now);
        self.clock.sleep_until(due);
        self.next_black = Some(due.max(now) + Duration::from_secs(1) / self.format.fps.max(1));
        let index = self.next_index;
        self.next_index += 1;
        VideoFrame::black(self.format.width, self.format.height, index, self.clock.now())
    }
}

impl Camera for ReconnectingCamera {
    fn describe(&self) -> String {
        self.description.clone()
    }
    fn format(&self) -> CaptureFormat {
        self.format
    }
    fn is_lost(&self) -> bool {
        self.current.is_none()
    }
    fn capture(&mut self) -> Result<VideoFrame> {
        if self.current.is_none() {
            self.try_reopen();
        }
        if let Some(cam) = self.current.as_mut() {
            match cam.capture() {
                Ok(mut frame) => {
                    frame.index = self.next_index;
                    self.next_index += 1;
                    return Ok(frame);
                }
                Err(e) => {
                    self.losses += 1;
                    tracing::warn!(camera = %self.description, "camera lost ({e}); sending black frames, reopening every second");
                    self.current = None;
                    self.next_retry = self.clock.now() + RETRY_INTERVAL;
                }
            }
        }
        Ok(self.black())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::synthetic::SyntheticCamera;
    use crate::camera::CameraConfig;
    use crate::clock::ManualClock;
    use crate::error::MediaError;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A synthetic camera that fails after `frames` captures.
    struct Flaky {
        inner: SyntheticCamera,
        left: u32,
    }

    impl Camera for Flaky {
        fn describe(&self) -> String {
            "flaky".into()
        }
        fn format(&self) -> CaptureFormat {
            self.inner.format()
        }
        fn capture(&mut self) -> Result<VideoFrame> {
            if self.left == 0 {
                return Err(MediaError::DeviceGone("/dev/video9".into()));
            }
            self.left -= 1;
            self.inner.capture()
        }
    }

    #[test]
    fn black_frames_while_lost_then_the_camera_again() {
        let clock = ManualClock::new();
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let cfg = CameraConfig { width: 64, height: 48, fps: 10 };
        let first = Box::new(Flaky { inner: SyntheticCamera::new(cfg, shared.clone()).unwrap(), left: 3 });
        let attempts = Arc::new(AtomicU32::new(0));
        let (a, s) = (attempts.clone(), shared.clone());
        let reopen: Reopen = Box::new(move || {
            // The device is back on the third attempt.
            if a.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(MediaError::DeviceGone("/dev/video9".into()))
            } else {
                Ok(Box::new(Flaky { inner: SyntheticCamera::new(cfg, s.clone()).unwrap(), left: 100 })
                    as Box<dyn Camera>)
            }
        });
        let mut cam = ReconnectingCamera::new(first, reopen, shared);
        let black = VideoFrame::black(64, 48, 0, clock.now()).data;
        let mut kinds = Vec::new();
        for i in 0..40u64 {
            let f = cam.capture().unwrap();
            assert_eq!(f.index, i, "indices stay continuous");
            assert_eq!(f.data.len(), black.len());
            kinds.push(if f.data == black { 'B' } else { 'C' });
        }
        let s: String = kinds.iter().collect();
        // 3 camera frames, black at 10 fps for the ~3 s of failed reopen attempts, then camera.
        assert!(s.starts_with("CCCB"), "{s}");
        assert!(s.ends_with("CCCC"), "{s}");
        let blacks = s.matches('B').count();
        assert!((20..=31).contains(&blacks), "about 3 s of black at 10 fps, got {blacks}: {s}");
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
        assert_eq!(cam.losses(), 1);
        assert!(!cam.is_lost());
    }

    #[test]
    fn a_camera_back_at_another_size_is_not_used() {
        let clock = ManualClock::new();
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let cfg = CameraConfig { width: 64, height: 48, fps: 10 };
        let first = Box::new(Flaky { inner: SyntheticCamera::new(cfg, shared.clone()).unwrap(), left: 0 });
        let s = shared.clone();
        let reopen: Reopen = Box::new(move || {
            let other = CameraConfig { width: 32, height: 32, fps: 10 };
            Ok(Box::new(SyntheticCamera::new(other, s.clone()).unwrap()) as Box<dyn Camera>)
        });
        let mut cam = ReconnectingCamera::new(first, reopen, shared);
        for _ in 0..30 {
            let f = cam.capture().unwrap();
            assert_eq!((f.width, f.height), (64, 48));
        }
        assert!(cam.is_lost());
    }
}
