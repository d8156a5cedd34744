//! Where the service's meetings and their tokens come from, without putting a token where
//! others can read it: `--meetings FILE` (one `ID TOKEN` per line, `#` comments; the file must
//! not be readable by group or others), `$ROOMCAST_MEETINGS` (the same lines, or entries
//! separated by `;`), and the older `--meeting ID:TOKEN`, which still works but warns: a command
//! line is visible to every user through `ps`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Context;
use roomcast_meeting::service::MeetingSpec;
use roomcast_meeting::token::Token;

/// The environment variable holding meetings.
pub const ENV: &str = "ROOMCAST_MEETINGS";

fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.starts_with('.')
        || id.len() > 64
        || !id.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return Err(format!("meeting id {id:?}: 1 to 64 letters, digits, '-', '_' or '.' (not first)"));
    }
    Ok(())
}

fn check_token(id: &str, token: &str) -> Result<(), String> {
    if token.is_empty() || token.len() > 256 || token.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("the token of meeting {id:?} must be 1 to 256 characters without spaces"));
    }
    Ok(())
}

/// One `ID:TOKEN` of `--meeting` (checked like the others).
pub fn parse_flag(s: &str) -> Result<MeetingSpec, String> {
    let (id, token) = s.split_once(':').ok_or("expected ID:TOKEN")?;
    check_id(id)?;
    check_token(id, token)?;
    Ok(MeetingSpec { id: id.into(), token: Token::new(token) })
}

/// `ID TOKEN` entries, one per line (or separated by `;`); `#` starts a comment. Errors name
/// the line but never show a token.
pub fn parse_list(text: &str, source: &str) -> Result<Vec<MeetingSpec>, String> {
    let mut out = Vec::new();
    for (n, line) in text.split(['\n', ';']).enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(id), Some(token), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!("{source}, entry {}: expected `ID TOKEN`", n + 1));
        };
        check_id(id).and_then(|()| check_token(id, token)).map_err(|e| format!("{source}, entry {}: {e}", n + 1))?;
        out.push(MeetingSpec { id: id.into(), token: Token::new(token) });
    }
    Ok(out)
}

/// Reads `--meetings FILE`, refusing a file that group or others may read.
pub fn read_file(path: &Path) -> anyhow::Result<Vec<MeetingSpec>> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        anyhow::bail!("{} holds tokens but is mode {mode:o}: chmod 600 it", path.display());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_list(&text, &path.display().to_string()).map_err(anyhow::Error::msg)
}

/// All meetings: the file, the environment and the flags, ids unique, at least one.
pub fn gather(file: Option<&Path>, env: Option<String>, flags: &[MeetingSpec]) -> anyhow::Result<Vec<MeetingSpec>> {
    let mut all = Vec::new();
    if let Some(f) = file {
        all.extend(read_file(f)?);
    }
    if let Some(text) = env {
        all.extend(parse_list(&text, &format!("${ENV}")).map_err(anyhow::Error::msg)?);
    }
    if !flags.is_empty() {
        tracing::warn!(
            "--meeting ID:TOKEN shows the token to every user of this machine (ps); use --meetings FILE or ${ENV}"
        );
        all.extend(flags.iter().cloned());
    }
    if all.is_empty() {
        anyhow::bail!("no meeting: give --meetings FILE (lines `ID TOKEN`), ${ENV}, or --meeting ID:TOKEN");
    }
    let mut ids: Vec<&str> = all.iter().map(|m| m.id.as_str()).collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        anyhow::bail!("meeting {:?} is given twice", w[0]);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_errors_hide_tokens() {
        let m = parse_list("# meetings\ndemo  s3cret-one\n\nboard tok2 # the board's\n", "f").unwrap();
        assert_eq!(m.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["demo", "board"]);
        assert_eq!(m[0].token.expose(), "s3cret-one");
        assert_eq!(parse_list("a t1;b t2", "env").unwrap().len(), 2);
        let e = parse_list("demo s3cret extra", "f").unwrap_err();
        assert!(e.contains("entry 1") && !e.contains("s3cret"), "{e}");
        assert!(parse_list("../x tok", "f").is_err());
        assert!(parse_flag("demo:tok").is_ok());
        assert!(parse_flag("demo").is_err());
        assert!(parse_flag("demo:").is_err());
        assert!(format!("{:?}", m[0]).contains("redacted") && !format!("{:?}", m[0]).contains("s3cret"));
    }

    #[test]
    fn a_file_others_can_read_is_refused() {
        let path = std::env::temp_dir().join(format!("roomcast-meetings-{}", std::process::id()));
        std::fs::write(&path, "demo tok\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_file(&path).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let all = gather(Some(&path), Some("other t2".into()), &[]).unwrap();
        assert_eq!(all.len(), 2);
        assert!(gather(Some(&path), Some("demo again".into()), &[]).is_err(), "duplicate id");
        assert!(gather(None, None, &[]).is_err());
        std::fs::remove_file(&path).unwrap();
    }
}
