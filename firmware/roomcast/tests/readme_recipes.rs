//! The README's shell recipes, run as written: each recipe's shell blocks are taken from
//! README.md itself (between `<!-- recipe: NAME -->` and `<!-- /recipe -->`) and fed, one after
//! the other, to one bash — as a reader pastes them into one terminal — with the debug
//! `roomcast` first on `PATH` and free loopback ports in the variables the recipe reads. A line
//! marked with a `# player:` comment (`ffplay [OPTIONS] INPUT   # player: ...`) needs a screen: the
//! test runs it as a headless `ffmpeg` decode of the same input instead (a few seconds, decoded
//! frames written as `framecrc`) and checks what was decoded.
//!
//! "Run a meeting on a laptop" (`laptop-meeting`, variables `D`, `API`, `MEDIA`, `RELAY`, `FWD`);
//! after each block the test checks what the README says it does:
//! 1. start: the service and both rooms run (their PID files name live processes);
//! 2. roster: the JSON printed lists the rooms Blue and Green; the control API's indented roster
//!    (`roster-pretty`, run in the same shell) is the same roster;
//! 3. listen: the gateway found Blue's channel in the roster, the SDP written is Blue's, and
//!    the 5 s ffmpeg recorded through the gateway decode to about 5 s of non-silent audio
//!    without decoder errors;
//! 4. stop: nothing the recipe started is left running (no process left in the shell's process
//!    group), both rooms left the meeting (the service logged no warning for it), the service's
//!    control port is free again.
//!
//! The AMT examples' loopback recipe (`amt-loopback`, variables `DIR`, `AMT`, `INJECT`, `PLAY`):
//! 1. start: relay, ffmpeg source and gateway run, the gateway's tunnel is up and the relay has
//!    the gateway's channel joined;
//! 2. play: the player line, decoded headless, gives seconds of changing video and audio frames
//!    and no decoder message;
//! 3. stop: nothing left running, the gateway forwarded data without errors and tore its tunnel
//!    down (the relay saw the channel left), the relay's port is free again.
//!
//! Every block has a time limit; whatever happens, the shell's process group is killed at the end.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use roomcast_test_support::require_tool;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_roomcast");
const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");

/// The shell blocks (```sh) between the recipe's markers.
fn recipe_blocks(readme: &str, name: &str) -> Vec<String> {
    let open = format!("<!-- recipe: {name} -->");
    let start = readme.find(&open).unwrap_or_else(|| panic!("README.md has no `{open}` marker")) + open.len();
    let len = readme[start..].find("<!-- /recipe -->").expect("README.md: recipe marker not closed");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme[start..start + len].lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(_), "```") => blocks.push(current.take().expect("open block")),
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "README.md: a ```sh block of the recipe is not closed");
    blocks
}

/// How long the test decodes a `# player:` line's input.
const PLAYER_SECONDS: u32 = 4;

