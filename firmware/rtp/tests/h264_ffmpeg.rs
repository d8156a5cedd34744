//! Third-party check of the H.264 packetizer (RFC 6184) and of our SDP: ffmpeg's libx264 makes
//! a 2 s 320x240 stream, we packetize it (AMT packet size), depacketize our own packets back
//! (byte-identical access units), and send the packets over loopback UDP to an ffmpeg that
//! reads OUR SDP file; it must decode all 50 frames without errors, identical (framemd5) to
//! decoding the file directly. An RTCP SR+SDES+BYE compound from our encoder ends its input.
//! The recorder's path is checked too: depacketized frames written by AnnexBWriter decode
//! identically, and after a lost packet in frame 5 the file (frames 0-4, 25-49) decodes cleanly.

mod common;

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use roomcast_rtp::annexb::{split_access_units, AnnexBWriter};
use roomcast_rtp::rtcp::{encode_compound, Bye, NtpTimestamp, RtcpPacket, SdesChunk, SenderReport};
use roomcast_rtp::sdp::{MediaDescription, SessionDescription};
use roomcast_rtp::{parse_rtp, Depacketizer, H264Depacketizer, H264Packetizer, Packetizer, AMT_MAX_RTP_PACKET_SIZE};

const FRAMES: usize = 50;
const SSRC: u32 = 0x5eed_1234;

#[test]
fn ffmpeg_decodes_our_h264_rtp_via_our_sdp() {
    let Some(ffmpeg) = roomcast_test_support::require_tool("ffmpeg") else { return };
    let dir = scratch_dir("h264");
    let h264 = dir.join("in.h264");
    run(Command::new(&ffmpeg)
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
            "-t",
            "2",
            "-c:v",
            "libx264",
            "-bf",
            "0",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
            "-bsf:v",
            "h264_mp4toannexb",
            "-f",
            "h264",
        ])
        .arg(&h264));
    let stream = std::fs::read(&h264).expect("read h264");
    let aus = split_access_units(&stream);
    assert_eq!(aus.len(), FRAMES, "x264 access units");

    // Packetize at the AMT size limit on the 90 kHz clock.
    let mut packetizer = H264Packetizer::new(SSRC, 96, AMT_MAX_RTP_PACKET_SIZE, 0xfffe);
    let mut per_frame: Vec<Vec<Vec<u8>>> = Vec::new();
    for (i, au) in aus.iter().enumerate() {
        let mut out = Vec::new();
        packetizer.packetize(au, 1000 + i as u32 * 3600, &mut out).expect("packetize");
        assert!(out.iter().all(|p| p.len() <= AMT_MAX_RTP_PACKET_SIZE));
        per_frame.push(out);
    }
    let total: usize = per_frame.iter().map(Vec::len).sum();
    assert!(total > FRAMES, "keyframes should need FU-A fragments ({total} packets)");

    // Our own depacketizer gives the access units back byte for byte.
    let mut depacketizer = H264Depacketizer::new();
    let mut back = Vec::new();
    for pkt in per_frame.iter().flatten() {
        if let Some(f) = depacketizer.depacketize(&parse_rtp(pkt).expect("parse")).expect("depacketize") {
            back.push(f);
        }
    }
    assert_eq!(back.len(), FRAMES);
    for (i, (f, au)) in back.iter().zip(&aus).enumerate() {
        assert_eq!(&f.data, au, "access unit {i} differs after the round trip");
        assert_eq!(f.timestamp, 1000 + i as u32 * 3600);
    }
    assert!(back[0].keyframe && back[25].keyframe && !back[1].keyframe);

    // Our SDP, with the profile-level-id from the SPS.
    let sps = roomcast_rtp::annexb::nal_units(&aus[0]).find(|n| n[0] & 0x1f == 7).expect("SPS");
    let profile_level_id = format!("{:02x}{:02x}{:02x}", sps[1], sps[2], sps[3]);
    let port = free_port_pair();
    let lo = "127.0.0.1".parse().unwrap();
    let sdp = SessionDescription::new("roomcast test", lo, lo).with_media(MediaDescription::h264(
        port,
        96,
        &profile_level_id,
        Some(25.0),
    ));
    let sdp_path = dir.join("stream.sdp");
    std::fs::write(&sdp_path, sdp.to_string()).unwrap();

    let received_md5 = dir.join("received.framemd5");
    let mut child = Command::new(&ffmpeg)
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-protocol_whitelist",
            "file,udp,rtp",
            "-reorder_queue_size",
            "0",
            "-i",
        ])
        .arg(&sdp_path)
        .args(["-f", "framemd5"])
        .arg(&received_md5)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ffmpeg receiver");
    assert!(wait_for_udp_bind(port, &mut child, Duration::from_secs(20)), "ffmpeg never bound port {port}");

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for frame in &per_frame {
        for pkt in frame {
            sock.send_to(pkt, ("127.0.0.1", port)).unwrap();
        }
        std::thread::sleep(Duration::from_millis(8));
    }
    // End of stream: SR + SDES CNAME + BYE on the RTCP port (RFC 3550 compound order), after
    // a pause so ffmpeg has read every RTP packet before the BYE ends its input.
    let sender = packetizer.sender();
    let rtcp = encode_compound(&[
        RtcpPacket::SenderReport(SenderReport {
            ssrc: SSRC,
            ntp_time: NtpTimestamp::from_system_time(std::time::SystemTime::now()),
            rtp_time: 1000 + FRAMES as u32 * 3600,
            packet_count: sender.packet_count,
            octet_count: sender.octet_count,
            reports: vec![],
        }),
        RtcpPacket::SourceDescription(vec![SdesChunk::cname(SSRC, "roomcast@test")]),
        RtcpPacket::Bye(Bye { sources: vec![SSRC], reason: None }),
    ]);
    std::thread::sleep(Duration::from_millis(500));
    sock.send_to(&rtcp, ("127.0.0.1", port + 1)).unwrap();

    let (out, timed_out) = wait_with_limit(child, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!timed_out, "ffmpeg did not end on our RTCP BYE; stderr:\n{stderr}");
    assert!(out.status.success(), "ffmpeg failed: {}\n{stderr}", out.status);
    assert!(stderr.trim().is_empty(), "ffmpeg reported errors:\n{stderr}");

    // Reference: ffmpeg decoding the file directly.
    let direct_md5 = dir.join("direct.framemd5");
    run(Command::new(&ffmpeg)
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-f", "h264", "-i"])
        .arg(&h264)
        .args(["-f", "framemd5"])
        .arg(&direct_md5));
    let received = framemd5_lines(&received_md5);
    let direct = framemd5_lines(&direct_md5);
    assert_eq!(direct.len(), FRAMES);
    assert_eq!(received.len(), FRAMES, "frames ffmpeg decoded from our RTP");
    assert_eq!(md5s(&received), md5s(&direct), "decoded pictures differ from the direct decode");
}

