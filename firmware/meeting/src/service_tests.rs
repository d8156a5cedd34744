//! Tests of the meeting service core with a fake clock (an `Instant` advanced by hand).

use super::*;
use crate::control::parse_request;
use crate::media_auth::{MediaKey, Sealer, Verifier};
use crate::roster::{AudioCaps, VideoCaps};
use crate::rtp_peek::bye;

/// The box's sealer for a join (its secret's key, counters from 1).
fn sealer(j: &JoinReply) -> Sealer {
    Sealer::new(MediaKey::from_secret(&j.secret), 1)
}

fn caps() -> Caps {
    Caps {
        video: Some(VideoCaps { codec: "AV1".into(), payload_type: 96, width: 320, height: 180, fps: 15, fmtp: None }),
        audio: Some(AudioCaps { codec: "opus".into(), payload_type: 111, channels: 1 }),
    }
}

fn service() -> MeetingService {
    MeetingService::new(ServiceConfig::loopback("demo", "secret"))
}

fn join(s: &mut MeetingService, now: Instant, room: &str) -> JoinReply {
    s.join(now, "demo", room, caps()).unwrap()
}

fn rtp(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 96, 0, 1, 0, 0, 0, 0];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(b"payload");
    p
}

fn reply_json(r: Reply) -> (u16, serde_json::Value) {
    match r {
        Reply::Json { status, body } => (status, serde_json::from_str(&body).unwrap()),
        other => panic!("not json: {other:?}"),
    }
}

#[test]
fn join_gives_distinct_ssrcs_groups_and_a_roster() {
    let t0 = Instant::now();
    let mut s = service();
    let a = join(&mut s, t0, "A");
    let b = join(&mut s, t0, "B");
    assert_ne!(a.participant, b.participant);
    let ssrcs = [a.ssrc.video, a.ssrc.audio, b.ssrc.video, b.ssrc.audio];
    for (i, x) in ssrcs.iter().enumerate() {
        assert!(ssrcs[i + 1..].iter().all(|y| y != x), "ssrcs unique: {ssrcs:?}");
    }
    assert_ne!(a.groups, b.groups);
    let range: crate::pool::Range = "232.10.0.0/24".parse().unwrap();
    for g in [a.groups, b.groups] {
        assert_eq!(g.ipv4.source.to_string(), "127.0.0.1");
        assert!(g.ipv4.to_string().starts_with("127.0.0.1@232.10.0."), "{}", g.ipv4);
        assert!(g.ipv6.to_string().starts_with("::1@ff3e::8000:"), "{}", g.ipv6);
        assert_ne!(g.ipv4.group, range.base(), "the range's base address is not handed out");
    }
    assert_eq!(a.secret.len(), 32, "a 128-bit secret in hex");
    assert_ne!(a.secret, b.secret);
    assert_eq!(a.send_rtp_to, "127.0.0.1:8472");
    let roster = s.roster("demo").unwrap();
    assert_eq!(roster.participants.iter().map(|p| p.room.as_str()).collect::<Vec<_>>(), ["A", "B"]);
    assert_eq!(roster.version, b.roster.version);
    assert!(roster.version > a.roster.version);
    let filter = format!("a=source-filter: incl IN IP4 {} 127.0.0.1", a.groups.ipv4.group);
    assert!(roster.participants[0].sdp.ipv4.contains(&filter));
    assert!(!serde_json::to_string(&roster).unwrap().contains(&a.secret), "the roster does not show secrets");
}

