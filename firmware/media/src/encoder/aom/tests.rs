use super::*;
use crate::camera::synthetic::SyntheticCamera;

fn cfg() -> EncoderConfig {
    let mut c = EncoderConfig::new(64, 48, 30);
    c.keyframe_interval = 1000;
    c.bitrate_bps = 200_000;
    c
}

#[test]
fn holds_no_frame_and_keyframes_on_request() {
    let mut enc = AomEncoder::new(cfg()).unwrap();
    let mut out = Vec::new();
    for i in 0..8u64 {
        if i == 5 {
            enc.request_keyframe();
        }
        let got = enc.encode(&SyntheticCamera::render(64, 48, i, Instant::now())).unwrap();
        assert_eq!(got.len(), 1, "frame {i} comes out of the call that took it");
        out.extend(got);
    }
    assert!(enc.flush().unwrap().is_empty());
    assert_eq!(out.iter().map(|f| f.index).collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
    let keys: Vec<u64> = out.iter().filter(|f| f.keyframe).map(|f| f.index).collect();
    assert_eq!(keys, vec![0, 5]);
    // Temporal delimiter OBU (type 2, has_size) opens each temporal unit, as with rav1e.
    assert!(out.iter().all(|f| f.data.starts_with(&[0x12, 0x00])));
    assert_eq!(enc.codec(), VideoCodec::Av1);
    assert!(enc.describe().contains("cpu-used 8"), "{}", enc.describe());
}

#[test]
fn bitrate_changes_on_the_running_encoder() {
    let mut enc = AomEncoder::new(cfg()).unwrap();
    for i in 0..3u64 {
        enc.encode(&SyntheticCamera::render(64, 48, i, Instant::now())).unwrap();
    }
    enc.set_bitrate(300_000).unwrap();
    let f = enc.encode(&SyntheticCamera::render(64, 48, 3, Instant::now())).unwrap();
    assert!(!f[0].keyframe, "no restart, no keyframe");
    assert_eq!(enc.config().bitrate_bps, 300_000);
    assert!(enc.set_bitrate(5).is_err());
}

#[test]
fn rejects_wrong_frame_size_and_odd_sizes() {
    let mut enc = AomEncoder::new(cfg()).unwrap();
    assert!(enc.encode(&SyntheticCamera::render(32, 48, 0, Instant::now())).is_err());
    assert!(AomEncoder::new(EncoderConfig::new(63, 48, 30)).is_err());
}

#[test]
fn one_tile_column_per_thread_within_the_width() {
    assert_eq!(tile_columns_log2(1, 1280), 0);
    assert_eq!(tile_columns_log2(2, 1280), 1);
    assert_eq!(tile_columns_log2(4, 1280), 2);
    assert_eq!(tile_columns_log2(4, 640), 1, "640 pixels hold two 256-pixel tiles");
    assert_eq!(tile_columns_log2(4, 320), 0);
}
