//! A Linux V4L2 camera through the `v4l` crate (kernel-header bindings, no libv4l):
//! [`list_cameras`] enumerates `/dev/video*` capture devices with their formats, sizes and
//! rates; [`pick_format`] chooses the best match for the wanted size and rate among the formats
//! we convert (YU12, NV12, YUYV, MJPEG); [`V4lDevice`] streams with mmap buffers and converts
//! each frame to I420 (a frame that fails to convert, e.g. corrupt MJPEG, is replaced by the
//! previous good one).
//!
//! [`V4lCamera`] is what callers use: when the device errors or vanishes (USB unplug) it keeps
//! delivering black frames at the configured rate (so the stream and its receivers stay alive),
//! tries to reopen the device every second, and resumes when it is back with the same size
//! (see [`super::reconnect`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use v4l::buffer::Type;
use v4l::capability::Flags;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::capture::Parameters;
use v4l::video::Capture;
use v4l::{Device, Format, FourCC};

use std::sync::Arc;

use super::reconnect::{ReconnectingCamera, Reopen};
use super::{Camera, CameraConfig, CaptureFormat};
use crate::clock::SystemClock;
use crate::convert::{to_i420, PixelFormat};
use crate::error::{MediaError, Result};
use crate::frame::VideoFrame;

/// One size a format offers, with its frame rates (whole fps; empty if unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeInfo {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Frame rates.
    pub fps: Vec<u32>,
}

/// One pixel format a camera offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatInfo {
    /// The fourcc as text.
    pub fourcc: String,
    /// The format if we can convert it.
    pub pixel_format: Option<PixelFormat>,
    /// Sizes.
    pub sizes: Vec<SizeInfo>,
}

/// A capture device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraInfo {
    /// Device node.
    pub path: PathBuf,
    /// Card name.
    pub card: String,
    /// Driver.
    pub driver: String,
    /// Formats.
    pub formats: Vec<FormatInfo>,
}

fn video_nodes() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> =
        std::fs::read_dir("/dev").map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
    paths.retain(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("video")));
    paths.sort_by_key(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.trim_start_matches("video").parse::<u32>().ok())
            .unwrap_or(u32::MAX)
    });
    paths
}

fn fps_of(dev: &Device, fourcc: FourCC, w: u32, h: u32) -> Vec<u32> {
    let mut fps: Vec<u32> = dev
        .enum_frameintervals(fourcc, w, h)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|fi| match fi.interval {
            FrameIntervalEnum::Discrete(f) if f.numerator > 0 => vec![f.denominator / f.numerator],
            FrameIntervalEnum::Stepwise(s) if s.min.numerator > 0 && s.max.numerator > 0 => {
                let hi = s.min.denominator / s.min.numerator;
                let lo = s.max.denominator / s.max.numerator;
                [5, 10, 15, 20, 24, 25, 30, 50, 60].into_iter().filter(|f| *f >= lo && *f <= hi).collect()
            }
            _ => vec![],
        })
        .filter(|f| *f > 0)
        .collect();
    fps.sort_unstable();
    fps.dedup();
    fps
}

/// Describes one device, or None if it is not a video capture device.
pub fn describe_device(path: &Path) -> Option<CameraInfo> {
    let dev = Device::with_path(path).ok()?;
    let caps = dev.query_caps().ok()?;
    if !caps.capabilities.contains(Flags::VIDEO_CAPTURE) {
        return None;
    }
    let mut formats = Vec::new();
    for desc in dev.enum_formats().unwrap_or_default() {
        let pixel_format = PixelFormat::from_fourcc(desc.fourcc.repr);
        let mut sizes = Vec::new();
        for fs in dev.enum_framesizes(desc.fourcc).unwrap_or_default() {
            let discrete: Vec<(u32, u32)> = match fs.size {
                FrameSizeEnum::Discrete(d) => vec![(d.width, d.height)],
                FrameSizeEnum::Stepwise(s) => {
                    // Common sizes inside the range, plus the extremes.
                    let mut v: Vec<(u32, u32)> =
                        [(320, 180), (320, 240), (640, 360), (640, 480), (1280, 720), (1920, 1080)]
                            .into_iter()
                            .filter(|&(w, h)| {
                                w >= s.min_width && w <= s.max_width && h >= s.min_height && h <= s.max_height
                            })
                            .collect();
                    v.push((s.max_width, s.max_height));
                    v
                }
            };
            for (w, h) in discrete {
                sizes.push(SizeInfo { width: w, height: h, fps: fps_of(&dev, desc.fourcc, w, h) });
            }
        }
        formats.push(FormatInfo {
            fourcc: String::from_utf8_lossy(&desc.fourcc.repr).into_owned(),
            pixel_format,
            sizes,
        });
    }
    Some(CameraInfo { path: path.to_path_buf(), card: caps.card, driver: caps.driver, formats })
}

