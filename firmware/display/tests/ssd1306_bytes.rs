//! The exact I2C byte stream the SSD1306 backend sends, against a mock bus: the init sequence
//! (checked against the SSD1306 datasheet's command table, written out here by hand), a full
//! first frame in horizontal addressing mode, and a one-pixel change that sends one data byte.

use embedded_graphics::pixelcolor::{Rgb888, RgbColor};
use embedded_graphics::prelude::{DrawTarget, Point, Size};
use embedded_graphics::Pixel;
use embedded_hal::i2c::ErrorKind;
use embedded_hal_mock::eh1::i2c::{Mock as I2cMock, Transaction as T};
use roomcast_display::backend::ssd1306::{probe, Ssd1306Backend};
use roomcast_display::{Backend, Frame};

const ADDR: u8 = 0x3C;

/// One command write: control byte 0x00 then the command bytes.
fn cmd(bytes: &[u8]) -> T {
    let mut v = vec![0x00];
    v.extend_from_slice(bytes);
    T::write(ADDR, v)
}

fn init_sequence() -> Vec<T> {
    vec![
        cmd(&[0xAE]),       // display off
        cmd(&[0xD5, 0x80]), // clock divide ratio 1, oscillator frequency 8
        cmd(&[0xA8, 0x3F]), // multiplex ratio 64
        cmd(&[0xD3, 0x00]), // display offset 0
        cmd(&[0x40]),       // start line 0
        cmd(&[0x8D, 0x14]), // charge pump on
        cmd(&[0x20, 0x00]), // horizontal addressing mode
        cmd(&[0xDA, 0x12]), // COM pins: alternative configuration, no remap (128x64)
        cmd(&[0xA1]),       // segment remap: column 127 -> SEG0
        cmd(&[0xC8]),       // COM scan direction remapped
        cmd(&[0xD9, 0x21]), // pre-charge: phase 1 = 1, phase 2 = 2
        cmd(&[0x81, 0x5F]), // contrast 0x5F
        cmd(&[0xDB, 0x40]), // VCOMH deselect level
        cmd(&[0xA4]),       // output follows RAM
        cmd(&[0xA6]),       // normal (not inverted)
        cmd(&[0x2E]),       // scrolling off
        cmd(&[0xAF]),       // display on
    ]
}

/// The frame as SSD1306 RAM: 8 pages of 128 columns, bit n of a byte = row page*8+n.
fn ram(frame: &Frame) -> Vec<u8> {
    let mut out = vec![0u8; 1024];
    for page in 0..8u32 {
        for x in 0..128u32 {
            let mut b = 0u8;
            for bit in 0..8u32 {
                if frame.is_lit(x, page * 8 + bit) {
                    b |= 1 << bit;
                }
            }
            out[(page * 128 + x) as usize] = b;
        }
    }
    out
}

fn test_frame() -> Frame {
    let mut f = Frame::new(Size::new(128, 64));
    let px = [(0, 0), (127, 63), (5, 9), (6, 9), (64, 31), (64, 32)];
    f.draw_iter(px.iter().map(|&(x, y)| Pixel(Point::new(x, y), Rgb888::WHITE))).unwrap();
    // A grey that counts as lit and one that does not.
    f.draw_iter([Pixel(Point::new(100, 40), Rgb888::new(200, 200, 200))]).unwrap();
    f.draw_iter([Pixel(Point::new(101, 40), Rgb888::new(60, 60, 60))]).unwrap();
    f
}

#[test]
fn init_then_full_frame_then_one_changed_pixel() {
    let frame = test_frame();
    let data = ram(&frame);
    // Sanity of the expectation itself: the pixels we set are where the datasheet says.
    assert_eq!(data[0], 0x01); // (0,0): page 0, column 0, bit 0
    assert_eq!(data[7 * 128 + 127], 0x80); // (127,63): page 7, bit 7
    assert_eq!(data[128 + 5], 0x02); // (5,9): page 1, bit 1
    assert_eq!(data[3 * 128 + 64], 0x80); // (64,31)
    assert_eq!(data[4 * 128 + 64], 0x01); // (64,32)
    assert_eq!(data[5 * 128 + 100], 0x01); // lit grey
    assert_eq!(data[5 * 128 + 101], 0x00); // dark grey stays off

    let mut expected = init_sequence();
    // First frame: whole screen. Column 0..127, page 0..7, then 1024 data bytes in 16-byte writes.
    expected.push(cmd(&[0x21, 0, 127]));
    expected.push(cmd(&[0x22, 0, 7]));
    for chunk in data.chunks(16) {
        let mut v = vec![0x40];
        v.extend_from_slice(chunk);
        expected.push(T::write(ADDR, v));
    }
    // Second frame: pixel (10, 20) lit: column 10 only, page 2 only, one data byte.
    expected.push(cmd(&[0x21, 10, 10]));
    expected.push(cmd(&[0x22, 2, 2]));
    expected.push(T::write(ADDR, vec![0x40, 1 << (20 % 8)]));

    let bus = I2cMock::new(&expected);
    let mut oled = Ssd1306Backend::new(bus, ADDR, "mock".into()).unwrap();
    assert_eq!(oled.size(), Size::new(128, 64));
    oled.show(&frame, None).unwrap();
    // Same frame again: nothing at all on the bus.
    oled.show(&frame, Some(&frame)).unwrap();
    let mut second = frame.clone();
    second.draw_iter([Pixel(Point::new(10, 20), Rgb888::WHITE)]).unwrap();
    oled.show(&second, Some(&frame)).unwrap();
    oled.release().done();
}

