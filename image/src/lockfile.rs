//! `image/packages.lock`: the Debian arm64 packages an image is made of, pinned by version and
//! sha256 so that the same inputs give the same image. Committed; updated by
//! `cargo image build --update-lock` (or filled in when a board needs a package not yet pinned).

use crate::error::{Error, IoContext, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One pinned package.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Pin {
    /// The real package name.
    pub name: String,
    /// When `name` was chosen through a metapackage (e.g. linux-image-arm64), that metapackage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    pub version: String,
    pub arch: String,
    /// sha256 of the .deb, as in the archive's Packages index.
    pub sha256: String,
}

/// The whole lock file.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Lock {
    #[serde(default, rename = "package")]
    pub packages: Vec<Pin>,
}

impl Lock {
    /// Reads the lock file; a missing file is an empty lock.
    pub fn load(path: &Path) -> Result<Lock> {
        if !path.exists() {
            return Ok(Lock::default());
        }
        let text = std::fs::read_to_string(path).with_context_io(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).map_err(|source| Error::Toml { what: format!("parsing {}", path.display()), source })
    }

    /// Writes the lock file, sorted by name.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut sorted = self.clone();
        sorted.packages.sort_by(|a, b| a.name.cmp(&b.name));
        let text = format!(
            "# Debian arm64 packages of the roomcast images, pinned (version + sha256 of the .deb).\n\
             # Written by the image builder; refresh with `cargo image build --board NAME --update-lock`.\n\n{}",
            toml::to_string(&sorted)
                .map_err(|source| Error::TomlWrite { what: format!("serializing {}", path.display()), source })?
        );
        std::fs::write(path, text).with_context_io(|| format!("writing {}", path.display()))
    }

    /// The pin for `name` (a real package or the metapackage it was chosen through).
    pub fn get(&self, name: &str) -> Option<&Pin> {
        self.packages
            .iter()
            .find(|p| p.name == name)
            .or_else(|| self.packages.iter().find(|p| p.via.as_deref() == Some(name)))
    }

    /// Adds or replaces the pin of a package.
    pub fn put(&mut self, pin: Pin) {
        self.packages.retain(|p| p.name != pin.name && (pin.via.is_none() || p.via != pin.via));
        self.packages.push(pin);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(name: &str, via: Option<&str>, version: &str) -> Pin {
        Pin {
            name: name.into(),
            via: via.map(Into::into),
            version: version.into(),
            arch: "arm64".into(),
            sha256: "00".repeat(32),
        }
    }

    #[test]
    fn round_trips_and_finds_through_metapackage() {
        let dir = std::env::temp_dir().join(format!("rc-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("packages.lock");
        let mut lock = Lock::default();
        lock.put(pin("libc6", None, "2.36-9"));
        lock.put(pin("linux-image-6.1.0-1-arm64", Some("linux-image-arm64"), "6.1.1-1"));
        lock.save(&path).unwrap();
        let back = Lock::load(&path).unwrap();
        assert_eq!(back.get("linux-image-arm64").unwrap().name, "linux-image-6.1.0-1-arm64");
        assert_eq!(back.get("libc6").unwrap().version, "2.36-9");
        assert!(back.get("libasound2").is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_new_kernel_replaces_the_old_pin_of_its_metapackage() {
        let mut lock = Lock::default();
        lock.put(pin("linux-image-6.1.0-1-arm64", Some("linux-image-arm64"), "6.1.1-1"));
        lock.put(pin("linux-image-6.1.0-2-arm64", Some("linux-image-arm64"), "6.1.2-1"));
        assert_eq!(lock.packages.len(), 1);
        assert_eq!(lock.get("linux-image-arm64").unwrap().version, "6.1.2-1");
    }
}
