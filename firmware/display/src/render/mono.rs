//! The 128x64 monochrome layout.
use crate::{DisplayState, Frame};
use std::time::Instant;

/// Draws `state` onto a monochrome screen.
pub fn draw(state: &DisplayState, now: Instant, target: &mut Frame) {
    let _ = (state, now, target);
}