#[test]
fn control_requests_end_to_end_through_the_parser() {
    let t0 = Instant::now();
    let mut s = service();
    let join = crate::client::join("h", "demo", "secret", "Blue", &caps());
    let (req, _) = parse_request(&join).unwrap();
    let (status, body) = reply_json(s.handle_control(t0, req));
    assert_eq!(status, 200, "{body}");
    let id = body["participant"].as_str().unwrap().to_string();
    let secret = body["secret"].as_str().unwrap().to_string();
    let (req, _) = parse_request(&crate::client::roster("h", "demo", "secret", None)).unwrap();
    let (status, roster) = reply_json(s.handle_control(t0, req));
    assert_eq!(status, 200);
    assert_eq!(roster["participants"][0]["room"], "Blue");
    let version = roster["version"].as_u64().unwrap();
    // A long poll at the current version waits.
    let (req, _) = parse_request(&crate::client::roster("h", "demo", "secret", Some(version))).unwrap();
    assert_eq!(s.handle_control(t0, req), Reply::WaitRoster { meeting: "demo".into(), since: version, keys: false });
    // A version this instance never had (the client knew the one before a restart): at once.
    let (req, _) = parse_request(&crate::client::roster("h", "demo", "secret", Some(version + 40))).unwrap();
    assert_eq!(reply_json(s.handle_control(t0, req)).0, 200);
    // The SDP of a participant.
    let sdp_req = format!("GET /v1/meetings/demo/participants/{id}/sdp?token=secret HTTP/1.1\r\n\r\n");
    let (req, _) = parse_request(sdp_req.as_bytes()).unwrap();
    match s.handle_control(t0, req) {
        Reply::Sdp(sdp) => assert!(sdp.contains("m=video 5004 RTP/AVP 96")),
        other => panic!("{other:?}"),
    }
    // An SDP for a player behind `roomcast gateway --forward 127.0.0.1:40000`, audio only.
    let fwd = format!(
        "GET /v1/meetings/demo/participants/{id}/sdp?token=secret&forward=127.0.0.1:40000&media=audio HTTP/1.1\r\n\r\n"
    );
    let (req, _) = parse_request(fwd.as_bytes()).unwrap();
    match s.handle_control(t0, req) {
        Reply::Sdp(sdp) => {
            assert!(sdp.contains("c=IN IP4 127.0.0.1\r\n"));
            assert!(sdp.contains("m=audio 40000 RTP/AVP 111"));
            assert!(!sdp.contains("m=video"));
        }
        other => panic!("{other:?}"),
    }
    // Leave needs the participant's secret: without it 400, with another one 404 (like an unknown id).
    let no_secret = crate::client::Call::leave("demo", &id).encode("h", "secret", None);
    let (req, _) = parse_request(&no_secret).unwrap();
    assert_eq!(reply_json(s.handle_control(t0, req)).0, 400);
    let (req, _) = parse_request(&crate::client::leave("h", "demo", "secret", &id, "00112233")).unwrap();
    assert_eq!(reply_json(s.handle_control(t0, req)).0, 404);
    assert_eq!(s.roster("demo").unwrap().participants.len(), 1, "a wrong secret removes nobody");
    let (req, _) = parse_request(&crate::client::leave("h", "demo", "secret", &id, &secret)).unwrap();
    let (status, _) = reply_json(s.handle_control(t0, req));
    assert_eq!(status, 200);
    assert!(s.roster("demo").unwrap().participants.is_empty());
    assert_eq!(s.roster_version("demo"), Some(version + 1));
}

