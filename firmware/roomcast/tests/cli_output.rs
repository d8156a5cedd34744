//! What a newcomer sees on the terminal: `roomcast --version` names the git commit; logs
//! written to a pipe carry no ANSI escape codes (with `NO_COLOR` unset); a failed command prints
//! its error once, as one line with its causes; `roomcast server` answers `GET /` with a page
//! naming the meeting API.

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

/// Runs `roomcast server` on free ports until it logs that it runs; returns it and its log lines.
fn start_server() -> (std::process::Child, std::net::SocketAddr, std::sync::mpsc::Receiver<String>) {
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
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = String::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        seen.push_str(&line);
        seen.push('\n');
        assert!(!line.contains('\x1b'), "escape codes in a piped log line: {line:?}");
        if let Some(rest) = line.split("control=").nth(1) {
            let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
            return (child, addr, rx);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("roomcast server did not start within 20 s:\n{seen}");
}

#[test]
fn server_logs_without_colour_and_answers_the_root_path() {
    let (mut child, addr, rx) = start_server();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    // SAFETY: signals the child we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("roomcast server did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.iter().all(|l| !l.contains('\x1b')), "escape codes in piped logs: {rest:?}");
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(resp.contains("Content-Type: text/plain"), "{resp}");
    for endpoint in ["/v1/meetings/{m}/roster", "/v1/meetings/{m}/rooms/{name}/sdp", "/v1/health"] {
        assert!(resp.contains(endpoint), "GET / does not name {endpoint}:\n{resp}");
    }
}
