//! Third-party checks of the Opus payload format, the Ogg Opus writer and the audio SDP:
//! ffmpeg's libopus makes 2 s of 20 ms packets; we packetize and depacketize them (byte-identical),
//! write `audio.opus` with OggOpusWriter and check it with opusinfo (no errors, playback length
//! = packets x 20 ms - pre-skip) and opusdec (decoded sample count). The same packets, sent over loopback
//! to an ffmpeg reading our audio SDP, must decode to the same duration.

mod common;

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use roomcast_rtp::ogg_opus::OggOpusWriter;
use roomcast_rtp::rtcp::{encode_compound, Bye, RtcpPacket, SdesChunk, SenderReport};
use roomcast_rtp::sdp::{MediaDescription, SessionDescription};
use roomcast_rtp::{parse_rtp, Depacketizer, OpusDepacketizer, OpusPacketizer, Packetizer, AMT_MAX_RTP_PACKET_SIZE};

/// Reads the audio packets (after OpusHead/OpusTags) and the pre-skip of an Ogg Opus file.
fn read_ogg_opus(bytes: &[u8]) -> (u16, Vec<Vec<u8>>) {
    let mut r = ogg::reading::PacketReader::new(std::io::Cursor::new(bytes));
    let head = r.read_packet().unwrap().expect("OpusHead");
    assert!(head.data.starts_with(b"OpusHead"));
    let pre_skip = u16::from_le_bytes([head.data[10], head.data[11]]);
    let tags = r.read_packet().unwrap().expect("OpusTags");
    assert!(tags.data.starts_with(b"OpusTags"));
    let mut packets = Vec::new();
    while let Some(p) = r.read_packet().unwrap() {
        packets.push(p.data);
    }
    (pre_skip, packets)
}

/// Length in seconds from opusinfo's "Playback length: 0m:02.020s".
fn playback_seconds(opusinfo_out: &str) -> f64 {
    let line = opusinfo_out.lines().find(|l| l.contains("Playback length")).expect("playback length line");
    let v = line.split(':').skip(1).collect::<Vec<_>>().join(":");
    let (m, s) = v.trim().split_once("m:").expect("m:s");
    m.trim().parse::<f64>().unwrap() * 60.0 + s.trim_end_matches('s').parse::<f64>().unwrap()
}

/// Samples in a 16-bit PCM WAV file (data chunk size / block align).
fn wav_samples(path: &std::path::Path) -> u64 {
    let b = std::fs::read(path).unwrap();
    let channels = u64::from(u16::from_le_bytes([b[22], b[23]]));
    let mut pos = 12;
    while pos + 8 <= b.len() {
        let size = u64::from(u32::from_le_bytes([b[pos + 4], b[pos + 5], b[pos + 6], b[pos + 7]]));
        if &b[pos..pos + 4] == b"data" {
            let size = if size == 0xffff_ffff || size == 0 { (b.len() - pos - 8) as u64 } else { size };
            return size / (2 * channels);
        }
        pos += 8 + size as usize;
    }
    panic!("no data chunk in {}", path.display());
}

