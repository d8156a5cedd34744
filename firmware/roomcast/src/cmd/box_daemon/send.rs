//! Sending this room: opens the camera and microphone the configuration names (synthetic or
//! real), the encoder `auto`/`hardware`/`software` resolves to, and runs
//! `roomcast_media`'s sender pipeline with the SSRCs the meeting service gave, every RTP/RTCP
//! packet going to the service's media port. The microphone passes through a mute gate that
//! also measures its level for the display. [`Sending::status`] is the pipeline's live
//! status (camera or microphone lost), which the display's "missing devices" list follows.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use roomcast_crypt::{Protector, SRTCP_OVERHEAD};
use roomcast_media::audio_processing::{AudioProcessor, FarEnd, ProcessingConfig};
use roomcast_media::camera::synthetic::SyntheticCamera;
use roomcast_media::camera::y4m::Y4mCamera;
use roomcast_media::camera::{Camera, CameraConfig};
use roomcast_media::clock::{Clock, SystemClock};
use roomcast_media::encoder::auto::{AutoEncoder, AutoOptions, EncoderChoice, SharedEncoderState, SoftwareKind};
use roomcast_media::encoder::{EncoderConfig, VideoCodec, VideoEncoder};
use roomcast_media::frame::AudioFrame;
use roomcast_media::mic::synthetic::SyntheticMic;
use roomcast_media::mic::Microphone;
use roomcast_media::opus::{OpusConfig, OpusEncoder};
use roomcast_media::pipeline::sender::{
    AudioChain, Outgoing, RunLimits, SenderPipeline, SenderStatus, Sink, VideoChain,
};
use roomcast_media::pipeline::{video_payload_type, PT_OPUS};
use roomcast_meeting::config::Config;
use roomcast_meeting::media_auth::{Sealer, Verifier};
use roomcast_meeting::roster::{AudioCaps, Caps, Ssrcs, VideoCaps};
use roomcast_rtp::AMT_MAX_RTP_PACKET_SIZE;

/// Largest plain RTP packet: SRTP/SRTCP adds its tag and index inside the AMT limit.
const MAX_PLAIN_PACKET: usize = AMT_MAX_RTP_PACKET_SIZE - SRTCP_OVERHEAD;

use roomcast_media::mixer::{level_dbfs, SILENCE_DBFS};

/// Mute switch and level meter between the microphone and the encoder.
#[derive(Clone)]
pub struct MicGate {
    /// Muted: frames are replaced by silence.
    pub muted: Arc<AtomicBool>,
    /// Level of the last frame in dBFS (f32 bits), measured before muting.
    pub level: Arc<AtomicU32>,
    /// What the loudspeaker played: the echo canceller's far end (the playback thread fills it).
    pub far_end: FarEnd,
}

impl MicGate {
    /// A gate, muted or not.
    pub fn new(muted: bool) -> Self {
        Self {
            muted: Arc::new(AtomicBool::new(muted)),
            level: Arc::new(AtomicU32::new(SILENCE_DBFS.to_bits())),
            far_end: FarEnd::new(),
        }
    }
    /// Level in dBFS.
    pub fn level_dbfs(&self) -> f32 {
        f32::from_bits(self.level.load(Ordering::Relaxed))
    }
}

struct GatedMic {
    inner: Box<dyn Microphone>,
    gate: MicGate,
    /// Echo cancellation, noise suppression, gain (`[audio]`), before the level and the mute.
    processor: Option<AudioProcessor>,
}

impl Microphone for GatedMic {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn channels(&self) -> u8 {
        self.inner.channels()
    }
    fn capture(&mut self) -> roomcast_media::Result<AudioFrame> {
        let mut f = self.inner.capture()?;
        if let Some(p) = self.processor.as_mut() {
            let now = Instant::now();
            p.handle_render(now, &self.gate.far_end.take());
            if let Err(e) = p.handle_capture(now, &mut f.samples) {
                tracing::warn!("{e}; microphone sent unprocessed from now on");
                self.processor = None;
            }
        }
        self.gate.level.store(level_dbfs(&f.samples).to_bits(), Ordering::Relaxed);
        if self.gate.muted.load(Ordering::Relaxed) {
            f.samples.iter_mut().for_each(|s| *s = 0);
        }
        Ok(f)
    }
    fn is_lost(&self) -> bool {
        self.inner.is_lost()
    }
}

