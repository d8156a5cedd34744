//! A fake V4L2 M2M stateful codec at the [`M2mDevice`] seam, for the encoder's and the
//! decoder's tests: it records every ioctl in order, enforces the state rules a real driver
//! enforces (formats before buffers, buffers before streaming, no double queueing), pads the
//! raw layout as a driver does (line and height alignment, a coded-size alignment and minimum
//! with a crop or compose rectangle, like vicodec), and can be told to fail after N frames.
//!
//! As an encoder ([`Role::Encoder`], H.264 by default) it returns coded frames one frame late
//! (like hardware): a recognisable Annex B access unit per frame (SPS+PPS+IDR on keyframes, a
//! P slice otherwise). As a decoder ([`Role::Decoder`]) it decodes the toy format of
//! [`toy_frame`] (size, then packed I420): a new size in the stream raises
//! `V4L2_EVENT_SOURCE_CHANGE` and ends the frames before it with a LAST buffer, after which
//! CAPTURE answers `EPIPE` until it is set up again.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{CodedBuffer, Control, M2mCaps, M2mDevice, M2mEvent, Queue, QueueFormat, Role, SelectionTarget};
use crate::frame::VideoFrame;

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct FakeSpec {
    /// Encoder or decoder.
    pub role: Role,
    /// Coded formats (CAPTURE of an encoder, OUTPUT of a decoder).
    pub coded: Vec<[u8; 4]>,
    /// Raw formats (OUTPUT of an encoder, CAPTURE of a decoder).
    pub raw: Vec<[u8; 4]>,
    /// Bytes per line the driver imposes on raw buffers (alignment), e.g. 64.
    pub stride_align: u32,
    /// Height alignment of raw buffers (in `sizeimage` only, like bcm2835-codec).
    pub height_align: u32,
    /// Coded-size alignment of raw buffers: their width and height are rounded up to it
    /// (vicodec: 16), the picture is a crop (encoder) or compose (decoder) rectangle.
    pub coded_align: u32,
    /// The smallest coded and visible size (vicodec: 640x360); (0, 0): none.
    pub min_size: (u32, u32),
    /// Whether `VIDIOC_S/G_SELECTION` (encoder OUTPUT crop, decoder CAPTURE compose) works.
    pub selection: bool,
    /// Fail every frame ioctl with `fail_errno` once this many frames were queued.
    pub fail_after: Option<u64>,
    /// The errno of those failures (`EIO`; `ENODEV` for a device that vanished).
    pub fail_errno: i32,
}

impl Default for FakeSpec {
    fn default() -> Self {
        FakeSpec {
            role: Role::Encoder,
            coded: vec![*b"H264"],
            raw: vec![*b"YU12", *b"NV12"],
            stride_align: 32,
            height_align: 16,
            coded_align: 1,
            min_size: (0, 0),
            selection: true,
            fail_after: None,
            fail_errno: libc::EIO,
        }
    }
}

impl FakeSpec {
    /// A decoder of the toy format, its fourcc `FWHT`, lines padded to 32.
    pub fn decoder() -> Self {
        FakeSpec { role: Role::Decoder, coded: vec![*b"FWHT"], raw: vec![*b"YU12"], height_align: 1, ..Self::default() }
    }
}

/// The toy coded format the fake decoder decodes: width and height (big-endian u16), then the
/// frame's packed I420 bytes.
pub fn toy_frame(frame: &VideoFrame) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + frame.data.len());
    v.extend_from_slice(&(frame.width as u16).to_be_bytes());
    v.extend_from_slice(&(frame.height as u16).to_be_bytes());
    v.extend_from_slice(&frame.data);
    v
}

/// Shared view of what the fake saw (the codec owns the device, the test keeps this).
#[derive(Debug, Default)]
pub struct FakeLog {
    /// Ioctls in order, e.g. `S_FMT CAPTURE H264 320x180`.
    pub calls: Vec<String>,
    /// OUTPUT buffers as queued (laid out raw frames for an encoder, coded for a decoder).
    pub frames: Vec<Vec<u8>>,
    /// Bitrate control values set, in order.
    pub bitrates: Vec<i32>,
}

