//! The real [`M2mDevice`]: raw V4L2 ioctls (through the `v4l` crate's `v4l2::ioctl` and the
//! kernel-header bindings) on a memory-to-memory device, single- or multi-planar (the
//! Raspberry Pi's `bcm2835-codec` is multi-planar, `vicodec` single-planar by default), with
//! MMAP buffers. Only the ioctls listed in the parent module's and the decoder's documentation
//! are used; the five the `v4l` crate has no number for (`VIDIOC_DQEVENT`,
//! `VIDIOC_SUBSCRIBE_EVENT`, `VIDIOC_DECODER_CMD`, `VIDIOC_G/S_SELECTION`) are computed here as videodev2.h defines them.

use std::io;
use std::os::raw::c_void;
use std::path::{Path, PathBuf};
use std::time::Duration;

use v4l::v4l2;
use v4l::v4l2::vidioc;
use v4l::v4l_sys::*;

use super::{CodedBuffer, Control, M2mCaps, M2mDevice, M2mEvent, Queue, QueueFormat, SelectionTarget};

/// `_IOC(dir, 'V', nr, size)` of asm-generic/ioctl.h.
const fn ioc(dir: u32, nr: u32, size: usize) -> vidioc::_IOC_TYPE {
    ((dir << 30) | ((size as u32) << 16) | ((b'V' as u32) << 8) | nr) as vidioc::_IOC_TYPE
}
/// `_IOR('V', 89, struct v4l2_event)`.
const VIDIOC_DQEVENT: vidioc::_IOC_TYPE = ioc(2, 89, std::mem::size_of::<v4l2_event>());
/// `_IOW('V', 90, struct v4l2_event_subscription)`.
const VIDIOC_SUBSCRIBE_EVENT: vidioc::_IOC_TYPE = ioc(1, 90, std::mem::size_of::<v4l2_event_subscription>());
/// `_IOWR('V', 94, struct v4l2_selection)`.
const VIDIOC_G_SELECTION: vidioc::_IOC_TYPE = ioc(3, 94, std::mem::size_of::<v4l2_selection>());
/// `_IOWR('V', 95, struct v4l2_selection)`.
const VIDIOC_S_SELECTION: vidioc::_IOC_TYPE = ioc(3, 95, std::mem::size_of::<v4l2_selection>());
/// `_IOWR('V', 96, struct v4l2_decoder_cmd)`.
const VIDIOC_DECODER_CMD: vidioc::_IOC_TYPE = ioc(3, 96, std::mem::size_of::<v4l2_decoder_cmd>());

struct Mapping {
    ptr: *mut c_void,
    len: usize,
}

/// An opened V4L2 M2M device.
pub struct LinuxM2m {
    path: PathBuf,
    fd: i32,
    mplane: bool,
    output_maps: Vec<Mapping>,
    capture_maps: Vec<Mapping>,
}

// SAFETY: the fd and the mappings are owned by this value alone and used from one thread at a time.
unsafe impl Send for LinuxM2m {}

fn fourcc_u32(cc: [u8; 4]) -> u32 {
    u32::from_le_bytes(cc)
}

fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl LinuxM2m {
    /// Opens the device (non-blocking; waits are done with poll).
    pub fn open(path: &Path) -> io::Result<Self> {
        let fd = v4l2::open(path, libc::O_RDWR | libc::O_NONBLOCK)?;
        let mut dev =
            LinuxM2m { path: path.to_path_buf(), fd, mplane: false, output_maps: vec![], capture_maps: vec![] };
        if let Ok(caps) = dev.raw_caps() {
            let c = if caps.capabilities & V4L2_CAP_DEVICE_CAPS != 0 { caps.device_caps } else { caps.capabilities };
            dev.mplane = c & V4L2_CAP_VIDEO_M2M_MPLANE != 0;
        }
        Ok(dev)
    }

    fn ioctl<T>(&self, request: vidioc::_IOC_TYPE, arg: &mut T) -> io::Result<()> {
        // SAFETY: `arg` is the struct the request expects, living for the call.
        unsafe { v4l2::ioctl(self.fd, request, arg as *mut T as *mut c_void) }
    }

    fn raw_caps(&self) -> io::Result<v4l2_capability> {
        // SAFETY: plain C struct, zero is a valid value.
        let mut caps: v4l2_capability = unsafe { std::mem::zeroed() };
        self.ioctl(vidioc::VIDIOC_QUERYCAP, &mut caps)?;
        Ok(caps)
    }

    fn buf_type(&self, q: Queue) -> u32 {
        match (q, self.mplane) {
            (Queue::Output, false) => v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_OUTPUT,
            (Queue::Output, true) => v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE,
            (Queue::Capture, false) => v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE,
            (Queue::Capture, true) => v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE,
        }
    }

    fn poll(&self, events: i16, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd { fd: self.fd, events, revents: 0 };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis().min(i32::MAX as u128) as i32) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        if pfd.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
            // vb2 also says POLLERR for a queue not streaming or without buffers: the device is
            // gone only if it no longer answers (ENODEV once unregistered).
            self.raw_caps()?;
            if pfd.revents & events == 0 {
                std::thread::sleep(timeout.min(Duration::from_millis(10)));
                return Ok(false);
            }
        }
        Ok(r > 0 && pfd.revents & events != 0)
    }

    /// A `v4l2_selection` for `queue`: the single-planar buffer type even on a multi-planar
    /// device (videodev2.h: selection takes the non-MPLANE types; drivers since 4.13 accept both).
    fn selection(&self, queue: Queue, target: SelectionTarget) -> v4l2_selection {
        // SAFETY: plain C struct.
        let mut sel: v4l2_selection = unsafe { std::mem::zeroed() };
        sel.type_ = match queue {
            Queue::Output => v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_OUTPUT,
            Queue::Capture => v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE,
        };
        sel.target = match target {
            SelectionTarget::Crop => V4L2_SEL_TGT_CROP,
            SelectionTarget::Compose => V4L2_SEL_TGT_COMPOSE,
        };
        sel
    }

    /// DQBUF on a queue; returns (index, bytesused, flags, timestamp_us) or None on EAGAIN.
    fn dqbuf(&self, q: Queue) -> io::Result<Option<(u32, usize, u32, u64)>> {
        // SAFETY: plain C structs.
        let mut planes: [v4l2_plane; 1] = unsafe { std::mem::zeroed() };
        let mut buf: v4l2_buffer = unsafe { std::mem::zeroed() };
        buf.type_ = self.buf_type(q);
        buf.memory = v4l2_memory_V4L2_MEMORY_MMAP;
        if self.mplane {
            buf.m.planes = planes.as_mut_ptr();
            buf.length = 1;
        }
        match self.ioctl(vidioc::VIDIOC_DQBUF, &mut buf) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Ok(None),
            Err(e) => return Err(e),
        }
        let used = if self.mplane { planes[0].bytesused as usize } else { buf.bytesused as usize };
        let ts = buf.timestamp.tv_sec as u64 * 1_000_000 + buf.timestamp.tv_usec as u64;
        Ok(Some((buf.index, used, buf.flags, ts)))
    }
}

impl LinuxM2m {
    fn read_format(&self, fmt: &v4l2_format) -> QueueFormat {
        // SAFETY: the driver filled the member of the buffer type we asked for.
        unsafe {
            if self.mplane {
                let p = &fmt.fmt.pix_mp;
                QueueFormat {
                    fourcc: p.pixelformat.to_le_bytes(),
                    width: p.width,
                    height: p.height,
                    bytesperline: p.plane_fmt[0].bytesperline,
                    sizeimage: p.plane_fmt[0].sizeimage,
                }
            } else {
                let p = &fmt.fmt.pix;
                QueueFormat {
                    fourcc: p.pixelformat.to_le_bytes(),
                    width: p.width,
                    height: p.height,
                    bytesperline: p.bytesperline,
                    sizeimage: p.sizeimage,
                }
            }
        }
    }
}

impl Drop for LinuxM2m {
    fn drop(&mut self) {
        for m in self.output_maps.drain(..).chain(self.capture_maps.drain(..)) {
            // SAFETY: mapped by us with this length.
            let _ = unsafe { v4l2::munmap(m.ptr, m.len) };
        }
        let _ = v4l2::close(self.fd);
    }
}

