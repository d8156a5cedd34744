//! Video through V4L2 memory-to-memory *stateful* codecs: hardware H.264 on a Raspberry Pi 4
//! (`bcm2835-codec`, `/dev/video11`), FWHT on the kernel's virtual codec `vicodec` (the QEMU
//! test). The coded format is a [`CodedFormat`]; nothing is assumed about a device: [`probe`]
//! opens every `/dev/video*` and accepts only an M2M device with the coded format on the right
//! queue and YU12 on the other.
//!
//! The codecs talk to a device through [`M2mDevice`], a small ioctl-level trait, so the whole
//! sequence is tested against [`fake::FakeM2m`]; [`linux::LinuxM2m`] issues the real ioctls.
//! [`StatefulEncoder`] is the encoder for any coded format, [`M2mEncoder`] the H.264
//! [`VideoEncoder`](super::VideoEncoder) over it; the decoder is `crate::decode::m2m`.
//!
//! The encoder's ioctl sequence (V4L2 "Memory-to-Memory Stateful Video Encoder Interface"):
//! 1. `VIDIOC_QUERYCAP`: `V4L2_CAP_VIDEO_M2M(_MPLANE)` and `V4L2_CAP_STREAMING` required.
//! 2. `VIDIOC_ENUM_FMT` on CAPTURE (coded side) must list the coded fourcc; on OUTPUT `YU12`.
//! 3. `VIDIOC_S_FMT` CAPTURE: coded fourcc, width x height, `sizeimage` for one access unit.
//! 4. `VIDIOC_S_FMT` OUTPUT: `YU12`, width x height; the driver answers with its coded size,
//!    `bytesperline` and `sizeimage`: it may pad lines, align the width and height (vicodec rounds
//!    both up to 16 and clamps to at least 640x360; bcm2835-codec pads lines to 32 and the height
//!    to 16 in `sizeimage` only), and the copy into the buffer honours that layout. A coded size
//!    smaller than the frame is refused. A coded size larger than the frame: `VIDIOC_S_SELECTION`
//!    OUTPUT `V4L2_SEL_TGT_CROP` (0, 0, width, height) makes the frame the visible rectangle; a
//!    driver that answers with another rectangle (vicodec's minimum) or has no crop is refused
//!    with its figures, since the stream would not show the frame as it is.
//! 5. `VIDIOC_S_PARM` OUTPUT: `timeperframe = 1/fps`.
//! 6. `VIDIOC_S_EXT_CTRLS` (codec class), per format ([`CodedFormat::controls`]): H.264
//!    `V4L2_CID_MPEG_VIDEO_BITRATE` (mandatory), `..._H264_I_PERIOD` and `..._GOP_SIZE`,
//!    `..._H264_PROFILE` (constrained baseline), `..._H264_LEVEL` (4.0), `..._REPEAT_SEQ_HEADER`
//!    (SPS/PPS before every IDR); FWHT only `..._GOP_SIZE`. A driver refusing an optional control
//!    is logged.
//! 7. `VIDIOC_REQBUFS` (MMAP) on both queues, `VIDIOC_QUERYBUF` + `mmap` for each buffer.
//! 8. `VIDIOC_QBUF` every CAPTURE buffer, `VIDIOC_STREAMON` OUTPUT and CAPTURE.
//! 9. Per frame: reclaim a free OUTPUT buffer (`VIDIOC_DQBUF` OUTPUT), copy the I420 frame in,
//!    `VIDIOC_QBUF` it with the frame index as timestamp; then `VIDIOC_DQBUF` every ready CAPTURE
//!    buffer (its `V4L2_BUF_FLAG_KEYFRAME` marks key frames), copy out `bytesused`, re-queue it.
//! 10. Keyframe on request: `VIDIOC_S_EXT_CTRLS` `V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME` before
//!     queueing the frame. Bitrate while running: `VIDIOC_S_EXT_CTRLS` `..._BITRATE`.
//! 11. Drain: `VIDIOC_ENCODER_CMD` `V4L2_ENC_CMD_STOP`, dequeue CAPTURE until
//!     `V4L2_BUF_FLAG_LAST`, `VIDIOC_STREAMOFF` both queues.
//! 12. Resolution change ([`StatefulEncoder::reconfigure`]): drain, `VIDIOC_STREAMOFF` both,
//!     unmap and `VIDIOC_REQBUFS` 0 on both, then steps 3-8 with the new size.
//!
//! A device that vanishes (driver unbound, module removed, USB unplugged) answers `ENODEV` or
//! `POLLERR`: that is a [`MediaError::DeviceGone`](crate::error::MediaError::DeviceGone), never a
//! panic or a wait without end.

