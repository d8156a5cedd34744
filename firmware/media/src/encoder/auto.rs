//! Encoder selection: `software` (the board's software AV1 encoder, [`AutoOptions::software`]:
//! `[devices] software_encoder`, else libaom real-time when built with the `aom` feature, else
//! rav1e), `rav1e` or `aom` by name, `hardware` (V4L2 M2M H.264, error if absent) or `auto`
//! (hardware when the probe passes, else the software encoder; and if the hardware encoder fails
//! mid-stream, software from the next frame on).
//!
//! `auto` and `software` keep measuring each frame's encode time against the frame budget
//! (1/fps, [`super::budget::BudgetWatch`]: 75 % of the last second's frames over budget) on the
//! injected [`Clock`]; running rav1e over budget they step to libaom (the cheaper one), flushing
//! rav1e's held frames first. Both software encoders produce AV1 in the same RTP payload
//! format, so the SDP is the same. Every choice is logged with its reason and kept as
//! [`EncoderState`] for the display ("HW H.264" / "SW AV1" + reason).
//!
//! After a fallback the codec changes from H.264 to AV1: callers watch
//! [`VideoEncoder::codec`] (or the state) and switch packetizer and payload type.

use std::fmt;
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};

use super::budget::BudgetWatch;
use super::m2m::{self, linux::LinuxM2m, M2mEncoder};
use super::rav1e::Rav1eEncoder;
use super::slow::SlowEncoder;
use super::{EncodedFrame, EncoderConfig, VideoCodec, VideoEncoder};
use crate::clock::{Clock, SystemClock};
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

    /// The name used in config files and logs (`rav1e`, `libaom`).
    pub fn name(self) -> &'static str {
        match self {
            SoftwareKind::Rav1e => "rav1e",
            SoftwareKind::Aom => "libaom",
        }
    }

    /// The cheaper encoder to step down to when this one cannot keep the frame rate.
    pub fn cheaper(self) -> Option<SoftwareKind> {
        match self {
            SoftwareKind::Rav1e if cfg!(feature = "aom") => Some(SoftwareKind::Aom),
            _ => None,
        }
    }

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

impl std::str::FromStr for SoftwareKind {
    type Err = MediaError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "rav1e" => Ok(SoftwareKind::Rav1e),
            "aom" | "libaom" => Ok(SoftwareKind::Aom),
            other => Err(MediaError::Config(format!("software encoder `{other}`: expected aom or rav1e"))),
        }
    }
}

impl EncoderChoice {
    /// The software encoder this choice runs when it runs one (`default`: the board's).
    pub fn software_kind(self, default: SoftwareKind) -> SoftwareKind {
        match self {
            EncoderChoice::Rav1e => SoftwareKind::Rav1e,
            EncoderChoice::Aom => SoftwareKind::Aom,
            EncoderChoice::Auto | EncoderChoice::Hardware | EncoderChoice::Software => default,
        }
    }

    /// Whether this choice may step to a cheaper software encoder (not when one is named).
    pub fn may_step_down(self) -> bool {
        matches!(self, EncoderChoice::Auto | EncoderChoice::Software)
    }
}

/// How [`AutoEncoder`] opens and watches its software encoder.
#[derive(Clone)]
pub struct AutoOptions {
    /// The board's software encoder (what `software`, `auto` without hardware and the fallback run).
    pub software: SoftwareKind,
    /// The clock encode times are measured on.
    pub clock: Arc<dyn Clock>,
    /// Test hook (`[video] debug_slow_encoder_ms`): this software encoder is slowed by this much
    /// per frame ([`SlowEncoder`] on `clock`).
    pub slow: Option<(SoftwareKind, Duration)>,
}

impl Default for AutoOptions {
    fn default() -> Self {
        AutoOptions { software: SoftwareKind::DEFAULT, clock: Arc::new(SystemClock), slow: None }
    }
}

impl AutoOptions {
    fn open(&self, kind: SoftwareKind, config: EncoderConfig) -> Result<Box<dyn VideoEncoder>> {
        let enc = kind.open(config)?;
        Ok(match self.slow {
            Some((slow, delay)) if slow == kind && !delay.is_zero() => {
                tracing::warn!(encoder = kind.name(), ?delay, "debug: software encoder slowed on purpose");
                Box::new(SlowEncoder::new(enc, delay, self.clock.clone()))
            }
            _ => enc,
        })
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
    options: AutoOptions,
    current: Box<dyn VideoEncoder>,
    /// The software encoder running, `None` while hardware runs.
    running: Option<SoftwareKind>,
    state: SharedEncoderState,
    keyframe_pending: bool,
    watch: BudgetWatch,
    /// Set when the watch tripped: the next `encode` switches to this encoder.
    step_to: Option<(SoftwareKind, String)>,
}

impl AutoEncoder {
    /// Resolves `choice` on this machine (probing `/dev/video*` for hardware) with the default
    /// options (the build's default software encoder, the system clock).
    pub fn new(choice: EncoderChoice, config: EncoderConfig) -> Result<Self> {
        Self::with_options(choice, config, AutoOptions::default())
    }

