//! End-to-end test of a meeting on loopback: one `roomcast server` (meeting service with its
//! embedded AMT relay) and three `roomcast box` daemons with synthetic camera and microphone.
//! Checks, in order:
//! 1. every box reaches "in-meeting" with the full roster and receives the two others' audio
//!    and video (from each box's state file); box B subscribes to the IPv6 (S,G)s (over the
//!    same IPv4 AMT tunnel), A and C to the IPv4 ones;
//! 2. a box with a wrong token is refused (401; its state says so, the service logged it without
//!    the token, and the roster is unchanged);
//! 3. the media is end-to-end encrypted (SRTP): `roomcast gateway --forward 127.0.0.1:P`
//!    without the meeting's credentials, on A's audio channel, forwards only ciphertext: the
//!    same RTP headers, but none of the Opus packets B received and recorded from A appears in
//!    the captured payloads (checked after step 6, against B's `audio.opus`);
//! 4. a box stopped with SIGTERM leaves: the two others' rosters drop it within 2 s, it exits 0;
//!    both rekey (the time from the leave to the switch is printed) and keep receiving each other;
//! 5. box A re-sends what it receives as native multicast on the LAN (`lo` here): a socket
//!    with a source-specific join to B's group gets B's audio RTP;
//! 6. what the boxes received and recorded decodes: AV1 by dav1d, Opus by ffmpeg.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use roomcast_test_support::require_tool;
use serde_json::Value;

mod meeting_util;
use meeting_util::{free_udp_port, read_state, spawn_server, wait_for, Proc, ServerPorts};

const MEETING: &str = "e2e";
const TOKEN: &str = "s3cret-token";

