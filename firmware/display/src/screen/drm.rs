//! `[screen] output = "drm"`: the composed screen on DRM/KMS through the `drm` crate (Smithay's
//! drm-rs: the kernel's mode-setting ioctls, no libdrm). Legacy modeset: the first connected
//! connector, its preferred mode (the first the kernel lists), a CRTC its encoder can drive, one
//! XRGB8888 dumb buffer the screen is copied into, then scanned out. Opening is where everything
//! can fail (no card, no master, nothing connected): the caller falls back or shows nothing.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use drm::buffer::DrmFourcc;
use drm::control::{connector, crtc, dumbbuffer::DumbBuffer, framebuffer, Device as ControlDevice, Mode};
use embedded_graphics::pixelcolor::RgbColor;
use embedded_graphics::prelude::Size;

use crate::backend::Backend;
use crate::{DisplayError, Frame};

/// The DRM devices tried by `drm`/`auto`.
pub const CARDS: [&str; 2] = ["/dev/dri/card0", "/dev/dri/card1"];

struct Card(File);

impl AsFd for Card {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
impl drm::Device for Card {}
impl ControlDevice for Card {}

/// An opened DRM/KMS output.
pub struct DrmBackend {
    card: Card,
    path: PathBuf,
    buffer: DumbBuffer,
    fb: framebuffer::Handle,
    crtc: crtc::Handle,
    mode: Mode,
    size: Size,
}

fn err<'a>(path: &'a Path, what: &'static str) -> impl Fn(std::io::Error) -> DisplayError + 'a {
    move |source| DisplayError::Io { what, path: path.to_owned(), source }
}

fn no(path: &Path, why: &str) -> DisplayError {
    DisplayError::NoDisplay(format!("DRM {}: {why}", path.display()))
}

impl DrmBackend {
    /// Opens `path`, sets the first connected connector's preferred mode and shows black.
    pub fn open(path: &Path) -> Result<Self, DisplayError> {
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(err(path, "opening DRM device"))?;
        let card = Card(file);
        let res = card.resource_handles().map_err(err(path, "reading DRM resources"))?;
        let mut chosen = None;
        for &c in res.connectors() {
            let info = card.get_connector(c, false).map_err(err(path, "reading a DRM connector"))?;
            if info.state() != connector::State::Connected {
                continue;
            }
            let Some(&mode) = info.modes().first() else { continue };
            let crtc = info
                .encoders()
                .iter()
                .filter_map(|&e| card.get_encoder(e).ok())
                .find_map(|e| e.crtc().or_else(|| res.filter_crtcs(e.possible_crtcs()).first().copied()));
            if let Some(crtc) = crtc {
                chosen = Some((c, mode, crtc));
                break;
            }
        }
        let (connector, mode, crtc) = chosen.ok_or_else(|| no(path, "no connected output with a mode"))?;
        let (w, h) = mode.size();
        let (w, h) = (u32::from(w), u32::from(h));
        let mut buffer =
            card.create_dumb_buffer((w, h), DrmFourcc::Xrgb8888, 32).map_err(err(path, "creating a dumb buffer"))?;
        let fb = card.add_framebuffer(&buffer, 24, 32).map_err(err(path, "adding the DRM framebuffer"))?;
        {
            let mut map = card.map_dumb_buffer(&mut buffer).map_err(err(path, "mapping the dumb buffer"))?;
            map.as_mut().fill(0);
        }
        card.set_crtc(crtc, Some(fb), (0, 0), &[connector], Some(mode)).map_err(err(path, "setting the mode"))?;
        // Composed at even sizes (I420).
        let size = Size::new(w & !1, h & !1);
        Ok(DrmBackend { card, path: path.to_owned(), buffer, fb, crtc, mode, size })
    }

    /// The first of [`CARDS`] that opens.
    pub fn open_any() -> Result<Self, DisplayError> {
        let mut last = None;
        for c in CARDS {
            match Self::open(Path::new(c)) {
                Ok(b) => return Ok(b),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| DisplayError::NoDisplay("no DRM device".into())))
    }
}

impl Backend for DrmBackend {
    fn describe(&self) -> String {
        let (w, h) = self.mode.size();
        format!("DRM/KMS {} {w}x{h}", self.path.display())
    }

    fn size(&self) -> Size {
        self.size
    }

    fn show(&mut self, frame: &Frame, _previous: Option<&Frame>) -> Result<(), DisplayError> {
        use drm::buffer::Buffer;
        let pitch = self.buffer.pitch() as usize;
        let (w, h) = (self.size.width.min(frame.width()) as usize, self.size.height.min(frame.height()) as usize);
        let mut map =
            self.card.map_dumb_buffer(&mut self.buffer).map_err(err(&self.path, "mapping the dumb buffer"))?;
        let bytes = map.as_mut();
        for y in 0..h {
            let Some(row) = frame.row(y as u32) else { break };
            let Some(out) = bytes.get_mut(y * pitch..y * pitch + 4 * w) else { break };
            for (px, o) in row.iter().take(w).zip(out.chunks_exact_mut(4)) {
                // XRGB8888, little endian: B, G, R, X.
                o.copy_from_slice(&[px.b(), px.g(), px.r(), 0]);
            }
        }
        Ok(())
    }
}

impl Drop for DrmBackend {
    fn drop(&mut self) {
        let _ = self.card.set_crtc(self.crtc, None, (0, 0), &[], None);
        let _ = self.card.destroy_framebuffer(self.fb);
        // The dumb buffer goes with the file descriptor.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_card_is_an_error_naming_it() {
        let e = DrmBackend::open(Path::new("/nonexistent/dri/card9")).err().expect("no such card");
        assert!(e.to_string().contains("/nonexistent/dri/card9"), "{e}");
    }
}
