//! Fuzz target: any bytes as a Y4M file for the file camera. Reading the header and up to
//! eight frames (looping at the end) must never panic; every frame read has the header's size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast_media::camera::y4m::Y4mReader;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = Y4mReader::new(std::io::Cursor::new(data)) else { return };
    let len = reader.header().frame_len();
    for _ in 0..8 {
        match reader.next_frame() {
            Ok(frame) => assert_eq!(frame.len(), len),
            Err(_) => break,
        }
    }
});
