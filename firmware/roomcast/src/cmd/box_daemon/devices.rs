//! Opening the real capture devices the configuration names: a V4L2 camera (`auto` = the
//! first capture device `roomcast_media` lists) and an ALSA microphone (`auto` = ALSA's
//! `default`). Failures come back as one line for the display and the log. A camera that
//! vanishes while running keeps sending black frames (roomcast_media reopens it); its own
//! `is_lost()` reaches the display through the sender pipeline's status.

use std::path::Path;

use roomcast_media::camera::v4l::{list_cameras, V4lCamera};
use roomcast_media::camera::{Camera, CameraConfig};
use roomcast_media::mic::alsa::AlsaMic;
use roomcast_media::mic::Microphone;

/// Opens the camera `source` (`auto` or a device path).
pub fn open_v4l_camera(source: &str, want: CameraConfig) -> Result<Box<dyn Camera>, String> {
    let path = if source == "auto" {
        list_cameras()
            .into_iter()
            .next()
            .map(|c| c.path)
            .ok_or_else(|| "no V4L2 capture device found (/dev/video*)".to_string())?
    } else {
        Path::new(source).to_path_buf()
    };
    V4lCamera::open(&path, want).map(|c| Box::new(c) as Box<dyn Camera>).map_err(|e| format!("{}: {e}", path.display()))
}

/// Opens the ALSA capture device `source` (`auto` = "default").
pub fn open_alsa_mic(source: &str, channels: u8) -> Result<Box<dyn Microphone>, String> {
    let name = if source == "auto" { "default" } else { source };
    AlsaMic::open(name, channels).map(|m| Box::new(m) as Box<dyn Microphone>).map_err(|e| format!("ALSA {name}: {e}"))
}
