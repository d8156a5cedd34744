//! Encoder selection: `software` (the default software AV1 encoder: libaom real-time when built
//! with the `aom` feature, else rav1e), `rav1e` or `aom` by name, `hardware` (V4L2 M2M H.264,
//! error if absent) or `auto` (hardware when the probe passes, else the default software
//! encoder; and if the hardware encoder fails mid-stream, software from the next frame on).
//! Both software encoders produce AV1 in the same RTP payload format, so the SDP is the same. Every choice is logged with its reason and
//! kept as [`EncoderState`] for the display ("HW H.264" / "SW AV1" + reason).
//!
//! After a fallback the codec changes from H.264 to AV1: callers watch
//! [`VideoEncoder::codec`] (or the state) and switch packetizer and payload type.

use std::fmt;
use std::sync::{Arc, Mutex};

use super::m2m::{self, linux::LinuxM2m, M2mEncoder};
use super::rav1e::Rav1eEncoder;
use super::{EncodedFrame, EncoderConfig, VideoCodec, VideoEncoder};
use crate::error::{MediaError, Result};
use crate::frame::VideoFrame;

/// What the user asked for (`--encoder`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncoderChoice {
    /// Hardware if it works, else software.
    #[default]
    Auto,
    /// Hardware or fail.
    Hardware,
    /// The default software encoder ([`SoftwareKind::DEFAULT`]).
    Software,
    /// rav1e.
    Rav1e,
    /// libaom in real-time mode.
    Aom,
}

/// The software AV1 encoders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoftwareKind {
    /// rav1e (holds 4 frames).
    Rav1e,
    /// libaom real-time (holds none; far less CPU per frame).
    Aom,
}

impl SoftwareKind {
    /// What `software` and the fallbacks use: libaom when built in, else rav1e.
    pub const DEFAULT: SoftwareKind = if cfg!(feature = "aom") { SoftwareKind::Aom } else { SoftwareKind::Rav1e };

    /// A new encoder of this kind.
    pub fn open(self, config: EncoderConfig) -> Result<Box<dyn VideoEncoder>> {
        match self {
            SoftwareKind::Rav1e => Ok(Box::new(Rav1eEncoder::new(config)?)),
            #[cfg(feature = "aom")]
            SoftwareKind::Aom => Ok(Box::new(super::aom::AomEncoder::new(config)?)),
            #[cfg(not(feature = "aom"))]
            SoftwareKind::Aom => Err(MediaError::encoder("libaom", "this build has no libaom (cargo feature `aom`)")),
        }
    }
}

impl EncoderChoice {
    /// The software encoder this choice runs when it runs one.
    pub fn software_kind(self) -> SoftwareKind {
        match self {
            EncoderChoice::Rav1e => SoftwareKind::Rav1e,
            EncoderChoice::Aom => SoftwareKind::Aom,
            EncoderChoice::Auto | EncoderChoice::Hardware | EncoderChoice::Software => SoftwareKind::DEFAULT,
        }
    }
}

impl std::str::FromStr for EncoderChoice {
    type Err = MediaError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(EncoderChoice::Auto),
            "hardware" | "hw" => Ok(EncoderChoice::Hardware),
            "software" | "sw" => Ok(EncoderChoice::Software),
            "rav1e" => Ok(EncoderChoice::Rav1e),
            "aom" | "libaom" => Ok(EncoderChoice::Aom),
            other => {
                Err(MediaError::Config(format!("encoder `{other}`: expected auto, hardware, software, rav1e or aom")))
            }
        }
    }
}

/// Which encoder runs and why: what the display shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncoderState {
    /// The hardware H.264 encoder runs.
    Hardware {
        /// Device path.
        device: String,
        /// Why it was picked.
        reason: String,
    },
    /// The software AV1 encoder runs.
    Software {
        /// Why software ("requested", "no M2M H.264 encoder found", "hardware failed: ...").
        reason: String,
    },
}

impl EncoderState {
    /// Short label: "HW H.264" or "SW AV1".
    pub fn label(&self) -> &'static str {
        match self {
            EncoderState::Hardware { .. } => "HW H.264",
            EncoderState::Software { .. } => "SW AV1",
        }
    }
    /// The reason.
    pub fn reason(&self) -> &str {
        match self {
            EncoderState::Hardware { reason, .. } | EncoderState::Software { reason } => reason,
        }
    }
}

impl fmt::Display for EncoderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.label(), self.reason())
    }
}

/// A shared, cloneable view of the state (the display thread reads it).
pub type SharedEncoderState = Arc<Mutex<EncoderState>>;

