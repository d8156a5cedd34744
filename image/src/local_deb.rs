//! Packages given as .deb files instead of being taken from the archive: `--kernel-deb FILE` and a
//! board profile's `[kernel.source] debs` (e.g. Raspberry Pi's linux-image-rpi-v8 and its firmware,
//! downloaded by hand). Each file is read with `dpkg-deb` for its name, version and architecture
//! and hashed, so the manifest lists it like any pinned package; it never goes into packages.lock.

use crate::apt;
use crate::error::{Error, ErrorContext, Result};
use crate::exec;
use crate::lockfile::Pin;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A .deb given as a file.
#[derive(Clone, Debug)]
pub struct LocalDeb {
    /// Its control fields and sha256, as a pin.
    pub pin: Pin,
    pub path: PathBuf,
}

impl LocalDeb {
    /// Reads a .deb's control fields (Package, Version, Architecture) and its sha256.
    pub fn read(path: &Path) -> Result<LocalDeb> {
        let fields = exec::run(Command::new("dpkg-deb").args(["--field"]).arg(path).args([
            "Package",
            "Version",
            "Architecture",
        ]))
        .with_context(|| format!("{} is not a readable .deb", path.display()))?;
        let pin = parse_fields(&fields, &apt::sha256_file(path)?).ok_or_else(|| Error::Package {
            package: path.display().to_string(),
            problem: "its control file lacks Package, Version or Architecture".into(),
        })?;
        if pin.arch != "arm64" && pin.arch != "all" {
            return Err(Error::Package {
                package: path.display().to_string(),
                problem: format!("is for {}, the images are arm64", pin.arch),
            });
        }
        Ok(LocalDeb { pin, path: path.to_path_buf() })
    }

    /// The file's name, as the manifest records it.
    pub fn file_name(&self) -> String {
        self.path.file_name().unwrap_or_default().to_string_lossy().into_owned()
    }
}

/// A pin from `dpkg-deb --field` output ("Package: x" lines) and the file's sha256.
pub fn parse_fields(text: &str, sha256: &str) -> Option<Pin> {
    let field = |key: &str| {
        text.lines().find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':'))).map(|v| v.trim().to_string())
    };
    Some(Pin {
        name: field("Package").filter(|v| !v.is_empty())?,
        via: None,
        version: field("Version").filter(|v| !v.is_empty())?,
        arch: field("Architecture").filter(|v| !v.is_empty())?,
        sha256: sha256.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_fields_make_a_pin() {
        let p = parse_fields("Package: linux-image-6.1.0-56-arm64\nVersion: 6.1.192-2\nArchitecture: arm64\n", "ab")
            .unwrap();
        assert_eq!(
            (p.name.as_str(), p.version.as_str(), p.arch.as_str(), p.sha256.as_str()),
            ("linux-image-6.1.0-56-arm64", "6.1.192-2", "arm64", "ab")
        );
        assert!(parse_fields("Package: x\nArchitecture: arm64\n", "ab").is_none());
        assert!(parse_fields("Package:\nVersion: 1\nArchitecture: arm64\n", "ab").is_none());
    }
}
