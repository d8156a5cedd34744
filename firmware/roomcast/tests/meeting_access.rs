//! Relay access bound to the meeting and authenticated media, with the real binaries on loopback
//! (issue 13 items 4 and 5). A participant joins from 127.0.0.3 (the test, through a socket bound
//! there) with its SRTP key and sends SRTP, sealed (`roomcast_meeting::media_auth`), to the service:
//! 1. a `roomcast gateway --relay ... --join` on 127.0.0.2 that never joined receives nothing;
//! 2. `roomcast gateway --meeting-server` (127.0.0.1, joins watch-only with the token from the
//!    environment, gets the participant's key) receives, decrypts and forwards its audio;
//! 3. forged RTP with the participant's SSRC and no valid trailer, and a forged RTCP BYE, from
//!    another source port: nothing of it is forwarded and the participant stays;
//! 4. over https, the gateway refuses a service whose certificate is not the pinned fingerprint
//!    and, pinned right, reads the roster.

mod meeting_util;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use meeting_util::*;
use roomcast_crypt::{Protector, SrtpKey};
use roomcast_meeting::client;
use roomcast_meeting::media_auth::{MediaKey, Sealer};
use roomcast_meeting::roster::{AudioCaps, Caps, JoinReply};

const MEETING: &str = "access";
const TOKEN: &str = "access-token-Hq2vT7";

/// One HTTP request from a socket bound to `from`; the parsed response.
fn request_from(from: &str, port: u16, raw: &[u8]) -> client::Response {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
        let mut s = sock.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap();
        s.write_all(raw).await.unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await.unwrap().unwrap();
        client::parse_response(&buf).unwrap()
    })
}

fn rtp(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 111];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&u32::from(seq).wrapping_mul(960).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn bye(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x81, 203, 0, 1];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p
}

/// Counts datagrams on `sock` containing `marker` (any datagram: an empty marker) for `dur`.
fn count(sock: &UdpSocket, marker: &[u8], dur: Duration) -> usize {
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let start = Instant::now();
    let mut n = 0;
    let mut buf = [0u8; 2048];
    while start.elapsed() < dur {
        if let Ok((len, _)) = sock.recv_from(&mut buf) {
            n += usize::from(marker.is_empty() || buf[..len].windows(marker.len()).any(|w| w == marker));
        }
    }
    n
}

fn server(dir: &std::path::Path, name: &str, tls: Option<&std::path::Path>) -> (Proc, u16, u16, u16) {
    let ports = ServerPorts::free();
    let mut args = ports.server_args(2);
    if let Some(t) = tls {
        args.extend(["--tls-dir".into(), t.display().to_string()]);
    }
    let p = spawn_server(name, &args, &dir.join(format!("{name}.log")), MEETING, TOKEN);
    (p, ports.http, ports.media, ports.relay)
}

