//! Where the composed screen goes: `[screen] output = auto | framebuffer | drm | none | png:PATH`.
//! [`ScreenSink`] is fed every composed frame with `now` and shows it: the framebuffer every
//! frame, a PNG at most once a second ([`PNG_INTERVAL`]), `none` nothing. `auto` takes the
//! framebuffer when it opens, else none. DRM/KMS output is not written yet: `drm` is accepted by
//! the config and reported as unavailable when opened (use `framebuffer`, which works on the
//! same HDMI output through the kernel's fbdev emulation).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use embedded_graphics::prelude::Size;

use crate::backend::framebuffer::FramebufferBackend;
use crate::backend::png::write_png;
use crate::backend::Backend;
use crate::{DisplayError, Frame};

/// How often the PNG output is rewritten.
pub const PNG_INTERVAL: Duration = Duration::from_secs(1);
/// The PNG output's size when none is given.
pub const PNG_SIZE: Size = Size::new(1280, 720);

/// `[screen] output`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ScreenOutput {
    /// The framebuffer if it opens, else none.
    #[default]
    Auto,
    /// The Linux framebuffer.
    Framebuffer,
    /// DRM/KMS (not written yet).
    Drm,
    /// Nowhere.
    None,
    /// A PNG file rewritten about once a second.
    Png(PathBuf),
}

impl std::str::FromStr for ScreenOutput {
    type Err = DisplayError;
    fn from_str(s: &str) -> Result<Self, DisplayError> {
        match s {
            "auto" => Ok(ScreenOutput::Auto),
            "framebuffer" => Ok(ScreenOutput::Framebuffer),
            "drm" => Ok(ScreenOutput::Drm),
            "none" => Ok(ScreenOutput::None),
            other => match other.strip_prefix("png:") {
                Some(path) if !path.is_empty() => Ok(ScreenOutput::Png(PathBuf::from(path))),
                _ => Err(DisplayError::BadScreen(format!(
                    "output {other:?}: expected auto, framebuffer, drm, none or png:PATH"
                ))),
            },
        }
    }
}

enum Sink {
    Framebuffer(Box<dyn Backend>),
    Png { path: PathBuf, last: Option<Instant> },
    None,
}

/// An opened output.
pub struct ScreenSink {
    sink: Sink,
    size: Size,
    previous: Option<Frame>,
    describe: String,
}

impl ScreenSink {
    /// Opens `output`; `framebuffer` is the device for `framebuffer`/`auto`, `png_size` the PNG's size.
    pub fn open(output: &ScreenOutput, framebuffer: &Path, png_size: Size) -> Result<Self, DisplayError> {
        let fb = || -> Result<ScreenSink, DisplayError> {
            let b = FramebufferBackend::open(framebuffer)?;
            Ok(ScreenSink::from_backend(Box::new(b)))
        };
        match output {
            ScreenOutput::Framebuffer => fb(),
            ScreenOutput::Auto => fb().or_else(|e| {
                tracing::info!(error = %e, "screen: no framebuffer, not showing the far end");
                Ok(ScreenSink::none(format!("none ({e})")))
            }),
            ScreenOutput::Drm => Err(DisplayError::NoDisplay(
                "screen output drm: DRM/KMS is not supported yet; use output = \"framebuffer\"".into(),
            )),
            ScreenOutput::None => Ok(ScreenSink::none("none".into())),
            ScreenOutput::Png(path) => Ok(ScreenSink {
                sink: Sink::Png { path: path.clone(), last: None },
                size: png_size,
                previous: None,
                describe: format!(
                    "PNG {}x{} {} (every {} s)",
                    png_size.width,
                    png_size.height,
                    path.display(),
                    PNG_INTERVAL.as_secs()
                ),
            }),
        }
    }

    /// A sink over any backend (the framebuffer; tests pass a PNG backend).
    pub fn from_backend(backend: Box<dyn Backend>) -> Self {
        let describe = backend.describe();
        ScreenSink { size: backend.size(), sink: Sink::Framebuffer(backend), previous: None, describe }
    }

    fn none(describe: String) -> Self {
        ScreenSink { sink: Sink::None, size: PNG_SIZE, previous: None, describe }
    }

    /// The size to compose at.
    pub fn size(&self) -> Size {
        self.size
    }

    /// Whether composing is worth it (not `none`).
    pub fn shows_anything(&self) -> bool {
        !matches!(self.sink, Sink::None)
    }

    /// For logs.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Whether a frame composed at `now` would be shown (the PNG waits for its interval):
    /// callers can skip composing when not.
    pub fn wants_frame(&self, now: Instant) -> bool {
        match &self.sink {
            Sink::Framebuffer(_) => true,
            Sink::Png { last, .. } => last.map_or(true, |t| now.saturating_duration_since(t) >= PNG_INTERVAL),
            Sink::None => false,
        }
    }

    /// Shows `frame` (composed at `now`) if this output takes one now; returns whether it did.
    pub fn handle_frame(&mut self, now: Instant, frame: &Frame) -> Result<bool, DisplayError> {
        if !self.wants_frame(now) {
            return Ok(false);
        }
        match &mut self.sink {
            Sink::Framebuffer(b) => {
                b.show(frame, self.previous.as_ref())?;
                self.previous = Some(frame.clone());
            }
            Sink::Png { path, last } => {
                write_png(frame, path)?;
                *last = Some(now);
            }
            Sink::None => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_parse() {
        assert_eq!("auto".parse::<ScreenOutput>().unwrap(), ScreenOutput::Auto);
        assert_eq!("drm".parse::<ScreenOutput>().unwrap(), ScreenOutput::Drm);
        assert_eq!("png:/tmp/s.png".parse::<ScreenOutput>().unwrap(), ScreenOutput::Png("/tmp/s.png".into()));
        for bad in ["png:", "hdmi", ""] {
            assert!(bad.parse::<ScreenOutput>().is_err(), "{bad}");
        }
    }

    #[test]
    fn png_is_written_about_once_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("screen.png");
        let mut sink =
            ScreenSink::open(&ScreenOutput::Png(path.clone()), Path::new("/nonexistent"), Size::new(32, 18)).unwrap();
        assert_eq!(sink.size(), Size::new(32, 18));
        let frame = Frame::new(sink.size());
        let t0 = Instant::now();
        let shown: Vec<bool> =
            (0..30).map(|i| sink.handle_frame(t0 + Duration::from_millis(100 * i), &frame).unwrap()).collect();
        assert_eq!(shown.iter().filter(|s| **s).count(), 3, "{shown:?}");
        assert!(shown[0] && shown[10] && shown[20]);
        assert!(path.exists());
    }

    #[test]
    fn auto_without_framebuffer_is_none_and_drm_is_unavailable() {
        let sink = ScreenSink::open(&ScreenOutput::Auto, Path::new("/nonexistent/fb9"), PNG_SIZE).unwrap();
        assert!(!sink.shows_anything());
        assert!(!sink.wants_frame(Instant::now()));
        assert!(ScreenSink::open(&ScreenOutput::Drm, Path::new("/dev/fb0"), PNG_SIZE).is_err());
    }
}
