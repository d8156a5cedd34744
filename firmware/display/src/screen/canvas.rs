//! The I420 canvas the screen is composed in: filled rectangles, pictures scaled into
//! rectangles with fast_image_resize (bilinear convolution, SSE4.1/AVX2 or NEON; each plane on
//! its own, straight into the canvas), and the whole canvas to RGB with yuvutils-rs (BT.601
//! limited range, what cameras and our encoders carry) in one SIMD pass.

use embedded_graphics::prelude::Size;
use embedded_graphics::primitives::Rectangle;
use fast_image_resize::images::{TypedCroppedImage, TypedCroppedImageMut, TypedImage, TypedImageRef};
use fast_image_resize::pixels::U8;
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use yuvutils_rs::{yuv420_to_rgb, YuvPlanarImage, YuvRange, YuvStandardMatrix};

use super::I420Planes;
use crate::{DisplayError, Frame};

/// A YUV colour (limited range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Yuv(pub u8, pub u8, pub u8);

impl Yuv {
    /// Near-black background.
    pub const BACKGROUND: Yuv = Yuv(20, 128, 128);
    /// The empty tile's grey.
    pub const TILE: Yuv = Yuv(45, 130, 126);
}

/// An even-sized I420 image with packed planes.
pub struct Canvas {
    width: u32,
    height: u32,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
    resizer: Resizer,
    rgb: Vec<u8>,
}

impl Canvas {
    /// A canvas of `size` (rounded down to even sides).
    pub fn new(size: Size) -> Self {
        let (w, h) = (size.width.max(2) & !1, size.height.max(2) & !1);
        let (cw, ch) = ((w / 2) as usize, (h / 2) as usize);
        Canvas {
            width: w,
            height: h,
            y: vec![0; w as usize * h as usize],
            u: vec![128; cw * ch],
            v: vec![128; cw * ch],
            resizer: Resizer::new(),
            rgb: vec![0; w as usize * h as usize * 3],
        }
    }

