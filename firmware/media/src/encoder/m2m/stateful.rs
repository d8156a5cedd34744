//! The stateful M2M encoder for any [`CodedFormat`] ([`StatefulEncoder`], steps 1-12 of the
//! parent module's sequence) and the H.264 [`VideoEncoder`] over it ([`M2mEncoder`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{
    device_error, fourcc_str, probe_codec, CodedFormat, Control, M2mDevice, Queue, QueueFormat, Role, SelectionTarget,
};
use crate::encoder::{EncodedFrame, EncoderConfig, VideoCodec, VideoEncoder};
use crate::error::{MediaError, Result};
use crate::frame::VideoFrame;

const NAME: &str = "V4L2 M2M";

/// Buffers asked for on each queue.
const BUFFERS: u32 = 4;

/// One coded frame out of a [`StatefulEncoder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodedFrame {
    /// The format of `data`.
    pub format: CodedFormat,
    /// One coded frame (H.264 access unit, FWHT frame with its header).
    pub data: Vec<u8>,
    /// `V4L2_BUF_FLAG_KEYFRAME`.
    pub keyframe: bool,
    /// Index of the raw frame it came from (the OUTPUT buffer's timestamp).
    pub index: u64,
    /// Capture time of that frame.
    pub captured_at: Instant,
}

/// A stateful M2M encoder over an [`M2mDevice`], for any coded format.
pub struct StatefulEncoder<D: M2mDevice> {
    dev: D,
    format: CodedFormat,
    config: EncoderConfig,
    raw: QueueFormat,
    free_output: Vec<u32>,
    output_count: u32,
    in_flight: HashMap<u64, Instant>,
    keyframe_requested: bool,
    streaming: bool,
    name: String,
}

impl<D: M2mDevice> StatefulEncoder<D> {
    /// Probes the device as a `format` encoder and runs steps 3-8 of the sequence.
    pub fn new(mut dev: D, config: EncoderConfig, format: CodedFormat) -> Result<Self> {
        let probe = probe_codec(&mut dev, format, Role::Encoder);
        if !probe.usable {
            return Err(MediaError::encoder(NAME, format!("{}: {}", probe.path, probe.reason)));
        }
        let mut enc = StatefulEncoder {
            dev,
            format,
            config,
            raw: QueueFormat { fourcc: *b"YU12", width: 0, height: 0, bytesperline: 0, sizeimage: 0 },
            free_output: vec![],
            output_count: 0,
            in_flight: HashMap::new(),
            keyframe_requested: false,
            streaming: false,
            name: probe.name,
        };
        enc.start()?;
        Ok(enc)
    }

    fn err(&self, what: &str, e: std::io::Error) -> MediaError {
        device_error(NAME, &self.dev.path(), what, e)
    }

    /// Steps 3-8: formats, controls, buffers, streaming.
    fn start(&mut self) -> Result<()> {
        let (w, h) = (self.config.width, self.config.height);
        let cc = self.format.fourcc();
        let coded =
            QueueFormat { fourcc: cc, width: w, height: h, bytesperline: 0, sizeimage: (w * h).max(256 * 1024) };
        let what = format!("VIDIOC_S_FMT CAPTURE {}", fourcc_str(&cc));
        self.dev.set_format(Queue::Capture, coded).map_err(|e| self.err(&what, e))?;
        let want = QueueFormat {
            fourcc: *b"YU12",
            width: w,
            height: h,
            bytesperline: w,
            sizeimage: VideoFrame::i420_len(w, h) as u32,
        };
        let raw = self.dev.set_format(Queue::Output, want).map_err(|e| self.err("VIDIOC_S_FMT OUTPUT YU12", e))?;
        self.check_raw(raw)?;
        self.raw = raw;
        if let Err(e) = self.dev.set_frame_rate(self.config.fps) {
            tracing::warn!(dev = %self.dev.path(), "VIDIOC_S_PARM frame rate refused: {e}");
        }
        for (control, value, mandatory) in self.format.controls(&self.config) {
            match self.dev.set_control(control, value) {
                Ok(()) => {}
                Err(e) if mandatory => return Err(self.err(&format!("set {control:?}"), e)),
                Err(e) => tracing::info!(dev = %self.dev.path(), ?control, value, "optional control refused: {e}"),
            }
        }
        let output_count =
            self.dev.request_buffers(Queue::Output, BUFFERS).map_err(|e| self.err("VIDIOC_REQBUFS OUTPUT", e))?;
        let capture_count =
            self.dev.request_buffers(Queue::Capture, BUFFERS).map_err(|e| self.err("VIDIOC_REQBUFS CAPTURE", e))?;
        if output_count == 0 || capture_count == 0 {
            return Err(MediaError::encoder(NAME, format!("{}: driver granted no buffers", self.dev.path())));
        }
        for i in 0..capture_count {
            self.dev.queue_capture(i).map_err(|e| self.err("VIDIOC_QBUF CAPTURE", e))?;
        }
        self.dev.stream_on(Queue::Output).map_err(|e| self.err("VIDIOC_STREAMON OUTPUT", e))?;
        self.dev.stream_on(Queue::Capture).map_err(|e| self.err("VIDIOC_STREAMON CAPTURE", e))?;
        self.free_output = (0..output_count).rev().collect();
        self.output_count = output_count;
        self.streaming = true;
        tracing::info!(dev = %self.dev.path(), name = %self.name, format = %self.format, w, h, "M2M encoder streaming");
        Ok(())
    }