#[test]
fn a_rooms_sdp_by_name() {
    let t0 = Instant::now();
    let mut s = service();
    let green = join(&mut s, t0, "Green");
    let blue = join(&mut s, t0, "Blue room");
    let get = |s: &mut MeetingService, target: &str| {
        let raw = format!("GET {target} HTTP/1.1\r\n\r\n");
        let (req, _) = parse_request(raw.as_bytes()).unwrap();
        s.handle_control(t0, req)
    };
    // By URL-encoded name: the (S,G) of that room, not of the one that joined first.
    match get(&mut s, "/v1/meetings/demo/rooms/Blue%20room/sdp?token=secret") {
        Reply::Sdp(sdp) => {
            let g = blue.groups.ipv4.group.to_string();
            assert!(sdp.contains(&format!("c=IN IP4 {g}/255")), "{sdp}");
            assert!(!sdp.contains(&green.groups.ipv4.group.to_string()), "{sdp}");
        }
        other => panic!("{other:?}"),
    }
    match get(&mut s, "/v1/meetings/demo/rooms/Green/sdp?token=secret&forward=127.0.0.1:40000&media=audio") {
        Reply::Sdp(sdp) => {
            assert!(sdp.contains("m=audio 40000 RTP/AVP 111") && !sdp.contains("m=video"), "{sdp}");
            assert!(sdp.contains(&format!("a=ssrc:{} ", green.ssrc.audio)), "{sdp}");
        }
        other => panic!("{other:?}"),
    }
    // No such room: 404 naming the rooms present.
    let (status, body) = reply_json(get(&mut s, "/v1/meetings/demo/rooms/Red/sdp?token=secret"));
    assert_eq!(status, 404);
    assert_eq!(body["error"], "no room \"Red\" in this meeting (rooms present: Green, Blue room)");
    // Same authorisation as the SDP by id.
    let (status, _) = reply_json(get(&mut s, "/v1/meetings/demo/rooms/Green/sdp?token=nope"));
    assert_eq!(status, 401);
    // The roster names the relay; `GET /` names the endpoints.
    assert_eq!(s.roster("demo").unwrap().relay.as_deref(), Some("127.0.0.1:2268"));
    match get(&mut s, "/") {
        Reply::Text(page) => assert!(page.contains("/v1/meetings/{m}/rooms/{name}/sdp"), "{page}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_token_is_refused_and_changes_nothing() {
    let t0 = Instant::now();
    let mut s = service();
    let a = join(&mut s, t0, "A");
    let before = s.roster("demo").unwrap();
    while s.poll_event().is_some() {}
    for raw in [
        crate::client::join("h", "demo", "wrong", "Intruder", &caps()),
        crate::client::leave("h", "demo", "wrong", &a.participant, &a.secret),
        crate::client::roster("h", "demo", "wrong", None),
        crate::client::keepalive("h", "demo", "secre", &a.participant, &a.secret),
        crate::client::keepalive("h", "demo", "secretsecret", &a.participant, &a.secret),
    ] {
        let (req, _) = parse_request(&raw).unwrap();
        let (status, body) = reply_json(s.handle_control(t0, req));
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], UNAUTHORIZED);
        assert!(matches!(s.poll_event(), Some(Event::Refused { error: MeetingError::WrongToken(_), .. })));
    }
    assert_eq!(s.roster("demo").unwrap(), before, "roster unchanged");
    assert_eq!(s.participant_count(), 1);
    // Nothing was allocated for the intruder.
    let b = join(&mut s, t0, "B");
    assert_ne!(b.groups, a.groups);
    // An unknown meeting gets exactly the answer a wrong token gets.
    let (req, _) = parse_request(&crate::client::roster("h", "other", "secret", None)).unwrap();
    let unknown = s.handle_control(t0, req);
    let (req, _) = parse_request(&crate::client::roster("h", "demo", "wrong", None)).unwrap();
    assert_eq!(unknown, s.handle_control(t0, req));
    assert_eq!(reply_json(unknown).0, 401);
}

