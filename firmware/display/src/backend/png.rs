//! The PNG backend: writes each frame to a file (for `roomcast display --png`, the golden screens
//! under docs/screens/ and tests), plus [`read_png`] to decode one back for comparison.

use crate::backend::Backend;
use crate::{DisplayError, Frame};
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::Size;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// Writes frames to a PNG file.
pub struct PngBackend {
    path: PathBuf,
    size: Size,
}

impl PngBackend {
    /// A backend writing `size` frames to `path`.
    pub fn new(path: PathBuf, size: Size) -> Self {
        PngBackend { path, size }
    }
}

impl Backend for PngBackend {
    fn describe(&self) -> String {
        format!("PNG {}x{} {}", self.size.width, self.size.height, self.path.display())
    }

    fn size(&self) -> Size {
        self.size
    }

    fn show(&mut self, frame: &Frame, _previous: Option<&Frame>) -> Result<(), DisplayError> {
        write_png(frame, &self.path)
    }
}

/// Writes `frame` to `path` as an 8-bit RGB PNG.
pub fn write_png(frame: &Frame, path: &Path) -> Result<(), DisplayError> {
    let io = |source| DisplayError::Io { what: "writing PNG", path: path.to_owned(), source };
    let png_err = |e: png::EncodingError| DisplayError::Png { path: path.to_owned(), message: e.to_string() };
    let file = File::create(path).map_err(io)?;
    let mut enc = png::Encoder::new(BufWriter::new(file), frame.width(), frame.height());
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(png_err)?;
    writer.write_image_data(&frame.to_rgb_bytes()).map_err(png_err)?;
    writer.finish().map_err(png_err)
}

/// Reads a PNG (8-bit grey, grey+alpha, RGB or RGBA; palettes expanded) into a frame.
pub fn read_png(path: &Path) -> Result<Frame, DisplayError> {
    let err = |message: String| DisplayError::Png { path: path.to_owned(), message };
    let file =
        File::open(path).map_err(|source| DisplayError::Io { what: "reading PNG", path: path.to_owned(), source })?;
    let mut dec = png::Decoder::new(std::io::BufReader::new(file));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().map_err(|e| err(e.to_string()))?;
    let size = reader.output_buffer_size().ok_or_else(|| err("image too large".into()))?;
    let mut buf = vec![0; size];
    let info = reader.next_frame(&mut buf).map_err(|e| err(e.to_string()))?;
    let bytes = buf.get(..info.buffer_size()).ok_or_else(|| err("short image".into()))?;
    let pixels: Vec<Rgb888> = match info.color_type {
        png::ColorType::Rgb => bytes.chunks_exact(3).map(|p| Rgb888::new(p[0], p[1], p[2])).collect(),
        png::ColorType::Rgba => bytes.chunks_exact(4).map(|p| Rgb888::new(p[0], p[1], p[2])).collect(),
        png::ColorType::Grayscale => bytes.iter().map(|&g| Rgb888::new(g, g, g)).collect(),
        png::ColorType::GrayscaleAlpha => bytes.chunks_exact(2).map(|p| Rgb888::new(p[0], p[0], p[0])).collect(),
        other => return Err(err(format!("unsupported colour type {other:?}"))),
    };
    Frame::from_pixels(Size::new(info.width, info.height), pixels)
        .ok_or_else(|| err("pixel count does not match the size".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_graphics::prelude::{DrawTarget, Point};
    use embedded_graphics::Pixel;

    #[test]
    fn png_round_trips_pixel_for_pixel() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.png");
        let mut f = Frame::new(Size::new(7, 5));
        f.draw_iter([Pixel(Point::new(3, 2), Rgb888::new(10, 200, 30))]).unwrap();
        let mut b = PngBackend::new(path.clone(), f.size_of());
        b.show(&f, None).unwrap();
        assert_eq!(read_png(&path).unwrap(), f);
    }

    #[test]
    fn a_missing_or_bad_png_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.png");
        assert!(read_png(&path).unwrap_err().to_string().contains("nope.png"));
        std::fs::write(&path, b"not a png").unwrap();
        assert!(read_png(&path).unwrap_err().to_string().contains("nope.png"));
    }

    trait SizeOf {
        fn size_of(&self) -> Size;
    }
    impl SizeOf for Frame {
        fn size_of(&self) -> Size {
            Size::new(self.width(), self.height())
        }
    }
}