#[test]
fn opus_rtp_and_ogg_checked_by_opus_tools_and_ffmpeg() {
    let Some(ffmpeg) = roomcast_test_support::require_tool("ffmpeg") else { return };
    let Some(opusinfo) = roomcast_test_support::require_tool("opusinfo") else { return };
    let Some(opusdec) = roomcast_test_support::require_tool("opusdec") else { return };
    let dir = scratch_dir("opus");
    let source = dir.join("in.ogg");
    run(Command::new(&ffmpeg)
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=2:sample_rate=48000",
            "-c:a",
            "libopus",
            "-b:a",
            "64k",
            "-frame_duration",
            "20",
            "-f",
            "ogg",
        ])
        .arg(&source));
    let (pre_skip, packets) = read_ogg_opus(&std::fs::read(&source).unwrap());
    assert!(packets.len() >= 100, "{} packets", packets.len());

    let mut packetizer = OpusPacketizer::new(0x0b05, 111, AMT_MAX_RTP_PACKET_SIZE, 0xfffe);
    let mut rtp = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        packetizer.packetize(p, 480 + i as u32 * 960, &mut rtp).expect("packetize");
    }
    assert_eq!(rtp.len(), packets.len());
    assert!(rtp[0][1] & 0x80 != 0 && rtp[1][1] & 0x80 == 0, "marker on the first packet of the talkspurt only");
    let mut depacketizer = OpusDepacketizer::new();
    let mut writer =
        OggOpusWriter::new(std::fs::File::create(dir.join("audio.opus")).unwrap(), 7, 1, pre_skip).unwrap();
    for (i, pkt) in rtp.iter().enumerate() {
        let frame = depacketizer.depacketize(&parse_rtp(pkt).unwrap()).unwrap().expect("one frame per packet");
        assert_eq!(frame.data, packets[i]);
        writer.write_packet(&frame.data).unwrap();
    }
    writer.finish().unwrap();
    let samples = packets.len() as u64 * 960 - u64::from(pre_skip);
    let expected = samples as f64 / 48_000.0;

    let info = run(Command::new(&opusinfo).arg(dir.join("audio.opus")));
    let info = String::from_utf8_lossy(&info.stdout).to_string() + &String::from_utf8_lossy(&info.stderr);
    assert!(!info.to_lowercase().contains("warning") && !info.to_lowercase().contains("error"), "opusinfo:\n{info}");
    let secs = playback_seconds(&info);
    assert!((secs - expected).abs() <= 0.001, "opusinfo length {secs} s, expected {expected} s\n{info}");

    let wav = dir.join("decoded.wav");
    run(Command::new(&opusdec).args(["--quiet", "--rate", "48000"]).arg(dir.join("audio.opus")).arg(&wav));
    assert_eq!(wav_samples(&wav), samples, "opusdec sample count");

    // ffmpeg receives the same RTP through our audio SDP.
    let port = free_port_pair();
    let lo = "127.0.0.1".parse().unwrap();
    let sdp =
        SessionDescription::new("roomcast audio", lo, lo).with_media(MediaDescription::opus(port, 111, false, true));
    let sdp_path = dir.join("audio.sdp");
    std::fs::write(&sdp_path, sdp.to_string()).unwrap();
    let received = dir.join("received.wav");
    let mut child = Command::new(&ffmpeg)
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-protocol_whitelist", "file,udp,rtp", "-i"])
        .arg(&sdp_path)
        .args(["-ac", "1", "-ar", "48000", "-c:a", "pcm_s16le", "-f", "wav"])
        .arg(&received)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ffmpeg");
    assert!(wait_for_udp_bind(port, &mut child, Duration::from_secs(20)), "ffmpeg never bound {port}");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for pkt in &rtp {
        sock.send_to(pkt, ("127.0.0.1", port)).unwrap();
        std::thread::sleep(Duration::from_millis(4));
    }
    std::thread::sleep(Duration::from_millis(500));
    let s = packetizer.sender();
    let bye = encode_compound(&[
        RtcpPacket::SenderReport(SenderReport {
            ssrc: s.ssrc,
            packet_count: s.packet_count,
            octet_count: s.octet_count,
            ..Default::default()
        }),
        RtcpPacket::SourceDescription(vec![SdesChunk::cname(s.ssrc, "roomcast@test")]),
        RtcpPacket::Bye(Bye { sources: vec![s.ssrc], reason: Some(b"end".to_vec()) }),
    ]);
    sock.send_to(&bye, ("127.0.0.1", port + 1)).unwrap();
    let (out, timed_out) = wait_with_limit(child, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!timed_out && out.status.success(), "ffmpeg: {} {stderr}", out.status);
    assert!(stderr.trim().is_empty(), "ffmpeg reported errors:\n{stderr}");
    let got = wav_samples(&received);
    let want = packets.len() as u64 * 960;
    // ffmpeg's RTP Opus path does not apply pre-skip; allow for it.
    assert!(got.abs_diff(want) <= u64::from(pre_skip), "ffmpeg decoded {got} samples, expected about {want}");
}
