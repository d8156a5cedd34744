//! Pixel format conversion from what cameras deliver (YUYV, NV12, YU12/I420, MJPEG) to I420,
//! the encoders' input. Input buffers come from devices: every length is checked, nothing
//! panics on a short or odd buffer.

use crate::error::{MediaError, Result};

/// Camera pixel formats roomcast can convert, in order of preference when several fit
/// (uncompressed 4:2:0 first, then YUYV, MJPEG last because decoding costs CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Planar 4:2:0 (`YU12`, I420): copied as is.
    Yu12,
    /// Semi-planar 4:2:0 (`NV12`): Y plane, interleaved UV plane.
    Nv12,
    /// Packed 4:2:2 (`YUYV`): Y0 U Y1 V.
    Yuyv,
    /// Motion JPEG: every frame a JPEG.
    Mjpeg,
}

impl PixelFormat {
    /// All supported formats, most preferred first.
    pub const ALL: [PixelFormat; 4] = [PixelFormat::Yu12, PixelFormat::Nv12, PixelFormat::Yuyv, PixelFormat::Mjpeg];

    /// The V4L2 fourcc.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            PixelFormat::Yu12 => *b"YU12",
            PixelFormat::Nv12 => *b"NV12",
            PixelFormat::Yuyv => *b"YUYV",
            PixelFormat::Mjpeg => *b"MJPG",
        }
    }
    /// The format for a V4L2 fourcc, if supported.
    pub fn from_fourcc(cc: [u8; 4]) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.fourcc() == cc)
    }
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Yu12 => "YU12",
            PixelFormat::Nv12 => "NV12",
            PixelFormat::Yuyv => "YUYV",
            PixelFormat::Mjpeg => "MJPEG",
        }
    }
    /// Rank for picking: lower is better.
    pub fn rank(self) -> usize {
        Self::ALL.iter().position(|f| *f == self).unwrap_or(usize::MAX)
    }
    /// Bytes per line of a tightly packed frame (not meaningful for MJPEG).
    pub fn min_stride(self, width: u32) -> usize {
        match self {
            PixelFormat::Yuyv => width as usize * 2,
            _ => width as usize,
        }
    }
}

fn bad(format: &'static str, reason: String) -> MediaError {
    MediaError::BadFrame { format, reason }
}

fn check_len(format: &'static str, data: &[u8], need: usize) -> Result<()> {
    if data.len() < need {
        return Err(bad(format, format!("{} bytes, need at least {need}", data.len())));
    }
    Ok(())
}

/// Converts one captured frame to I420 (tightly packed). `stride` is the luma (or packed)
/// bytes per line as the device reports it (`bytesperline`); 0 means tightly packed.
pub fn to_i420(format: PixelFormat, width: u32, height: u32, stride: usize, data: &[u8]) -> Result<Vec<u8>> {
    if width == 0 || height == 0 {
        return Err(bad(format.name(), "zero width or height".into()));
    }
    let stride = if stride == 0 { format.min_stride(width) } else { stride };
    if format != PixelFormat::Mjpeg && stride < format.min_stride(width) {
        return Err(bad(format.name(), format!("stride {stride} below width {width}")));
    }
    match format {
        PixelFormat::Yu12 => yu12_to_i420(width, height, stride, data),
        PixelFormat::Nv12 => nv12_to_i420(width, height, stride, data),
        PixelFormat::Yuyv => yuyv_to_i420(width, height, stride, data),
        PixelFormat::Mjpeg => mjpeg_to_i420(width, height, data),
    }
}

fn copy_plane(dst: &mut Vec<u8>, src: &[u8], w: usize, h: usize, stride: usize) {
    for row in 0..h {
        let start = row * stride;
        dst.extend_from_slice(&src[start..start + w]);
    }
}

fn yu12_to_i420(width: u32, height: u32, stride: usize, data: &[u8]) -> Result<Vec<u8>> {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let cstride = stride.div_ceil(2);
    let y_size = stride * h;
    let c_size = cstride * ch;
    check_len("YU12", data, y_size + 2 * c_size - (cstride - cw))?;
    let mut out = Vec::with_capacity(w * h + 2 * cw * ch);
    copy_plane(&mut out, data, w, h, stride);
    copy_plane(&mut out, &data[y_size..], cw, ch, cstride);
    copy_plane(&mut out, &data[y_size + c_size..], cw, ch, cstride);
    Ok(out)
}

