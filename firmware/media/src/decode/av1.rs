//! AV1 decoding with libdav1d (the `dav1d` crate 0.9 over Debian 12's libdav1d 1.0).
//!
//! Low delay: one frame thread (`max_frame_delay` 1) so a picture comes out for the temporal
//! unit that carried it, and a configurable number of tile threads. Only 8-bit 4:2:0 is shown
//! (what both our encoders send); other layouts are reported per frame.

use std::collections::VecDeque;
use std::time::Instant;

use dav1d::{PixelLayout, PlanarImageComponent as C};

use super::I420Planes;
use crate::error::{MediaError, Result};

/// Most pictures kept when nobody polls (older ones are dropped: a screen wants the newest).
pub const MAX_QUEUED: usize = 8;

/// One decoded picture.
pub struct DecodedPicture {
    /// The RTP timestamp of the frame it came from.
    pub timestamp: u32,
    /// When that frame was handed to the decoder.
    pub received_at: Instant,
    y: dav1d::Plane,
    u: dav1d::Plane,
    v: dav1d::Plane,
    width: u32,
    height: u32,
    y_stride: usize,
    uv_stride: usize,
}

impl DecodedPicture {
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }
    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }
    /// The planes, borrowed.
    pub fn planes(&self) -> I420Planes<'_> {
        I420Planes {
            width: self.width,
            height: self.height,
            y: &self.y,
            u: &self.u,
            v: &self.v,
            y_stride: self.y_stride,
            uv_stride: self.uv_stride,
        }
    }
    /// The picture as packed I420 (`width * height * 3 / 2` bytes), for tests and files.
    pub fn to_packed_i420(&self) -> Vec<u8> {
        let p = self.planes();
        let (w, h) = (p.width as usize, p.height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut out = Vec::with_capacity(w * h + 2 * cw * ch);
        for row in p.y.chunks(p.y_stride).take(h) {
            out.extend_from_slice(&row[..w]);
        }
        for plane in [p.u, p.v] {
            for row in plane.chunks(p.uv_stride).take(ch) {
                out.extend_from_slice(&row[..cw]);
            }
        }
        out
    }
}

impl std::fmt::Debug for DecodedPicture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DecodedPicture({}x{}, ts {})", self.width, self.height, self.timestamp)
    }
}

/// Counters for the status and the benches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecoderStats {
    /// Frames handed in.
    pub frames_in: u64,
    /// Pictures out.
    pub pictures_out: u64,
    /// Frames the decoder rejected.
    pub errors: u64,
    /// Pictures dropped because nobody polled them.
    pub dropped: u64,
}

/// The sans-IO AV1 decoder of one remote room.
pub struct Av1Decoder {
    dec: dav1d::Decoder,
    out: VecDeque<DecodedPicture>,
    /// (timestamp, handed in at) of frames in flight.
    received: VecDeque<(u32, Instant)>,
    stats: DecoderStats,
}

fn dav1d_error(what: &str, e: dav1d::Error) -> MediaError {
    MediaError::Decoder { decoder: "dav1d", reason: format!("{what}: {e}") }
}

impl Av1Decoder {
    /// A decoder with `threads` tile threads (0 = libdav1d decides) and one frame of delay.
    pub fn new(threads: u32) -> Result<Self> {
        let mut settings = dav1d::Settings::new();
        settings.set_n_threads(threads);
        settings.set_max_frame_delay(1);
        let dec = dav1d::Decoder::with_settings(&settings).map_err(|e| dav1d_error("open", e))?;
        Ok(Av1Decoder { dec, out: VecDeque::new(), received: VecDeque::new(), stats: DecoderStats::default() })
    }

    /// The counters.
    pub fn stats(&self) -> DecoderStats {
        self.stats
    }

    /// One received frame (an AV1 temporal unit, OBUs with size fields) with its RTP
    /// `timestamp`, handed in at `now`. Decoded pictures are then ready for
    /// [`Av1Decoder::poll_picture`]. An error means this frame was rejected; the decoder stays
    /// usable.
    pub fn handle_frame(&mut self, now: Instant, timestamp: u32, data: &[u8]) -> Result<()> {
        self.stats.frames_in += 1;
        if data.is_empty() {
            self.stats.errors += 1;
            return Err(MediaError::Decoder { decoder: "dav1d", reason: "empty frame".into() });
        }
        self.received.push_back((timestamp, now));
        while self.received.len() > MAX_QUEUED * 2 {
            self.received.pop_front();
        }
        let result = self.feed(now, data.to_vec(), timestamp);
        if result.is_err() {
            self.stats.errors += 1;
        }
        result
    }

    fn feed(&mut self, now: Instant, data: Vec<u8>, timestamp: u32) -> Result<()> {
        let mut sent = self.dec.send_data(data, None, Some(i64::from(timestamp)), None);
        // Bounded: each round either consumes pending data or drains a picture.
        for _ in 0..64 {
            match sent {
                Ok(()) => break,
                Err(dav1d::Error::Again) => {
                    self.drain(now)?;
                    sent = self.dec.send_pending_data();
                }
                Err(e) => {
                    // Drop what is pending so the next send_data starts clean.
                    let _ = self.drain(now);
                    return Err(dav1d_error("bad frame", e));
                }
            }
        }
        if sent.is_err() {
            return Err(MediaError::Decoder { decoder: "dav1d", reason: "decoder does not take the data".into() });
        }
        self.drain(now)
    }

    /// Takes every picture libdav1d has ready.
    fn drain(&mut self, now: Instant) -> Result<()> {
        for _ in 0..64 {
            match self.dec.get_picture() {
                Ok(pic) => self.push(now, pic)?,
                Err(dav1d::Error::Again) => return Ok(()),
                Err(e) => return Err(dav1d_error("decode", e)),
            }
        }
        Ok(())
    }

    fn push(&mut self, now: Instant, pic: dav1d::Picture) -> Result<()> {
        if pic.pixel_layout() != PixelLayout::I420 || pic.bit_depth() != 8 {
            return Err(MediaError::Decoder {
                decoder: "dav1d",
                reason: format!(
                    "{:?} {}-bit pictures are not shown (8-bit 4:2:0 only)",
                    pic.pixel_layout(),
                    pic.bit_depth()
                ),
            });
        }
        let timestamp = pic.timestamp().unwrap_or_default() as u32;
        let received_at = self.received.iter().find(|(t, _)| *t == timestamp).map_or(now, |(_, at)| *at);
        self.received.retain(|(t, _)| t.wrapping_sub(timestamp) as i32 > 0);
        let picture = DecodedPicture {
            timestamp,
            received_at,
            width: pic.width(),
            height: pic.height(),
            y_stride: pic.stride(C::Y) as usize,
            uv_stride: pic.stride(C::U) as usize,
            y: pic.plane(C::Y),
            u: pic.plane(C::U),
            v: pic.plane(C::V),
        };
        self.stats.pictures_out += 1;
        if self.out.len() >= MAX_QUEUED {
            self.out.pop_front();
            self.stats.dropped += 1;
        }
        self.out.push_back(picture);
        Ok(())
    }

    /// The next decoded picture, oldest first.
    pub fn poll_picture(&mut self) -> Option<DecodedPicture> {
        self.out.pop_front()
    }

    /// Forgets everything in flight (the sender changed, a long gap): waits for a keyframe.
    pub fn reset(&mut self) {
        self.dec.flush();
        self.out.clear();
        self.received.clear();
    }
}

#[cfg(test)]
mod tests;
