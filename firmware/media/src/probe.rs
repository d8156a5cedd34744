//! What media hardware this machine has: cameras with their formats, ALSA capture devices,
//! V4L2 M2M encoders with what each supports, the software encoders, and what `--encoder auto`
//! would pick and why. `roomcast probe` prints [`ProbeReport`]; the daemon logs it at start.

use std::fmt;

use crate::camera::v4l::{list_cameras, CameraInfo};
use crate::encoder::m2m::{self, M2mProbe};
use crate::mic::alsa::{list_microphones, MicInfo};

/// Everything found.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    /// Video capture devices.
    pub cameras: Vec<CameraInfo>,
    /// ALSA capture devices.
    pub microphones: Vec<MicInfo>,
    /// Every `/dev/video*` probed as an M2M encoder.
    pub m2m: Vec<M2mProbe>,
}

impl ProbeReport {
    /// Probes now.
    pub fn run() -> Self {
        ProbeReport { cameras: list_cameras(), microphones: list_microphones(), m2m: m2m::probe() }
    }

    /// What `auto` picks: ("HW H.264" | "SW AV1", reason).
    pub fn auto_choice(&self) -> (&'static str, String) {
        match self.m2m.iter().find(|p| p.usable) {
            Some(p) => ("HW H.264", format!("{} {} passed the probe", p.path, p.name)),
            None => ("SW AV1", "no V4L2 M2M device with H.264 on its CAPTURE queue".into()),
        }
    }
}

impl fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Cameras:")?;
        if self.cameras.is_empty() {
            writeln!(f, "  (none)")?;
        }
        for c in &self.cameras {
            writeln!(f, "  {}  {} [{}]", c.path.display(), c.card, c.driver)?;
            for fmt_ in &c.formats {
                let usable = if fmt_.pixel_format.is_some() { "" } else { " (not supported)" };
                let sizes: Vec<String> = fmt_
                    .sizes
                    .iter()
                    .map(|s| {
                        let fps: Vec<String> = s.fps.iter().map(|r| r.to_string()).collect();
                        if fps.is_empty() {
                            format!("{}x{}", s.width, s.height)
                        } else {
                            format!("{}x{}@{}", s.width, s.height, fps.join("/"))
                        }
                    })
                    .collect();
                writeln!(f, "    {}{}: {}", fmt_.fourcc, usable, sizes.join(" "))?;
            }
        }
        writeln!(f, "Microphones (ALSA capture):")?;
        if self.microphones.is_empty() {
            writeln!(f, "  (none)")?;
        }
        for m in &self.microphones {
            writeln!(f, "  {}  {}", m.name, m.description)?;
        }
        writeln!(f, "Encoders:")?;
        for p in &self.m2m {
            if p.reason.starts_with("not a memory-to-memory") {
                continue;
            }
            writeln!(
                f,
                "  hardware {} {}: {} [coded: {}; raw: {}] {}",
                p.path,
                p.name,
                if p.usable { "usable H.264 encoder" } else { "not usable" },
                p.coded_formats.join(" "),
                p.raw_formats.join(" "),
                p.reason
            )?;
        }
        if !self.m2m.iter().any(|p| p.usable) {
            writeln!(f, "  hardware: none (no V4L2 M2M device offers H.264 on its CAPTURE queue)")?;
        }
        writeln!(
            f,
            "  software rav1e: AV1, speed presets 0-10, threads, bitrate, keyframe on request (always available)"
        )?;
        writeln!(f, "  audio libopus: Opus 48 kHz, 20 ms, bitrate, in-band FEC, DTX")?;
        let (label, reason) = self.auto_choice();
        writeln!(f, "auto would pick: {label} ({reason})")
    }
}
