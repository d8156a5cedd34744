//! Fuzz target: the meeting service's control protocol parser (HTTP/1.1 + JSON) on arbitrary
//! bytes, then the whole service core on whatever parses, the client's response parser, and the
//! `[meeting]` values a box reads (server endpoint, certificate fingerprint). None of it may panic.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use roomcast_meeting::control::parse_request;
use roomcast_meeting::endpoint::Endpoint;
use roomcast_meeting::tls::Fingerprint;
use roomcast_meeting::{client, MeetingService, ServiceConfig};

fuzz_target!(|data: &[u8]| {
    if let Ok((req, used)) = parse_request(data) {
        assert!(used <= data.len());
        let mut svc = MeetingService::new(ServiceConfig::loopback("demo", "secret"));
        let _ = svc.handle_control(Instant::now(), req).encode();
    }
    let _ = client::parse_response(data).map(|r| client::decode_roster(&r));
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(e) = text.parse::<Endpoint>() {
            assert_eq!(e.authority().parse::<Endpoint>().map(|b| (b.host, b.port)), Ok((e.host.clone(), e.port)));
        }
        if let Ok(f) = text.parse::<Fingerprint>() {
            assert_eq!(f.to_string().parse::<Fingerprint>(), Ok(f));
        }
    }
    let mut svc = MeetingService::new(ServiceConfig::loopback("demo", "secret"));
    let _ = svc.handle_packet(Instant::now(), "127.0.0.1:1".parse().unwrap(), data);
});