pub mod fake;
pub mod linux;
mod stateful;

use std::time::Duration;

pub use stateful::{layout_i420, CodedFrame, M2mEncoder, StatefulEncoder};

use super::VideoCodec;
use crate::error::MediaError;

/// A coded format an M2M codec speaks on its coded queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodedFormat {
    /// H.264 Annex B (`H264`): the Raspberry Pi's `bcm2835-codec`.
    H264,
    /// The kernel's Fast Walsh-Hadamard Transform codec (`FWHT`): `vicodec`, for tests.
    Fwht,
}

impl CodedFormat {
    /// The V4L2 fourcc.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            CodedFormat::H264 => *b"H264",
            CodedFormat::Fwht => *b"FWHT",
        }
    }
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            CodedFormat::H264 => "H.264",
            CodedFormat::Fwht => "FWHT",
        }
    }
    /// The RTP video codec this format is sent as, if any (FWHT is never sent).
    pub fn video_codec(self) -> Option<VideoCodec> {
        match self {
            CodedFormat::H264 => Some(VideoCodec::H264),
            CodedFormat::Fwht => None,
        }
    }
    /// The codec controls an encoder sets for `config`: (control, value, mandatory).
    pub fn controls(self, config: &super::EncoderConfig) -> Vec<(Control, i32, bool)> {
        let gop = config.keyframe_interval as i32;
        match self {
            CodedFormat::H264 => vec![
                (Control::Bitrate, config.bitrate_bps as i32, true),
                (Control::H264IPeriod, gop, false),
                (Control::GopSize, gop, false),
                (Control::H264Profile, PROFILE_CONSTRAINED_BASELINE, false),
                (Control::H264Level, LEVEL_4_0, false),
                (Control::RepeatSeqHeader, 1, false),
            ],
            CodedFormat::Fwht => vec![(Control::GopSize, gop, false)],
        }
    }
    /// Whether the format has a bitrate control (FWHT has a fixed quantiser instead).
    pub fn has_bitrate(self) -> bool {
        matches!(self, CodedFormat::H264)
    }
}

impl std::fmt::Display for CodedFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for CodedFormat {
    type Err = MediaError;
    fn from_str(s: &str) -> Result<Self, MediaError> {
        match s.to_ascii_lowercase().as_str() {
            "h264" | "h.264" => Ok(CodedFormat::H264),
            "fwht" => Ok(CodedFormat::Fwht),
            other => Err(MediaError::Config(format!("unknown coded format {other:?} (h264, fwht)"))),
        }
    }
}

/// Which way a device codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Raw frames in on OUTPUT, coded out on CAPTURE.
    Encoder,
    /// Coded in on OUTPUT, raw frames out on CAPTURE.
    Decoder,
}

/// The two queues of an M2M device, named as V4L2 names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Queue {
    /// Into the device (raw frames for an encoder, coded for a decoder).
    Output,
    /// Out of the device (coded for an encoder, raw frames for a decoder).
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
    /// Fourcc (`H264`, `FWHT` or `YU12`).
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

/// A dequeued CAPTURE buffer (coded data from an encoder, a raw frame from a decoder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodedBuffer {
    /// Buffer index (to queue it again).
    pub index: u32,
    /// `bytesused` bytes.
    pub data: Vec<u8>,
    /// `V4L2_BUF_FLAG_KEYFRAME`.
    pub keyframe: bool,
    /// `V4L2_BUF_FLAG_LAST` (end of stream after a stop command, or before a resolution change).
    pub last: bool,
    /// The timestamp the matching OUTPUT buffer was queued with.
    pub timestamp_us: u64,
}

