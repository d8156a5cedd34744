//! SDP interoperability: ffmpeg writes the SDP of its own H.264 + Opus RTP stream
//! (`-sdp_file`, sending a fraction of a second to loopback ports nobody listens on) and our
//! parser must read it back as `roomcast record --sdp` needs it: connection address, ports,
//! payload types, codecs, clock rates, channels and fmtp. ffmpeg's own reading of OUR SDP is
//! checked in h264_ffmpeg.rs and opus_ogg.rs.

mod common;

use std::process::Command;

use common::*;
use roomcast_rtp::sdp::{Codec, SessionDescription};

#[test]
fn parses_sdp_written_by_ffmpeg() {
    let Some(ffmpeg) = roomcast_test_support::require_tool("ffmpeg") else { return };
    let dir = scratch_dir("sdp");
    let sdp_file = dir.join("ffmpeg.sdp");
    let video_port = free_port_pair();
    let audio_port = free_port_pair();
    run(Command::new(&ffmpeg)
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-t",
            "0.2",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=25",
            "-t",
            "0.2",
            "-f",
            "lavfi",
            "-i",
            "sine=sample_rate=48000",
            "-map",
            "0:v",
            "-c:v",
            "libx264",
            "-f",
            "rtp",
        ])
        .arg(format!("rtp://127.0.0.1:{video_port}"))
        .args(["-map", "1:a", "-c:a", "libopus", "-f", "rtp"])
        .arg(format!("rtp://127.0.0.1:{audio_port}"))
        .arg("-sdp_file")
        .arg(&sdp_file));
    let text = std::fs::read_to_string(&sdp_file).expect("ffmpeg wrote the SDP");
    let sdp = SessionDescription::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let video = sdp.video().expect("video section");
    assert_eq!(
        (video.port, video.payload_type, &video.codec, video.clock_rate),
        (video_port, 96, &Codec::H264, 90_000)
    );
    assert_eq!(video.fmtp_param("packetization-mode"), Some("1"), "{text}");
    let audio = sdp.audio().expect("audio section");
    assert_eq!(
        (audio.port, &audio.codec, audio.clock_rate, audio.channels),
        (audio_port, &Codec::Opus, 48_000, Some(2))
    );
    assert_eq!(audio.payload_type, 97);
    for m in [video, audio] {
        assert_eq!(
            sdp.connection_for(m).expect("connection").address,
            "127.0.0.1".parse::<std::net::IpAddr>().unwrap()
        );
    }
    // What we print from it parses again to the same description.
    assert_eq!(SessionDescription::parse(&sdp.to_string()).unwrap(), sdp);
}
