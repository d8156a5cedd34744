//! The SH1106 128x64 OLED (the common 1.3" modules) over I2C. It looks like an SSD1306 on the
//! bus but has 132 columns of RAM (the panel shows columns 2..130) and only page addressing, so
//! the SSD1306 driver's horizontal-mode stream garbles it. The maintained `sh1106` crate is on
//! embedded-hal 0.2 (linux-embedded-hal 0.5 is on 1.0), and the command stream is small, so it is
//! written out here: per changed page, set page and start column, then that page's changed bytes.

use crate::backend::Backend;
use crate::{DisplayError, Frame};
use embedded_graphics::prelude::Size;
use std::path::Path;

/// Panel width in pixels.
pub const WIDTH: u32 = 128;
/// Panel height in pixels.
pub const HEIGHT: u32 = 64;
/// Offset of the panel's first column in the controller's 132-column RAM.
pub const COLUMN_OFFSET: u8 = 2;

/// The init sequence, each command with its argument bytes (SH1106 datasheet, section 9).
pub const INIT: &[&[u8]] = &[
    &[0xAE],       // display off
    &[0xD5, 0x80], // clock divide ratio / oscillator frequency
    &[0xA8, 0x3F], // multiplex ratio 64
    &[0xD3, 0x00], // display offset 0
    &[0x40],       // start line 0
    &[0xAD, 0x8B], // DC-DC converter on
    &[0xA1],       // segment remap
    &[0xC8],       // COM scan direction remapped
    &[0xDA, 0x12], // COM pins alternative configuration
    &[0x81, 0x5F], // contrast
    &[0xD9, 0x22], // pre-charge period
    &[0xDB, 0x35], // VCOM deselect level
    &[0xA4],       // output follows RAM
    &[0xA6],       // normal, not inverted
    &[0xAF],       // display on
];

/// The frame as display RAM: 8 pages of 128 bytes, bit n of a byte is row page*8+n.
pub fn pages(frame: &Frame) -> Vec<u8> {
    let mut out = vec![0u8; (WIDTH * HEIGHT / 8) as usize];
    for (i, byte) in out.iter_mut().enumerate() {
        let (page, x) = (i as u32 / WIDTH, i as u32 % WIDTH);
        for bit in 0..8 {
            if frame.is_lit(x, page * 8 + bit) {
                *byte |= 1 << bit;
            }
        }
    }
    out
}

/// An SH1106 on an I2C bus.
pub struct Sh1106Backend<I: embedded_hal::i2c::I2c> {
    i2c: I,
    address: u8,
    label: String,
    /// The RAM content as last sent (None: unknown, send everything).
    shown: Option<Vec<u8>>,
}

impl Sh1106Backend<linux_embedded_hal::I2cdev> {
    /// Opens `bus` (e.g. /dev/i2c-1) and initialises the panel at `address`.
    pub fn open(bus: &Path, address: u8) -> Result<Self, DisplayError> {
        let i2c = linux_embedded_hal::I2cdev::new(bus).map_err(|e| DisplayError::I2c {
            bus: bus.display().to_string(),
            address,
            message: format!("cannot open bus: {e}"),
        })?;
        Sh1106Backend::new(i2c, address, bus.display().to_string())
    }
}

impl<I: embedded_hal::i2c::I2c> Sh1106Backend<I> {
    /// Initialises the panel at `address` on `i2c`; `bus` names the bus in errors and logs.
    pub fn new(i2c: I, address: u8, bus: String) -> Result<Self, DisplayError> {
        let mut this = Sh1106Backend { i2c, address, label: bus, shown: None };
        for c in INIT {
            this.command(c)?;
        }
        Ok(this)
    }

    /// Gives the bus back.
    pub fn release(self) -> I {
        self.i2c
    }

    fn write(&mut self, bytes: &[u8], what: &str) -> Result<(), DisplayError> {
        self.i2c.write(self.address, bytes).map_err(|e| DisplayError::I2c {
            bus: self.label.clone(),
            address: self.address,
            message: format!("{what}: {:?}", embedded_hal::i2c::Error::kind(&e)),
        })
    }

    fn command(&mut self, c: &[u8]) -> Result<(), DisplayError> {
        let mut v = Vec::with_capacity(c.len() + 1);
        v.push(0x00);
        v.extend_from_slice(c);
        self.write(&v, "command")
    }
}

impl<I: embedded_hal::i2c::I2c + Send> Backend for Sh1106Backend<I> {
    fn describe(&self) -> String {
        format!("SH1106 128x64 on {} at {:#04x}", self.label, self.address)
    }

    fn size(&self) -> Size {
        Size::new(WIDTH, HEIGHT)
    }

    fn show(&mut self, frame: &Frame, _previous: Option<&Frame>) -> Result<(), DisplayError> {
        let new = pages(frame);
        let old = self.shown.take();
        for (page, bytes) in new.chunks(WIDTH as usize).enumerate() {
            // The changed column span of this page (all of it when the panel is unknown).
            let (first, last) = match &old {
                Some(old) => {
                    let before = &old[page * WIDTH as usize..(page + 1) * WIDTH as usize];
                    let diff = |(a, b): (&u8, &u8)| a != b;
                    let Some(first) = bytes.iter().zip(before).position(diff) else { continue };
                    let last = bytes.iter().zip(before).rposition(diff).unwrap_or(first);
                    (first, last)
                }
                None => (0, WIDTH as usize - 1),
            };
            let col = COLUMN_OFFSET + first as u8;
            self.command(&[0xB0 | page as u8, col & 0x0F, 0x10 | (col >> 4)])?;
            let mut data = Vec::with_capacity(last - first + 2);
            data.push(0x40);
            data.extend_from_slice(&bytes[first..=last]);
            self.write(&data, "sending frame")?;
        }
        // Only after every page went out is the panel known to show `new`.
        self.shown = Some(new);
        Ok(())
    }
}