#[test]
fn silence_timeout_removes_quiet_participants_only() {
    let t0 = Instant::now();
    let mut s = service();
    let a = join(&mut s, t0, "A");
    let b = join(&mut s, t0, "B");
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    let from: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let (sa, sb) = (sealer(&a), sealer(&b));
    // A keeps sending RTP; B is silent.
    for i in 1..=12 {
        let now = t0 + Duration::from_secs(i);
        assert!(s.handle_packet(now, from, &sa.seal(&rtp(a.ssrc.audio))).is_some());
        if s.poll_timeout().is_some_and(|d| d <= now) {
            s.handle_timeout(now);
        }
    }
    let rooms: Vec<String> = s.roster("demo").unwrap().participants.into_iter().map(|p| p.room).collect();
    assert_eq!(rooms, ["A"]);
    let left: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(left.iter().any(
        |e| matches!(e, Event::Left { participant, reason: LeaveReason::Silence, .. } if *participant == b.participant)
    ));
    // B's SSRC no longer routes.
    assert_eq!(s.handle_packet(t0 + Duration::from_secs(13), from, &sb.seal(&rtp(b.ssrc.video))), None);
    // A keepalive also counts as life.
    let now = t0 + Duration::from_secs(13);
    let (req, _) = parse_request(&crate::client::keepalive("h", "demo", "secret", &a.participant, "bad")).unwrap();
    assert_eq!(reply_json(s.handle_control(now, req)).0, 404, "a keepalive with another secret");
    let (req, _) = parse_request(&crate::client::keepalive("h", "demo", "secret", &a.participant, &a.secret)).unwrap();
    let (status, body) = reply_json(s.handle_control(now, req));
    assert_eq!(status, 200);
    assert_eq!(body["epoch"], 1);
    s.handle_timeout(now + Duration::from_secs(9));
    assert_eq!(s.participant_count(), 1);
    s.handle_timeout(now + Duration::from_secs(10));
    assert_eq!(s.participant_count(), 0);
}

#[test]
fn rtp_is_forwarded_into_the_senders_group_and_bye_leaves() {
    let t0 = Instant::now();
    let mut s = service();
    let a = join(&mut s, t0, "A");
    let sa = sealer(&a);
    let from: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let packet = rtp(a.ssrc.video);
    let v = s.handle_packet(t0, from, &sa.seal(&packet)).unwrap();
    assert_eq!(v, Forward { len: packet.len(), groups: a.groups, sport: 5004, dport: 5004 }, "trailer stripped");
    let au = s.handle_packet(t0, from, &sa.seal(&rtp(a.ssrc.audio))).unwrap();
    assert_eq!(au.dport, 5006);
    assert_eq!(s.latched("demo", &a.participant), Some(from));
    // Unknown SSRC, garbage and unauthenticated packets are dropped.
    assert_eq!(s.handle_packet(t0, from, &sa.seal(&rtp(12345))), None);
    assert_eq!(s.handle_packet(t0, from, b"\xff\xff"), None);
    assert_eq!(s.handle_packet(t0, from, &rtp(a.ssrc.video)), None, "no trailer");
    // RTCP BYE (authenticated): forwarded (so receivers learn it) and the participant leaves.
    let fwd = s.handle_packet(t0, from, &sa.seal(&bye(&[a.ssrc.audio]))).unwrap();
    assert_eq!(fwd.dport, 5007, "audio RTCP goes to the audio port + 1");
    assert_eq!(s.participant_count(), 0);
    assert!(
        std::iter::from_fn(|| s.poll_event()).any(|e| matches!(e, Event::Left { reason: LeaveReason::RtcpBye, .. }))
    );
}

/// RR from `reporter` followed by a PLI on `media` (RFC 4585 PSFB FMT 1).
fn rr_pli(reporter: u32, media: u32) -> Vec<u8> {
    let mut p = vec![0x80, 201, 0, 1];
    p.extend_from_slice(&reporter.to_be_bytes());
    p.extend_from_slice(&[0x81, 206, 0, 2]);
    p.extend_from_slice(&reporter.to_be_bytes());
    p.extend_from_slice(&media.to_be_bytes());
    p
}

