//! The framebuffer backend against a fake framebuffer: a temp file laid out as a given
//! fb_var_screeninfo / fb_fix_screeninfo describe (16 bpp RGB565, 24 bpp BGR and 32 bpp
//! XRGB8888 with line padding and a y offset), checked by decoding the file back pixel by pixel; and only the rows
//! that changed are rewritten.

use embedded_graphics::pixelcolor::{Rgb888, RgbColor};
use embedded_graphics::prelude::Size;
use roomcast_display::backend::framebuffer::{
    FbBitfield, FbFixScreenInfo, FbVarScreenInfo, FramebufferBackend, FB_VISUAL_TRUECOLOR,
};
use roomcast_display::{render, Backend, DisplayState, Frame, PhaseName};
use std::time::Instant;

fn bf(offset: u32, length: u32) -> FbBitfield {
    FbBitfield { offset, length, msb_right: 0 }
}

struct Fake {
    var: FbVarScreenInfo,
    fix: FbFixScreenInfo,
}

fn rgb565(xres: u32, yres: u32) -> Fake {
    let var = FbVarScreenInfo {
        xres,
        yres,
        xres_virtual: xres,
        yres_virtual: yres,
        bits_per_pixel: 16,
        red: bf(11, 5),
        green: bf(5, 6),
        blue: bf(0, 5),
        ..Default::default()
    };
    let fix = FbFixScreenInfo { line_length: xres * 2, visual: FB_VISUAL_TRUECOLOR, ..Default::default() };
    Fake { var, fix }
}

fn xrgb8888_padded(xres: u32, yres: u32) -> Fake {
    let var = FbVarScreenInfo {
        xres,
        yres,
        xres_virtual: xres,
        yres_virtual: yres * 2,
        yoffset: yres, // showing the second buffer (page flipping)
        bits_per_pixel: 32,
        red: bf(16, 8),
        green: bf(8, 8),
        blue: bf(0, 8),
        ..Default::default()
    };
    // 64 bytes of padding per line.
    let fix = FbFixScreenInfo { line_length: xres * 4 + 64, visual: FB_VISUAL_TRUECOLOR, ..Default::default() };
    Fake { var, fix }
}

fn bgr888(xres: u32, yres: u32) -> Fake {
    let var = FbVarScreenInfo {
        xres,
        yres,
        xres_virtual: xres,
        yres_virtual: yres,
        bits_per_pixel: 24,
        red: bf(0, 8),
        green: bf(8, 8),
        blue: bf(16, 8),
        ..Default::default()
    };
    let fix = FbFixScreenInfo { line_length: xres * 3, visual: FB_VISUAL_TRUECOLOR, ..Default::default() };
    Fake { var, fix }
}

/// Opens a backend on a zeroed temp file big enough for the fake's virtual screen.
fn open(fake: &Fake) -> (tempfile::NamedTempFile, FramebufferBackend) {
    let file = tempfile::NamedTempFile::new().unwrap();
    let len = u64::from(fake.fix.line_length) * u64::from(fake.var.yres_virtual);
    file.as_file().set_len(len).unwrap();
    let f = file.reopen().unwrap();
    let b = FramebufferBackend::from_parts(f, file.path().to_owned(), fake.var, fake.fix).unwrap();
    (file, b)
}

/// Decodes pixel (x, y) of the visible area from the file, independently of the backend.
fn decode(bytes: &[u8], fake: &Fake, x: u32, y: u32) -> Rgb888 {
    let bpp = (fake.var.bits_per_pixel / 8) as usize;
    let off = ((fake.var.yoffset + y) * fake.fix.line_length) as usize + (fake.var.xoffset + x) as usize * bpp;
    let mut v = [0u8; 4];
    v[..bpp].copy_from_slice(&bytes[off..off + bpp]);
    let v = u32::from_le_bytes(v);
    let ch = |f: FbBitfield| {
        let raw = (v >> f.offset) & ((1 << f.length) - 1);
        (raw << (8 - f.length)) as u8
    };
    Rgb888::new(ch(fake.var.red), ch(fake.var.green), ch(fake.var.blue))
}

/// What a channel looks like after truncation to `len` bits.
fn quantise(c: Rgb888, fake: &Fake) -> Rgb888 {
    let q = |v: u8, f: FbBitfield| (v >> (8 - f.length)) << (8 - f.length);
    Rgb888::new(q(c.r(), fake.var.red), q(c.g(), fake.var.green), q(c.b(), fake.var.blue))
}

