//! H.264 decoding of a remote room, picked at run time like the encoder: the kernel's V4L2 M2M
//! stateful decoder ([`super::m2m::StatefulDecoder`], e.g. a Pi's `bcm2835-codec`) when one is
//! there and opens, else OpenH264 in software (cargo feature `openh264`: Cisco's BSD-licensed
//! decoder built from the source the `openh264` crate bundles).
//!
//! Same shape as [`super::av1::Av1Decoder`]: `handle_frame(now, timestamp, bytes)` with one
//! Annex B access unit as the RTP depacketizer hands it over, then `poll_picture()`. A frame
//! the decoder rejects is an error for that frame only; the next IDR heals the stream.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Instant;

use super::m2m::StatefulDecoder;
use super::I420Planes;
use crate::encoder::m2m::linux::LinuxM2m;
use crate::encoder::m2m::{self, CodedFormat, M2mDevice, Role};
use crate::error::{MediaError, Result};
use crate::frame::VideoFrame;

/// Most pictures kept when nobody polls (older ones are dropped: a screen wants the newest).
pub const MAX_QUEUED: usize = 8;

const SOFTWARE: &str = "OpenH264";

/// One decoded picture (packed I420).
#[derive(Debug, Clone)]
pub struct H264Picture {
    /// The RTP timestamp of the frame it came from.
    pub timestamp: u32,
    /// When that frame was handed to the decoder.
    pub received_at: Instant,
    frame: VideoFrame,
}

impl H264Picture {
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.frame.width
    }
    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.frame.height
    }
    /// The planes, borrowed.
    pub fn planes(&self) -> I420Planes<'_> {
        let f = &self.frame;
        I420Planes::packed(f.width, f.height, &f.data).unwrap_or(I420Planes {
            width: 0,
            height: 0,
            y: &[],
            u: &[],
            v: &[],
            y_stride: 0,
            uv_stride: 0,
        })
    }
    /// The picture as packed I420.
    pub fn to_packed_i420(&self) -> &[u8] {
        &self.frame.data
    }
}

/// Counters for the status and the benches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct H264Stats {
    /// Frames handed in.
    pub frames_in: u64,
    /// Pictures out.
    pub pictures_out: u64,
    /// Frames the decoder rejected.
    pub errors: u64,
    /// Pictures dropped because nobody polled them.
    pub dropped: u64,
}

enum Backend<D: M2mDevice> {
    M2m(Box<StatefulDecoder<D>>),
    #[cfg(feature = "openh264")]
    Software(Box<openh264::decoder::Decoder>),
}

/// The H.264 decoder of one remote room.
pub struct H264Decoder<D: M2mDevice = LinuxM2m> {
    backend: Backend<D>,
    label: String,
    out: VecDeque<H264Picture>,
    /// (timestamp, handed in at) of frames in flight (the M2M decoder is a frame or so late).
    received: VecDeque<(u32, Instant)>,
    stats: H264Stats,
}

#[cfg(feature = "openh264")]
fn packed_from_strided(
    (w, h): (usize, usize),
    (ys, us, vs): (usize, usize, usize),
    y: &[u8],
    u: &[u8],
    v: &[u8],
) -> Option<Vec<u8>> {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut out = Vec::with_capacity(VideoFrame::i420_len(w as u32, h as u32));
    for (plane, stride, width, rows) in [(y, ys, w, h), (u, us, cw, ch), (v, vs, cw, ch)] {
        if stride < width {
            return None;
        }
        for r in 0..rows {
            out.extend_from_slice(plane.get(r * stride..r * stride + width)?);
        }
    }
    Some(out)
}

impl H264Decoder<LinuxM2m> {
    /// The kernel's M2M H.264 decoder if one probes usable and opens (`width` x `height` a
    /// hint for its buffers), else the software one. Why the M2M one was not taken is logged.
    pub fn open(width: u32, height: u32) -> Result<Self> {
        if let Some(p) = m2m::find(CodedFormat::H264, Role::Decoder) {
            match LinuxM2m::open(Path::new(&p.path))
                .map_err(|e| MediaError::Decoder { decoder: "V4L2 M2M", reason: format!("{}: {e}", p.path) })
                .and_then(|dev| StatefulDecoder::new(dev, CodedFormat::H264, width, height))
            {
                Ok(d) => return Ok(Self::with_m2m(d)),
                Err(e) => tracing::warn!(device = %p.path, "M2M H.264 decoder unusable ({e}); decoding in software"),
            }
        }
        Self::software()
    }
}