/// A selection target (`V4L2_SEL_TGT_*`): the visible rectangle of a padded buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SelectionTarget {
    /// `V4L2_SEL_TGT_CROP` on an encoder's OUTPUT queue: the part of the raw buffer coded.
    Crop,
    /// `V4L2_SEL_TGT_COMPOSE` on a decoder's CAPTURE queue: the part of the raw buffer holding the picture.
    Compose,
}

/// A V4L2 event a decoder waits for (`VIDIOC_DQEVENT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum M2mEvent {
    /// `V4L2_EVENT_SOURCE_CHANGE` with `V4L2_EVENT_SRC_CH_RESOLUTION`: new CAPTURE format.
    SourceChange,
    /// `V4L2_EVENT_EOS`.
    Eos,
    /// Another event (its V4L2 type).
    Other(u32),
}

fn unsupported(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::Unsupported, format!("{what}: not supported by this device"))
}

/// The ioctl-level seam between the codec logic and a V4L2 M2M device.
pub trait M2mDevice: Send {
    /// Device path for messages.
    fn path(&self) -> String;
    /// `VIDIOC_QUERYCAP`.
    fn query_caps(&mut self) -> std::io::Result<M2mCaps>;
    /// `VIDIOC_ENUM_FMT` until `EINVAL`.
    fn enum_formats(&mut self, queue: Queue) -> std::io::Result<Vec<[u8; 4]>>;
    /// `VIDIOC_S_FMT`; returns what the driver set.
    fn set_format(&mut self, queue: Queue, format: QueueFormat) -> std::io::Result<QueueFormat>;
    /// `VIDIOC_G_FMT`.
    fn get_format(&mut self, _queue: Queue) -> std::io::Result<QueueFormat> {
        Err(unsupported("VIDIOC_G_FMT"))
    }
    /// `VIDIOC_S_SELECTION` of a `width` x `height` rectangle at (0, 0); returns the size the
    /// driver set (it clamps to its limits).
    fn set_selection(
        &mut self,
        _queue: Queue,
        _target: SelectionTarget,
        _width: u32,
        _height: u32,
    ) -> std::io::Result<(u32, u32)> {
        Err(unsupported("VIDIOC_S_SELECTION"))
    }
    /// `VIDIOC_G_SELECTION`: the rectangle's width and height.
    fn get_selection(&mut self, _queue: Queue, _target: SelectionTarget) -> std::io::Result<(u32, u32)> {
        Err(unsupported("VIDIOC_G_SELECTION"))
    }
    /// `VIDIOC_S_PARM` on OUTPUT.
    fn set_frame_rate(&mut self, fps: u32) -> std::io::Result<()>;
    /// `VIDIOC_S_EXT_CTRLS` with one control.
    fn set_control(&mut self, control: Control, value: i32) -> std::io::Result<()>;
    /// `VIDIOC_REQBUFS` (MMAP) + `VIDIOC_QUERYBUF` + `mmap`; returns the count granted. Count 0
    /// unmaps and frees the queue's buffers.
    fn request_buffers(&mut self, queue: Queue, count: u32) -> std::io::Result<u32>;
    /// `VIDIOC_QBUF` of a CAPTURE buffer.
    fn queue_capture(&mut self, index: u32) -> std::io::Result<()>;
    /// Copies `data` (already laid out for the negotiated OUTPUT format) into OUTPUT buffer
    /// `index` and `VIDIOC_QBUF`s it with `bytesused = data.len()`.
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
    /// `VIDIOC_DECODER_CMD` `V4L2_DEC_CMD_STOP`.
    fn decoder_stop(&mut self) -> std::io::Result<()> {
        Err(unsupported("VIDIOC_DECODER_CMD"))
    }
    /// `VIDIOC_SUBSCRIBE_EVENT` for `V4L2_EVENT_SOURCE_CHANGE` and `V4L2_EVENT_EOS`.
    fn subscribe_events(&mut self) -> std::io::Result<()> {
        Err(unsupported("VIDIOC_SUBSCRIBE_EVENT"))
    }
    /// `VIDIOC_DQEVENT`, waiting at most `timeout` (poll `POLLPRI`).
    fn dequeue_event(&mut self, _timeout: Duration) -> std::io::Result<Option<M2mEvent>> {
        Err(unsupported("VIDIOC_DQEVENT"))
    }
}

