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

/// The RTCP packets of a receiver's `poll_transmit`, parsed.
fn feedback(rx: &mut Receiver) -> Vec<Vec<roomcast_rtp::rtcp::RtcpPacket>> {
    std::iter::from_fn(|| rx.poll_transmit()).map(|b| roomcast_rtp::rtcp::parse_compound(&b).unwrap()).collect()
}

fn plis(fb: &[Vec<roomcast_rtp::rtcp::RtcpPacket>]) -> Vec<roomcast_rtp::rtcp::Pli> {
    fb.iter()
        .flatten()
        .filter_map(|p| match p {
            roomcast_rtp::rtcp::RtcpPacket::Pli(pli) => Some(*pli),
            _ => None,
        })
        .collect()
}

#[test]
fn a_receiver_joining_mid_stream_asks_for_a_keyframe_rate_limited_and_stops_once_it_decodes() {
    let clock = ManualClock::new();
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    let mut cam = SyntheticCamera::new(CameraConfig { width: 64, height: 48, fps: 25 }, shared.clone()).unwrap();
    let mut cfg = EncoderConfig::new(64, 48, 25);
    cfg.keyframe_interval = 10_000; // no periodic keyframe during the test
    let mut video = VideoChain::new(Rav1eEncoder::new(cfg).unwrap(), 1, "s", 1200, &mut seeded(), shared.clone());
    let mut rx = Receiver::new(1, PT_OPUS, DEFAULT_LATENCY).unwrap();
    rx.set_feedback_ssrc(99);
    let mut events = Vec::new();
    let frame = |video: &mut VideoChain<Rav1eEncoder>, cam: &mut SyntheticCamera| {
        clock.advance(std::time::Duration::from_millis(40));
        let f = cam.capture().unwrap();
        video.handle_frame(clock.now(), SystemTime::now(), &f).unwrap();
    };
    // The keyframe and four more frames go by before the receiver joins.
    for _ in 0..5 {
        frame(&mut video, &mut cam);
        while video.poll_transmit().is_some() {}
    }
    let mut sent_plis = Vec::new();
    let mut compounds = Vec::new();
    let mut pli_frames = Vec::new();
    let mut decoded_at = None;
    for i in 0..40 {
        frame(&mut video, &mut cam);
        deliver(&mut rx, || video.poll_transmit(), clock.now(), &mut events);
        rx.handle_timeout(clock.now());
        events.extend(std::iter::from_fn(|| rx.poll_event()));
        let fb = feedback(&mut rx);
        for pli in plis(&fb) {
            assert_eq!((pli.sender_ssrc, pli.media_ssrc), (99, 1));
            sent_plis.push(clock.now());
            pli_frames.push(i);
            // The sender's box hears it (through the service) after frame 3 and asks its encoder.
            if i >= 3 {
                video.encoder_mut().request_keyframe();
            }
        }
        compounds.extend(fb);
        if decoded_at.is_none()
            && events.iter().any(|e| matches!(e, ReceiverEvent::Video { frame, .. } if frame.keyframe))
        {
            decoded_at = Some(i);
        }
    }
    // The first PLI goes out with the first packet; while the video stays undecodable the
    // next ones follow at most every PLI_INTERVAL; after the keyframe none.
    assert!(sent_plis.len() >= 2, "{sent_plis:?}");
    assert!(sent_plis.windows(2).all(|w| w[1] - w[0] >= super::receiver::PLI_INTERVAL), "{sent_plis:?}");
    let decoded_at = decoded_at.expect("a keyframe after the PLI");
    // Heard from frame 3 on: the PLI at frame 6 (250 ms after the first) brings the keyframe,
    // out of the jitter buffer (100 ms) a few frames later.
    assert!(decoded_at <= 6 + 8, "frame {decoded_at}");
    assert!(!rx.waiting_for_keyframe());
    assert_eq!(rx.stats().plis_sent, sent_plis.len() as u64);
    assert!(pli_frames.iter().all(|f| *f <= decoded_at), "{pli_frames:?} decoded at {decoded_at}");
    // Every compound starts with a receiver report with a block on the video source; one
    // periodic report (no PLI) went out in the second after the last PLI.
    use roomcast_rtp::rtcp::RtcpPacket;
    assert!(compounds.iter().all(|c| matches!(&c[0], RtcpPacket::ReceiverReport(rr) if rr.ssrc == 99 && rr.reports.iter().any(|b| b.ssrc == 1))), "{compounds:?}");
    assert_eq!(compounds.iter().filter(|c| c.len() == 1).count(), 1, "{compounds:?}");
    assert_eq!(rx.stats().reports_sent, compounds.len() as u64);
}