/// Every video capture device on this machine.
pub fn list_cameras() -> Vec<CameraInfo> {
    video_nodes().iter().filter_map(|p| describe_device(p)).collect()
}

/// Picks the format, size and rate closest to `want`: the size nearest in area (exact best,
/// larger preferred to smaller at equal distance), then the rate nearest at or above the wanted
/// one, then the cheaper pixel format (YU12 < NV12 < YUYV < MJPEG).
pub fn pick_format(info: &CameraInfo, want: &CameraConfig) -> Option<CaptureFormat> {
    let want_area = want.width as i64 * want.height as i64;
    let mut best: Option<((i64, i64, u32, usize), CaptureFormat)> = None;
    for f in &info.formats {
        let Some(pf) = f.pixel_format else { continue };
        for s in &f.sizes {
            if s.width % 2 != 0 || s.height % 2 != 0 || s.width < 16 || s.height < 16 {
                continue;
            }
            let area = s.width as i64 * s.height as i64;
            let size_cost = (area - want_area).abs() * 2 + i64::from(area < want_area);
            let aspect_cost = ((s.width as i64 * want.height as i64) - (s.height as i64 * want.width as i64)).abs();
            let fps = s
                .fps
                .iter()
                .copied()
                .filter(|&r| r >= want.fps)
                .min()
                .or_else(|| s.fps.iter().copied().max())
                .unwrap_or(want.fps);
            let fps_cost = fps.abs_diff(want.fps);
            let key = (size_cost, aspect_cost, fps_cost, pf.rank());
            if best.as_ref().map_or(true, |(k, _)| key < *k) {
                best = Some((key, CaptureFormat { width: s.width, height: s.height, fps, pixel_format: pf }));
            }
        }
    }
    best.map(|(_, f)| f)
}

struct Open {
    // Field order matters: the stream must be dropped before the device.
    stream: Stream<'static>,
    _dev: Device,
    stride: usize,
}

/// One opened V4L2 capture stream; errors out when the device fails (see [`V4lCamera`]).
pub struct V4lDevice {
    path: PathBuf,
    format: CaptureFormat,
    open: Open,
    next_index: u64,
    last_good: Option<Vec<u8>>,
    card: String,
}

fn dev_err<'a>(path: &'a Path, what: &'static str) -> impl Fn(std::io::Error) -> MediaError + 'a {
    move |source| MediaError::Device { path: path.to_path_buf(), what, source }
}

fn open_stream(path: &Path, format: &CaptureFormat) -> Result<Open> {
    let dev = Device::with_path(path).map_err(dev_err(path, "open"))?;
    let fourcc = FourCC::new(&format.pixel_format.fourcc());
    let set =
        dev.set_format(&Format::new(format.width, format.height, fourcc)).map_err(dev_err(path, "VIDIOC_S_FMT"))?;
    if set.fourcc != fourcc || set.width != format.width || set.height != format.height {
        return Err(MediaError::Unsupported {
            path: path.to_path_buf(),
            reason: format!(
                "driver set {} {}x{} instead of {} {}x{}",
                set.fourcc,
                set.width,
                set.height,
                format.pixel_format.name(),
                format.width,
                format.height
            ),
        });
    }
    if let Err(e) = dev.set_params(&Parameters::with_fps(format.fps)) {
        tracing::info!(dev = %path.display(), "frame rate not settable: {e}");
    }
    let mut stream = Stream::with_buffers(&dev, Type::VideoCapture, 4).map_err(dev_err(path, "mmap buffers"))?;
    stream.set_timeout(Duration::from_secs(2));
    Ok(Open { stream, _dev: dev, stride: set.stride as usize })
}

impl V4lDevice {
    /// Opens `path`, picks the best format for `want` and starts streaming.
    pub fn open(path: &Path, want: CameraConfig) -> Result<Self> {
        let info = describe_device(path).ok_or_else(|| MediaError::Unsupported {
            path: path.to_path_buf(),
            reason: "not a V4L2 video capture device (or cannot be opened)".into(),
        })?;
        let format = pick_format(&info, &want).ok_or_else(|| MediaError::Unsupported {
            path: path.to_path_buf(),
            reason: format!(
                "offers none of YU12/NV12/YUYV/MJPEG at an even size (has {})",
                info.formats.iter().map(|f| f.fourcc.as_str()).collect::<Vec<_>>().join(", ")
            ),
        })?;
        let open = open_stream(path, &format)?;
        tracing::info!(dev = %path.display(), card = %info.card, ?format, "camera streaming");
        Ok(V4lDevice { path: path.to_path_buf(), format, open, next_index: 0, last_good: None, card: info.card })
    }
}

