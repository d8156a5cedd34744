//! Fuzz target: any datagram as a compound RTCP packet. Parsing must never panic; SR, RR, PLI,
//! SDES and BYE packets that parse must re-encode to bytes that parse to the same values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast_rtp::rtcp::{encode_compound, parse_compound, RtcpPacket};

fuzz_target!(|data: &[u8]| {
    if let Ok(packets) = parse_compound(data) {
        let bytes = encode_compound(&packets);
        let again = parse_compound(&bytes).expect("re-encoded compound packet parses");
        assert_eq!(again.len(), packets.len());
        for (a, b) in again.iter().zip(&packets) {
            match (a, b) {
                (RtcpPacket::Other { packet_type: x, .. }, RtcpPacket::Other { packet_type: y, .. }) => {
                    assert_eq!(x, y)
                }
                _ => assert_eq!(a, b),
            }
        }
    }
});
