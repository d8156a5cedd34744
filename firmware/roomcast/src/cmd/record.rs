//! `roomcast record`: receives the stream an SDP describes (from `roomcast stream` or a box)
//! and writes it to files a laptop can play: `video.ivf` (AV1) or `video.h264` (Annex B), and
//! `audio.opus` (Ogg Opus), with the recorder the box's `[debug] record_dir` uses. Stops
//! after --seconds, or soon after both streams said BYE.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use roomcast_media::pipeline::receiver::{Receiver, ReceiverEvent, StreamKind};
use roomcast_media::pipeline::recorder::Recorder;
use roomcast_rtp::sdp::SessionDescription;

/// Command-line arguments of `roomcast record`.
#[derive(clap::Args)]
pub struct Args {
    /// The SDP of the stream.
    #[arg(long, value_name = "FILE")]
    sdp: PathBuf,
    /// Longest recording time.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    seconds: f64,
    /// Output directory (created).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Jitter-buffer latency in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    latency_ms: u64,
    /// Wait this long for the SDP file to appear.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    wait_sdp: f64,
}

enum Port {
    VideoRtp,
    VideoRtcp,
    AudioRtp,
    AudioRtcp,
}

fn bind(addr: IpAddr, port: u16) -> anyhow::Result<UdpSocket> {
    let any: IpAddr = if addr.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
    let socket = if addr.is_multicast() {
        let s = UdpSocket::bind(SocketAddr::new(any, port)).with_context(|| format!("binding port {port}"))?;
        match addr {
            IpAddr::V4(g) => s.join_multicast_v4(&g, &Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(g) => s.join_multicast_v6(&g, 0),
        }
        .with_context(|| format!("joining {addr}"))?;
        s
    } else {
        UdpSocket::bind(SocketAddr::new(addr, port))
            .or_else(|_| UdpSocket::bind(SocketAddr::new(any, port)))
            .with_context(|| format!("binding {addr}:{port}"))?
    };
    Ok(socket)
}

/// Runs `roomcast record`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let deadline_sdp = Instant::now() + Duration::from_secs_f64(args.wait_sdp.max(0.0));
    let text = loop {
        match std::fs::read_to_string(&args.sdp) {
            Ok(t) if !t.trim().is_empty() => break t,
            Err(e) if Instant::now() >= deadline_sdp => {
                return Err(e).with_context(|| format!("reading SDP {}", args.sdp.display()))
            }
            _ if Instant::now() >= deadline_sdp => bail!("SDP {} is empty", args.sdp.display()),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let sdp = SessionDescription::parse(&text).with_context(|| format!("parsing SDP {}", args.sdp.display()))?;
    let video = sdp.video().context("the SDP has no video m-line")?;
    let audio = sdp.audio().context("the SDP has no audio m-line")?;
    let addr = sdp.connection_for(video).map(|c| c.address).context("the SDP has no c= address")?;
    let audio_addr = sdp.connection_for(audio).map(|c| c.address).unwrap_or(addr);
    let mut receiver = Receiver::from_sdp(&sdp, Duration::from_millis(args.latency_ms))?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;

    let (tx, rx) = mpsc::channel::<(Port, Vec<u8>)>();
    for (port, a, kind) in [
        (video.port, addr, 0u8),
        (video.port.wrapping_add(1), addr, 1),
        (audio.port, audio_addr, 2),
        (audio.port.wrapping_add(1), audio_addr, 3),
    ] {
        let socket = bind(a, port)?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            loop {
                match socket.recv(&mut buf) {
                    Ok(n) => {
                        let which = match kind {
                            0 => Port::VideoRtp,
                            1 => Port::VideoRtcp,
                            2 => Port::AudioRtp,
                            _ => Port::AudioRtcp,
                        };
                        if tx.send((which, buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        // Stop when the receiver is gone.
                        if tx.send((Port::VideoRtcp, Vec::new())).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
    }
    drop(tx);
    eprintln!(
        "recording {} video on port {} and Opus on port {} into {}",
        video.codec.encoding_name(),
        video.port,
        audio.port,
        args.out.display()
    );

    let mut recorder = Recorder::new(&args.out, 0x726f_6f6d, receiver.audio_channels());
    recorder.open_audio()?;
    let mut byes = (false, false);
    let mut bye_at: Option<Instant> = None;
    let end = Instant::now() + Duration::from_secs_f64(args.seconds.max(0.0));

    let mut handle = |receiver: &mut Receiver, byes: &mut (bool, bool)| -> anyhow::Result<()> {
        while let Some(e) = receiver.poll_event() {
            recorder.record(&e)?;
            match e {
                ReceiverEvent::Bye(StreamKind::Video) => byes.0 = true,
                ReceiverEvent::Bye(StreamKind::Audio) => byes.1 = true,
                _ => {}
            }
        }
        Ok(())
    };

    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if byes.0 && byes.1 {
            // Let the jitter buffers drain what is in flight.
            let at = *bye_at.get_or_insert(now);
            if now >= at + Duration::from_millis(300) {
                break;
            }
        }
        let wait = receiver
            .poll_timeout()
            .map(|d| d.saturating_duration_since(now))
            .unwrap_or(Duration::from_millis(50))
            .min(Duration::from_millis(50));
        match rx.recv_timeout(wait) {
            Ok((_, data)) if data.is_empty() => {}
            Ok((Port::VideoRtp, data)) => receiver.handle_video_rtp(Instant::now(), data),
            Ok((Port::AudioRtp, data)) => receiver.handle_audio_rtp(Instant::now(), data),
            Ok((Port::VideoRtcp, data)) => receiver.handle_rtcp(StreamKind::Video, &data),
            Ok((Port::AudioRtcp, data)) => receiver.handle_rtcp(StreamKind::Audio, &data),
            Err(mpsc::RecvTimeoutError::Timeout) => receiver.handle_timeout(Instant::now()),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        handle(&mut receiver, &mut byes)?;
    }
    receiver.handle_close(Instant::now());
    handle(&mut receiver, &mut byes)?;
    let video_frames = recorder.video_frames();
    let audio_packets = recorder.audio_packets();
    let codec = recorder.video_codec().map_or("none", |c| c.name());
    recorder.finish()?;
    let stats = receiver.stats();
    eprintln!(
        "recorded {video_frames} {codec} video frames and {audio_packets} Opus packets ({} concealed) into {}",
        stats.audio_concealed,
        args.out.display()
    );
    if video_frames == 0 && audio_packets == 0 {
        bail!("nothing was received (is the sender running and sending to this host?)");
    }
    Ok(())
}
