//! Fuzz target: the RDATA of DRIAD's AMTRELAY records (RFC 8777) from DNS answers: the parser
//! never panics and what it accepts re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast_net::driad::parse_amtrelay;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = parse_amtrelay(data) {
        assert_eq!(r.encode(), data, "an accepted AMTRELAY record re-encodes to its bytes");
    }
});
