//! Helpers shared by the meeting tests that run `roomcast server` and `roomcast box` processes on
//! loopback: child processes killed on drop, free ports, a box configuration with synthetic
//! devices, the box's state file, bounded waits and a plain-HTTP GET on the control API.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_roomcast");

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The loopback ports of one `roomcast server` (control API, media, AMT relay).
#[derive(Debug, Clone, Copy)]
pub struct ServerPorts {
    pub http: u16,
    pub media: u16,
    pub relay: u16,
}

impl ServerPorts {
    /// Three ports free right now.
    pub fn free() -> Self {
        Self { http: free_tcp_port(), media: free_udp_port(), relay: free_udp_port() }
    }

    /// `roomcast server` on these ports with a `query_interval_s` relay query interval; the
    /// meeting's credentials are not among them (see [`spawn_server`]).
    pub fn server_args(&self, query_interval_s: u32) -> Vec<String> {
        let Self { http, media, relay } = self;
        [
            "server".to_string(),
            "--listen".into(),
            format!("127.0.0.1:{http}"),
            "--rtp-listen".into(),
            format!("127.0.0.1:{media}"),
            "--relay-listen".into(),
            format!("127.0.0.1:{relay}"),
            "--query-interval".into(),
            query_interval_s.to_string(),
        ]
        .into()
    }
}

/// Starts `roomcast server` with `args`, meeting `meeting` and its `token` given by the
/// environment (`$ROOMCAST_MEETINGS`, never the command line), logging to `log`, and waits
/// until the log says the service runs.
pub fn spawn_server(name: &str, args: &[String], log: &Path, meeting: &str, token: &str) -> Proc {
    let seen = std::fs::read_to_string(log).map_or(0, |t| t.matches("meeting service running").count());
    let p = Proc::spawn_env(name, args, log, &[("ROOMCAST_MEETINGS", &format!("{meeting} {token}"))]);
    wait_for("the service running", Duration::from_secs(15), || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        (text.matches("meeting service running").count() > seen, ())
    });
    p
}

/// A child process killed when dropped (so a failing test leaves nothing behind).
pub struct Proc {
    pub name: String,
    child: Option<Child>,
}

impl Proc {
    pub fn spawn(name: &str, args: &[String], log: &Path) -> Proc {
        Self::spawn_env(name, args, log, &[])
    }

    pub fn spawn_env(name: &str, args: &[String], log: &Path, env: &[(&str, &str)]) -> Proc {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc { name: name.into(), child: Some(child) }
    }

    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the exit after a signal; returns the exit status code.
    pub fn wait(&mut self, within: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} did not exit within {within:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A box configuration with synthetic camera and microphone, no display; `meeting_extra` is
/// appended to the `[meeting]` section (e.g. `fingerprint = "sha256:..."`).
pub fn box_config(dir: &Path, room: &str, server: &str, meeting: &str, token: &str, meeting_extra: &str) -> PathBuf {
    let path = dir.join(format!("{room}.toml"));
    let text = format!(
        r#"[room]
name = "{room}"

[meeting]
server = "{server}"
id = "{meeting}"
token = "{token}"
{meeting_extra}

[video]
source = "synthetic"
width = 160
height = 90
fps = 5
bitrate_kbps = 100
encoder = "software"
threads = 1
keyframe_interval_s = 1

[audio]
source = "synthetic"
playback = "null"

[display]
kind = "none"

[debug]
state_file = "{dir}/state-{room}.json"
"#,
        dir = dir.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

pub fn spawn_box(dir: &Path, room: &str, cfg: &Path) -> Proc {
    Proc::spawn(
        &format!("box {room}"),
        &["box".into(), "--config".into(), cfg.display().to_string(), "--board".into(), "/nonexistent".into()],
        &dir.join(format!("box-{room}.log")),
    )
}

pub fn read_state(dir: &Path, room: &str) -> Option<Value> {
    let text = std::fs::read_to_string(dir.join(format!("state-{room}.json"))).ok()?;
    serde_json::from_str::<Value>(&text).ok().map(|v| v["status"].clone())
}

/// Waits until `probe` says yes, or panics with `what` and the last value seen.
pub fn wait_for<T: std::fmt::Debug>(what: &str, within: Duration, mut probe: impl FnMut() -> (bool, T)) -> Duration {
    let start = Instant::now();
    loop {
        let (ok, seen) = probe();
        if ok {
            return start.elapsed();
        }
        if start.elapsed() > within {
            panic!("timed out after {within:?} waiting for {what}; last seen: {seen:#?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// GET over plain HTTP on loopback with a bearer token; (status, body), (0, "") when unreachable.
pub fn http_get(port: u16, path: &str, token: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return (0, String::new()) };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return (0, String::new());
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    let status = buf.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// The room names in a roster JSON body, sorted.
pub fn rooms_in(roster: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(roster).unwrap_or(Value::Null);
    let mut r: Vec<String> = v["participants"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["room"].as_str().map(String::from)).collect())
        .unwrap_or_default();
    r.sort();
    r
}
