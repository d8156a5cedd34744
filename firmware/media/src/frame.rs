//! Raw media as it flows from capture to the encoders: [`VideoFrame`] (always I420, the
//! encoders' input) and [`AudioFrame`] (interleaved 16-bit PCM at 48 kHz, 20 ms per frame).

use std::time::Instant;

/// Audio sample rate of everything roomcast captures, encodes and decodes.
pub const AUDIO_RATE: u32 = 48_000;
/// Samples per channel in one 20 ms audio frame.
pub const AUDIO_FRAME_SAMPLES: usize = 960;

/// A picture in I420 (planar YUV 4:2:0: Y plane, then U, then V; chroma planes are
/// `ceil(w/2) x ceil(h/2)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The three planes, tightly packed.
    pub data: Vec<u8>,
    /// Capture sequence number (0, 1, 2...).
    pub index: u64,
    /// When the frame was captured.
    pub captured_at: Instant,
}

impl VideoFrame {
    /// Byte length of an I420 frame of this size.
    pub fn i420_len(width: u32, height: u32) -> usize {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        w * h + 2 * cw * ch
    }
    /// A black frame.
    pub fn black(width: u32, height: u32, index: u64, captured_at: Instant) -> Self {
        let (w, h) = (width as usize, height as usize);
        let mut data = vec![16u8; w * h];
        data.resize(Self::i420_len(width, height), 128);
        VideoFrame { width, height, data, index, captured_at }
    }
    /// Chroma plane width and height.
    pub fn chroma_size(&self) -> (usize, usize) {
        ((self.width as usize).div_ceil(2), (self.height as usize).div_ceil(2))
    }
    /// The Y, U and V planes.
    pub fn planes(&self) -> (&[u8], &[u8], &[u8]) {
        let y_len = self.width as usize * self.height as usize;
        let (cw, ch) = self.chroma_size();
        let c_len = cw * ch;
        let (y, rest) = self.data.split_at(y_len.min(self.data.len()));
        let (u, v) = rest.split_at(c_len.min(rest.len()));
        (y, u, v)
    }
}

/// 20 ms of interleaved signed 16-bit PCM at 48 kHz.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFrame {
    /// 1 (mono) or 2 (stereo).
    pub channels: u8,
    /// `AUDIO_FRAME_SAMPLES * channels` interleaved samples.
    pub samples: Vec<i16>,
    /// Index of the first sample (per channel) since capture started.
    pub first_sample: u64,
    /// When the first sample was captured.
    pub captured_at: Instant,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i420_sizes_round_chroma_up() {
        assert_eq!(VideoFrame::i420_len(320, 180), 320 * 180 * 3 / 2);
        assert_eq!(VideoFrame::i420_len(3, 3), 9 + 2 * 4);
        let f = VideoFrame::black(4, 2, 0, Instant::now());
        let (y, u, v) = f.planes();
        assert_eq!((y.len(), u.len(), v.len()), (8, 2, 2));
        assert!(y.iter().all(|&p| p == 16) && u.iter().all(|&p| p == 128));
    }
}
