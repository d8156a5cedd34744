//! Media keys through the control protocol: a join carries the box's key, the join reply and a
//! participant's roster (asked with its secret) carry every member's key, an anonymous or
//! wrongly authenticated roster request carries none, a rekey replaces a key, and a member that
//! left is no longer in the roster with its key.

use std::time::Instant;

use roomcast_meeting::client::Call;
use roomcast_meeting::control::{parse_request, Reply};
use roomcast_meeting::roster::{AudioCaps, JoinReply, Roster, SrtpKey};
use roomcast_meeting::service::{Event, LeaveReason};
use roomcast_meeting::{Caps, MeetingService, ServiceConfig};

const TOKEN: &str = "demo-token";

fn call(s: &mut MeetingService, now: Instant, c: Call, secret: Option<&str>) -> (u16, String) {
    let bytes = c.encode("127.0.0.1", TOKEN, secret);
    let (req, _) = parse_request(&bytes).expect("parses");
    match s.handle_control(now, req) {
        Reply::Json { status, body } => (status, body),
        other => panic!("unexpected {other:?}"),
    }
}

/// Audio only (a watch-only join without caps comes with the "access" branch).
fn caps() -> Caps {
    Caps { video: None, audio: Some(AudioCaps { codec: "opus".into(), payload_type: 111, channels: 1 }) }
}

fn join(s: &mut MeetingService, now: Instant, room: &str, key: &SrtpKey) -> JoinReply {
    let (status, body) = call(s, now, Call::join_keyed("demo", room, &caps(), Some(key)), None);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn key_of<'a>(r: &'a Roster, id: &str) -> Option<&'a SrtpKey> {
    r.participants.iter().find(|p| p.id == id).and_then(|p| p.key.as_ref())
}

#[test]
fn keys_go_only_to_participants_and_follow_rekeys_and_leaves() {
    let t0 = Instant::now();
    let mut s = MeetingService::new(ServiceConfig::loopback("demo", TOKEN));
    let (ka, kb) = (SrtpKey::from_os(0), SrtpKey::from_os(0));
    let a = join(&mut s, t0, "A", &ka);
    let b = join(&mut s, t0, "B", &kb);
    assert_eq!(key_of(&a.roster, &a.participant), Some(&ka));
    assert_eq!(key_of(&b.roster, &a.participant), Some(&ka), "the join reply carries the others' keys");

    // Token only: no keys.
    let (status, body) = call(&mut s, t0, Call::roster("demo", None), None);
    assert_eq!(status, 200);
    let anon: Roster = serde_json::from_str(&body).unwrap();
    assert_eq!(anon.participants.len(), 2);
    assert!(anon.participants.iter().all(|p| p.key.is_none()), "{body}");
    assert!(!body.contains("\"key\""));
    // A participant id with a wrong secret, or none: refused.
    let (status, _) = call(&mut s, t0, Call::roster_as("demo", None, &a.participant), Some(&b.secret));
    assert_eq!(status, 404);
    let (status, _) = call(&mut s, t0, Call::roster_as("demo", None, &a.participant), None);
    assert_eq!(status, 400);
    // With its secret: keys.
    let (status, body) = call(&mut s, t0, Call::roster_as("demo", None, &a.participant), Some(&a.secret));
    assert_eq!(status, 200);
    let r: Roster = serde_json::from_str(&body).unwrap();
    assert_eq!(key_of(&r, &b.participant), Some(&kb));

    // C joins, then leaves: A rekeys; the roster moves on without C and with A's new key.
    let c = join(&mut s, t0, "C", &SrtpKey::from_os(0));
    let (status, _) = call(&mut s, t0, Call::leave("demo", &c.participant), Some(&c.secret));
    assert_eq!(status, 200);
    let version = s.roster_version("demo").unwrap();
    let ka2 = SrtpKey::from_os(1);
    let (status, body) = call(&mut s, t0, Call::set_key("demo", &a.participant, &ka2), Some(&b.secret));
    assert_eq!(status, 404, "only the participant itself sets its key: {body}");
    let (status, body) = call(&mut s, t0, Call::set_key("demo", &a.participant, &ka2), Some(&a.secret));
    assert_eq!(status, 200, "{body}");
    assert_eq!(s.roster_version("demo"), Some(version + 1));
    let (status, _) = call(&mut s, t0, Call::set_key("demo", &a.participant, &SrtpKey::from_os(1)), Some(&a.secret));
    assert_eq!(status, 400, "a key id must grow");
    let r = s.roster_with_keys("demo").unwrap();
    assert_eq!(key_of(&r, &a.participant), Some(&ka2));
    assert!(r.participants.iter().all(|p| p.id != c.participant));
    // C (departed) cannot fetch the keys any more.
    let (status, _) = call(&mut s, t0, Call::roster_as("demo", None, &c.participant), Some(&c.secret));
    assert_eq!(status, 404);

    // No key material in the events or their Debug (what the driver logs).
    let mut rekeyed = 0;
    while let Some(ev) = s.poll_event() {
        let dbg = format!("{ev:?}");
        for k in [&ka, &kb, &ka2] {
            let hex = serde_json::to_value(k).unwrap()["key"].as_str().unwrap().to_string();
            assert!(!dbg.contains(&hex[..16]), "{dbg}");
        }
        if let Event::Rekeyed { key_id, .. } = ev {
            assert_eq!(key_id, 1);
            rekeyed += 1;
        }
    }
    assert_eq!(rekeyed, 1);
    s.leave("demo", &b.participant, LeaveReason::Request).unwrap();
}

#[test]
fn a_member_without_a_key_still_gets_the_others() {
    let t0 = Instant::now();
    let mut s = MeetingService::new(ServiceConfig::loopback("demo", TOKEN));
    let ka = SrtpKey::from_os(0);
    let a = join(&mut s, t0, "A", &ka);
    let (status, body) = call(&mut s, t0, Call::join("demo", "gateway", &caps()), None);
    assert_eq!(status, 200, "{body}");
    let g: JoinReply = serde_json::from_str(&body).unwrap();
    assert_eq!(key_of(&g.roster, &a.participant), Some(&ka));
    assert_eq!(key_of(&g.roster, &g.participant), None);
}
