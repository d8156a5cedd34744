//! Fuzz target: any datagram as an AMT message (all seven types, with the nested
//! IGMPv3/MLDv2/IPv4/IPv6/UDP packets). Decoding must never panic, and whatever decodes must
//! re-encode to bytes that decode to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast_amt::{decapsulate, Message, MessageType};

fuzz_target!(|data: &[u8]| {
    let _ = MessageType::of(data);
    let _ = decapsulate(data);
    if let Ok(m) = Message::decode(data) {
        let bytes = m.to_bytes().expect("a decoded message re-encodes");
        assert_eq!(Message::decode(&bytes).expect("re-encoded message decodes"), m);
    }
});
