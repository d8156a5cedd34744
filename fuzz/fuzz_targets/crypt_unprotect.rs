//! SRTP/SRTCP decryption of arbitrary bytes (the receive edge of every box), the media key's
//! JSON form, and protect/unprotect round trips of whatever the protector accepts.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use roomcast_crypt::{Protector, SrtpKey, Unprotector};

fuzz_target!(|data: &[u8]| {
    let key = SrtpKey::from_bytes(0, [7; 28]);
    let now = Instant::now();
    let mut rx = Unprotector::new(key.clone()).expect("key");
    // Arbitrary bytes never decrypt (the GCM tag) and never panic.
    let _ = rx.unprotect(now, data);
    rx.handle_key(now, SrtpKey::from_bytes(1, [9; 28])).expect("key");
    let _ = rx.unprotect(now, data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = serde_json::from_str::<SrtpKey>(text);
    }
    let mut tx = Protector::new(key).expect("key");
    if let Ok(sealed) = tx.protect(data) {
        let mut fresh = Unprotector::new(SrtpKey::from_bytes(0, [7; 28])).expect("key");
        if let Ok(plain) = fresh.unprotect(now, &sealed) {
            assert_eq!(plain, data, "a round trip gives the packet back");
        }
    }
});