    /// Resolves `choice` on this machine with `options` (the board's software encoder, ...).
    pub fn with_options(choice: EncoderChoice, config: EncoderConfig, options: AutoOptions) -> Result<Self> {
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
        Self::with_hardware_options(choice, config, hardware, options)
    }

    /// Like [`AutoEncoder::new`] with the hardware result given (tests pass a fake device):
    /// `Ok((encoder, device, reason))` or `Err(reason hardware is unavailable)`.
    pub fn with_hardware(
        choice: EncoderChoice,
        config: EncoderConfig,
        hardware: std::result::Result<(Box<dyn VideoEncoder>, String, String), String>,
    ) -> Result<Self> {
        Self::with_hardware_options(choice, config, hardware, AutoOptions::default())
    }

    /// [`AutoEncoder::with_hardware`] with `options`.
    pub fn with_hardware_options(
        choice: EncoderChoice,
        config: EncoderConfig,
        hardware: std::result::Result<(Box<dyn VideoEncoder>, String, String), String>,
        options: AutoOptions,
    ) -> Result<Self> {
        let software = choice.software_kind(options.software);
        let (current, running, state): (Box<dyn VideoEncoder>, _, EncoderState) = match (choice, hardware) {
            (EncoderChoice::Software, _) => (
                options.open(software, config)?,
                Some(software),
                EncoderState::Software { reason: format!("software requested ({})", software.name()) },
            ),
            (EncoderChoice::Rav1e | EncoderChoice::Aom, _) => (
                options.open(software, config)?,
                Some(software),
                EncoderState::Software { reason: format!("{software:?} requested") },
            ),
            (_, Ok((enc, device, reason))) => (enc, None, EncoderState::Hardware { device, reason }),
            (EncoderChoice::Hardware, Err(why)) => {
                return Err(MediaError::encoder(
                    "hardware",
                    format!("hardware encoder requested but unavailable: {why}"),
                ))
            }
            (EncoderChoice::Auto, Err(why)) => {
                (options.open(software, config)?, Some(software), EncoderState::Software { reason: why })
            }
        };
        tracing::info!(encoder = %current.describe(), state = %state, "video encoder chosen");
        Ok(AutoEncoder {
            choice,
            config,
            current,
            running,
            state: Arc::new(Mutex::new(state)),
            keyframe_pending: false,
            watch: BudgetWatch::new(config.fps),
            step_to: None,
            options,
        })
    }

    /// The software encoder running (`None` while the hardware one runs).
    pub fn software_running(&self) -> Option<SoftwareKind> {
        self.running
    }

    /// One frame took `took` to encode, finishing at `now` (sans-IO entry of the budget watch;
    /// [`VideoEncoder::encode`] calls it with times from the options' clock). When the running
    /// software encoder has been over budget for the watch's window and a cheaper one exists,
    /// the next `encode` steps to it.
    pub fn handle_encode_time(&mut self, now: Instant, took: Duration) {
        let Some(kind) = self.running else { return };
        if !self.choice.may_step_down() || self.step_to.is_some() {
            return;
        }
        let Some(verdict) = self.watch.handle_frame(now, took) else { return };
        match kind.cheaper() {
            Some(cheaper) => {
                let reason = format!("stepped down from {} to {}: {verdict}", kind.name(), cheaper.name());
                tracing::warn!(%reason, "software encoder over its frame budget");
                self.step_to = Some((cheaper, reason));
            }
            None => tracing::warn!(encoder = kind.name(), %verdict, "over the frame budget, no cheaper encoder"),
        }
    }

