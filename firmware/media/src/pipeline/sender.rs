//! The sending side. [`VideoChain`] and [`AudioChain`] are sans-IO: fed captured frames and
//! the current time (`handle_frame(now, wall, frame)`), they queue RTP and RTCP packets
//! ([`Outgoing`]) for `poll_transmit`. RTP timestamps come from
//! the capture clock (video: 90 kHz from the capture instant; audio: the sample counter), and
//! RTCP sender reports (with SDES CNAME) go out every second, tying both to wall-clock time for
//! lip sync; [`VideoChain::handle_close`]/[`AudioChain::handle_close`] drain the encoder and say BYE.
//! The video chain reads its capture-to-RTP latency from the [`Clock`] it is given.
//!
//! [`SenderPipeline`] runs a camera and a microphone on two threads and hands every packet to
//! a sink callback (the `stream` command sends them to UDP sockets; the box daemon into its
//! AMT/multicast sender).

use rand::RngCore;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use roomcast_rtp::clock::duration_to_ticks;
use roomcast_rtp::rtcp::{encode_compound, Bye, NtpTimestamp, RtcpPacket, SdesChunk, SenderReport};
use roomcast_rtp::{Av1Packetizer, H264Packetizer, OpusPacketizer, Packetizer, OPUS_CLOCK_RATE, VIDEO_CLOCK_RATE};

use super::{video_payload_type, PT_OPUS};
use crate::camera::Camera;
use crate::clock::Clock;
use crate::encoder::adapt::{Adaptation, Mode};
use crate::encoder::auto::SharedEncoderState;
use crate::encoder::{EncodedFrame, VideoCodec, VideoEncoder};
use crate::error::{MediaError, Result};
use crate::frame::{AudioFrame, VideoFrame};
use crate::mic::Microphone;
use crate::opus::OpusEncoder;

/// How often RTCP sender reports go out.
pub const RTCP_INTERVAL: Duration = Duration::from_secs(1);

/// A packet to send, by stream and protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// Video RTP (to `port`).
    VideoRtp(Vec<u8>),
    /// Video RTCP (to `port + 1`).
    VideoRtcp(Vec<u8>),
    /// Audio RTP (to `port + 2`).
    AudioRtp(Vec<u8>),
    /// Audio RTCP (to `port + 3`).
    AudioRtcp(Vec<u8>),
}

/// RTCP state shared by both chains.
struct RtcpClock {
    ssrc: u32,
    cname: String,
    clock_rate: u32,
    /// RTP timestamp at `start`.
    base: u32,
    start: Option<Instant>,
    next_report: Option<Instant>,
}

impl RtcpClock {
    fn new(ssrc: u32, cname: &str, clock_rate: u32, base: u32) -> Self {
        RtcpClock { ssrc, cname: cname.to_string(), clock_rate, base, start: None, next_report: None }
    }
    fn rtp_time(&self, at: Instant) -> u32 {
        let start = self.start.unwrap_or(at);
        self.base.wrapping_add(duration_to_ticks(at.saturating_duration_since(start), self.clock_rate))
    }
    fn report(&mut self, now: Instant, wall: SystemTime, packetizer: &dyn Packetizer, force: bool) -> Option<Vec<u8>> {
        let due = self.next_report.map_or(true, |t| now >= t);
        if !(due || force) || packetizer.sender().packet_count == 0 {
            return None;
        }
        self.next_report = Some(now + RTCP_INTERVAL);
        let sr = SenderReport {
            ssrc: self.ssrc,
            ntp_time: NtpTimestamp::from_system_time(wall),
            rtp_time: self.rtp_time(now),
            packet_count: packetizer.sender().packet_count,
            octet_count: packetizer.sender().octet_count,
            reports: vec![],
        };
        Some(encode_compound(&[
            RtcpPacket::SenderReport(sr),
            RtcpPacket::SourceDescription(vec![SdesChunk::cname(self.ssrc, &self.cname)]),
        ]))
    }
    fn bye(&self, now: Instant, wall: SystemTime, packetizer: &dyn Packetizer) -> Vec<u8> {
        encode_compound(&[
            RtcpPacket::SenderReport(SenderReport {
                ssrc: self.ssrc,
                ntp_time: NtpTimestamp::from_system_time(wall),
                rtp_time: self.rtp_time(now),
                packet_count: packetizer.sender().packet_count,
                octet_count: packetizer.sender().octet_count,
                reports: vec![],
            }),
            RtcpPacket::SourceDescription(vec![SdesChunk::cname(self.ssrc, &self.cname)]),
            RtcpPacket::Bye(Bye { sources: vec![self.ssrc], reason: Some(b"stream ended".to_vec()) }),
        ])
    }
}