    /// Step 4's checks: YU12, a buffer at least the frame's size with lines at least as long,
    /// and, when the driver padded the coded size, the frame as the visible rectangle (crop).
    fn check_raw(&mut self, raw: QueueFormat) -> Result<()> {
        let (w, h) = (self.config.width, self.config.height);
        let path = self.dev.path();
        let refuse = |why: String| {
            MediaError::encoder(
                NAME,
                format!(
                    "{path}: for {w}x{h} frames the driver set OUTPUT {} {}x{} stride {}: {why}",
                    fourcc_str(&raw.fourcc),
                    raw.width,
                    raw.height,
                    raw.bytesperline
                ),
            )
        };
        if raw.fourcc != *b"YU12" {
            return Err(refuse("not YU12".into()));
        }
        if raw.width < w || raw.height < h || raw.bytesperline < raw.width {
            return Err(refuse("the buffer does not hold the frame".into()));
        }
        if (raw.width, raw.height) == (w, h) {
            return Ok(());
        }
        // A padded coded size (alignment, a minimum): the frame is the visible rectangle.
        match self.dev.set_selection(Queue::Output, SelectionTarget::Crop, w, h) {
            Ok(visible) if visible == (w, h) => {
                tracing::info!(dev = %path, coded = ?(raw.width, raw.height), visible = ?visible,
                    "raw buffer padded, frame cropped");
                Ok(())
            }
            Ok((vw, vh)) => Err(refuse(format!(
                "its visible rectangle for the frame is {vw}x{vh} (the smallest picture it codes?)"
            ))),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Err(self.err("VIDIOC_S_SELECTION OUTPUT CROP", e)),
            Err(e) => Err(refuse(format!("padded, and VIDIOC_S_SELECTION OUTPUT CROP failed: {e}"))),
        }
    }

    /// The device (tests inspect the fake's log through it).
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// The coded format.
    pub fn format(&self) -> CodedFormat {
        self.format
    }

    /// Driver and card, as the probe found them.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration (size after [`Self::reconfigure`]).
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// The raw format the driver negotiated.
    pub fn raw_format(&self) -> QueueFormat {
        self.raw
    }

    /// Lays an I420 frame out as the driver wants it (line padding, aligned height).
    pub fn layout(&self, frame: &VideoFrame) -> Vec<u8> {
        layout_i420(frame, self.raw.bytesperline as usize, self.raw.sizeimage as usize)
    }

    fn collect(&mut self, out: &mut Vec<CodedFrame>, timeout: Duration) -> Result<bool> {
        let mut last = false;
        while let Some(buf) = self.dev.dequeue_capture(timeout).map_err(|e| self.err("VIDIOC_DQBUF CAPTURE", e))? {
            last |= buf.last;
            if !buf.data.is_empty() {
                let captured_at = self.in_flight.remove(&buf.timestamp_us).unwrap_or_else(Instant::now);
                out.push(CodedFrame {
                    format: self.format,
                    data: buf.data,
                    keyframe: buf.keyframe,
                    index: buf.timestamp_us,
                    captured_at,
                });
            }
            if last {
                break;
            }
            self.dev.queue_capture(buf.index).map_err(|e| self.err("VIDIOC_QBUF CAPTURE", e))?;
            if !timeout.is_zero() {
                break;
            }
        }
        Ok(last)
    }

