//! The Y4M camera plays what ffmpeg writes: frame for frame the same pictures as ffmpeg's raw
//! output of the same camera-like clip, looping at the end.

#[path = "common/camlike.rs"]
mod camlike;

use std::sync::Arc;

use roomcast_media::camera::y4m::Y4mCamera;
use roomcast_media::camera::Camera;
use roomcast_media::clock::ManualClock;

#[test]
fn y4m_camera_delivers_ffmpegs_frames_in_a_loop() {
    let (w, h, fps, n) = (320, 180, 15, 6);
    let Some(raw) = camlike::raw_frames(w, h, fps, n) else { return };
    let path = camlike::clip(w, h, fps, n, camlike::Format::Y4m).unwrap();
    let mut cam = Y4mCamera::open(&path, Arc::new(ManualClock::new())).unwrap();
    let f = cam.format();
    assert_eq!((f.width, f.height, f.fps), (w, h, fps));
    for i in 0..(2 * n as usize + 1) {
        let frame = cam.capture().unwrap();
        assert_eq!(frame.index, i as u64);
        assert!(frame.data == raw[i % n as usize], "frame {i} differs from ffmpeg's raw output");
    }
    assert_ne!(raw[0], raw[1], "the clip moves");
}
