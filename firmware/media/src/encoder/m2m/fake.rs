//! A fake V4L2 M2M encoder (H.264 by default) at the [`M2mDevice`] seam, for tests: it records every
//! ioctl in order, enforces the state rules a real driver enforces (formats before buffers,
//! buffers before streaming, no double queueing), returns encoded frames one frame late (like
//! hardware), emits a recognisable Annex B access unit per frame (SPS+PPS+IDR on keyframes,
//! a P slice otherwise), and can be told to fail after N frames (to test the fallback).

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{CodedBuffer, Control, M2mCaps, M2mDevice, Queue, QueueFormat};

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct FakeSpec {
    /// Formats on CAPTURE.
    pub coded: Vec<[u8; 4]>,
    /// Formats on OUTPUT.
    pub raw: Vec<[u8; 4]>,
    /// Bytes per line the driver imposes on OUTPUT (alignment), e.g. 64.
    pub stride_align: u32,
    /// Height alignment of the OUTPUT buffer.
    pub height_align: u32,
    /// Fail every ioctl with EIO after this many frames were queued.
    pub fail_after: Option<u64>,
}

impl Default for FakeSpec {
    fn default() -> Self {
        FakeSpec {
            coded: vec![*b"H264"],
            raw: vec![*b"YU12", *b"NV12"],
            stride_align: 32,
            height_align: 16,
            fail_after: None,
        }
    }
}

/// Shared view of what the fake saw (the encoder owns the device, the test keeps this).
#[derive(Debug, Default)]
pub struct FakeLog {
    /// Ioctls in order, e.g. `S_FMT CAPTURE H264 320x180`.
    pub calls: Vec<String>,
    /// OUTPUT buffers as queued (laid out data).
    pub frames: Vec<Vec<u8>>,
    /// Bitrate control values set, in order.
    pub bitrates: Vec<i32>,
}

/// The fake device.
pub struct FakeM2m {
    spec: FakeSpec,
    log: Arc<Mutex<FakeLog>>,
    raw: Option<QueueFormat>,
    coded_set: bool,
    output_bufs: u32,
    capture_bufs: u32,
    streaming: (bool, bool),
    capture_free: VecDeque<u32>,
    output_done: VecDeque<u32>,
    /// (timestamp, keyframe) of frames queued, not yet coded.
    pending: VecDeque<(u64, bool)>,
    ready: VecDeque<CodedBuffer>,
    force_key: bool,
    frames_queued: u64,
    gop: u64,
    since_key: u64,
    stopping: bool,
}

impl FakeM2m {
    /// A fake with this behaviour, and the log it writes.
    pub fn new(spec: FakeSpec) -> (Self, Arc<Mutex<FakeLog>>) {
        let log = Arc::new(Mutex::new(FakeLog::default()));
        let dev = FakeM2m {
            spec,
            log: log.clone(),
            raw: None,
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
        };
        (dev, log)
    }

    fn call(&self, s: String) {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).calls.push(s);
    }

    fn failing(&self) -> io::Result<()> {
        match self.spec.fail_after {
            Some(n) if self.frames_queued >= n => Err(io::Error::from_raw_os_error(libc::EIO)),
            _ => Ok(()),
        }
    }

    /// Codes pending frames into free capture buffers: frame k is coded when frame k+1 arrives
    /// (one frame of latency) or on stop.
    fn run(&mut self) {
        while let Some(&(ts, key)) = self.pending.front() {
            if self.pending.len() < 2 && !self.stopping {
                break;
            }
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
        if self.stopping && self.pending.is_empty() {
            if let Some(index) = self.capture_free.pop_front() {
                self.ready.push_back(CodedBuffer { index, data: vec![], keyframe: false, last: true, timestamp_us: 0 });
                self.stopping = false;
            }
        }
    }
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
        "/dev/fake-m2m".into()
    }
    fn query_caps(&mut self) -> io::Result<M2mCaps> {
        self.call("QUERYCAP".into());
        Ok(M2mCaps { driver: "fake-codec".into(), card: "fake encoder".into(), m2m: true, streaming: true })
    }
    fn enum_formats(&mut self, queue: Queue) -> io::Result<Vec<[u8; 4]>> {
        self.call(format!("ENUM_FMT {}", name(queue)));
        Ok(match queue {
            Queue::Capture => self.spec.coded.clone(),
            Queue::Output => self.spec.raw.clone(),
        })
    }
    fn set_format(&mut self, queue: Queue, f: QueueFormat) -> io::Result<QueueFormat> {
        self.call(format!("S_FMT {} {} {}x{}", name(queue), String::from_utf8_lossy(&f.fourcc), f.width, f.height));
        if self.output_bufs > 0 || self.capture_bufs > 0 {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        match queue {
            Queue::Capture => {
                if !self.spec.coded.contains(&f.fourcc) {
                    return Err(einval());
                }
                self.coded_set = true;
                Ok(f)
            }
            Queue::Output => {
                if !self.coded_set || !self.spec.raw.contains(&f.fourcc) {
                    return Err(einval());
                }
                let stride = align(f.width, self.spec.stride_align);
                let rows = align(f.height, self.spec.height_align);
                let g = QueueFormat { bytesperline: stride, sizeimage: stride * rows * 3 / 2, ..f };
                self.raw = Some(g);
                Ok(g)
            }
        }
    }
    fn set_frame_rate(&mut self, fps: u32) -> io::Result<()> {
        self.call(format!("S_PARM OUTPUT 1/{fps}"));
        Ok(())
    }
    fn set_control(&mut self, control: Control, value: i32) -> io::Result<()> {
        self.failing()?;
        self.call(format!("S_EXT_CTRLS {control:?}={value}"));
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
        match queue {
            Queue::Output if self.raw.is_some() => self.output_bufs = count,
            Queue::Capture if self.coded_set => self.capture_bufs = count,
            _ => return Err(einval()),
        }
        Ok(count)
    }
    fn queue_capture(&mut self, index: u32) -> io::Result<()> {
        if index >= self.capture_bufs || self.capture_free.contains(&index) {
            return Err(einval());
        }
        self.capture_free.push_back(index);
        self.run();
        Ok(())
    }
    fn queue_output(&mut self, index: u32, data: &[u8], ts: u64) -> io::Result<()> {
        self.failing()?;
        let raw = self.raw.ok_or_else(einval)?;
        if index >= self.output_bufs || !self.streaming.0 || data.len() < raw.sizeimage as usize {
            return Err(einval());
        }
        self.call(format!("QBUF OUTPUT {index} ts={ts}"));
        self.log.lock().unwrap_or_else(|e| e.into_inner()).frames.push(data.to_vec());
        let key = self.frames_queued == 0 || std::mem::take(&mut self.force_key) || self.since_key + 1 >= self.gop;
        self.since_key = if key { 0 } else { self.since_key + 1 };
        self.frames_queued += 1;
        self.pending.push_back((ts, key));
        self.output_done.push_back(index);
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
        Ok(self.ready.pop_front())
    }
    fn stream_on(&mut self, queue: Queue) -> io::Result<()> {
        self.call(format!("STREAMON {}", name(queue)));
        match queue {
            Queue::Output if self.output_bufs > 0 => self.streaming.0 = true,
            Queue::Capture if self.capture_bufs > 0 => self.streaming.1 = true,
            _ => return Err(einval()),
        }
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
        self.stopping = true;
        self.run();
        Ok(())
    }
}
