//! Decoding the other rooms' video, sans-IO: a decoder is fed one received frame at a time
//! with `handle_frame(now, timestamp, bytes)` (an AV1 temporal unit as the depacketizer hands
//! it over) and decoded pictures are polled with `poll_picture()`. Bad bytes are an error for
//! that frame, never a panic; the decoder goes on with the next one (a keyframe heals it).
//!
//! [`av1::Av1Decoder`] (cargo feature `dav1d`): libdav1d through the dav1d crate.
//! [`m2m::StatefulDecoder`]: a V4L2 M2M stateful decoder (FWHT on `vicodec`, H.264 on a Pi);
//! [`h264::H264Decoder`]: H.264 on the M2M decoder when the kernel has one, else OpenH264
//! (cargo feature `openh264`);
//! [`fwht`]: the FWHT frame header.

#[cfg(feature = "dav1d")]
pub mod av1;
pub mod fwht;
pub mod h264;
pub mod m2m;

/// An 8-bit 4:2:0 picture's planes, borrowed (what the compositor scales into a tile).
#[derive(Debug, Clone, Copy)]
pub struct I420Planes<'a> {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Luma, `y_stride * height` bytes.
    pub y: &'a [u8],
    /// Cb, `uv_stride * ceil(height / 2)` bytes.
    pub u: &'a [u8],
    /// Cr, like `u`.
    pub v: &'a [u8],
    /// Bytes per luma row.
    pub y_stride: usize,
    /// Bytes per chroma row.
    pub uv_stride: usize,
}

impl<'a> I420Planes<'a> {
    /// The planes of a packed I420 buffer (`VideoFrame::data`): `None` when it is too short.
    pub fn packed(width: u32, height: u32, data: &'a [u8]) -> Option<Self> {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let y_len = w.checked_mul(h)?;
        let c_len = cw.checked_mul(ch)?;
        let y = data.get(..y_len)?;
        let u = data.get(y_len..y_len + c_len)?;
        let v = data.get(y_len + c_len..y_len + 2 * c_len)?;
        Some(I420Planes { width, height, y, u, v, y_stride: w, uv_stride: cw })
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
