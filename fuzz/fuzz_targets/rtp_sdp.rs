//! Fuzz target: any text as an SDP description. Parsing must never panic, and what parses must
//! print to SDP that parses again and prints identically (printing is a fixed point).
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast_rtp::sdp::SessionDescription;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(sdp) = SessionDescription::parse(text) {
        let printed = sdp.to_string();
        let again = SessionDescription::parse(&printed).expect("printed SDP parses");
        assert_eq!(again.to_string(), printed);
    }
});