#[test]
fn a_nack_is_an_error_naming_bus_and_address_and_the_next_frame_is_sent_whole() {
    let frame = test_frame();
    let data = ram(&frame);
    let mut expected = init_sequence();
    expected.push(
        cmd(&[0x21, 0, 127]).with_error(ErrorKind::NoAcknowledge(embedded_hal::i2c::NoAcknowledgeSource::Address)),
    );
    // After the failure the backend cannot know what the panel shows: it resends everything.
    expected.push(cmd(&[0x21, 0, 127]));
    expected.push(cmd(&[0x22, 0, 7]));
    for chunk in data.chunks(16) {
        let mut v = vec![0x40];
        v.extend_from_slice(chunk);
        expected.push(T::write(ADDR, v));
    }
    let bus = I2cMock::new(&expected);
    let mut oled = Ssd1306Backend::new(bus, ADDR, "/dev/i2c-7".into()).unwrap();
    let e = oled.show(&frame, None).unwrap_err().to_string();
    assert!(e.contains("/dev/i2c-7") && e.contains("0x3c"), "{e}");
    oled.show(&frame, None).unwrap();
    oled.release().done();
}

#[test]
fn probe_sends_a_nop_and_reports_the_ack() {
    let mut bus = I2cMock::new(&[
        T::write(0x3C, vec![0x00, 0xE3])
            .with_error(ErrorKind::NoAcknowledge(embedded_hal::i2c::NoAcknowledgeSource::Address)),
        T::write(0x3D, vec![0x00, 0xE3]),
    ]);
    assert!(!probe(&mut bus, 0x3C));
    assert!(probe(&mut bus, 0x3D));
    bus.done();
}

mod sh1106 {
    //! The SH1106 stream: its init sequence, then page-addressed writes starting at column 2.
    use super::*;
    use roomcast_display::backend::sh1106::Sh1106Backend;

    fn init() -> Vec<T> {
        [
            &[0xAE][..],
            &[0xD5, 0x80],
            &[0xA8, 0x3F],
            &[0xD3, 0x00],
            &[0x40],
            &[0xAD, 0x8B],
            &[0xA1],
            &[0xC8],
            &[0xDA, 0x12],
            &[0x81, 0x5F],
            &[0xD9, 0x22],
            &[0xDB, 0x35],
            &[0xA4],
            &[0xA6],
            &[0xAF],
        ]
        .iter()
        .map(|c| cmd(c))
        .collect()
    }

    #[test]
    fn init_full_frame_by_pages_then_only_the_changed_span() {
        let frame = test_frame();
        let data = ram(&frame);
        let mut expected = init();
        for page in 0..8u8 {
            // Page address, column 2 (low nibble 0x02, high nibble 0x10).
            expected.push(cmd(&[0xB0 | page, 0x02, 0x10]));
            let mut v = vec![0x40];
            v.extend_from_slice(&data[page as usize * 128..(page as usize + 1) * 128]);
            expected.push(T::write(ADDR, v));
        }
        // Pixels (20, 40) and (30, 41) lit: page 5, columns 20..=30 -> RAM column 22 = 0x16.
        let mut second = frame.clone();
        second.draw_iter([Pixel(Point::new(20, 40), Rgb888::WHITE), Pixel(Point::new(30, 41), Rgb888::WHITE)]).unwrap();
        let d2 = ram(&second);
        expected.push(cmd(&[0xB5, 0x06, 0x11]));
        let mut v = vec![0x40];
        v.extend_from_slice(&d2[5 * 128 + 20..=5 * 128 + 30]);
        assert_eq!(v[1], 0x01);
        assert_eq!(v[11], 0x02);
        expected.push(T::write(ADDR, v));

        let mut oled = Sh1106Backend::new(I2cMock::new(&expected), ADDR, "mock".into()).unwrap();
        oled.show(&frame, None).unwrap();
        oled.show(&frame, Some(&frame)).unwrap();
        oled.show(&second, Some(&frame)).unwrap();
        oled.release().done();
    }
}