/// The devices and encoder, opened before joining (the join names the codec).
pub struct Devices {
    camera: Option<Box<dyn Camera>>,
    mic: Option<Box<dyn Microphone>>,
    encoder: Option<AutoEncoder>,
    /// The encoder's state (label and reason) for the display.
    pub encoder_state: Option<SharedEncoderState>,
    /// What the join announces.
    pub caps: Caps,
    /// Devices that could not be opened.
    pub missing: Vec<String>,
    /// Why, one line each.
    pub problems: Vec<String>,
    opus: OpusConfig,
    /// The configured video bitrate (where adaptation starts from).
    video_bitrate_bps: u32,
}

fn open_camera(cfg: &Config, board_camera: &str) -> Result<Box<dyn Camera>, String> {
    let cc = CameraConfig { width: cfg.video.width, height: cfg.video.height, fps: cfg.video.fps };
    let source = if cfg.video.source == "auto" { board_camera } else { cfg.video.source.as_str() };
    match source {
        "synthetic" => SyntheticCamera::new(cc, Arc::new(SystemClock))
            .map(|c| Box::new(c) as Box<dyn Camera>)
            .map_err(|e| e.to_string()),
        y4m if y4m.starts_with("y4m:") => Y4mCamera::open(std::path::Path::new(&y4m[4..]), Arc::new(SystemClock))
            .map(|c| Box::new(c) as Box<dyn Camera>)
            .map_err(|e| format!("{y4m}: {e}")),
        other => super::devices::open_v4l_camera(other, cc),
    }
}

fn open_mic(cfg: &Config, board_mic: &str) -> Result<Box<dyn Microphone>, String> {
    let source = if cfg.audio.source == "auto" { board_mic } else { cfg.audio.source.as_str() };
    match source {
        "synthetic" => SyntheticMic::new(cfg.audio.channels, Arc::new(SystemClock))
            .map(|m| Box::new(m) as Box<dyn Microphone>)
            .map_err(|e| e.to_string()),
        other => super::devices::open_alsa_mic(other, cfg.audio.channels),
    }
}

/// The board's software encoder (`[video] software_encoder`, default from the board profile) and
/// the `[video] debug_slow_encoder_ms` test hook; encode times measured on the system clock.
fn encoder_options(cfg: &Config) -> AutoOptions {
    let software = match cfg.video.software_encoder.parse::<SoftwareKind>() {
        Ok(kind) => kind,
        Err(e) => {
            tracing::warn!(value = %cfg.video.software_encoder, "video.software_encoder: {e}; using the default");
            SoftwareKind::DEFAULT
        }
    };
    let slow = (cfg.video.debug_slow_encoder_ms > 0)
        .then(|| (software, std::time::Duration::from_millis(cfg.video.debug_slow_encoder_ms.into())));
    AutoOptions { software, slow, ..AutoOptions::default() }
}

