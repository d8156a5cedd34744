//! A synthetic camera: colour bars scrolling sideways, a white box bouncing, and the frame
//! number drawn in large digits (top left), paced on a [`Clock`] at the configured rate.
//! The frame counter makes dropped or duplicated frames visible in a recording.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Camera, CameraConfig, CaptureFormat};
use crate::clock::Clock;
use crate::convert::PixelFormat;
use crate::error::{MediaError, Result};
use crate::frame::VideoFrame;

/// 3x5 bitmaps of the digits 0-9, one row per entry (bit 2 = left column).
const DIGITS: [[u8; 5]; 10] = [
    [7, 5, 5, 5, 7],
    [2, 6, 2, 2, 7],
    [7, 1, 7, 4, 7],
    [7, 1, 7, 1, 7],
    [5, 5, 7, 1, 1],
    [7, 4, 7, 1, 7],
    [7, 4, 7, 5, 7],
    [7, 1, 1, 1, 1],
    [7, 5, 7, 5, 7],
    [7, 5, 7, 1, 7],
];

/// Colour bars (Y, U, V): white, yellow, cyan, green, magenta, red, blue, black.
const BARS: [(u8, u8, u8); 8] = [
    (235, 128, 128),
    (210, 16, 146),
    (170, 166, 16),
    (145, 54, 34),
    (106, 202, 222),
    (81, 90, 240),
    (41, 240, 110),
    (16, 128, 128),
];

/// The synthetic camera.
pub struct SyntheticCamera {
    config: CameraConfig,
    clock: Arc<dyn Clock>,
    next_index: u64,
    start: Option<Instant>,
}

impl SyntheticCamera {
    /// A synthetic camera of the configured size and rate, paced on `clock`.
    pub fn new(config: CameraConfig, clock: Arc<dyn Clock>) -> Result<Self> {
        if config.width < 16 || config.height < 16 || config.fps == 0 || config.fps > 240 {
            return Err(MediaError::Config(format!(
                "synthetic camera needs at least 16x16 and 1..=240 fps, got {}x{} at {}",
                config.width, config.height, config.fps
            )));
        }
        Ok(SyntheticCamera { config, clock, next_index: 0, start: None })
    }

    /// Draws frame `index` (pure: the same index gives the same picture).
    pub fn render(width: u32, height: u32, index: u64, captured_at: Instant) -> VideoFrame {
        let mut frame = VideoFrame::black(width, height, index, captured_at);
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = frame.chroma_size();
        let shift = (index as usize * 4) % w;
        {
            let (y_plane, chroma) = frame.data.split_at_mut(w * h);
            let (u_plane, v_plane) = chroma.split_at_mut(cw * ch);
            for x in 0..w {
                let bar = ((x + shift) % w) * BARS.len() / w;
                let (yv, _, _) = BARS[bar];
                for y in 0..h {
                    y_plane[y * w + x] = yv;
                }
            }
            for cx in 0..cw {
                let bar = ((cx * 2 + shift) % w) * BARS.len() / w;
                let (_, uv, vv) = BARS[bar];
                for cy in 0..ch {
                    u_plane[cy * cw + cx] = uv;
                    v_plane[cy * cw + cx] = vv;
                }
            }
            // Bouncing box.
            let size = (h / 6).max(4);
            let span_x = w.saturating_sub(size).max(1);
            let span_y = h.saturating_sub(size).max(1);
            let t = index as usize * 3;
            let bx = bounce(t, span_x);
            let by = bounce(t * 2 / 3, span_y);
            for y in by..(by + size).min(h) {
                for x in bx..(bx + size).min(w) {
                    y_plane[y * w + x] = 235;
                }
            }
            // Frame counter: black plate, white digits.
            let scale = (h / 40).max(2);
            let text = index.to_string();
            let plate_w = (text.len() * 4 + 1) * scale;
            let plate_h = 7 * scale;
            for y in 0..plate_h.min(h) {
                for x in 0..plate_w.min(w) {
                    y_plane[y * w + x] = 16;
                }
            }
            for (i, ch_) in text.bytes().enumerate() {
                let glyph = DIGITS[(ch_ - b'0') as usize];
                for (row, bits) in glyph.iter().enumerate() {
                    for col in 0..3 {
                        if bits & (4 >> col) == 0 {
                            continue;
                        }
                        let x0 = (1 + i * 4 + col) * scale;
                        let y0 = (1 + row) * scale;
                        for y in y0..(y0 + scale).min(h) {
                            for x in x0..(x0 + scale).min(w) {
                                y_plane[y * w + x] = 235;
                            }
                        }
                    }
                }
            }
        }
        frame
    }
}

fn bounce(t: usize, span: usize) -> usize {
    let p = t % (2 * span);
    if p < span {
        p
    } else {
        2 * span - p
    }
}

impl Camera for SyntheticCamera {
    fn describe(&self) -> String {
        format!("synthetic test pattern {}x{}@{}", self.config.width, self.config.height, self.config.fps)
    }
    fn format(&self) -> CaptureFormat {
        CaptureFormat {
            width: self.config.width,
            height: self.config.height,
            fps: self.config.fps,
            pixel_format: PixelFormat::Yu12,
        }
    }
    fn capture(&mut self) -> Result<VideoFrame> {
        let start = *self.start.get_or_insert_with(|| self.clock.now());
        let due = start + Duration::from_secs(1) * self.next_index as u32 / self.config.fps;
        self.clock.sleep_until(due);
        let index = self.next_index;
        self.next_index += 1;
        Ok(Self::render(self.config.width, self.config.height, index, self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn frames_are_paced_and_counted() {
        let clock = ManualClock::new();
        let t0 = clock.now();
        let cfg = CameraConfig { width: 64, height: 48, fps: 25 };
        let mut cam = SyntheticCamera::new(cfg, Arc::new(clock.clone())).unwrap();
        for i in 0..5u64 {
            let f = cam.capture().unwrap();
            assert_eq!(f.index, i);
            assert_eq!(f.data.len(), VideoFrame::i420_len(64, 48));
            assert_eq!(f.captured_at - t0, Duration::from_millis(40 * i));
        }
    }

    #[test]
    fn pattern_moves_and_counter_differs() {
        let now = Instant::now();
        let a = SyntheticCamera::render(64, 48, 1, now);
        let b = SyntheticCamera::render(64, 48, 2, now);
        assert_ne!(a.data, b.data);
        assert_eq!(a, SyntheticCamera::render(64, 48, 1, now), "rendering is deterministic");
        // The counter plate (top-left) differs between "1" and "2".
        let scale = 2;
        let plate = |f: &VideoFrame| -> Vec<u8> {
            (0..7 * scale).flat_map(|y| f.data[y * 64..y * 64 + 5 * scale].to_vec()).collect()
        };
        assert_ne!(plate(&a), plate(&b));
        // Digit "8" lights more pixels than "1".
        let lit = |f: &VideoFrame| plate(f).iter().filter(|&&p| p == 235).count();
        assert!(lit(&SyntheticCamera::render(64, 48, 8, now)) > lit(&a));
    }

    #[test]
    fn rejects_silly_configs() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        assert!(SyntheticCamera::new(CameraConfig { width: 8, height: 48, fps: 25 }, clock.clone()).is_err());
        assert!(SyntheticCamera::new(CameraConfig { width: 64, height: 48, fps: 0 }, clock).is_err());
    }
}