fn check_whole_screen(fake: Fake) {
    let size = Size::new(fake.var.xres, fake.var.yres);
    let (file, mut fb) = open(&fake);
    assert_eq!(fb.size(), size);
    let now = Instant::now();
    let frame = render(&DisplayState::sample(PhaseName::InMeeting, now), size, now);
    fb.show(&frame, None).unwrap();
    let bytes = std::fs::read(file.path()).unwrap();
    let mut distinct = std::collections::HashSet::new();
    for y in 0..size.height {
        for x in 0..size.width {
            let want = quantise(frame.pixel(x, y).unwrap(), &fake);
            assert_eq!(decode(&bytes, &fake, x, y), want, "pixel ({x}, {y}) at {} bpp", fake.var.bits_per_pixel);
            distinct.insert(want);
        }
    }
    // The in-meeting screen has many colours: the check above compared real content.
    assert!(distinct.len() >= 8, "only {} colours", distinct.len());
    // Nothing was written outside the visible area (padding and the other buffer stay zero).
    let line = fake.fix.line_length as usize;
    let row_bytes = (fake.var.xres * fake.var.bits_per_pixel / 8) as usize;
    for (i, row) in bytes.chunks(line).enumerate() {
        let visible = (fake.var.yoffset as usize..(fake.var.yoffset + fake.var.yres) as usize).contains(&i);
        let start = if visible { row_bytes } else { 0 };
        assert!(row[start..].iter().all(|&b| b == 0), "stray bytes in line {i}");
    }
}

#[test]
fn rgb565_framebuffer_shows_the_frame() {
    check_whole_screen(rgb565(320, 240));
}

#[test]
fn bgr888_24bpp_framebuffer_shows_the_frame() {
    check_whole_screen(bgr888(400, 300));
}

#[test]
fn padded_xrgb8888_framebuffer_with_y_offset_shows_the_frame() {
    check_whole_screen(xrgb8888_padded(480, 320));
}

#[test]
fn only_changed_rows_are_rewritten() {
    for fake in [rgb565(320, 240), xrgb8888_padded(320, 240)] {
        let size = Size::new(fake.var.xres, fake.var.yres);
        let (file, mut fb) = open(&fake);
        let first = Frame::new(size);
        fb.show(&first, None).unwrap();
        // Scribble over the whole file, then change rows 100..=102 only.
        let len = std::fs::metadata(file.path()).unwrap().len() as usize;
        std::fs::write(file.path(), vec![0xAA; len]).unwrap();
        let mut second = first.clone();
        use embedded_graphics::prelude::{DrawTarget, Point};
        use embedded_graphics::primitives::Rectangle;
        second.fill_solid(&Rectangle::new(Point::new(10, 100), Size::new(5, 3)), Rgb888::WHITE).unwrap();
        fb.show(&second, Some(&first)).unwrap();
        let bytes = std::fs::read(file.path()).unwrap();
        for y in 0..size.height {
            let changed = (100..=102).contains(&y);
            for x in [0, 12, size.width - 1] {
                let got = decode(&bytes, &fake, x, y);
                if changed {
                    assert_eq!(got, quantise(second.pixel(x, y).unwrap(), &fake), "({x},{y})");
                } else {
                    assert_eq!(got, decode(&vec![0xAA; len], &fake, x, y), "row {y} was rewritten");
                }
            }
        }
        // And an identical frame writes nothing.
        std::fs::write(file.path(), vec![0x55; len]).unwrap();
        fb.show(&second, Some(&second)).unwrap();
        assert!(std::fs::read(file.path()).unwrap().iter().all(|&b| b == 0x55));
    }
}

#[test]
fn unsupported_formats_are_refused_with_the_reason() {
    let mut fake = rgb565(320, 240);
    fake.var.bits_per_pixel = 8;
    let file = tempfile::NamedTempFile::new().unwrap();
    let Err(e) = FramebufferBackend::from_parts(file.reopen().unwrap(), file.path().to_owned(), fake.var, fake.fix)
    else {
        panic!("8 bpp accepted")
    };
    assert!(e.to_string().contains("8 bits per pixel"), "{e}");
    let mut fake = rgb565(320, 240);
    fake.fix.line_length = 100;
    let Err(e) = FramebufferBackend::from_parts(file.reopen().unwrap(), file.path().to_owned(), fake.var, fake.fix)
    else {
        panic!("short line accepted")
    };
    assert!(e.to_string().contains("line length"), "{e}");
}

#[test]
fn opening_a_plain_file_as_a_device_fails_cleanly() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let Err(e) = FramebufferBackend::open(file.path()) else { panic!("a plain file answered FBIOGET_VSCREENINFO") };
    assert!(e.to_string().contains("FBIOGET_VSCREENINFO"), "{e}");
}
