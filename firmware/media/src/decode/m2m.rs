//! A V4L2 memory-to-memory *stateful* decoder (V4L2 "Memory-to-Memory Stateful Video Decoder
//! Interface") over the same [`M2mDevice`] seam as the encoder, for any [`CodedFormat`] (FWHT on
//! `vicodec` in the QEMU test; H.264 on a Pi's `bcm2835-codec`). It is fed one coded frame at a
//! time and hands back I420 frames, stamped with the timestamp the coded frame was queued with.
//!
//! The sequence:
//! 1. `VIDIOC_QUERYCAP`, `VIDIOC_ENUM_FMT`: the coded fourcc on OUTPUT, `YU12` on CAPTURE.
//! 2. `VIDIOC_SUBSCRIBE_EVENT` `V4L2_EVENT_SOURCE_CHANGE` and `V4L2_EVENT_EOS`.
//! 3. `VIDIOC_S_FMT` OUTPUT: the coded fourcc (the size a hint), `VIDIOC_REQBUFS` + `mmap`,
//!    `VIDIOC_STREAMON` OUTPUT.
//! 4. Coded frames are queued on OUTPUT (`VIDIOC_QBUF`, reclaimed with `VIDIOC_DQBUF`).
//! 5. Initialization: once the driver parsed the stream's header it signals
//!    `V4L2_EVENT_SOURCE_CHANGE`; then `VIDIOC_G_FMT` CAPTURE, `VIDIOC_S_FMT` CAPTURE `YU12` at
//!    that (coded, padded) size, `VIDIOC_G_SELECTION` CAPTURE `V4L2_SEL_TGT_COMPOSE` for the
//!    picture's size inside it, `VIDIOC_REQBUFS` + `mmap`, `VIDIOC_QBUF` every buffer, `VIDIOC_STREAMON` CAPTURE.
//! 6. Decoding: `VIDIOC_DQBUF` CAPTURE (a frame in the driver's `bytesperline`), re-queued.
//! 7. Dynamic resolution change: a new `V4L2_EVENT_SOURCE_CHANGE`; the frames before it come out
//!    with the last one flagged `V4L2_BUF_FLAG_LAST`; then `VIDIOC_STREAMOFF` CAPTURE, unmap,
//!    `VIDIOC_REQBUFS` 0 and step 5 again.
//! 8. Drain: `VIDIOC_DECODER_CMD` `V4L2_DEC_CMD_STOP`, CAPTURE dequeued until
//!    `V4L2_BUF_FLAG_LAST`, `VIDIOC_STREAMOFF` both queues.
//!
//! Every wait is bounded; a device that vanishes is a `MediaError::DeviceGone`.

use std::time::{Duration, Instant};

use crate::encoder::m2m::{
    device_error, probe_codec, CodedFormat, M2mDevice, M2mEvent, Queue, QueueFormat, Role, SelectionTarget,
};
use crate::error::{MediaError, Result};
use crate::frame::VideoFrame;

const NAME: &str = "V4L2 M2M decoder";
const BUFFERS: u32 = 4;

/// A decoded frame.
#[derive(Debug, Clone)]
pub struct DecodedFrame {
    /// The picture, packed I420 (`index` is the coded frame's timestamp).
    pub frame: VideoFrame,
}

/// What the decoder went through (for reports and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecoderStats {
    /// `V4L2_EVENT_SOURCE_CHANGE` events handled (the first one included).
    pub source_changes: u32,
    /// CAPTURE buffers flagged `V4L2_BUF_FLAG_LAST`.
    pub last_buffers: u32,
    /// Picture sizes (compose rectangles) the CAPTURE queue was set up for, in order.
    pub sizes: Vec<(u32, u32)>,
}

