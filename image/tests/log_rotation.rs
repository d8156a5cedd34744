//! Host-side test of the box's log rotation (`image/rootfs/etc/init.d/rotate-log`, which the init's
//! `roomcast` script pipes the daemon's output through): run with the host's POSIX `sh` on a burst
//! of log lines, the log and its rotated files stay within `(KEEP + 1) x MAX` (plus one line),
//! the oldest lines are dropped, and no line is lost or reordered inside what is kept.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn run_rotate(dir: &Path, max: usize, keep: usize, lines: &[String]) {
    let script = roomcast_image::paths::repo_root().join("image/rootfs/etc/init.d/rotate-log");
    let mut child = Command::new("sh")
        .arg(&script)
        .arg(dir.join("roomcast.log"))
        .arg(max.to_string())
        .arg(keep.to_string())
        .stdin(Stdio::piped())
        .spawn()
        .expect("sh rotate-log");
    {
        let mut stdin = child.stdin.take().unwrap();
        for l in lines {
            writeln!(stdin, "{l}").unwrap();
        }
    }
    assert!(child.wait().unwrap().success(), "rotate-log exits 0 at the end of its input");
}

#[test]
fn the_daemon_log_is_rotated_by_size_and_bounded() {
    let dir = roomcast_image::paths::repo_root().join("target/image/log-rotation-test");
    roomcast_image::exec::fresh_dir(&dir).unwrap();
    let (max, keep) = (8 * 1024, 3);
    // 2000 lines of ~80 bytes (160 kB): twenty times the size of one file.
    let lines: Vec<String> =
        (0..2000).map(|i| format!("2026-12-01T08:00:00Z INFO roomcast: line {i:05} {}", "x".repeat(40))).collect();
    let longest = lines.iter().map(|l| l.len() + 1).max().unwrap();
    run_rotate(&dir, max, keep, &lines[..1000]);
    // A restarted daemon appends to the same log, counting what is already there.
    run_rotate(&dir, max, keep, &lines[1000..]);

    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["roomcast.log", "roomcast.log.1", "roomcast.log.2", "roomcast.log.3"], "KEEP older files");
    let mut kept = Vec::new();
    let mut total = 0;
    for name in ["roomcast.log.3", "roomcast.log.2", "roomcast.log.1", "roomcast.log"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(text.len() <= max + longest, "{name} is {} bytes, more than {max} + one line", text.len());
        if name != "roomcast.log" {
            assert!(text.len() >= max, "{name} was rotated only when full: {} bytes", text.len());
        }
        total += text.len();
        kept.extend(text.lines().map(str::to_owned));
    }
    assert!(total <= (keep + 1) * (max + longest), "all logs together: {total} bytes");
    // What is kept is the newest lines, in order, none missing.
    let first = lines.len() - kept.len();
    assert!(first > 0, "old lines were dropped");
    assert_eq!(kept, lines[first..], "the kept lines are the last {} written, in order", kept.len());
}