impl Devices {
    /// Opens what `cfg` asks for; what fails is listed in `missing`/`problems` and left out.
    pub fn open(cfg: &Config, board_camera: &str, board_mic: &str, gate: &MicGate) -> Self {
        let mut missing = Vec::new();
        let mut problems = Vec::new();
        let mut caps = Caps::default();
        let (mut camera, mut encoder, mut encoder_state) = (None, None, None);
        if cfg.video.enabled {
            match open_camera(cfg, board_camera) {
                Ok(cam) => {
                    let f = cam.format();
                    let ec = EncoderConfig {
                        width: f.width,
                        height: f.height,
                        fps: f.fps.max(1),
                        bitrate_bps: cfg.video.bitrate_kbps * 1000,
                        keyframe_interval: (f.fps.max(1) * cfg.video.keyframe_interval_s).max(1),
                        speed: cfg.video.software_speed,
                        threads: usize::from(cfg.video.threads),
                    };
                    let choice: EncoderChoice = cfg.video.encoder.parse().unwrap_or_default();
                    match AutoEncoder::with_options(choice, ec, encoder_options(cfg)) {
                        Ok(enc) => {
                            let codec = enc.codec();
                            tracing::info!(camera = %cam.describe(), encoder = %enc.state().label(), reason = %enc.state().reason(), "video ready");
                            caps.video = Some(VideoCaps {
                                codec: match codec {
                                    VideoCodec::Av1 => "AV1".into(),
                                    VideoCodec::H264 => "H264".into(),
                                },
                                payload_type: video_payload_type(codec),
                                width: f.width as u16,
                                height: f.height as u16,
                                fps: f.fps as u16,
                                fmtp: match codec {
                                    VideoCodec::H264 => Some(format!(
                                        "packetization-mode=1;profile-level-id={}",
                                        roomcast_media::pipeline::H264_PROFILE_LEVEL_ID
                                    )),
                                    VideoCodec::Av1 => None,
                                },
                            });
                            encoder_state = Some(enc.shared_state());
                            encoder = Some(enc);
                            camera = Some(cam);
                        }
                        Err(e) => problems.push(format!("video encoder: {e}")),
                    }
                }
                Err(e) => {
                    missing.push("camera".to_string());
                    problems.push(format!("camera: {e}"));
                }
            }
        }
        let mut mic = None;
        if cfg.audio.enabled {
            match open_mic(cfg, board_mic) {
                Ok(m) => {
                    caps.audio =
                        Some(AudioCaps { codec: "opus".into(), payload_type: PT_OPUS, channels: m.channels() });
                    let a = &cfg.audio;
                    let processing = ProcessingConfig {
                        echo_cancellation: a.echo_cancellation,
                        noise_suppression: a.noise_suppression,
                        auto_gain: a.auto_gain,
                    };
                    let processor = match AudioProcessor::new(processing, m.channels()) {
                        Ok(p) => processing.any().then_some(p),
                        Err(e) => {
                            problems.push(format!("audio processing: {e}"));
                            None
                        }
                    };
                    mic = Some(Box::new(GatedMic { inner: m, gate: gate.clone(), processor }) as Box<dyn Microphone>);
                }
                Err(e) => {
                    missing.push("microphone".to_string());
                    problems.push(format!("microphone: {e}"));
                }
            }
        }
        let opus = OpusConfig {
            channels: caps.audio.as_ref().map_or(1, |a| a.channels),
            bitrate_bps: cfg.audio.bitrate_kbps * 1000,
            fec: cfg.audio.fec,
            expected_loss_percent: 5,
            dtx: cfg.audio.dtx,
        };
        let video_bitrate_bps = cfg.video.bitrate_kbps * 1000;
        Self { camera, mic, encoder, encoder_state, caps, missing, problems, opus, video_bitrate_bps }
    }
}

impl Devices {
    /// `[screen] self_view`: the camera's frames also go to the screen (paced, raw).
    pub fn show_self_view(&mut self, feed: super::screen::ScreenFeed) {
        if let Some(cam) = self.camera.take() {
            self.camera = Some(Box::new(super::self_view::SelfViewCamera::new(cam, feed)));
        }
    }
}

/// The devices missing now: those missing at start, then "camera" / "microphone" while the
/// sender's status says the device is lost (each name once).
pub fn missing_devices(at_start: &[String], status: &SenderStatus) -> Vec<String> {
    let mut missing = at_start.to_vec();
    for (lost, name) in [(status.camera_lost, "camera"), (status.mic_lost, "microphone")] {
        if lost && !missing.iter().any(|m| m == name) {
            missing.push(name.to_string());
        }
    }
    missing
}

/// Counters of what was sent.
#[derive(Default)]
pub struct SendCounters {
    /// Video RTP packets.
    pub video_packets: AtomicU64,
    /// Audio RTP packets.
    pub audio_packets: AtomicU64,
    /// Video frames (RTP packets with the marker bit).
    pub video_frames: AtomicU64,
    /// Bytes of everything.
    pub bytes: AtomicU64,
    /// Send errors.
    pub errors: AtomicU64,
    /// Packets SRTP refused to protect (not sent).
    pub encrypt_errors: AtomicU64,
}

/// The running sender.
pub struct Sending {
    pipeline: Option<SenderPipeline>,
    audio_only: Option<AudioOnly>,
    /// Counters.
    pub counters: Arc<SendCounters>,
    feedback: Option<super::feedback::Feedback>,
}

