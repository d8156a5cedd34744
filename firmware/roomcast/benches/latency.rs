//! Latency benchmark (`cargo bench -p roomcast --bench latency`, harness = false): mouth-to-ear
//! audio and capture-to-screen video latency from one box to another through the real meeting
//! service (`roomcast server`, its AMT relay and an AMT gateway, all on loopback).
//!
//! The two boxes are the library pipelines a box runs, in this process (the `roomcast box`
//! binary has no timestamp hooks): the sending box is a marked microphone (a 40 ms 1 kHz burst
//! every 1013 ms, paced in 20 ms frames like the synthetic microphone, so a burst starts
//! anywhere in a frame) through [`AudioProcessor`] (AEC3, NS, AGC2: the `[audio]` defaults),
//! [`AudioChain`] (Opus) and the media seal, and a synthetic 640x360 camera at 15 fps through
//! [`VideoChain`] (libaom real-time, then rav1e speed 10); the receiving box is an AMT gateway,
//! [`Receiver`] (jitter buffer, depacketizer, Opus decoder), the playback thread ([`Playback`]:
//! mixer, 20 ms frames) into a synthetic speaker that timestamps the first loud sample of each
//! burst, and a screen thread like the box's (`ScreenCore`: dav1d with 2 threads, the
//! compositor at 1280x720, at most one screen per 33 ms) that timestamps each composed screen.
//!
//! Audio latency = the time the speaker plays the burst's first loud sample minus the time the
//! microphone "heard" it. Video latency = the time a composed screen holds a frame minus the
//! frame's capture time. References measured in the same run: the same pipelines with the
//! packets sent straight from sender to receiver over UDP loopback (no service, no AMT), and
//! the video encoder feeding dav1d directly (encode + decode alone, same pacing).
//! What is not in these figures: the microphone's and speaker's device buffers (ALSA: the box
//! asks for 20 ms periods and a 4-period playback buffer) and the display's scan-out.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use roomcast_display::screen::{Compositor, Layout, Status, Tile};
use roomcast_display::FrameSize;
use roomcast_media::audio_processing::{AudioProcessor, ProcessingConfig};
use roomcast_media::camera::synthetic::SyntheticCamera;
use roomcast_media::clock::SystemClock;
use roomcast_media::decode::av1::Av1Decoder;
use roomcast_media::encoder::auto::SoftwareKind;
use roomcast_media::encoder::{EncoderConfig, VideoEncoder};
use roomcast_media::frame::AudioFrame;
use roomcast_media::opus::{OpusConfig, OpusEncoder};
use roomcast_media::pipeline::receiver::{Receiver, ReceiverEvent, DEFAULT_LATENCY};
use roomcast_media::pipeline::sender::{AudioChain, Outgoing, VideoChain};
use roomcast_media::pipeline::PT_OPUS;
use roomcast_media::speaker::{Playback, Speaker};
use roomcast_meeting::client;
use roomcast_meeting::media_auth::{MediaKey, Sealer};
use roomcast_meeting::roster::{AudioCaps, Caps, JoinReply, VideoCaps};
use roomcast_net::{GatewayHandle, GatewayOptions};

const BIN: &str = env!("CARGO_BIN_EXE_roomcast");
const TOKEN: &str = "bench";
const RATE: u64 = 48_000;
const FRAME: usize = 960;
/// A burst every 1013 ms (48 624 samples: it starts at a different place in each 20 ms frame).
const MARK_EVERY: u64 = 48_624;
/// Burst `k` lasts 20, 40, 60, 80 or 100 ms (k mod 5, at 1 kHz, -12 dBFS): the speaker tells
/// which burst it heard from its length, so a latency over a second cannot be mistaken.
const MARK_KINDS: u64 = 5;
/// The speaker's onset threshold (-27 dBFS) after at least 200 ms below it.
const ONSET: i16 = 1500;
const W: u32 = 640;
const H: u32 = 360;
const FPS: u32 = 15;
/// How long each measured phase runs.
const PHASE: Duration = Duration::from_secs(20);

fn port_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
fn port_tcp() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn server(log: &Path, http: u16, media: u16, relay: u16) -> Proc {
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new(BIN)
        .args(["server", "--listen", &format!("127.0.0.1:{http}"), "--rtp-listen", &format!("127.0.0.1:{media}")])
        .args(["--relay-listen", &format!("127.0.0.1:{relay}"), "--meeting", &format!("bench:{TOKEN}")])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let p = Proc(child);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(10), "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    p
}

