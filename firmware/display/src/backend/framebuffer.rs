//! The Linux framebuffer (`/dev/fbN`) backend: asks the kernel for the mode with the
//! FBIOGET_VSCREENINFO / FBIOGET_FSCREENINFO ioctls (and sets that mode again, which lights a
//! DRM card's screen that no console is on), packs pixels for whatever true-colour depth
//! it reports (15/16, 24 or 32 bits per pixel, any channel order) and writes only the rows that
//! changed with `pwrite` at their offset in the device (no mmap, so a plain file stands in for the
//! device in tests, and DRM's fbdev emulation sees every write as damage). While it is open, the
//! foreground virtual terminal is in KD_GRAPHICS mode so the kernel console does not draw on it.

use crate::backend::Backend;
use crate::{DisplayError, Frame};
use embedded_graphics::pixelcolor::{Rgb888, RgbColor};
use embedded_graphics::prelude::Size;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// `FBIOGET_VSCREENINFO` from linux/fb.h.
const FBIOGET_VSCREENINFO: libc::c_ulong = 0x4600;
/// `FBIOPUT_VSCREENINFO` from linux/fb.h.
const FBIOPUT_VSCREENINFO: libc::c_ulong = 0x4601;
/// `FBIOGET_FSCREENINFO` from linux/fb.h.
const FBIOGET_FSCREENINFO: libc::c_ulong = 0x4602;
/// `FB_ACTIVATE_FORCE` from linux/fb.h: apply the mode even if it is unchanged.
const FB_ACTIVATE_FORCE: u32 = 128;
/// `KDSETMODE` from linux/kd.h.
const KDSETMODE: libc::c_ulong = 0x4B3A;
/// `KD_TEXT` from linux/kd.h.
const KD_TEXT: libc::c_ulong = 0x00;
/// `KD_GRAPHICS` from linux/kd.h.
const KD_GRAPHICS: libc::c_ulong = 0x01;
/// `FB_VISUAL_TRUECOLOR` from linux/fb.h.
pub const FB_VISUAL_TRUECOLOR: u32 = 2;
/// `FB_VISUAL_DIRECTCOLOR` from linux/fb.h.
pub const FB_VISUAL_DIRECTCOLOR: u32 = 4;

/// `struct fb_bitfield` from linux/fb.h: where a colour channel sits in a pixel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FbBitfield {
    /// Bit offset of the channel's least significant bit.
    pub offset: u32,
    /// Number of bits.
    pub length: u32,
    /// Non-zero if the most significant bit is on the right (unsupported, rare).
    pub msb_right: u32,
}

/// `struct fb_var_screeninfo` from linux/fb.h.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct FbVarScreenInfo {
    pub xres: u32,
    pub yres: u32,
    pub xres_virtual: u32,
    pub yres_virtual: u32,
    pub xoffset: u32,
    pub yoffset: u32,
    pub bits_per_pixel: u32,
    pub grayscale: u32,
    pub red: FbBitfield,
    pub green: FbBitfield,
    pub blue: FbBitfield,
    pub transp: FbBitfield,
    pub nonstd: u32,
    pub activate: u32,
    pub height: u32,
    pub width: u32,
    pub accel_flags: u32,
    pub pixclock: u32,
    pub left_margin: u32,
    pub right_margin: u32,
    pub upper_margin: u32,
    pub lower_margin: u32,
    pub hsync_len: u32,
    pub vsync_len: u32,
    pub sync: u32,
    pub vmode: u32,
    pub rotate: u32,
    pub colorspace: u32,
    pub reserved: [u32; 4],
}

/// `struct fb_fix_screeninfo` from linux/fb.h.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct FbFixScreenInfo {
    pub id: [u8; 16],
    pub smem_start: libc::c_ulong,
    pub smem_len: u32,
    pub type_: u32,
    pub type_aux: u32,
    pub visual: u32,
    pub xpanstep: u16,
    pub ypanstep: u16,
    pub ywrapstep: u16,
    pub line_length: u32,
    pub mmio_start: libc::c_ulong,
    pub mmio_len: u32,
    pub accel: u32,
    pub capabilities: u16,
    pub reserved: [u16; 2],
}

