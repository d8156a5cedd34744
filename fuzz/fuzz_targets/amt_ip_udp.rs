//! Fuzz target: the IPv4/IPv6 + UDP datagram inside AMT Multicast Data (header checksum, UDP
//! length and checksum, extension headers, fragments). What decapsulates must re-encapsulate
//! to a datagram that decapsulates to the same data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast_amt::{decapsulate, encapsulate};

fuzz_target!(|data: &[u8]| {
    let mut amt = Vec::with_capacity(data.len() + 2);
    amt.extend_from_slice(&[0x06, 0x00]);
    amt.extend_from_slice(data);
    if let Ok(d) = decapsulate(&amt) {
        let mut out = Vec::new();
        if encapsulate(&d.source_group(), d.source.port(), d.group.port(), d.payload, &mut out).is_ok() {
            assert_eq!(decapsulate(&out).expect("re-encapsulated data decodes"), d);
        }
    }
});