fn box_config(dir: &Path, room: &str, server: u16, token: &str) -> PathBuf {
    let path = dir.join(format!("{room}.toml"));
    let family = if room == "B" { "ipv6" } else { "ipv4" };
    let lan = if room == "A" { "true" } else { "false" };
    let text = format!(
        r#"[room]
name = "{room}"

[meeting]
server = "127.0.0.1:{server}"
id = "{MEETING}"
token = "{token}"

[amt]
family = "{family}"

[video]
source = "synthetic"
width = 160
height = 90
fps = 10
bitrate_kbps = 150
encoder = "software"
threads = 1
keyframe_interval_s = 1

[audio]
source = "synthetic"
playback = "null"

[display]
kind = "none"

[network]
lan_multicast = {lan}
lan_interface = "lo"

[debug]
state_file = "{dir}/state-{room}.json"
record_dir = "{dir}/rec-{room}"
"#,
        dir = dir.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn roster_of(state: &Value) -> Vec<String> {
    let mut r: Vec<String> = state["roster"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default();
    r.sort();
    r
}

/// GET on the control API, returns (status, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n").unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let status = buf.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn others_receiving(state: &Value, min_video: u64, min_audio: u64) -> bool {
    let others = state["others"].as_array().cloned().unwrap_or_default();
    others.len() == 2
        && others.iter().all(|o| {
            o["video_frames"].as_u64().unwrap_or(0) >= min_video && o["audio_frames"].as_u64().unwrap_or(0) >= min_audio
        })
}

fn duration_of(ffprobe: &Path, file: &Path) -> f64 {
    let out = Command::new(ffprobe)
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0.0)
}

#[test]
fn three_boxes_meet_through_the_service_and_amt() {
    let dav1d = require_tool("dav1d");
    let ffmpeg = require_tool("ffmpeg");
    let ffprobe = require_tool("ffprobe");

    let dir = std::env::temp_dir().join(format!("roomcast-meeting-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ports = ServerPorts::free();
    let (http, relay) = (ports.http, ports.relay);
    let (video_port, audio_port) = (free_udp_port(), free_udp_port());

    let server_log = dir.join("server.log");
    let mut server_args = ports.server_args(5);
    server_args.extend(["--video-port".into(), video_port.to_string(), "--audio-port".into(), audio_port.to_string()]);
    let server = spawn_server("server", &server_args, &server_log, MEETING, TOKEN);

    let rooms = ["A", "B", "C"];
    let mut boxes: Vec<Proc> = rooms
        .iter()
        .map(|r| {
            let cfg = box_config(&dir, r, http, TOKEN);
            Proc::spawn(
                &format!("box {r}"),
                &["box".into(), "--config".into(), cfg.display().to_string(), "--board".into(), "/nonexistent".into()],
                &dir.join(format!("box-{r}.log")),
            )
        })
        .collect();

    // 1. Everyone in the meeting, full roster, receiving both others' audio and video.
    let took = wait_for("three boxes in the meeting, each receiving the two others", Duration::from_secs(40), || {
        let states: Vec<Option<Value>> = rooms.iter().map(|r| read_state(&dir, r)).collect();
        let ok = states.iter().all(|s| {
            s.as_ref().is_some_and(|s| {
                s["phase"]["name"] == "in-meeting" && roster_of(s) == ["A", "B", "C"] && others_receiving(s, 5, 50)
            })
        });
        (ok, states)
    });
    eprintln!("all three in the meeting and receiving after {took:?}");
    let b = read_state(&dir, "B").unwrap();
    for o in b["others"].as_array().unwrap() {
        assert!(o["channel"].as_str().unwrap().contains("@ff3e::"), "B receives through IPv6 groups: {o}");
    }

    // 2. A wrong token is refused; nothing changes.
    let (_, before) = http_get(http, &format!("/v1/meetings/{MEETING}/roster"));
    let before: Value = serde_json::from_str(&before).unwrap();
    let bad_cfg = box_config(&dir, "Intruder", http, "wrong-token");
    let mut intruder = Proc::spawn(
        "box Intruder",
        &["box".into(), "--config".into(), bad_cfg.display().to_string(), "--board".into(), "/nonexistent".into()],
        &dir.join("box-Intruder.log"),
    );
    wait_for("the intruder to be refused", Duration::from_secs(15), || {
        let s = read_state(&dir, "Intruder");
        let ok = s.as_ref().is_some_and(|s| s["phase"]["name"] == "refused" && s["phase"]["status"] == 401);
        (ok, s)
    });
    let (_, after) = http_get(http, &format!("/v1/meetings/{MEETING}/roster"));
    let after: Value = serde_json::from_str(&after).unwrap();
    assert_eq!(after["version"], before["version"], "roster version unchanged by the refused join");
    assert_eq!(after["participants"].as_array().unwrap().len(), 3);
    let log = std::fs::read_to_string(&server_log).unwrap();
    assert!(log.contains("control request refused"), "the service logs the refusal");
    assert!(!log.contains(TOKEN) && !log.contains("wrong-token"), "no token in the service's log");
    intruder.signal(libc::SIGTERM);
    assert_eq!(intruder.wait(Duration::from_secs(10)), Some(0), "a refused box still exits cleanly");

    // 3. A capture on the path: A's audio channel through an uncredentialed `roomcast gateway`.
    let mut captured: Vec<Vec<u8>> = Vec::new();
    {
        let a = after["participants"].as_array().unwrap().iter().find(|p| p["room"] == "A").unwrap().clone();
        let sg = a["groups"]["ipv4"].as_str().unwrap();
        let audio_port = a["ports"]["audio"].as_u64().unwrap();
        let forward = free_udp_port();
        let _gateway = Proc::spawn(
            "gateway",
            &[
                "gateway".into(),
                "--relay".into(),
                format!("127.0.0.1:{relay}"),
                "--join".into(),
                format!("{sg}:{audio_port}"),
                "--forward".into(),
                format!("127.0.0.1:{forward}"),
            ],
            &dir.join("gateway.log"),
        );
        let a_audio = a["ssrc"]["audio"].as_u64().unwrap() as u32;
        let rx = UdpSocket::bind(("127.0.0.1", forward)).unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let start = Instant::now();
        let mut buf = [0u8; 2048];
        while captured.len() < 100 && start.elapsed() < Duration::from_secs(10) {
            if let Ok(n) = rx.recv(&mut buf) {
                if n >= 12 + 16 && u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]) == a_audio {
                    captured.push(buf[..n].to_vec());
                }
            }
        }
        assert!(captured.len() >= 50, "the uncredentialed gateway forwards A's (encrypted) audio: {}", captured.len());
        eprintln!("capture on the path: {} of A's SRTP audio packets", captured.len());
    }

    // 5 (while everyone is still there). A's LAN re-send: B's audio as native multicast on lo.
    {
        let b = after["participants"].as_array().unwrap().iter().find(|p| p["room"] == "B").unwrap().clone();
        let sg: roomcast_meeting::SourceGroup = b["groups"]["ipv4"].as_str().unwrap().parse().unwrap();
        let b_audio = b["ssrc"]["audio"].as_u64().unwrap() as u32;
        let lo = roomcast_net::socket::interface_index("lo").unwrap();
        let rx = UdpSocket::bind(("0.0.0.0", audio_port)).unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        roomcast_net::socket::join_source_group(&rx, lo, sg.source, sg.group).unwrap();
        let mut from_b = 0;
        let start = Instant::now();
        let mut buf = [0u8; 2048];
        while from_b < 10 && start.elapsed() < Duration::from_secs(5) {
            if let Ok((n, _)) = rx.recv_from(&mut buf) {
                if n >= 12 && u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]) == b_audio {
                    from_b += 1;
                }
            }
        }
        assert!(from_b >= 10, "A's LAN re-send of B's audio: got {from_b} packets on {sg}:{audio_port}");
        eprintln!("LAN re-send: {from_b} of B's audio packets on {sg}:{audio_port} via lo");
    }

    // 4. C leaves with SIGTERM; A and B drop it from their rosters within 2 s.
    let mut c = boxes.remove(2);
    c.signal(libc::SIGTERM);
    let took = wait_for("A and B to see C leave", Duration::from_secs(5), || {
        let states: Vec<Option<Value>> = ["A", "B"].iter().map(|r| read_state(&dir, r)).collect();
        let ok = states.iter().all(|s| s.as_ref().is_some_and(|s| roster_of(s) == ["A", "B"]));
        (ok, states.iter().map(|s| s.as_ref().map(roster_of)).collect::<Vec<_>>())
    });
    eprintln!("rosters updated {took:?} after C's SIGTERM");
    assert!(took < Duration::from_secs(2), "rosters took {took:?} to update");
    assert_eq!(c.wait(Duration::from_secs(10)), Some(0), "C exits 0 after an orderly leave");
    let last: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("state-C.json")).unwrap()).unwrap();
    let (st, screen) = (&last["status"]["phase"]["name"], &last["display"]["phase"]);
    assert_eq!(
        (st.as_str(), screen["phase"].as_str(), screen["done"].as_bool()),
        (Some("left"), Some("leaving"), Some(true)),
        "C's last state: left, and its screen says so (not Joining): {last}"
    );
    let log = std::fs::read_to_string(&server_log).unwrap();
    assert!(log.contains("RtcpBye") || log.contains("reason=Request"), "C left by BYE or leave request");
    // 4b. C's leave made A and B rekey: how long after the leave each stopped using its old
    // key, and both still receive each other (with the new keys) afterwards.
    let mut tails: Vec<u64> = Vec::new();
    wait_for("A and B to rekey after C's leave", Duration::from_secs(10), || {
        let seen: Vec<Option<u64>> = ["A", "B"]
            .iter()
            .map(|r| {
                let log = std::fs::read_to_string(dir.join(format!("box-{r}.log"))).unwrap_or_default();
                let line = log.lines().find(|l| l.contains("rekeyed after a leave"))?;
                line.split("old_key_ms=").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
            })
            .collect();
        tails = seen.iter().flatten().copied().collect();
        (seen.iter().all(Option::is_some), seen)
    });
    eprintln!("rekey after C's leave: old key last used {tails:?} ms after the leave was seen (A, B)");
    assert!(tails.iter().all(|ms| *ms < 2_000), "rekey took {tails:?} ms");
    let packets_from = |me: &str, other: &str| -> (u64, u64) {
        let s = read_state(&dir, me).unwrap_or(Value::Null);
        let o = s["others"].as_array().and_then(|a| a.iter().find(|o| o["room"] == other).cloned());
        o.map_or((0, 0), |o| (o["packets"].as_u64().unwrap_or(0), o["decrypt_failed"].as_u64().unwrap_or(0)))
    };
    let before = packets_from("A", "B");
    std::thread::sleep(Duration::from_secs(2));
    let after_rekey = packets_from("A", "B");
    eprintln!("A from B: packets {} -> {}, decrypt_failed {}", before.0, after_rekey.0, after_rekey.1);
    assert!(after_rekey.0 >= before.0 + 50, "A keeps receiving B after the rekey: {before:?} -> {after_rekey:?}");
    assert!(after_rekey.1 < 20, "A failed to decrypt {} of B's packets around the rekey", after_rekey.1);

    // 6. Stop A and B; what each received decodes.
    for b in boxes.iter() {
        b.signal(libc::SIGTERM);
    }
    for b in boxes.iter_mut() {
        assert_eq!(b.wait(Duration::from_secs(10)), Some(0));
    }
    for (me, others) in [("A", ["B", "C"]), ("B", ["A", "C"])] {
        for other in others {
            let rec = dir.join(format!("rec-{me}")).join(other);
            let ivf = rec.join("video.ivf");
            let opus = rec.join("audio.opus");
            assert!(ivf.is_file() && opus.is_file(), "{me} recorded {other}: {rec:?}");
            if let Some(dav1d) = &dav1d {
                let out = Command::new(dav1d).arg("-i").arg(&ivf).args(["-o", "/dev/null"]).output().unwrap();
                let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
                assert!(out.status.success(), "dav1d failed on {ivf:?}: {text}");
                let decoded: u64 = text
                    .rsplit("Decoded ")
                    .next()
                    .and_then(|t| t.split('/').next())
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0);
                assert!(decoded >= 5, "dav1d decoded only {decoded} frames of {ivf:?}: {text}");
            }
            if let (Some(ffmpeg), Some(ffprobe)) = (&ffmpeg, &ffprobe) {
                let out = Command::new(ffmpeg)
                    .args(["-v", "error", "-i"])
                    .arg(&opus)
                    .args(["-f", "null", "-"])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success() && out.stderr.is_empty(),
                    "ffmpeg on {opus:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let d = duration_of(ffprobe, &opus);
                assert!(d >= 2.0, "{opus:?} holds only {d} s");
            }
        }
    }
    // 3 (continued). B decrypted and recorded A's Opus packets verbatim (Ogg stores them
    // as they are); had the path carried plain RTP, the captured payloads would be in it.
    let recorded = std::fs::read(dir.join("rec-B").join("A").join("audio.opus")).unwrap();
    let mut silent_frames = 0;
    for p in &captured {
        let payload = &p[12..p.len() - 16];
        if payload.len() < 8 {
            silent_frames += 1;
            continue;
        }
        let found = recorded.windows(payload.len().min(24)).any(|w| w == &payload[..payload.len().min(24)]);
        assert!(!found, "a captured payload is B's decrypted Opus packet in clear: {payload:02x?}");
    }
    assert!(captured.len() - silent_frames >= 40, "enough captured payloads to compare: {}", captured.len());
    eprintln!("no captured payload of {} appears in B's recording of A ({} bytes)", captured.len(), recorded.len());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
