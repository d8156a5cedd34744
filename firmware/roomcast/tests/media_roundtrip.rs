//! End-to-end media test on loopback: `roomcast record` receives what
//! `roomcast stream --synthetic --encoder software` sends for 2 s (320x180 at 30 fps, Opus);
//! third-party decoders check the files: dav1d decodes video.ivf with the expected frame count,
//! ffprobe and opusinfo read audio.opus with the expected duration.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use roomcast_test_support::require_tool;

const BIN: &str = env!("CARGO_BIN_EXE_roomcast");

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("roomcast-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An even port P with P..P+3 free on 127.0.0.1.
fn free_port_block() -> u16 {
    for _ in 0..200 {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = probe.local_addr().unwrap().port() & !1;
        drop(probe);
        if !(1024..=65530).contains(&p) {
            continue;
        }
        let socks: Vec<_> = (0..4).map(|i| UdpSocket::bind(("127.0.0.1", p + i))).collect();
        if socks.iter().all(|s| s.is_ok()) {
            return p;
        }
    }
    panic!("no free block of 4 UDP ports on 127.0.0.1");
}

fn stream_args(port: u16, sdp: &Path) -> Vec<String> {
    [
        "stream",
        "--synthetic",
        "--encoder",
        "software",
        "--to",
        &format!("127.0.0.1:{port}"),
        "--sdp",
        sdp.to_str().unwrap(),
        "--size",
        "320x180",
        "--fps",
        "30",
        "--bitrate-kbps",
        "300",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn stream_and_record_on_loopback_decode_with_third_party_tools() {
    let Some(dav1d) = require_tool("dav1d") else { return };
    let Some(ffprobe) = require_tool("ffprobe") else { return };
    let Some(opusinfo) = require_tool("opusinfo") else { return };
    let dir = temp_dir("media-roundtrip");
    let sdp = dir.join("stream.sdp");
    let out = dir.join("rec");
    let port = free_port_block();

    // The SDP first (as a user copies it from the box), then the recorder, then the sender.
    let st = Command::new(BIN).args(stream_args(port, &sdp)).arg("--sdp-only").output().unwrap();
    assert!(st.status.success(), "stream --sdp-only: {}", String::from_utf8_lossy(&st.stderr));
    let sdp_text = std::fs::read_to_string(&sdp).unwrap();
    assert!(sdp_text.contains(&format!("m=video {port} RTP/AVP 97")), "{sdp_text}");
    assert!(sdp_text.contains("a=rtpmap:97 AV1/90000") && sdp_text.contains("a=framerate:30"), "{sdp_text}");
    assert!(sdp_text.contains(&format!("m=audio {} RTP/AVP 111", port + 2)), "{sdp_text}");

    let mut record = Command::new(BIN)
        .args(["record", "--sdp", sdp.to_str().unwrap(), "--seconds", "180", "--out", out.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(record.stderr.take().unwrap()).lines();
    let started = Instant::now();
    loop {
        let line = lines.next().expect("record exited early").unwrap();
        if line.contains("recording") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "record did not start");
    }
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));

    let sdp2 = dir.join("stream2.sdp");
    let st = Command::new(BIN).args(stream_args(port, &sdp2)).args(["--seconds", "2"]).output().unwrap();
    let stream_log = String::from_utf8_lossy(&st.stderr).to_string();
    assert!(st.status.success(), "stream: {stream_log}");
    assert!(stream_log.contains("sent 60 video frames"), "{stream_log}");

    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = record.try_wait().unwrap() {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "record did not stop after BYE");
        std::thread::sleep(Duration::from_millis(50));
    };
    let record_log = log.join().unwrap();
    assert!(status.success(), "record: {record_log}");
    assert!(t0.elapsed() < Duration::from_secs(5), "record stops soon after BYE, took {:?}", t0.elapsed());

    // dav1d decodes every frame.
    let ivf = out.join("video.ivf");
    let d = Command::new(&dav1d)
        .args(["-i", ivf.to_str().unwrap(), "--muxer", "null", "-o", "/dev/null"])
        .output()
        .unwrap();
    let dlog = format!("{}{}", String::from_utf8_lossy(&d.stdout), String::from_utf8_lossy(&d.stderr));
    assert!(d.status.success(), "dav1d: {dlog}");
    let decoded: u32 = dlog
        .split("Decoded ")
        .last()
        .and_then(|s| s.split('/').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no frame count in dav1d output: {dlog}"));
    assert!((59..=61).contains(&decoded), "dav1d decoded {decoded} frames, expected 60: {dlog}\nrecord: {record_log}");

    // The IVF header carries the size from the AV1 sequence header.
    let ivf_bytes = std::fs::read(&ivf).unwrap();
    assert_eq!(&ivf_bytes[12..16], &[64, 1, 180, 0], "IVF header 320x180");

    // The audio lasts 2 s (100 packets of 20 ms).
    let audio = out.join("audio.opus");
    let p = Command::new(&ffprobe)
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", audio.to_str().unwrap()])
        .output()
        .unwrap();
    let duration: f64 = String::from_utf8_lossy(&p.stdout).trim().parse().unwrap_or_else(|_| {
        panic!(
            "ffprobe gave no duration: {} {}",
            String::from_utf8_lossy(&p.stdout),
            String::from_utf8_lossy(&p.stderr)
        )
    });
    assert!((duration - 2.0).abs() <= 0.05, "audio lasts {duration} s, expected 2.0");
    let oi = Command::new(&opusinfo).arg(audio.to_str().unwrap()).output().unwrap();
    let oilog = format!("{}{}", String::from_utf8_lossy(&oi.stdout), String::from_utf8_lossy(&oi.stderr));
    assert!(oi.status.success(), "opusinfo: {oilog}");
    // "Playback length: 0m:01.993s" (opusinfo subtracts the 312-sample pre-skip).
    let secs: f64 = oilog
        .split("Playback length: 0m:")
        .nth(1)
        .and_then(|s| s.split('s').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no playback length in opusinfo output: {oilog}"));
    assert!((secs - 2.0).abs() <= 0.05, "opusinfo says {secs} s: {oilog}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn probe_lists_encoders_and_the_auto_choice() {
    let out = Command::new(BIN).arg("probe").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("Cameras:") && text.contains("Microphones") && text.contains("software rav1e"), "{text}");
    assert!(text.contains("auto would pick: "), "{text}");
}

#[test]
fn stream_rejects_bad_arguments_clearly() {
    let out = Command::new(BIN)
        .args(["stream", "--synthetic", "--to", "127.0.0.1:5004", "--sdp", "/dev/null", "--size", "33x20"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--size 33x20"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(BIN).args(["stream", "--to", "127.0.0.1:5004", "--sdp", "/dev/null"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--camera"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(BIN)
        .args(["stream", "--synthetic", "--encoder", "fast", "--to", "127.0.0.1:5004", "--sdp", "/dev/null"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("auto, hardware, software, rav1e or aom"));
}

#[test]
fn stream_captures_from_an_alsa_device() {
    // alsa-lib's `null` capture device: the real ALSA path of `--mic`, no sound card needed.
    let dir = temp_dir("media-alsa");
    let sdp = dir.join("s.sdp");
    let port = free_port_block();
    let out = Command::new(BIN)
        .args(["stream", "--synthetic", "--mic", "null", "--encoder", "software", "--size", "160x90", "--fps", "10"])
        .args(["--to", &format!("127.0.0.1:{port}"), "--sdp", sdp.to_str().unwrap(), "--seconds", "0.5"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("microphone: ALSA null"), "{log}");
    assert!(log.contains("sent 5 video frames") && log.contains("25 audio frames"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stream_plays_a_y4m_file_at_its_size_and_rate() {
    let Some(ffmpeg) = require_tool("ffmpeg") else { return };
    let dir = temp_dir("media-y4m");
    let clip = dir.join("clip.y4m");
    let made = Command::new(ffmpeg)
        .args(["-y", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=12"])
        .args(["-frames:v", "5", "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", clip.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(made.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&made.stderr));
    let sdp = dir.join("s.sdp");
    let port = free_port_block();
    // --size and --fps are the file's: 160x90 at 12 fps, looping over its 5 frames.
    let out = Command::new(BIN)
        .args(["stream", "--synthetic", "--input", clip.to_str().unwrap(), "--encoder", "software"])
        .args(["--to", &format!("127.0.0.1:{port}"), "--sdp", sdp.to_str().unwrap(), "--seconds", "1"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("camera: y4m:") && log.contains("160x90@12:1"), "{log}");
    assert!(log.contains("sent 12 video frames"), "{log}");
    assert!(std::fs::read_to_string(&sdp).unwrap().contains("a=framerate:12"));
    let bad = dir.join("bad.y4m");
    std::fs::write(&bad, b"YUV4MPEG2 W160 H90 C444\n").unwrap();
    let out = Command::new(BIN)
        .args([
            "stream",
            "--synthetic",
            "--input",
            bad.to_str().unwrap(),
            "--to",
            "127.0.0.1:5004",
            "--sdp",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("4:2:0"), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}
