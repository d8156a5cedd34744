//! `display = "auto"`: find whatever display this box has. First an SSD1306 that ACKs at 0x3C or
//! 0x3D on the configured I2C bus, then the framebuffer device, else none. Probing is cheap and
//! side-effect free (an SSD1306 NOP command), so the driver may repeat it while no display is found.

use crate::backend::framebuffer::FramebufferBackend;
use crate::backend::ssd1306::{self as oled, Ssd1306Backend};
use crate::backend::Backend;
use crate::DisplayError;
use std::path::PathBuf;

/// The I2C addresses an SSD1306/SH1106 module answers at (selected by its SA0 pin).
pub const SSD1306_ADDRESSES: [u8; 2] = [0x3C, 0x3D];

/// Where `auto` looks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoProbe {
    /// The I2C bus to probe (a Raspberry Pi's header bus is /dev/i2c-1).
    pub i2c_bus: PathBuf,
    /// The framebuffer device.
    pub framebuffer: PathBuf,
}

impl Default for AutoProbe {
    fn default() -> Self {
        AutoProbe { i2c_bus: PathBuf::from("/dev/i2c-1"), framebuffer: PathBuf::from("/dev/fb0") }
    }
}

impl AutoProbe {
    /// Opens the first display found, or says what was tried.
    pub fn open(&self) -> Result<Box<dyn Backend>, DisplayError> {
        let mut tried = Vec::new();
        match linux_embedded_hal::I2cdev::new(&self.i2c_bus) {
            Ok(mut bus) => match SSD1306_ADDRESSES.into_iter().find(|&a| oled::probe(&mut bus, a)) {
                Some(address) => {
                    let label = self.i2c_bus.display().to_string();
                    return Ok(Box::new(Ssd1306Backend::new(bus, address, label)?));
                }
                None => tried.push(format!("{}: no ACK at 0x3c/0x3d", self.i2c_bus.display())),
            },
            Err(e) => tried.push(format!("{}: {e}", self.i2c_bus.display())),
        }
        match FramebufferBackend::open(&self.framebuffer) {
            Ok(fb) => return Ok(Box::new(fb)),
            Err(e) => tried.push(e.to_string()),
        }
        Err(DisplayError::NoDisplay(tried.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_found_says_what_was_tried() {
        let dir = tempfile::tempdir().unwrap();
        let probe = AutoProbe { i2c_bus: dir.path().join("i2c-9"), framebuffer: dir.path().join("fb9") };
        let Err(e) = probe.open() else { panic!("found a display in an empty directory") };
        let e = e.to_string();
        assert!(e.starts_with("no display"), "{e}");
        assert!(e.contains("i2c-9") && e.contains("fb9"), "{e}");
    }
}
