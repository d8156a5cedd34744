//! Fuzz target: any datagram as an RTP packet. Parsing must never panic, and a parsed packet
//! must re-serialise to bytes that parse to the same header and payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast_rtp::{build_rtp, parse_rtp};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = parse_rtp(data) {
        let bytes = build_rtp(&p.header, p.payload);
        let again = parse_rtp(&bytes).expect("re-serialised packet parses");
        assert_eq!(again, p);
    }
    let mut ext = roomcast_rtp::SeqExtender::new();
    for pair in data.chunks_exact(2) {
        ext.extend(u16::from_be_bytes([pair[0], pair[1]]));
    }
});