/// The encoder `auto`/`hardware`/`software` resolve to.
pub struct AutoEncoder {
    choice: EncoderChoice,
    config: EncoderConfig,
    current: Box<dyn VideoEncoder>,
    state: SharedEncoderState,
    keyframe_pending: bool,
}

impl AutoEncoder {
    /// Resolves `choice` on this machine (probing `/dev/video*` for hardware).
    pub fn new(choice: EncoderChoice, config: EncoderConfig) -> Result<Self> {
        let hardware = if !matches!(choice, EncoderChoice::Auto | EncoderChoice::Hardware) {
            Err("software requested".to_string())
        } else {
            match m2m::find_encoder() {
                None => Err("no V4L2 M2M H.264 encoder found".to_string()),
                Some(p) => match LinuxM2m::open(std::path::Path::new(&p.path)) {
                    Err(e) => Err(format!("{}: {e}", p.path)),
                    Ok(dev) => match M2mEncoder::new(dev, config) {
                        Ok(enc) => Ok((
                            Box::new(enc) as Box<dyn VideoEncoder>,
                            p.path.clone(),
                            format!("{} passed the probe", p.name),
                        )),
                        Err(e) => Err(format!("hardware encoder setup failed: {e}")),
                    },
                },
            }
        };
        Self::with_hardware(choice, config, hardware)
    }

    /// Like [`AutoEncoder::new`] with the hardware result given (tests pass a fake device):
    /// `Ok((encoder, device, reason))` or `Err(reason hardware is unavailable)`.
    pub fn with_hardware(
        choice: EncoderChoice,
        config: EncoderConfig,
        hardware: std::result::Result<(Box<dyn VideoEncoder>, String, String), String>,
    ) -> Result<Self> {
        let software = choice.software_kind();
        let (current, state): (Box<dyn VideoEncoder>, EncoderState) = match (choice, hardware) {
            (EncoderChoice::Software, _) => {
                (software.open(config)?, EncoderState::Software { reason: "software requested".into() })
            }
            (EncoderChoice::Rav1e | EncoderChoice::Aom, _) => {
                (software.open(config)?, EncoderState::Software { reason: format!("{software:?} requested") })
            }
            (_, Ok((enc, device, reason))) => (enc, EncoderState::Hardware { device, reason }),
            (EncoderChoice::Hardware, Err(why)) => {
                return Err(MediaError::encoder(
                    "hardware",
                    format!("hardware encoder requested but unavailable: {why}"),
                ))
            }
            (EncoderChoice::Auto, Err(why)) => (software.open(config)?, EncoderState::Software { reason: why }),
        };
        tracing::info!(encoder = %current.describe(), state = %state, "video encoder chosen");
        Ok(AutoEncoder { choice, config, current, state: Arc::new(Mutex::new(state)), keyframe_pending: false })
    }

    /// The current state.
    pub fn state(&self) -> EncoderState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A handle to the state that stays current.
    pub fn shared_state(&self) -> SharedEncoderState {
        self.state.clone()
    }

    fn fall_back(&mut self, error: &MediaError) -> Result<()> {
        let reason = format!("hardware failed: {error}");
        tracing::warn!(%reason, "falling back to the software encoder");
        self.current = self.choice.software_kind().open(self.config)?;
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = EncoderState::Software { reason };
        Ok(())
    }
}

