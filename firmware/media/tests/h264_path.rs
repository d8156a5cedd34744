//! The H.264 path a hardware encoder takes, checked with third-party tools: ffmpeg's x264 makes
//! an H.264 stream (constrained baseline, an AUD before each access unit); a stand-in
//! encoder hands its access units to the sender's [`VideoChain`] (H.264 packetizer, RTCP);
//! the [`Receiver`] reassembles them; they are written as Annex B like `roomcast record`'s
//! `video.h264`; ffmpeg decodes that file without errors and counts every frame.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use roomcast_media::clock::SystemClock;
use roomcast_media::encoder::{EncodedFrame, VideoCodec, VideoEncoder};
use roomcast_media::frame::VideoFrame;
use roomcast_media::pipeline::receiver::{Receiver, ReceiverEvent, DEFAULT_LATENCY};
use roomcast_media::pipeline::sender::{Outgoing, VideoChain};
use roomcast_media::pipeline::PT_OPUS;
use roomcast_media::Result;
use roomcast_rtp::annexb::{nal_type, nal_units, AnnexBWriter};
use roomcast_test_support::require_tool;

/// "Encodes" by handing out pre-made access units in order.
struct Prerecorded {
    units: std::vec::IntoIter<Vec<u8>>,
}

impl VideoEncoder for Prerecorded {
    fn codec(&self) -> VideoCodec {
        VideoCodec::H264
    }
    fn describe(&self) -> String {
        "x264 access units".into()
    }
    fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<EncodedFrame>> {
        Ok(self
            .units
            .next()
            .map(|data| EncodedFrame {
                codec: VideoCodec::H264,
                keyframe: nal_units(&data).any(|n| nal_type(n) == 5),
                data,
                index: frame.index,
                captured_at: frame.captured_at,
            })
            .into_iter()
            .collect())
    }
    fn request_keyframe(&mut self) {}
    fn set_bitrate(&mut self, _: u32) -> Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> Result<Vec<EncodedFrame>> {
        Ok(vec![])
    }
}

/// Splits an Annex B stream at access unit delimiters (NAL type 9).
fn access_units(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut units: Vec<Vec<u8>> = Vec::new();
    for nal in nal_units(stream) {
        if nal_type(nal) == 9 || units.is_empty() {
            units.push(Vec::new());
        }
        if let Some(u) = units.last_mut() {
            u.extend_from_slice(&[0, 0, 0, 1]);
            u.extend_from_slice(nal);
        }
    }
    units
}

#[test]
fn x264_stream_survives_rtp_and_decodes_with_ffmpeg() {
    let Some(ffmpeg) = require_tool("ffmpeg") else { return };
    let dir = std::env::temp_dir().join(format!("roomcast-h264-path-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("src.h264");
    let st = Command::new(&ffmpeg)
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x180:rate=30", "-frames:v", "45"])
        .args([
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-g",
            "30",
            "-x264-params",
            "aud=1:repeat-headers=1",
        ])
        .args(["-bsf:v", "h264_mp4toannexb", "-f", "h264"])
        .arg(&src)
        .output()
        .unwrap();
    assert!(st.status.success(), "ffmpeg x264: {}", String::from_utf8_lossy(&st.stderr));
    let units = access_units(&std::fs::read(&src).unwrap());
    assert_eq!(units.len(), 45);

    let mut chain = VideoChain::new(
        Prerecorded { units: units.into_iter() },
        0x1234,
        "test",
        1200,
        &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1),
        Arc::new(SystemClock),
    );
    let mut rx = Receiver::new(1, PT_OPUS, DEFAULT_LATENCY).unwrap();
    let t0 = Instant::now();
    let mut events = Vec::new();
    for i in 0..45u64 {
        let at = t0 + Duration::from_millis(i * 33);
        let frame = VideoFrame::black(320, 180, i, at);
        chain.handle_frame(at, SystemTime::now(), &frame).unwrap();
        while let Some(p) = chain.poll_transmit() {
            if let Outgoing::VideoRtp(d) = p {
                assert!(d.len() <= 1200);
                rx.handle_video_rtp(at, d);
            }
        }
        events.extend(std::iter::from_fn(|| rx.poll_event()));
    }
    rx.handle_close(t0 + Duration::from_secs(2));
    events.extend(std::iter::from_fn(|| rx.poll_event()));
    let out = dir.join("video.h264");
    let mut writer = AnnexBWriter::new(std::fs::File::create(&out).unwrap());
    let mut frames = 0;
    for e in events {
        if let ReceiverEvent::Video { codec, frame } = e {
            assert_eq!(codec, VideoCodec::H264);
            writer.write_access_unit(&frame.data).unwrap();
            frames += 1;
        }
    }
    writer.finish().unwrap();
    assert_eq!(frames, 45);
    assert!(chain.stats().packets > 45, "large IDR frames were fragmented (FU-A)");

    let dec =
        Command::new(&ffmpeg).args(["-v", "error", "-i"]).arg(&out).args(["-f", "framecrc", "-"]).output().unwrap();
    let err = String::from_utf8_lossy(&dec.stderr);
    assert!(dec.status.success() && err.trim().is_empty(), "ffmpeg decode errors: {err}");
    let decoded = String::from_utf8_lossy(&dec.stdout).lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(decoded, 45, "ffmpeg decoded {decoded} frames");
    let _ = std::fs::remove_dir_all(&dir);
}