/// The audio-only sender (no camera): its stop flag, thread and live status.
struct AudioOnly {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
    status: Arc<Mutex<SenderStatus>>,
}

/// The media key the sender protects with, shared with the session driver (which rekeys it).
pub type SharedProtector = Arc<Mutex<Protector>>;

/// The box's send edge: every packet is first SRTP-protected end to end with this box's current
/// key (`crypt`), then sealed with the hop-by-hop media authentication trailer for the service
/// (`roomcast_meeting::media_auth`; the service verifies and strips it and forwards the ciphertext).
fn sink_to(
    sock: Arc<UdpSocket>,
    target: SocketAddr,
    counters: Arc<SendCounters>,
    crypt: SharedProtector,
    sealer: Arc<Sealer>,
) -> Sink {
    Arc::new(move |out: Outgoing| {
        let bytes = match &out {
            Outgoing::VideoRtp(b) => {
                counters.video_packets.fetch_add(1, Ordering::Relaxed);
                if b.get(1).is_some_and(|m| m & 0x80 != 0) {
                    counters.video_frames.fetch_add(1, Ordering::Relaxed);
                }
                b
            }
            Outgoing::AudioRtp(b) => {
                counters.audio_packets.fetch_add(1, Ordering::Relaxed);
                b
            }
            Outgoing::VideoRtcp(b) | Outgoing::AudioRtcp(b) => b,
        };
        let protected = match crypt.lock().unwrap_or_else(|e| e.into_inner()).protect(bytes) {
            Ok(p) => p,
            Err(e) => {
                counters.encrypt_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("srtp protect: {e}");
                return;
            }
        };
        counters.bytes.fetch_add(protected.len() as u64, Ordering::Relaxed);
        if sock.send_to(&sealer.seal(&protected), target).is_err() {
            counters.errors.fetch_add(1, Ordering::Relaxed);
        }
    })
}

