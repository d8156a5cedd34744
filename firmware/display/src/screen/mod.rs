//! The room's big screen: the other rooms' video composed into a layout that follows how many
//! there are (1, 2 side by side, 2x2, 3x3), each tile with the room's name, a muted mark and a
//! highlight on the active speaker, a status strip for the box itself and an optional
//! self-view; then shown on an output (`[screen] output`: framebuffer, a PNG about once a
//! second, or none).
//!
//! - [`layout`]: [`Layout`] and where each tile goes.
//! - [`canvas`]: the I420 canvas; tiles are scaled into it with fast_image_resize (SIMD), and
//!   it is turned into RGB with yuvutils-rs (SIMD) once per screen.
//! - [`compose`]: [`Compositor`], canvas + overlays (text from the status display's fonts).
//! - [`speaker`]: [`SpeakerTracker`], the active speaker from audio levels (sans-IO).
//! - [`output`]: [`ScreenOutput`] (parsed from the config) and [`ScreenSink`].
//!
//! The screen takes pictures as borrowed 8-bit 4:2:0 planes ([`Planes`]), so it needs no
//! decoder: the box hands it what roomcast-media's `decode::av1::Av1Decoder` produced.

pub mod canvas;
pub mod compose;
pub mod layout;
pub mod output;
pub mod speaker;

pub use compose::{Compositor, Status, Tile};
pub use layout::Layout;
pub use output::{ScreenOutput, ScreenSink};
pub use speaker::SpeakerTracker;

/// An 8-bit 4:2:0 picture, borrowed plane by plane (strides in bytes).
#[derive(Debug, Clone, Copy)]
pub struct Planes<'a> {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Luma, `y_stride * height` bytes.
    pub y: &'a [u8],
    /// Cb, `ceil(height / 2)` rows of `uv_stride`.
    pub u: &'a [u8],
    /// Cr, like `u`.
    pub v: &'a [u8],
    /// Bytes per luma row.
    pub y_stride: usize,
    /// Bytes per chroma row.
    pub uv_stride: usize,
}

impl<'a> Planes<'a> {
    /// The planes of a packed I420 buffer; `None` when it is too short.
    pub fn packed(width: u32, height: u32, data: &'a [u8]) -> Option<Self> {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let y_len = w.checked_mul(h)?;
        let c_len = cw.checked_mul(ch)?;
        Some(Planes {
            width,
            height,
            y: data.get(..y_len)?,
            u: data.get(y_len..y_len + c_len)?,
            v: data.get(y_len + c_len..y_len + 2 * c_len)?,
            y_stride: w,
            uv_stride: cw,
        })
    }

    /// Whether the planes hold what the sizes and strides say, full strides on every row (a bad
    /// picture is skipped, not a panic).
    pub fn is_valid(&self) -> bool {
        let (w, h) = (self.width as usize, self.height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let holds = |plane: &[u8], stride: usize, width: usize, rows: usize| {
            stride >= width && stride.checked_mul(rows).is_some_and(|n| plane.len() >= n)
        };
        w > 0
            && h > 0
            && holds(self.y, self.y_stride, w, h)
            && holds(self.u, self.uv_stride, cw, ch)
            && holds(self.v, self.uv_stride, cw, ch)
    }
}