fn video_packetizer(
    codec: VideoCodec,
    ssrc: u32,
    max_packet_size: usize,
    first_sequence: u16,
) -> Box<dyn Packetizer + Send> {
    match codec {
        VideoCodec::H264 => {
            Box::new(H264Packetizer::new(ssrc, video_payload_type(codec), max_packet_size, first_sequence))
        }
        VideoCodec::Av1 => {
            Box::new(Av1Packetizer::new(ssrc, video_payload_type(codec), max_packet_size, first_sequence))
        }
    }
}

fn rtp_err(e: roomcast_rtp::RtpError) -> MediaError {
    MediaError::Rtp(e.to_string())
}

/// Counters and latencies of the video chain.
#[derive(Debug, Clone, Default)]
pub struct VideoStats {
    /// Frames captured and given to the encoder.
    pub frames_in: u64,
    /// Encoded frames packetized.
    pub frames_out: u64,
    /// Keyframes among them.
    pub keyframes: u64,
    /// RTP packets.
    pub packets: u64,
    /// Capture-to-RTP latency of every frame (capture instant to its last packet).
    pub latencies: Vec<Duration>,
    /// Codec switches (hardware failure -> software).
    pub codec_switches: u64,
}

/// Encoder + packetizer + RTCP for video (sans-IO).
pub struct VideoChain<E: VideoEncoder> {
    encoder: E,
    packetizer: Box<dyn Packetizer + Send>,
    codec: VideoCodec,
    rtcp: RtcpClock,
    max_packet_size: usize,
    stats: VideoStats,
    clock: Arc<dyn Clock>,
    out: VecDeque<Outgoing>,
}

impl<E: VideoEncoder> VideoChain<E> {
    /// A chain sending as `ssrc` with packets of at most `max_packet_size` bytes; its first
    /// sequence number and RTP timestamp (RFC 3550 5.1) come from `random`; `clock` times each
    /// frame's capture-to-RTP latency (the encoder runs inside [`VideoChain::handle_frame`]).
    pub fn new(
        encoder: E,
        ssrc: u32,
        cname: &str,
        max_packet_size: usize,
        random: &mut impl RngCore,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let codec = encoder.codec();
        VideoChain {
            packetizer: video_packetizer(codec, ssrc, max_packet_size, random.next_u32() as u16),
            encoder,
            codec,
            rtcp: RtcpClock::new(ssrc, cname, VIDEO_CLOCK_RATE, random.next_u32()),
            max_packet_size,
            stats: VideoStats::default(),
            clock,
            out: VecDeque::new(),
        }
    }

    /// The encoder (for keyframe requests and bitrate changes).
    pub fn encoder_mut(&mut self) -> &mut E {
        &mut self.encoder
    }

    /// The codec currently sent.
    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// Counters.
    pub fn stats(&self) -> &VideoStats {
        &self.stats
    }

