//! Tests of the stateful decoder against a fake decoder device: initial source change, a
//! dynamic resolution change (LAST buffer, CAPTURE set up again), drain, a vanishing device.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::camera::synthetic::SyntheticCamera;
use crate::encoder::m2m::{CodedBuffer, Control, M2mCaps};

/// The fake's "coded" format: width and height (big-endian u16), then packed I420.
fn toy(frame: &VideoFrame) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(frame.width as u16).to_be_bytes());
    v.extend_from_slice(&(frame.height as u16).to_be_bytes());
    v.extend_from_slice(&frame.data);
    v
}

#[derive(Default)]
struct Fake {
    calls: Arc<Mutex<Vec<String>>>,
    subscribed: bool,
    output_bufs: u32,
    capture_bufs: u32,
    capture_size: Option<(u32, u32)>,
    capture_streaming: bool,
    stream: Option<(u32, u32)>,
    /// A LAST buffer was returned: CAPTURE must be restarted.
    halted: bool,
    pending: VecDeque<(u32, Vec<u8>, u64)>,
    capture_free: VecDeque<u32>,
    ready: VecDeque<CodedBuffer>,
    output_done: VecDeque<u32>,
    events: VecDeque<M2mEvent>,
    stopping: bool,
    gone_after: Option<usize>,
    queued: usize,
}

const STRIDE_ALIGN: u32 = 32;

impl Fake {
    fn call(&self, s: String) {
        self.calls.lock().unwrap().push(s);
    }
    fn gone(&self) -> io::Result<()> {
        match self.gone_after {
            Some(n) if self.queued >= n => Err(io::Error::from_raw_os_error(libc::ENODEV)),
            _ => Ok(()),
        }
    }
    fn run(&mut self) {
        while let Some((index, data, ts)) = self.pending.front().cloned() {
            let size =
                (u32::from(u16::from_be_bytes([data[0], data[1]])), u32::from(u16::from_be_bytes([data[2], data[3]])));
            if self.stream != Some(size) {
                // A new header: signal it; the frames before it end with a LAST buffer.
                if self.stream.is_some() && self.capture_streaming && !self.halted {
                    let Some(i) = self.capture_free.pop_front() else { return };
                    self.ready.push_back(CodedBuffer {
                        index: i,
                        data: vec![],
                        keyframe: false,
                        last: true,
                        timestamp_us: 0,
                    });
                    self.halted = true;
                }
                self.stream = Some(size);
                self.events.push_back(M2mEvent::SourceChange);
            }
            if !self.capture_streaming || self.halted || self.capture_size != Some(size) {
                return;
            }
            let Some(i) = self.capture_free.pop_front() else { return };
            self.pending.pop_front();
            let f = VideoFrame {
                width: size.0,
                height: size.1,
                data: data[4..].to_vec(),
                index: ts,
                captured_at: Instant::now(),
            };
            let stride = size.0.div_ceil(STRIDE_ALIGN) * STRIDE_ALIGN;
            let laid = crate::encoder::m2m::layout_i420(&f, stride as usize, (stride * size.1 * 3 / 2) as usize);
            self.ready.push_back(CodedBuffer { index: i, data: laid, keyframe: true, last: false, timestamp_us: ts });
            self.output_done.push_back(index);
        }
        if self.stopping && self.capture_streaming && !self.halted {
            if let Some(i) = self.capture_free.pop_front() {
                self.ready.push_back(CodedBuffer {
                    index: i,
                    data: vec![],
                    keyframe: false,
                    last: true,
                    timestamp_us: 0,
                });
                self.halted = true;
                self.stopping = false;
            }
        }
    }
}

fn qname(q: Queue) -> &'static str {
    match q {
        Queue::Output => "OUTPUT",
        Queue::Capture => "CAPTURE",
    }
}

fn einval() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
}

