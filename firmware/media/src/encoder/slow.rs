//! A test hook: [`SlowEncoder`] wraps an encoder and makes every `encode` call take `delay`
//! longer, waiting on a [`Clock`] (a [`crate::clock::ManualClock`] in unit tests, so the delay is
//! injected time, not a sleep; the system clock behind `[video] debug_slow_encoder_ms`).
//! The delay can be changed while running through a shared handle ([`SlowEncoder::delay_handle`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{EncodedFrame, VideoCodec, VideoEncoder};
use crate::clock::Clock;
use crate::error::Result;
use crate::frame::VideoFrame;

/// An encoder slowed down on purpose.
pub struct SlowEncoder<E> {
    inner: E,
    delay_us: Arc<AtomicU64>,
    clock: Arc<dyn Clock>,
}

impl<E: VideoEncoder> SlowEncoder<E> {
    /// Wraps `inner`; each encode waits `delay` on `clock` after encoding.
    pub fn new(inner: E, delay: Duration, clock: Arc<dyn Clock>) -> Self {
        SlowEncoder { inner, delay_us: Arc::new(AtomicU64::new(delay.as_micros() as u64)), clock }
    }

    /// A handle that changes the delay of the running encoder (microseconds).
    pub fn delay_handle(&self) -> Arc<AtomicU64> {
        self.delay_us.clone()
    }
}

impl<E: VideoEncoder> VideoEncoder for SlowEncoder<E> {
    fn codec(&self) -> VideoCodec {
        self.inner.codec()
    }
    fn describe(&self) -> String {
        let delay = self.delay_us.load(Ordering::Relaxed);
        format!("{} (slowed {:.1} ms/frame)", self.inner.describe(), delay as f64 / 1000.0)
    }
    fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<EncodedFrame>> {
        let out = self.inner.encode(frame)?;
        let delay = Duration::from_micros(self.delay_us.load(Ordering::Relaxed));
        if !delay.is_zero() {
            self.clock.sleep_until(self.clock.now() + delay);
        }
        Ok(out)
    }
    fn request_keyframe(&mut self) {
        self.inner.request_keyframe()
    }
    fn set_bitrate(&mut self, bitrate_bps: u32) -> Result<()> {
        self.inner.set_bitrate(bitrate_bps)
    }
    fn flush(&mut self) -> Result<Vec<EncodedFrame>> {
        self.inner.flush()
    }
}