    fn send(&mut self, frames: Vec<EncodedFrame>) -> Result<()> {
        for f in frames {
            if f.codec != self.codec {
                // Keep SSRC and sequence numbers; change payload format and type.
                let mut sender = self.packetizer.sender().clone();
                sender.payload_type = video_payload_type(f.codec);
                self.packetizer = video_packetizer(f.codec, sender.ssrc, self.max_packet_size, sender.next_sequence);
                *self.packetizer.sender_mut() = sender;
                tracing::warn!(from = self.codec.name(), to = f.codec.name(), "video codec changed mid-stream");
                self.codec = f.codec;
                self.stats.codec_switches += 1;
            }
            let ts = self.rtcp.rtp_time(f.captured_at);
            let mut packets = Vec::new();
            self.packetizer.packetize(&f.data, ts, &mut packets).map_err(rtp_err)?;
            self.stats.frames_out += 1;
            self.stats.keyframes += u64::from(f.keyframe);
            self.stats.packets += packets.len() as u64;
            self.out.extend(packets.into_iter().map(Outgoing::VideoRtp));
            self.stats.latencies.push(self.clock.now().saturating_duration_since(f.captured_at));
        }
        Ok(())
    }

    /// Encodes and packetizes one frame captured before `now` (`wall`: the same instant on the
    /// wall clock, for RTCP); queues an RTCP report too when one is due.
    pub fn handle_frame(&mut self, now: Instant, wall: SystemTime, frame: &VideoFrame) -> Result<()> {
        self.rtcp.start.get_or_insert(frame.captured_at);
        self.stats.frames_in += 1;
        let encoded = self.encoder.encode(frame)?;
        self.send(encoded)?;
        if let Some(r) = self.rtcp.report(now, wall, self.packetizer.as_ref(), false) {
            self.out.push_back(Outgoing::VideoRtcp(r));
        }
        Ok(())
    }

    /// Drains the encoder and says goodbye (SR + SDES + BYE).
    pub fn handle_close(&mut self, now: Instant, wall: SystemTime) -> Result<()> {
        let encoded = self.encoder.flush()?;
        self.send(encoded)?;
        self.out.push_back(Outgoing::VideoRtcp(self.rtcp.bye(now, wall, self.packetizer.as_ref())));
        Ok(())
    }

    /// The next packet to send.
    pub fn poll_transmit(&mut self) -> Option<Outgoing> {
        self.out.pop_front()
    }
}

/// Counters of the audio chain.
#[derive(Debug, Clone, Default)]
pub struct AudioStats {
    /// 20 ms frames encoded.
    pub frames: u64,
    /// RTP packets.
    pub packets: u64,
    /// Frames that were DTX (1-2 byte) packets.
    pub dtx_frames: u64,
}

/// Opus encoder + packetizer + RTCP for audio (sans-IO).
pub struct AudioChain {
    encoder: OpusEncoder,
    packetizer: OpusPacketizer,
    rtcp: RtcpClock,
    first_sample: Option<u64>,
    in_dtx: bool,
    stats: AudioStats,
    out: VecDeque<Outgoing>,
}

impl AudioChain {
    /// A chain sending as `ssrc`; its first sequence number and RTP timestamp come from `random`.
    pub fn new(
        encoder: OpusEncoder,
        ssrc: u32,
        cname: &str,
        max_packet_size: usize,
        random: &mut impl RngCore,
    ) -> Self {
        AudioChain {
            encoder,
            packetizer: OpusPacketizer::new(ssrc, PT_OPUS, max_packet_size, random.next_u32() as u16),
            rtcp: RtcpClock::new(ssrc, cname, OPUS_CLOCK_RATE, random.next_u32()),
            first_sample: None,
            in_dtx: false,
            stats: AudioStats::default(),
            out: VecDeque::new(),
        }
    }

    /// The Opus encoder (bitrate changes).
    pub fn encoder_mut(&mut self) -> &mut OpusEncoder {
        &mut self.encoder
    }

    /// Counters.
    pub fn stats(&self) -> &AudioStats {
        &self.stats
    }

