//! Hardware H.264 through a V4L2 memory-to-memory *stateful* encoder (Raspberry Pi 4:
//! `bcm2835-codec`, `/dev/video11`). Nothing is assumed: [`probe`] opens every `/dev/video*`
//! and accepts only an M2M device with H.264 on its CAPTURE queue and YU12 on its OUTPUT queue.
//!
//! The encoder talks to the device through [`M2mDevice`], a small ioctl-level trait, so the
//! whole sequence is tested against [`fake::FakeM2m`]; [`linux::LinuxM2m`] issues the real ioctls.
//!
//! The ioctl sequence (V4L2 "Memory-to-Memory Stateful Video Encoder Interface"):
//! 1. `VIDIOC_QUERYCAP`: `V4L2_CAP_VIDEO_M2M(_MPLANE)` and `V4L2_CAP_STREAMING` required.
//! 2. `VIDIOC_ENUM_FMT` on CAPTURE (coded side) must list `H264`; on OUTPUT (raw side) `YU12`.
//! 3. `VIDIOC_S_FMT` CAPTURE: `H264`, width x height, `sizeimage` for one access unit.
//! 4. `VIDIOC_S_FMT` OUTPUT: `YU12`, width x height; the driver answers with its
//!    `bytesperline` and `sizeimage` (it may pad lines and align the height), which the copy into
//!    the buffer honours.
//! 5. `VIDIOC_S_PARM` OUTPUT: `timeperframe = 1/fps`.
//! 6. `VIDIOC_S_EXT_CTRLS` (codec class): `V4L2_CID_MPEG_VIDEO_BITRATE`,
//!    `..._H264_I_PERIOD` and `..._GOP_SIZE` (keyframe interval), `..._H264_PROFILE`
//!    (constrained baseline), `..._H264_LEVEL` (4.0), `..._REPEAT_SEQ_HEADER` (SPS/PPS before
//!    every IDR, so receivers can join). Only the bitrate is mandatory; a driver refusing an
//!    optional control is logged.
//! 7. `VIDIOC_REQBUFS` (MMAP) on both queues, `VIDIOC_QUERYBUF` + `mmap` for each buffer.
//! 8. `VIDIOC_QBUF` every CAPTURE buffer, `VIDIOC_STREAMON` OUTPUT and CAPTURE.
//! 9. Per frame: reclaim a free OUTPUT buffer (`VIDIOC_DQBUF` OUTPUT), copy the I420 frame in,
//!    `VIDIOC_QBUF` it with the frame index as timestamp; then `VIDIOC_DQBUF` every ready CAPTURE
//!    buffer (its `V4L2_BUF_FLAG_KEYFRAME` marks IDRs), copy out `bytesused`, re-`VIDIOC_QBUF` it.
//! 10. Keyframe on request: `VIDIOC_S_EXT_CTRLS` `V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME` before
//!     queueing the frame. Bitrate while running: `VIDIOC_S_EXT_CTRLS` `..._BITRATE`.
//! 11. End: `VIDIOC_ENCODER_CMD` `V4L2_ENC_CMD_STOP`, dequeue CAPTURE until
//!     `V4L2_BUF_FLAG_LAST`, `VIDIOC_STREAMOFF` both queues.

pub mod fake;
pub mod linux;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{EncodedFrame, EncoderConfig, VideoCodec, VideoEncoder};
use crate::error::{MediaError, Result};
use crate::frame::VideoFrame;

const NAME: &str = "V4L2 M2M H.264";

/// The two queues of an M2M device, named as V4L2 names them for an encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Queue {
    /// Raw frames into the encoder.
    Output,
    /// Coded H.264 out of the encoder.
    Capture,
}

/// Codec-class controls the encoder sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Control {
    /// `V4L2_CID_MPEG_VIDEO_BITRATE` (bit/s).
    Bitrate,
    /// `V4L2_CID_MPEG_VIDEO_H264_I_PERIOD` (frames).
    H264IPeriod,
    /// `V4L2_CID_MPEG_VIDEO_GOP_SIZE` (frames).
    GopSize,
    /// `V4L2_CID_MPEG_VIDEO_H264_PROFILE` (V4L2 enum value).
    H264Profile,
    /// `V4L2_CID_MPEG_VIDEO_H264_LEVEL` (V4L2 enum value).
    H264Level,
    /// `V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER` (bool).
    RepeatSeqHeader,
    /// `V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME` (button).
    ForceKeyFrame,
}

/// `V4L2_MPEG_VIDEO_H264_PROFILE_CONSTRAINED_BASELINE`.
pub const PROFILE_CONSTRAINED_BASELINE: i32 = 1;
/// `V4L2_MPEG_VIDEO_H264_LEVEL_4_0`.
pub const LEVEL_4_0: i32 = 11;