#[test]
fn a_pli_goes_to_the_media_sender_rate_limited_per_sender_sealed_with_its_downlink_key() {
    let t0 = Instant::now();
    let mut s = service();
    let (a, b, c) = (join(&mut s, t0, "A"), join(&mut s, t0, "B"), join(&mut s, t0, "C"));
    let (sa, sb, sc) = (sealer(&a), sealer(&b), sealer(&c));
    let mut downlink_a = Verifier::new(MediaKey::downlink_from_secret(&a.secret));
    let (fa, fb, fc): (SocketAddr, SocketAddr, SocketAddr) =
        ("127.0.0.1:40000".parse().unwrap(), "127.0.0.1:40001".parse().unwrap(), "127.0.0.1:40002".parse().unwrap());
    // Nothing is known of A's address before it sent: the PLI is only forwarded into B's group.
    let fwd = s.handle_packet(t0, fb, &sb.seal(&rr_pli(b.ssrc.video, a.ssrc.video))).unwrap();
    assert_eq!((fwd.groups, fwd.dport, fwd.len), (b.groups, 5005, 20));
    assert_eq!(s.poll_transmit(), None);
    s.handle_packet(t0, fa, &sa.seal(&rtp(a.ssrc.video))).unwrap();
    s.handle_packet(t0, fc, &sc.seal(&rtp(c.ssrc.video))).unwrap();
    // An unsealed PLI (anyone could send it) is dropped and asks nothing.
    assert!(s.handle_packet(t0, fb, &rr_pli(b.ssrc.video, a.ssrc.video)).is_none());
    assert_eq!(s.poll_transmit(), None);
    // B asks for A's keyframe: to A's address, sealed for A (the other direction's key), which
    // A verifies; A's own uplink key does not. C asks 50 ms later: A had one, C's is held back.
    let pli = rr_pli(b.ssrc.video, a.ssrc.video);
    s.handle_packet(t0, fb, &sb.seal(&pli)).unwrap();
    let (to, sealed) = s.poll_transmit().unwrap();
    assert_eq!(to, fa);
    assert!(Verifier::new(MediaKey::from_secret(&a.secret)).verify(&sealed).is_err());
    assert_eq!(downlink_a.verify(&sealed).map(|v| v.packet), Ok(&pli[..]));
    assert!(downlink_a.verify(&sealed).is_err(), "a replayed keyframe request");
    let t1 = t0 + Duration::from_millis(50);
    s.handle_packet(t1, fc, &sc.seal(&rr_pli(c.ssrc.video, a.ssrc.video))).unwrap();
    assert_eq!(s.poll_transmit(), None);
    // Per sender: C's own keyframe is another sender's.
    s.handle_packet(t1, fb, &sb.seal(&rr_pli(b.ssrc.video, c.ssrc.video))).unwrap();
    assert_eq!(s.poll_transmit().map(|t| t.0), Some(fc));
    // After the interval A gets the next one.
    let t2 = t0 + FEEDBACK_INTERVAL;
    s.handle_packet(t2, fc, &sc.seal(&rr_pli(c.ssrc.video, a.ssrc.video))).unwrap();
    let (to, sealed) = s.poll_transmit().unwrap();
    assert_eq!(to, fa);
    assert!(downlink_a.verify(&sealed).is_ok());
    // A PLI naming an unknown source goes nowhere.
    s.handle_packet(t2, fb, &sb.seal(&rr_pli(b.ssrc.video, 4242))).unwrap();
    assert_eq!(s.poll_transmit(), None);
}