    /// Encodes and packetizes one 20 ms frame (captured before `now`).
    pub fn handle_frame(&mut self, now: Instant, wall: SystemTime, frame: &AudioFrame) -> Result<()> {
        let first = *self.first_sample.get_or_insert(frame.first_sample);
        self.rtcp.start.get_or_insert(frame.captured_at);
        let packet = self.encoder.encode(frame)?;
        self.stats.frames += 1;
        let dtx = packet.len() <= 2;
        self.stats.dtx_frames += u64::from(dtx);
        if !dtx && self.in_dtx {
            self.packetizer.start_talkspurt();
        }
        self.in_dtx = dtx;
        let ts = self.rtcp.base.wrapping_add(frame.first_sample.wrapping_sub(first) as u32);
        let mut packets = Vec::new();
        self.packetizer.packetize(&packet, ts, &mut packets).map_err(rtp_err)?;
        self.stats.packets += packets.len() as u64;
        self.out.extend(packets.into_iter().map(Outgoing::AudioRtp));
        if let Some(r) = self.rtcp.report(now, wall, &self.packetizer, false) {
            self.out.push_back(Outgoing::AudioRtcp(r));
        }
        Ok(())
    }

    /// Says goodbye.
    pub fn handle_close(&mut self, now: Instant, wall: SystemTime) {
        self.out.push_back(Outgoing::AudioRtcp(self.rtcp.bye(now, wall, &self.packetizer)));
    }

    /// The next packet to send.
    pub fn poll_transmit(&mut self) -> Option<Outgoing> {
        self.out.pop_front()
    }
}

/// A packet sink: called from the capture threads.
pub type Sink = Arc<dyn Fn(Outgoing) + Send + Sync>;

/// What a finished [`SenderPipeline`] reports.
#[derive(Debug, Clone, Default)]
pub struct SenderReportSummary {
    /// Video counters.
    pub video: VideoStats,
    /// Audio counters.
    pub audio: AudioStats,
    /// Errors that ended a thread early.
    pub errors: Vec<String>,
}

/// Live status of a running [`SenderPipeline`] (for the display: "camera missing", errors).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderStatus {
    /// A video thread runs.
    pub video_running: bool,
    /// An audio thread runs.
    pub audio_running: bool,
    /// The camera is gone (black frames are sent while it is reopened).
    pub camera_lost: bool,
    /// The microphone is gone (silence is sent while it is reopened).
    pub mic_lost: bool,
    /// Video frames captured so far.
    pub video_frames: u64,
    /// Audio frames captured so far.
    pub audio_frames: u64,
    /// Errors that ended a thread ("video: ...", "audio: ...").
    pub errors: Vec<String>,
}

/// Camera and microphone threads feeding the chains, packets to a sink.
pub struct SenderPipeline {
    status: Arc<Mutex<SenderStatus>>,
    stop: Arc<AtomicBool>,
    video: Option<JoinHandle<std::result::Result<VideoStats, (VideoStats, String)>>>,
    audio: Option<JoinHandle<std::result::Result<AudioStats, (AudioStats, String)>>>,
    keyframe: Arc<AtomicBool>,
    bitrate: Arc<Mutex<Option<u32>>>,
    /// The adaptation controller, once [`SenderPipeline::enable_adaptation`] started it.
    adapt: Arc<Mutex<Option<Adaptation>>>,
    fps: u32,
}

/// Limits of a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunLimits {
    /// Stop after this many video frames (None: until stopped).
    pub video_frames: Option<u64>,
    /// Stop after this many audio frames (None: until stopped).
    pub audio_frames: Option<u64>,
}