impl<D: M2mDevice> H264Decoder<D> {
    /// Over an opened M2M decoder.
    pub fn with_m2m(dec: StatefulDecoder<D>) -> Self {
        let label = format!("V4L2 M2M {}", dec.name());
        Self::with(Backend::M2m(Box::new(dec)), label)
    }

    /// The software decoder (OpenH264).
    pub fn software() -> Result<Self> {
        #[cfg(feature = "openh264")]
        {
            let dec = openh264::decoder::Decoder::new()
                .map_err(|e| MediaError::Decoder { decoder: SOFTWARE, reason: format!("open: {e}") })?;
            Ok(Self::with(Backend::Software(Box::new(dec)), "OpenH264 (software)".into()))
        }
        #[cfg(not(feature = "openh264"))]
        Err(MediaError::Decoder { decoder: SOFTWARE, reason: "not built in (cargo feature openh264)".into() })
    }

    fn with(backend: Backend<D>, label: String) -> Self {
        tracing::info!(decoder = %label, "H.264 decoder");
        H264Decoder { backend, label, out: VecDeque::new(), received: VecDeque::new(), stats: H264Stats::default() }
    }

    /// Which decoder ("OpenH264 (software)", "V4L2 M2M bcm2835-codec-decode ...").
    pub fn describe(&self) -> &str {
        &self.label
    }

    /// True when the kernel's M2M decoder does the work.
    pub fn is_hardware(&self) -> bool {
        matches!(self.backend, Backend::M2m(_))
    }

    /// The counters.
    pub fn stats(&self) -> H264Stats {
        self.stats
    }

    /// One received access unit (Annex B) with its RTP `timestamp`, handed in at `now`.
    pub fn handle_frame(&mut self, now: Instant, timestamp: u32, data: &[u8]) -> Result<()> {
        self.stats.frames_in += 1;
        let r = self.feed(now, timestamp, data);
        if r.is_err() {
            self.stats.errors += 1;
        }
        r
    }

    fn feed(&mut self, now: Instant, timestamp: u32, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Err(MediaError::Decoder { decoder: SOFTWARE, reason: "empty frame".into() });
        }
        match &mut self.backend {
            Backend::M2m(dec) => {
                self.received.push_back((timestamp, now));
                while self.received.len() > MAX_QUEUED * 2 {
                    self.received.pop_front();
                }
                for f in dec.decode(data, u64::from(timestamp))? {
                    let ts = f.frame.index as u32;
                    let at = self.received.iter().find(|(t, _)| *t == ts).map_or(now, |(_, at)| *at);
                    self.received.retain(|(t, _)| t.wrapping_sub(ts) as i32 > 0);
                    self.push(H264Picture { timestamp: ts, received_at: at, frame: f.frame });
                }
                Ok(())
            }
            #[cfg(feature = "openh264")]
            Backend::Software(dec) => {
                use openh264::formats::YUVSource;
                let pic =
                    dec.decode(data).map_err(|e| MediaError::Decoder { decoder: SOFTWARE, reason: e.to_string() })?;
                let Some(yuv) = pic else { return Ok(()) };
                let (w, h) = yuv.dimensions();
                let data = packed_from_strided((w, h), yuv.strides(), yuv.y(), yuv.u(), yuv.v()).ok_or_else(|| {
                    MediaError::Decoder { decoder: SOFTWARE, reason: format!("picture {w}x{h} short of its strides") }
                })?;
                let frame = VideoFrame {
                    width: w as u32,
                    height: h as u32,
                    data,
                    index: u64::from(timestamp),
                    captured_at: now,
                };
                self.push(H264Picture { timestamp, received_at: now, frame });
                Ok(())
            }
        }
    }

    fn push(&mut self, p: H264Picture) {
        self.stats.pictures_out += 1;
        self.out.push_back(p);
        while self.out.len() > MAX_QUEUED {
            self.out.pop_front();
            self.stats.dropped += 1;
        }
    }

    /// The next decoded picture, oldest first.
    pub fn poll_picture(&mut self) -> Option<H264Picture> {
        self.out.pop_front()
    }
}

#[cfg(all(test, feature = "openh264"))]
mod tests;