    /// Encodes one frame (step 9); returns the coded frames ready now (drivers may lag).
    pub fn encode_frame(&mut self, frame: &VideoFrame) -> Result<Vec<CodedFrame>> {
        if !self.streaming {
            return Err(MediaError::encoder(NAME, "encoder drained (reconfigure to go on)"));
        }
        if (frame.width, frame.height) != (self.config.width, self.config.height) {
            return Err(MediaError::encoder(
                NAME,
                format!(
                    "frame is {}x{}, encoder {}x{}",
                    frame.width, frame.height, self.config.width, self.config.height
                ),
            ));
        }
        let mut out = Vec::new();
        // Reclaim finished OUTPUT buffers; wait (bounded) when all are in the driver.
        loop {
            let timeout = if self.free_output.is_empty() { Duration::from_millis(500) } else { Duration::ZERO };
            match self.dev.dequeue_output(timeout).map_err(|e| self.err("VIDIOC_DQBUF OUTPUT", e))? {
                Some(i) if i < self.output_count => self.free_output.push(i),
                Some(i) => {
                    return Err(MediaError::encoder(
                        NAME,
                        format!("driver returned OUTPUT buffer {i} of {}", self.output_count),
                    ))
                }
                None if self.free_output.is_empty() => {
                    // Perhaps CAPTURE is full: drain it and try once more.
                    self.collect(&mut out, Duration::ZERO)?;
                    if let Some(i) = self
                        .dev
                        .dequeue_output(Duration::from_millis(500))
                        .map_err(|e| self.err("VIDIOC_DQBUF OUTPUT", e))?
                    {
                        self.free_output.push(i);
                        break;
                    }
                    return Err(MediaError::encoder(
                        NAME,
                        format!("{}: encoder stalled (no OUTPUT buffer back in 1 s)", self.dev.path()),
                    ));
                }
                None => break,
            }
        }
        let index = self.free_output.pop().unwrap_or(0);
        if std::mem::take(&mut self.keyframe_requested) {
            self.dev.set_control(Control::ForceKeyFrame, 1).map_err(|e| self.err("force key frame", e))?;
        }
        let data = self.layout(frame);
        self.in_flight.insert(frame.index, frame.captured_at);
        self.dev.queue_output(index, &data, frame.index).map_err(|e| self.err("VIDIOC_QBUF OUTPUT", e))?;
        self.collect(&mut out, Duration::ZERO)?;
        Ok(out)
    }

    /// Makes the next frame a key frame.
    pub fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    /// Changes the bitrate while running (formats without a bitrate control refuse).
    pub fn set_bitrate(&mut self, bitrate_bps: u32) -> Result<()> {
        if !self.format.has_bitrate() {
            return Err(MediaError::encoder(NAME, format!("{} has no bitrate control", self.format)));
        }
        self.dev.set_control(Control::Bitrate, bitrate_bps as i32).map_err(|e| self.err("set bitrate", e))?;
        self.config.bitrate_bps = bitrate_bps;
        Ok(())
    }

    /// Step 11: `V4L2_ENC_CMD_STOP`, every frame still inside until `V4L2_BUF_FLAG_LAST` (at
    /// most 2 s), `VIDIOC_STREAMOFF` both queues. Returns the frames and whether LAST was seen.
    pub fn drain(&mut self) -> Result<(Vec<CodedFrame>, bool)> {
        let mut out = Vec::new();
        if !self.streaming {
            return Ok((out, true));
        }
        self.streaming = false;
        self.dev.encoder_stop().map_err(|e| self.err("VIDIOC_ENCODER_CMD STOP", e))?;
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut last = false;
        while Instant::now() < deadline {
            if self.collect(&mut out, Duration::from_millis(100))? {
                last = true;
                break;
            }
        }
        let off = self.dev.stream_off(Queue::Output).and_then(|()| self.dev.stream_off(Queue::Capture));
        if let Err(e) = off {
            if e.raw_os_error() == Some(libc::ENODEV) {
                return Err(self.err("VIDIOC_STREAMOFF", e));
            }
            tracing::warn!(dev = %self.dev.path(), "VIDIOC_STREAMOFF: {e}");
        }
        Ok((out, last))
    }

