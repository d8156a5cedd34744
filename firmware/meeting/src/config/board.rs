//! Board defaults: the `[board]` and `[devices]` tables the image installs as
//! `/etc/roomcast/board.toml` (format in board/README and the team's board-format notes).
//! Anything `roomcast.toml` leaves out comes from here; unknown keys are ignored so the image
//! builder can add keys later; a missing file means no board defaults.

use toml_edit::{Document, Item};

use super::check::{line_of, ConfigError};

/// Defaults a board profile supplies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardDefaults {
    /// Board profile name (`pi4`, `qemu-virt`, ...), empty when none.
    pub name: String,
    /// Camera: `auto` or a path.
    pub camera: String,
    /// Microphone: `auto` or an ALSA PCM name.
    pub microphone: String,
    /// Playback: `auto`, `none` or an ALSA PCM name.
    pub playback: String,
    /// Encoder choice: `auto`, `hardware`, `software`.
    pub encoder: String,
    /// The software AV1 encoder `software`, `auto` without hardware and the fallback run:
    /// `aom` (libaom real-time) or `rav1e`.
    pub software_encoder: String,
    /// What `auto` should end up with on this board (a hint).
    pub expected_encoder: String,
    /// V4L2 M2M encoder node to try first (empty = probe).
    pub encoder_device: String,
    /// rav1e speed preset.
    pub software_speed: u8,
    /// Encoder threads (0 = encoder decides).
    pub encoder_threads: u8,
    /// Default video width.
    pub video_width: u32,
    /// Default video height.
    pub video_height: u32,
    /// Default frame rate.
    pub video_fps: u32,
    /// Default video bitrate.
    pub video_bitrate_kbps: u32,
    /// Display kind: `auto`, `ssd1306`, `framebuffer`, `none`.
    pub display: String,
    /// I2C bus of the OLED.
    pub i2c_bus: String,
    /// OLED address.
    pub i2c_address: u8,
    /// Framebuffer device.
    pub framebuffer: String,
    /// Wired interface init brings up.
    pub network_interface: String,
    /// Hardware watchdog device the daemon feeds (empty = none).
    pub watchdog: String,
}

impl Default for BoardDefaults {
    fn default() -> Self {
        Self {
            name: String::new(),
            camera: "auto".into(),
            microphone: "auto".into(),
            playback: "auto".into(),
            encoder: "auto".into(),
            software_encoder: "aom".into(),
            expected_encoder: String::new(),
            encoder_device: String::new(),
            software_speed: 10,
            encoder_threads: 0,
            video_width: 640,
            video_height: 360,
            video_fps: 15,
            video_bitrate_kbps: 800,
            display: "auto".into(),
            i2c_bus: "/dev/i2c-1".into(),
            i2c_address: 0x3c,
            framebuffer: "/dev/fb0".into(),
            network_interface: "eth0".into(),
            watchdog: String::new(),
        }
    }
}