fn join(http: u16, room: &str) -> JoinReply {
    let caps = Caps {
        video: Some(VideoCaps {
            codec: "AV1".into(),
            payload_type: 97,
            width: W as u16,
            height: H as u16,
            fps: FPS as u16,
            fmtp: None,
        }),
        audio: Some(AudioCaps { codec: "opus".into(), payload_type: PT_OPUS, channels: 1 }),
    };
    let mut s = TcpStream::connect(("127.0.0.1", http)).unwrap();
    s.write_all(&client::join("h", "bench", TOKEN, room, &caps)).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    client::decode_join(&client::parse_response(&buf).unwrap()).unwrap()
}

/// Where the sending box's packets go.
enum Route {
    /// To the service, sealed as a box seals them.
    Service { sock: UdpSocket, to: SocketAddr, sealer: Sealer },
    /// Straight to the receiver's video and audio sockets (RTCP is not sent).
    Direct { sock: UdpSocket, video: SocketAddr, audio: SocketAddr },
}

impl Route {
    fn send(&self, o: Outgoing) {
        let _ = match (self, o) {
            (Route::Service { sock, to, sealer }, o) => {
                let (Outgoing::VideoRtp(p) | Outgoing::VideoRtcp(p) | Outgoing::AudioRtp(p) | Outgoing::AudioRtcp(p)) =
                    o;
                sock.send_to(&sealer.seal(&p), to)
            }
            (Route::Direct { sock, video, .. }, Outgoing::VideoRtp(p)) => sock.send_to(&p, video),
            (Route::Direct { sock, audio, .. }, Outgoing::AudioRtp(p)) => sock.send_to(&p, audio),
            _ => Ok(0),
        };
    }
}

/// Samples in burst `k`.
fn mark_len(k: u64) -> u64 {
    (k % MARK_KINDS + 1) * RATE / 50
}

/// The marked microphone's sample `n`.
fn mark_sample(n: u64) -> i16 {
    if n % MARK_EVERY < mark_len(n / MARK_EVERY) {
        (8192.0 * (2.0 * std::f64::consts::PI * 1000.0 * (n % MARK_EVERY) as f64 / RATE as f64).sin()) as i16
    } else {
        0
    }
}

/// The sending box's audio: the marked microphone, paced in 20 ms frames, through the
/// `[audio]` processing and Opus. Returns the instant sample 0 was "heard".
fn audio_sender(route: Arc<Route>, ssrc: u32, stop: Arc<AtomicBool>, start_tx: mpsc::Sender<Instant>) {
    let mut chain =
        AudioChain::new(OpusEncoder::new(OpusConfig::default()).unwrap(), ssrc, "A", 1200, &mut rand::rng());
    let mut apm = AudioProcessor::new(ProcessingConfig::ALL, 1).unwrap();
    let start = Instant::now();
    start_tx.send(start).unwrap();
    let mut first = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // The frame is complete once its last sample has been heard.
        let due = start + Duration::from_micros((first + FRAME as u64) * 1_000_000 / RATE);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        let now = Instant::now();
        let mut samples: Vec<i16> = (first..first + FRAME as u64).map(mark_sample).collect();
        apm.handle_render(now, &[0; FRAME]);
        apm.handle_capture(now, &mut samples).unwrap();
        let frame =
            AudioFrame { channels: 1, samples, first_sample: first, captured_at: due - Duration::from_millis(20) };
        chain.handle_frame(now, SystemTime::now(), &frame).unwrap();
        while let Some(o) = chain.poll_transmit() {
            route.send(o);
        }
        first += FRAME as u64;
    }
}

/// The first packet's RTP timestamp and capture instant (to map RTP time back to capture time).
type VideoEpoch = (u32, Instant);