/// The error for a failed ioctl: `ENODEV` (and `POLLERR`, reported as `ENODEV`) means the device
/// vanished ([`MediaError::DeviceGone`]); anything else is a codec error naming the step.
pub fn device_error(codec: &'static str, path: &str, what: &str, e: std::io::Error) -> MediaError {
    if e.raw_os_error() == Some(libc::ENODEV) {
        MediaError::DeviceGone(path.into())
    } else {
        MediaError::encoder(codec, format!("{path}: {what}: {e}"))
    }
}

/// What the probe found on one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct M2mProbe {
    /// Device path.
    pub path: String,
    /// Driver and card.
    pub name: String,
    /// Formats on CAPTURE.
    pub coded_formats: Vec<String>,
    /// Formats on OUTPUT.
    pub raw_formats: Vec<String>,
    /// Usable as the codec asked for.
    pub usable: bool,
    /// Why (not).
    pub reason: String,
}

pub(crate) fn fourcc_str(cc: &[u8; 4]) -> String {
    String::from_utf8_lossy(cc).trim_end().to_string()
}

/// Checks one device: is it an M2M encoder with H.264 out and YU12 in?
pub fn probe_device(dev: &mut dyn M2mDevice) -> M2mProbe {
    probe_codec(dev, CodedFormat::H264, Role::Encoder)
}

/// Checks one device: is it an M2M `role` for `format` (the coded fourcc on CAPTURE and YU12 on
/// OUTPUT for an encoder, the other way round for a decoder)? `coded_formats` and `raw_formats`
/// list CAPTURE and OUTPUT.
pub fn probe_codec(dev: &mut dyn M2mDevice, format: CodedFormat, role: Role) -> M2mProbe {
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
    let cc = fourcc_str(&format.fourcc());
    let (coded_q, raw_q, coded_name, raw_name) = match role {
        Role::Encoder => (&p.coded_formats, &p.raw_formats, "CAPTURE", "OUTPUT"),
        Role::Decoder => (&p.raw_formats, &p.coded_formats, "OUTPUT", "CAPTURE"),
    };
    let coded = coded_q.contains(&cc);
    let yu12 = raw_q.iter().any(|f| f == "YU12");
    p.usable = coded && yu12;
    let what = match role {
        Role::Encoder => "encoder",
        Role::Decoder => "decoder",
    };
    p.reason = match (coded, yu12) {
        (true, true) => format!("M2M {what} with {cc} on {coded_name} and YU12 on {raw_name}"),
        (false, _) => format!("M2M device without {cc} on its {coded_name} queue (not a {cc} {what})"),
        (true, false) => format!("{cc} {what} without YU12 on {raw_name}"),
    };
    p
}

/// The `/dev/video*` nodes, sorted.
pub fn video_nodes() -> Vec<std::path::PathBuf> {
    let mut paths: Vec<_> =
        std::fs::read_dir("/dev").map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
    paths.retain(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("video")));
    paths.sort();
    paths
}

/// Probes every `/dev/video*` on this machine as an H.264 encoder.
pub fn probe() -> Vec<M2mProbe> {
    probe_all(CodedFormat::H264, Role::Encoder)
}

/// Probes every `/dev/video*` on this machine as a `format` `role`.
pub fn probe_all(format: CodedFormat, role: Role) -> Vec<M2mProbe> {
    video_nodes()
        .iter()
        .map(|p| match linux::LinuxM2m::open(p) {
            Ok(mut dev) => probe_codec(&mut dev, format, role),
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

/// The first usable hardware H.264 encoder, if any.
pub fn find_encoder() -> Option<M2mProbe> {
    find(CodedFormat::H264, Role::Encoder)
}

/// The first usable `format` `role` on this machine, if any.
pub fn find(format: CodedFormat, role: Role) -> Option<M2mProbe> {
    probe_all(format, role).into_iter().find(|p| p.usable)
}

#[cfg(test)]
mod tests;
