//! Draws one state's sample screen on a framebuffer through the real FBIOGET_* path, and prints
//! what the kernel reported. A small binary for checking the framebuffer backend on a guest or
//! a board without building the whole daemon:
//! `cargo build -p roomcast-display --example fbshow --target aarch64-unknown-linux-gnu`, then
//! `fbshow in-meeting /dev/fb0` on the target.

use roomcast_display::backend::framebuffer::FramebufferBackend;
use roomcast_display::{render, Backend, DisplayState, PhaseName};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let state: PhaseName = match args.next().unwrap_or_else(|| "in-meeting".into()).parse() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fbshow: {e}");
            std::process::exit(2);
        }
    };
    let dev = PathBuf::from(args.next().unwrap_or_else(|| "/dev/fb0".into()));
    let mut fb = match FramebufferBackend::open(&dev) {
        Ok(fb) => fb,
        Err(e) => {
            eprintln!("fbshow: {e}");
            std::process::exit(1);
        }
    };
    fb.keep_console_in_graphics_mode();
    println!("fbshow: {} format {:?} console held: {}", fb.describe(), fb.format(), fb.holds_console());
    let now = Instant::now();
    let t = Instant::now();
    let frame = render(&DisplayState::sample(state, now), fb.size(), now);
    let rendered = t.elapsed();
    if let Err(e) = fb.show(&frame, None) {
        eprintln!("fbshow: {e}");
        std::process::exit(1);
    }
    println!("fbshow: drew {state} (render {:?}, total {:?})", rendered, t.elapsed());
    // Steady state: later renders reuse warm memory; a countdown tick rewrites a few rows.
    let lost = DisplayState::sample(PhaseName::RelayLost, now);
    let a = render(&lost, fb.size(), now);
    let t = Instant::now();
    let n = 5;
    for i in 0..n {
        std::hint::black_box(render(&lost, fb.size(), now + std::time::Duration::from_secs(i)));
    }
    let per_render = t.elapsed() / n as u32;
    let b = render(&lost, fb.size(), now + std::time::Duration::from_secs(1));
    let _ = fb.show(&a, None);
    let t = Instant::now();
    let _ = fb.show(&b, Some(&a));
    println!("fbshow: steady render {per_render:?}, countdown tick send {:?}", t.elapsed());
    if let Err(e) = fb.show(&frame, None) {
        eprintln!("fbshow: {e}");
    }
}
