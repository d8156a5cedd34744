//! The control API over TLS on loopback (issue 13, item 1): `roomcast server --tls-dir` makes a
//! self-signed certificate (key mode 0600) and prints its fingerprint; a box pinning it joins
//! through a small TCP proxy that records every byte both ways, and the record never holds the
//! token in clear; a box pinning another fingerprint is refused with an error naming both
//! digests; the meetings come from a `--meetings` file.

mod meeting_util;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meeting_util::*;

const MEETING: &str = "tls";
const TOKEN: &str = "tls-token-Zq8wX3vN5mR2";

/// A TCP proxy on loopback copying to `to` and recording both directions.
struct Tee {
    port: u16,
    bytes: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
}

impl Tee {
    fn start(to: u16) -> Tee {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s) = (bytes.clone(), stop.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            // Bounded: at most 2 minutes, then the proxy stops accepting.
            while !s.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(120) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else { continue };
                        for (mut from, mut into) in
                            [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                        {
                            let (b, s) = (b.clone(), s.clone());
                            std::thread::spawn(move || {
                                from.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
                                let mut buf = [0u8; 16384];
                                let deadline = Instant::now() + Duration::from_secs(30);
                                while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                                    match from.read(&mut buf) {
                                        Ok(0) => break,
                                        Ok(n) => {
                                            b.lock().unwrap().extend_from_slice(&buf[..n]);
                                            if into.write_all(&buf[..n]).is_err() {
                                                break;
                                            }
                                        }
                                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                                        Err(_) => break,
                                    }
                                }
                                let _ = into.shutdown(std::net::Shutdown::Write);
                            });
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Tee { port, bytes, stop }
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_box_joins_over_https_with_a_pinned_certificate_and_the_token_never_shows() {
    let dir = std::env::temp_dir().join(format!("roomcast-meeting-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let tls_dir = dir.join("tls");

    // The fingerprint, as an operator gets it before starting the service.
    let out = Command::new(BIN)
        .args(["server", "--print-fingerprint", "--tls-dir"])
        .arg(&tls_dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let fp = stdout.trim().strip_prefix("fingerprint ").unwrap_or_else(|| panic!("{stdout:?}")).to_string();
    assert!(fp.starts_with("sha256:") && fp.len() == 7 + 64, "{fp}");
    let key_mode = std::fs::metadata(tls_dir.join("key.pem")).unwrap().permissions().mode() & 0o777;
    assert_eq!(key_mode, 0o600, "the private key is the owner's only");

    let meetings = dir.join("meetings");
    std::fs::write(&meetings, format!("# id token\n{MEETING} {TOKEN}\n")).unwrap();
    std::fs::set_permissions(&meetings, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (http, media, relay) = (free_tcp_port(), free_udp_port(), free_udp_port());
    let log = dir.join("server.log");
    let _server = Proc::spawn(
        "server",
        &[
            "server".into(),
            "--listen".into(),
            format!("127.0.0.1:{http}"),
            "--rtp-listen".into(),
            format!("127.0.0.1:{media}"),
            "--relay-listen".into(),
            format!("127.0.0.1:{relay}"),
            "--tls-dir".into(),
            tls_dir.display().to_string(),
            "--meetings".into(),
            meetings.display().to_string(),
        ],
        &log,
    );
    wait_for("the service's fingerprint in its log", Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        (text.contains(&format!("fingerprint {fp}")), text)
    });
    // Plain HTTP is not served on a TLS port.
    assert_ne!(http_get(http, &format!("/v1/meetings/{MEETING}/roster"), TOKEN).0, 200);

    let tee = Tee::start(http);
    let server = format!("https://127.0.0.1:{}", tee.port);
    let good = box_config(&dir, "A", &server, MEETING, TOKEN, &format!("fingerprint = \"{fp}\""));
    let wrong_fp = format!("sha256:{}", "0f".repeat(32));
    let bad = box_config(&dir, "B", &server, MEETING, TOKEN, &format!("fingerprint = \"{wrong_fp}\""));
    let _a = spawn_box(&dir, "A", &good);
    let _b = spawn_box(&dir, "B", &bad);

    let took = wait_for("box A in the meeting over https", Duration::from_secs(30), || {
        let s = read_state(&dir, "A");
        let ok = s.as_ref().is_some_and(|s| {
            s["phase"]["name"] == "in-meeting" && s["roster"].as_array().is_some_and(|r| r.iter().any(|n| n == "A"))
        });
        (ok, s)
    });
    eprintln!("box A joined over https (pinned certificate) in {took:?}");
    wait_for("box B refused for its fingerprint", Duration::from_secs(20), || {
        let s = read_state(&dir, "B");
        let text = s.as_ref().map(|s| s.to_string()).unwrap_or_default();
        let ok = s.as_ref().is_some_and(|s| s["phase"]["name"] == "refused")
            && text.contains("not the configured fingerprint")
            && text.contains(&wrong_fp)
            && text.contains(&fp);
        (ok, s)
    });
    // A few keepalives and long polls through the proxy, then look at what crossed it.
    std::thread::sleep(Duration::from_secs(3));
    let seen = tee.bytes.lock().unwrap().clone();
    assert!(seen.len() > 4000, "the exchanges went through the proxy ({} bytes)", seen.len());
    assert!(!contains(&seen, TOKEN.as_bytes()), "the token crossed the proxy in clear");
    assert!(!contains(&seen, b"Bearer"), "an HTTP header crossed the proxy in clear");
    assert!(!contains(&seen, MEETING.as_bytes()) || !contains(&seen, b"/v1/meetings"), "request paths in clear");
    let server_log = std::fs::read_to_string(&log).unwrap();
    assert!(!server_log.contains(TOKEN), "no token in the service's log");
    let box_log = std::fs::read_to_string(dir.join("box-A.log")).unwrap();
    assert!(!box_log.contains(TOKEN), "no token in the box's log");
    let state = std::fs::read_to_string(dir.join("state-A.json")).unwrap();
    assert!(!state.contains(TOKEN), "no token in the box's state file");
    let _ = std::fs::remove_dir_all(&dir);
}