/// A stateful M2M decoder over an [`M2mDevice`].
pub struct StatefulDecoder<D: M2mDevice> {
    dev: D,
    format: CodedFormat,
    name: String,
    coded: QueueFormat,
    raw: Option<QueueFormat>,
    layout: Option<RawLayout>,
    free_output: Vec<u32>,
    output_count: u32,
    capture_streaming: bool,
    /// A source change seen while CAPTURE was streaming: waiting for the LAST buffer.
    change_pending: Option<Instant>,
    stats: DecoderStats,
    stopped: bool,
}

impl<D: M2mDevice> StatefulDecoder<D> {
    /// Probes `dev` as a `format` decoder and runs steps 1-3; `width` x `height` is a hint for
    /// the coded buffers' size.
    pub fn new(mut dev: D, format: CodedFormat, width: u32, height: u32) -> Result<Self> {
        let probe = probe_codec(&mut dev, format, Role::Decoder);
        if !probe.usable {
            return Err(MediaError::Decoder { decoder: NAME, reason: format!("{}: {}", probe.path, probe.reason) });
        }
        let path = dev.path();
        let e = |what: &str, e| device_error(NAME, &path, what, e);
        dev.subscribe_events().map_err(|x| e("VIDIOC_SUBSCRIBE_EVENT", x))?;
        let want = QueueFormat {
            fourcc: format.fourcc(),
            width,
            height,
            bytesperline: 0,
            sizeimage: (width * height * 3 / 2 + 4096).max(256 * 1024),
        };
        let coded = dev.set_format(Queue::Output, want).map_err(|x| e("VIDIOC_S_FMT OUTPUT", x))?;
        if coded.fourcc != format.fourcc() {
            return Err(MediaError::Decoder {
                decoder: NAME,
                reason: format!(
                    "{path}: driver set OUTPUT to {:?}, not {format}",
                    String::from_utf8_lossy(&coded.fourcc)
                ),
            });
        }
        let output_count = dev.request_buffers(Queue::Output, BUFFERS).map_err(|x| e("VIDIOC_REQBUFS OUTPUT", x))?;
        if output_count == 0 {
            return Err(MediaError::Decoder { decoder: NAME, reason: format!("{path}: no OUTPUT buffers granted") });
        }
        dev.stream_on(Queue::Output).map_err(|x| e("VIDIOC_STREAMON OUTPUT", x))?;
        tracing::info!(dev = %path, name = %probe.name, %format, "M2M decoder streaming its OUTPUT queue");
        Ok(StatefulDecoder {
            dev,
            format,
            name: probe.name,
            coded,
            raw: None,
            layout: None,
            free_output: (0..output_count).rev().collect(),
            output_count,
            capture_streaming: false,
            change_pending: None,
            stats: DecoderStats::default(),
            stopped: false,
        })
    }

    fn err(&self, what: &str, e: std::io::Error) -> MediaError {
        device_error(NAME, &self.dev.path(), what, e)
    }

    /// Driver and card.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The coded format.
    pub fn format(&self) -> CodedFormat {
        self.format
    }

    /// What happened so far.
    pub fn stats(&self) -> &DecoderStats {
        &self.stats
    }

    /// The CAPTURE format now (after the first source change).
    pub fn raw_format(&self) -> Option<QueueFormat> {
        self.raw
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// Queues one coded frame (stamped `timestamp`) and returns the frames decoded so far.
    pub fn decode(&mut self, data: &[u8], timestamp: u64) -> Result<Vec<DecodedFrame>> {
        if self.stopped {
            return Err(MediaError::Decoder { decoder: NAME, reason: "decoder already drained".into() });
        }
        if data.len() > self.coded.sizeimage as usize {
            return Err(MediaError::Decoder {
                decoder: NAME,
                reason: format!("coded frame of {} bytes, OUTPUT buffers hold {}", data.len(), self.coded.sizeimage),
            });
        }
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            while let Some(i) =
                self.dev.dequeue_output(Duration::ZERO).map_err(|e| self.err("VIDIOC_DQBUF OUTPUT", e))?
            {
                if i < self.output_count && !self.free_output.contains(&i) {
                    self.free_output.push(i);
                }
            }
            if !self.free_output.is_empty() {
                break;
            }
            // All OUTPUT buffers in the driver: it may wait for CAPTURE buffers or a source change.
            self.service(Duration::from_millis(20), &mut out)?;
            if Instant::now() > deadline {
                return Err(MediaError::Decoder {
                    decoder: NAME,
                    reason: format!("{}: decoder stalled (no OUTPUT buffer back in 2 s)", self.dev.path()),
                });
            }
        }
        let index = self.free_output.pop().unwrap_or(0);
        self.dev.queue_output(index, data, timestamp).map_err(|e| self.err("VIDIOC_QBUF OUTPUT", e))?;
        self.service(Duration::ZERO, &mut out)?;
        Ok(out)
    }

