//! Fuzz target: any bytes as an FWHT frame (a vicodec encoder's CAPTURE buffer). Parsing the
//! header must never panic; a parsed header's announced data fits in the buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast_media::decode::fwht::{FwhtHeader, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = FwhtHeader::parse(data) {
        assert!(HEADER_LEN + h.size as usize <= data.len());
        assert!((1..=8).contains(&h.components()));
        let _ = (h.is_intra(), h.is_420());
    }
});