fn control_id(c: Control) -> u32 {
    match c {
        Control::Bitrate => V4L2_CID_MPEG_VIDEO_BITRATE,
        Control::H264IPeriod => V4L2_CID_MPEG_VIDEO_H264_I_PERIOD,
        Control::GopSize => V4L2_CID_MPEG_VIDEO_GOP_SIZE,
        Control::H264Profile => V4L2_CID_MPEG_VIDEO_H264_PROFILE,
        Control::H264Level => V4L2_CID_MPEG_VIDEO_H264_LEVEL,
        Control::RepeatSeqHeader => V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER,
        Control::ForceKeyFrame => V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME,
    }
}

impl M2mDevice for LinuxM2m {
    fn path(&self) -> String {
        self.path.display().to_string()
    }
    fn query_caps(&mut self) -> io::Result<M2mCaps> {
        let caps = self.raw_caps()?;
        let c = if caps.capabilities & V4L2_CAP_DEVICE_CAPS != 0 { caps.device_caps } else { caps.capabilities };
        Ok(M2mCaps {
            driver: cstr(&caps.driver),
            card: cstr(&caps.card),
            m2m: c & (V4L2_CAP_VIDEO_M2M | V4L2_CAP_VIDEO_M2M_MPLANE) != 0,
            streaming: c & V4L2_CAP_STREAMING != 0,
        })
    }
    fn enum_formats(&mut self, queue: Queue) -> io::Result<Vec<[u8; 4]>> {
        let mut out = Vec::new();
        for index in 0..64 {
            // SAFETY: plain C struct.
            let mut d: v4l2_fmtdesc = unsafe { std::mem::zeroed() };
            d.index = index;
            d.type_ = self.buf_type(queue);
            if self.ioctl(vidioc::VIDIOC_ENUM_FMT, &mut d).is_err() {
                break;
            }
            out.push(d.pixelformat.to_le_bytes());
        }
        Ok(out)
    }
    fn set_format(&mut self, queue: Queue, f: QueueFormat) -> io::Result<QueueFormat> {
        // SAFETY: plain C struct; the union member written matches the buffer type.
        let mut fmt: v4l2_format = unsafe { std::mem::zeroed() };
        fmt.type_ = self.buf_type(queue);
        unsafe {
            if self.mplane {
                let p = &mut fmt.fmt.pix_mp;
                p.width = f.width;
                p.height = f.height;
                p.pixelformat = fourcc_u32(f.fourcc);
                p.field = v4l2_field_V4L2_FIELD_NONE;
                p.num_planes = 1;
                p.plane_fmt[0].bytesperline = f.bytesperline;
                p.plane_fmt[0].sizeimage = f.sizeimage;
            } else {
                let p = &mut fmt.fmt.pix;
                p.width = f.width;
                p.height = f.height;
                p.pixelformat = fourcc_u32(f.fourcc);
                p.field = v4l2_field_V4L2_FIELD_NONE;
                p.bytesperline = f.bytesperline;
                p.sizeimage = f.sizeimage;
            }
        }
        self.ioctl(vidioc::VIDIOC_S_FMT, &mut fmt)?;
        Ok(self.read_format(&fmt))
    }
    fn get_format(&mut self, queue: Queue) -> io::Result<QueueFormat> {
        // SAFETY: plain C struct; the driver fills the member of the type asked for.
        let mut fmt: v4l2_format = unsafe { std::mem::zeroed() };
        fmt.type_ = self.buf_type(queue);
        self.ioctl(vidioc::VIDIOC_G_FMT, &mut fmt)?;
        Ok(self.read_format(&fmt))
    }
    fn set_selection(&mut self, queue: Queue, target: SelectionTarget, w: u32, h: u32) -> io::Result<(u32, u32)> {
        let mut sel = self.selection(queue, target);
        sel.r = v4l2_rect { left: 0, top: 0, width: w, height: h };
        self.ioctl(VIDIOC_S_SELECTION, &mut sel)?;
        Ok((sel.r.width, sel.r.height))
    }
    fn get_selection(&mut self, queue: Queue, target: SelectionTarget) -> io::Result<(u32, u32)> {
        let mut sel = self.selection(queue, target);
        self.ioctl(VIDIOC_G_SELECTION, &mut sel)?;
        Ok((sel.r.width, sel.r.height))
    }
    fn set_frame_rate(&mut self, fps: u32) -> io::Result<()> {
        // SAFETY: plain C struct.
        let mut p: v4l2_streamparm = unsafe { std::mem::zeroed() };
        p.type_ = self.buf_type(Queue::Output);
        p.parm.output.timeperframe = v4l2_fract { numerator: 1, denominator: fps };
        self.ioctl(vidioc::VIDIOC_S_PARM, &mut p)
    }
    fn set_control(&mut self, control: Control, value: i32) -> io::Result<()> {
        // SAFETY: plain C structs; `ctrl` outlives the ioctl.
        let mut ctrl: v4l2_ext_control = unsafe { std::mem::zeroed() };
        ctrl.id = control_id(control);
        ctrl.__bindgen_anon_1.value = value;
        let mut ctrls: v4l2_ext_controls = unsafe { std::mem::zeroed() };
        ctrls.__bindgen_anon_1.ctrl_class = V4L2_CTRL_CLASS_CODEC;
        ctrls.count = 1;
        ctrls.controls = &mut ctrl;
        self.ioctl(vidioc::VIDIOC_S_EXT_CTRLS, &mut ctrls)
    }
    fn request_buffers(&mut self, queue: Queue, count: u32) -> io::Result<u32> {
        // vb2 frees no buffers still mapped: unmap this queue's first.
        let old = match queue {
            Queue::Output => std::mem::take(&mut self.output_maps),
            Queue::Capture => std::mem::take(&mut self.capture_maps),
        };
        for m in old {
            // SAFETY: mapped by us with this length.
            let _ = unsafe { v4l2::munmap(m.ptr, m.len) };
        }
        // SAFETY: plain C struct.
        let mut req: v4l2_requestbuffers = unsafe { std::mem::zeroed() };
        req.count = count;
        req.type_ = self.buf_type(queue);
        req.memory = v4l2_memory_V4L2_MEMORY_MMAP;
        self.ioctl(vidioc::VIDIOC_REQBUFS, &mut req)?;
        let mut maps = Vec::new();
        for index in 0..req.count {
            let mut planes: [v4l2_plane; 1] = unsafe { std::mem::zeroed() };
            let mut buf: v4l2_buffer = unsafe { std::mem::zeroed() };
            buf.index = index;
            buf.type_ = self.buf_type(queue);
            buf.memory = v4l2_memory_V4L2_MEMORY_MMAP;
            if self.mplane {
                buf.m.planes = planes.as_mut_ptr();
                buf.length = 1;
            }
            self.ioctl(vidioc::VIDIOC_QUERYBUF, &mut buf)?;
            // SAFETY: offset/length come from QUERYBUF for this fd.
            let (len, offset) = unsafe {
                if self.mplane {
                    (planes[0].length as usize, planes[0].m.mem_offset)
                } else {
                    (buf.length as usize, buf.m.offset)
                }
            };
            let ptr = unsafe {
                v4l2::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    self.fd,
                    offset as libc::off_t,
                )?
            };
            maps.push(Mapping { ptr, len });
        }
        match queue {
            Queue::Output => self.output_maps = maps,
            Queue::Capture => self.capture_maps = maps,
        }
        Ok(req.count)
    }
    fn queue_capture(&mut self, index: u32) -> io::Result<()> {
        let len = self.capture_maps.get(index as usize).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?.len;
        let mut planes: [v4l2_plane; 1] = unsafe { std::mem::zeroed() };
        let mut buf: v4l2_buffer = unsafe { std::mem::zeroed() };
        buf.index = index;
        buf.type_ = self.buf_type(Queue::Capture);
        buf.memory = v4l2_memory_V4L2_MEMORY_MMAP;
        if self.mplane {
            planes[0].length = len as u32;
            buf.m.planes = planes.as_mut_ptr();
            buf.length = 1;
        }
        self.ioctl(vidioc::VIDIOC_QBUF, &mut buf)
    }
    fn queue_output(&mut self, index: u32, data: &[u8], ts: u64) -> io::Result<()> {
        let map = self.output_maps.get(index as usize).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        let n = data.len().min(map.len);
        // SAFETY: the mapping is `map.len` bytes long and owned by us while not queued.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), map.ptr as *mut u8, n) };
        let mut planes: [v4l2_plane; 1] = unsafe { std::mem::zeroed() };
        let mut buf: v4l2_buffer = unsafe { std::mem::zeroed() };
        buf.index = index;
        buf.type_ = self.buf_type(Queue::Output);
        buf.memory = v4l2_memory_V4L2_MEMORY_MMAP;
        buf.field = v4l2_field_V4L2_FIELD_NONE;
        buf.timestamp.tv_sec = (ts / 1_000_000) as _;
        buf.timestamp.tv_usec = (ts % 1_000_000) as _;
        if self.mplane {
            planes[0].bytesused = n as u32;
            planes[0].length = map.len as u32;
            buf.m.planes = planes.as_mut_ptr();
            buf.length = 1;
        } else {
            buf.bytesused = n as u32;
        }
        self.ioctl(vidioc::VIDIOC_QBUF, &mut buf)
    }
    fn dequeue_output(&mut self, timeout: Duration) -> io::Result<Option<u32>> {
        if !timeout.is_zero() && !self.poll(libc::POLLOUT, timeout)? {
            return Ok(None);
        }
        Ok(self.dqbuf(Queue::Output)?.map(|(i, ..)| i))
    }
    fn dequeue_capture(&mut self, timeout: Duration) -> io::Result<Option<CodedBuffer>> {
        if !timeout.is_zero() && !self.poll(libc::POLLIN, timeout)? {
            return Ok(None);
        }
        let Some((index, used, flags, ts)) = self.dqbuf(Queue::Capture)? else { return Ok(None) };
        let map = self.capture_maps.get(index as usize).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: the driver handed the buffer back; `used` is clamped to the mapping.
        let data = unsafe { std::slice::from_raw_parts(map.ptr as *const u8, used.min(map.len)) }.to_vec();
        Ok(Some(CodedBuffer {
            index,
            data,
            keyframe: flags & V4L2_BUF_FLAG_KEYFRAME != 0,
            last: flags & V4L2_BUF_FLAG_LAST != 0,
            timestamp_us: ts,
        }))
    }
    fn stream_on(&mut self, queue: Queue) -> io::Result<()> {
        let mut t = self.buf_type(queue) as i32;
        self.ioctl(vidioc::VIDIOC_STREAMON, &mut t)
    }
    fn stream_off(&mut self, queue: Queue) -> io::Result<()> {
        let mut t = self.buf_type(queue) as i32;
        self.ioctl(vidioc::VIDIOC_STREAMOFF, &mut t)
    }
    fn encoder_stop(&mut self) -> io::Result<()> {
        // SAFETY: plain C struct.
        let mut cmd: v4l2_encoder_cmd = unsafe { std::mem::zeroed() };
        cmd.cmd = V4L2_ENC_CMD_STOP;
        self.ioctl(vidioc::VIDIOC_ENCODER_CMD, &mut cmd)
    }
    fn decoder_stop(&mut self) -> io::Result<()> {
        // SAFETY: plain C struct.
        let mut cmd: v4l2_decoder_cmd = unsafe { std::mem::zeroed() };
        cmd.cmd = V4L2_DEC_CMD_STOP;
        self.ioctl(VIDIOC_DECODER_CMD, &mut cmd)
    }
    fn subscribe_events(&mut self) -> io::Result<()> {
        for type_ in [V4L2_EVENT_SOURCE_CHANGE, V4L2_EVENT_EOS] {
            // SAFETY: plain C struct.
            let mut sub: v4l2_event_subscription = unsafe { std::mem::zeroed() };
            sub.type_ = type_;
            self.ioctl(VIDIOC_SUBSCRIBE_EVENT, &mut sub)?;
        }
        Ok(())
    }
    fn dequeue_event(&mut self, timeout: Duration) -> io::Result<Option<M2mEvent>> {
        if !timeout.is_zero() && !self.poll(libc::POLLPRI, timeout)? {
            return Ok(None);
        }
        // SAFETY: plain C struct, filled by the driver.
        let mut ev: v4l2_event = unsafe { std::mem::zeroed() };
        match self.ioctl(VIDIOC_DQEVENT, &mut ev) {
            Ok(()) => {}
            // No event pending.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) || e.raw_os_error() == Some(libc::EAGAIN) => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        }
        Ok(Some(match ev.type_ {
            // SAFETY: the member of this event type.
            V4L2_EVENT_SOURCE_CHANGE if unsafe { ev.u.src_change.changes } & V4L2_EVENT_SRC_CH_RESOLUTION != 0 => {
                M2mEvent::SourceChange
            }
            V4L2_EVENT_EOS => M2mEvent::Eos,
            t => M2mEvent::Other(t),
        }))
    }
}
