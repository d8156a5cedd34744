//! Render cost per frame, per screen size: `cargo bench -p roomcast-display`.
//!
//! Prints the mean time to render each state's sample screen and, for the display paths, the
//! cost of sending a frame (framebuffer rows to a file, SSD1306 pixels into a null I2C bus).
//! The driver renders at most 4 frames a second, and only when the state changed.

use embedded_graphics::prelude::Size;
use roomcast_display::backend::framebuffer::{FbBitfield, FbFixScreenInfo, FbVarScreenInfo, FramebufferBackend};
use roomcast_display::backend::ssd1306::Ssd1306Backend;
use roomcast_display::{render, Backend, DisplayState, Frame, PhaseName};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// An I2C bus that accepts everything.
struct NullBus;
impl embedded_hal::i2c::ErrorType for NullBus {
    type Error = core::convert::Infallible;
}
impl embedded_hal::i2c::I2c for NullBus {
    fn transaction(&mut self, _a: u8, _ops: &mut [embedded_hal::i2c::Operation<'_>]) -> Result<(), Self::Error> {
        Ok(())
    }
}

fn time<F: FnMut()>(mut f: F) -> Duration {
    // Warm up, then run for ~0.3 s.
    f();
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < Duration::from_millis(300) {
        f();
        n += 1;
    }
    start.elapsed() / n
}

fn main() {
    let now = Instant::now();
    println!("render time per frame (mean over ~0.3 s per cell)");
    let sizes = [Size::new(128, 64), Size::new(320, 240), Size::new(480, 320), Size::new(1024, 768)];
    print!("{:<14}", "state");
    for s in sizes {
        print!("{:>12}", format!("{}x{}", s.width, s.height));
    }
    println!();
    for name in PhaseName::ALL {
        let state = DisplayState::sample(name, now);
        print!("{:<14}", name.as_str());
        for size in sizes {
            let d = time(|| {
                black_box(render(black_box(&state), size, now));
            });
            print!("{:>10.0}us", d.as_secs_f64() * 1e6);
        }
        println!();
    }

    let meeting = DisplayState::sample(PhaseName::InMeeting, now);
    let relay = DisplayState::sample(PhaseName::RelayLost, now);

    // SSD1306: full frame, then alternating two countdown frames (small change).
    let a = render(&relay, Size::new(128, 64), now);
    let b = render(&relay, Size::new(128, 64), now + Duration::from_secs(1));
    let mut oled = Ssd1306Backend::new(NullBus, 0x3C, "null".into()).unwrap();
    let full = time(|| {
        oled.show(&Frame::new(Size::new(128, 64)), None).unwrap();
        oled.show(&a, None).unwrap();
    }) / 2;
    let mut flip = false;
    let tick = time(|| {
        flip = !flip;
        let (new, old) = if flip { (&b, &a) } else { (&a, &b) };
        oled.show(new, Some(old)).unwrap();
    });
    println!(
        "ssd1306 send (null bus): full frame {:.0}us, countdown tick {:.0}us",
        full.as_secs_f64() * 1e6,
        tick.as_secs_f64() * 1e6
    );

    // Framebuffer: 480x320 XRGB8888 into a temp file.
    let size = Size::new(480, 320);
    let var = FbVarScreenInfo {
        xres: 480,
        yres: 320,
        xres_virtual: 480,
        yres_virtual: 320,
        bits_per_pixel: 32,
        red: FbBitfield { offset: 16, length: 8, msb_right: 0 },
        green: FbBitfield { offset: 8, length: 8, msb_right: 0 },
        blue: FbBitfield { offset: 0, length: 8, msb_right: 0 },
        ..Default::default()
    };
    let fix = FbFixScreenInfo { line_length: 480 * 4, visual: 2, ..Default::default() };
    let file = tempfile::NamedTempFile::new().unwrap();
    file.as_file().set_len(480 * 4 * 320).unwrap();
    let mut fb = FramebufferBackend::from_parts(file.reopen().unwrap(), file.path().into(), var, fix).unwrap();
    let m = render(&meeting, size, now);
    let full = time(|| fb.show(&m, None).unwrap());
    let a = render(&relay, size, now);
    let b = render(&relay, size, now + Duration::from_secs(1));
    let mut flip = false;
    let tick = time(|| {
        flip = !flip;
        let (new, old) = if flip { (&b, &a) } else { (&a, &b) };
        fb.show(new, Some(old)).unwrap();
    });
    println!(
        "framebuffer 480x320x32 send (file): full frame {:.0}us, countdown tick {:.0}us",
        full.as_secs_f64() * 1e6,
        tick.as_secs_f64() * 1e6
    );
}