/// The sending box's video: the synthetic camera at 15 fps through `kind`.
fn video_sender(
    route: Arc<Route>,
    ssrc: u32,
    kind: SoftwareKind,
    stop: Arc<AtomicBool>,
    epoch: mpsc::Sender<VideoEpoch>,
) {
    let mut cfg = EncoderConfig::new(W, H, FPS);
    cfg.bitrate_bps = 800_000;
    cfg.threads = 1;
    cfg.speed = 10;
    let encoder = kind.open(cfg).unwrap();
    let mut chain = VideoChain::new(encoder, ssrc, "A", 1200, &mut rand::rng(), Arc::new(SystemClock));
    let start = Instant::now();
    let mut first: Option<Instant> = None;
    let mut sent_epoch = false;
    for index in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let due = start + Duration::from_micros(index * 1_000_000 / u64::from(FPS));
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        let frame = SyntheticCamera::render(W, H, index, Instant::now());
        first.get_or_insert(frame.captured_at);
        chain.handle_frame(Instant::now(), SystemTime::now(), &frame).unwrap();
        while let Some(o) = chain.poll_transmit() {
            if let (Outgoing::VideoRtp(p), false) = (&o, sent_epoch) {
                // The encoders give frames out in capture order: the first packet is frame 0's.
                let ts = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
                let _ = epoch.send((ts, first.unwrap()));
                sent_epoch = true;
            }
            route.send(o);
        }
    }
}

/// Finds the bursts in a stream of 48 kHz samples: the first loud sample after at least 200 ms
/// below the threshold, and how long the burst stayed loud.
struct Onsets {
    quiet: usize,
    /// The burst being heard: its onset and its loud samples so far.
    burst: Option<(Instant, usize)>,
    found: Vec<(Instant, usize)>,
}

impl Default for Onsets {
    /// As after a long silence: a burst in the very first samples counts too.
    fn default() -> Self {
        Onsets { quiet: RATE as usize, burst: None, found: Vec::new() }
    }
}

impl Onsets {
    /// Takes `pcm`, whose first sample is heard at `begin`.
    fn feed(&mut self, begin: Instant, pcm: &[i16]) {
        let at = |i: usize| begin + Duration::from_micros(i as u64 * 1_000_000 / RATE);
        for (i, &s) in pcm.iter().enumerate() {
            if s.unsigned_abs() > ONSET as u16 {
                if self.quiet > RATE as usize / 5 {
                    self.found.extend(self.burst.take());
                    self.burst = Some((at(i), 0));
                }
                if let Some((start, _)) = self.burst {
                    let n = at(i).duration_since(start).as_micros() as u64 * RATE / 1_000_000;
                    self.burst = Some((start, n as usize + 1));
                }
                self.quiet = 0;
            } else {
                self.quiet += 1;
                if self.quiet > RATE as usize / 5 {
                    self.found.extend(self.burst.take());
                }
            }
        }
    }
}

/// A synthetic speaker at the real pace that reports when each burst's first loud sample plays
/// and how long the burst was loud.
struct StampSpeaker {
    next: Option<Instant>,
    onsets: Onsets,
    report: mpsc::Sender<(Instant, usize)>,
}

impl Speaker for StampSpeaker {
    fn describe(&self) -> String {
        "timestamping synthetic speaker".into()
    }
    fn play(&mut self, frame: &[i16]) -> roomcast_media::Result<()> {
        let now = Instant::now();
        // The frame plays from `begin` (the end of the previous frame, or now after a pause).
        let begin = self.next.filter(|n| *n > now - Duration::from_millis(100)).unwrap_or(now);
        self.onsets.feed(begin, frame);
        for b in self.onsets.found.drain(..) {
            let _ = self.report.send(b);
        }
        let next = begin + Duration::from_micros(frame.len() as u64 * 1_000_000 / RATE);
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        self.next = Some(next);
        Ok(())
    }
}

/// What the receive thread takes: (is video, RTP packet) from the gateway or the direct sockets.
type Packet = (bool, Bytes);

