//! The colour layout (320x240 reference; adapts to the screen it is given).
use crate::{DisplayState, Frame};
use std::time::Instant;

/// Draws `state` onto a colour screen.
pub fn draw(state: &DisplayState, now: Instant, target: &mut Frame) {
    let _ = (state, now, target);
}