#[test]
fn forged_media_and_a_forged_bye_with_a_known_ssrc_change_nothing() {
    let t0 = Instant::now();
    let mut s = service();
    let a = join(&mut s, t0, "A");
    let b = join(&mut s, t0, "B");
    let sa = sealer(&a);
    let from: SocketAddr = "198.51.100.1:40000".parse().unwrap();
    let spoofed: SocketAddr = "203.0.113.66:40000".parse().unwrap();
    let first = sa.seal(&rtp(a.ssrc.video));
    assert!(s.handle_packet(t0, from, &first).is_some());
    // The attacker knows A's SSRCs (the roster lists them) but not A's secret.
    let guess = Sealer::new(MediaKey::from_secret("00000000000000000000000000000000"), 1);
    let by_b = sealer(&b); // another participant's key does not do either
    for forged in [rtp(a.ssrc.video), guess.seal(&rtp(a.ssrc.video)), by_b.seal(&rtp(a.ssrc.audio))] {
        assert_eq!(s.handle_packet(t0, spoofed, &forged), None);
        assert_eq!(s.handle_packet(t0, from, &forged), None, "not even from A's own address");
    }
    for forged in [bye(&[a.ssrc.audio]), guess.seal(&bye(&[a.ssrc.audio])), by_b.seal(&bye(&[a.ssrc.video]))] {
        assert_eq!(s.handle_packet(t0, spoofed, &forged), None);
        assert_eq!(s.handle_packet(t0, from, &forged), None);
    }
    // A captured packet replayed from elsewhere is refused too.
    assert_eq!(s.handle_packet(t0, spoofed, &first), None, "replay");
    assert_eq!(s.participant_count(), 2, "the forged BYEs removed nobody");
    assert_eq!(s.latched("demo", &a.participant), Some(from), "the latch did not move");
    assert!(s.media_rejected() >= 7, "{}", s.media_rejected());
    assert!(s.handle_packet(t0, from, &sa.seal(&rtp(a.ssrc.video))).is_some(), "A's own media still flows");
}

#[test]
fn an_authenticated_packet_from_a_new_port_re_latches_after_nat_rebinding() {
    let t0 = Instant::now();
    let mut s = service();
    let a = join(&mut s, t0, "A");
    let sa = sealer(&a);
    let before: SocketAddr = "198.51.100.1:40000".parse().unwrap();
    let after: SocketAddr = "198.51.100.1:51234".parse().unwrap();
    assert!(s.handle_packet(t0, before, &sa.seal(&rtp(a.ssrc.audio))).is_some());
    let late = sa.seal(&rtp(a.ssrc.audio)); // sent before the rebinding, arrives after
    assert!(s.handle_packet(t0, after, &sa.seal(&rtp(a.ssrc.audio))).is_some(), "forwarded from the new port");
    assert_eq!(s.latched("demo", &a.participant), Some(after), "re-latched");
    assert!(s.handle_packet(t0, before, &late).is_some(), "a late packet inside the window still counts");
    assert_eq!(s.latched("demo", &a.participant), Some(after), "but does not move the latch back");
}

#[test]
fn limits_are_enforced() {
    let t0 = Instant::now();
    let mut cfg = ServiceConfig::loopback("demo", "secret");
    cfg.max_participants_per_meeting = 2;
    let mut s = MeetingService::new(cfg);
    join(&mut s, t0, "A");
    join(&mut s, t0, "B");
    assert!(matches!(s.join(t0, "demo", "C", caps()), Err(MeetingError::Limit(_))));
    // Pool exhaustion: a /30 holds three groups.
    let mut cfg = ServiceConfig::loopback("demo", "secret");
    cfg.range_v4 = "232.10.0.0/30".parse().unwrap();
    let mut s = MeetingService::new(cfg);
    for r in ["A", "B", "C"] {
        join(&mut s, t0, r);
    }
    assert!(matches!(s.join(t0, "demo", "D", caps()), Err(MeetingError::PoolExhausted(_))));
    assert_eq!(s.participant_count(), 3);
    // Bad room names and caps.
    assert!(s.join(t0, "demo", "", caps()).is_err());
    assert!(s.join(t0, "demo", &"x".repeat(65), caps()).is_err());
    assert!(s.join(t0, "demo", "a\nb", caps()).is_err());
    assert!(s.join(t0, "demo", "ok", Caps::default()).is_err());
    let mut bad = caps();
    bad.video.as_mut().unwrap().codec = "VP8".into();
    assert!(s.join(t0, "demo", "ok", bad).is_err());
}