/// A frame queued on OUTPUT, not yet coded or decoded.
struct Pending {
    index: u32,
    timestamp: u64,
    /// Encoder: whether it becomes a key frame. Decoder: unused.
    key: bool,
    /// Decoder: the coded bytes.
    data: Vec<u8>,
}

/// The fake device.
pub struct FakeM2m {
    spec: FakeSpec,
    log: Arc<Mutex<FakeLog>>,
    /// The raw queue's format (OUTPUT of an encoder, CAPTURE of a decoder).
    raw: Option<QueueFormat>,
    /// The picture's size in the raw buffers (crop or compose rectangle).
    visible: (u32, u32),
    coded_set: bool,
    output_bufs: u32,
    capture_bufs: u32,
    streaming: (bool, bool),
    capture_free: VecDeque<u32>,
    output_done: VecDeque<u32>,
    pending: VecDeque<Pending>,
    ready: VecDeque<CodedBuffer>,
    force_key: bool,
    frames_queued: u64,
    gop: u64,
    since_key: u64,
    stopping: bool,
    /// Decoder: events subscribed.
    subscribed: bool,
    /// Decoder: the size the stream's last header announced.
    stream: Option<(u32, u32)>,
    /// Decoder: a LAST buffer was returned; CAPTURE must be restarted.
    halted: bool,
    events: VecDeque<M2mEvent>,
}

impl FakeM2m {
    /// A fake with this behaviour, and the log it writes.
    pub fn new(spec: FakeSpec) -> (Self, Arc<Mutex<FakeLog>>) {
        let log = Arc::new(Mutex::new(FakeLog::default()));
        let dev = FakeM2m {
            spec,
            log: log.clone(),
            raw: None,
            visible: (0, 0),
            coded_set: false,
            output_bufs: 0,
            capture_bufs: 0,
            streaming: (false, false),
            capture_free: VecDeque::new(),
            output_done: VecDeque::new(),
            pending: VecDeque::new(),
            ready: VecDeque::new(),
            force_key: false,
            frames_queued: 0,
            gop: 60,
            since_key: 0,
            stopping: false,
            subscribed: false,
            stream: None,
            halted: false,
            events: VecDeque::new(),
        };
        (dev, log)
    }