/// What `VIDIOC_QUERYCAP` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct M2mCaps {
    /// Driver name (e.g. `bcm2835-codec`).
    pub driver: String,
    /// Card name.
    pub card: String,
    /// Memory-to-memory (single- or multi-planar).
    pub m2m: bool,
    /// Streaming IO.
    pub streaming: bool,
}

/// A negotiated format on one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFormat {
    /// Fourcc (`H264` or `YU12`).
    pub fourcc: [u8; 4],
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Luma bytes per line (0 for coded formats).
    pub bytesperline: u32,
    /// Buffer size.
    pub sizeimage: u32,
}

/// A dequeued CAPTURE buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodedBuffer {
    /// Buffer index (to queue it again).
    pub index: u32,
    /// `bytesused` bytes of H.264.
    pub data: Vec<u8>,
    /// `V4L2_BUF_FLAG_KEYFRAME`.
    pub keyframe: bool,
    /// `V4L2_BUF_FLAG_LAST` (end of stream after `V4L2_ENC_CMD_STOP`).
    pub last: bool,
    /// The timestamp the matching OUTPUT buffer was queued with.
    pub timestamp_us: u64,
}

/// The ioctl-level seam between the encoder logic and a V4L2 M2M device.
pub trait M2mDevice: Send {
    /// Device path for messages.
    fn path(&self) -> String;
    /// `VIDIOC_QUERYCAP`.
    fn query_caps(&mut self) -> std::io::Result<M2mCaps>;
    /// `VIDIOC_ENUM_FMT` until `EINVAL`.
    fn enum_formats(&mut self, queue: Queue) -> std::io::Result<Vec<[u8; 4]>>;
    /// `VIDIOC_S_FMT`; returns what the driver set.
    fn set_format(&mut self, queue: Queue, format: QueueFormat) -> std::io::Result<QueueFormat>;
    /// `VIDIOC_S_PARM` on OUTPUT.
    fn set_frame_rate(&mut self, fps: u32) -> std::io::Result<()>;
    /// `VIDIOC_S_EXT_CTRLS` with one control.
    fn set_control(&mut self, control: Control, value: i32) -> std::io::Result<()>;
    /// `VIDIOC_REQBUFS` (MMAP) + `VIDIOC_QUERYBUF` + `mmap`; returns the count granted.
    fn request_buffers(&mut self, queue: Queue, count: u32) -> std::io::Result<u32>;
    /// `VIDIOC_QBUF` of a CAPTURE buffer.
    fn queue_capture(&mut self, index: u32) -> std::io::Result<()>;
    /// Copies `data` (already laid out for the negotiated OUTPUT format) into OUTPUT buffer
    /// `index` and `VIDIOC_QBUF`s it.
    fn queue_output(&mut self, index: u32, data: &[u8], timestamp_us: u64) -> std::io::Result<()>;
    /// `VIDIOC_DQBUF` OUTPUT, waiting at most `timeout`: the index of a buffer free again.
    fn dequeue_output(&mut self, timeout: Duration) -> std::io::Result<Option<u32>>;
    /// `VIDIOC_DQBUF` CAPTURE, waiting at most `timeout`.
    fn dequeue_capture(&mut self, timeout: Duration) -> std::io::Result<Option<CodedBuffer>>;
    /// `VIDIOC_STREAMON`.
    fn stream_on(&mut self, queue: Queue) -> std::io::Result<()>;
    /// `VIDIOC_STREAMOFF`.
    fn stream_off(&mut self, queue: Queue) -> std::io::Result<()>;
    /// `VIDIOC_ENCODER_CMD` `V4L2_ENC_CMD_STOP`.
    fn encoder_stop(&mut self) -> std::io::Result<()>;
}

/// What the probe found on one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct M2mProbe {
    /// Device path.
    pub path: String,
    /// Driver and card.
    pub name: String,
    /// Coded formats on CAPTURE.
    pub coded_formats: Vec<String>,
    /// Raw formats on OUTPUT.
    pub raw_formats: Vec<String>,
    /// Usable as our H.264 encoder.
    pub usable: bool,
    /// Why (not).
    pub reason: String,
}

fn fourcc_str(cc: &[u8; 4]) -> String {
    String::from_utf8_lossy(cc).trim_end().to_string()
}