impl BoardDefaults {
    /// Reads a board file's text. Values of the wrong type are reported and the built-in
    /// default is kept; unknown keys are ignored.
    pub fn parse(src: &str) -> (Self, Vec<ConfigError>) {
        let mut b = Self::default();
        let mut errors = Vec::new();
        let doc = match Document::parse(src) {
            Ok(d) => d,
            Err(e) => {
                let line = e.span().map(|s| line_of(src, s.start)).unwrap_or(0);
                errors.push(ConfigError { key: "board".into(), line, message: e.message().to_string() });
                return (b, errors);
            }
        };
        let root = doc.as_table();
        if let Some(name) = root.get("board").and_then(|t| t.get("name")).and_then(Item::as_str) {
            b.name = name.to_string();
        }
        let Some(dev) = root.get("devices").and_then(Item::as_table) else { return (b, errors) };
        let mut s = |key: &str, slot: &mut String| {
            if let Some(item) = dev.get(key) {
                match item.as_str() {
                    Some(v) => *slot = v.to_string(),
                    None => errors.push(ConfigError {
                        key: format!("devices.{key}"),
                        line: item.span().map(|sp| line_of(src, sp.start)).unwrap_or(0),
                        message: "expected a string".into(),
                    }),
                }
            }
        };
        s("camera", &mut b.camera);
        s("microphone", &mut b.microphone);
        s("playback", &mut b.playback);
        s("encoder", &mut b.encoder);
        s("expected_encoder", &mut b.expected_encoder);
        let mut software_encoder = String::new();
        s("software_encoder", &mut software_encoder);
        s("encoder_device", &mut b.encoder_device);
        s("display", &mut b.display);
        s("i2c_bus", &mut b.i2c_bus);
        s("framebuffer", &mut b.framebuffer);
        s("network_interface", &mut b.network_interface);
        s("watchdog", &mut b.watchdog);
        match software_encoder.as_str() {
            "" => {}
            "aom" | "rav1e" => b.software_encoder = software_encoder,
            other => errors.push(ConfigError {
                key: "devices.software_encoder".into(),
                line: dev.get("software_encoder").and_then(|i| i.span()).map(|sp| line_of(src, sp.start)).unwrap_or(0),
                message: format!("{other:?}: expected \"aom\" or \"rav1e\""),
            }),
        }
        let mut n = |key: &str, max: i64| -> Option<i64> {
            let item = dev.get(key)?;
            match item.as_integer() {
                Some(v) if (0..=max).contains(&v) => Some(v),
                _ => {
                    errors.push(ConfigError {
                        key: format!("devices.{key}"),
                        line: item.span().map(|sp| line_of(src, sp.start)).unwrap_or(0),
                        message: format!("expected an integer 0..={max}"),
                    });
                    None
                }
            }
        };
        if let Some(v) = n("software_speed", 10) {
            b.software_speed = v as u8;
        }
        if let Some(v) = n("encoder_threads", 64) {
            b.encoder_threads = v as u8;
        }
        if let Some(v) = n("video_width", 7680) {
            b.video_width = v as u32;
        }
        if let Some(v) = n("video_height", 4320) {
            b.video_height = v as u32;
        }
        if let Some(v) = n("video_fps", 120) {
            b.video_fps = v as u32;
        }
        if let Some(v) = n("video_bitrate_kbps", 100_000) {
            b.video_bitrate_kbps = v as u32;
        }
        if let Some(v) = n("i2c_address", 127) {
            b.i2c_address = v as u8;
        }
        (b, errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_devices_and_ignores_unknown_keys() {
        let src = "[board]\nname = \"qemu-virt\"\n[devices]\ncamera = \"/dev/video0\"\nvideo_width = 160\nvideo_height = 90\ni2c_address = 0x3D\nfuture_key = 1\n[other]\nx=1\n";
        let (b, errs) = BoardDefaults::parse(src);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(b.name, "qemu-virt");
        assert_eq!(b.camera, "/dev/video0");
        assert_eq!((b.video_width, b.video_height), (160, 90));
        assert_eq!(b.i2c_address, 0x3d);
        assert_eq!(b.microphone, "auto");
        assert_eq!(b.watchdog, "", "no watchdog unless the board names one");
        let (b, errs) = BoardDefaults::parse("[devices]\nwatchdog = \"/dev/watchdog0\"\n");
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(b.watchdog, "/dev/watchdog0");
        assert_eq!(b.software_encoder, "aom", "libaom unless the board names rav1e");
        let (b, errs) = BoardDefaults::parse("[devices]\nsoftware_encoder = \"rav1e\"\n");
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(b.software_encoder, "rav1e");
    }

    #[test]
    fn unknown_software_encoder_is_reported() {
        let (b, errs) = BoardDefaults::parse("[devices]\n\nsoftware_encoder = \"x264\"\n");
        assert_eq!(b.software_encoder, "aom");
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!((errs[0].key.as_str(), errs[0].line), ("devices.software_encoder", 3));
    }

    #[test]
    fn wrong_types_are_reported_with_lines() {
        let (b, errs) = BoardDefaults::parse("[devices]\ncamera = 3\nvideo_fps = \"x\"\n");
        assert_eq!(b.camera, "auto");
        assert_eq!(errs.len(), 2);
        assert_eq!((errs[0].key.as_str(), errs[0].line), ("devices.camera", 2));
        assert_eq!((errs[1].key.as_str(), errs[1].line), ("devices.video_fps", 3));
    }
}
