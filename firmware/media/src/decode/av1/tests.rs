//! dav1d decoder tests: our own encoders' streams decode to the right size, count and picture;
//! garbage and truncated frames are errors, not panics, and the decoder recovers at a keyframe.

use std::time::{Duration, Instant};

use super::*;
use crate::camera::synthetic::SyntheticCamera;
use crate::decode::I420Planes;
use crate::encoder::auto::SoftwareKind;
use crate::encoder::{EncodedFrame, EncoderConfig};

fn encode(kind: SoftwareKind, w: u32, h: u32, n: u64) -> Vec<(EncodedFrame, Vec<u8>)> {
    let mut c = EncoderConfig::new(w, h, 30);
    c.bitrate_bps = 600_000;
    c.keyframe_interval = 10;
    let mut enc = kind.open(c).unwrap();
    let mut sources = Vec::new();
    let mut out = Vec::new();
    for i in 0..n {
        let f = SyntheticCamera::render(w, h, i, Instant::now());
        sources.push(f.data.clone());
        out.extend(enc.encode(&f).unwrap());
    }
    out.extend(enc.flush().unwrap());
    out.into_iter()
        .map(|f| {
            let src = sources[f.index as usize].clone();
            (f, src)
        })
        .collect()
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum::<f64>() / a.len() as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10()
}

#[test]
fn decodes_both_encoders_streams_frame_for_frame() {
    let kinds: &[SoftwareKind] =
        if cfg!(feature = "aom") { &[SoftwareKind::Rav1e, SoftwareKind::Aom] } else { &[SoftwareKind::Rav1e] };
    for &kind in kinds {
        let (w, h) = (96, 64);
        let frames = encode(kind, w, h, 12);
        let mut dec = Av1Decoder::new(1).unwrap();
        let t0 = Instant::now();
        let mut pictures = Vec::new();
        for (i, (f, src)) in frames.iter().enumerate() {
            let now = t0 + Duration::from_millis(33 * i as u64);
            dec.handle_frame(now, f.index as u32 * 3000, &f.data).unwrap();
            while let Some(p) = dec.poll_picture() {
                pictures.push((p, src.clone(), now));
            }
        }
        assert_eq!(pictures.len(), frames.len(), "{kind:?}: one picture per frame");
        for (i, (p, src, now)) in pictures.iter().enumerate() {
            assert_eq!((p.width(), p.height()), (w, h));
            assert_eq!(p.timestamp, i as u32 * 3000, "{kind:?}: in order");
            assert_eq!(p.received_at, *now, "{kind:?}: a picture comes out for the frame that carried it");
            let packed = p.to_packed_i420();
            assert_eq!(packed.len(), (w * h * 3 / 2) as usize);
            let q = psnr(&packed[..(w * h) as usize], &src[..(w * h) as usize]);
            assert!(q > 25.0, "{kind:?} frame {i}: luma PSNR {q:.1} dB");
        }
        assert_eq!(dec.stats().errors, 0);
    }
}

#[test]
fn garbage_is_an_error_and_a_keyframe_recovers() {
    let frames = encode(SoftwareKind::Rav1e, 64, 48, 12);
    let mut dec = Av1Decoder::new(1).unwrap();
    let now = Instant::now();
    let mut rng = 0x1234_5678u32;
    for len in [0usize, 1, 3, 17, 200, 5000] {
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 17;
                rng ^= rng << 5;
                rng as u8
            })
            .collect();
        let _ = dec.handle_frame(now, 1, &junk);
    }
    // A truncated keyframe, then the rest of the stream from the next keyframe on (frame 10).
    let key = &frames[0].0.data;
    let _ = dec.handle_frame(now, 2, &key[..key.len() / 2]);
    while dec.poll_picture().is_some() {}
    assert!(dec.stats().errors >= 1, "{:?}", dec.stats());
    dec.reset();
    let mut decoded = 0;
    for (f, _) in frames.iter().filter(|(f, _)| f.index >= 10) {
        assert!(f.index != 10 || f.keyframe, "frame 10 is a keyframe");
        dec.handle_frame(now, f.index as u32, &f.data).unwrap();
        while dec.poll_picture().is_some() {
            decoded += 1;
        }
    }
    assert_eq!(decoded, 2);
}

#[test]
fn unpolled_pictures_are_bounded() {
    let frames = encode(SoftwareKind::Rav1e, 64, 48, 12);
    let mut dec = Av1Decoder::new(1).unwrap();
    for (f, _) in &frames {
        dec.handle_frame(Instant::now(), f.index as u32, &f.data).unwrap();
    }
    let mut n = 0;
    while dec.poll_picture().is_some() {
        n += 1;
    }
    assert_eq!(n, MAX_QUEUED);
    assert_eq!(dec.stats().dropped, 12 - MAX_QUEUED as u64);
}

#[test]
fn packed_planes_check_their_length() {
    let data = vec![0u8; 64 * 48 * 3 / 2];
    let p = I420Planes::packed(64, 48, &data).unwrap();
    assert_eq!((p.y.len(), p.u.len(), p.v.len()), (64 * 48, 32 * 24, 32 * 24));
    assert!(I420Planes::packed(64, 48, &data[1..]).is_none());
}