impl VideoEncoder for AutoEncoder {
    fn codec(&self) -> VideoCodec {
        self.current.codec()
    }
    fn describe(&self) -> String {
        self.current.describe()
    }
    fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<EncodedFrame>> {
        if std::mem::take(&mut self.keyframe_pending) {
            self.current.request_keyframe();
        }
        match self.current.encode(frame) {
            Ok(out) => Ok(out),
            Err(e) if self.choice == EncoderChoice::Auto && self.current.codec() == VideoCodec::H264 => {
                self.fall_back(&e)?;
                self.current.encode(frame)
            }
            Err(e) => Err(e),
        }
    }
    fn request_keyframe(&mut self) {
        self.keyframe_pending = true;
    }
    fn set_bitrate(&mut self, bitrate_bps: u32) -> Result<()> {
        self.config.bitrate_bps = bitrate_bps;
        match self.current.set_bitrate(bitrate_bps) {
            Err(e) if self.choice == EncoderChoice::Auto && self.current.codec() == VideoCodec::H264 => {
                self.fall_back(&e)
            }
            r => r,
        }
    }
    fn flush(&mut self) -> Result<Vec<EncodedFrame>> {
        self.current.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::synthetic::SyntheticCamera;
    use crate::encoder::m2m::fake::{FakeM2m, FakeSpec};
    use std::time::Instant;

    fn cfg() -> EncoderConfig {
        let mut c = EncoderConfig::new(64, 48, 30);
        c.bitrate_bps = 200_000;
        c
    }

    fn fake_hw(fail_after: Option<u64>) -> std::result::Result<(Box<dyn VideoEncoder>, String, String), String> {
        let (dev, _) = FakeM2m::new(FakeSpec { fail_after, ..FakeSpec::default() });
        Ok((Box::new(M2mEncoder::new(dev, cfg()).unwrap()), "/dev/fake-m2m".into(), "fake passed the probe".into()))
    }

    #[test]
    fn auto_prefers_hardware_and_falls_back_mid_stream() {
        let mut enc = AutoEncoder::with_hardware(EncoderChoice::Auto, cfg(), fake_hw(Some(3))).unwrap();
        assert_eq!(enc.state().label(), "HW H.264");
        let shared = enc.shared_state();
        let mut codecs = Vec::new();
        for i in 0..8 {
            for f in enc.encode(&SyntheticCamera::render(64, 48, i, Instant::now())).unwrap() {
                codecs.push((f.index, f.codec, f.keyframe));
            }
        }
        codecs.extend(enc.flush().unwrap().into_iter().map(|f| (f.index, f.codec, f.keyframe)));
        let state = shared.lock().unwrap().clone();
        assert_eq!(state.label(), "SW AV1");
        assert!(state.reason().starts_with("hardware failed"), "{state}");
        assert_eq!(enc.codec(), VideoCodec::Av1);
        // H.264 frames first, then AV1 starting with a keyframe at the frame that failed.
        let first_av1 = codecs.iter().position(|c| c.1 == VideoCodec::Av1).unwrap();
        assert!(codecs[..first_av1].iter().all(|c| c.1 == VideoCodec::H264));
        assert!(codecs[first_av1].2, "software starts with a keyframe");
        assert_eq!(codecs.last().unwrap().0, 7);
    }

    #[test]
    fn auto_without_hardware_uses_software_with_reason() {
        let enc = AutoEncoder::with_hardware(EncoderChoice::Auto, cfg(), Err("no V4L2 M2M H.264 encoder found".into()))
            .unwrap();
        assert_eq!(enc.state().to_string(), "SW AV1 (no V4L2 M2M H.264 encoder found)");
    }

    #[test]
    fn hardware_choice_fails_without_hardware_and_never_falls_back() {
        assert!(AutoEncoder::with_hardware(EncoderChoice::Hardware, cfg(), Err("none".into())).is_err());
        let mut enc = AutoEncoder::with_hardware(EncoderChoice::Hardware, cfg(), fake_hw(Some(1))).unwrap();
        let r: Result<Vec<_>> =
            (0..4).map(|i| enc.encode(&SyntheticCamera::render(64, 48, i, Instant::now()))).collect();
        assert!(r.is_err());
        assert_eq!(enc.state().label(), "HW H.264");
    }

    #[test]
    fn software_choice_ignores_hardware() {
        let enc = AutoEncoder::with_hardware(EncoderChoice::Software, cfg(), fake_hw(None)).unwrap();
        assert_eq!(enc.state(), EncoderState::Software { reason: "software requested".into() });
        assert_eq!("sw".parse::<EncoderChoice>().unwrap(), EncoderChoice::Software);
        assert!("fast".parse::<EncoderChoice>().is_err());
    }

    #[test]
    fn software_encoders_by_name_give_the_same_codec() {
        let sw = AutoEncoder::with_hardware(EncoderChoice::Software, cfg(), fake_hw(None)).unwrap();
        assert_eq!(sw.describe().starts_with("libaom"), cfg!(feature = "aom"), "{}", sw.describe());
        let rav1e = AutoEncoder::with_hardware("rav1e".parse().unwrap(), cfg(), fake_hw(None)).unwrap();
        assert!(rav1e.describe().starts_with("rav1e"), "{}", rav1e.describe());
        assert_eq!(rav1e.state().reason(), "Rav1e requested");
        let aom = AutoEncoder::with_hardware("aom".parse().unwrap(), cfg(), fake_hw(None));
        if cfg!(feature = "aom") {
            let aom = aom.unwrap();
            assert!(aom.describe().starts_with("libaom"), "{}", aom.describe());
            // Same codec, so the same SDP and RTP payload format for either.
            assert_eq!(aom.codec(), rav1e.codec());
        } else {
            assert!(aom.is_err());
        }
        let fallback = AutoEncoder::with_hardware(EncoderChoice::Auto, cfg(), Err("none".into())).unwrap();
        assert_eq!(fallback.describe().starts_with("libaom"), cfg!(feature = "aom"));
    }
}