fn nv12_to_i420(width: u32, height: u32, stride: usize, data: &[u8]) -> Result<Vec<u8>> {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let y_size = stride * h;
    check_len("NV12", data, y_size + stride * (ch - 1) + cw * 2)?;
    let mut out = Vec::with_capacity(w * h + 2 * cw * ch);
    copy_plane(&mut out, data, w, h, stride);
    let uv = &data[y_size..];
    let mut v_plane = Vec::with_capacity(cw * ch);
    for row in 0..ch {
        let line = &uv[row * stride..row * stride + cw * 2];
        for pair in line.chunks_exact(2) {
            out.push(pair[0]);
            v_plane.push(pair[1]);
        }
    }
    out.extend_from_slice(&v_plane);
    Ok(out)
}

fn yuyv_to_i420(width: u32, height: u32, stride: usize, data: &[u8]) -> Result<Vec<u8>> {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    // A YUYV line holds ceil(w/2) macropixels of 4 bytes.
    let line_bytes = cw * 4;
    if stride < line_bytes.min(w * 2 + (w % 2) * 2) {
        return Err(bad("YUYV", format!("stride {stride} too small for width {w}")));
    }
    check_len("YUYV", data, stride * (h - 1) + line_bytes.min(stride))?;
    let mut y_plane = Vec::with_capacity(w * h);
    let mut u_plane = vec![0u8; cw * ch];
    let mut v_plane = vec![0u8; cw * ch];
    for row in 0..h {
        let line = &data[row * stride..row * stride + line_bytes.min(stride)];
        for (i, px) in line.chunks_exact(4).enumerate() {
            y_plane.push(px[0]);
            if 2 * i + 1 < w {
                y_plane.push(px[2]);
            }
            let ci = (row / 2) * cw + i;
            if row % 2 == 0 {
                u_plane[ci] = px[1];
                v_plane[ci] = px[3];
            } else {
                // Average the two lines' chroma for 4:2:2 -> 4:2:0.
                u_plane[ci] = (u_plane[ci] as u16 + px[1] as u16).div_ceil(2) as u8;
                v_plane[ci] = (v_plane[ci] as u16 + px[3] as u16).div_ceil(2) as u8;
            }
        }
    }
    y_plane.extend_from_slice(&u_plane);
    y_plane.extend_from_slice(&v_plane);
    Ok(y_plane)
}