impl M2mDevice for Fake {
    fn path(&self) -> String {
        "/dev/fake-dec".into()
    }
    fn query_caps(&mut self) -> io::Result<M2mCaps> {
        Ok(M2mCaps { driver: "fake".into(), card: "fake decoder".into(), m2m: true, streaming: true })
    }
    fn enum_formats(&mut self, queue: Queue) -> io::Result<Vec<[u8; 4]>> {
        Ok(match queue {
            Queue::Output => vec![*b"FWHT"],
            Queue::Capture => vec![*b"YU12"],
        })
    }
    fn set_format(&mut self, queue: Queue, f: QueueFormat) -> io::Result<QueueFormat> {
        self.call(format!("S_FMT {} {}x{}", qname(queue), f.width, f.height));
        match queue {
            Queue::Output => Ok(QueueFormat { sizeimage: 1 << 20, ..f }),
            Queue::Capture => {
                if self.capture_bufs > 0 || Some((f.width, f.height)) != self.stream {
                    return Err(einval());
                }
                self.capture_size = Some((f.width, f.height));
                let stride = f.width.div_ceil(STRIDE_ALIGN) * STRIDE_ALIGN;
                Ok(QueueFormat { bytesperline: stride, sizeimage: stride * f.height * 3 / 2, ..f })
            }
        }
    }
    fn get_format(&mut self, queue: Queue) -> io::Result<QueueFormat> {
        self.call(format!("G_FMT {}", qname(queue)));
        let (width, height) = self.stream.ok_or_else(einval)?;
        Ok(QueueFormat { fourcc: *b"YU12", width, height, bytesperline: width, sizeimage: 0 })
    }
    fn set_frame_rate(&mut self, _fps: u32) -> io::Result<()> {
        Ok(())
    }
    fn set_control(&mut self, _c: Control, _v: i32) -> io::Result<()> {
        Err(einval())
    }
    fn request_buffers(&mut self, queue: Queue, count: u32) -> io::Result<u32> {
        self.call(format!("REQBUFS {} {count}", qname(queue)));
        match queue {
            Queue::Output => self.output_bufs = count,
            Queue::Capture if self.capture_streaming => return Err(io::Error::from_raw_os_error(libc::EBUSY)),
            Queue::Capture => {
                self.capture_bufs = count;
                self.capture_free.clear();
            }
        }
        Ok(count)
    }
    fn queue_capture(&mut self, index: u32) -> io::Result<()> {
        self.gone()?;
        if index >= self.capture_bufs || self.capture_free.contains(&index) {
            return Err(einval());
        }
        self.capture_free.push_back(index);
        self.run();
        Ok(())
    }
    fn queue_output(&mut self, index: u32, data: &[u8], ts: u64) -> io::Result<()> {
        self.gone()?;
        if !self.subscribed || index >= self.output_bufs || data.len() < 4 {
            return Err(einval());
        }
        self.queued += 1;
        self.pending.push_back((index, data.to_vec(), ts));
        self.run();
        Ok(())
    }
    fn dequeue_output(&mut self, _t: Duration) -> io::Result<Option<u32>> {
        self.gone()?;
        Ok(self.output_done.pop_front())
    }
    fn dequeue_capture(&mut self, _t: Duration) -> io::Result<Option<CodedBuffer>> {
        self.gone()?;
        if !self.capture_streaming {
            return Err(einval());
        }
        if self.ready.is_empty() && self.halted {
            return Err(io::Error::from_raw_os_error(libc::EPIPE));
        }
        Ok(self.ready.pop_front())
    }
    fn stream_on(&mut self, queue: Queue) -> io::Result<()> {
        self.call(format!("STREAMON {}", qname(queue)));
        if queue == Queue::Capture {
            self.capture_streaming = true;
            self.halted = false;
            self.run();
        }
        Ok(())
    }
    fn stream_off(&mut self, queue: Queue) -> io::Result<()> {
        self.call(format!("STREAMOFF {}", qname(queue)));
        if queue == Queue::Capture {
            self.capture_streaming = false;
            self.ready.clear();
            self.capture_free.clear();
        }
        Ok(())
    }
    fn encoder_stop(&mut self) -> io::Result<()> {
        Err(einval())
    }
    fn decoder_stop(&mut self) -> io::Result<()> {
        self.call("DECODER_CMD STOP".into());
        self.stopping = true;
        self.run();
        Ok(())
    }
    fn subscribe_events(&mut self) -> io::Result<()> {
        self.call("SUBSCRIBE_EVENT".into());
        self.subscribed = true;
        Ok(())
    }
    fn dequeue_event(&mut self, _t: Duration) -> io::Result<Option<M2mEvent>> {
        self.gone()?;
        Ok(self.events.pop_front())
    }
}