/// Checks one device: is it an M2M encoder with H.264 out and YU12 in?
pub fn probe_device(dev: &mut dyn M2mDevice) -> M2mProbe {
    let path = dev.path();
    let mut p = M2mProbe {
        path: path.clone(),
        name: String::new(),
        coded_formats: vec![],
        raw_formats: vec![],
        usable: false,
        reason: String::new(),
    };
    let caps = match dev.query_caps() {
        Ok(c) => c,
        Err(e) => {
            p.reason = format!("VIDIOC_QUERYCAP failed: {e}");
            return p;
        }
    };
    p.name = format!("{} ({})", caps.card, caps.driver);
    if !caps.m2m || !caps.streaming {
        p.reason = "not a memory-to-memory streaming device".into();
        return p;
    }
    p.coded_formats = dev.enum_formats(Queue::Capture).unwrap_or_default().iter().map(fourcc_str).collect();
    p.raw_formats = dev.enum_formats(Queue::Output).unwrap_or_default().iter().map(fourcc_str).collect();
    let h264 = p.coded_formats.iter().any(|f| f == "H264");
    let yu12 = p.raw_formats.iter().any(|f| f == "YU12");
    p.usable = h264 && yu12;
    p.reason = match (h264, yu12) {
        (true, true) => "M2M encoder with H264 on CAPTURE and YU12 on OUTPUT".into(),
        (false, _) => "M2M device without H264 on its CAPTURE queue (a decoder or another codec)".into(),
        (true, false) => "H264 encoder without YU12 input".into(),
    };
    p
}

/// Probes every `/dev/video*` on this machine.
pub fn probe() -> Vec<M2mProbe> {
    let mut paths: Vec<_> =
        std::fs::read_dir("/dev").map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
    paths.retain(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("video")));
    paths.sort();
    paths
        .iter()
        .map(|p| match linux::LinuxM2m::open(p) {
            Ok(mut dev) => probe_device(&mut dev),
            Err(e) => M2mProbe {
                path: p.display().to_string(),
                name: String::new(),
                coded_formats: vec![],
                raw_formats: vec![],
                usable: false,
                reason: format!("cannot open: {e}"),
            },
        })
        .collect()
}

/// The first usable hardware encoder, if any.
pub fn find_encoder() -> Option<M2mProbe> {
    probe().into_iter().find(|p| p.usable)
}

/// The H.264 encoder over an [`M2mDevice`].
pub struct M2mEncoder<D: M2mDevice> {
    dev: D,
    config: EncoderConfig,
    raw: QueueFormat,
    free_output: Vec<u32>,
    output_count: u32,
    in_flight: HashMap<u64, Instant>,
    keyframe_requested: bool,
    stopped: bool,
}

fn err(dev: &dyn M2mDevice, what: &str, e: std::io::Error) -> MediaError {
    MediaError::encoder(NAME, format!("{}: {what}: {e}", dev.path()))
}

impl<D: M2mDevice> M2mEncoder<D> {
    /// Runs steps 1-8 of the sequence in the module doc.
    pub fn new(mut dev: D, config: EncoderConfig) -> Result<Self> {
        let probe = probe_device(&mut dev);
        if !probe.usable {
            return Err(MediaError::encoder(NAME, format!("{}: {}", probe.path, probe.reason)));
        }
        let (w, h) = (config.width, config.height);
        let coded =
            QueueFormat { fourcc: *b"H264", width: w, height: h, bytesperline: 0, sizeimage: (w * h).max(256 * 1024) };
        dev.set_format(Queue::Capture, coded).map_err(|e| err(&dev, "VIDIOC_S_FMT CAPTURE H264", e))?;
        let want = QueueFormat {
            fourcc: *b"YU12",
            width: w,
            height: h,
            bytesperline: w,
            sizeimage: VideoFrame::i420_len(w, h) as u32,
        };
        let raw = dev.set_format(Queue::Output, want).map_err(|e| err(&dev, "VIDIOC_S_FMT OUTPUT YU12", e))?;
        if raw.fourcc != *b"YU12" || raw.width != w || raw.height != h || raw.bytesperline < w {
            return Err(MediaError::encoder(
                NAME,
                format!(
                    "{}: driver changed the raw format to {} {}x{} stride {}",
                    dev.path(),
                    fourcc_str(&raw.fourcc),
                    raw.width,
                    raw.height,
                    raw.bytesperline
                ),
            ));
        }
        if let Err(e) = dev.set_frame_rate(config.fps) {
            tracing::warn!(dev = %dev.path(), "VIDIOC_S_PARM frame rate refused: {e}");
        }
        dev.set_control(Control::Bitrate, config.bitrate_bps as i32).map_err(|e| err(&dev, "set bitrate", e))?;
        for (control, value) in [
            (Control::H264IPeriod, config.keyframe_interval as i32),
            (Control::GopSize, config.keyframe_interval as i32),
            (Control::H264Profile, PROFILE_CONSTRAINED_BASELINE),
            (Control::H264Level, LEVEL_4_0),
            (Control::RepeatSeqHeader, 1),
        ] {
            if let Err(e) = dev.set_control(control, value) {
                tracing::info!(dev = %dev.path(), ?control, value, "optional control refused: {e}");
            }
        }
        let output_count = dev.request_buffers(Queue::Output, 4).map_err(|e| err(&dev, "VIDIOC_REQBUFS OUTPUT", e))?;
        let capture_count =
            dev.request_buffers(Queue::Capture, 4).map_err(|e| err(&dev, "VIDIOC_REQBUFS CAPTURE", e))?;
        if output_count == 0 || capture_count == 0 {
            return Err(MediaError::encoder(NAME, format!("{}: driver granted no buffers", dev.path())));
        }
        for i in 0..capture_count {
            dev.queue_capture(i).map_err(|e| err(&dev, "VIDIOC_QBUF CAPTURE", e))?;
        }
        dev.stream_on(Queue::Output).map_err(|e| err(&dev, "VIDIOC_STREAMON OUTPUT", e))?;
        dev.stream_on(Queue::Capture).map_err(|e| err(&dev, "VIDIOC_STREAMON CAPTURE", e))?;
        tracing::info!(dev = %dev.path(), name = %probe.name, "hardware H.264 encoder streaming");
        Ok(M2mEncoder {
            dev,
            config,
            raw,
            free_output: (0..output_count).rev().collect(),
            output_count,
            in_flight: HashMap::new(),
            keyframe_requested: false,
            stopped: false,
        })
    }

