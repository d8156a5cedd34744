//! `roomcast stream`: sends the camera's (or a looping Y4M file's, `--input`) and microphone's
//! (or a synthetic) picture and sound as RTP to HOST:PORT (video on PORT, audio on PORT+2, RTCP
//! on the odd ports), and writes the SDP a receiver (`roomcast record`, ffmpeg, GStreamer) needs.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use roomcast_media::camera::synthetic::SyntheticCamera;
use roomcast_media::camera::v4l::V4lCamera;
use roomcast_media::camera::y4m::Y4mCamera;
use roomcast_media::camera::{Camera, CameraConfig};
use roomcast_media::clock::{Clock, SystemClock};
use roomcast_media::encoder::auto::{AutoEncoder, EncoderChoice};
use roomcast_media::encoder::{EncoderConfig, VideoEncoder};
use roomcast_media::mic::alsa::AlsaMic;
use roomcast_media::mic::synthetic::SyntheticMic;
use roomcast_media::mic::Microphone;
use roomcast_media::opus::{OpusConfig, OpusEncoder};
use roomcast_media::pipeline::sender::{AudioChain, Outgoing, RunLimits, SenderPipeline, VideoChain};
use roomcast_media::pipeline::{build_sdp, StreamDescription};
use roomcast_rtp::AMT_MAX_RTP_PACKET_SIZE;

/// Command-line arguments of `roomcast stream`.
#[derive(clap::Args)]
pub struct Args {
    /// Use the synthetic test pattern and tone for whatever --camera/--mic do not give.
    #[arg(long)]
    synthetic: bool,
    /// V4L2 camera device (e.g. /dev/video0).
    #[arg(long, value_name = "DEVICE")]
    camera: Option<PathBuf>,
    /// Play a Y4M file (8-bit 4:2:0) as the camera, looping, at the file's frame rate and size.
    #[arg(long, value_name = "FILE.y4m", conflicts_with = "camera")]
    input: Option<PathBuf>,
    /// ALSA capture device (e.g. hw:Loopback,1 or plughw:1,0).
    #[arg(long, value_name = "PCM")]
    mic: Option<String>,
    /// Video encoder: auto (hardware if probed, else software), hardware, software (the default
    /// software encoder: aom when built in), rav1e, aom.
    #[arg(long, value_name = "auto|hardware|software|rav1e|aom", default_value = "auto")]
    encoder: String,
    /// Destination ADDR:PORT (a unicast receiver or a multicast group; a host name works too); audio goes
    /// to PORT+2.
    #[arg(long, value_name = "ADDR:PORT")]
    to: String,
    /// Where to write the SDP describing the stream.
    #[arg(long, value_name = "FILE")]
    sdp: PathBuf,
    /// How long to stream (counted in captured frames); without it, until killed.
    #[arg(long, value_name = "SECONDS")]
    seconds: Option<f64>,
    /// Only write the SDP (for the encoder `auto` resolves to) and exit.
    #[arg(long)]
    sdp_only: bool,
    /// Picture size WxH.
    #[arg(long, value_name = "WxH", default_value = "640x360")]
    size: String,
    /// Frames per second.
    #[arg(long, value_name = "N", default_value_t = 30)]
    fps: u32,
    /// Video bitrate in kbit/s.
    #[arg(long, value_name = "KBPS", default_value_t = 1000)]
    bitrate_kbps: u32,
    /// Opus bitrate in kbit/s.
    #[arg(long, value_name = "KBPS", default_value_t = 32)]
    audio_kbps: u32,
    /// Audio channels (1 or 2).
    #[arg(long, value_name = "1|2", default_value_t = 1)]
    channels: u8,
    /// Software speed preset (0-10; rav1e's preset, libaom's cpu-used is this minus 2, 6..=10).
    #[arg(long, value_name = "0-10", default_value_t = 10)]
    speed: u8,
    /// Software encoder threads (rav1e and libaom: one tile per thread).
    #[arg(long, value_name = "N", default_value_t = 2)]
    threads: usize,
    /// Keyframe interval in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    keyframe_seconds: f64,
    /// Largest RTP packet in bytes (default fits an AMT tunnel in a 1500-byte MTU).
    #[arg(long, value_name = "BYTES", default_value_t = AMT_MAX_RTP_PACKET_SIZE)]
    max_packet: usize,
}

