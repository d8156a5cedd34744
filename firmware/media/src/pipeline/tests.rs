//! Sender chains into the receiver core, in memory, on a manual clock.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::receiver::{Receiver, ReceiverEvent, StreamKind, DEFAULT_LATENCY};
use super::sender::{AudioChain, Outgoing, VideoChain};
use super::*;
use crate::camera::synthetic::SyntheticCamera;
use crate::camera::{Camera, CameraConfig};
use crate::clock::{Clock, ManualClock};
use crate::encoder::auto::{AutoEncoder, EncoderChoice};
use crate::encoder::m2m::fake::{FakeM2m, FakeSpec};
use crate::encoder::m2m::M2mEncoder;
use crate::encoder::rav1e::Rav1eEncoder;
use crate::encoder::{EncoderConfig, VideoEncoder};
use crate::mic::synthetic::SyntheticMic;
use crate::mic::Microphone;
use crate::opus::{OpusConfig, OpusEncoder};

/// A fixed RNG: the chains' first sequence numbers and timestamps are the same on every run.
fn seeded() -> rand::rngs::StdRng {
    rand::SeedableRng::seed_from_u64(7)
}

fn system_clock() -> Arc<dyn Clock> {
    Arc::new(crate::clock::SystemClock)
}

/// Hands every packet the sender queued (`poll_transmit`) to the receiver at `now`.
fn deliver(
    rx: &mut Receiver,
    mut poll_transmit: impl FnMut() -> Option<Outgoing>,
    now: Instant,
    events: &mut Vec<ReceiverEvent>,
) {
    while let Some(p) = poll_transmit() {
        match p {
            Outgoing::VideoRtp(d) => rx.handle_video_rtp(now, d),
            Outgoing::AudioRtp(d) => rx.handle_audio_rtp(now, d),
            Outgoing::VideoRtcp(d) => rx.handle_rtcp(StreamKind::Video, &d),
            Outgoing::AudioRtcp(d) => rx.handle_rtcp(StreamKind::Audio, &d),
        }
    }
    events.extend(std::iter::from_fn(|| rx.poll_event()));
}

/// The receiver's end of stream at `now`: everything it still holds.
fn close(rx: &mut Receiver, now: Instant) -> Vec<ReceiverEvent> {
    rx.handle_close(now);
    std::iter::from_fn(|| rx.poll_event()).collect()
}

#[test]
fn av1_and_opus_go_through_rtp_and_come_back() {
    let clock = ManualClock::new();
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    let mut cam = SyntheticCamera::new(CameraConfig { width: 64, height: 48, fps: 25 }, shared.clone()).unwrap();
    let mut mic = SyntheticMic::new(1, shared.clone()).unwrap();
    let mut cfg = EncoderConfig::new(64, 48, 25);
    cfg.bitrate_bps = 200_000;
    let mut video =
        VideoChain::new(Rav1eEncoder::new(cfg).unwrap(), 1, "test@roomcast", 1200, &mut seeded(), shared.clone());
    let mut audio =
        AudioChain::new(OpusEncoder::new(OpusConfig::default()).unwrap(), 2, "test@roomcast", 1200, &mut seeded());
    let mut rx = Receiver::new(1, PT_OPUS, DEFAULT_LATENCY).unwrap();
    let mut events = Vec::new();
    for i in 0..50 {
        let a = mic.capture().unwrap();
        audio.handle_frame(clock.now(), SystemTime::now(), &a).unwrap();
        deliver(&mut rx, || audio.poll_transmit(), clock.now(), &mut events);
        if i % 2 == 0 {
            let f = cam.capture().unwrap();
            video.handle_frame(clock.now(), SystemTime::now(), &f).unwrap();
            deliver(&mut rx, || video.poll_transmit(), clock.now(), &mut events);
        }
    }
    video.handle_close(clock.now(), SystemTime::now()).unwrap();
    deliver(&mut rx, || video.poll_transmit(), clock.now(), &mut events);
    audio.handle_close(clock.now(), SystemTime::now());
    deliver(&mut rx, || audio.poll_transmit(), clock.now(), &mut events);
    events.extend(close(&mut rx, clock.now()));

    let video_frames: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ReceiverEvent::Video { frame, codec } => Some((frame, *codec)),
            _ => None,
        })
        .collect();
    assert_eq!(video_frames.len(), 25, "every video frame arrives");
    assert!(video_frames[0].0.keyframe && video_frames.iter().all(|(_, c)| *c == VideoCodec::Av1));
    // RTP timestamps advance by 90000/25 per frame.
    let ts: Vec<u32> = video_frames.iter().map(|(f, _)| f.timestamp).collect();
    assert!(ts.windows(2).all(|w| w[1].wrapping_sub(w[0]) == 3600), "{ts:?}");
    let audio_frames: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ReceiverEvent::Audio { pcm, timestamp, .. } => Some((pcm.len(), *timestamp)),
            _ => None,
        })
        .collect();
    assert_eq!(audio_frames.len(), 50);
    assert!(audio_frames.iter().all(|(n, _)| *n == 960));
    assert!(audio_frames.windows(2).all(|w| w[1].1.wrapping_sub(w[0].1) == 960));
    assert_eq!(events.iter().filter(|e| matches!(e, ReceiverEvent::Bye(_))).count(), 2);
    assert!(events.iter().any(|e| matches!(e, ReceiverEvent::SenderReport(StreamKind::Video))));
    assert_eq!(video.stats().latencies.len(), 25);
}