    /// The device (tests inspect the fake's log through it).
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// Lays an I420 frame out as the driver wants it (line padding, aligned height).
    pub fn layout(&self, frame: &VideoFrame) -> Vec<u8> {
        layout_i420(frame, self.raw.bytesperline as usize, self.raw.sizeimage as usize)
    }

    fn collect(&mut self, out: &mut Vec<EncodedFrame>, timeout: Duration) -> Result<bool> {
        let mut last = false;
        while let Some(buf) =
            self.dev.dequeue_capture(timeout).map_err(|e| err(&self.dev, "VIDIOC_DQBUF CAPTURE", e))?
        {
            last |= buf.last;
            if !buf.data.is_empty() {
                let captured_at = self.in_flight.remove(&buf.timestamp_us).unwrap_or_else(Instant::now);
                out.push(EncodedFrame {
                    codec: VideoCodec::H264,
                    data: buf.data,
                    keyframe: buf.keyframe,
                    index: buf.timestamp_us,
                    captured_at,
                });
            }
            if last {
                break;
            }
            self.dev.queue_capture(buf.index).map_err(|e| err(&self.dev, "VIDIOC_QBUF CAPTURE", e))?;
            if !timeout.is_zero() {
                break;
            }
        }
        Ok(last)
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

impl<D: M2mDevice> VideoEncoder for M2mEncoder<D> {
    fn codec(&self) -> VideoCodec {
        VideoCodec::H264
    }
    fn describe(&self) -> String {
        format!("{} on {} at {} kbit/s", NAME, self.dev.path(), self.config.bitrate_bps / 1000)
    }
    fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<EncodedFrame>> {
        if self.stopped {
            return Err(MediaError::encoder(NAME, "encoder already flushed"));
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
            match self.dev.dequeue_output(timeout).map_err(|e| err(&self.dev, "VIDIOC_DQBUF OUTPUT", e))? {
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
                        .map_err(|e| err(&self.dev, "VIDIOC_DQBUF OUTPUT", e))?
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
            self.dev.set_control(Control::ForceKeyFrame, 1).map_err(|e| err(&self.dev, "force key frame", e))?;
        }
        let data = self.layout(frame);
        self.in_flight.insert(frame.index, frame.captured_at);
        self.dev.queue_output(index, &data, frame.index).map_err(|e| err(&self.dev, "VIDIOC_QBUF OUTPUT", e))?;
        self.collect(&mut out, Duration::ZERO)?;
        Ok(out)
    }
    fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }
    fn set_bitrate(&mut self, bitrate_bps: u32) -> Result<()> {
        self.dev.set_control(Control::Bitrate, bitrate_bps as i32).map_err(|e| err(&self.dev, "set bitrate", e))?;
        self.config.bitrate_bps = bitrate_bps;
        Ok(())
    }
    fn flush(&mut self) -> Result<Vec<EncodedFrame>> {
        let mut out = Vec::new();
        if self.stopped {
            return Ok(out);
        }
        self.stopped = true;
        self.dev.encoder_stop().map_err(|e| err(&self.dev, "VIDIOC_ENCODER_CMD STOP", e))?;
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if self.collect(&mut out, Duration::from_millis(100))? {
                break;
            }
        }
        let _ = self.dev.stream_off(Queue::Output);
        let _ = self.dev.stream_off(Queue::Capture);
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