    /// Step 12, a resolution change: drains, frees both queues' buffers and sets the device up
    /// again for `width` x `height`. Returns the frames drained.
    pub fn reconfigure(&mut self, width: u32, height: u32) -> Result<Vec<CodedFrame>> {
        let (out, _) = self.drain()?;
        self.dev.request_buffers(Queue::Output, 0).map_err(|e| self.err("VIDIOC_REQBUFS OUTPUT 0", e))?;
        self.dev.request_buffers(Queue::Capture, 0).map_err(|e| self.err("VIDIOC_REQBUFS CAPTURE 0", e))?;
        self.in_flight.clear();
        self.config.width = width;
        self.config.height = height;
        self.start()?;
        Ok(out)
    }
}

/// Copies tightly packed I420 into a buffer with `stride` bytes per luma line (chroma
/// `stride / 2`) and as many luma rows as `sizeimage` implies (drivers align the height).
pub fn layout_i420(frame: &VideoFrame, stride: usize, sizeimage: usize) -> Vec<u8> {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let (cw, ch) = frame.chroma_size();
    let stride = stride.max(w);
    let cstride = stride.div_ceil(2);
    let rows = (sizeimage * 2 / (stride * 3).max(1)).max(h);
    let crows = rows.div_ceil(2);
    let mut buf = vec![0u8; (stride * rows + 2 * cstride * crows).max(sizeimage)];
    let (y, u, v) = frame.planes();
    for r in 0..h {
        buf[r * stride..r * stride + w].copy_from_slice(&y[r * w..r * w + w]);
    }
    let u_off = stride * rows;
    let v_off = u_off + cstride * crows;
    for r in 0..ch {
        buf[u_off + r * cstride..u_off + r * cstride + cw].copy_from_slice(&u[r * cw..r * cw + cw]);
        buf[v_off + r * cstride..v_off + r * cstride + cw].copy_from_slice(&v[r * cw..r * cw + cw]);
    }
    buf
}

/// The hardware H.264 [`VideoEncoder`]: a [`StatefulEncoder`] with [`CodedFormat::H264`].
pub struct M2mEncoder<D: M2mDevice> {
    inner: StatefulEncoder<D>,
    flushed: bool,
}

impl<D: M2mDevice> M2mEncoder<D> {
    /// Probes `dev` as an H.264 encoder and starts streaming.
    pub fn new(dev: D, config: EncoderConfig) -> Result<Self> {
        Ok(M2mEncoder { inner: StatefulEncoder::new(dev, config, CodedFormat::H264)?, flushed: false })
    }

    /// The device (tests inspect the fake's log through it).
    pub fn device(&self) -> &D {
        self.inner.device()
    }

    /// Lays an I420 frame out as the driver wants it.
    pub fn layout(&self, frame: &VideoFrame) -> Vec<u8> {
        self.inner.layout(frame)
    }
}

fn h264(frames: Vec<CodedFrame>) -> Vec<EncodedFrame> {
    frames
        .into_iter()
        .map(|f| EncodedFrame {
            codec: VideoCodec::H264,
            data: f.data,
            keyframe: f.keyframe,
            index: f.index,
            captured_at: f.captured_at,
        })
        .collect()
}

impl<D: M2mDevice> VideoEncoder for M2mEncoder<D> {
    fn codec(&self) -> VideoCodec {
        VideoCodec::H264
    }
    fn describe(&self) -> String {
        format!("{NAME} H.264 on {} at {} kbit/s", self.inner.dev.path(), self.inner.config.bitrate_bps / 1000)
    }
    fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<EncodedFrame>> {
        if self.flushed {
            return Err(MediaError::encoder(NAME, "encoder already flushed"));
        }
        self.inner.encode_frame(frame).map(h264)
    }
    fn request_keyframe(&mut self) {
        self.inner.request_keyframe();
    }
    fn set_bitrate(&mut self, bitrate_bps: u32) -> Result<()> {
        self.inner.set_bitrate(bitrate_bps)
    }
    fn flush(&mut self) -> Result<Vec<EncodedFrame>> {
        self.flushed = true;
        self.inner.drain().map(|(frames, _)| h264(frames))
    }
}