/// Decodes an Annex B file with ffmpeg to framemd5 lines, asserting a clean decode.
fn decode_h264_file(ffmpeg: &std::path::Path, file: &std::path::Path) -> Vec<String> {
    let md5 = file.with_extension("framemd5");
    let out = run(Command::new(ffmpeg)
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-f", "h264", "-i"])
        .arg(file)
        .args(["-f", "framemd5"])
        .arg(&md5));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.trim().is_empty(), "ffmpeg reported errors on {}:\n{stderr}", file.display());
    framemd5_lines(&md5)
}

#[test]
fn recorded_annexb_decodes_and_recovers_after_loss() {
    let Some(ffmpeg) = roomcast_test_support::require_tool("ffmpeg") else { return };
    let dir = scratch_dir("h264-record");
    let h264 = dir.join("in.h264");
    run(Command::new(&ffmpeg)
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
            "-t",
            "2",
            "-c:v",
            "libx264",
            "-bf",
            "0",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
            "-bsf:v",
            "h264_mp4toannexb",
            "-f",
            "h264",
        ])
        .arg(&h264));
    let aus = split_access_units(&std::fs::read(&h264).unwrap());
    assert_eq!(aus.len(), FRAMES);
    let direct = decode_h264_file(&ffmpeg, &h264);
    assert_eq!(direct.len(), FRAMES);

    for (lose_in_frame, expected_frames) in
        [(None, (0..FRAMES).collect::<Vec<_>>()), (Some(5), (0..5).chain(25..FRAMES).collect())]
    {
        let mut p = H264Packetizer::new(SSRC, 96, AMT_MAX_RTP_PACKET_SIZE, 0xfffe);
        let mut d = H264Depacketizer::new();
        let path = dir.join(format!("video-{}.h264", lose_in_frame.map_or(-1, |f: usize| f as i64)));
        let mut w = AnnexBWriter::new(std::io::BufWriter::new(std::fs::File::create(&path).unwrap()));
        let mut kept = Vec::new();
        for (i, au) in aus.iter().enumerate() {
            let mut packets = Vec::new();
            p.packetize(au, i as u32 * 3600, &mut packets).unwrap();
            if lose_in_frame == Some(i) {
                packets.remove(packets.len() / 2);
            }
            for pkt in &packets {
                if let Some(f) = d.depacketize(&parse_rtp(pkt).unwrap()).unwrap() {
                    kept.push(f.timestamp as usize / 3600);
                    w.write_access_unit(&f.data).unwrap();
                }
            }
        }
        w.finish().unwrap();
        assert_eq!(kept, expected_frames, "frames kept with loss in {lose_in_frame:?}");
        let decoded = decode_h264_file(&ffmpeg, &path);
        assert_eq!(decoded.len(), expected_frames.len());
        if lose_in_frame.is_none() {
            assert_eq!(md5s(&decoded), md5s(&direct), "recorded file decodes differently");
        } else {
            // Frames from the keyframe on are the same pictures as the direct decode.
            let tail = md5s(&decoded)[5..].to_vec();
            assert_eq!(tail, md5s(&direct)[25..].to_vec());
        }
    }
}
