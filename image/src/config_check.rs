//! The roomcast.toml an image gets is checked exactly as the box (and `roomcast check-config`)
//! reads it, with the board's defaults, before it goes onto a boot partition: `cargo image build
//! --config` and `cargo image set-config` refuse a file the box would refuse, naming each key and
//! line, unless `--force`.

use crate::board::Board;
use crate::error::{Error, IoContext, Result};
use roomcast_meeting::config::{text, BoardDefaults, Config};
use std::path::Path;

/// Checks `path` as a roomcast.toml for `board` (the built-in defaults when None).
pub fn validate(path: &Path, board: Option<&Board>) -> Result<()> {
    let bytes = std::fs::read(path).with_context_io(|| format!("reading {}", path.display()))?;
    let invalid = |problems: Vec<String>| Error::InvalidConfig { file: path.display().to_string(), problems };
    // The box's own reading: UTF-16, binary and other encodings named as such, with what to do.
    let text = text::decode(&bytes).map_err(|e| invalid(vec![e.to_string()]))?;
    let defaults = match board {
        Some(b) => BoardDefaults::parse(&b.runtime_toml()).0,
        None => BoardDefaults::default(),
    };
    Config::parse(text, &defaults).map(|_| ()).map_err(|errors| invalid(errors.iter().map(|e| e.to_string()).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, bytes: &[u8]) -> Result<()> {
        let dir = std::env::temp_dir().join(format!("rc-cfgcheck-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("roomcast.toml");
        std::fs::write(&path, bytes).unwrap();
        let r = validate(&path, None);
        std::fs::remove_dir_all(&dir).unwrap();
        r
    }

    #[test]
    fn the_demo_config_passes() {
        let repo = crate::paths::repo_root();
        validate(&repo.join("config/roomcast.toml"), None).unwrap();
        validate(&repo.join("config/roomcast.example.toml"), None).unwrap();
    }

    #[test]
    fn binary_and_utf16_files_are_named_as_such() {
        let e = check("bin", &[0x7f, b'E', b'L', b'F', 0, 0, 0xff, 0x90]).unwrap_err().to_string();
        assert!(e.contains("binary") && e.contains("line 1"), "{e}");
        let utf16: Vec<u8> =
            [0xFF, 0xFE].into_iter().chain("[room]\n".encode_utf16().flat_map(u16::to_le_bytes)).collect();
        let e = check("utf16", &utf16).unwrap_err().to_string();
        assert!(e.contains("UTF-16") && e.contains("save it as UTF-8"), "{e}");
    }

    #[test]
    fn a_bad_value_is_refused_with_its_key_and_line() {
        let e = check("bad", b"[room]\nname = \"x\"\n\n[video]\nbitrate_kbps = \"lots\"\n").unwrap_err().to_string();
        assert!(e.contains("line 5") && e.contains("video.bitrate_kbps"), "{e}");
    }
}
