use std::io::Cursor;

use proptest::prelude::*;

use super::*;
use crate::clock::ManualClock;

fn stream(header: &str, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("{header}\n").into_bytes();
    for f in frames {
        out.extend_from_slice(b"FRAME\n");
        out.extend_from_slice(f);
    }
    out
}

fn frames_4x2(n: u8) -> Vec<Vec<u8>> {
    (0..n).map(|i| vec![i; VideoFrame::i420_len(4, 2)]).collect()
}

fn fault(r: Result<impl std::fmt::Debug>) -> Y4mFault {
    match r {
        Err(MediaError::Y4m(f)) => f,
        other => panic!("expected a Y4M fault, got {other:?}"),
    }
}

#[test]
fn parses_the_header_ffmpeg_writes() {
    let h = Y4mHeader::parse(b"YUV4MPEG2 W640 H360 F30000:1001 Ip A1:1 C420jpeg XYSCSS=420JPEG\n").unwrap();
    assert_eq!(h, Y4mHeader { width: 640, height: 360, fps_num: 30000, fps_den: 1001 });
    assert_eq!(h.fps(), 30);
    assert_eq!(h.frame_len(), 640 * 360 * 3 / 2);
    assert_eq!(h.due(30000), Duration::from_secs(1001));
    // No F: 30 fps; no C: 4:2:0.
    assert_eq!(Y4mHeader::parse(b"YUV4MPEG2 H2 W4").unwrap().fps(), 30);
}

#[test]
fn rejects_bad_headers_with_a_reason() {
    let cases: [(&[u8], Y4mFault); 9] = [
        (b"YUV4MPEG W4 H2", Y4mFault::NotY4m),
        (b"", Y4mFault::NotY4m),
        (b"YUV4MPEG2 W4", Y4mFault::MissingSize),
        (b"YUV4MPEG2 W4 Hx", Y4mFault::BadParameter('H')),
        (b"YUV4MPEG2 W3 H2", Y4mFault::BadSize(3, 2)),
        (b"YUV4MPEG2 W8192 H2", Y4mFault::BadSize(8192, 2)),
        (b"YUV4MPEG2 W4 H2 F0:1", Y4mFault::BadFrameRate(0, 1)),
        (b"YUV4MPEG2 W4 H2 F30", Y4mFault::BadParameter('F')),
        (b"YUV4MPEG2 W4 H2 C444", Y4mFault::UnsupportedColorspace("444".into())),
    ];
    for (line, want) in cases {
        assert_eq!(Y4mHeader::parse(line), Err(want), "{}", String::from_utf8_lossy(line));
    }
    assert_eq!(Y4mHeader::parse(b"YUV4MPEG2 W4 H2 F241:1"), Err(Y4mFault::BadFrameRate(241, 1)));
    assert!(Y4mHeader::parse(b"YUV4MPEG2 W4 H2 F240:1").is_ok());
}

#[test]
fn reader_loops_over_the_frames_in_order() {
    let data = stream("YUV4MPEG2 W4 H2 F25:1 C420", &frames_4x2(3));
    let mut r = Y4mReader::new(Cursor::new(data)).unwrap();
    let firsts: Vec<u8> = (0..7).map(|_| r.next_frame().unwrap()[0]).collect();
    assert_eq!(firsts, [0, 1, 2, 0, 1, 2, 0]);
    // FRAME parameters are allowed.
    let mut data = b"YUV4MPEG2 W4 H2\nFRAME Ixyz\n".to_vec();
    data.extend_from_slice(&[9; 12]);
    assert_eq!(Y4mReader::new(Cursor::new(data)).unwrap().next_frame().unwrap(), vec![9; 12]);
}

#[test]
fn reader_reports_broken_streams() {
    let h = "YUV4MPEG2 W4 H2";
    let mut truncated = stream(h, &frames_4x2(2));
    truncated.truncate(truncated.len() - 1);
    let mut r = Y4mReader::new(Cursor::new(truncated)).unwrap();
    assert!(r.next_frame().is_ok());
    assert_eq!(fault(r.next_frame()), Y4mFault::TruncatedFrame);

    let mut r = Y4mReader::new(Cursor::new(stream(h, &[]))).unwrap();
    assert_eq!(fault(r.next_frame()), Y4mFault::NoFrames);

    let mut r = Y4mReader::new(Cursor::new(format!("{h}\nFRAMX\n").into_bytes())).unwrap();
    assert_eq!(fault(r.next_frame()), Y4mFault::BadFrameHeader);

    let long = format!("{h} X{}\n", "a".repeat(MAX_LINE));
    assert_eq!(fault(Y4mReader::new(Cursor::new(long.into_bytes()))), Y4mFault::LineTooLong);

    // A 4096x4096 header with a few bytes behind it: an error, not a 25 MB allocation per frame.
    let mut r = Y4mReader::new(Cursor::new(b"YUV4MPEG2 W4096 H4096\nFRAME\nabc".to_vec())).unwrap();
    assert_eq!(fault(r.next_frame()), Y4mFault::TruncatedFrame);
}

#[test]
fn camera_is_paced_at_the_file_rate_and_counts_on_across_loops() {
    let path = std::env::temp_dir().join(format!("roomcast-y4m-test-{}.y4m", std::process::id()));
    std::fs::write(&path, stream("YUV4MPEG2 W4 H2 F25:1", &frames_4x2(2))).unwrap();
    let clock = ManualClock::new();
    let t0 = clock.now();
    let mut cam = Y4mCamera::open(&path, Arc::new(clock.clone())).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(cam.format().fps, 25);
    assert_eq!((cam.format().width, cam.format().height), (4, 2));
    for i in 0..5u64 {
        let f = cam.capture().unwrap();
        assert_eq!(f.index, i);
        assert_eq!(f.data[0], (i % 2) as u8);
        assert_eq!(f.captured_at - t0, Duration::from_millis(40 * i));
    }
    assert!(Y4mCamera::open(Path::new("/nonexistent/clip.y4m"), Arc::new(clock)).is_err());
}

proptest! {
    #[test]
    fn never_panics_on_any_bytes(tail in proptest::collection::vec(any::<u8>(), 0..256), w in 0u32..20, h in 0u32..20) {
        let mut data = format!("YUV4MPEG2 W{w} H{h}\n").into_bytes();
        data.extend_from_slice(&tail);
        if let Ok(mut r) = Y4mReader::new(Cursor::new(&data)) {
            for _ in 0..4 {
                if r.next_frame().is_err() {
                    break;
                }
            }
        }
        let _ = Y4mReader::new(Cursor::new(&tail));
    }
}