    fn call(&self, s: String) {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).calls.push(s);
    }

    fn failing(&self) -> io::Result<()> {
        match self.spec.fail_after {
            Some(n) if self.frames_queued >= n => Err(io::Error::from_raw_os_error(self.spec.fail_errno)),
            _ => Ok(()),
        }
    }

    fn decoder(&self) -> bool {
        self.spec.role == Role::Decoder
    }

    /// The raw layout the driver answers for a `width` x `height` picture: the coded size
    /// (aligned, at least the minimum), lines and `sizeimage` padded.
    fn raw_layout(&self, fourcc: [u8; 4], width: u32, height: u32) -> QueueFormat {
        let width = align(width.max(self.spec.min_size.0), self.spec.coded_align);
        let height = align(height.max(self.spec.min_size.1), self.spec.coded_align);
        let stride = align(width, self.spec.stride_align);
        let rows = align(height, self.spec.height_align);
        QueueFormat { fourcc, width, height, bytesperline: stride, sizeimage: stride * rows * 3 / 2 }
    }

    fn run(&mut self) {
        if self.decoder() {
            self.run_decoder()
        } else {
            self.run_encoder()
        }
    }

    /// Codes pending frames into free capture buffers: frame k is coded when frame k+1 arrives
    /// (one frame of latency) or on stop.
    fn run_encoder(&mut self) {
        while let Some(p) = self.pending.front() {
            if self.pending.len() < 2 && !self.stopping {
                break;
            }
            let (ts, key) = (p.timestamp, p.key);
            let Some(index) = self.capture_free.pop_front() else { break };
            self.pending.pop_front();
            let data = if key {
                [
                    &[0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e][..],
                    &[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80],
                    &[0, 0, 0, 1, 0x65, 0x88, 0x84, (ts & 0xff) as u8],
                ]
                .concat()
            } else {
                vec![0, 0, 0, 1, 0x41, 0x9a, 0x02, (ts & 0xff) as u8]
            };
            self.ready.push_back(CodedBuffer { index, data, keyframe: key, last: false, timestamp_us: ts });
        }
        if self.stopping && self.pending.is_empty() && self.push_last() {
            self.stopping = false;
        }
    }

    /// An empty LAST buffer, if a CAPTURE buffer is free (a decoder's CAPTURE then halts).
    fn push_last(&mut self) -> bool {
        let Some(index) = self.capture_free.pop_front() else { return false };
        self.ready.push_back(CodedBuffer { index, data: vec![], keyframe: false, last: true, timestamp_us: 0 });
        self.halted = self.decoder();
        true
    }

    /// Decodes pending toy frames into free CAPTURE buffers laid out as negotiated.
    fn run_decoder(&mut self) {
        while let Some(p) = self.pending.front() {
            let Some(size) = toy_size(&p.data) else {
                // Not a toy frame: dropped, its buffer done.
                let index = p.index;
                self.pending.pop_front();
                self.output_done.push_back(index);
                continue;
            };
            if self.stream != Some(size) {
                // A new header: the frames before it end with a LAST buffer, then the event.
                if self.stream.is_some() && self.streaming.1 && !self.halted {
                    if self.capture_free.is_empty() {
                        return;
                    }
                    self.push_last();
                }
                self.stream = Some(size);
                self.events.push_back(M2mEvent::SourceChange);
            }
            let negotiated = self.raw.is_some_and(|r| (r.width, r.height) == self.coded_size(size));
            if !self.streaming.1 || self.halted || !negotiated {
                return;
            }
            let Some(raw) = self.raw else { return };
            let Some(index) = self.capture_free.pop_front() else { return };
            let Some(p) = self.pending.pop_front() else { return };
            let f = VideoFrame {
                width: size.0,
                height: size.1,
                data: p.data[4..].to_vec(),
                index: p.timestamp,
                captured_at: Instant::now(),
            };
            let data = if f.data.len() == VideoFrame::i420_len(size.0, size.1) {
                super::layout_i420(&f, raw.bytesperline as usize, raw.sizeimage as usize)
            } else {
                vec![]
            };
            self.ready.push_back(CodedBuffer { index, data, keyframe: true, last: false, timestamp_us: p.timestamp });
            self.output_done.push_back(p.index);
        }
        if self.stopping && self.streaming.1 && !self.halted && self.push_last() {
            self.stopping = false;
        }
    }

    /// The coded (buffer) size for a picture size.
    fn coded_size(&self, (w, h): (u32, u32)) -> (u32, u32) {
        let f = self.raw_layout(*b"YU12", w, h);
        (f.width, f.height)
    }
}

fn toy_size(data: &[u8]) -> Option<(u32, u32)> {
    let b = data.get(..4)?;
    Some((u32::from(u16::from_be_bytes([b[0], b[1]])), u32::from(u16::from_be_bytes([b[2], b[3]]))))
}

fn name(q: Queue) -> &'static str {
    match q {
        Queue::Output => "OUTPUT",
        Queue::Capture => "CAPTURE",
    }
}

fn einval() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
}

fn align(v: u32, a: u32) -> u32 {
    v.div_ceil(a.max(1)) * a.max(1)
}

