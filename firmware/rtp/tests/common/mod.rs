//! Helpers shared by roomcast-rtp's third-party tool tests: scratch directories, loopback UDP
//! port pairs, waiting for a receiver to bind, and running a tool with a time limit.

#![allow(dead_code)]

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A fresh scratch directory for one test under the cargo target tmp dir.
pub fn scratch_dir(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("rtp-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// An even loopback port whose odd neighbour (RTCP) is free too, found by binding both.
pub fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind probe");
        let port = s.local_addr().expect("addr").port() & !1;
        drop(s);
        if port < 1024 {
            continue;
        }
        let a = UdpSocket::bind(("127.0.0.1", port));
        let b = UdpSocket::bind(("127.0.0.1", port + 1));
        if a.is_ok() && b.is_ok() {
            return port;
        }
    }
    panic!("no free loopback UDP port pair");
}

/// Waits until something has bound UDP `port` on loopback (our probe bind then fails), or the
/// child exits, or `limit` passes. Returns true when the port is bound.
pub fn wait_for_udp_bind(port: u16, child: &mut Child, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if UdpSocket::bind(("127.0.0.1", port)).is_err() {
            return true;
        }
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Waits for a child with a time limit; kills it (by its own handle) when the limit passes.
pub fn wait_with_limit(mut child: Child, limit: Duration) -> (Output, bool) {
    let start = Instant::now();
    let mut timed_out = false;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().expect("collect child output"), timed_out)
}

/// Runs a command to completion (stdin closed), with a 60 s limit; panics on failure.
pub fn run(cmd: &mut Command) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let (out, timed_out) = wait_with_limit(child, Duration::from_secs(60));
    assert!(!timed_out, "{cmd:?} timed out");
    assert!(out.status.success(), "{cmd:?} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out
}

/// Frame lines (non-comment) of an ffmpeg `framemd5` file.
pub fn framemd5_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.to_string())
        .collect()
}

/// The md5 column (last field) of framemd5 lines.
pub fn md5s(lines: &[String]) -> Vec<String> {
    lines.iter().filter_map(|l| l.rsplit(',').next()).map(|s| s.trim().to_string()).collect()
}
