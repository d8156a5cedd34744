//! Fuzz target: MLDv2 messages with an arbitrary IPv6 pseudo-header (first 32 bytes are the
//! source and destination), and IPv6 packets (hop-by-hop options) carrying them.
#![no_main]

use std::net::Ipv6Addr;

use libfuzzer_sys::fuzz_target;
use roomcast_amt::membership::{EncapsulatedQuery, EncapsulatedReport};
use roomcast_amt::mld::MldMessage;

fuzz_target!(|data: &[u8]| {
    let _ = EncapsulatedQuery::decode(data);
    let _ = EncapsulatedReport::decode(data);
    let (Some(src), Some(dst), Some(body)) = (data.get(..16), data.get(16..32), data.get(32..)) else { return };
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(src).unwrap_or([0; 16]));
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(dst).unwrap_or([0; 16]));
    if let Ok(m) = MldMessage::decode(body, src, dst) {
        let mut out = Vec::new();
        m.encode(src, dst, &mut out).expect("decoded MLD re-encodes");
        assert_eq!(MldMessage::decode(&out, src, dst).expect("re-encoded MLD decodes"), m);
    }
});
