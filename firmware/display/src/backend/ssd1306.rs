//! The SSD1306 128x64 OLED over I2C, through the maintained `ssd1306` driver crate (0.10, on
//! embedded-hal 1.0 like linux-embedded-hal 0.5, so the Linux `/dev/i2c-N` bus plugs straight in).
//!
//! The driver's buffered mode sends only the bounding box of pixels that were set since the last
//! flush; this backend sets only the pixels that differ from the frame shown last, so an unchanged
//! screen costs no I2C traffic and a ticking countdown costs a few dozen bytes.

use crate::backend::Backend;
use crate::frame::is_lit;
use crate::{DisplayError, Frame};
use embedded_graphics::prelude::Size;
use ssd1306::mode::{BufferedGraphicsMode, DisplayConfig};
use ssd1306::prelude::{DisplayRotation, I2CInterface};
use ssd1306::size::DisplaySize128x64;
use ssd1306::Ssd1306;
use std::path::Path;

/// Panel width in pixels.
pub const WIDTH: u32 = 128;
/// Panel height in pixels.
pub const HEIGHT: u32 = 64;
/// The I2C control byte that precedes command bytes (Co = 0, D/C# = 0).
pub const CONTROL_COMMAND: u8 = 0x00;
/// The I2C control byte that precedes display-RAM data (Co = 0, D/C# = 1).
pub const CONTROL_DATA: u8 = 0x40;
/// The SSD1306 "no operation" command, used to probe for an ACK.
pub const CMD_NOP: u8 = 0xE3;

type Driver<I> = Ssd1306<I2CInterface<I>, DisplaySize128x64, BufferedGraphicsMode<DisplaySize128x64>>;

/// An SSD1306 on an I2C bus.
pub struct Ssd1306Backend<I: embedded_hal::i2c::I2c> {
    driver: Driver<I>,
    label: String,
    address: u8,
    /// What the panel shows now, one bool per pixel (None until the first frame is sent).
    shown: Option<Vec<bool>>,
}

impl Ssd1306Backend<linux_embedded_hal::I2cdev> {
    /// Opens `bus` (e.g. /dev/i2c-1) and initialises the panel at `address`.
    pub fn open(bus: &Path, address: u8) -> Result<Self, DisplayError> {
        let i2c = linux_embedded_hal::I2cdev::new(bus).map_err(|e| DisplayError::I2c {
            bus: bus.display().to_string(),
            address,
            message: format!("cannot open bus: {e}"),
        })?;
        Ssd1306Backend::new(i2c, address, bus.display().to_string())
    }
}

impl<I: embedded_hal::i2c::I2c> Ssd1306Backend<I> {
    /// Initialises the panel at `address` on `i2c` (sends the init sequence; the screen stays
    /// dark until the first frame). `bus` names the bus in errors and logs.
    pub fn new(i2c: I, address: u8, bus: String) -> Result<Self, DisplayError> {
        let iface = I2CInterface::new(i2c, address, CONTROL_DATA);
        let driver = Ssd1306::new(iface, DisplaySize128x64, DisplayRotation::Rotate0).into_buffered_graphics_mode();
        let mut this = Ssd1306Backend { driver, label: bus, address, shown: None };
        this.driver.init().map_err(|e| this.error("init", e))?;
        Ok(this)
    }

    /// Gives the bus back (tests inspect their mock with it).
    pub fn release(self) -> I {
        self.driver.release().release()
    }

    fn error(&self, what: &str, e: display_interface::DisplayError) -> DisplayError {
        DisplayError::I2c { bus: self.label.clone(), address: self.address, message: format!("{what}: {e:?}") }
    }
}

impl<I: embedded_hal::i2c::I2c + Send> Backend for Ssd1306Backend<I> {
    fn describe(&self) -> String {
        format!("SSD1306 128x64 on {} at {:#04x}", self.label, self.address)
    }

    fn size(&self) -> Size {
        Size::new(WIDTH, HEIGHT)
    }

    fn show(&mut self, frame: &Frame, _previous: Option<&Frame>) -> Result<(), DisplayError> {
        let mut shown = self.shown.take().unwrap_or_else(|| {
            // Nothing sent yet: the panel RAM is unknown, so mark every pixel as "other" than
            // what we draw by starting from the inverse of the frame.
            (0..WIDTH * HEIGHT).map(|i| !frame.is_lit(i % WIDTH, i / WIDTH)).collect()
        });
        for y in 0..HEIGHT {
            for x in 0..WIDTH {
                let lit = frame.pixel(x, y).is_some_and(is_lit);
                if let Some(s) = shown.get_mut((y * WIDTH + x) as usize) {
                    if *s != lit {
                        self.driver.set_pixel(x, y, lit);
                        *s = lit;
                    }
                }
            }
        }
        let result = self.driver.flush().map_err(|e| self.error("sending frame", e));
        // After a failed send the panel content is unknown: resend everything next time.
        if result.is_ok() {
            self.shown = Some(shown);
        }
        result
    }
}

/// Asks whether a device ACKs at `address` by sending it the SSD1306 NOP command.
pub fn probe<I: embedded_hal::i2c::I2c>(i2c: &mut I, address: u8) -> bool {
    i2c.write(address, &[CONTROL_COMMAND, CMD_NOP]).is_ok()
}