    /// Waits up to `timeout` for decoded frames (e.g. the initial source change).
    pub fn poll_frames(&mut self, timeout: Duration) -> Result<Vec<DecodedFrame>> {
        let mut out = Vec::new();
        let deadline = Instant::now() + timeout;
        loop {
            self.service(Duration::from_millis(10), &mut out)?;
            if !out.is_empty() || Instant::now() >= deadline {
                return Ok(out);
            }
        }
    }

    /// Step 8: `V4L2_DEC_CMD_STOP`, frames until `V4L2_BUF_FLAG_LAST` (at most 3 s),
    /// `VIDIOC_STREAMOFF`. Returns the frames and whether LAST came.
    pub fn drain(&mut self) -> Result<(Vec<DecodedFrame>, bool)> {
        let mut out = Vec::new();
        if self.stopped {
            return Ok((out, true));
        }
        self.stopped = true;
        self.dev.decoder_stop().map_err(|e| self.err("VIDIOC_DECODER_CMD STOP", e))?;
        let deadline = Instant::now() + Duration::from_secs(3);
        let before = self.stats.last_buffers;
        while Instant::now() < deadline && self.stats.last_buffers == before {
            self.service(Duration::from_millis(20), &mut out)?;
        }
        let last = self.stats.last_buffers > before;
        for q in [Queue::Capture, Queue::Output] {
            if let Err(e) = self.dev.stream_off(q) {
                if e.raw_os_error() == Some(libc::ENODEV) {
                    return Err(self.err("VIDIOC_STREAMOFF", e));
                }
                tracing::warn!(dev = %self.dev.path(), ?q, "VIDIOC_STREAMOFF: {e}");
            }
        }
        self.capture_streaming = false;
        Ok((out, last))
    }

    /// Events, then CAPTURE buffers; sets CAPTURE up (again) on a source change.
    fn service(&mut self, timeout: Duration, out: &mut Vec<DecodedFrame>) -> Result<()> {
        let wait = if self.capture_streaming { Duration::ZERO } else { timeout };
        while let Some(ev) = self.dev.dequeue_event(wait).map_err(|e| self.err("VIDIOC_DQEVENT", e))? {
            match ev {
                M2mEvent::SourceChange => {
                    self.stats.source_changes += 1;
                    if self.capture_streaming {
                        self.change_pending = Some(Instant::now());
                    } else {
                        self.setup_capture()?;
                    }
                }
                M2mEvent::Eos => tracing::debug!(dev = %self.dev.path(), "V4L2_EVENT_EOS"),
                M2mEvent::Other(t) => tracing::debug!(dev = %self.dev.path(), t, "other V4L2 event"),
            }
            if self.capture_streaming && self.change_pending.is_none() {
                break;
            }
        }
        if !self.capture_streaming {
            return Ok(());
        }
        let mut first = true;
        loop {
            let t = if first { timeout } else { Duration::ZERO };
            first = false;
            let buf = match self.dev.dequeue_capture(t) {
                Ok(Some(b)) => b,
                Ok(None) => break,
                // After LAST, vb2 answers EPIPE until CAPTURE is restarted.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => break,
                Err(e) => return Err(self.err("VIDIOC_DQBUF CAPTURE", e)),
            };
            if !buf.data.is_empty() {
                if let Some(frame) = self.to_frame(&buf.data, buf.timestamp_us) {
                    out.push(DecodedFrame { frame });
                }
            }
            if buf.last {
                self.stats.last_buffers += 1;
                if self.change_pending.take().is_some() {
                    self.restart_capture()?;
                }
                break;
            }
            self.dev.queue_capture(buf.index).map_err(|e| self.err("VIDIOC_QBUF CAPTURE", e))?;
        }
        // A driver that announced a change but never flags LAST: restart after 1 s anyway.
        if self.change_pending.is_some_and(|t| t.elapsed() > Duration::from_secs(1)) {
            tracing::warn!(dev = %self.dev.path(), "source change without a LAST buffer");
            self.change_pending = None;
            self.restart_capture()?;
        }
        Ok(())
    }