/// The receiving box: jitter buffers and depacketizers; audio to the playback thread, video
/// frames to the screen thread.
fn receive_thread(
    rx: mpsc::Receiver<Packet>,
    playback: roomcast_media::speaker::PlaybackTx,
    screen: mpsc::SyncSender<(u32, Vec<u8>)>,
    stop: Arc<AtomicBool>,
) -> Vec<(Instant, usize)> {
    let mut r = Receiver::new(1, PT_OPUS, DEFAULT_LATENCY).unwrap();
    // The bursts as they come out of the Opus decoder (each frame's first sample stamped "now").
    let mut decoded = Onsets::default();
    while !stop.load(Ordering::Relaxed) {
        let wait = r.poll_timeout().map_or(Duration::from_millis(50), |t| t.saturating_duration_since(Instant::now()));
        match rx.recv_timeout(wait.min(Duration::from_millis(50))) {
            Ok((true, p)) => r.handle_video_rtp(Instant::now(), p),
            Ok((false, p)) => r.handle_audio_rtp(Instant::now(), p),
            Err(RecvTimeoutError::Timeout) => r.handle_timeout(Instant::now()),
            Err(RecvTimeoutError::Disconnected) => break,
        }
        while let Some(ev) = r.poll_event() {
            match ev {
                ReceiverEvent::Video { frame, .. } => {
                    let _ = screen.try_send((frame.timestamp, frame.data.to_vec()));
                }
                ReceiverEvent::Audio { pcm, .. } | ReceiverEvent::AudioConcealed { pcm, .. } => {
                    decoded.feed(Instant::now(), &pcm);
                    playback.pcm("A", pcm);
                }
                _ => {}
            }
        }
    }
    decoded.found
}

fn status() -> Status {
    Status { room: "B".into(), meeting: "bench".into(), encoder: "SW AV1".into(), ..Default::default() }
}