/// How to pack a pixel for this framebuffer, checked once when it is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelFormat {
    /// Bytes per pixel (2, 3 or 4).
    pub bytes_per_pixel: usize,
    red: FbBitfield,
    green: FbBitfield,
    blue: FbBitfield,
    transp: FbBitfield,
}

impl PixelFormat {
    /// The format described by `var`, or why it is unsupported.
    pub fn from_var(var: &FbVarScreenInfo) -> Result<Self, String> {
        let bytes_per_pixel = match var.bits_per_pixel {
            15 | 16 => 2,
            24 => 3,
            32 => 4,
            other => return Err(format!("{other} bits per pixel (need 16, 24 or 32)")),
        };
        let bits = var.bits_per_pixel.max(16);
        for (name, f) in [("red", var.red), ("green", var.green), ("blue", var.blue), ("alpha", var.transp)] {
            if f.length > 8 || f.offset.saturating_add(f.length) > bits || f.msb_right != 0 {
                return Err(format!("{name} channel at bit {} length {} does not fit", f.offset, f.length));
            }
        }
        if var.red.length == 0 || var.green.length == 0 || var.blue.length == 0 {
            return Err("a colour channel has zero length (greyscale or palette mode)".into());
        }
        Ok(PixelFormat { bytes_per_pixel, red: var.red, green: var.green, blue: var.blue, transp: var.transp })
    }

    /// The pixel value for `c`, little-endian in the first `bytes_per_pixel` bytes.
    pub fn pack(&self, c: Rgb888) -> u32 {
        fn chan(v: u8, f: FbBitfield) -> u32 {
            if f.length == 0 {
                return 0;
            }
            (u32::from(v) >> (8 - f.length)) << f.offset
        }
        chan(c.r(), self.red) | chan(c.g(), self.green) | chan(c.b(), self.blue) | chan(0xff, self.transp)
    }
}

/// Appends `row` packed as `format` to `out`. Screens are mostly runs of one colour, so the
/// last packed colour is reused (this loop is the framebuffer's main cost on a slow CPU).
fn pack_row(format: &PixelFormat, row: &[Rgb888], out: &mut Vec<u8>) {
    let bpp = format.bytes_per_pixel;
    out.reserve(row.len() * bpp);
    let mut last = None;
    let mut bytes = [0u8; 4];
    for &px in row {
        if last != Some(px) {
            bytes = format.pack(px).to_le_bytes();
            last = Some(px);
        }
        match bpp {
            4 => out.extend_from_slice(&bytes),
            2 => out.extend_from_slice(&bytes[..2]),
            _ => out.extend_from_slice(&bytes[..3]),
        }
    }
}

/// A Linux framebuffer device (or a file standing in for one).
pub struct FramebufferBackend {
    file: File,
    path: PathBuf,
    var: FbVarScreenInfo,
    fix: FbFixScreenInfo,
    format: PixelFormat,
    /// Scratch buffer for packed rows, kept to avoid allocating per frame.
    scratch: Vec<u8>,
    /// The virtual terminal switched to graphics mode, so the kernel's framebuffer console
    /// (its blinking cursor, kernel messages, a getty) does not draw over the status screen.
    console: Option<Console>,
}

/// The active virtual terminal, held in KD_GRAPHICS mode while the backend lives.
struct Console {
    tty: File,
    /// Put the terminal back in text mode on drop.
    restore: bool,
}