#[test]
fn lost_audio_is_concealed_with_fec() {
    let clock = ManualClock::new();
    let mut mic = SyntheticMic::new(1, Arc::new(clock.clone())).unwrap();
    let mut audio = AudioChain::new(
        OpusEncoder::new(OpusConfig { fec: true, expected_loss_percent: 20, ..OpusConfig::default() }).unwrap(),
        2,
        "t",
        1200,
        &mut seeded(),
    );
    let mut rx = Receiver::new(1, PT_OPUS, std::time::Duration::from_millis(40)).unwrap();
    let mut events = Vec::new();
    for i in 0..20 {
        audio.handle_frame(clock.now(), SystemTime::now(), &mic.capture().unwrap()).unwrap();
        let out: Vec<_> = std::iter::from_fn(|| audio.poll_transmit())
            .filter(|p| !(i == 10 && matches!(p, Outgoing::AudioRtp(_))))
            .collect();
        let mut out = out.into_iter();
        deliver(&mut rx, || out.next(), clock.now(), &mut events);
        rx.handle_timeout(clock.now());
        events.extend(std::iter::from_fn(|| rx.poll_event()));
    }
    events.extend(close(&mut rx, clock.now()));
    let concealed: Vec<bool> = events
        .iter()
        .filter_map(|e| match e {
            ReceiverEvent::AudioConcealed { fec, .. } => Some(*fec),
            _ => None,
        })
        .collect();
    assert_eq!(concealed, vec![true]);
    assert_eq!(rx.stats().audio_frames, 19);
    let reception = rx.reception(StreamKind::Audio).expect("audio arrived");
    assert_eq!(reception.expected_and_received(), (20, 19), "the dropped packet counts as lost");
    assert!(rx.reception(StreamKind::Video).is_none());
}

#[test]
fn reception_counts_sequence_gaps_across_wraparound() {
    fn rtp(seq: u16, ssrc: u8) -> Vec<u8> {
        let mut p = vec![0x80, PT_OPUS];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, ssrc, 0xf8]);
        p
    }
    let now = Instant::now();
    let mut rx = Receiver::new(1, PT_OPUS, DEFAULT_LATENCY).unwrap();
    for seq in [65530u16, 65531, 65533, 65534, 0, 1, 3] {
        rx.handle_audio_rtp(now, rtp(seq, 1));
    }
    assert_eq!(rx.reception(StreamKind::Audio).unwrap().expected_and_received(), (10, 7));
    rx.handle_audio_rtp(now, b"garbage".to_vec());
    assert_eq!(rx.reception(StreamKind::Audio).unwrap().expected_and_received(), (10, 7));
    assert_eq!(rx.stats().rejected, 1);
    // A new SSRC (the sender restarted) starts the count again.
    rx.handle_audio_rtp(now, rtp(100, 2));
    let r = rx.reception(StreamKind::Audio).unwrap();
    assert_eq!((r.ssrc(), r.expected_and_received()), (2, (1, 1)));
}

