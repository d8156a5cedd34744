//! Which shared libraries a binary needs: the ELF NEEDED entries (read with the cross binutils'
//! readelf), resolved recursively in the sysroot, like `ldd` does on the target.

use crate::error::{Error, Result};
use crate::exec;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The NEEDED sonames and the program interpreter of one ELF file.
#[derive(Debug, Default, PartialEq)]
pub struct Dynamic {
    pub needed: Vec<String>,
    pub interpreter: Option<String>,
}

/// Reads the dynamic section and program headers of `file`.
pub fn dynamic(file: &Path) -> Result<Dynamic> {
    let text = exec::run(Command::new("aarch64-linux-gnu-readelf").args(["-d", "-l", "-W"]).arg(file))?;
    Ok(parse_readelf(&text))
}

/// Parses `readelf -d -l` output.
pub fn parse_readelf(text: &str) -> Dynamic {
    let mut d = Dynamic::default();
    for line in text.lines() {
        if line.contains("(NEEDED)") {
            if let Some(name) = between(line, "[", "]") {
                d.needed.push(name.to_string());
            }
        } else if let Some(rest) = line.split("Requesting program interpreter:").nth(1) {
            d.interpreter = between(rest, "", "]").map(|s| s.trim().to_string());
        }
    }
    d
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = s.find(open)? + open.len();
    let end = s[start..].find(close)? + start;
    Some(&s[start..end])
}

/// Every library `binary` needs, transitively: soname -> file in the sysroot. Also the interpreter.
pub fn closure(binary: &Path, lib_dirs: &[PathBuf]) -> Result<(BTreeMap<String, PathBuf>, Option<String>)> {
    let top = dynamic(binary)?;
    let mut found = BTreeMap::new();
    let mut todo = top.needed.clone();
    while let Some(soname) = todo.pop() {
        if found.contains_key(&soname) {
            continue;
        }
        let Some(path) = lib_dirs.iter().map(|d| d.join(&soname)).find(|p| p.exists()) else {
            return Err(Error::Sysroot(format!("{} needs {soname}, which is not in the sysroot", binary.display())));
        };
        todo.extend(dynamic(&path)?.needed);
        found.insert(soname, path);
    }
    Ok((found, top.interpreter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_needed_and_interpreter() {
        let text = "  [Requesting program interpreter: /lib/ld-linux-aarch64.so.1]\n\
                    0x0000000000000001 (NEEDED)             Shared library: [libasound.so.2]\n\
                    0x0000000000000001 (NEEDED)             Shared library: [libc.so.6]\n";
        let d = parse_readelf(text);
        assert_eq!(d.needed, vec!["libasound.so.2", "libc.so.6"]);
        assert_eq!(d.interpreter.as_deref(), Some("/lib/ld-linux-aarch64.so.1"));
        assert_eq!(parse_readelf("garbage [ without close"), Dynamic::default());
    }
}