/// Parses `WxH`.
pub fn parse_size(s: &str) -> anyhow::Result<(u32, u32)> {
    let (w, h) = s.split_once(['x', 'X']).with_context(|| format!("--size `{s}`: expected WxH, e.g. 640x360"))?;
    let (w, h): (u32, u32) = (w.trim().parse().context("--size width")?, h.trim().parse().context("--size height")?);
    if w < 16 || h < 16 || w % 2 != 0 || h % 2 != 0 || w > 4096 || h > 4096 {
        bail!("--size {w}x{h}: width and height must be even, 16..=4096");
    }
    Ok((w, h))
}

fn resolve(to: &str) -> anyhow::Result<SocketAddr> {
    to.to_socket_addrs()
        .with_context(|| format!("--to `{to}`: expected ADDR:PORT"))?
        .next()
        .with_context(|| format!("--to `{to}` resolves to nothing"))
}

fn local_ip_towards(dest: SocketAddr) -> IpAddr {
    let bind: SocketAddr =
        if dest.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
    UdpSocket::bind(bind)
        .and_then(|s| s.connect(dest).and_then(|_| s.local_addr()))
        .map(|a| a.ip())
        .unwrap_or(bind.ip())
}

/// Runs `roomcast stream`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (width, height) = parse_size(&args.size)?;
    if args.fps == 0 || args.fps > 120 {
        bail!("--fps {}: expected 1..=120", args.fps);
    }
    let choice: EncoderChoice = args.encoder.parse()?;
    let dest = resolve(&args.to)?;
    if dest.port() == 0 || dest.port() > 65532 {
        bail!("--to port {}: need room for PORT..PORT+3", dest.port());
    }
    if args.camera.is_none() && args.input.is_none() && !args.synthetic {
        bail!("give --camera DEV or --input FILE.y4m (and --mic DEV) or --synthetic");
    }
    if args.mic.is_none() && !args.synthetic {
        bail!("give --mic DEV (ALSA capture device) or --synthetic for a test tone");
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let want = CameraConfig { width, height, fps: args.fps };
    let camera: Box<dyn Camera> = match (&args.camera, &args.input) {
        (Some(path), _) if !args.sdp_only => Box::new(V4lCamera::open(path, want)?),
        (_, Some(file)) => {
            Box::new(Y4mCamera::open(file, clock.clone()).with_context(|| format!("--input {}", file.display()))?)
        }
        _ => Box::new(SyntheticCamera::new(want, clock.clone())?),
    };
    let format = camera.format();
    if (format.width, format.height) != (width, height) {
        tracing::warn!(camera = %camera.describe(), "camera does not offer {width}x{height}; sending {}x{}", format.width, format.height);
    }
    let mut config = EncoderConfig::new(format.width, format.height, format.fps);
    config.bitrate_bps = args.bitrate_kbps.saturating_mul(1000);
    config.speed = args.speed;
    config.threads = args.threads.max(1);
    config.keyframe_interval = ((args.keyframe_seconds * format.fps as f64).round() as u32).max(1);
    let encoder = AutoEncoder::new(choice, config)?;
    let state = encoder.state();
    eprintln!("video encoder: {state}");

    let opus = OpusConfig { channels: args.channels, bitrate_bps: args.audio_kbps * 1000, ..OpusConfig::default() };
    let description = StreamDescription {
        name: "roomcast".into(),
        origin: local_ip_towards(dest),
        destination: dest.ip(),
        port: dest.port(),
        video: encoder.codec(),
        fps: format.fps,
        audio_channels: args.channels,
        fec: opus.fec,
    };
    let sdp = build_sdp(&description).to_string();
    std::fs::write(&args.sdp, &sdp).with_context(|| format!("writing SDP to {}", args.sdp.display()))?;
    if args.sdp_only {
        print!("{sdp}");
        return Ok(());
    }

    let mic: Box<dyn Microphone> = match &args.mic {
        Some(name) => Box::new(AlsaMic::open(name, args.channels)?),
        None => Box::new(SyntheticMic::new(args.channels, clock.clone())?),
    };
    eprintln!("camera: {}\nmicrophone: {}", camera.describe(), mic.describe());

    let bind: SocketAddr =
        if dest.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
    let socket = UdpSocket::bind(bind).context("binding the sending socket")?;
    if let IpAddr::V4(a) = dest.ip() {
        if a.is_multicast() {
            socket.set_multicast_ttl_v4(16).context("multicast TTL")?;
        }
    }
    let port = |off: u16| SocketAddr::new(dest.ip(), dest.port() + off);
    let (v_rtp, v_rtcp, a_rtp, a_rtcp) = (port(0), port(1), port(2), port(3));
    let sink = Arc::new(move |p: Outgoing| {
        let (to, data) = match &p {
            Outgoing::VideoRtp(d) => (v_rtp, d),
            Outgoing::VideoRtcp(d) => (v_rtcp, d),
            Outgoing::AudioRtp(d) => (a_rtp, d),
            Outgoing::AudioRtcp(d) => (a_rtcp, d),
        };
        if let Err(e) = socket.send_to(data, to) {
            tracing::debug!(%to, "send failed: {e}");
        }
    });

    let cname = format!("roomcast@{}", description.origin);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let video = VideoChain::new(encoder, rand::random(), &cname, args.max_packet, &mut rand::rng(), clock);
    let audio = AudioChain::new(OpusEncoder::new(opus)?, rand::random(), &cname, args.max_packet, &mut rand::rng());
    let limits = match args.seconds {
        Some(s) if s >= 0.0 => RunLimits {
            video_frames: Some((s * format.fps as f64).round() as u64),
            audio_frames: Some((s * 50.0).round() as u64),
        },
        Some(s) => bail!("--seconds {s}: must not be negative"),
        None => RunLimits::default(),
    };
    let pipeline = SenderPipeline::start(camera, Some(mic), video, audio, limits, sink);
    let stop_requested = stop_on_signal();
    while !pipeline.is_finished() {
        if stop_requested.load(std::sync::atomic::Ordering::Relaxed) {
            // Finish the current frames, drain the encoder and say BYE.
            pipeline.stop();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let summary = pipeline.join();
    let mut lat: Vec<Duration> = summary.video.latencies.clone();
    lat.sort();
    let median = lat.get(lat.len() / 2).copied().unwrap_or_default();
    eprintln!(
        "sent {} video frames ({} keyframes, {} packets, capture-to-RTP median {:.1} ms), {} audio frames ({} packets)",
        summary.video.frames_out,
        summary.video.keyframes,
        summary.video.packets,
        median.as_secs_f64() * 1000.0,
        summary.audio.frames,
        summary.audio.packets
    );
    if !summary.errors.is_empty() {
        bail!("stream ended with errors: {}", summary.errors.join("; "));
    }
    Ok(())
}

/// A flag set on SIGINT or SIGTERM (a small tokio runtime thread waits for them), so the
/// stream ends with BYE instead of vanishing.
fn stop_on_signal() -> Arc<std::sync::atomic::AtomicBool> {
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = flag.clone();
    let started = std::thread::Builder::new().name("signals".into()).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async {
            let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::info!("stopping: finishing the stream with RTCP BYE");
            f.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    });
    if let Err(e) = started {
        tracing::warn!("no signal handling: {e}");
    }
    flag
}