fn frame(w: u32, h: u32, i: u64) -> VideoFrame {
    SyntheticCamera::render(w, h, i, Instant::now())
}

#[test]
fn follows_source_changes_and_drains() {
    let fake = Fake::default();
    let calls = fake.calls.clone();
    let mut dec = StatefulDecoder::new(fake, CodedFormat::Fwht, 64, 48).unwrap();
    let mut inputs = std::collections::HashMap::new();
    let mut out = Vec::new();
    for i in 0..6u64 {
        let f = if i < 3 { frame(64, 48, i) } else { frame(100, 64, i) };
        out.extend(dec.decode(&toy(&f), i).unwrap());
        inputs.insert(i, f);
    }
    out.extend(dec.poll_frames(Duration::from_millis(50)).unwrap());
    let (rest, last) = dec.drain().unwrap();
    out.extend(rest);
    assert!(last, "drain ends with a LAST buffer");
    let got: Vec<u64> = out.iter().map(|d| d.frame.index).collect();
    assert_eq!(got, vec![0, 1, 2, 3, 4, 5]);
    for d in &out {
        let input = &inputs[&d.frame.index];
        assert_eq!(psnr_i420(input, &d.frame), Some(99.0), "frame {} unpacked from the driver's stride", d.frame.index);
    }
    assert_eq!(dec.stats().source_changes, 2);
    assert_eq!(dec.stats().sizes, vec![(64, 48), (100, 64)]);
    let calls = calls.lock().unwrap().clone();
    let pos = |s: &str| calls.iter().position(|c| c == s).unwrap_or_else(|| panic!("no {s} in {calls:?}"));
    assert!(pos("SUBSCRIBE_EVENT") < pos("STREAMON OUTPUT"));
    // The resolution change: CAPTURE stopped, freed and set up again at the new size.
    let off = pos("STREAMOFF CAPTURE");
    assert_eq!(calls[off + 1], "REQBUFS CAPTURE 0");
    assert_eq!(calls[off + 2], "G_FMT CAPTURE");
    assert_eq!(calls[off + 3], "S_FMT CAPTURE 100x64");
    assert_eq!(calls.last().unwrap(), "STREAMOFF OUTPUT");
}

#[test]
fn a_vanished_device_is_device_gone() {
    let fake = Fake { gone_after: Some(2), ..Fake::default() };
    let mut dec = StatefulDecoder::new(fake, CodedFormat::Fwht, 64, 48).unwrap();
    let mut err = None;
    for i in 0..4u64 {
        if let Err(e) = dec.decode(&toy(&frame(64, 48, i)), i) {
            err = Some(e);
            break;
        }
    }
    let e = err.expect("the decoder noticed the device is gone");
    assert!(matches!(e, MediaError::DeviceGone(_)), "{e}");
    assert!(e.to_string().contains("/dev/fake-dec"), "{e}");
}

#[test]
fn refuses_a_device_without_the_coded_format() {
    // The fake offers FWHT only.
    assert!(StatefulDecoder::new(Fake::default(), CodedFormat::H264, 64, 48).is_err());
}

#[test]
fn unpack_rejects_short_buffers() {
    assert!(unpack_i420(&[0; 10], 64, 48, 64, 0).is_none());
    let f = frame(64, 48, 0);
    let back = unpack_i420(&f.data, 64, 48, 64, 0).unwrap();
    assert_eq!(back.data, f.data);
}
