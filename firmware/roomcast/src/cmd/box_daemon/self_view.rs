//! `[screen] self_view`: this room's own camera picture on its screen. The camera is wrapped
//! so that the raw frame the encoder gets is also handed to the screen thread, at most every
//! [`SELF_VIEW_INTERVAL`] (a copy of the I420 frame; no extra encode or decode).

use std::time::{Duration, Instant};

use roomcast_media::camera::{Camera, CaptureFormat};
use roomcast_media::frame::VideoFrame;

use super::screen::ScreenFeed;

/// Fastest self-view refresh (5 pictures a second: enough to see oneself, cheap to copy).
pub const SELF_VIEW_INTERVAL: Duration = Duration::from_millis(200);

/// A camera whose frames also go to the screen's self-view, paced.
pub struct SelfViewCamera {
    inner: Box<dyn Camera>,
    feed: ScreenFeed,
    last: Option<Instant>,
}

impl SelfViewCamera {
    /// Wraps `inner`; its frames reach `feed` at most every [`SELF_VIEW_INTERVAL`].
    pub fn new(inner: Box<dyn Camera>, feed: ScreenFeed) -> Self {
        SelfViewCamera { inner, feed, last: None }
    }

    /// Whether a frame captured at `now` goes to the screen (and the pacing moves on).
    fn due(&mut self, now: Instant) -> bool {
        let due = self.last.is_none_or(|t| now.saturating_duration_since(t) >= SELF_VIEW_INTERVAL);
        if due {
            self.last = Some(now);
        }
        due
    }
}

impl Camera for SelfViewCamera {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn format(&self) -> CaptureFormat {
        self.inner.format()
    }
    fn capture(&mut self) -> roomcast_media::Result<VideoFrame> {
        let frame = self.inner.capture()?;
        if self.due(Instant::now()) {
            self.feed.handle_self_view(frame.width, frame.height, frame.data.clone());
        }
        Ok(frame)
    }
    fn is_lost(&self) -> bool {
        self.inner.is_lost()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomcast_media::camera::synthetic::SyntheticCamera;
    use roomcast_media::camera::CameraConfig;
    use roomcast_media::clock::SystemClock;
    use std::sync::Arc;

    #[test]
    fn frames_reach_the_self_view_paced() {
        let cc = CameraConfig { width: 64, height: 36, fps: 30 };
        let cam = SyntheticCamera::new(cc, Arc::new(SystemClock)).unwrap();
        let (feed, rx) = ScreenFeed::for_test(16);
        let mut c = SelfViewCamera::new(Box::new(cam), feed);
        let t0 = Instant::now();
        assert!(c.due(t0) && !c.due(t0 + Duration::from_millis(100)) && c.due(t0 + SELF_VIEW_INTERVAL));
        c.last = None;
        let f = c.capture().unwrap();
        assert_eq!(rx.self_views(), vec![(64, 36, f.data.clone())], "the encoder's frame, unchanged");
        let _ = c.capture().unwrap();
        assert!(rx.self_views().is_empty(), "the next frame (33 ms later) is not copied");
    }
}
