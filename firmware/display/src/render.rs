//! State -> screen. [`render`] is a pure function of the state, the screen size and `now` (for
//! countdowns): the same inputs give the same pixels, which the golden-PNG tests rely on.
//!
//! Screens up to 160x80 get the monochrome OLED layout ([`mono`]); anything larger gets the
//! colour layout ([`colour`]), whose type sizes and spacing follow the screen's height.

pub mod colour;
pub mod mono;
pub(crate) mod summary;
pub(crate) mod text;

use crate::{DisplayState, Frame};
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::{DrawTarget, OriginDimensions, Size};
use std::time::Instant;

/// The largest size that still gets the monochrome layout.
pub const MONO_MAX: Size = Size::new(160, 80);

/// Renders `state` at `size` as of `now` into a new frame.
pub fn render(state: &DisplayState, size: Size, now: Instant) -> Frame {
    let mut frame = Frame::new(size);
    draw(state, now, &mut frame);
    frame
}

/// Draws `state` as of `now` onto `target`, choosing the layout from the target's size.
pub fn draw(state: &DisplayState, now: Instant, target: &mut Frame) {
    let size = target.size();
    // Drawing into a Frame cannot fail (its error type is Infallible).
    let _ = target.clear(Rgb888::new(0, 0, 0));
    if size.width <= MONO_MAX.width && size.height <= MONO_MAX.height {
        mono::draw(state, now, target);
    } else {
        colour::draw(state, now, target);
    }
}
