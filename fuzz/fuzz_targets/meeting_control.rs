//! Fuzz target: the meeting service's control protocol parser (HTTP/1.1 + JSON) on arbitrary
//! bytes, then the whole service core on whatever parses, and the client's response parser.
//! None of it may panic.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use roomcast_meeting::control::parse_request;
use roomcast_meeting::{client, MeetingService, ServiceConfig};

fuzz_target!(|data: &[u8]| {
    if let Ok((req, used)) = parse_request(data) {
        assert!(used <= data.len());
        let mut svc = MeetingService::new(ServiceConfig::loopback("demo", "secret"));
        let _ = svc.handle_control(Instant::now(), req).encode();
    }
    let _ = client::parse_response(data).map(|r| client::decode_roster(&r));
    let mut svc = MeetingService::new(ServiceConfig::loopback("demo", "secret"));
    let _ = svc.handle_packet(Instant::now(), "127.0.0.1:1".parse().unwrap(), data);
});