#[test]
fn receiver_follows_a_hardware_to_software_fallback() {
    let mut cfg = EncoderConfig::new(64, 48, 25);
    cfg.bitrate_bps = 200_000;
    let (dev, _) = FakeM2m::new(FakeSpec { fail_after: Some(4), ..FakeSpec::default() });
    let hw: Box<dyn VideoEncoder> = Box::new(M2mEncoder::new(dev, cfg).unwrap());
    let enc =
        AutoEncoder::with_hardware(EncoderChoice::Auto, cfg, Ok((hw, "/dev/fake".into(), "fake".into()))).unwrap();
    let mut video = VideoChain::new(enc, 7, "t", 1200, &mut seeded(), system_clock());
    let mut rx = Receiver::new(1, PT_OPUS, DEFAULT_LATENCY).unwrap();
    let mut events = Vec::new();
    let now = Instant::now();
    for i in 0..10 {
        let f = SyntheticCamera::render(64, 48, i, now + std::time::Duration::from_millis(40 * i));
        video.handle_frame(now, SystemTime::now(), &f).unwrap();
        deliver(&mut rx, || video.poll_transmit(), now, &mut events);
    }
    video.handle_close(now, SystemTime::now()).unwrap();
    deliver(&mut rx, || video.poll_transmit(), now, &mut events);
    events.extend(close(&mut rx, now));
    let codecs: Vec<VideoCodec> = events
        .iter()
        .filter_map(|e| match e {
            ReceiverEvent::Video { codec, .. } => Some(*codec),
            _ => None,
        })
        .collect();
    assert!(codecs.contains(&VideoCodec::H264) && codecs.contains(&VideoCodec::Av1), "{codecs:?}");
    assert_eq!(video.stats().codec_switches, 1);
    assert_eq!(video.codec(), VideoCodec::Av1);
}

#[test]
fn sdp_names_codecs_ports_and_framerate() {
    let d = StreamDescription {
        name: "roomcast".into(),
        origin: IpAddr::V4(Ipv4Addr::LOCALHOST),
        destination: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 5004,
        video: VideoCodec::Av1,
        fps: 30,
        audio_channels: 1,
        fec: true,
    };
    let text = build_sdp(&d).to_string();
    assert!(text.contains("m=video 5004 RTP/AVP 97"), "{text}");
    assert!(text.contains("a=rtpmap:97 AV1/90000"), "{text}");
    assert!(text.contains("a=framerate:30"), "{text}");
    assert!(text.contains("m=audio 5006 RTP/AVP 111"), "{text}");
    let parsed = roomcast_rtp::sdp::SessionDescription::parse(&text).unwrap();
    let rx = Receiver::from_sdp(&parsed, DEFAULT_LATENCY).unwrap();
    assert_eq!(rx.audio_channels(), 1);
}

#[test]
fn threaded_pipeline_runs_audio_only_and_reports_status() {
    use super::sender::{RunLimits, SenderPipeline};
    use std::sync::Mutex;
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
    let mut cfg = EncoderConfig::new(64, 48, 25);
    cfg.bitrate_bps = 200_000;
    let video = VideoChain::new(Rav1eEncoder::new(cfg).unwrap(), 1, "t", 1200, &mut seeded(), clock.clone());
    let audio = AudioChain::new(OpusEncoder::new(OpusConfig::default()).unwrap(), 2, "t", 1200, &mut seeded());
    let mic: Box<dyn Microphone> = Box::new(SyntheticMic::new(1, clock).unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let sink = Arc::new(move |p: Outgoing| g.lock().unwrap().push(p));
    let limits = RunLimits { video_frames: None, audio_frames: Some(10) };
    let p = SenderPipeline::start_with(None, Some(mic), video, audio, limits, sink);
    while !p.is_finished() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let status = p.status();
    assert!(!status.video_running && !status.audio_running && !status.mic_lost);
    assert_eq!((status.video_frames, status.audio_frames), (0, 10));
    let summary = p.join();
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    let got = got.lock().unwrap();
    assert_eq!(got.iter().filter(|p| matches!(p, Outgoing::AudioRtp(_))).count(), 10);
    assert!(!got.iter().any(|p| matches!(p, Outgoing::VideoRtp(_))));
}
