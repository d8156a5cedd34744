//! The off-screen buffer every screen is rendered into before a backend sees it.
//!
//! Rendering into memory first is what makes the display flicker-free: a backend receives a
//! finished frame, and the [`crate::Display`] driver sends it only when it differs from the last.

use embedded_graphics::pixelcolor::{Rgb888, RgbColor};
use embedded_graphics::prelude::{Dimensions, DrawTarget, OriginDimensions, Pixel, Point, Size};

/// An RGB image held in memory, `width * height` pixels, row-major.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    width: u32,
    height: u32,
    pixels: Vec<Rgb888>,
}

impl Frame {
    /// A black frame of `size`.
    pub fn new(size: Size) -> Self {
        let n = (size.width as usize).saturating_mul(size.height as usize);
        Frame { width: size.width, height: size.height, pixels: vec![Rgb888::BLACK; n] }
    }

    /// A frame from row-major RGB pixels; `None` when the count does not match the size.
    pub fn from_pixels(size: Size, pixels: Vec<Rgb888>) -> Option<Self> {
        let n = (size.width as usize).checked_mul(size.height as usize)?;
        (pixels.len() == n).then_some(Frame { width: size.width, height: size.height, pixels })
    }

    /// A frame from packed 8-bit RGB bytes; `None` when the length does not match the size.
    pub fn from_rgb_bytes(size: Size, rgb: &[u8]) -> Option<Self> {
        let n = (size.width as usize).checked_mul(size.height as usize)?;
        (rgb.len() == n.checked_mul(3)?).then(|| Frame {
            width: size.width,
            height: size.height,
            pixels: rgb.chunks_exact(3).map(|p| Rgb888::new(p[0], p[1], p[2])).collect(),
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The row-major pixels.
    pub fn pixels(&self) -> &[Rgb888] {
        &self.pixels
    }

    /// One row of pixels (`None` past the bottom).
    pub fn row(&self, y: u32) -> Option<&[Rgb888]> {
        let w = self.width as usize;
        let start = (y as usize).checked_mul(w)?;
        self.pixels.get(start..start + w)
    }

    /// One row of pixels, mutable (`None` past the bottom).
    pub(crate) fn row_mut(&mut self, y: u32) -> Option<&mut [Rgb888]> {
        let w = self.width as usize;
        let start = (y as usize).checked_mul(w)?;
        self.pixels.get_mut(start..start + w)
    }

    /// The pixel at (x, y), `None` outside the frame.
    pub fn pixel(&self, x: u32, y: u32) -> Option<Rgb888> {
        if x >= self.width {
            return None;
        }
        self.row(y).and_then(|r| r.get(x as usize)).copied()
    }

    /// Whether the pixel at (x, y) counts as lit on a monochrome panel (luma above half).
    pub fn is_lit(&self, x: u32, y: u32) -> bool {
        self.pixel(x, y).is_some_and(is_lit)
    }

    /// Packed 8-bit RGB bytes, row-major (for PNG encoding).
    pub fn to_rgb_bytes(&self) -> Vec<u8> {
        self.pixels.iter().flat_map(|p| [p.r(), p.g(), p.b()]).collect()
    }

    /// The rows (first, last inclusive) that differ from `other`; `None` if identical or the
    /// sizes differ (then everything must be redrawn: see [`Frame::same_size`]).
    pub fn changed_rows(&self, other: &Frame) -> Option<(u32, u32)> {
        if !self.same_size(other) {
            return None;
        }
        let w = self.width as usize;
        if w == 0 {
            return None;
        }
        let rows = || self.pixels.chunks(w).zip(other.pixels.chunks(w)).enumerate();
        let first = rows().find(|(_, (a, b))| a != b)?.0;
        let last = rows().rev().find(|(_, (a, b))| a != b).map_or(first, |r| r.0);
        Some((first as u32, last as u32))
    }

    /// Whether both frames have the same dimensions.
    pub fn same_size(&self, other: &Frame) -> bool {
        self.width == other.width && self.height == other.height
    }
}

/// Whether a colour counts as lit on a monochrome panel.
pub fn is_lit(c: Rgb888) -> bool {
    // Integer Rec. 601 luma.
    let luma = 299 * u32::from(c.r()) + 587 * u32::from(c.g()) + 114 * u32::from(c.b());
    luma >= 128 * 1000
}

impl std::fmt::Debug for Frame {
    /// Size and lit-pixel count only: a frame's pixels would flood test failure messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lit = self.pixels.iter().filter(|&&p| p != Rgb888::BLACK).count();
        write!(f, "Frame({}x{}, {lit} non-black pixels)", self.width, self.height)
    }
}

impl OriginDimensions for Frame {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl DrawTarget for Frame {
    type Color = Rgb888;
    type Error = core::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        let (w, h) = (self.width as i32, self.height as i32);
        for Pixel(Point { x, y }, color) in pixels {
            if x >= 0 && y >= 0 && x < w && y < h {
                let i = y as usize * self.width as usize + x as usize;
                if let Some(p) = self.pixels.get_mut(i) {
                    *p = color;
                }
            }
        }
        Ok(())
    }

    fn clear(&mut self, color: Self::Color) -> Result<(), Self::Error> {
        self.pixels.fill(color);
        Ok(())
    }

    fn fill_solid(
        &mut self,
        area: &embedded_graphics::primitives::Rectangle,
        color: Self::Color,
    ) -> Result<(), Self::Error> {
        let area = area.intersection(&self.bounding_box());
        let Some(br) = area.bottom_right() else { return Ok(()) };
        let w = self.width as usize;
        for y in area.top_left.y..=br.y {
            let start = y as usize * w + area.top_left.x as usize;
            let end = y as usize * w + br.x as usize + 1;
            if let Some(row) = self.pixels.get_mut(start..end) {
                row.fill(color);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_graphics::primitives::{Primitive, PrimitiveStyle, Rectangle};
    use embedded_graphics::Drawable;

    #[test]
    fn drawing_clips_and_changed_rows_finds_the_band() {
        let mut a = Frame::new(Size::new(10, 8));
        let b = a.clone();
        assert_eq!(a.changed_rows(&b), None);
        Rectangle::new(Point::new(-3, 2), Size::new(5, 3))
            .into_styled(PrimitiveStyle::with_fill(Rgb888::WHITE))
            .draw(&mut a)
            .unwrap();
        assert!(a.is_lit(0, 2) && a.is_lit(1, 4) && !a.is_lit(2, 2) && !a.is_lit(0, 5));
        assert_eq!(a.changed_rows(&b), Some((2, 4)));
        a.fill_solid(&Rectangle::new(Point::new(8, 6), Size::new(10, 10)), Rgb888::RED).unwrap();
        assert_eq!(a.pixel(9, 7), Some(Rgb888::RED));
        assert_eq!(a.changed_rows(&b), Some((2, 7)));
    }
}