/// Decodes a JPEG (MJPEG frame) to I420 of the expected size.
pub fn mjpeg_to_i420(width: u32, height: u32, data: &[u8]) -> Result<Vec<u8>> {
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::YCbCr);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(data), options);
    let pixels = decoder.decode().map_err(|e| MediaError::Jpeg(e.to_string()))?;
    let (jw, jh) = decoder.dimensions().ok_or_else(|| MediaError::Jpeg("no dimensions after decode".into()))?;
    if (jw as u32, jh as u32) != (width, height) {
        return Err(MediaError::Jpeg(format!("JPEG is {jw}x{jh}, expected {width}x{height}")));
    }
    let channels = match decoder.output_colorspace() {
        Some(ColorSpace::YCbCr) => 3,
        Some(ColorSpace::Luma) => 1,
        other => return Err(MediaError::Jpeg(format!("unexpected output colour space {other:?}"))),
    };
    let (w, h) = (width as usize, height as usize);
    if pixels.len() < w * h * channels {
        return Err(MediaError::Jpeg(format!("decoder gave {} bytes for {w}x{h}", pixels.len())));
    }
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut out = Vec::with_capacity(w * h + 2 * cw * ch);
    out.extend(pixels.chunks_exact(channels).take(w * h).map(|p| p[0]));
    if channels == 1 {
        out.resize(w * h + 2 * cw * ch, 128);
        return Ok(out);
    }
    for plane in 1..=2 {
        for cy in 0..ch {
            for cx in 0..cw {
                let mut sum = 0u32;
                let mut n = 0u32;
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let (x, y) = (2 * cx + dx, 2 * cy + dy);
                    if x < w && y < h {
                        sum += pixels[(y * w + x) * 3 + plane] as u32;
                        n += 1;
                    }
                }
                out.push(((sum + n / 2) / n.max(1)) as u8);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4x2 test image: luma ramps, chroma distinct per 2x2 block.
    fn reference_i420() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        (vec![10, 20, 30, 40, 50, 60, 70, 80], vec![100, 110], vec![150, 160])
    }

    #[test]
    fn yu12_with_padding_stride_is_unpadded() {
        let (y, u, v) = reference_i420();
        // stride 6 for luma, 3 for chroma
        let mut data = Vec::new();
        data.extend_from_slice(&[10, 20, 30, 40, 0, 0, 50, 60, 70, 80, 0, 0]);
        data.extend_from_slice(&[100, 110, 0]);
        data.extend_from_slice(&[150, 160, 0]);
        let out = to_i420(PixelFormat::Yu12, 4, 2, 6, &data).unwrap();
        assert_eq!(out, [y, u, v].concat());
    }

    #[test]
    fn nv12_deinterleaves_chroma() {
        let (y, u, v) = reference_i420();
        let mut data = y.clone();
        data.extend_from_slice(&[100, 150, 110, 160]);
        assert_eq!(to_i420(PixelFormat::Nv12, 4, 2, 0, &data).unwrap(), [y, u, v].concat());
    }

    #[test]
    fn yuyv_averages_chroma_lines() {
        // line 0: Y0 U Y1 V, line 1 different chroma: averaged
        let data = [10, 100, 20, 150, 30, 110, 40, 160, 50, 102, 60, 152, 70, 112, 80, 162];
        let out = to_i420(PixelFormat::Yuyv, 4, 2, 0, &data).unwrap();
        assert_eq!(out, vec![10, 20, 30, 40, 50, 60, 70, 80, 101, 111, 151, 161]);
    }

    #[test]
    fn odd_width_yuyv_keeps_size() {
        let data = [1, 2, 3, 4, 5, 6, 7, 8];
        let out = to_i420(PixelFormat::Yuyv, 3, 1, 8, &data).unwrap();
        assert_eq!(out.len(), crate::frame::VideoFrame::i420_len(3, 1));
        assert_eq!(&out[..3], &[1, 3, 5]);
    }

    #[test]
    fn short_buffers_are_errors_not_panics() {
        for f in PixelFormat::ALL {
            for len in [0usize, 1, 7, 11] {
                assert!(to_i420(f, 4, 2, 0, &vec![0; len]).is_err(), "{f:?} len {len}");
            }
        }
        assert!(to_i420(PixelFormat::Yuyv, 0, 2, 0, &[0; 64]).is_err());
        assert!(to_i420(PixelFormat::Nv12, 4, 2, 2, &[0; 64]).is_err());
    }

    #[test]
    fn mjpeg_decodes_to_i420() {
        // 16x16 JPEG: left half white, right half black, encoded by jpeg-encoder.
        let (w, h) = (16u16, 16u16);
        let mut rgb = Vec::new();
        for _y in 0..h {
            for x in 0..w {
                let v = if x < 8 { 255 } else { 0 };
                rgb.extend_from_slice(&[v, v, v]);
            }
        }
        let mut jpeg = Vec::new();
        let enc = jpeg_encoder::Encoder::new(&mut jpeg, 95);
        enc.encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb).unwrap();
        let out = to_i420(PixelFormat::Mjpeg, 16, 16, 0, &jpeg).unwrap();
        assert_eq!(out.len(), crate::frame::VideoFrame::i420_len(16, 16));
        assert!(out[0] > 230 && out[15] < 25, "luma {} {}", out[0], out[15]);
        let chroma = &out[256..];
        assert!(chroma.iter().all(|&c| (120..=136).contains(&c)), "grey has neutral chroma");
        assert!(to_i420(PixelFormat::Mjpeg, 32, 16, 0, &jpeg).is_err(), "size mismatch");
        // A truncated JPEG may decode partially or fail, but must not panic.
        let _ = to_i420(PixelFormat::Mjpeg, 16, 16, 0, &jpeg[..jpeg.len() / 3]);
        assert!(to_i420(PixelFormat::Mjpeg, 16, 16, 0, &[0xff, 0xd8, 0xff]).is_err());
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Device buffers of any length, sizes and strides give a frame of the right size or
        /// an error; never a panic.
        #[test]
        fn any_buffer_converts_or_errors(
            fmt in 0usize..4, w in 0u32..40, h in 0u32..40, stride in 0usize..100,
            data in proptest::collection::vec(any::<u8>(), 0..4000),
        ) {
            let f = PixelFormat::ALL[fmt];
            if let Ok(out) = to_i420(f, w, h, stride, &data) {
                prop_assert_eq!(out.len(), crate::frame::VideoFrame::i420_len(w, h));
            }
        }
    }
}
