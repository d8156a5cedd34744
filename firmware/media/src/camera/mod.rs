//! The camera seam: [`Camera`] yields I420 frames paced at the negotiated frame rate.
//! [`synthetic::SyntheticCamera`] draws a moving test pattern with a frame counter;
//! [`v4l::V4lCamera`] captures from a Linux V4L2 device (mmap streaming, format pick,
//! conversion, reconnect after unplug); [`y4m::Y4mCamera`] plays a Y4M file in a loop.

pub mod reconnect;
pub mod synthetic;
pub mod v4l;
pub mod y4m;

use crate::convert::PixelFormat;
use crate::error::Result;
use crate::frame::VideoFrame;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CameraConfig {
    /// Wanted width.
    pub width: u32,
    /// Wanted height.
    pub height: u32,
    /// Wanted frames per second.
    pub fps: u32,
}

impl Default for CameraConfig {
    fn default() -> Self {
        CameraConfig { width: 640, height: 360, fps: 30 }
    }
}

/// What the camera actually delivers (after conversion the frames are I420 of this size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureFormat {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// The device's pixel format before conversion.
    pub pixel_format: PixelFormat,
}

/// A source of video frames.
pub trait Camera: Send {
    /// Human-readable name ("vivid: /dev/video0", "synthetic").
    fn describe(&self) -> String;
    /// The negotiated format.
    fn format(&self) -> CaptureFormat;
    /// Blocks until the next frame and returns it as I420.
    fn capture(&mut self) -> Result<VideoFrame>;
    /// True while the device is gone and stand-in (black) frames are delivered.
    fn is_lost(&self) -> bool {
        false
    }
}

impl<C: Camera + ?Sized> Camera for Box<C> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn format(&self) -> CaptureFormat {
        (**self).format()
    }
    fn capture(&mut self) -> Result<VideoFrame> {
        (**self).capture()
    }
    fn is_lost(&self) -> bool {
        (**self).is_lost()
    }
}