impl Sending {
    /// Starts sending `devices` as `ssrc` to `target` (the service's media port), every packet
    /// protected with `crypt`'s current key, then sealed by `sealer` for the service (the
    /// participant's authentication key); `downlink` verifies the service's keyframe requests
    /// to us (the participant's downlink key). RTCP feedback (RR, PLI) is for the service to
    /// read and route: sealed, not SRTP-protected.
    pub fn start(
        devices: Devices,
        ssrc: Ssrcs,
        cname: &str,
        target: SocketAddr,
        crypt: SharedProtector,
        sealer: Sealer,
        downlink: Verifier,
    ) -> std::io::Result<Self> {
        let bind: SocketAddr =
            if target.is_ipv4() { "0.0.0.0:0".parse().expect("addr") } else { "[::]:0".parse().expect("addr") };
        let sock = Arc::new(UdpSocket::bind(bind)?);
        let counters = Arc::new(SendCounters::default());
        let sealer = Arc::new(sealer);
        let sink = sink_to(sock.clone(), target, counters.clone(), crypt, sealer.clone());
        let feedback = |keyframe| {
            let auth = super::feedback::Auth { sealer: sealer.clone(), downlink: downlink.clone() };
            match super::feedback::Feedback::start(sock.clone(), target, ssrc.video, auth, keyframe) {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::warn!("RTCP feedback: {e}");
                    None
                }
            }
        };
        let audio = match (&devices.mic, OpusEncoder::new(devices.opus)) {
            (Some(_), Ok(enc)) => Some(AudioChain::new(enc, ssrc.audio, cname, MAX_PLAIN_PACKET, &mut rand::rng())),
            (Some(_), Err(e)) => {
                tracing::warn!("opus encoder: {e}; sending no audio");
                None
            }
            _ => None,
        };
        let Devices { camera, mic, encoder, video_bitrate_bps, .. } = devices;
        match (camera, encoder) {
            (Some(camera), Some(encoder)) => {
                let clock: Arc<dyn Clock> = Arc::new(SystemClock);
                let video = VideoChain::new(encoder, ssrc.video, cname, MAX_PLAIN_PACKET, &mut rand::rng(), clock);
                // The pipeline wants an audio chain even without a mic (it then stays idle).
                let audio = match audio {
                    Some(a) => a,
                    None => AudioChain::new(
                        OpusEncoder::new(OpusConfig::default()).map_err(std::io::Error::other)?,
                        ssrc.audio,
                        cname,
                        MAX_PLAIN_PACKET,
                        &mut rand::rng(),
                    ),
                };
                let mic = if mic.is_some() { mic } else { None };
                let pipeline = SenderPipeline::start(camera, mic, video, audio, RunLimits::default(), sink);
                pipeline.enable_adaptation(video_bitrate_bps);
                let feedback = feedback(Some(pipeline.keyframe_flag()));
                Ok(Self { pipeline: Some(pipeline), audio_only: None, counters, feedback })
            }
            _ => {
                // No video: run the audio chain alone.
                let stop = Arc::new(AtomicBool::new(false));
                let (Some(mut mic), Some(mut chain)) = (mic, audio) else {
                    return Ok(Self { pipeline: None, audio_only: None, counters, feedback: feedback(None) });
                };
                let s = stop.clone();
                let status = Arc::new(Mutex::new(SenderStatus { audio_running: true, ..SenderStatus::default() }));
                let st = status.clone();
                let handle = std::thread::Builder::new().name("audio-send".into()).spawn(move || {
                    while !s.load(Ordering::Relaxed) {
                        let captured = mic.capture();
                        {
                            let mut st = st.lock().unwrap_or_else(|e| e.into_inner());
                            st.mic_lost = mic.is_lost();
                            if captured.is_ok() {
                                st.audio_frames += 1;
                            }
                        }
                        match captured {
                            Ok(frame) => match chain.handle_frame(Instant::now(), SystemTime::now(), &frame) {
                                Ok(()) => std::iter::from_fn(|| chain.poll_transmit()).for_each(|p| sink(p)),
                                Err(e) => tracing::warn!("audio encoder: {e}"),
                            },
                            Err(e) => {
                                tracing::warn!("microphone: {e}");
                                std::thread::sleep(std::time::Duration::from_millis(500));
                            }
                        }
                    }
                    chain.handle_close(Instant::now(), SystemTime::now());
                    std::iter::from_fn(|| chain.poll_transmit()).for_each(|p| sink(p));
                    st.lock().unwrap_or_else(|e| e.into_inner()).audio_running = false;
                })?;
                let audio_only = Some(AudioOnly { stop, thread: handle, status });
                Ok(Self { pipeline: None, audio_only, counters, feedback: feedback(None) })
            }
        }
    }

    /// Asks the video encoder for a keyframe (someone joined).
    pub fn request_keyframe(&self) {
        if let Some(p) = &self.pipeline {
            p.request_keyframe();
        }
    }

    /// The adapted video mode, while video is sent.
    pub fn mode(&self) -> Option<roomcast_media::encoder::adapt::Mode> {
        self.pipeline.as_ref().and_then(SenderPipeline::mode)
    }

    /// Another room reported `fraction_lost` (1/256) on our video.
    pub fn handle_loss(&self, now: Instant, fraction_lost: u8) {
        if let Some(p) = &self.pipeline {
            p.handle_loss(now, fraction_lost);
        }
    }

    /// Sends a receiver's RTCP feedback (RR, PLI) to the service from the media socket.
    pub fn send_feedback(&self, data: &[u8]) {
        if let Some(f) = &self.feedback {
            f.send(data);
        }
    }

    /// True when a capture thread ended by itself (device lost, encoder failed).
    pub fn ended(&self) -> bool {
        self.pipeline.as_ref().is_some_and(|p| p.is_finished())
            || self.audio_only.as_ref().is_some_and(|a| a.thread.is_finished())
    }

    /// The live status: the pipeline's own (camera/microphone lost, frames, errors), or the
    /// audio-only sender's equivalent; all false/zero when nothing is sent.
    pub fn status(&self) -> SenderStatus {
        match (&self.pipeline, &self.audio_only) {
            (Some(p), _) => p.status(),
            (None, Some(a)) => a.status.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            (None, None) => SenderStatus::default(),
        }
    }

    /// Stops the threads; their last packets include RTCP BYE. Blocks until they end.
    pub fn stop(mut self) -> Vec<String> {
        let mut errors = Vec::new();
        self.feedback = None;
        if let Some(p) = self.pipeline.take() {
            p.stop();
            errors = p.join().errors;
        }
        if let Some(a) = self.audio_only.take() {
            a.stop.store(true, Ordering::Relaxed);
            let _ = a.thread.join();
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomcast_media::frame::AUDIO_FRAME_SAMPLES;
    use std::time::Duration;

    /// A microphone whose device is gone: silence, and `is_lost()` true.
    struct LostMic;

    impl Microphone for LostMic {
        fn describe(&self) -> String {
            "lost".into()
        }
        fn channels(&self) -> u8 {
            1
        }
        fn capture(&mut self) -> roomcast_media::Result<AudioFrame> {
            std::thread::sleep(Duration::from_millis(5));
            Ok(AudioFrame {
                channels: 1,
                samples: vec![0; AUDIO_FRAME_SAMPLES],
                first_sample: 0,
                captured_at: Instant::now(),
            })
        }
        fn is_lost(&self) -> bool {
            true
        }
    }

    #[test]
    fn missing_devices_adds_lost_devices_once_and_keeps_those_missing_at_start() {
        let lost = |camera_lost, mic_lost| SenderStatus { camera_lost, mic_lost, ..SenderStatus::default() };
        assert!(missing_devices(&[], &lost(false, false)).is_empty());
        assert_eq!(missing_devices(&[], &lost(true, false)), ["camera"]);
        assert_eq!(missing_devices(&[], &lost(false, true)), ["microphone"]);
        assert_eq!(missing_devices(&["microphone".into()], &lost(true, true)), ["microphone", "camera"]);
        assert_eq!(missing_devices(&["camera".into()], &lost(false, false)), ["camera"]);
    }

    #[test]
    fn a_lost_microphone_behind_the_gate_makes_the_status_list_microphone() {
        let gate = MicGate::new(false);
        let devices = Devices {
            camera: None,
            mic: Some(Box::new(GatedMic { inner: Box::new(LostMic), gate, processor: None }) as Box<dyn Microphone>),
            encoder: None,
            encoder_state: None,
            caps: Caps::default(),
            missing: Vec::new(),
            problems: Vec::new(),
            opus: OpusConfig::default(),
            video_bitrate_bps: 0,
        };
        let sink = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let target = sink.local_addr().expect("addr");
        let ssrc = Ssrcs { video: 1, audio: 2 };
        let key = roomcast_crypt::SrtpKey::from_os(0);
        let crypt = Arc::new(Mutex::new(Protector::new(key.clone()).expect("key")));
        let auth = roomcast_meeting::media_auth::MediaKey::from_secret("test secret");
        let downlink = Verifier::new(roomcast_meeting::media_auth::MediaKey::downlink_from_secret("test secret"));
        let sending =
            Sending::start(devices, ssrc, "test", target, crypt, Sealer::new(auth, 1), downlink).expect("start");
        // What leaves the socket is SRTP under the box's key, then the service's trailer.
        sink.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut buf = [0u8; 2048];
        let n = sink.recv(&mut buf).expect("a packet");
        let mut verifier = roomcast_meeting::media_auth::Verifier::new(
            roomcast_meeting::media_auth::MediaKey::from_secret("test secret"),
        );
        let srtp = verifier.verify(&buf[..n]).expect("sealed for the service").packet;
        assert_eq!(srtp.len() + roomcast_meeting::media_auth::TRAILER_LEN, n);
        let mut rx = roomcast_crypt::Unprotector::new(key).expect("key");
        let plain = rx.unprotect(Instant::now(), srtp).expect("decrypts with the box's key");
        assert_eq!(plain.len() + roomcast_crypt::SRTP_OVERHEAD, srtp.len());
        assert_eq!(u32::from_be_bytes(plain[8..12].try_into().unwrap()), 2, "the audio SSRC");
        let mut stranger = roomcast_crypt::Unprotector::new(roomcast_crypt::SrtpKey::from_os(0)).expect("key");
        assert!(stranger.unprotect(Instant::now(), srtp).is_err());
        let deadline = Instant::now() + Duration::from_secs(5);
        while !sending.status().mic_lost && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let status = sending.status();
        assert!(status.mic_lost, "{status:?}");
        assert!(status.audio_running && status.audio_frames > 0, "{status:?}");
        assert_eq!(missing_devices(&[], &status), ["microphone"]);
        assert!(sending.stop().is_empty());
    }
}
