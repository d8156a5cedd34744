//! `roomcast record`: receives the stream an SDP describes (from `roomcast stream` or a box)
//! and writes it to files a laptop can play: `video.ivf` (AV1) or `video.h264` (Annex B), and
//! `audio.opus` (Ogg Opus). Stops after --seconds, or soon after both streams said BYE.

use std::fs::File;
use std::io::BufWriter;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use roomcast_media::encoder::VideoCodec;
use roomcast_media::pipeline::receiver::{Receiver, ReceiverEvent, StreamKind};
use roomcast_rtp::annexb::AnnexBWriter;
use roomcast_rtp::ivf::{IvfHeader, IvfWriter};
use roomcast_rtp::ogg_opus::OggOpusWriter;
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

struct VideoOut {
    codec: VideoCodec,
    ivf: Option<IvfWriter<BufWriter<File>>>,
    h264: Option<AnnexBWriter<BufWriter<File>>>,
    first_ts: Option<u32>,
    frames: u64,
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

    let mut video_out: Option<VideoOut> = None;
    let channels = receiver.audio_channels();
    let opus_path = args.out.join("audio.opus");
    let mut opus = OggOpusWriter::new(
        BufWriter::new(File::create(&opus_path).with_context(|| format!("creating {}", opus_path.display()))?),
        0x726f_6f6d,
        channels,
        312,
    )?;
    let mut audio_packets = 0u64;
    let mut byes = (false, false);
    let mut bye_at: Option<Instant> = None;
    let end = Instant::now() + Duration::from_secs_f64(args.seconds.max(0.0));
    let out_dir = args.out.clone();

    let mut handle =
        |events: Vec<ReceiverEvent>, video_out: &mut Option<VideoOut>, byes: &mut (bool, bool)| -> anyhow::Result<()> {
            for e in events {
                match e {
                    ReceiverEvent::Video { codec, frame } => {
                        if video_out.as_ref().is_some_and(|v| v.codec != codec) {
                            tracing::warn!("video codec changed to {}; writing a second file", codec.name());
                            finish_video(video_out.take())?;
                        }
                        if video_out.is_none() {
                            *video_out = Some(match codec {
                                VideoCodec::Av1 => VideoOut {
                                    codec,
                                    ivf: {
                                        let (w, h) = av1_dimensions(&frame.data).unwrap_or((0, 0));
                                        Some(IvfWriter::new(
                                            BufWriter::new(File::create(out_dir.join("video.ivf"))?),
                                            IvfHeader::av1_90khz(w, h),
                                        )?)
                                    },
                                    h264: None,
                                    first_ts: None,
                                    frames: 0,
                                },
                                VideoCodec::H264 => VideoOut {
                                    codec,
                                    ivf: None,
                                    h264: Some(AnnexBWriter::new(BufWriter::new(File::create(
                                        out_dir.join("video.h264"),
                                    )?))),
                                    first_ts: None,
                                    frames: 0,
                                },
                            });
                        }
                        if let Some(v) = video_out.as_mut() {
                            let first = *v.first_ts.get_or_insert(frame.timestamp);
                            let pts = frame.timestamp.wrapping_sub(first) as u64;
                            if let Some(w) = v.ivf.as_mut() {
                                w.write_frame(pts, &frame.data)?;
                            }
                            if let Some(w) = v.h264.as_mut() {
                                w.write_access_unit(&frame.data)?;
                            }
                            v.frames += 1;
                        }
                    }
                    ReceiverEvent::Audio { opus: packet, .. } => {
                        opus.write_packet(&packet)?;
                        audio_packets += 1;
                    }
                    ReceiverEvent::AudioConcealed { .. } => {}
                    ReceiverEvent::Bye(StreamKind::Video) => byes.0 = true,
                    ReceiverEvent::Bye(StreamKind::Audio) => byes.1 = true,
                    ReceiverEvent::SenderReport(_) => {}
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
            .next_deadline()
            .map(|d| d.saturating_duration_since(now))
            .unwrap_or(Duration::from_millis(50))
            .min(Duration::from_millis(50));
        match rx.recv_timeout(wait) {
            Ok((_, data)) if data.is_empty() => {}
            Ok((Port::VideoRtp, data)) => {
                handle(receiver.push_video_rtp(data, Instant::now()), &mut video_out, &mut byes)?
            }
            Ok((Port::AudioRtp, data)) => {
                handle(receiver.push_audio_rtp(data, Instant::now()), &mut video_out, &mut byes)?
            }
            Ok((Port::VideoRtcp, data)) => {
                handle(receiver.push_rtcp(StreamKind::Video, &data), &mut video_out, &mut byes)?
            }
            Ok((Port::AudioRtcp, data)) => {
                handle(receiver.push_rtcp(StreamKind::Audio, &data), &mut video_out, &mut byes)?
            }
            Err(mpsc::RecvTimeoutError::Timeout) => handle(receiver.poll(Instant::now()), &mut video_out, &mut byes)?,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let remaining = receiver.finish();
    handle(remaining, &mut video_out, &mut byes)?;
    let video_frames = video_out.as_ref().map(|v| v.frames).unwrap_or(0);
    let codec = video_out.as_ref().map(|v| v.codec.name()).unwrap_or("none");
    finish_video(video_out)?;
    opus.finish()?;
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

/// Width and height from the sequence header of an AV1 temporal unit (for the IVF header).
fn av1_dimensions(temporal_unit: &[u8]) -> Option<(u16, u16)> {
    use roomcast_rtp::av1::obu::{parse_temporal_unit, sequence_header_dimensions, OBU_SEQUENCE_HEADER};
    let obus = parse_temporal_unit(temporal_unit).ok()?;
    let seq = obus.iter().find(|o| o.obu_type == OBU_SEQUENCE_HEADER)?;
    let (w, h) = sequence_header_dimensions(seq.payload)?;
    Some((u16::try_from(w).ok()?, u16::try_from(h).ok()?))
}

fn finish_video(v: Option<VideoOut>) -> anyhow::Result<()> {
    if let Some(v) = v {
        if let Some(w) = v.ivf {
            w.finish_seekable().map(drop)?;
        }
        if let Some(w) = v.h264 {
            w.finish().map(drop)?;
        }
    }
    Ok(())
}