impl SenderPipeline {
    /// Starts a video thread (camera) and an audio thread (microphone).
    pub fn start<E: VideoEncoder + 'static>(
        camera: Box<dyn Camera>,
        mic: Option<Box<dyn Microphone>>,
        video: VideoChain<E>,
        audio: AudioChain,
        limits: RunLimits,
        sink: Sink,
    ) -> Self {
        Self::start_with(Some(camera), mic, video, audio, limits, sink)
    }

    /// Like [`SenderPipeline::start`]; without a camera (video disabled or missing) no video
    /// thread runs and only audio is sent; without a microphone, only video.
    pub fn start_with<E: VideoEncoder + 'static>(
        camera: Option<Box<dyn Camera>>,
        mut mic: Option<Box<dyn Microphone>>,
        mut video: VideoChain<E>,
        mut audio: AudioChain,
        limits: RunLimits,
        sink: Sink,
    ) -> Self {
        let status = Arc::new(Mutex::new(SenderStatus {
            video_running: camera.is_some(),
            audio_running: mic.is_some(),
            ..SenderStatus::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let keyframe = Arc::new(AtomicBool::new(false));
        let bitrate = Arc::new(Mutex::new(None));
        let adapt: Arc<Mutex<Option<Adaptation>>> = Arc::new(Mutex::new(None));
        let fps = camera.as_ref().map_or(1, |c| c.format().fps.max(1));
        let (s, k, b, vsink, vstatus) = (stop.clone(), keyframe.clone(), bitrate.clone(), sink.clone(), status.clone());
        let ad = adapt.clone();
        let vt = camera.map(|mut camera| {
            std::thread::Builder::new().name("video-send".into()).spawn(move || {
                let mut run = |video: &mut VideoChain<E>| -> Result<()> {
                    let mut captured = 0u64;
                    while !s.load(Ordering::Relaxed)
                        && limits.video_frames.map_or(true, |n| video.stats().frames_in < n)
                    {
                        let frame = camera.capture()?;
                        {
                            let mut st = vstatus.lock().unwrap_or_else(|e| e.into_inner());
                            st.camera_lost = camera.is_lost();
                            st.video_frames += 1;
                        }
                        captured += 1;
                        // Adaptation: only every n-th camera frame is encoded while the encoder lags.
                        let divisor =
                            ad.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(1, |a| a.mode().fps_divisor);
                        if !captured.is_multiple_of(u64::from(divisor)) {
                            continue;
                        }
                        if k.swap(false, Ordering::Relaxed) {
                            video.encoder_mut().request_keyframe();
                        }
                        if let Some(bps) = b.lock().unwrap_or_else(|e| e.into_inner()).take() {
                            video.encoder_mut().set_bitrate(bps)?;
                        }
                        let started = Instant::now();
                        video.handle_frame(started, SystemTime::now(), &frame)?;
                        let finished = Instant::now();
                        let mut adapt = ad.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some(a) = adapt.as_mut() {
                            a.handle_encode(finished, finished - started);
                            if a.take_changed() {
                                tracing::info!(mode = %a.mode().label(), "video mode");
                            }
                        }
                        drop(adapt);
                        while let Some(p) = video.poll_transmit() {
                            vsink(p);
                        }
                    }
                    video.handle_close(Instant::now(), SystemTime::now())?;
                    while let Some(p) = video.poll_transmit() {
                        vsink(p);
                    }
                    Ok(())
                };
                let result = run(&mut video);
                let mut st = vstatus.lock().unwrap_or_else(|e| e.into_inner());
                st.video_running = false;
                match result {
                    Ok(()) => Ok(video.stats().clone()),
                    Err(e) => {
                        tracing::warn!("video sender stopped: {e}");
                        st.errors.push(format!("video: {e}"));
                        Err((video.stats().clone(), e.to_string()))
                    }
                }
            })
        });
        let (s, asink, astatus) = (stop.clone(), sink, status.clone());
        let at = std::thread::Builder::new().name("audio-send".into()).spawn(move || {
            let Some(mic) = mic.as_mut() else { return Ok(AudioStats::default()) };
            let mut run = |audio: &mut AudioChain| -> Result<()> {
                while !s.load(Ordering::Relaxed) && limits.audio_frames.map_or(true, |n| audio.stats().frames < n) {
                    let frame = mic.capture()?;
                    {
                        let mut st = astatus.lock().unwrap_or_else(|e| e.into_inner());
                        st.mic_lost = mic.is_lost();
                        st.audio_frames += 1;
                    }
                    audio.handle_frame(Instant::now(), SystemTime::now(), &frame)?;
                    while let Some(p) = audio.poll_transmit() {
                        asink(p);
                    }
                }
                audio.handle_close(Instant::now(), SystemTime::now());
                while let Some(p) = audio.poll_transmit() {
                    asink(p);
                }
                Ok(())
            };
            let result = run(&mut audio);
            let mut st = astatus.lock().unwrap_or_else(|e| e.into_inner());
            st.audio_running = false;
            match result {
                Ok(()) => Ok(audio.stats().clone()),
                Err(e) => {
                    tracing::warn!("audio sender stopped: {e}");
                    st.errors.push(format!("audio: {e}"));
                    Err((audio.stats().clone(), e.to_string()))
                }
            }
        });
        let video = match vt {
            Some(Ok(h)) => Some(h),
            Some(Err(e)) => {
                status.lock().unwrap_or_else(|e| e.into_inner()).errors.push(format!("video: thread: {e}"));
                None
            }
            None => None,
        };
        SenderPipeline { status, stop, video, audio: at.ok(), keyframe, bitrate, adapt, fps }
    }

    /// The live status (cheap; poll it for the display).
    pub fn status(&self) -> SenderStatus {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Asks the video encoder for a keyframe (e.g. a receiver joined).
    pub fn request_keyframe(&self) {
        self.keyframe.store(true, Ordering::Relaxed);
    }

    /// Starts adapting the video (frame rate to the encoder's speed, bitrate to reported loss;
    /// [`crate::encoder::adapt`]) from the configured `bitrate_bps`.
    pub fn enable_adaptation(&self, bitrate_bps: u32) {
        *self.adapt.lock().unwrap_or_else(|e| e.into_inner()) = Some(Adaptation::new(self.fps, bitrate_bps));
    }

    /// The current video mode, while adaptation runs.
    pub fn mode(&self) -> Option<Mode> {
        self.adapt.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(Adaptation::mode)
    }

    /// A receiver reported `fraction_lost` (1/256) on our video at `now`.
    pub fn handle_loss(&self, now: Instant, fraction_lost: u8) {
        if let Some(a) = self.adapt.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            let before = a.mode().bitrate_bps;
            a.handle_loss(now, fraction_lost);
            // Only the bitrate follows loss (the frame rate is the video thread's).
            if a.take_changed() && a.mode().bitrate_bps != before {
                tracing::info!(mode = %a.mode().label(), "video mode");
                self.set_video_bitrate(a.mode().bitrate_bps);
            }
        }
    }

    /// The flag [`SenderPipeline::request_keyframe`] sets, for a thread that hears keyframe
    /// requests (RTCP PLI) to set directly.
    pub fn keyframe_flag(&self) -> Arc<AtomicBool> {
        self.keyframe.clone()
    }

    /// Changes the video bitrate.
    pub fn set_video_bitrate(&self, bps: u32) {
        *self.bitrate.lock().unwrap_or_else(|e| e.into_inner()) = Some(bps);
    }

    /// Tells the threads to stop after their current frame.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// True once both threads have ended.
    pub fn is_finished(&self) -> bool {
        self.video.as_ref().map_or(true, |h| h.is_finished()) && self.audio.as_ref().map_or(true, |h| h.is_finished())
    }

    /// Waits for both threads.
    pub fn join(mut self) -> SenderReportSummary {
        let mut summary = SenderReportSummary::default();
        match self.video.take().map(|h| h.join()) {
            Some(Ok(Ok(v))) => summary.video = v,
            Some(Ok(Err((v, e)))) => {
                summary.video = v;
                summary.errors.push(format!("video: {e}"));
            }
            Some(Err(_)) => summary.errors.push("video thread panicked".into()),
            None => summary.errors.extend(self.status().errors.into_iter().filter(|e| e.starts_with("video: thread"))),
        }
        match self.audio.take().map(|h| h.join()) {
            Some(Ok(Ok(a))) => summary.audio = a,
            Some(Ok(Err((a, e)))) => {
                summary.audio = a;
                summary.errors.push(format!("audio: {e}"));
            }
            Some(Err(_)) => summary.errors.push("audio thread panicked".into()),
            None => summary.errors.push("audio thread did not start".into()),
        }
        summary
    }
}

/// Keeps the encoder state reachable next to a pipeline (for the display).
#[derive(Clone)]
pub struct SenderHandle {
    /// The encoder state ("HW H.264" / "SW AV1" + reason).
    pub encoder_state: SharedEncoderState,
}