    fn restart_capture(&mut self) -> Result<()> {
        self.dev.stream_off(Queue::Capture).map_err(|e| self.err("VIDIOC_STREAMOFF CAPTURE", e))?;
        self.capture_streaming = false;
        self.dev.request_buffers(Queue::Capture, 0).map_err(|e| self.err("VIDIOC_REQBUFS CAPTURE 0", e))?;
        self.setup_capture()
    }

    /// Step 5. The CAPTURE buffers have the coded size (`VIDIOC_G_FMT`, padded to the driver's
    /// alignment); the picture is the compose rectangle (`VIDIOC_G_SELECTION` CAPTURE
    /// `V4L2_SEL_TGT_COMPOSE`; the whole buffer on a driver without selection).
    fn setup_capture(&mut self) -> Result<()> {
        let now = self.dev.get_format(Queue::Capture).map_err(|e| self.err("VIDIOC_G_FMT CAPTURE", e))?;
        let want = QueueFormat {
            fourcc: *b"YU12",
            width: now.width,
            height: now.height,
            bytesperline: now.width,
            sizeimage: VideoFrame::i420_len(now.width, now.height) as u32,
        };
        let raw = self.dev.set_format(Queue::Capture, want).map_err(|e| self.err("VIDIOC_S_FMT CAPTURE YU12", e))?;
        let visible = match self.dev.get_selection(Queue::Capture, SelectionTarget::Compose) {
            Ok(v) => v,
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Err(self.err("VIDIOC_G_SELECTION", e)),
            Err(e) => {
                tracing::debug!(dev = %self.dev.path(), "VIDIOC_G_SELECTION CAPTURE COMPOSE: {e}; the whole buffer");
                (raw.width, raw.height)
            }
        };
        let layout = RawLayout::new(raw, visible).ok_or_else(|| MediaError::Decoder {
            decoder: NAME,
            reason: format!(
                "{}: CAPTURE format {} {}x{} stride {} size {}, picture {}x{} (YU12 holding the picture wanted)",
                self.dev.path(),
                String::from_utf8_lossy(&raw.fourcc),
                raw.width,
                raw.height,
                raw.bytesperline,
                raw.sizeimage,
                visible.0,
                visible.1
            ),
        })?;
        let n = self.dev.request_buffers(Queue::Capture, BUFFERS).map_err(|e| self.err("VIDIOC_REQBUFS CAPTURE", e))?;
        for i in 0..n {
            self.dev.queue_capture(i).map_err(|e| self.err("VIDIOC_QBUF CAPTURE", e))?;
        }
        self.dev.stream_on(Queue::Capture).map_err(|e| self.err("VIDIOC_STREAMON CAPTURE", e))?;
        self.capture_streaming = true;
        self.raw = Some(raw);
        self.layout = Some(layout);
        self.stats.sizes.push(visible);
        tracing::info!(dev = %self.dev.path(), w = visible.0, h = visible.1, coded_w = raw.width, coded_h = raw.height,
            stride = raw.bytesperline, "decoder CAPTURE set up");
        Ok(())
    }

