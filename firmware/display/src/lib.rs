//! The status display: a pure function from the box's state to a screen, and its backends.
//!
//! - [`state`]: the [`DisplayState`] value the box daemon owns (serde-serializable), with sample
//!   data for every phase in [`sample`].
//! - [`render()`]: state + size + now -> [`Frame`] (an off-screen RGB buffer), with a 128x64
//!   monochrome layout and a colour layout that adapts to the size (320x240, 480x320, ...).
//! - [`backend`]: the [`Backend`] trait and its SSD1306 (I2C), Linux framebuffer and PNG
//!   implementations, and `auto` probing.
//! - [`screen`]: the room's big screen: remote rooms' video composed in a layout, captions,
//!   active speaker, status strip, self-view; framebuffer / PNG / none outputs.
//! - [`Display`]: the sans-IO-style driver the daemon calls with the state and `now`: it redraws
//!   only on change, at most a few times a second, and survives a missing or failing display.

pub mod backend;
mod driver;
mod error;
mod frame;
pub mod render;
pub mod sample;
pub mod screen;
pub mod state;

pub use backend::{open, parse_size, Backend, BackendChoice};
pub use driver::{Display, Outcome, MIN_REDRAW_INTERVAL, RETRY_INTERVAL};
pub use error::DisplayError;
pub use frame::{is_lit, Frame};
pub use render::{draw, render};
pub use state::{Deadline, Device, DisplayState, Encoder, Meeting, NetworkProblem, Participant, Phase, PhaseName};

/// A screen size in pixels (embedded-graphics' `Size`).
pub type FrameSize = embedded_graphics::prelude::Size;

/// The monochrome OLED size.
pub const OLED_SIZE: embedded_graphics::prelude::Size = embedded_graphics::prelude::Size::new(128, 64);
/// The reference colour screen size.
pub const COLOUR_SIZE: embedded_graphics::prelude::Size = embedded_graphics::prelude::Size::new(320, 240);