/// The screen thread: dav1d, then the compositor at most every 33 ms (as the box's
/// `ScreenCore`); returns the RTP timestamp and the instant of each composed screen.
fn screen_thread(rx: mpsc::Receiver<(u32, Vec<u8>)>, stop: Arc<AtomicBool>) -> Vec<(u32, Instant)> {
    let mut dec = Av1Decoder::new(2).unwrap();
    let mut comp = Compositor::new(FrameSize::new(1280, 720), Layout::Auto);
    let mut picture = None;
    let mut last: Option<Instant> = None;
    let mut shown = Vec::new();
    let interval = Duration::from_millis(33);
    while !stop.load(Ordering::Relaxed) {
        let wait = match (&picture, last) {
            (Some(_), Some(l)) => (l + interval).saturating_duration_since(Instant::now()),
            (Some(_), None) => Duration::ZERO,
            (None, _) => Duration::from_millis(50),
        };
        match rx.recv_timeout(wait) {
            Ok((ts, data)) => {
                if dec.handle_frame(Instant::now(), ts, &data).is_ok() {
                    while let Some(p) = dec.poll_picture() {
                        picture = Some(p);
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let due = last.is_none_or(|l| Instant::now() >= l + interval);
        if let (true, Some(p)) = (due, picture.take()) {
            let tiles = [Tile { name: "A", muted: false, speaking: false, picture: Some(p.planes()) }];
            std::hint::black_box(comp.compose(&tiles, None, &status()).unwrap());
            let now = Instant::now();
            shown.push((p.timestamp, now));
            last = Some(now);
        }
    }
    shown
}

struct Figures {
    audio: Vec<Duration>,
    /// Bursts the speaker heard shorter than they were sent (their start not played).
    audio_shortened: usize,
    /// Mouth to the Opus decoder's output (before the playback queue).
    audio_decoded: Vec<Duration>,
    marks: usize,
    video: Vec<Duration>,
    frames_sent: u64,
}

fn stats(v: &mut [Duration]) -> String {
    if v.is_empty() {
        return "no samples".into();
    }
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p99 = v[((v.len() as f64 * 0.99).ceil() as usize).clamp(1, v.len()) - 1];
    format!(
        "median {:6.1} ms, p99 {:6.1} ms (min {:.1}, max {:.1}, n = {})",
        ms(v[v.len() / 2]),
        ms(p99),
        ms(v[0]),
        ms(v[v.len() - 1]),
        v.len()
    )
}

/// Each onset belongs to the latest burst heard before it that is at least as long (to the
/// nearest 20 ms): a burst may reach the speaker shortened (the playback mixer cuts a standing
/// queue, cross-fading, wherever the cut falls), never lengthened. Returns onset minus the
/// burst's time at the microphone, and how many onsets were of a shortened burst.
fn latencies(onsets: &[(Instant, usize)], mic_start: Instant) -> (Vec<Duration>, usize) {
    let (mut out, mut shortened) = (Vec::new(), 0);
    for &(at, len) in onsets {
        let kind = ((len as u64 + RATE / 100) / (RATE / 50)).clamp(1, MARK_KINDS) - 1;
        let n = at.saturating_duration_since(mic_start).as_micros() as u64 * RATE / 1_000_000;
        let Some(k) = (0..=n / MARK_EVERY).rev().find(|k| k % MARK_KINDS >= kind) else { continue };
        shortened += usize::from(k % MARK_KINDS > kind);
        out.push(at.saturating_duration_since(mic_start + Duration::from_micros(k * MARK_EVERY * 1_000_000 / RATE)));
    }
    (out, shortened)
}

/// Runs both boxes for [`PHASE`]; `route` is built once the receiving side is up.
fn run_boxes(
    route: Route,
    ssrc: (u32, u32),
    kind: SoftwareKind,
    packets: mpsc::Receiver<Packet>,
    packets_tx: mpsc::Sender<Packet>,
) -> Figures {
    let stop = Arc::new(AtomicBool::new(false));
    let (onset_tx, onset_rx) = mpsc::channel();
    let (playback, ptx) =
        Playback::spawn(Box::new(StampSpeaker { next: None, onsets: Onsets::default(), report: onset_tx }), |e| {
            panic!("{e}")
        })
        .unwrap();
    let (screen_tx, screen_rx) = mpsc::sync_channel(64);
    let st = stop.clone();
    let screen = std::thread::spawn(move || screen_thread(screen_rx, st));
    let st = stop.clone();
    let recv = std::thread::spawn(move || receive_thread(packets, ptx, screen_tx, st));
    drop(packets_tx);
    let route = Arc::new(route);
    let (start_tx, start_rx) = mpsc::channel();
    let (epoch_tx, epoch_rx) = mpsc::channel();
    let (r, st) = (route.clone(), stop.clone());
    let audio = std::thread::spawn(move || audio_sender(r, ssrc.1, st, start_tx));
    let (r, st) = (route.clone(), stop.clone());
    let video = std::thread::spawn(move || video_sender(r, ssrc.0, kind, st, epoch_tx));
    std::thread::sleep(PHASE);
    stop.store(true, Ordering::Relaxed);
    audio.join().unwrap();
    if video.join().is_err() {
        // rav1e 0.8's rate control can overflow an integer under debug assertions (--profile dev).
        println!("    (the video encoder panicked: figures cover the frames before)");
    }
    let decoded = recv.join().unwrap();
    let shown = screen.join().unwrap();
    playback.stop();
    let mic_start = start_rx.recv().unwrap();
    let onsets: Vec<(Instant, usize)> = onset_rx.try_iter().collect();
    let (audio, audio_shortened) = latencies(&onsets, mic_start);
    let audio_decoded = latencies(&decoded, mic_start).0;
    // Bursts 0, 1, ... that start within the phase.
    let marks = ((PHASE.as_micros() as u64 * RATE / 1_000_000 - 1) / MARK_EVERY + 1) as usize;
    let mut video = Vec::new();
    let frames_sent = PHASE.as_secs() * u64::from(FPS);
    if let Ok((ts0, t0)) = epoch_rx.try_recv() {
        for (ts, at) in shown {
            let captured = t0 + Duration::from_micros(u64::from(ts.wrapping_sub(ts0)) * 1000 / 90);
            video.push(at.saturating_duration_since(captured));
        }
    }
    Figures { audio, audio_shortened, audio_decoded, marks, video, frames_sent }
}

/// Encode + decode alone (the same camera, pacing and encoder; no RTP, no compose).
fn encode_decode_alone(kind: SoftwareKind) -> Vec<Duration> {
    let mut cfg = EncoderConfig::new(W, H, FPS);
    cfg.bitrate_bps = 800_000;
    cfg.threads = 1;
    cfg.speed = 10;
    let mut enc = kind.open(cfg).unwrap();
    let mut dec = Av1Decoder::new(2).unwrap();
    let start = Instant::now();
    let mut captured = HashMap::new();
    let mut out = Vec::new();
    for index in 0..u64::from(FPS) * PHASE.as_secs() / 2 {
        let due = start + Duration::from_micros(index * 1_000_000 / u64::from(FPS));
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        let frame = SyntheticCamera::render(W, H, index, Instant::now());
        captured.insert(index as u32, frame.captured_at);
        for f in enc.encode(&frame).unwrap() {
            dec.handle_frame(Instant::now(), f.index as u32, &f.data).unwrap();
            while let Some(p) = dec.poll_picture() {
                if let Some(c) = captured.get(&p.timestamp) {
                    out.push(c.elapsed());
                }
            }
        }
    }
    out
}

fn print(what: &str, mut f: Figures) {
    println!("  {what}");
    // The first burst meets the pipeline as it starts (queues filling): shown on its own.
    let first = f.audio.first().map_or("-".to_string(), |d| format!("{:.1} ms", d.as_secs_f64() * 1000.0));
    let later = stats(&mut f.audio.get(1..).unwrap_or_default().to_vec());
    println!(
        "    audio mouth-to-ear:  {}; {} of {} bursts heard, {} of them shortened (their start cut by the mixer)",
        stats(&mut f.audio),
        f.audio.len(),
        f.marks,
        f.audio_shortened
    );
    println!("      the first burst {first}; the others: {later}");
    println!("      of which mouth to Opus decoder output: {}", stats(&mut f.audio_decoded));
    println!(
        "    video capture-to-screen: {}; {} of {} frames composed",
        stats(&mut f.video),
        f.video.len(),
        f.frames_sent
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("roomcast-latency-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!(
        "latency benchmark ({} CPUs, load average {}): box A -> service -> box B on loopback, {} s per phase",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split(' ').take(3).collect::<Vec<_>>().join(" "),
        PHASE.as_secs()
    );
    println!(
        "audio: 20 ms frames, AEC3+NS+AGC2, Opus, jitter buffer {} ms max, 20 ms playout frames; video {W}x{H}@{FPS} 800 kbit/s, dav1d, compose 1280x720",
        DEFAULT_LATENCY.as_millis()
    );
    let (http, media, relay) = (port_tcp(), port_udp(), port_udp());
    let _srv = server(&dir.join("server.log"), http, media, relay);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    for kind in [SoftwareKind::Aom, SoftwareKind::Rav1e] {
        println!("\nvideo encoder {}:", kind.name());
        // Through the service: B's AMT gateway joins A's (S,G) before A sends.
        let a = join(http, &format!("A-{}", kind.name()));
        let _b = join(http, &format!("B-{}", kind.name()));
        let (tx, rx) = mpsc::channel::<Packet>();
        let sg = a.groups.ipv4;
        let gw = rt.block_on(async {
            let (g, mut deliveries) =
                GatewayHandle::spawn(GatewayOptions::new(a.relay.parse().unwrap())).await.unwrap();
            g.join(roomcast_amt::SourceGroup { source: sg.source, group: sg.group }).await.unwrap();
            let (vp, ap) = (a.ports.video, a.ports.audio);
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(d) = deliveries.recv().await {
                    let port = d.group.port();
                    if port == vp || port == ap {
                        let _ = tx.send((port == vp, d.payload));
                    }
                }
            });
            g
        });
        std::thread::sleep(Duration::from_millis(500));
        let route = Route::Service {
            sock: UdpSocket::bind("127.0.0.1:0").unwrap(),
            to: a.send_rtp_to.parse().unwrap(),
            sealer: Sealer::new(MediaKey::from_secret(&a.secret), 1),
        };
        let f = run_boxes(route, (a.ssrc.video, a.ssrc.audio), kind, rx, tx);
        rt.block_on(gw.close());
        print("A -> roomcast server (AMT relay) -> B's gateway", f);

        // Reference: straight over UDP loopback.
        let (tx, rx) = mpsc::channel::<Packet>();
        let mut addrs = Vec::new();
        for video in [true, false] {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
            addrs.push(sock.local_addr().unwrap());
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 2048];
                let deadline = Instant::now() + PHASE + Duration::from_secs(5);
                while Instant::now() < deadline {
                    if let Ok(n) = sock.recv(&mut buf) {
                        if tx.send((video, Bytes::copy_from_slice(&buf[..n]))).is_err() {
                            return;
                        }
                    }
                }
            });
        }
        let route = Route::Direct { sock: UdpSocket::bind("127.0.0.1:0").unwrap(), video: addrs[0], audio: addrs[1] };
        print("reference: A -> B over UDP loopback (no service)", run_boxes(route, (1, 2), kind, rx, tx));
        match std::panic::catch_unwind(|| encode_decode_alone(kind)) {
            Ok(mut alone) => {
                println!("  reference: encode + decode alone (capture to decoded picture): {}", stats(&mut alone))
            }
            Err(_) => println!("  reference: encode + decode alone: the encoder panicked"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