/// `block` with every `# player:` line (`ffplay [OPTIONS] INPUT  # player: ...`) replaced by a
/// headless ffmpeg decode of INPUT with the same input options, for `PLAYER_SECONDS`, its
/// decoded frames written to `out` as framecrc; and how many lines were replaced.
fn headless_players(block: &str, out: &Path) -> (String, usize) {
    let mut replaced = 0;
    let mut text = String::new();
    for line in block.lines() {
        match line.split_once("# player:") {
            Some((command, _)) => {
                let words: Vec<&str> = command.split_whitespace().collect();
                let [player, options @ .., input] = words.as_slice() else {
                    panic!("a `# player:` line must be `ffplay [OPTIONS] INPUT`, got: {line}")
                };
                assert_eq!(*player, "ffplay", "a `# player:` line must start with ffplay: {line}");
                let options: String = options.iter().map(|o| format!("{o} ")).collect();
                text.push_str(&format!(
                    "ffmpeg -nostdin -v error {options}-i {input} -t {PLAYER_SECONDS} -y -f framecrc '{}'\n",
                    out.display()
                ));
                replaced += 1;
            }
            None => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    (text, replaced)
}

/// One stream of a framecrc file: its media type and the frames decoded.
#[derive(Debug, Default)]
struct CrcStream {
    media_type: String,
    time_base: (u64, u64),
    frames: usize,
    distinct: usize,
    /// First pts to the end of the last frame, in seconds.
    seconds: f64,
}

/// Parses ffmpeg's framecrc output (`#tb N: A/B`, `#media_type N: T`, then
/// `stream, dts, pts, duration, size, crc` per frame).
fn framecrc_streams(path: &Path) -> Vec<CrcStream> {
    #[derive(Default)]
    struct Acc {
        stream: CrcStream,
        first_pts: Option<i64>,
        end_pts: i64,
        crcs: std::collections::HashSet<String>,
    }
    fn at(all: &mut Vec<Acc>, i: usize) -> &mut Acc {
        if all.len() <= i {
            all.resize_with(i + 1, Acc::default);
        }
        &mut all[i]
    }
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut all: Vec<Acc> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix('#') {
            let Some((key, value)) = rest.split_once(": ") else { continue };
            let Some((key, Ok(i))) = key.split_once(' ').map(|(k, i)| (k, i.parse::<usize>())) else { continue };
            let acc = at(&mut all, i);
            match key {
                "tb" => {
                    let (a, b) = value.split_once('/').unwrap_or_else(|| panic!("time base not A/B: {line}"));
                    acc.stream.time_base = (a.trim().parse().unwrap(), b.trim().parse().unwrap());
                }
                "media_type" => acc.stream.media_type = value.trim().to_string(),
                _ => {}
            }
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let parsed = match fields.as_slice() {
            [i, _dts, pts, duration, _size, crc] => {
                (i.parse::<usize>(), pts.parse::<i64>(), duration.parse::<i64>(), crc.to_string())
            }
            _ => panic!("{}: not a framecrc line: {line}", path.display()),
        };
        let (Ok(i), Ok(pts), Ok(duration), crc) = parsed else {
            panic!("{}: not a framecrc line: {line}", path.display())
        };
        let acc = at(&mut all, i);
        acc.stream.frames += 1;
        acc.crcs.insert(crc);
        acc.first_pts = Some(acc.first_pts.map_or(pts, |first| first.min(pts)));
        acc.end_pts = acc.end_pts.max(pts + duration);
    }
    all.into_iter()
        .map(|acc| {
            let mut s = acc.stream;
            s.distinct = acc.crcs.len();
            if let Some(first) = acc.first_pts {
                let (num, den) = s.time_base;
                s.seconds = (acc.end_pts - first) as f64 * num as f64 / den.max(1) as f64;
            }
            s
        })
        .collect()
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One bash fed the blocks on its stdin, in its own process group (killed on drop).
struct Shell {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Shell {
    fn start(dir: &Path, env: &[(&str, String)]) -> Shell {
        use std::os::unix::process::CommandExt;
        let bin_dir = Path::new(BIN).parent().unwrap();
        let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
        let mut cmd = Command::new("bash");
        cmd.args(["--noprofile", "--norc", "-s"])
            .current_dir(dir)
            .env("PATH", path)
            .env_remove("ROOMCAST_TOKEN")
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("starting bash");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut shell = Shell { stdin: child.stdin.take(), child, lines };
        // A failing command ends the shell (the test then fails with the block's output).
        shell.send("exec 2>&1; set -eo pipefail\n");
        shell
    }

    fn send(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("shell stdin");
        stdin.write_all(text.as_bytes()).and_then(|_| stdin.flush()).expect("writing to bash");
    }

    /// Runs one block; returns its output. Panics on failure or after `limit`.
    fn run(&mut self, n: usize, block: &str, limit: Duration) -> String {
        let done = format!("@@block {n} done");
        self.send(&format!("{block}\necho '{done}'\n"));
        let deadline = Instant::now() + limit;
        let mut out = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == done => return out,
                Ok(line) => {
                    out.push_str(&line);
                    out.push('\n');
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("README recipe block {n} did not finish within {limit:?}:\n{block}\noutput:\n{out}")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().ok();
                    panic!("README recipe block {n} failed (bash exited: {status:?}):\n{block}\noutput:\n{out}")
                }
            }
        }
    }

    fn pgid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        // SAFETY: signals our own process group only (bash and what it started).
        unsafe { libc::kill(-self.pgid(), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// Processes (pid, command) of process group `pgid`, zombies excepted, `except` excepted.
fn live_in_group(pgid: i32, except: u32) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid pgrp ...
        let Some((comm, rest)) = stat.rsplit_once(") ") else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let (Some(state), Some(pgrp)) = (fields.first(), fields.get(2).and_then(|p| p.parse::<i32>().ok())) else {
            continue;
        };
        if pgrp == pgid && pid != except && *state != "Z" {
            found.push((pid, comm.split_once('(').map_or(comm, |(_, c)| c).to_string()));
        }
    }
    found
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

fn read_pid(dir: &Path, name: &str) -> u32 {
    let path = dir.join(format!("{name}.pid"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.trim().parse().unwrap_or_else(|_| panic!("{}: not a PID: {text:?}", path.display()))
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn log(dir: &Path, name: &str) -> String {
    strip_ansi(&std::fs::read_to_string(dir.join(name)).unwrap_or_default())
}

/// Duration (s) and peak of a 16-bit PCM WAV file.
fn wav_stats(path: &Path) -> (f64, i32) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(b.len() > 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WAVE", "{}: not a WAV file", path.display());
    let (mut rate, mut channels, mut bits, mut data) = (0u32, 0u16, 0u16, None);
    let mut at = 12;
    while at + 8 <= b.len() {
        let id = &b[at..at + 4];
        let len = u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = &b[at + 8..(at + 8 + len).min(b.len())];
        if id == b"fmt " && body.len() >= 16 {
            channels = u16::from_le_bytes([body[2], body[3]]);
            rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
            bits = u16::from_le_bytes([body[14], body[15]]);
        } else if id == b"data" {
            data = Some(body);
        }
        at += 8 + len + (len & 1);
    }
    let data = data.expect("WAV without data");
    assert_eq!(bits, 16, "expected 16-bit PCM");
    let frames = data.len() / 2 / usize::from(channels.max(1));
    let peak = data.chunks_exact(2).map(|s| i32::from(i16::from_le_bytes([s[0], s[1]])).abs()).max().unwrap_or(0);
    (frames as f64 / f64::from(rate.max(1)), peak)
}

#[test]
fn laptop_meeting_recipe_runs_as_written() {
    let (Some(_), Some(_), Some(_)) = (require_tool("bash"), require_tool("curl"), require_tool("ffmpeg")) else {
        return;
    };
    let readme = std::fs::read_to_string(README).expect("reading README.md");
    let blocks = recipe_blocks(&readme, "laptop-meeting");
    // The checks below follow the recipe's four steps; a reshaped recipe must reshape them.
    let steps = ["roomcast server", "/roster", "roomcast gateway", "stop "];
    assert_eq!(blocks.len(), steps.len(), "the recipe's ```sh blocks changed: {blocks:#?}");
    for (block, what) in blocks.iter().zip(steps) {
        assert!(block.contains(what), "expected a block with `{what}`, got:\n{block}");
    }

    let work: PathBuf = std::env::temp_dir().join(format!("roomcast-readme-{}-{}", std::process::id(), rand_suffix()));
    let dir = work.join("demo");
    std::fs::create_dir_all(&work).unwrap();
    let api_port = free_tcp_port();
    let env = [
        ("D", dir.display().to_string()),
        ("API", format!("127.0.0.1:{api_port}")),
        ("MEDIA", format!("127.0.0.1:{}", free_udp_port())),
        ("RELAY", format!("127.0.0.1:{}", free_udp_port())),
        ("FWD", format!("127.0.0.1:{}", free_udp_port())),
    ];
    let mut shell = Shell::start(&work, &env);

    // 1. Start: the service and both rooms are running and have joined.
    let t = Instant::now();
    let out = shell.run(1, &blocks[0], Duration::from_secs(90));
    eprintln!("start block: {:.1} s\n{out}", t.elapsed().as_secs_f64());
    for name in ["server", "Blue", "Green"] {
        let pid = read_pid(&dir, name);
        assert!(alive(pid), "{name} (pid {pid}) is not running after the start block; its log:\n{}", {
            log(&dir, &format!("{name}.log"))
        });
    }

    // 2. The roster lists both rooms.
    let out = shell.run(2, &blocks[1], Duration::from_secs(20));
    let json = out.lines().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no JSON roster in:\n{out}"));
    let roster: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("roster is not JSON ({e}): {json}"));
    let mut rooms: Vec<&str> =
        roster["participants"].as_array().expect("participants").iter().filter_map(|p| p["room"].as_str()).collect();
    rooms.sort_unstable();
    assert_eq!(rooms, ["Blue", "Green"], "{json}");
    let blue = roster["participants"].as_array().unwrap().iter().find(|p| p["room"] == "Blue").unwrap();
    let blue_channel = format!("{}:{}", blue["groups"]["ipv4"].as_str().unwrap(), blue["ports"]["audio"]);

    // 2b. The control API's indented roster (its own recipe), against this service.
    if require_tool("python3").is_some() {
        let pretty = recipe_blocks(&readme, "roster-pretty");
        assert_eq!(pretty.len(), 1, "the roster-pretty recipe changed: {pretty:#?}");
        assert!(pretty[0].contains("python3 -m json.tool"), "{}", pretty[0]);
        let out = shell.run(20, &pretty[0], Duration::from_secs(20));
        let indented: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"));
        assert!(out.lines().count() > 10, "not indented:\n{out}");
        let ids = |r: &Value| -> Vec<String> {
            let mut ids: Vec<String> =
                r["participants"].as_array().expect("participants").iter().map(|p| p["id"].to_string()).collect();
            ids.sort_unstable();
            ids
        };
        assert_eq!(ids(&indented), ids(&roster), "the indented roster is not this meeting's:\n{out}");
    }

    // 3. Listen: Blue's audio through the gateway, recorded by ffmpeg from the service's SDP.
    let t = Instant::now();
    let out = shell.run(3, &blocks[2], Duration::from_secs(60));
    eprintln!("listen block: {:.1} s\n{out}", t.elapsed().as_secs_f64());
    let gateway = log(&dir, "gateway.log");
    assert!(
        gateway.lines().any(|l| l.contains("room found in the roster") && l.contains(&blue_channel)),
        "the gateway did not join Blue's channel {blue_channel}:\n{gateway}"
    );
    let sdp = std::fs::read_to_string(dir.join("Blue.sdp")).expect("Blue.sdp");
    assert!(sdp.contains("s=Blue ") && sdp.contains("m=audio "), "not Blue's audio SDP:\n{sdp}");
    assert!(!out.to_lowercase().contains("error"), "ffmpeg reported errors:\n{out}");
    let (seconds, peak) = wav_stats(&dir.join("Blue.wav"));
    eprintln!("Blue.wav: {seconds:.2} s, peak {peak}");
    assert!((4.5..=5.5).contains(&seconds), "expected ~5 s of audio, got {seconds:.2} s");
    assert!(peak > 1000, "the recorded audio is silent (peak {peak})");

    // 4. Stop: nothing left running, both rooms left, the port is free.
    let pids: Vec<u32> = ["server", "Blue", "Green", "gateway"].iter().map(|n| read_pid(&dir, n)).collect();
    let t = Instant::now();
    let out = shell.run(4, &blocks[3], Duration::from_secs(30));
    eprintln!("stop block: {:.1} s\n{out}", t.elapsed().as_secs_f64());
    let left = live_in_group(shell.pgid(), shell.child.id());
    assert!(left.is_empty(), "still running after the stop block: {left:?}");
    for pid in pids {
        assert!(!alive(pid), "pid {pid} is still running after the stop block");
    }
    let server = log(&dir, "server.log");
    for room in ["Blue", "Green"] {
        assert!(
            server.lines().any(|l| l.contains(" left") && l.contains(&format!("room={room}"))),
            "the service did not log {room} leaving:\n{server}"
        );
    }
    // Normal events (joins, leaves after an RTCP BYE) are no warnings; the one warning is that
    // the recipe's control API is plain HTTP on loopback, said once at start.
    let plain = |l: &&str| l.contains("control API in plain HTTP (loopback only)");
    assert_eq!(server.lines().filter(plain).count(), 1, "one plain-HTTP warning at start:\n{server}");
    let warnings: Vec<&str> =
        server.lines().filter(|l| (l.contains(" WARN ") || l.contains(" ERROR ")) && !plain(l)).collect();
    assert!(warnings.is_empty(), "the service warned during a normal meeting: {warnings:#?}");
    assert!(!server.contains("demo-token"), "the token is in the service's log");
    assert!(std::net::TcpListener::bind(("127.0.0.1", api_port)).is_ok(), "the control port is still taken");
    shell.send("exit\n");
    drop(shell);
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn amt_loopback_recipe_runs_as_written() {
    let (Some(_), Some(_)) = (require_tool("bash"), require_tool("ffmpeg")) else {
        return;
    };
    let readme = std::fs::read_to_string(README).expect("reading README.md");
    let blocks = recipe_blocks(&readme, "amt-loopback");
    // The checks below follow the recipe's three steps; a reshaped recipe must reshape them.
    let steps = ["roomcast relay", "# player:", "stop "];
    assert_eq!(blocks.len(), steps.len(), "the recipe's ```sh blocks changed: {blocks:#?}");
    for (block, what) in blocks.iter().zip(steps) {
        assert!(block.contains(what), "expected a block with `{what}`, got:\n{block}");
    }

    let work: PathBuf =
        std::env::temp_dir().join(format!("roomcast-readme-amt-{}-{}", std::process::id(), rand_suffix()));
    let dir = work.join("amt");
    std::fs::create_dir_all(&work).unwrap();
    let amt_port = free_udp_port();
    let env = [
        ("DIR", dir.display().to_string()),
        ("AMT", format!("127.0.0.1:{amt_port}")),
        ("INJECT", format!("127.0.0.1:{}", free_udp_port())),
        ("PLAY", format!("127.0.0.1:{}", free_udp_port())),
    ];
    let mut shell = Shell::start(&work, &env);

    // 1. Start: relay, source and gateway run; the tunnel is up and the relay has the channel joined.
    let t = Instant::now();
    let out = shell.run(1, &blocks[0], Duration::from_secs(30));
    eprintln!("start block: {:.1} s\n{out}", t.elapsed().as_secs_f64());
    for name in ["relay", "source", "gateway"] {
        let pid = read_pid(&dir, name);
        assert!(alive(pid), "{name} (pid {pid}) is not running after the start block; its log:\n{}", {
            log(&dir, &format!("{name}.log"))
        });
    }
    assert!(out.contains("state=Joined"), "the start block did not show the tunnel up:\n{out}");
    let gateway = log(&dir, "gateway.log");
    let sg = gateway
        .lines()
        .find_map(|l| l.split_once(" joined sg=").map(|(_, sg)| sg.trim().to_string()))
        .unwrap_or_else(|| panic!("the gateway joined no channel:\n{gateway}"));
    // The relay logs the first join when the gateway's membership report arrives: shortly after.
    let relay_joined =
        |relay: &str| relay.lines().any(|l| l.contains("first tunnel joined") && l.ends_with(&format!("sg={sg}")));
    let until = Instant::now() + Duration::from_secs(5);
    while !relay_joined(&log(&dir, "relay.log")) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        relay_joined(&log(&dir, "relay.log")),
        "the relay has no tunnel joined to {sg}:\n{}",
        log(&dir, "relay.log")
    );

    // 2. Play: the player line, decoded headless, gives seconds of changing video and audio.
    let decoded = work.join("player.framecrc");
    let (play, players) = headless_players(&blocks[1], &decoded);
    assert_eq!(players, 1, "expected one `# player:` line in:\n{}", blocks[1]);
    let t = Instant::now();
    let out = shell.run(2, &play, Duration::from_secs(30));
    eprintln!("player block (headless): {:.1} s\n{play}", t.elapsed().as_secs_f64());
    assert!(out.trim().is_empty(), "the decoder reported errors (ffmpeg -v error):\n{out}");
    let streams = framecrc_streams(&decoded);
    for kind in ["video", "audio"] {
        let s = streams
            .iter()
            .find(|s| s.media_type == kind)
            .unwrap_or_else(|| panic!("no {kind} stream decoded: {streams:#?}"));
        eprintln!("{kind}: {} frames ({} distinct) over {:.2} s", s.frames, s.distinct, s.seconds);
        let want = f64::from(PLAYER_SECONDS);
        assert!(
            (want - 1.0..=want + 0.5).contains(&s.seconds),
            "{kind}: {:.2} s decoded, expected ~{want} s",
            s.seconds
        );
        // A test picture with a running counter and a tone: frames differ from each other.
        assert!(s.frames >= 20 && s.distinct * 10 >= s.frames * 9, "{kind}: frames do not change: {s:?}");
    }

    // 3. Stop: nothing left; the gateway forwarded without errors and tore down; the port is free.
    let pids: Vec<u32> = ["relay", "source", "gateway"].iter().map(|n| read_pid(&dir, n)).collect();
    let t = Instant::now();
    let out = shell.run(3, &blocks[2], Duration::from_secs(20));
    eprintln!("stop block: {:.1} s\n{out}", t.elapsed().as_secs_f64());
    let left = live_in_group(shell.pgid(), shell.child.id());
    assert!(left.is_empty(), "still running after the stop block: {left:?}");
    for pid in pids {
        assert!(!alive(pid), "pid {pid} is still running after the stop block");
    }
    let gateway = log(&dir, "gateway.log");
    let forwarded = gateway
        .lines()
        .find_map(|l| {
            l.split_once("tearing down forwarded=").and_then(|(_, r)| r.split_whitespace().next()?.parse::<u64>().ok())
        })
        .unwrap_or_else(|| panic!("the gateway did not log its teardown:\n{gateway}"));
    assert!(forwarded > 100, "the gateway forwarded only {forwarded} datagrams:\n{gateway}");
    assert!(gateway.contains(" errors=0 "), "the gateway had forwarding errors:\n{gateway}");
    let relay = log(&dir, "relay.log");
    assert!(
        relay.lines().any(|l| l.contains("last tunnel left") && l.ends_with(&format!("sg={sg}"))),
        "the relay did not see the gateway leave {sg}:\n{relay}"
    );
    let warnings: Vec<&str> =
        relay.lines().chain(gateway.lines()).filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).collect();
    assert!(warnings.is_empty(), "relay or gateway warned: {warnings:#?}");
    assert!(std::net::UdpSocket::bind(("127.0.0.1", amt_port)).is_ok(), "the relay's port is still taken");
    shell.send("exit\n");
    drop(shell);
    let _ = std::fs::remove_dir_all(&work);
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}
