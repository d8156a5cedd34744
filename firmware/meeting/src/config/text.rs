//! From a file's bytes to TOML, for a newcomer: a file that is not UTF-8 text (UTF-16 from
//! Notepad, a binary, Latin-1) is named as such with what to do, and the TOML syntax errors
//! people make by hand (an unclosed string, an unquoted value, a backslash path) get a message
//! saying how to fix them, on the line where the mistake is. Shared by `Config::load`,
//! `roomcast check-config` and `cargo image set-config`.

use super::check::{line_of, ConfigError};

/// The bytes of a roomcast.toml as text (UTF-8; a leading byte-order mark is allowed), or
/// one [`ConfigError`] (empty key) saying what the file is instead and what to do.
pub fn decode(bytes: &[u8]) -> Result<&str, ConfigError> {
    let file_error = |offset: usize, message: &str| {
        let line = bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
        Err(ConfigError { key: String::new(), line, message: message.to_string() })
    };
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) || looks_like_utf16(bytes) {
        return file_error(0, "the file is UTF-16 text (\"Unicode\" in Notepad): save it as UTF-8");
    }
    if let Some(nul) = bytes.iter().position(|&b| b == 0) {
        return file_error(nul, "the file is binary, not text: give the roomcast.toml text file (UTF-8)");
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(e) => {
            let at = e.valid_up_to();
            file_error(
                at,
                &format!("the file is not UTF-8 text (byte 0x{:02X} on this line): save it as UTF-8", bytes[at]),
            )
        }
    }
}

/// UTF-16 without a byte-order mark: ASCII text with a zero byte beside every character.
fn looks_like_utf16(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(512) & !1];
    if head.len() < 4 {
        return false;
    }
    let zeros = |parity: usize| head.iter().skip(parity).step_by(2).filter(|&&b| b == 0).count();
    let (even, odd) = (zeros(0), zeros(1));
    let half = head.len() / 2;
    (even == 0 && odd * 10 >= half * 8) || (odd == 0 && even * 10 >= half * 8)
}

/// A TOML syntax error as [`ConfigError`] (key `toml`): toml_edit's message, or for the
/// mistakes made by hand, what to do, on the line where the mistake is (`offset`: the byte
/// toml_edit points at).
pub fn syntax_error(src: &str, message: &str, offset: Option<usize>) -> ConfigError {
    let Some(offset) = offset.map(|o| o.min(src.len())) else {
        return ConfigError { key: "toml".into(), line: 0, message: message.to_string() };
    };
    let mut line = line_of(src, offset);
    let text = src.lines().nth(line - 1).unwrap_or("");
    let message = if message.starts_with("invalid multi-line basic string")
        || message.starts_with("invalid multi-line literal string")
    {
        let quotes = if message.contains("basic") { "\"\"\"" } else { "'''" };
        if let Some(open) = src[..offset].rfind(quotes) {
            line = line_of(src, open);
        }
        format!("unclosed string: the {quotes} on this line is never closed; end the text with {quotes}")
    } else if message.starts_with("invalid basic string") {
        "unclosed string: end it with \" on this line (for text over several lines use \"\"\"...\"\"\")".into()
    } else if message.starts_with("invalid literal string") {
        "unclosed string: end it with ' on this line".into()
    } else if message.starts_with("string values must be quoted") {
        let value = |v: &str| v.split('#').next().unwrap_or("").trim().to_string();
        match text.split_once('=') {
            Some((k, v)) if value(v).is_empty() => format!("no value after =: give {} a value", k.trim()),
            Some((k, v)) => format!("text must be in quotes: write {} = \"{}\"", k.trim(), value(v)),
            None => "text must be in quotes, e.g. name = \"Blue room\"".into(),
        }
    } else if message.starts_with("unclosed table") {
        "unclosed section header: end it with ], e.g. [room]".into()
    } else if message.starts_with("duplicate key") {
        match text.trim().split_once('=') {
            _ if text.trim_start().starts_with('[') => {
                format!("{} appears twice: put its settings under the first one", text.trim())
            }
            Some((k, _)) => format!("{} is set twice in this section: keep one", k.trim()),
            None => "set twice: keep one".into(),
        }
    } else if message.starts_with("unexpected key or value") {
        "one key = value per line: remove what follows the value, or start a comment with #".into()
    } else if message.starts_with("key with no value") {
        "expected key = value: write = between the key and its value, e.g. name = \"Blue room\"".into()
    } else if message.contains("unicode") || message.contains("escape") {
        "a \\ in \"...\" starts an escape: write \\\\ for a backslash, or use '...' (no escapes)".into()
    } else {
        message.to_string()
    };
    ConfigError { key: "toml".into(), line, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(s: &str, bom: bool) -> Vec<u8> {
        let bom = if bom { &[0xFF, 0xFE][..] } else { &[] };
        bom.iter().copied().chain(s.encode_utf16().flat_map(u16::to_le_bytes)).collect()
    }

    #[test]
    fn encodings_are_named_with_what_to_do() {
        assert_eq!(decode(b"[room]\n"), Ok("[room]\n"));
        for bytes in [utf16le("[room]\nname = \"x\"\n", true), utf16le("[room]\nname = \"x\"\n", false)] {
            let e = decode(&bytes).unwrap_err();
            assert!(e.message.contains("UTF-16") && e.message.contains("save it as UTF-8"), "{e}");
        }
        let e = decode(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0xff]).unwrap_err();
        assert!(e.message.contains("binary"), "{e}");
        let e = decode(b"[room]\nname = \"Caf\xe9\"\n").unwrap_err();
        assert_eq!(e.to_string(), "line 2: the file is not UTF-8 text (byte 0xE9 on this line): save it as UTF-8");
    }

    #[test]
    fn an_unclosed_multi_line_string_is_reported_where_it_opens() {
        let src = "[room]\nname = \"\"\"x\n\n[video]\nwidth = 320\n";
        let e = syntax_error(src, "invalid multi-line basic string, expected `\"`", Some(src.len()));
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("never closed"), "{e}");
    }
}
