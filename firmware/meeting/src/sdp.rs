//! The SDP (RFC 8866) describing one participant's streams in its SSM group, with the
//! RFC 4570 source filter, so any standard player that can join (S,G) (through an AMT gateway)
//! can play it; and a unicast variant for a local forwarder (`roomcast gateway --forward`).

use std::fmt::Write;
use std::net::IpAddr;

use crate::roster::{Caps, Ports, SourceGroup, Ssrcs};

/// Keeps a name safe inside an SDP line: printable characters only.
pub fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IP4"
    } else {
        "IP6"
    }
}

/// Where the media lines point.
enum Target<'a> {
    Group(&'a SourceGroup),
    Unicast(IpAddr),
}

fn build(
    session_id: u64,
    room: &str,
    meeting: &str,
    target: Target<'_>,
    ports: Ports,
    ssrc: Ssrcs,
    caps: &Caps,
) -> String {
    let (origin, conn) = match &target {
        Target::Group(sg) => (sg.source, sg.group),
        Target::Unicast(ip) => (*ip, *ip),
    };
    let mut s = String::new();
    let room = clean(room);
    let _ = write!(s, "v=0\r\no=roomcast {session_id} 1 IN {} {origin}\r\n", family(&origin));
    let _ = write!(s, "s={room} (roomcast meeting {})\r\n", clean(meeting));
    match &target {
        Target::Group(_) if conn.is_ipv4() => {
            let _ = write!(s, "c=IN IP4 {conn}/255\r\n");
        }
        _ => {
            let _ = write!(s, "c=IN {} {conn}\r\n", family(&conn));
        }
    }
    s.push_str("t=0 0\r\na=tool:roomcast\r\na=recvonly\r\n");
    let filter = |s: &mut String| {
        if let Target::Group(sg) = &target {
            let _ = write!(s, "a=source-filter: incl IN {} {} {}\r\n", family(&sg.group), sg.group, sg.source);
        }
    };
    if let Some(v) = &caps.video {
        let _ = write!(s, "m=video {} RTP/AVP {}\r\n", ports.video, v.payload_type);
        filter(&mut s);
        let _ = write!(s, "a=rtpmap:{} {}/90000\r\n", v.payload_type, clean(&v.codec));
        if let Some(f) = &v.fmtp {
            let _ = write!(s, "a=fmtp:{} {}\r\n", v.payload_type, clean(f));
        }
        let _ = write!(s, "a=framerate:{}\r\n", v.fps);
        let _ = write!(s, "a=ssrc:{} cname:{room}\r\n", ssrc.video);
    }
    if let Some(a) = &caps.audio {
        let _ = write!(s, "m=audio {} RTP/AVP {}\r\n", ports.audio, a.payload_type);
        filter(&mut s);
        let _ = write!(s, "a=rtpmap:{} {}/48000/2\r\n", a.payload_type, clean(&a.codec));
        let _ = write!(s, "a=fmtp:{} sprop-stereo={};useinbandfec=1\r\n", a.payload_type, u8::from(a.channels > 1));
        let _ = write!(s, "a=ssrc:{} cname:{room}\r\n", ssrc.audio);
    }
    s
}

/// SDP of a participant's streams in the group `sg`.
pub fn for_group(
    session_id: u64,
    room: &str,
    meeting: &str,
    sg: &SourceGroup,
    ports: Ports,
    ssrc: Ssrcs,
    caps: &Caps,
) -> String {
    build(session_id, room, meeting, Target::Group(sg), ports, ssrc, caps)
}

/// SDP of a participant's streams forwarded as unicast to `addr` on `ports`
/// (for a player behind `roomcast gateway --forward`).
pub fn for_unicast(
    session_id: u64,
    room: &str,
    meeting: &str,
    addr: IpAddr,
    ports: Ports,
    ssrc: Ssrcs,
    caps: &Caps,
) -> String {
    build(session_id, room, meeting, Target::Unicast(addr), ports, ssrc, caps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roster::{AudioCaps, VideoCaps};

    fn caps() -> Caps {
        Caps {
            video: Some(VideoCaps {
                codec: "AV1".into(),
                payload_type: 96,
                width: 320,
                height: 180,
                fps: 15,
                fmtp: None,
            }),
            audio: Some(AudioCaps { codec: "opus".into(), payload_type: 111, channels: 1 }),
        }
    }

    #[test]
    fn group_sdp_has_source_filter_and_both_streams() {
        let sg: SourceGroup = "10.0.2.2@232.10.0.1".parse().unwrap();
        let sdp = for_group(
            1,
            "Room\r\nA",
            "demo",
            &sg,
            Ports { video: 5004, audio: 5006 },
            Ssrcs { video: 11, audio: 12 },
            &caps(),
        );
        assert!(sdp.contains("c=IN IP4 232.10.0.1/255\r\n"));
        assert!(sdp.contains("a=source-filter: incl IN IP4 232.10.0.1 10.0.2.2\r\n"));
        assert!(sdp.contains("m=video 5004 RTP/AVP 96\r\na=source-filter"));
        assert!(sdp.contains("a=rtpmap:96 AV1/90000\r\n"));
        assert!(sdp.contains("m=audio 5006 RTP/AVP 111\r\n"));
        assert!(sdp.contains("a=rtpmap:111 opus/48000/2\r\n"));
        assert!(sdp.contains("s=RoomA (roomcast meeting demo)"), "control characters removed");
        let sg6: SourceGroup = "::1@ff3e::8000:1".parse().unwrap();
        let sdp6 = for_group(1, "R", "m", &sg6, Ports { video: 1, audio: 2 }, Ssrcs { video: 1, audio: 2 }, &caps());
        assert!(sdp6.contains("c=IN IP6 ff3e::8000:1\r\n"));
    }

    #[test]
    fn unicast_sdp_points_at_the_forwarder() {
        let sdp = for_unicast(
            1,
            "R",
            "m",
            "127.0.0.1".parse().unwrap(),
            Ports { video: 40000, audio: 40002 },
            Ssrcs { video: 1, audio: 2 },
            &caps(),
        );
        assert!(sdp.contains("c=IN IP4 127.0.0.1\r\n"));
        assert!(sdp.contains("m=video 40000 RTP/AVP 96"));
        assert!(!sdp.contains("source-filter"));
    }
}
