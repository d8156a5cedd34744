//! The software H.264 decoder against OpenH264's own encoder (an elementary stream made here).

use std::time::Instant;

use openh264::encoder::Encoder;
use openh264::formats::YUVBuffer;

use super::*;
use crate::decode::m2m::psnr_i420;

const W: u32 = 160;
const H: u32 = 96;

/// A packed I420 picture: vertical bars of six levels in luma and a moving square.
fn pattern(n: u32) -> VideoFrame {
    let (w, h) = (W as usize, H as usize);
    let mut data = vec![0u8; VideoFrame::i420_len(W, H)];
    for y in 0..h {
        for x in 0..w {
            let bar = (x * 6 / w) as u8;
            let square = (x + 4 * n as usize) % w < 24 && y > 30 && y < 60;
            data[y * w + x] = if square { 235 } else { 30 + bar * 30 };
        }
    }
    let c = w / 2 * (h / 2);
    for i in 0..c {
        let x = i % (w / 2);
        data[w * h + i] = 60 + (x * 2) as u8;
        data[w * h + c + i] = 200 - x as u8;
    }
    VideoFrame { width: W, height: H, data, index: u64::from(n), captured_at: Instant::now() }
}

fn stream(frames: u32) -> Vec<(VideoFrame, Vec<u8>)> {
    let mut enc = Encoder::new().unwrap();
    (0..frames)
        .map(|n| {
            let f = pattern(n);
            let yuv = YUVBuffer::from_vec(f.data.clone(), W as usize, H as usize);
            let au = enc.encode(&yuv).unwrap().to_vec();
            (f, au)
        })
        .collect()
}

#[test]
fn decodes_an_openh264_stream_to_the_pictures_it_came_from() {
    let mut dec = H264Decoder::<LinuxM2m>::software().unwrap();
    assert!(!dec.is_hardware() && dec.describe().contains("OpenH264"));
    let now = Instant::now();
    let frames = stream(10);
    assert!(frames[0].1.starts_with(&[0, 0, 0, 1]), "Annex B");
    for (n, (src, au)) in frames.iter().enumerate() {
        dec.handle_frame(now, 3000 * n as u32, au).unwrap();
        let p = dec.poll_picture().unwrap_or_else(|| panic!("frame {n}: no picture (low delay: one per frame)"));
        assert_eq!((p.width(), p.height(), p.timestamp), (W, H, 3000 * n as u32));
        assert!(p.planes().is_valid());
        let got = VideoFrame { data: p.to_packed_i420().to_vec(), ..src.clone() };
        let psnr = psnr_i420(src, &got).unwrap();
        assert!(psnr > 30.0, "frame {n}: PSNR {psnr:.1} dB");
    }
    assert_eq!(dec.stats().pictures_out, 10);
}

#[test]
fn garbage_is_an_error_not_a_panic_and_the_next_idr_heals() {
    let mut dec = H264Decoder::<LinuxM2m>::software().unwrap();
    let now = Instant::now();
    assert!(dec.handle_frame(now, 0, &[]).is_err());
    let mut seed = 0x1234_5678u32;
    for len in [1usize, 5, 40, 300, 3000] {
        let mut junk = vec![0, 0, 0, 1];
        junk.extend((0..len).map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 24) as u8
        }));
        let _ = dec.handle_frame(now, 1, &junk);
        while dec.poll_picture().is_some() {}
    }
    let frames = stream(2);
    dec.handle_frame(now, 2, &frames[0].1).unwrap();
    let p = dec.poll_picture().expect("the IDR decodes after garbage");
    assert_eq!((p.width(), p.height()), (W, H));
}

#[test]
fn strided_planes_pack_or_refuse() {
    let y = [1u8, 2, 9, 3, 4, 9];
    let (u, v) = ([5u8, 9], [6u8, 9]);
    assert_eq!(packed_from_strided((2, 2), (3, 2, 2), &y, &u, &v), Some(vec![1, 2, 3, 4, 5, 6]));
    assert_eq!(packed_from_strided((2, 2), (1, 2, 2), &y, &u, &v), None, "stride below width");
    assert_eq!(packed_from_strided((2, 3), (3, 2, 2), &y, &u, &v), None, "planes too short");
}
