//! Golden test of what a newcomer reads: `roomcast check-config` (the real binary) on a set of
//! broken roomcast.toml files, the exit code, stdout and stderr compared with
//! `tests/golden/check-config/NAME.txt`. `UPDATE_GOLDEN=1 cargo test -p roomcast --test
//! check_config_golden` rewrites the expected files (review the diff before committing).

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_roomcast");

fn utf16le(s: &str) -> Vec<u8> {
    [0xFF, 0xFE].into_iter().chain(s.encode_utf16().flat_map(u16::to_le_bytes)).collect()
}

const ROOM: &str = "[room]\nname = \"Blue room\"\n\n";

/// (name, file bytes): one mistake each.
fn cases() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("utf16", utf16le(ROOM)),
        ("binary", vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0xff, 0x90]),
        ("latin1", b"[room]\nname = \"Caf\xe9\"\n".to_vec()),
        ("typo-key", format!("{ROOM}[video]\nwdith = 320\n").into_bytes()),
        ("typo-section", format!("{ROOM}[vidoe]\nwidth = 320\n").into_bytes()),
        ("missing-section", b"# a new room\n\n[video]\nwidth = 320\n".to_vec()),
        ("missing-key", format!("{ROOM}[meeting]\nserver = \"10.0.2.2:8470\"\ntoken = \"t\"\n").into_bytes()),
        ("unclosed-string", b"[room]\nname = \"Blue room\n\n[video]\nwidth = 320\n".to_vec()),
        ("unclosed-multi-line-string", b"[room]\nname = \"\"\"Blue\n\n[video]\nwidth = 320\n".to_vec()),
        ("unquoted-string", b"[room]\nname = Blue room\n".to_vec()),
        ("duplicate-key", format!("{ROOM}[video]\nwidth = 320\nwidth = 640\n").into_bytes()),
        ("no-value", b"[room]\nname =\n".to_vec()),
        ("bad-value", format!("{ROOM}[video]\nwidth = \"wide\"\nfps = \"15\"\nbitrate_kbps = 9\n").into_bytes()),
        ("ok-set-up", ROOM.as_bytes().to_vec()),
    ]
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/check-config")
}

/// What `check-config NAME.toml` prints, run in the file's directory so the name is stable.
fn transcript(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let file = format!("{name}.toml");
    std::fs::write(dir.join(&file), bytes).unwrap();
    let out = Command::new(BIN).arg("check-config").arg(&file).current_dir(dir).output().unwrap();
    format!(
        "$ roomcast check-config {file}\nexit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status.code().map_or("signal".to_string(), |c| c.to_string()),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn check_config_output_matches_the_golden_files() {
    let dir = std::env::temp_dir().join(format!("roomcast-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut mismatches = Vec::new();
    for (name, bytes) in cases() {
        let got = transcript(&dir, name, &bytes);
        let path = golden_dir().join(format!("{name}.txt"));
        if update {
            std::fs::create_dir_all(golden_dir()).unwrap();
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
        if got != want {
            mismatches.push(format!("{}:\n--- expected\n{want}--- got\n{got}", path.display()));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        mismatches.is_empty(),
        "check-config output changed (UPDATE_GOLDEN=1 to accept):\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn every_golden_file_has_a_case() {
    let names: Vec<String> = cases().iter().map(|(n, _)| format!("{n}.txt")).collect();
    for entry in std::fs::read_dir(golden_dir()).unwrap() {
        let file = entry.unwrap().file_name().into_string().unwrap();
        assert!(names.contains(&file), "{file}: no case in cases() writes it; delete it");
    }
}
