//! What a newcomer sees on the terminal: `roomcast --version` names the git commit; logs
//! written to a pipe carry no ANSI escape codes (with `NO_COLOR` unset); a failed command prints
//! its error once, as one line with its causes; `roomcast server` answers `GET /` with a page
//! naming the meeting API and a room's SDP by name; `roomcast gateway --room` says what is
//! missing (the token, the room).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_roomcast");

fn roomcast(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("NO_COLOR").env_remove("RUST_LOG").env("RUST_BACKTRACE", "1");
    cmd
}

#[test]
fn version_names_the_commit() {
    let out = roomcast(&["--version"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let git = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success());
    let commit = git.map_or_else(|| "unknown".to_string(), |o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    assert_eq!(text.trim(), format!("roomcast {} (commit {commit})", env!("CARGO_PKG_VERSION")));
}

#[test]
fn a_failed_write_prints_one_error_line_without_colour() {
    let out = roomcast(&["display", "--state", "in-meeting", "--png", "/nonexistent/dir/x.png"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains('\x1b'), "escape codes in piped stderr: {err:?}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one error line expected (no `Caused by`, no backtrace): {err}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains("/nonexistent/dir/x.png"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "the cause is said once: {err}");
}

/// A `roomcast server` on free ports, killed when dropped.
struct Server {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    log: std::sync::mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `roomcast server` (meeting `demo`, token `t`) until it logs that it runs.
fn start_server() -> Server {
    let mut child = roomcast(&[
        "server",
        "--meeting",
        "demo:t",
        "--listen",
        "127.0.0.1:0",
        "--rtp-listen",
        "127.0.0.1:0",
        "--relay-listen",
        "127.0.0.1:0",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, log) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut server = Server { child, addr: "127.0.0.1:0".parse().unwrap(), log };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = String::new();
    while let Ok(line) = server.log.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        seen.push_str(&line);
        seen.push('\n');
        assert!(!line.contains('\x1b'), "escape codes in a piped log line: {line:?}");
        if let Some(rest) = line.split("control=").nth(1) {
            server.addr = rest.split_whitespace().next().unwrap().parse().unwrap();
            return server;
        }
    }
    panic!("roomcast server did not start within 20 s:\n{seen}");
}

/// One HTTP request to the server; the whole response.
fn http(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp
}

#[test]
fn server_logs_without_colour_and_answers_the_root_path() {
    let mut server = start_server();
    let resp = http(server.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    // SAFETY: signals the child we started.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "roomcast server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let rest: Vec<String> = server.log.try_iter().collect();
    assert!(rest.iter().all(|l| !l.contains('\x1b')), "escape codes in piped logs: {rest:?}");
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(resp.contains("Content-Type: text/plain"), "{resp}");
    for endpoint in ["/v1/meetings/{m}/roster", "/v1/meetings/{m}/rooms/{name}/sdp", "/v1/health"] {
        assert!(resp.contains(endpoint), "GET / does not name {endpoint}:\n{resp}");
    }
}

#[test]
fn gateway_by_room_says_what_is_missing() {
    let server = start_server();
    let addr = server.addr.to_string();
    let gateway = |token: Option<&str>, extra: &[&str]| {
        let mut args = vec!["gateway", "--meeting-server", &addr, "--meeting", "demo", "--room", "Red"];
        args.extend_from_slice(&["--forward", "127.0.0.1:9"]);
        args.extend_from_slice(extra);
        let mut cmd = roomcast(&args);
        match token {
            Some(t) => cmd.env("ROOMCAST_TOKEN", t),
            None => cmd.env_remove("ROOMCAST_TOKEN"),
        };
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = gateway(None, &[]);
    assert!(err.contains("set ROOMCAST_TOKEN") && err.contains("--token-file FILE"), "{err}");
    let err = gateway(Some("t"), &[]);
    assert!(err.contains(r#"no room "Red" in meeting "demo" (rooms present: none)"#), "{err}");
    let err = gateway(Some("wrong"), &[]);
    assert!(err.contains("401") && err.contains("unknown meeting or wrong token"), "{err}");
    let dir = std::env::temp_dir().join(format!("roomcast-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "t\n").unwrap();
    let err = gateway(Some("wrong"), &["--token-file", file.to_str().unwrap()]);
    assert!(err.contains(r#"no room "Red""#), "--token-file wins over the environment: {err}");
    let _ = std::fs::remove_dir_all(&dir);
    // The service's answer for a room that is not there: 404 naming the rooms present.
    let resp = http(server.addr, "GET /v1/meetings/demo/rooms/Red%20room/sdp?token=t HTTP/1.1\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 404 "), "{resp}");
    assert!(resp.ends_with(r#"{"error":"no room \"Red room\" in this meeting (rooms present: none)"}"#), "{resp}");
}