impl Console {
    /// Switches the foreground virtual terminal (`tty`, normally /dev/tty0) to graphics mode.
    fn take(tty: &Path) -> std::io::Result<Console> {
        let tty = OpenOptions::new().read(true).write(true).open(tty)?;
        // SAFETY: KDSETMODE takes its mode by value; the fd is valid for the call.
        if unsafe { libc::ioctl(tty.as_raw_fd(), KDSETMODE as _, KD_GRAPHICS) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Console { tty, restore: true })
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if self.restore {
            // SAFETY: as in `take`.
            let _ = unsafe { libc::ioctl(self.tty.as_raw_fd(), KDSETMODE as _, KD_TEXT) };
        }
    }
}

impl FramebufferBackend {
    /// Opens `path` (e.g. /dev/fb0), reads its mode with the FBIOGET_* ioctls and sets that mode
    /// again (FBIOPUT_VSCREENINFO, forced) so the display is lit.
    pub fn open(path: &Path) -> Result<Self, DisplayError> {
        let io = |what, source| DisplayError::Io { what, path: path.to_owned(), source };
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(|e| io("opening framebuffer", e))?;
        let mut var = FbVarScreenInfo::default();
        let mut fix = FbFixScreenInfo::default();
        // SAFETY: the kernel fills exactly these #[repr(C)] structs (layouts from linux/fb.h)
        // for these request numbers; the pointers are valid for their size for the call.
        let rv = unsafe { libc::ioctl(file.as_raw_fd(), FBIOGET_VSCREENINFO as _, &mut var as *mut FbVarScreenInfo) };
        if rv < 0 {
            return Err(io("FBIOGET_VSCREENINFO on", std::io::Error::last_os_error()));
        }
        // Set the mode it already has, forced. DRM's fbdev emulation lights its CRTC only when a
        // framebuffer's mode is set: the console does that for fb0, but a second screen nothing
        // else opens (fb1 on another card) would stay dark however much is written to it.
        let mut forced = FbVarScreenInfo { activate: FB_ACTIVATE_FORCE, ..var };
        // SAFETY: as above; the kernel reads and writes back this struct.
        let rv =
            unsafe { libc::ioctl(file.as_raw_fd(), FBIOPUT_VSCREENINFO as _, &mut forced as *mut FbVarScreenInfo) };
        if rv < 0 {
            // Drivers without mode setting refuse it; the mode read above stands.
            tracing::debug!(path = %path.display(), error = %std::io::Error::last_os_error(), "framebuffer refused setting its own mode");
        } else {
            var = FbVarScreenInfo { activate: var.activate, ..forced };
        }
        // SAFETY: as above.
        let rv = unsafe { libc::ioctl(file.as_raw_fd(), FBIOGET_FSCREENINFO as _, &mut fix as *mut FbFixScreenInfo) };
        if rv < 0 {
            return Err(io("FBIOGET_FSCREENINFO on", std::io::Error::last_os_error()));
        }
        let mut fb = Self::from_parts(file, path.to_owned(), var, fix)?;
        match Console::take(Path::new("/dev/tty0")) {
            Ok(c) => fb.console = Some(c),
            // No VT (serial-only kernel, container) or no permission: the console may draw
            // over the screen now and then, the status is still shown.
            Err(e) => tracing::debug!(error = %e, "cannot put /dev/tty0 in graphics mode"),
        }
        Ok(fb)
    }

    /// Whether the console is held in graphics mode (so it cannot draw over the screen).
    pub fn holds_console(&self) -> bool {
        self.console.is_some()
    }

    /// Leave the console in graphics mode when this backend is dropped, so a one-shot
    /// `roomcast display --fb` keeps its picture on screen after it exits.
    pub fn keep_console_in_graphics_mode(&mut self) {
        if let Some(c) = &mut self.console {
            c.restore = false;
        }
    }