    /// The size.
    pub fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }

    /// The canvas' planes (tests and benches).
    pub fn planes(&self) -> I420Planes<'_> {
        I420Planes {
            width: self.width,
            height: self.height,
            y: &self.y,
            u: &self.u,
            v: &self.v,
            y_stride: self.width as usize,
            uv_stride: self.width as usize / 2,
        }
    }

    /// The part of `r` inside the canvas, on even coordinates: (x, y, w, h) in luma pixels.
    fn clip(&self, r: Rectangle) -> Option<(u32, u32, u32, u32)> {
        let x0 = r.top_left.x.max(0) as u32 & !1;
        let y0 = r.top_left.y.max(0) as u32 & !1;
        let x1 = ((r.top_left.x.max(0) as u32).saturating_add(r.size.width)).min(self.width) & !1;
        let y1 = ((r.top_left.y.max(0) as u32).saturating_add(r.size.height)).min(self.height) & !1;
        (x1 > x0 && y1 > y0).then(|| (x0, y0, x1 - x0, y1 - y0))
    }

    /// Fills `r` with `c` (row slices: memset).
    pub fn fill(&mut self, r: Rectangle, c: Yuv) {
        let Some((x, y, w, h)) = self.clip(r) else { return };
        let stride = self.width as usize;
        for row in y as usize..(y + h) as usize {
            self.y[row * stride + x as usize..][..w as usize].fill(c.0);
        }
        let cs = stride / 2;
        for row in (y / 2) as usize..((y + h) / 2) as usize {
            self.u[row * cs + (x / 2) as usize..][..(w / 2) as usize].fill(c.1);
            self.v[row * cs + (x / 2) as usize..][..(w / 2) as usize].fill(c.2);
        }
    }

    /// Fills the whole canvas.
    pub fn clear(&mut self, c: Yuv) {
        self.y.fill(c.0);
        self.u.fill(c.1);
        self.v.fill(c.2);
    }

    /// Scales `picture` into `r` (stretched to it: callers fit the aspect first).
    pub fn draw_picture(&mut self, picture: &I420Planes<'_>, r: Rectangle) -> Result<(), DisplayError> {
        if !picture.is_valid() {
            return Err(DisplayError::BadScreen(format!(
                "picture {}x{} does not match its planes",
                picture.width, picture.height
            )));
        }
        let Some((x, y, w, h)) = self.clip(r) else { return Ok(()) };
        let (pw, ph) = (picture.width, picture.height);
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        let planes = [
            (picture.y, picture.y_stride, pw, ph, &mut self.y, self.width, x, y, w, h),
            (
                picture.u,
                picture.uv_stride,
                pw.div_ceil(2),
                ph.div_ceil(2),
                &mut self.u,
                self.width / 2,
                x / 2,
                y / 2,
                w / 2,
                h / 2,
            ),
            (
                picture.v,
                picture.uv_stride,
                pw.div_ceil(2),
                ph.div_ceil(2),
                &mut self.v,
                self.width / 2,
                x / 2,
                y / 2,
                w / 2,
                h / 2,
            ),
        ];
        let canvas_rows = self.height;
        for (src, stride, sw, sh, dst, dw, dx, dy, tw, th) in planes {
            let bad = |e: &dyn std::fmt::Display| DisplayError::BadScreen(format!("scaling: {e}"));
            // The source with its stride as width, cropped to the picture.
            let src_img = TypedImageRef::<U8>::from_buffer(stride as u32, sh, &src[..stride * sh as usize])
                .map_err(|e| bad(&e))?;
            let src_img = TypedCroppedImage::new(src_img, 0, 0, sw, sh).map_err(|e| bad(&e))?;
            let plane_rows = if dw == self.width { canvas_rows } else { canvas_rows / 2 };
            let dst_img = TypedImage::<U8>::from_buffer(dw, plane_rows, dst.as_mut_slice()).map_err(|e| bad(&e))?;
            let mut dst_img = TypedCroppedImageMut::new(dst_img, dx, dy, tw, th).map_err(|e| bad(&e))?;
            self.resizer.resize_typed(&src_img, &mut dst_img, &options).map_err(|e| bad(&e))?;
        }
        Ok(())
    }

    /// The canvas as an RGB frame (yuvutils-rs, one pass).
    pub fn to_frame(&mut self) -> Result<Frame, DisplayError> {
        let image = YuvPlanarImage {
            y_plane: &self.y,
            y_stride: self.width,
            u_plane: &self.u,
            u_stride: self.width / 2,
            v_plane: &self.v,
            v_stride: self.width / 2,
            width: self.width,
            height: self.height,
        };
        yuv420_to_rgb(&image, &mut self.rgb, self.width * 3, YuvRange::Limited, YuvStandardMatrix::Bt601)
            .map_err(|e| DisplayError::BadScreen(format!("YUV to RGB: {e}")))?;
        Frame::from_rgb_bytes(self.size(), &self.rgb)
            .ok_or_else(|| DisplayError::BadScreen("RGB buffer does not match the canvas".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_graphics::prelude::Point;

    /// A 64x36 picture: left half luma 200, right half luma 60, neutral chroma.
    fn halves() -> Vec<u8> {
        let (w, h) = (64usize, 36usize);
        let mut d = vec![128u8; w * h * 3 / 2];
        for row in 0..h {
            for col in 0..w {
                d[row * w + col] = if col < w / 2 { 200 } else { 60 };
            }
        }
        d
    }

    #[test]
    fn a_picture_lands_scaled_in_its_rectangle_only() {
        let mut c = Canvas::new(Size::new(320, 180));
        c.clear(Yuv::BACKGROUND);
        let data = halves();
        let pic = I420Planes::packed(64, 36, &data).unwrap();
        c.draw_picture(&pic, Rectangle::new(Point::new(100, 40), Size::new(128, 72))).unwrap();
        let p = c.planes();
        let at = |x: usize, y: usize| p.y[y * 320 + x];
        assert_eq!(at(99, 60), Yuv::BACKGROUND.0, "left of the tile");
        assert_eq!(at(228, 60), Yuv::BACKGROUND.0, "right of the tile");
        assert_eq!(at(150, 39), Yuv::BACKGROUND.0, "above the tile");
        assert!(at(110, 60).abs_diff(200) <= 2, "{}", at(110, 60));
        assert!(at(220, 100).abs_diff(60) <= 2, "{}", at(220, 100));
        let frame = c.to_frame().unwrap();
        let bright = frame.pixel(110, 60).unwrap();
        let dark = frame.pixel(220, 100).unwrap();
        use embedded_graphics::pixelcolor::RgbColor;
        assert!(bright.g() > 190 && dark.g() < 60, "{bright:?} {dark:?}");
    }

    #[test]
    fn bad_pictures_are_errors() {
        let mut c = Canvas::new(Size::new(64, 64));
        let data = vec![0u8; 10];
        let pic = I420Planes { width: 64, height: 36, y: &data, u: &data, v: &data, y_stride: 64, uv_stride: 32 };
        assert!(c.draw_picture(&pic, Rectangle::new(Point::zero(), Size::new(32, 18))).is_err());
    }
}
