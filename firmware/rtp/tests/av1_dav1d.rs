//! Third-party check of the AV1 payload format and the IVF writer: ffmpeg's libaom-av1 makes a
//! 2 s 320x240 stream (keyframe every 20 frames); we packetize every temporal unit (AMT packet
//! size), depacketize, write `video.ivf` with our IvfWriter, and dav1d must decode all 50
//! frames to pictures identical (md5) to decoding ffmpeg's own file. With a packet lost in
//! frame 5, the depacketizer drops frames 5..19 and dav1d decodes the 35 frames left cleanly.
//! (Debian's ffmpeg 5.1 has no AV1 RTP depacketizer and Debian's GStreamer no rtpav1depay,
//! so no third-party AV1 RTP receiver is available; dav1d checks the reassembled bitstream.)

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use roomcast_rtp::av1::obu::{
    parse_temporal_unit, OBU_PADDING, OBU_TEMPORAL_DELIMITER, OBU_TILE_LIST, TEMPORAL_DELIMITER,
};
use roomcast_rtp::ivf::{read_ivf, IvfHeader, IvfWriter};
use roomcast_rtp::{
    parse_rtp, Av1Depacketizer, Av1Packetizer, Depacketizer, Frame, Packetizer, AMT_MAX_RTP_PACKET_SIZE,
};

const FRAMES: usize = 50;
const FRAME_BYTES: u64 = 320 * 240 * 3 / 2;

/// What the depacketizer must give back: TD first, every OBU sized, TD/tile list/padding gone.
fn normalised(tu: &[u8]) -> Vec<u8> {
    let mut out = TEMPORAL_DELIMITER.to_vec();
    for obu in parse_temporal_unit(tu).expect("ffmpeg TU parses") {
        if !matches!(obu.obu_type, OBU_TEMPORAL_DELIMITER | OBU_TILE_LIST | OBU_PADDING) {
            obu.write_sized(&mut out);
        }
    }
    out
}

fn dav1d_decode(dav1d: &Path, ivf: &Path, dir: &Path, name: &str) -> (u64, String) {
    let yuv = dir.join(format!("{name}.yuv"));
    let md5 = dir.join(format!("{name}.md5"));
    let out = run(Command::new(dav1d).arg("-i").arg(ivf).arg("-o").arg(&yuv));
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(!stderr.contains("error"), "dav1d reported errors on {name}: {stderr}");
    run(Command::new(dav1d).arg("-i").arg(ivf).args(["--muxer", "md5", "-o"]).arg(&md5));
    let size = std::fs::metadata(&yuv).expect("yuv written").len();
    assert_eq!(size % FRAME_BYTES, 0, "partial picture in dav1d output");
    (size / FRAME_BYTES, std::fs::read_to_string(&md5).expect("md5").trim().to_string())
}

fn round_trip(tus: &[Vec<u8>], drop_packet_of_frame: Option<usize>) -> (Vec<Frame>, u64) {
    let mut packetizer = Av1Packetizer::new(0xa1, 96, AMT_MAX_RTP_PACKET_SIZE, 0xfffe);
    let mut depacketizer = Av1Depacketizer::new();
    let mut frames = Vec::new();
    for (i, tu) in tus.iter().enumerate() {
        let mut packets = Vec::new();
        packetizer.packetize(tu, i as u32 * 3600, &mut packets).expect("packetize");
        assert!(packets.iter().all(|p| p.len() <= AMT_MAX_RTP_PACKET_SIZE));
        if drop_packet_of_frame == Some(i) {
            packets.remove(0);
        }
        for pkt in &packets {
            if let Some(f) = depacketizer.depacketize(&parse_rtp(pkt).expect("parse")).expect("depacketize") {
                frames.push(f);
            }
        }
    }
    (frames, depacketizer.stats().dropped_frames)
}

fn write_ivf(path: &Path, frames: &[Frame]) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = IvfWriter::new(std::io::BufWriter::new(file), IvfHeader::av1_90khz(0, 0)).unwrap();
    for f in frames {
        w.write_frame(u64::from(f.timestamp), &f.data).unwrap();
    }
    w.finish_seekable().unwrap();
}

#[test]
fn dav1d_decodes_our_depacketized_av1() {
    let Some(ffmpeg) = roomcast_test_support::require_tool("ffmpeg") else { return };
    let Some(dav1d) = roomcast_test_support::require_tool("dav1d") else { return };
    let dir = scratch_dir("av1");
    let source = dir.join("ffmpeg.ivf");
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
            "libaom-av1",
            "-usage",
            "realtime",
            "-cpu-used",
            "8",
            "-g",
            "20",
            "-b:v",
            "300k",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "ivf",
        ])
        .arg(&source));
    let bytes = std::fs::read(&source).unwrap();
    let (_, ffmpeg_frames) = read_ivf(&bytes).expect("ffmpeg IVF parses");
    let tus: Vec<Vec<u8>> = ffmpeg_frames.iter().map(|f| f.data.to_vec()).collect();
    assert_eq!(tus.len(), FRAMES);

    let (frames, dropped) = round_trip(&tus, None);
    assert_eq!(dropped, 0);
    assert_eq!(frames.len(), FRAMES);
    for (i, (f, tu)) in frames.iter().zip(&tus).enumerate() {
        assert_eq!(f.data, normalised(tu), "temporal unit {i} differs after the round trip");
        assert_eq!(f.keyframe, i % 20 == 0, "keyframe flag of frame {i}");
    }
    let ours = dir.join("video.ivf");
    write_ivf(&ours, &frames);
    let (header, _) = read_ivf(&std::fs::read(&ours).unwrap()).unwrap();
    assert_eq!((&header.fourcc, header.frame_count), (b"AV01", FRAMES as u32));
    assert_eq!((header.width, header.height), (320, 240), "size from the sequence header");

    let (n_direct, md5_direct) = dav1d_decode(&dav1d, &source, &dir, "direct");
    let (n_ours, md5_ours) = dav1d_decode(&dav1d, &ours, &dir, "ours");
    assert_eq!(n_direct, FRAMES as u64);
    assert_eq!(n_ours, FRAMES as u64, "frames dav1d decoded from our IVF");
    assert_eq!(md5_ours, md5_direct, "pictures differ from decoding ffmpeg's file");

    // Loss in frame 5: frames 5..19 are dropped, decoding resumes cleanly at keyframe 20.
    let (frames, dropped) = round_trip(&tus, Some(5));
    // 6..19 always; frame 5 too when it had packets left to see.
    assert!((14..=15).contains(&dropped), "dropped {dropped}");
    let kept: Vec<usize> = frames.iter().map(|f| f.timestamp as usize / 3600).collect();
    assert_eq!(kept, (0..5).chain(20..50).collect::<Vec<_>>());
    let lossy = dir.join("lossy.ivf");
    write_ivf(&lossy, &frames);
    let (n_lossy, _) = dav1d_decode(&dav1d, &lossy, &dir, "lossy");
    assert_eq!(n_lossy, 35);
}