#[test]
fn only_participants_receive_and_only_authenticated_media_is_forwarded() {
    let dir = std::env::temp_dir().join(format!("roomcast-meeting-access-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (_server, http, media, relay) = server(&dir, "server", None);

    // The participant, joining from 127.0.0.3.
    let caps = Caps { video: None, audio: Some(AudioCaps { codec: "opus".into(), payload_type: 111, channels: 1 }) };
    let key = SrtpKey::from_os(0);
    let join = client::Call::join_keyed(MEETING, "A", &caps, Some(&key)).encode("h", TOKEN, None);
    let a: JoinReply = client::decode_join(&request_from("127.0.0.3", http, &join)).unwrap();
    let sealer = Sealer::new(MediaKey::from_secret(&a.secret), 1);
    let mut protector = Protector::new(key).unwrap();
    let sender = UdpSocket::bind("127.0.0.3:0").unwrap();
    let target: SocketAddr = format!("127.0.0.1:{media}").parse().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sending = {
        let (stop, ssrc) = (stop.clone(), a.ssrc.audio);
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut seq = 0u16;
            // Bounded: 60 s at most.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && start.elapsed() < Duration::from_secs(60) {
                let srtp = protector.protect(&rtp(seq, ssrc, b"genuine-audio")).unwrap();
                let _ = sender.send_to(&sealer.seal(&srtp), target);
                seq = seq.wrapping_add(1);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    // 1. A gateway on 127.0.0.2 that never joined the meeting.
    let stranger_out = UdpSocket::bind("127.0.0.1:0").unwrap();
    let channel = format!("{}:{}", a.groups.ipv4, a.ports.audio);
    let _stranger = Proc::spawn(
        "stranger",
        &[
            "gateway".into(),
            "--relay".into(),
            format!("127.0.0.1:{relay}"),
            "--bind".into(),
            "127.0.0.2:0".into(),
            "--join".into(),
            channel,
            "--forward".into(),
            stranger_out.local_addr().unwrap().to_string(),
        ],
        &dir.join("stranger.log"),
    );
    // 2. A gateway with the meeting's credentials (127.0.0.1, its own watch-only join).
    let member_out = UdpSocket::bind("127.0.0.1:0").unwrap();
    let member = Proc::spawn_env(
        "member",
        &[
            "gateway".into(),
            "--meeting-server".into(),
            format!("127.0.0.1:{http}"),
            "--meeting".into(),
            MEETING.into(),
            "--room".into(),
            "A".into(),
            "--forward".into(),
            member_out.local_addr().unwrap().to_string(),
        ],
        &dir.join("member.log"),
        &[("ROOMCAST_TOKEN", TOKEN)],
    );
    wait_for("the member gateway to receive A's audio", Duration::from_secs(15), || {
        let n = count(&member_out, b"genuine-audio", Duration::from_millis(500));
        (n > 0, n)
    });
    let got = count(&member_out, b"genuine-audio", Duration::from_secs(3));
    let stolen = count(&stranger_out, b"", Duration::from_millis(200));
    assert!(got >= 50, "the member gateway receives A's audio: {got} packets in 3 s");
    assert_eq!(stolen, 0, "a gateway that never joined receives nothing");
    let log = std::fs::read_to_string(dir.join("stranger.log")).unwrap();
    assert!(log.contains("state=Joined") || log.contains("Joined"), "the stranger's tunnel is up: {log}");
    let roster = client::decode_roster(&request_from("127.0.0.1", http, &client::roster("h", MEETING, TOKEN, None)))
        .unwrap()
        .unwrap();
    assert_eq!(roster.room_names(), "A, gateway", "the gateway is listed watch-only");

    // 3. Forged RTP and a forged BYE with A's SSRC from another port of A's address.
    let forger = UdpSocket::bind("127.0.0.3:0").unwrap();
    let fake_key = Sealer::new(MediaKey::from_secret("not the secret"), 1);
    for i in 0..50u16 {
        forger.send_to(&rtp(i, a.ssrc.audio, b"forged-audio"), target).unwrap();
        forger.send_to(&fake_key.seal(&rtp(i, a.ssrc.audio, b"forged-audio")), target).unwrap();
    }
    forger.send_to(&bye(a.ssrc.audio), target).unwrap();
    forger.send_to(&fake_key.seal(&bye(a.ssrc.audio)), target).unwrap();
    let forged = count(&member_out, b"forged-audio", Duration::from_secs(2));
    assert_eq!(forged, 0, "forged media is not forwarded");
    let roster = client::decode_roster(&request_from("127.0.0.1", http, &client::roster("h", MEETING, TOKEN, None)))
        .unwrap()
        .unwrap();
    assert!(roster.by_room("A").is_some(), "the forged BYE removed nobody: {}", roster.room_names());
    assert!(count(&member_out, b"genuine-audio", Duration::from_secs(1)) > 10, "A's media still flows");

    member.signal(libc::SIGTERM);
    let mut member = member;
    assert_eq!(member.wait(Duration::from_secs(10)), Some(0));
    let roster = client::decode_roster(&request_from("127.0.0.1", http, &client::roster("h", MEETING, TOKEN, None)))
        .unwrap()
        .unwrap();
    assert_eq!(roster.room_names(), "A", "the gateway left when it stopped");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sending.join().unwrap();

    // 4. The gateway over https: a wrong pin is refused, the right one reads the roster.
    let tls_dir = dir.join("tls");
    let (_tls_server, https, _, _) = server(&dir, "tls-server", Some(&tls_dir));
    let out = Command::new(BIN).args(["server", "--print-fingerprint", "--tls-dir"]).arg(&tls_dir).output().unwrap();
    let fp = String::from_utf8(out.stdout).unwrap().trim().strip_prefix("fingerprint ").unwrap().to_string();
    let gateway = |pin: &str| {
        let out = Command::new(BIN)
            .args(["gateway", "--meeting-server", &format!("https://127.0.0.1:{https}"), "--fingerprint", pin])
            .args(["--meeting", MEETING, "--room", "Nobody", "--forward", "127.0.0.1:9"])
            .env("ROOMCAST_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let wrong = format!("sha256:{}", "0f".repeat(32));
    let err = gateway(&wrong);
    assert!(err.contains("not the configured fingerprint") && err.contains(&fp), "{err}");
    let err = gateway(&fp);
    assert!(err.contains(r#"no room "Nobody" in meeting "access" (rooms present: none)"#), "{err}");
    let err = Command::new(BIN)
        .args(["gateway", "--meeting-server", &format!("http://192.0.2.1:{https}")])
        .args(["--meeting", MEETING, "--room", "A", "--forward", "127.0.0.1:9"])
        .env("ROOMCAST_TOKEN", TOKEN)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&err.stderr).into_owned();
    assert!(err.contains("would send the token in clear"), "plain http off loopback is refused: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}