#[test]
fn roster_tracker_joins_and_leaves_others() {
    use crate::participant::RosterTracker;
    use crate::roster::Family;
    let t0 = Instant::now();
    let mut s = service();
    let a = join(&mut s, t0, "A");
    let b = join(&mut s, t0, "B");
    let mut t = RosterTracker::new(a.participant.clone(), Family::Ipv4);
    let d = t.update(s.roster("demo").unwrap());
    assert_eq!(d.join.len(), 1);
    assert_eq!(d.join[0].id, b.participant);
    assert!(d.leave.is_empty());
    let c = join(&mut s, t0, "C");
    let d = t.update(s.roster("demo").unwrap());
    assert_eq!(d.join.iter().map(|p| p.id.clone()).collect::<Vec<_>>(), std::slice::from_ref(&c.participant));
    s.leave("demo", &b.participant, LeaveReason::Request).unwrap();
    let stale = a.roster.clone();
    let d = t.update(s.roster("demo").unwrap());
    assert_eq!(d.leave, vec![(b.participant.clone(), b.groups.ipv4)]);
    assert_eq!(t.rooms(), ["A", "C"]);
    // An older roster is ignored.
    assert_eq!(t.update(stale), Default::default());
    assert!(t.am_listed());
}

#[test]
fn join_replies_and_rosters_carry_the_instance_epoch() {
    let t0 = Instant::now();
    let mut cfg = ServiceConfig::loopback("demo", "secret");
    cfg.epoch = 0x005e_ed0f_e90c;
    let mut s = MeetingService::new(cfg);
    let a = join(&mut s, t0, "A");
    assert_eq!(a.epoch, 0x005e_ed0f_e90c);
    assert_eq!(a.roster.epoch, 0x005e_ed0f_e90c);
    assert_eq!(s.roster("demo").unwrap().epoch, 0x005e_ed0f_e90c);
    let json = serde_json::to_value(s.roster("demo").unwrap()).unwrap();
    assert_eq!(json["epoch"], 0x005e_ed0f_e90c_u64);
    // A roster from a service older than the field reads as epoch 0.
    let mut old = json.clone();
    old.as_object_mut().unwrap().remove("epoch");
    assert_eq!(serde_json::from_value::<Roster>(old).unwrap().epoch, 0);
}

#[test]
fn a_watch_only_participant_joins_and_is_listed() {
    let t0 = Instant::now();
    let mut s = service();
    let a = join(&mut s, t0, "A");
    let w = s.join(t0, "demo", "listener", Caps::default()).expect("watch-only join accepted");
    assert_ne!(w.groups, a.groups);
    let roster = s.roster("demo").unwrap();
    let listed = roster.by_room("listener").expect("listed");
    assert!(listed.caps.video.is_none() && listed.caps.audio.is_none());
    assert!(!listed.sdp.ipv4.contains("m="), "its SDP has no media lines: {}", listed.sdp.ipv4);
    // Still validated when it names something.
    let bad = Caps { video: None, audio: Some(AudioCaps { codec: "pcm".into(), payload_type: 111, channels: 1 }) };
    assert!(s.join(t0, "demo", "bad", bad).is_err());
}

