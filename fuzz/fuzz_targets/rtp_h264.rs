//! Fuzz target: the H264 depacketizer fed a packet sequence built from the input (payloads,
//! markers, sequence gaps, reordering and timestamp jumps under fuzzer control) must never
//! panic, and every frame it returns must be non-empty; the H264 packetizer fed the raw input
//! as a frame must never panic and never exceed its packet size limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast_rtp::{parse_rtp, Depacketizer, H264Depacketizer, H264Packetizer, Packetizer};

#[path = "rtp_common.rs"]
mod rtp_common;

fuzz_target!(|data: &[u8]| {
    let mut d = H264Depacketizer::new();
    for pkt in rtp_common::packets(data) {
        let parsed = parse_rtp(&pkt).expect("built packets parse");
        if let Ok(Some(frame)) = d.depacketize(&parsed) {
            assert!(!frame.data.is_empty());
        }
    }
    let _ = d.finish();
    let max = 14 + usize::from(data.first().copied().unwrap_or(0)) * 6;
    let mut p = H264Packetizer::new(1, 96, max, 0);
    let mut out = Vec::new();
    if p.packetize(data, 0, &mut out).is_ok() {
        assert!(!out.is_empty());
        for pkt in &out {
            assert!(pkt.len() <= max, "packet {} > limit {max}", pkt.len());
            let parsed = parse_rtp(pkt).expect("our packets parse");
            let _ = H264Depacketizer::new().depacketize(&parsed);
        }
    }
});
