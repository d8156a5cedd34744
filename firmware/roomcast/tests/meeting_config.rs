//! `roomcast check-config` and the box's handling of a bad configuration:
//! - check-config prints every error with its line and key and exits 1; a good file exits 0;
//! - `roomcast box` with a bad file keeps running, shows the error (state file: phase
//!   config-error with key and line), picks up the fixed file without a restart, and still
//!   leaves cleanly on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_roomcast");

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("roomcast-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const BAD: &str = "[room]\nname = \"Blue\"\n\n[meeting]\nserver = \"127.0.0.1\"\nid = \"demo\"\ntoken = \"t\"\n\n[video]\nfps = 500\nbitrate_kbps = \"lots\"\n";

#[test]
fn check_config_lists_every_error_with_its_line() {
    let dir = tmpdir("check-config");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, BAD).unwrap();
    let out = Command::new(BIN).arg("check-config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in ["line 5: meeting.server", "line 10: video.fps", "line 11: video.bitrate_kbps", "3 error(s)"] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/roomcast.example.toml");
    let out = Command::new(BIN).arg("check-config").arg(shipped).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

fn phase(state: &std::path::Path) -> serde_json::Value {
    std::fs::read_to_string(state)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .map(|v| v["status"]["phase"].clone())
        .unwrap_or_default()
}

fn wait_phase(state: &std::path::Path, name: &str, within: Duration) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let p = phase(state);
        if p["name"] == name {
            return p;
        }
        assert!(start.elapsed() < within, "phase {name} not reached; last: {p}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn box_with_a_bad_config_keeps_running_and_recovers() {
    let dir = tmpdir("box-bad-config");
    let cfg = dir.join("roomcast.toml");
    let state = dir.join("state.json");
    std::fs::write(&cfg, BAD).unwrap();
    let mut child = Command::new(BIN)
        .args(["box", "--board", "/nonexistent", "--config"])
        .arg(&cfg)
        .arg("--state-file")
        .arg(&state)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let p = wait_phase(&state, "config-error", Duration::from_secs(10));
    let errors = p["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 3, "{p}");
    assert_eq!(errors[0]["key"], "meeting.server");
    assert_eq!(errors[0]["line"], 5);
    std::thread::sleep(Duration::from_secs(1));
    assert!(child.try_wait().unwrap().is_none(), "the box keeps running with a bad config");
    // Fix the file (a service that is not there): the box takes it without a restart.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(
        &cfg,
        format!(
            "[room]\nname = \"Blue\"\n[meeting]\nserver = \"127.0.0.1:{port}\"\nid = \"demo\"\ntoken = \"t\"\n[video]\nsource = \"synthetic\"\nwidth = 64\nheight = 36\nfps = 5\nencoder = \"software\"\n[audio]\nsource = \"synthetic\"\nplayback = \"null\"\n[display]\nkind = \"none\"\n"
        ),
    )
    .unwrap();
    wait_phase(&state, "service-unreachable", Duration::from_secs(15));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn box_without_a_meeting_server_shows_set_up_then_joins_once_one_is_set() {
    let dir = tmpdir("box-set-up");
    let cfg = dir.join("roomcast.toml");
    let state = dir.join("state.json");
    // The real boards' default, with the display off (a developer's /dev/fb0 stays untouched).
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/roomcast.setup.toml");
    let setup = std::fs::read_to_string(shipped).unwrap();
    assert!(setup.contains("kind = \"auto\""));
    std::fs::write(&cfg, setup.replace("kind = \"auto\"", "kind = \"none\"")).unwrap();
    let out = Command::new(BIN).arg("check-config").arg(&cfg).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no meeting server: the box shows the set-up screen"));

    let mut child = Command::new(BIN)
        .args(["box", "--board", "/nonexistent", "--config"])
        .arg(&cfg)
        .arg("--state-file")
        .arg(&state)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_phase(&state, "set-up", Duration::from_secs(10));
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(doc["display"]["phase"]["phase"], "set-up", "{doc}");
    assert_eq!(doc["display"]["phase"]["file"], "roomcast.toml", "{doc}");
    assert_eq!(doc["display"]["phase"]["place"], format!("in {}", dir.display()), "{doc}");
    assert_eq!(doc["display"]["name"], "Meeting room", "{doc}");
    // Nothing is joined meanwhile: still set-up a while later.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(phase(&state)["name"], "set-up");
    assert!(child.try_wait().unwrap().is_none(), "the box keeps running without a server");

    // A server is set (one that is not there): the box tries to join it without a restart.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let with_server = std::fs::read_to_string(&cfg).unwrap().replace(
        "# server = \"meet.example.net:8470\"",
        &format!("server = \"127.0.0.1:{port}\"\nid = \"demo\"\ntoken = \"t\"\n"),
    );
    let with_server = with_server
        .replace(
            "source = \"auto\"          # the board's camera",
            "source = \"synthetic\"\nwidth = 64\nheight = 36\nfps = 5",
        )
        .replace("source = \"auto\"\nplayback = \"auto\"", "source = \"synthetic\"\nplayback = \"null\"");
    std::fs::write(&cfg, with_server).unwrap();
    wait_phase(&state, "service-unreachable", Duration::from_secs(15));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
