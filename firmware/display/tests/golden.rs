//! Golden screens: every phase's sample state rendered at 128x64 and 320x240 must match the PNG
//! committed under docs/screens/<state>-<size>.png pixel for pixel (the README shows those files).
//!
//! On a mismatch the new render is written to `$CARGO_TARGET_TMPDIR/screens/` for review.
//! After an intended layout change, regenerate the goldens with
//! `ROOMCAST_UPDATE_SCREENS=1 cargo test -p roomcast-display --test golden` and look at them.

use embedded_graphics::prelude::Size;
use roomcast_display::backend::png::{read_png, write_png};
use roomcast_display::{render, DisplayState, PhaseName};
use std::path::PathBuf;
use std::time::Instant;

const SIZES: [Size; 2] = [Size::new(128, 64), Size::new(320, 240)];

fn screens_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screens")
}

#[test]
fn every_state_matches_its_golden_png_at_both_sizes() {
    let update = std::env::var_os("ROOMCAST_UPDATE_SCREENS").is_some();
    let review = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screens");
    let now = Instant::now();
    let mut failures = Vec::new();
    for name in PhaseName::ALL {
        for size in SIZES {
            let file = format!("{name}-{}x{}.png", size.width, size.height);
            let golden = screens_dir().join(&file);
            let frame = render(&DisplayState::sample(name, now), size, now);
            if update {
                write_png(&frame, &golden).unwrap();
                continue;
            }
            let problem = match read_png(&golden) {
                Ok(g) if g == frame => continue,
                Ok(g) if !g.same_size(&frame) => {
                    format!("size {}x{} != {}x{}", g.width(), g.height(), frame.width(), frame.height())
                }
                Ok(g) => {
                    let n = g.pixels().iter().zip(frame.pixels()).filter(|(a, b)| a != b).count();
                    format!("{n} pixels differ")
                }
                Err(e) => e.to_string(),
            };
            std::fs::create_dir_all(&review).unwrap();
            let new = review.join(&file);
            write_png(&frame, &new).unwrap();
            failures.push(format!("{file}: {problem}; new render: {}", new.display()));
        }
    }
    assert!(failures.is_empty(), "screens differ from docs/screens:\n{}", failures.join("\n"));
}

#[test]
fn renders_are_deterministic_and_states_look_different() {
    let now = Instant::now();
    for size in SIZES {
        let frames: Vec<_> = PhaseName::ALL.iter().map(|&n| render(&DisplayState::sample(n, now), size, now)).collect();
        for (i, a) in frames.iter().enumerate() {
            assert_eq!(*a, render(&DisplayState::sample(PhaseName::ALL[i], now), size, now));
            for b in &frames[i + 1..] {
                assert_ne!(a, b, "two states render identically at {size:?}");
            }
        }
    }
}