#[test]
fn the_access_table_lists_each_participants_address_with_its_meetings_groups() {
    let t0 = Instant::now();
    let mut s = service();
    let a_ip: IpAddr = "192.0.2.1".parse().unwrap();
    let b_ip: IpAddr = "::ffff:192.0.2.2".parse().unwrap();
    let join = |s: &mut MeetingService, ip: IpAddr, room: &str| {
        let raw = crate::client::join("h", "demo", "secret", room, &caps());
        let (status, body) = reply_json(s.handle_control_from(t0, ip, parse_request(&raw).unwrap().0));
        assert_eq!(status, 200, "{body}");
        serde_json::from_value::<JoinReply>(body).unwrap()
    };
    let g0 = s.access_generation();
    let a = join(&mut s, a_ip, "A");
    let b = join(&mut s, b_ip, "B");
    assert!(s.access_generation() > g0);
    // A join without a known address (handle_control) gives no access.
    let raw = crate::client::join("h", "demo", "secret", "C", &caps());
    assert_eq!(reply_json(s.handle_control(t0, parse_request(&raw).unwrap().0)).0, 200);
    let table = s.access_table();
    assert_eq!(table.len(), 2, "{table:?}");
    let b_v4: IpAddr = "192.0.2.2".parse().unwrap();
    for ip in [a_ip, b_v4] {
        let groups = &table[&ip];
        for g in [a.groups.ipv4, a.groups.ipv6, b.groups.ipv4, b.groups.ipv6] {
            assert!(groups.contains(&g), "{ip} may receive {g}");
        }
    }
    // B leaves: its address is gone, and A no longer gets B's groups.
    let raw = crate::client::leave("h", "demo", "secret", &b.participant, &b.secret);
    assert_eq!(reply_json(s.handle_control_from(t0, b_ip, parse_request(&raw).unwrap().0)).0, 200);
    let table = s.access_table();
    assert!(!table.contains_key(&b_v4));
    assert!(!table[&a_ip].contains(&b.groups.ipv4));
    // A keepalive from a new address (NAT rebinding) moves A's access there.
    let moved: IpAddr = "192.0.2.9".parse().unwrap();
    let g1 = s.access_generation();
    let raw = crate::client::keepalive("h", "demo", "secret", &a.participant, &a.secret);
    assert_eq!(reply_json(s.handle_control_from(t0, moved, parse_request(&raw).unwrap().0)).0, 200);
    assert!(s.access_generation() > g1);
    let table = s.access_table();
    assert!(table.contains_key(&moved) && !table.contains_key(&a_ip), "{table:?}");
}

#[test]
fn a_keepalive_carries_the_mute_state_into_the_roster_with_the_secret_only() {
    use crate::client::Call;
    use crate::roster::KeepaliveRequest;
    let t0 = Instant::now();
    let mut s = service();
    let a = join(&mut s, t0, "Blue");
    let _b = join(&mut s, t0, "Green");
    let v0 = s.roster_version("demo").unwrap();
    while s.poll_event().is_some() {}
    let muted = |m| KeepaliveRequest { muted: Some(m) };
    let send = |s: &mut MeetingService, secret: &str, state| {
        let raw = Call::keepalive_with("demo", &a.participant, state).encode("h", "secret", Some(secret));
        reply_json(s.handle_control(t0, parse_request(&raw).unwrap().0)).0
    };
    assert_eq!(send(&mut s, "00112233445566778899aabbccddeeff", muted(true)), 404, "another secret: refused");
    assert!(!s.roster("demo").unwrap().participants[0].muted, "a wrong secret changes nothing");
    assert_eq!(s.roster_version("demo"), Some(v0));
    assert_eq!(send(&mut s, &a.secret, muted(true)), 200);
    let roster = s.roster("demo").unwrap();
    assert!(roster.participants[0].muted && !roster.participants[1].muted, "{roster:?}");
    assert_eq!(roster.version, v0 + 1, "the others' long polls wake up");
    assert!(matches!(s.poll_event(), Some(Event::Changed { ref participant, .. }) if *participant == a.participant));
    let json = serde_json::to_string(&roster).unwrap();
    assert_eq!(json.matches("\"muted\":true").count(), 1, "{json}");
    assert_eq!(send(&mut s, &a.secret, muted(true)), 200);
    assert_eq!(s.roster_version("demo"), Some(v0 + 1), "the same state again: no new version");
    assert_eq!(send(&mut s, &a.secret, KeepaliveRequest::default()), 200);
    assert!(s.roster("demo").unwrap().participants[0].muted, "a plain keepalive keeps the state");
    assert_eq!(send(&mut s, &a.secret, muted(false)), 200);
    assert!(!s.roster("demo").unwrap().participants[0].muted);
    assert_eq!(s.roster_version("demo"), Some(v0 + 2));
}
