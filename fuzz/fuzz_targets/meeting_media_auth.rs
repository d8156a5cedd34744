//! Fuzz target: the media authentication trailer (`roomcast_meeting::media_auth`) on arbitrary
//! bytes: splitting and verifying never panic, arbitrary bytes do not verify (a forgery would need
//! the key), a sealed copy of them does exactly once, and the service's packet path takes the
//! same bytes from a participant that joined.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use roomcast_meeting::media_auth::{split, MediaKey, Rejected, Sealer, Verifier, TRAILER_LEN};
use roomcast_meeting::roster::{AudioCaps, Caps};
use roomcast_meeting::{MeetingService, ServiceConfig};

const SECRET: &str = "00112233445566778899aabbccddeeff";

fuzz_target!(|data: &[u8]| {
    if let Some((packet, _, tag)) = split(data) {
        assert_eq!(packet.len() + TRAILER_LEN, data.len());
        assert_eq!(tag.len(), 12);
    }
    let mut v = Verifier::new(MediaKey::from_secret(SECRET));
    assert!(v.verify(data).is_err(), "arbitrary bytes verified");
    let sealed = Sealer::new(MediaKey::from_secret(SECRET), 1).seal(data);
    assert_eq!(v.verify(&sealed).map(|ok| ok.packet), Ok(data));
    assert_eq!(v.verify(&sealed), Err(Rejected::Replay));

    let mut svc = MeetingService::new(ServiceConfig::loopback("demo", "secret"));
    let caps = Caps { video: None, audio: Some(AudioCaps { codec: "opus".into(), payload_type: 111, channels: 1 }) };
    let Ok(j) = svc.join(Instant::now(), "demo", "A", caps) else { return };
    let from = "127.0.0.1:1".parse().unwrap();
    let _ = svc.handle_packet(Instant::now(), from, data);
    let sealer = Sealer::new(MediaKey::from_secret(&j.secret), 1);
    if let Some(f) = svc.handle_packet(Instant::now(), from, &sealer.seal(data)) {
        assert_eq!(f.len, data.len());
    }
});