    /// A backend writing to `file` laid out as `var`/`fix` describe (tests use a temp file).
    pub fn from_parts(
        file: File,
        path: PathBuf,
        var: FbVarScreenInfo,
        fix: FbFixScreenInfo,
    ) -> Result<Self, DisplayError> {
        let unsupported = |reason: String| DisplayError::UnsupportedFramebuffer { path: path.clone(), reason };
        if fix.visual != FB_VISUAL_TRUECOLOR && fix.visual != FB_VISUAL_DIRECTCOLOR {
            return Err(unsupported(format!("visual {} is not true colour", fix.visual)));
        }
        let format = PixelFormat::from_var(&var).map_err(unsupported)?;
        if var.xres == 0 || var.yres == 0 || var.xres > 8192 || var.yres > 8192 {
            return Err(unsupported(format!("resolution {}x{}", var.xres, var.yres)));
        }
        let row_bytes = var.xres as usize * format.bytes_per_pixel;
        if (fix.line_length as usize) < row_bytes {
            return Err(unsupported(format!("line length {} < {} bytes per row", fix.line_length, row_bytes)));
        }
        Ok(FramebufferBackend { file, path, var, fix, format, scratch: Vec::new(), console: None })
    }

    /// The pixel format in use.
    pub fn format(&self) -> PixelFormat {
        self.format
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), DisplayError> {
        self.file.write_all_at(buf, offset).map_err(|source| DisplayError::Io {
            what: "writing framebuffer",
            path: self.path.clone(),
            source,
        })
    }

    /// Byte offset of pixel (0, y) of the visible area.
    fn row_offset(&self, y: u32) -> u64 {
        let line = u64::from(self.fix.line_length);
        (u64::from(self.var.yoffset) + u64::from(y)) * line
            + u64::from(self.var.xoffset) * self.format.bytes_per_pixel as u64
    }
}

impl Backend for FramebufferBackend {
    fn describe(&self) -> String {
        let id = String::from_utf8_lossy(&self.fix.id);
        format!(
            "framebuffer {} ({}) {}x{} {} bpp",
            self.path.display(),
            id.trim_end_matches('\0'),
            self.var.xres,
            self.var.yres,
            self.var.bits_per_pixel
        )
    }

    fn size(&self) -> Size {
        Size::new(self.var.xres, self.var.yres)
    }

    fn show(&mut self, frame: &Frame, previous: Option<&Frame>) -> Result<(), DisplayError> {
        let (first, last) = match previous {
            Some(p) if p.same_size(frame) => match frame.changed_rows(p) {
                Some(band) => band,
                None => return Ok(()),
            },
            _ => (0, frame.height().min(self.var.yres).saturating_sub(1)),
        };
        let bpp = self.format.bytes_per_pixel;
        let width = frame.width().min(self.var.xres) as usize;
        let line = self.fix.line_length as usize;
        // When rows follow each other without padding, the changed band is one write.
        let one_write = self.var.xoffset == 0 && line == width * bpp;
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let mut result = Ok(());
        for y in first..=last {
            let Some(row) = frame.row(y) else { break };
            pack_row(&self.format, &row[..width.min(row.len())], &mut scratch);
            if !one_write {
                result = self.write_at(&scratch, self.row_offset(y));
                scratch.clear();
                if result.is_err() {
                    break;
                }
            }
        }
        if one_write {
            result = self.write_at(&scratch, self.row_offset(first));
        }
        self.scratch = scratch;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_layouts_match_linux_fb_h() {
        assert_eq!(std::mem::size_of::<FbVarScreenInfo>(), 160);
        #[cfg(target_pointer_width = "64")]
        assert_eq!(std::mem::size_of::<FbFixScreenInfo>(), 80);
        #[cfg(target_pointer_width = "32")]
        assert_eq!(std::mem::size_of::<FbFixScreenInfo>(), 68);
    }

    #[test]
    fn palette_and_odd_depths_are_refused_with_a_reason() {
        let var = FbVarScreenInfo { bits_per_pixel: 8, ..Default::default() };
        assert!(PixelFormat::from_var(&var).unwrap_err().contains("8 bits per pixel"));
        let var = FbVarScreenInfo { bits_per_pixel: 16, ..Default::default() };
        assert!(PixelFormat::from_var(&var).unwrap_err().contains("zero length"));
    }
}