    /// Switches to the stepped-down encoder: the old one's held frames first, then the new one
    /// (which starts with a keyframe).
    fn step_down(&mut self, kind: SoftwareKind, reason: String) -> Result<Vec<EncodedFrame>> {
        let next = self.options.open(kind, self.config)?;
        let held = self.current.flush()?;
        self.current = next;
        self.running = Some(kind);
        self.watch.reset();
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = EncoderState::Software { reason };
        tracing::info!(encoder = %self.current.describe(), "video encoder switched");
        Ok(held)
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
        let kind = self.choice.software_kind(self.options.software);
        self.current = self.options.open(kind, self.config)?;
        self.running = Some(kind);
        self.watch.reset();
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
        let mut out = match self.step_to.take() {
            Some((kind, reason)) => self.step_down(kind, reason)?,
            None => Vec::new(),
        };
        if std::mem::take(&mut self.keyframe_pending) {
            self.current.request_keyframe();
        }
        let started = self.options.clock.now();
        match self.current.encode(frame) {
            Ok(frames) => out.extend(frames),
            Err(e) if self.choice == EncoderChoice::Auto && self.current.codec() == VideoCodec::H264 => {
                self.fall_back(&e)?;
                out.extend(self.current.encode(frame)?);
            }
            Err(e) => return Err(e),
        }
        let done = self.options.clock.now();
        self.handle_encode_time(done, done.saturating_duration_since(started));
        Ok(out)
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
    use crate::clock::ManualClock;
    use crate::encoder::m2m::fake::{FakeM2m, FakeSpec};

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
        let kind = SoftwareKind::DEFAULT.name();
        assert_eq!(enc.state(), EncoderState::Software { reason: format!("software requested ({kind})") });
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

    /// rav1e as the board's software encoder, slowed by `delay` per frame on a manual clock.
    fn slowed_rav1e(choice: EncoderChoice, delay: Duration, clock: &ManualClock) -> AutoEncoder {
        let options = AutoOptions {
            software: SoftwareKind::Rav1e,
            clock: Arc::new(clock.clone()),
            slow: Some((SoftwareKind::Rav1e, delay)),
        };
        let mut c = cfg();
        c.fps = 15;
        AutoEncoder::with_hardware_options(choice, c, Err("no hardware".into()), options).unwrap()
    }

    /// Runs `n` frames paced at 15 fps on the manual clock; returns every (index, keyframe) out
    /// and the index of the first frame libaom encoded.
    fn run(enc: &mut AutoEncoder, clock: &ManualClock, n: u64) -> (Vec<(u64, bool)>, Option<u64>) {
        let (mut out, mut first_aom) = (Vec::new(), None);
        let mut next = clock.now();
        for i in 0..n {
            // The camera's next frame (the manual clock only moves forward).
            next += Duration::from_secs(1) / 15;
            clock.sleep_until(next);
            let frame = SyntheticCamera::render(64, 48, i, clock.now());
            let frames = enc.encode(&frame).unwrap();
            if first_aom.is_none() && enc.software_running() == Some(SoftwareKind::Aom) {
                first_aom = Some(i);
            }
            for f in frames {
                assert_eq!(f.codec, VideoCodec::Av1);
                out.push((f.index, f.keyframe));
            }
        }
        out.extend(enc.flush().unwrap().into_iter().map(|f| (f.index, f.keyframe)));
        (out, first_aom)
    }

    #[test]
    fn slow_rav1e_steps_down_to_libaom_after_a_second_over_budget() {
        let clock = ManualClock::new();
        // 100 ms per frame against a 66.7 ms budget (15 fps).
        let mut enc = slowed_rav1e(EncoderChoice::Software, Duration::from_millis(100), &clock);
        assert_eq!(enc.software_running(), Some(SoftwareKind::Rav1e));
        let shared = enc.shared_state();
        let (frames, first_aom) = run(&mut enc, &clock, 30);
        // Every frame out once, in order, across the switch (rav1e's held frames flushed first).
        assert_eq!(frames.iter().map(|f| f.0).collect::<Vec<_>>(), (0..30).collect::<Vec<_>>());
        if !cfg!(feature = "aom") {
            assert_eq!(enc.software_running(), Some(SoftwareKind::Rav1e), "nothing cheaper without libaom");
            return;
        }
        assert_eq!(enc.software_running(), Some(SoftwareKind::Aom));
        let state = shared.lock().unwrap().clone();
        assert_eq!(state.label(), "SW AV1");
        assert!(state.reason().starts_with("stepped down from rav1e to libaom: "), "{state}");
        assert!(state.reason().contains("over the 66.7 ms budget"), "{state}");
        let first_aom = first_aom.unwrap();
        assert!(frames[first_aom as usize].1, "libaom starts with a keyframe");
        // The window is one second: 100 ms frames trip it after about 10 of them, not before 9.
        assert!((9..=16).contains(&first_aom), "stepped at frame {first_aom}");
    }

    #[test]
    fn rav1e_within_budget_or_named_never_steps() {
        let clock = ManualClock::new();
        let mut fast = slowed_rav1e(EncoderChoice::Auto, Duration::from_millis(30), &clock);
        run(&mut fast, &clock, 40);
        assert_eq!(fast.software_running(), Some(SoftwareKind::Rav1e));
        assert_eq!(fast.state().reason(), "no hardware");
        // `rav1e` by name stays rav1e however slow it is.
        let mut named = slowed_rav1e(EncoderChoice::Rav1e, Duration::from_millis(200), &clock);
        run(&mut named, &clock, 20);
        assert_eq!(named.software_running(), Some(SoftwareKind::Rav1e));
    }

    #[test]
    fn software_kind_names() {
        assert_eq!("rav1e".parse::<SoftwareKind>().unwrap(), SoftwareKind::Rav1e);
        assert_eq!("aom".parse::<SoftwareKind>().unwrap(), SoftwareKind::Aom);
        assert!("x264".parse::<SoftwareKind>().is_err());
        assert_eq!(EncoderChoice::Software.software_kind(SoftwareKind::Rav1e), SoftwareKind::Rav1e);
        assert_eq!(EncoderChoice::Aom.software_kind(SoftwareKind::Rav1e), SoftwareKind::Aom);
    }
}
