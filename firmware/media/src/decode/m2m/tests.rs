//! Tests of the stateful decoder against the M2M fake as a decoder (`FakeSpec::decoder`, the
//! toy coded format): initial source change, a dynamic resolution change (LAST buffer, CAPTURE
//! set up again), padded CAPTURE buffers with a compose rectangle, drain, a vanishing device.

use std::time::{Duration, Instant};

use super::*;
use crate::camera::synthetic::SyntheticCamera;
use crate::encoder::m2m::fake::{toy_frame as toy, FakeM2m, FakeSpec};

fn frame(w: u32, h: u32, i: u64) -> VideoFrame {
    SyntheticCamera::render(w, h, i, Instant::now())
}

#[test]
fn follows_source_changes_and_drains() {
    let (fake, log) = FakeM2m::new(FakeSpec::decoder());
    let mut dec = StatefulDecoder::new(fake, CodedFormat::Fwht, 64, 48).unwrap();
    let mut inputs = std::collections::HashMap::new();
    let mut out = Vec::new();
    for i in 0..6u64 {
        let f = if i < 3 { frame(64, 48, i) } else { frame(100, 64, i) };
        out.extend(dec.decode(&toy(&f), i).unwrap());
        inputs.insert(i, f);
    }
    out.extend(dec.poll_frames(Duration::from_millis(50)).unwrap());
    let (rest, last) = dec.drain().unwrap();
    out.extend(rest);
    assert!(last, "drain ends with a LAST buffer");
    let got: Vec<u64> = out.iter().map(|d| d.frame.index).collect();
    assert_eq!(got, vec![0, 1, 2, 3, 4, 5]);
    for d in &out {
        let input = &inputs[&d.frame.index];
        assert_eq!(psnr_i420(input, &d.frame), Some(99.0), "frame {} unpacked from the driver's stride", d.frame.index);
    }
    assert_eq!(dec.stats().source_changes, 2);
    assert_eq!(dec.stats().sizes, vec![(64, 48), (100, 64)]);
    let calls = log.lock().unwrap().calls.clone();
    let pos = |s: &str| calls.iter().position(|c| c == s).unwrap_or_else(|| panic!("no {s} in {calls:?}"));
    assert!(pos("SUBSCRIBE_EVENT") < pos("STREAMON OUTPUT"));
    // The resolution change: CAPTURE stopped, freed and set up again at the new size.
    let off = pos("STREAMOFF CAPTURE");
    assert_eq!(calls[off + 1], "REQBUFS CAPTURE 0");
    assert_eq!(calls[off + 2], "G_FMT CAPTURE");
    assert_eq!(calls[off + 3], "S_FMT CAPTURE YU12 100x64");
    assert_eq!(calls[off + 4], "G_SELECTION CAPTURE Compose");
    assert_eq!(calls.last().unwrap(), "STREAMOFF OUTPUT");
}

#[test]
fn a_vanished_device_is_device_gone() {
    let (fake, _) = FakeM2m::new(FakeSpec { fail_after: Some(2), fail_errno: libc::ENODEV, ..FakeSpec::decoder() });
    let mut dec = StatefulDecoder::new(fake, CodedFormat::Fwht, 64, 48).unwrap();
    let mut err = None;
    for i in 0..4u64 {
        if let Err(e) = dec.decode(&toy(&frame(64, 48, i)), i) {
            err = Some(e);
            break;
        }
    }
    let e = err.expect("the decoder noticed the device is gone");
    assert!(matches!(e, MediaError::DeviceGone(_)), "{e}");
    assert!(e.to_string().contains("/dev/fake-dec"), "{e}");
}

#[test]
fn refuses_a_device_without_the_coded_format() {
    // The fake offers FWHT only.
    assert!(StatefulDecoder::new(FakeM2m::new(FakeSpec::decoder()).0, CodedFormat::H264, 64, 48).is_err());
}

#[test]
fn unpack_rejects_short_buffers() {
    assert!(unpack_i420(&[0; 10], 64, 48, 64, 0).is_none());
    let f = frame(64, 48, 0);
    let back = unpack_i420(&f.data, 64, 48, 64, 0).unwrap();
    assert_eq!(back.data, f.data);
}

#[test]
fn padded_capture_buffers_give_the_compose_rectangle() {
    // Like vicodec: buffers at the coded size (rounded to 16, at least 640x360), the picture
    // the compose rectangle inside.
    let spec = FakeSpec { coded_align: 16, min_size: (640, 360), stride_align: 1, ..FakeSpec::decoder() };
    let (fake, log) = FakeM2m::new(spec);
    let mut dec = StatefulDecoder::new(fake, CodedFormat::Fwht, 712, 400).unwrap();
    let mut inputs = std::collections::HashMap::new();
    let mut out = Vec::new();
    for i in 0..4u64 {
        let f = if i < 2 { frame(640, 360, i) } else { frame(712, 400, i) };
        out.extend(dec.decode(&toy(&f), i).unwrap());
        inputs.insert(i, f);
    }
    let (rest, last) = dec.drain().unwrap();
    out.extend(rest);
    assert!(last);
    assert_eq!(out.iter().map(|d| d.frame.index).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    for d in &out {
        assert_eq!(psnr_i420(&inputs[&d.frame.index], &d.frame), Some(99.0), "frame {}", d.frame.index);
    }
    assert_eq!(dec.stats().sizes, vec![(640, 360), (712, 400)]);
    let calls = log.lock().unwrap().calls.clone();
    assert!(calls.iter().any(|c| c == "S_FMT CAPTURE YU12 640x368"), "{calls:?}");
    assert!(calls.iter().any(|c| c == "S_FMT CAPTURE YU12 720x400"), "{calls:?}");
    assert_eq!(dec.raw_format().map(|r| (r.width, r.height, r.bytesperline)), Some((720, 400, 720)));
}

#[test]
fn raw_layout_checks_the_picture_fits() {
    let f = QueueFormat { fourcc: *b"YU12", width: 720, height: 400, bytesperline: 720, sizeimage: 432_000 };
    assert_eq!(RawLayout::new(f, (712, 400)), Some(RawLayout { width: 712, height: 400, stride: 720, rows: 400 }));
    assert_eq!(RawLayout::new(f, (721, 400)), None);
    assert_eq!(RawLayout::new(f, (712, 401)), None);
    assert_eq!(RawLayout::new(QueueFormat { fourcc: *b"NV12", ..f }, (712, 400)), None);
    // Rows from sizeimage when the driver aligns the height only there (bcm2835-codec).
    let g = QueueFormat { fourcc: *b"YU12", width: 640, height: 360, bytesperline: 640, sizeimage: 640 * 368 * 3 / 2 };
    assert_eq!(RawLayout::new(g, (640, 360)).map(|l| l.rows), Some(368));
}