impl Camera for V4lDevice {
    fn describe(&self) -> String {
        format!(
            "{} ({}) {} {}x{}@{}",
            self.card,
            self.path.display(),
            self.format.pixel_format.name(),
            self.format.width,
            self.format.height,
            self.format.fps
        )
    }
    fn format(&self) -> CaptureFormat {
        self.format
    }
    fn capture(&mut self) -> Result<VideoFrame> {
        let (pf, w, h) = (self.format.pixel_format, self.format.width, self.format.height);
        let stride = self.open.stride;
        let converted = match self.open.stream.next() {
            Ok((buf, meta)) => {
                let used = (meta.bytesused as usize).min(buf.len());
                let used = if used == 0 { buf.len() } else { used };
                to_i420(pf, w, h, stride, &buf[..used])
            }
            Err(e) => return Err(MediaError::Device { path: self.path.clone(), what: "VIDIOC_DQBUF", source: e }),
        };
        let data = match converted {
            Ok(data) => {
                self.last_good = Some(data.clone());
                data
            }
            Err(e) => {
                // A corrupt frame (MJPEG) is replaced by the previous good one.
                tracing::debug!(dev = %self.path.display(), "bad frame: {e}");
                self.last_good.clone().unwrap_or_else(|| VideoFrame::black(w, h, 0, Instant::now()).data)
            }
        };
        let index = self.next_index;
        self.next_index += 1;
        Ok(VideoFrame { width: w, height: h, data, index, captured_at: Instant::now() })
    }
}

/// A V4L2 camera that survives unplugging: a [`V4lDevice`] inside a [`ReconnectingCamera`]
/// (black frames at the configured rate while the device is gone, reopened every second).
pub struct V4lCamera {
    inner: ReconnectingCamera,
}

impl V4lCamera {
    /// Opens `path` (it must be there now), picking the best format for `want`.
    pub fn open(path: &Path, want: CameraConfig) -> Result<Self> {
        let first = V4lDevice::open(path, want)?;
        let p = path.to_path_buf();
        let reopen: Reopen = Box::new(move || V4lDevice::open(&p, want).map(|d| Box::new(d) as Box<dyn Camera>));
        Ok(V4lCamera { inner: ReconnectingCamera::new(Box::new(first), reopen, Arc::new(SystemClock)) })
    }
}

impl Camera for V4lCamera {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn format(&self) -> CaptureFormat {
        self.inner.format()
    }
    fn is_lost(&self) -> bool {
        self.inner.is_lost()
    }
    fn capture(&mut self) -> Result<VideoFrame> {
        self.inner.capture()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (width, height, frame rates)
    type Size = (u32, u32, Vec<u32>);

    fn info(formats: Vec<(&str, Vec<Size>)>) -> CameraInfo {
        CameraInfo {
            path: "/dev/video0".into(),
            card: "test".into(),
            driver: "test".into(),
            formats: formats
                .into_iter()
                .map(|(cc, sizes)| {
                    let mut b = [b' '; 4];
                    b[..cc.len()].copy_from_slice(cc.as_bytes());
                    FormatInfo {
                        fourcc: cc.into(),
                        pixel_format: PixelFormat::from_fourcc(b),
                        sizes: sizes.into_iter().map(|(width, height, fps)| SizeInfo { width, height, fps }).collect(),
                    }
                })
                .collect(),
        }
    }

    #[test]
    fn exact_size_and_rate_win_and_cheap_formats_are_preferred() {
        let cam = info(vec![
            ("MJPG", vec![(1280, 720, vec![30]), (640, 360, vec![30])]),
            ("YUYV", vec![(640, 360, vec![30]), (1280, 720, vec![10])]),
        ]);
        let f = pick_format(&cam, &CameraConfig { width: 640, height: 360, fps: 30 }).unwrap();
        assert_eq!((f.width, f.height, f.fps, f.pixel_format), (640, 360, 30, PixelFormat::Yuyv));
        // 720p at 30 only exists in MJPEG: size beats format.
        let f = pick_format(&cam, &CameraConfig { width: 1280, height: 720, fps: 30 }).unwrap();
        assert_eq!((f.width, f.pixel_format, f.fps), (1280, PixelFormat::Mjpeg, 30));
    }

    #[test]
    fn nearest_size_and_rate_when_no_exact_match() {
        let cam = info(vec![("YUYV", vec![(320, 240, vec![30]), (640, 480, vec![15, 30]), (1920, 1080, vec![5])])]);
        let f = pick_format(&cam, &CameraConfig { width: 640, height: 360, fps: 25 }).unwrap();
        assert_eq!((f.width, f.height, f.fps), (640, 480, 30));
        let none = info(vec![("H264", vec![(640, 360, vec![30])]), ("GREY", vec![(640, 360, vec![30])])]);
        assert!(pick_format(&none, &CameraConfig::default()).is_none());
    }

    #[test]
    fn listing_devices_never_panics() {
        for cam in list_cameras() {
            assert!(cam.path.starts_with("/dev"));
        }
    }
}
