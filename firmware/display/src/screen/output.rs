//! Where the composed screen goes: `[screen] output = auto | framebuffer | drm | none | png:PATH`.
//! [`ScreenSink`] is fed every composed frame with `now` and shows it: the framebuffer every
//! frame, DRM/KMS every frame ([`super::drm`]), a PNG at most once a second ([`PNG_INTERVAL`]),
//! `none` nothing. `auto` takes DRM/KMS when a card opens and has a connected output, else the
//! framebuffer when it opens, else none.

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
    /// DRM/KMS if it opens, else the framebuffer, else none.
    #[default]
    Auto,
    /// The Linux framebuffer.
    Framebuffer,
    /// DRM/KMS (a dumb buffer on the first connected output).
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
        let drm = || -> Result<ScreenSink, DisplayError> {
            Ok(ScreenSink::from_backend(Box::new(super::drm::DrmBackend::open_any()?)))
        };
        match output {
            ScreenOutput::Framebuffer => fb(),
            ScreenOutput::Auto => drm().or_else(|d| {
                fb().or_else(|e| {
                    tracing::info!(drm = %d, framebuffer = %e, "screen: no DRM/KMS nor framebuffer, not showing the far end");
                    Ok(ScreenSink::none(format!("none ({d}; {e})")))
                })
            }),
            ScreenOutput::Drm => drm(),
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
            Sink::Png { last, .. } => last.is_none_or(|t| now.saturating_duration_since(t) >= PNG_INTERVAL),
            Sink::None => false,
        }
    }

    /// When the output takes its next frame: `now` for the framebuffer, the end of the PNG's
    /// interval, a second on for `none`.
    pub fn poll_timeout(&self, now: Instant) -> Instant {
        match &self.sink {
            Sink::Framebuffer(_) => now,
            Sink::Png { last, .. } => last.map_or(now, |t| t + PNG_INTERVAL),
            Sink::None => now + PNG_INTERVAL,
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
                // Written aside and renamed: a reader never sees half a file.
                let mut aside = path.clone().into_os_string();
                aside.push(".tmp");
                let aside = PathBuf::from(aside);
                write_png(frame, &aside)?;
                std::fs::rename(&aside, &*path).map_err(|source| DisplayError::Io {
                    what: "renaming the PNG",
                    path: path.clone(),
                    source,
                })?;
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
        assert_eq!(sink.poll_timeout(t0), t0 + Duration::from_millis(2000) + PNG_INTERVAL);
        assert!(shown[0] && shown[10] && shown[20]);
        assert!(path.exists());
    }

    #[test]
    fn auto_without_drm_or_framebuffer_is_none_and_drm_without_a_card_fails() {
        if crate::screen::drm::CARDS.iter().any(|c| Path::new(c).exists()) {
            return; // A machine with a DRM card: auto may well show on it.
        }
        let sink = ScreenSink::open(&ScreenOutput::Auto, Path::new("/nonexistent/fb9"), PNG_SIZE).unwrap();
        assert!(!sink.shows_anything());
        assert!(!sink.wants_frame(Instant::now()));
        let e = ScreenSink::open(&ScreenOutput::Drm, Path::new("/dev/fb0"), PNG_SIZE).err().expect("no DRM card");
        assert!(e.to_string().contains("/dev/dri/card"), "{e}");
    }
}
