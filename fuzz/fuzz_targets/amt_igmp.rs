//! Fuzz target: IGMP messages (IGMPv3 query and report) and IPv4 packets carrying them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast_amt::igmp::IgmpMessage;
use roomcast_amt::membership::{EncapsulatedQuery, EncapsulatedReport};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = IgmpMessage::decode(data) {
        let mut out = Vec::new();
        m.encode(&mut out).expect("decoded IGMP re-encodes");
        assert_eq!(IgmpMessage::decode(&out).expect("re-encoded IGMP decodes"), m);
    }
    let _ = EncapsulatedQuery::decode(data);
    let _ = EncapsulatedReport::decode(data);
});