    /// A CAPTURE buffer (YU12 with the driver's stride) as a packed I420 frame.
    fn to_frame(&self, data: &[u8], timestamp: u64) -> Option<VideoFrame> {
        self.layout?.unpack(data, timestamp)
    }
}

/// Where the picture is in a YU12 buffer: luma lines of `stride` bytes, `rows` of them before
/// the chroma planes (lines of `stride / 2`), the picture `width` x `height` at the top left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawLayout {
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Bytes per luma line.
    pub stride: usize,
    /// Luma lines in the buffer (the coded height).
    pub rows: usize,
}

impl RawLayout {
    /// The layout of a negotiated YU12 `format` holding a `visible` picture: `None` when it is
    /// not YU12 or the picture does not fit. The rows are the larger of the format's height and
    /// what `sizeimage` implies (drivers that align the height only in `sizeimage`).
    pub fn new(format: QueueFormat, visible: (u32, u32)) -> Option<Self> {
        let stride = format.bytesperline as usize;
        if format.fourcc != *b"YU12" || stride == 0 {
            return None;
        }
        let rows = (format.height as usize).max(format.sizeimage as usize * 2 / (stride * 3));
        let (w, h) = visible;
        if w == 0 || h == 0 || w > format.width || w as usize > stride || h as usize > rows {
            return None;
        }
        Some(RawLayout { width: w, height: h, stride, rows })
    }

    /// The picture of a buffer in this layout as a packed I420 frame stamped `index`; `None`
    /// when `data` is too short.
    pub fn unpack(&self, data: &[u8], index: u64) -> Option<VideoFrame> {
        let mut f = VideoFrame::black(self.width, self.height, index, Instant::now());
        let (w, h) = (self.width as usize, self.height as usize);
        let (cw, ch) = f.chroma_size();
        let (stride, cstride) = (self.stride, self.stride.div_ceil(2));
        let u_off = stride * self.rows;
        let v_off = u_off + cstride * self.rows.div_ceil(2);
        if stride < w || data.len() < v_off + cstride * (ch.max(1) - 1) + cw {
            return None;
        }
        let (y_len, c_len) = (w * h, cw * ch);
        for r in 0..h {
            f.data[r * w..r * w + w].copy_from_slice(&data[r * stride..r * stride + w]);
        }
        for r in 0..ch {
            f.data[y_len + r * cw..y_len + r * cw + cw]
                .copy_from_slice(&data[u_off + r * cstride..u_off + r * cstride + cw]);
            f.data[y_len + c_len + r * cw..y_len + c_len + r * cw + cw]
                .copy_from_slice(&data[v_off + r * cstride..v_off + r * cstride + cw]);
        }
        Some(f)
    }
}

/// Packs YU12 with `stride` bytes per luma line (chroma `stride / 2`) and `height` rows into a
/// tight I420 frame; `None` when `data` is too short.
pub fn unpack_i420(data: &[u8], width: u32, height: u32, stride: usize, index: u64) -> Option<VideoFrame> {
    RawLayout { width, height, stride, rows: height as usize }.unpack(data, index)
}

/// PSNR in dB over all three planes of two I420 frames of the same size (`None` if they differ
/// in size; 99 for identical frames).
pub fn psnr_i420(a: &VideoFrame, b: &VideoFrame) -> Option<f64> {
    if (a.width, a.height) != (b.width, b.height) || a.data.len() != b.data.len() || a.data.is_empty() {
        return None;
    }
    let se: u64 = a.data.iter().zip(&b.data).map(|(&x, &y)| (i64::from(x) - i64::from(y)).pow(2) as u64).sum();
    if se == 0 {
        return Some(99.0);
    }
    let mse = se as f64 / a.data.len() as f64;
    Some(10.0 * (255.0 * 255.0 / mse).log10())
}

#[cfg(test)]
mod tests;