#[test]
fn without_keyframe_requests_a_joining_receiver_only_reports_and_waits() {
    let clock = ManualClock::new();
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    let mut cam = SyntheticCamera::new(CameraConfig { width: 64, height: 48, fps: 25 }, shared.clone()).unwrap();
    let mut cfg = EncoderConfig::new(64, 48, 25);
    cfg.keyframe_interval = 10_000;
    let mut video = VideoChain::new(Rav1eEncoder::new(cfg).unwrap(), 1, "s", 1200, &mut seeded(), shared.clone());
    let mut rx = Receiver::new(1, PT_OPUS, DEFAULT_LATENCY).unwrap();
    rx.set_feedback_ssrc(99);
    rx.set_keyframe_requests(false);
    let mut events = Vec::new();
    let mut compounds = Vec::new();
    for i in 0..40 {
        clock.advance(std::time::Duration::from_millis(40));
        let f = cam.capture().unwrap();
        video.handle_frame(clock.now(), SystemTime::now(), &f).unwrap();
        if i < 5 {
            while video.poll_transmit().is_some() {}
            continue;
        }
        deliver(&mut rx, || video.poll_transmit(), clock.now(), &mut events);
        rx.handle_timeout(clock.now());
        compounds.extend(feedback(&mut rx));
    }
    assert!(plis(&compounds).is_empty(), "{compounds:?}");
    assert!(compounds.len() >= 2, "receiver reports still go out: {compounds:?}");
    assert!(rx.waiting_for_keyframe());
    assert_eq!(rx.stats().plis_sent, 0);
}

#[test]
fn receiver_reports_arrive_as_events_with_their_blocks() {
    let mut rx = Receiver::new(1, PT_OPUS, DEFAULT_LATENCY).unwrap();
    let block = roomcast_rtp::rtcp::ReportBlock { ssrc: 1, fraction_lost: 51, ..Default::default() };
    let rr = roomcast_rtp::rtcp::RtcpPacket::ReceiverReport(roomcast_rtp::rtcp::ReceiverReport {
        ssrc: 7,
        reports: vec![block.clone()],
    });
    rx.handle_rtcp(StreamKind::Video, &roomcast_rtp::rtcp::encode_compound(&[rr]));
    assert_eq!(rx.poll_event(), Some(ReceiverEvent::ReceiverReport { reporter: 7, blocks: vec![block] }));
    // Without a feedback SSRC nothing is sent.
    assert!(rx.poll_transmit().is_none());
}

/// The threaded pipeline on the system clock with the `debug_slow_encoder_ms` hook's encoder:
/// slowed to 160 ms a frame at 10 fps (100 ms budget) it steps its frame rate down within 2 s
/// and sends the lower rate in real time; fast again, it is back at full rate within 10 s.
/// (At 20 fps the climb needed debug rav1e under 35 ms a frame, which a loaded 2-core CI
/// machine missed: 10 fps leaves the real encoder 70 ms.)
#[test]
fn a_slowed_encoder_steps_the_pipeline_down_and_back_up() {
    use super::sender::{RunLimits, SenderPipeline};
    use crate::encoder::slow::SlowEncoder;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;
    let clock = system_clock();
    let cam: Box<dyn Camera> =
        Box::new(SyntheticCamera::new(CameraConfig { width: 64, height: 48, fps: 10 }, clock.clone()).unwrap());
    let slow =
        SlowEncoder::new(Rav1eEncoder::new(EncoderConfig::new(64, 48, 10)).unwrap(), Duration::ZERO, clock.clone());
    let delay = slow.delay_handle();
    let video = VideoChain::new(slow, 1, "t", 1200, &mut seeded(), clock.clone());
    let audio = AudioChain::new(OpusEncoder::new(OpusConfig::default()).unwrap(), 2, "t", 1200, &mut seeded());
    let frames = Arc::new(AtomicU64::new(0));
    let f = frames.clone();
    let sink = Arc::new(move |p: Outgoing| {
        if let Outgoing::VideoRtp(d) = p {
            if d[1] & 0x80 != 0 {
                f.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let p = SenderPipeline::start_with(Some(cam), None, video, audio, RunLimits::default(), sink);
    p.enable_adaptation(500_000);
    std::thread::sleep(Duration::from_secs(1));
    assert!(p.mode().unwrap().is_full(), "{:?}", p.mode());
    delay.store(160_000, Ordering::Relaxed);
    let slowed = Instant::now();
    let mut stepped = None;
    while slowed.elapsed() < Duration::from_secs(4) {
        std::thread::sleep(Duration::from_millis(50));
        if stepped.is_none() && !p.mode().unwrap().is_full() {
            stepped = Some(slowed.elapsed());
        }
    }
    let stepped = stepped.expect("stepped down");
    assert!(stepped <= Duration::from_secs(2), "{stepped:?}");
    let mode = p.mode().unwrap();
    assert!(mode.fps_divisor >= 2 && mode.reason == "cpu", "{mode:?}");
    // Real time at the lower rate: over two seconds, about fps/divisor frames a second leave.
    let before = frames.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(2));
    let rate = (frames.load(Ordering::Relaxed) - before) as f64 / 2.0;
    let mode = p.mode().unwrap();
    let expected = 10.0 / f64::from(mode.fps_divisor);
    assert!(rate >= expected * 0.7 && rate <= expected * 1.3 + 1.0, "{rate} frames/s at {mode:?}");
    delay.store(0, Ordering::Relaxed);
    let fast = Instant::now();
    while !p.mode().unwrap().is_full() && fast.elapsed() < Duration::from_secs(12) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(fast.elapsed() <= Duration::from_secs(10), "back at full after {:?}: {:?}", fast.elapsed(), p.mode());
    p.stop();
    assert!(p.join().errors.is_empty());
}
