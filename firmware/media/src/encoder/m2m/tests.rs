//! Tests of the M2M encoder logic against the fake device.

use std::time::Instant;

use super::fake::{FakeM2m, FakeSpec};
use super::*;
use crate::camera::synthetic::SyntheticCamera;
use crate::encoder::{EncoderConfig, VideoCodec, VideoEncoder};
use crate::frame::VideoFrame;

fn frame(i: u64) -> VideoFrame {
    SyntheticCamera::render(320, 180, i, Instant::now())
}

#[test]
fn follows_the_documented_ioctl_sequence() {
    let (dev, log) = FakeM2m::new(FakeSpec::default());
    let mut cfg = EncoderConfig::new(320, 180, 30);
    cfg.keyframe_interval = 60;
    let mut enc = M2mEncoder::new(dev, cfg).unwrap();
    let mut out = Vec::new();
    for i in 0..5 {
        out.extend(enc.encode(&frame(i)).unwrap());
    }
    out.extend(enc.flush().unwrap());
    let calls = log.lock().unwrap().calls.clone();
    let setup: Vec<&str> = calls.iter().map(|s| s.as_str()).take(15).collect();
    assert_eq!(
        setup,
        vec![
            "QUERYCAP",
            "ENUM_FMT CAPTURE",
            "ENUM_FMT OUTPUT",
            "S_FMT CAPTURE H264 320x180",
            "S_FMT OUTPUT YU12 320x180",
            "S_PARM OUTPUT 1/30",
            "S_EXT_CTRLS Bitrate=1000000",
            "S_EXT_CTRLS H264IPeriod=60",
            "S_EXT_CTRLS GopSize=60",
            "S_EXT_CTRLS H264Profile=1",
            "S_EXT_CTRLS H264Level=11",
            "S_EXT_CTRLS RepeatSeqHeader=1",
            "REQBUFS OUTPUT 4",
            "REQBUFS CAPTURE 4",
            "STREAMON OUTPUT",
        ]
    );
    assert!(calls.iter().any(|c| c == "STREAMON CAPTURE"));
    let tail: Vec<&str> = calls.iter().rev().take(3).map(|s| s.as_str()).collect();
    assert_eq!(tail, vec!["STREAMOFF CAPTURE", "STREAMOFF OUTPUT", "ENCODER_CMD STOP"]);
    // Every frame comes out, in order, H.264 Annex B, first one an IDR with SPS/PPS.
    assert_eq!(out.iter().map(|f| f.index).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    assert!(out[0].keyframe && out[0].data.windows(5).any(|w| w == [0, 0, 0, 1, 0x67]));
    assert!(out[1..].iter().all(|f| !f.keyframe && f.codec == VideoCodec::H264));
}

#[test]
fn hardware_latency_is_absorbed_and_keyframe_forced_on_request() {
    let (dev, log) = FakeM2m::new(FakeSpec::default());
    let mut enc = M2mEncoder::new(dev, EncoderConfig::new(320, 180, 30)).unwrap();
    assert!(enc.encode(&frame(0)).unwrap().is_empty(), "fake codes one frame late");
    assert_eq!(enc.encode(&frame(1)).unwrap().len(), 1);
    enc.request_keyframe();
    enc.encode(&frame(2)).unwrap();
    let f2 = enc.encode(&frame(3)).unwrap();
    assert_eq!(f2.len(), 1);
    assert_eq!(f2[0].index, 2);
    assert!(f2[0].keyframe, "forced keyframe on frame 2");
    assert!(log.lock().unwrap().calls.iter().any(|c| c == "S_EXT_CTRLS ForceKeyFrame=1"));
}

#[test]
fn bitrate_changes_while_streaming() {
    let (dev, log) = FakeM2m::new(FakeSpec::default());
    let mut enc = M2mEncoder::new(dev, EncoderConfig::new(320, 180, 30)).unwrap();
    enc.encode(&frame(0)).unwrap();
    enc.set_bitrate(500_000).unwrap();
    enc.encode(&frame(1)).unwrap();
    assert_eq!(log.lock().unwrap().bitrates, vec![1_000_000, 500_000]);
    let calls = log.lock().unwrap().calls.clone();
    let pos_bitrate = calls.iter().position(|c| c == "S_EXT_CTRLS Bitrate=500000").unwrap();
    let pos_q0 = calls.iter().position(|c| c.starts_with("QBUF OUTPUT") && c.ends_with("ts=0")).unwrap();
    let pos_q1 = calls.iter().position(|c| c.ends_with("ts=1")).unwrap();
    assert!(pos_q0 < pos_bitrate && pos_bitrate < pos_q1);
}

#[test]
fn copies_frames_with_the_drivers_stride_and_height_alignment() {
    let (dev, log) = FakeM2m::new(FakeSpec { stride_align: 64, height_align: 16, ..FakeSpec::default() });
    let mut enc = M2mEncoder::new(dev, EncoderConfig::new(100, 50, 30)).unwrap();
    let f = SyntheticCamera::render(100, 50, 7, Instant::now());
    enc.encode(&f).unwrap();
    let queued = log.lock().unwrap().frames[0].clone();
    let (stride, rows) = (128usize, 64usize);
    assert_eq!(queued.len(), stride * rows * 3 / 2);
    let (y, u, v) = f.planes();
    for r in 0..50 {
        assert_eq!(&queued[r * stride..r * stride + 100], &y[r * 100..r * 100 + 100], "luma row {r}");
    }
    let u_off = stride * rows;
    let v_off = u_off + 64 * 32;
    for r in 0..25 {
        assert_eq!(&queued[u_off + r * 64..u_off + r * 64 + 50], &u[r * 50..r * 50 + 50], "U row {r}");
        assert_eq!(&queued[v_off + r * 64..v_off + r * 64 + 50], &v[r * 50..r * 50 + 50], "V row {r}");
    }
}

#[test]
fn probe_rejects_devices_without_h264_capture() {
    let (mut dec, _) = FakeM2m::new(FakeSpec { coded: vec![*b"VP80"], ..FakeSpec::default() });
    let p = probe_device(&mut dec);
    assert!(!p.usable);
    assert!(p.reason.contains("without H264"), "{}", p.reason);
    let (dev, _) = FakeM2m::new(FakeSpec { coded: vec![*b"VP80"], ..FakeSpec::default() });
    assert!(M2mEncoder::new(dev, EncoderConfig::new(320, 180, 30)).is_err());
    let (mut ok, _) = FakeM2m::new(FakeSpec::default());
    assert!(probe_device(&mut ok).usable);
}

#[test]
fn device_errors_surface_as_encoder_errors() {
    let (dev, _) = FakeM2m::new(FakeSpec { fail_after: Some(3), ..FakeSpec::default() });
    let mut enc = M2mEncoder::new(dev, EncoderConfig::new(320, 180, 30)).unwrap();
    // The fake fails from the moment its third frame is queued.
    for i in 0..2 {
        enc.encode(&frame(i)).unwrap();
    }
    let e = enc.encode(&frame(2)).unwrap_err();
    assert!(e.to_string().contains("/dev/fake-m2m"), "{e}");
}

#[test]
fn real_probe_does_not_panic_on_this_machine() {
    // Debian's kernels have no M2M encoder; whatever /dev/video* exist must be probed safely.
    for p in probe() {
        assert!(!p.reason.is_empty());
    }
}

#[test]
fn resolution_change_drains_frees_and_sets_up_again() {
    let (dev, log) = FakeM2m::new(FakeSpec { coded: vec![*b"FWHT"], ..FakeSpec::default() });
    let mut enc = StatefulEncoder::new(dev, EncoderConfig::new(320, 180, 30), CodedFormat::Fwht).unwrap();
    let mut out = Vec::new();
    for i in 0..3 {
        out.extend(enc.encode_frame(&frame(i)).unwrap());
    }
    out.extend(enc.reconfigure(640, 360).unwrap());
    assert_eq!(out.iter().map(|f| f.index).collect::<Vec<_>>(), vec![0, 1, 2], "drained before the change");
    for i in 3..5 {
        out.extend(enc.encode_frame(&SyntheticCamera::render(640, 360, i, Instant::now())).unwrap());
    }
    assert!(enc.encode_frame(&frame(5)).is_err(), "old size refused after the change");
    let (rest, last) = enc.drain().unwrap();
    out.extend(rest);
    assert!(last);
    assert_eq!(out.iter().map(|f| f.index).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    assert!(out.iter().all(|f| f.format == CodedFormat::Fwht));
    let calls = log.lock().unwrap().calls.clone();
    let stop = calls.iter().position(|c| c == "ENCODER_CMD STOP").unwrap();
    let after: Vec<&str> = calls[stop + 1..].iter().map(|s| s.as_str()).take(6).collect();
    assert_eq!(
        after,
        vec![
            "STREAMOFF OUTPUT",
            "STREAMOFF CAPTURE",
            "REQBUFS OUTPUT 0",
            "REQBUFS CAPTURE 0",
            "S_FMT CAPTURE FWHT 640x360",
            "S_FMT OUTPUT YU12 640x360"
        ]
    );
    // FWHT sets no H.264 controls and has no bitrate.
    assert!(!calls.iter().any(|c| c.contains("H264") || c.contains("Bitrate")), "{calls:?}");
    assert!(enc.set_bitrate(1).is_err());
}

#[test]
fn coded_format_parses_and_names() {
    assert_eq!("fwht".parse::<CodedFormat>().unwrap(), CodedFormat::Fwht);
    assert_eq!("H264".parse::<CodedFormat>().unwrap(), CodedFormat::H264);
    assert!("vp8".parse::<CodedFormat>().is_err());
    assert_eq!(CodedFormat::Fwht.fourcc(), *b"FWHT");
    assert_eq!(CodedFormat::H264.video_codec(), Some(VideoCodec::H264));
    assert_eq!(CodedFormat::Fwht.video_codec(), None);
}

/// A fake that negotiates like vicodec: coded sizes rounded up to 16, at least 640x360, lines
/// as wide as the coded width, crop clamped to [640x360, coded size].
fn vicodec_like() -> FakeSpec {
    FakeSpec {
        coded: vec![*b"FWHT"],
        raw: vec![*b"YU12"],
        stride_align: 1,
        height_align: 1,
        coded_align: 16,
        min_size: (640, 360),
        ..FakeSpec::default()
    }
}

/// Checks that `queued` holds `f` at `stride` bytes per line and `rows` luma lines.
fn assert_laid_out(queued: &[u8], f: &VideoFrame, stride: usize, rows: usize) {
    let (w, h) = (f.width as usize, f.height as usize);
    let (cw, ch) = f.chroma_size();
    let (y, u, v) = f.planes();
    assert_eq!(queued.len(), stride * rows * 3 / 2);
    for r in 0..h {
        assert_eq!(&queued[r * stride..r * stride + w], &y[r * w..r * w + w], "luma row {r}");
    }
    let (cstride, u_off) = (stride / 2, stride * rows);
    let v_off = u_off + cstride * rows / 2;
    for r in 0..ch {
        assert_eq!(&queued[u_off + r * cstride..u_off + r * cstride + cw], &u[r * cw..r * cw + cw], "U row {r}");
        assert_eq!(&queued[v_off + r * cstride..v_off + r * cstride + cw], &v[r * cw..r * cw + cw], "V row {r}");
    }
}

#[test]
fn a_padded_coded_size_is_cropped_to_the_frame_and_copied_with_the_drivers_stride() {
    let (dev, log) = FakeM2m::new(vicodec_like());
    let mut enc = StatefulEncoder::new(dev, EncoderConfig::new(640, 360, 30), CodedFormat::Fwht).unwrap();
    let raw = enc.raw_format();
    assert_eq!((raw.width, raw.height, raw.bytesperline), (640, 368, 640), "height padded to 368");
    let f0 = SyntheticCamera::render(640, 360, 0, Instant::now());
    enc.encode_frame(&f0).unwrap();
    enc.reconfigure(712, 400).unwrap();
    let raw = enc.raw_format();
    assert_eq!((raw.width, raw.height, raw.bytesperline), (720, 400, 720), "lines padded to 720");
    let f1 = SyntheticCamera::render(712, 400, 1, Instant::now());
    enc.encode_frame(&f1).unwrap();
    let log = log.lock().unwrap();
    assert_laid_out(&log.frames[0], &f0, 640, 368);
    assert_laid_out(&log.frames[1], &f1, 720, 400);
    let calls = &log.calls;
    let pos = |s: &str| calls.iter().position(|c| c == s).unwrap_or_else(|| panic!("no {s} in {calls:?}"));
    // Spec order: CAPTURE's coded format, OUTPUT's raw format, then the crop, before any buffer.
    assert!(pos("S_FMT CAPTURE FWHT 640x360") < pos("S_FMT OUTPUT YU12 640x360"));
    assert!(pos("S_FMT OUTPUT YU12 640x360") < pos("S_SELECTION OUTPUT Crop 640x360"));
    assert!(pos("S_SELECTION OUTPUT Crop 640x360") < pos("REQBUFS OUTPUT 4"));
    assert!(pos("S_SELECTION OUTPUT Crop 712x400") > pos("S_FMT OUTPUT YU12 712x400"));
}

#[test]
fn the_size_as_asked_needs_no_crop() {
    let (dev, log) = FakeM2m::new(vicodec_like());
    StatefulEncoder::new(dev, EncoderConfig::new(720, 400, 30), CodedFormat::Fwht).unwrap();
    assert!(!log.lock().unwrap().calls.iter().any(|c| c.starts_with("S_SELECTION")));
}

#[test]
fn frames_below_the_drivers_minimum_or_without_crop_are_refused_with_its_figures() {
    let (dev, _) = FakeM2m::new(vicodec_like());
    let e = StatefulEncoder::new(dev, EncoderConfig::new(320, 240, 30), CodedFormat::Fwht).err().unwrap();
    let e = e.to_string();
    assert!(e.contains("for 320x240 frames the driver set OUTPUT YU12 640x368 stride 640"), "{e}");
    assert!(e.contains("visible rectangle for the frame is 640x360"), "{e}");
    let (dev, _) = FakeM2m::new(FakeSpec { selection: false, ..vicodec_like() });
    let e = StatefulEncoder::new(dev, EncoderConfig::new(640, 360, 30), CodedFormat::Fwht).err().unwrap();
    assert!(e.to_string().contains("VIDIOC_S_SELECTION OUTPUT CROP failed"), "{e}");
}
