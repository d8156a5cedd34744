//! Where frames go: the [`Backend`] trait, the user's [`BackendChoice`] (from roomcast.toml or the
//! command line), and [`open`], which turns a choice into a backend (`auto` probes I2C, then the
//! framebuffer). Each backend lives in its own file under `backend/`.

pub mod auto;
pub mod framebuffer;
pub mod png;
pub mod sh1106;
pub mod ssd1306;

use crate::{DisplayError, Frame};
use embedded_graphics::prelude::Size;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Something that shows finished frames.
pub trait Backend: Send {
    /// A short description for logs, e.g. "SSD1306 on /dev/i2c-1 at 0x3c".
    fn describe(&self) -> String;
    /// The size frames for this backend must have.
    fn size(&self) -> Size;
    /// Shows `frame` (whose size is [`Backend::size`]). `previous` is the frame shown last, if
    /// any, so a backend can send only what changed.
    fn show(&mut self, frame: &Frame, previous: Option<&Frame>) -> Result<(), DisplayError>;
}

/// Which display to use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum BackendChoice {
    /// Probe: an SSD1306 answering on the I2C bus (0x3C, then 0x3D), then the framebuffer, else none.
    Auto {
        /// The I2C bus to probe; default /dev/i2c-1.
        #[serde(default)]
        i2c_bus: Option<PathBuf>,
        /// The framebuffer to try; default /dev/fb0.
        #[serde(default)]
        framebuffer: Option<PathBuf>,
    },
    /// No display.
    None,
    /// An SSD1306 128x64 OLED on an I2C bus.
    Ssd1306 {
        /// The bus device, e.g. /dev/i2c-1.
        bus: PathBuf,
        /// The 7-bit address, usually 0x3C or 0x3D.
        address: u8,
    },
    /// An SH1106 128x64 OLED (most 1.3" modules) on an I2C bus. `auto` cannot tell it from an
    /// SSD1306, so it must be chosen explicitly.
    Sh1106 {
        /// The bus device, e.g. /dev/i2c-1.
        bus: PathBuf,
        /// The 7-bit address, usually 0x3C or 0x3D.
        address: u8,
    },
    /// A Linux framebuffer device, e.g. /dev/fb0.
    Framebuffer {
        /// The device.
        device: PathBuf,
    },
    /// A PNG file, rewritten on every change (for tests and docs).
    Png {
        /// The file.
        path: PathBuf,
        /// The image size.
        width: u32,
        /// The image size.
        height: u32,
    },
}

impl Default for BackendChoice {
    /// `auto` with the default bus and framebuffer.
    fn default() -> Self {
        BackendChoice::Auto { i2c_bus: None, framebuffer: None }
    }
}

/// Opens the backend for `choice`. `Auto` probes the default buses and devices
/// (see [`auto::AutoProbe::default`]); `None` returns [`DisplayError::NoDisplay`].
pub fn open(choice: &BackendChoice) -> Result<Box<dyn Backend>, DisplayError> {
    match choice {
        BackendChoice::Auto { i2c_bus, framebuffer } => {
            let mut probe = auto::AutoProbe::default();
            if let Some(bus) = i2c_bus {
                probe.i2c_bus = bus.clone();
            }
            if let Some(fb) = framebuffer {
                probe.framebuffer = fb.clone();
            }
            probe.open()
        }
        BackendChoice::None => Err(DisplayError::NoDisplay("display = none".into())),
        BackendChoice::Ssd1306 { bus, address } => Ok(Box::new(ssd1306::Ssd1306Backend::open(bus, *address)?)),
        BackendChoice::Sh1106 { bus, address } => Ok(Box::new(sh1106::Sh1106Backend::open(bus, *address)?)),
        BackendChoice::Framebuffer { device } => Ok(Box::new(framebuffer::FramebufferBackend::open(device)?)),
        BackendChoice::Png { path, width, height } => {
            Ok(Box::new(png::PngBackend::new(path.clone(), Size::new(*width, *height))))
        }
    }
}

/// Parses "WIDTHxHEIGHT", e.g. "128x64".
pub fn parse_size(s: &str) -> Result<Size, DisplayError> {
    let bad = || DisplayError::BadSize(s.to_owned());
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let w: u32 = w.trim().parse().map_err(|_| bad())?;
    let h: u32 = h.trim().parse().map_err(|_| bad())?;
    if !(16..=4096).contains(&w) || !(16..=4096).contains(&h) {
        return Err(bad());
    }
    Ok(Size::new(w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_bad_ones_are_named() {
        assert_eq!(parse_size("128x64").unwrap(), Size::new(128, 64));
        assert_eq!(parse_size("480X320").unwrap(), Size::new(480, 320));
        for bad in ["", "128", "x64", "0x0", "128x-1", "99999x10"] {
            let e = parse_size(bad).unwrap_err().to_string();
            assert!(e.contains("bad display size"), "{bad}: {e}");
        }
    }
}