impl M2mDevice for FakeM2m {
    fn path(&self) -> String {
        if self.decoder() { "/dev/fake-dec" } else { "/dev/fake-m2m" }.into()
    }
    fn query_caps(&mut self) -> io::Result<M2mCaps> {
        self.call("QUERYCAP".into());
        let card = if self.decoder() { "fake decoder" } else { "fake encoder" };
        Ok(M2mCaps { driver: "fake-codec".into(), card: card.into(), m2m: true, streaming: true })
    }
    fn enum_formats(&mut self, queue: Queue) -> io::Result<Vec<[u8; 4]>> {
        self.call(format!("ENUM_FMT {}", name(queue)));
        Ok(match (queue, self.spec.role) {
            (Queue::Capture, Role::Encoder) | (Queue::Output, Role::Decoder) => self.spec.coded.clone(),
            _ => self.spec.raw.clone(),
        })
    }
    fn set_format(&mut self, queue: Queue, f: QueueFormat) -> io::Result<QueueFormat> {
        self.call(format!("S_FMT {} {} {}x{}", name(queue), String::from_utf8_lossy(&f.fourcc), f.width, f.height));
        let coded_queue = if self.decoder() { Queue::Output } else { Queue::Capture };
        let busy = match queue {
            Queue::Output => self.output_bufs > 0,
            Queue::Capture => self.capture_bufs > 0,
        };
        if busy || (!self.decoder() && (self.output_bufs > 0 || self.capture_bufs > 0)) {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        if queue == coded_queue {
            if !self.spec.coded.contains(&f.fourcc) {
                return Err(einval());
            }
            self.coded_set = true;
            return Ok(QueueFormat { sizeimage: f.sizeimage.max(1 << 20), ..f });
        }
        if !self.spec.raw.contains(&f.fourcc) {
            return Err(einval());
        }
        if self.decoder() {
            // CAPTURE only at the stream's coded size, once the header was seen.
            let Some(stream) = self.stream else { return Err(einval()) };
            if (f.width, f.height) != self.coded_size(stream) {
                return Err(einval());
            }
            let g = self.raw_layout(f.fourcc, stream.0, stream.1);
            self.raw = Some(g);
            self.visible = stream;
            return Ok(g);
        }
        if !self.coded_set {
            return Err(einval());
        }
        let g = self.raw_layout(f.fourcc, f.width, f.height);
        self.raw = Some(g);
        self.visible = (g.width, g.height);
        Ok(g)
    }
    fn get_format(&mut self, queue: Queue) -> io::Result<QueueFormat> {
        self.call(format!("G_FMT {}", name(queue)));
        match (queue, self.spec.role) {
            (Queue::Capture, Role::Decoder) => {
                let (w, h) = self.stream.ok_or_else(einval)?;
                Ok(self.raw_layout(*b"YU12", w, h))
            }
            (Queue::Output, Role::Encoder) => self.raw.ok_or_else(einval),
            _ => Err(einval()),
        }
    }
    fn set_selection(&mut self, queue: Queue, target: SelectionTarget, w: u32, h: u32) -> io::Result<(u32, u32)> {
        self.call(format!("S_SELECTION {} {target:?} {w}x{h}", name(queue)));
        let raw = self.raw.ok_or_else(einval)?;
        if !self.spec.selection || self.decoder() || queue != Queue::Output || target != SelectionTarget::Crop {
            return Err(einval());
        }
        // Like vicodec: clamped between the minimum and the coded size.
        let (min_w, min_h) = self.spec.min_size;
        self.visible = (w.clamp(min_w.min(raw.width), raw.width), h.clamp(min_h.min(raw.height), raw.height));
        Ok(self.visible)
    }
    fn get_selection(&mut self, queue: Queue, target: SelectionTarget) -> io::Result<(u32, u32)> {
        self.call(format!("G_SELECTION {} {target:?}", name(queue)));
        let raw_queue = if self.decoder() { Queue::Capture } else { Queue::Output };
        let want = if self.decoder() { SelectionTarget::Compose } else { SelectionTarget::Crop };
        if !self.spec.selection || self.raw.is_none() || queue != raw_queue || target != want {
            return Err(einval());
        }
        Ok(self.visible)
    }
    fn set_frame_rate(&mut self, fps: u32) -> io::Result<()> {
        self.call(format!("S_PARM OUTPUT 1/{fps}"));
        Ok(())
    }
    fn set_control(&mut self, control: Control, value: i32) -> io::Result<()> {
        self.failing()?;
        self.call(format!("S_EXT_CTRLS {control:?}={value}"));
        if self.decoder() {
            return Err(einval());
        }
        match control {
            Control::Bitrate => self.log.lock().unwrap_or_else(|e| e.into_inner()).bitrates.push(value),
            Control::ForceKeyFrame => self.force_key = true,
            Control::GopSize | Control::H264IPeriod => self.gop = value.max(1) as u64,
            Control::H264Level => return Err(einval()), // like a driver without level control
            _ => {}
        }
        Ok(())
    }
    fn request_buffers(&mut self, queue: Queue, count: u32) -> io::Result<u32> {
        self.call(format!("REQBUFS {} {count}", name(queue)));
        if (queue == Queue::Output && self.streaming.0) || (queue == Queue::Capture && self.streaming.1) {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        let raw_queue = if self.decoder() { Queue::Capture } else { Queue::Output };
        let ready = if queue == raw_queue { self.raw.is_some() || count == 0 } else { self.coded_set };
        if !ready {
            return Err(einval());
        }
        match queue {
            Queue::Output => self.output_bufs = count,
            Queue::Capture => {
                self.capture_bufs = count;
                self.capture_free.clear();
            }
        }
        if queue == raw_queue && count == 0 && self.decoder() {
            self.raw = None;
        }
        Ok(count)
    }
    fn queue_capture(&mut self, index: u32) -> io::Result<()> {
        self.failing()?;
        if index >= self.capture_bufs || self.capture_free.contains(&index) {
            return Err(einval());
        }
        self.capture_free.push_back(index);
        self.run();
        Ok(())
    }
    fn queue_output(&mut self, index: u32, data: &[u8], ts: u64) -> io::Result<()> {
        self.failing()?;
        if index >= self.output_bufs || !self.streaming.0 {
            return Err(einval());
        }
        if self.decoder() {
            if !self.subscribed || data.len() < 4 {
                return Err(einval());
            }
        } else {
            let raw = self.raw.ok_or_else(einval)?;
            if data.len() < raw.sizeimage as usize {
                return Err(einval());
            }
        }
        self.call(format!("QBUF OUTPUT {index} ts={ts}"));
        self.log.lock().unwrap_or_else(|e| e.into_inner()).frames.push(data.to_vec());
        let key = self.frames_queued == 0 || std::mem::take(&mut self.force_key) || self.since_key + 1 >= self.gop;
        self.since_key = if key { 0 } else { self.since_key + 1 };
        self.frames_queued += 1;
        self.pending.push_back(Pending { index, timestamp: ts, key, data: data.to_vec() });
        if !self.decoder() {
            // The encoder has read the raw frame: its buffer is done at once.
            self.output_done.push_back(index);
        }
        self.run();
        Ok(())
    }
    fn dequeue_output(&mut self, _timeout: Duration) -> io::Result<Option<u32>> {
        self.failing()?;
        Ok(self.output_done.pop_front())
    }
    fn dequeue_capture(&mut self, _timeout: Duration) -> io::Result<Option<CodedBuffer>> {
        self.failing()?;
        if !self.streaming.1 {
            return Err(einval());
        }
        if self.ready.is_empty() && self.halted {
            return Err(io::Error::from_raw_os_error(libc::EPIPE));
        }
        Ok(self.ready.pop_front())
    }
    fn stream_on(&mut self, queue: Queue) -> io::Result<()> {
        self.call(format!("STREAMON {}", name(queue)));
        match queue {
            Queue::Output if self.output_bufs > 0 => self.streaming.0 = true,
            Queue::Capture if self.capture_bufs > 0 => {
                self.streaming.1 = true;
                self.halted = false;
            }
            _ => return Err(einval()),
        }
        self.run();
        Ok(())
    }
    fn stream_off(&mut self, queue: Queue) -> io::Result<()> {
        self.call(format!("STREAMOFF {}", name(queue)));
        // Like vb2: every buffer of the queue back to the application.
        match queue {
            Queue::Output => {
                self.streaming.0 = false;
                self.output_done.clear();
                self.pending.clear();
            }
            Queue::Capture => {
                self.streaming.1 = false;
                self.capture_free.clear();
                self.ready.clear();
            }
        }
        Ok(())
    }
    fn encoder_stop(&mut self) -> io::Result<()> {
        self.call("ENCODER_CMD STOP".into());
        if self.decoder() {
            return Err(einval());
        }
        self.stopping = true;
        self.run();
        Ok(())
    }
    fn decoder_stop(&mut self) -> io::Result<()> {
        self.call("DECODER_CMD STOP".into());
        if !self.decoder() {
            return Err(einval());
        }
        self.stopping = true;
        self.run();
        Ok(())
    }
    fn subscribe_events(&mut self) -> io::Result<()> {
        self.call("SUBSCRIBE_EVENT".into());
        self.subscribed = true;
        Ok(())
    }
    fn dequeue_event(&mut self, _timeout: Duration) -> io::Result<Option<M2mEvent>> {
        self.failing()?;
        Ok(self.events.pop_front())
    }
}
