//! The manifest written beside each image (`roomcast-<board>.img.manifest.toml`): what the image is
//! made of — every Debian package with its pinned version and sha256, the daemon's sha256 and the
//! git commit it was built from, SOURCE_DATE_EPOCH, the boot partition's files — and the image's own
//! size and sha256. A package given as a file (`--kernel-deb`) is listed with its file name. Two builds from the same inputs give the same manifest and image.

use crate::lockfile::Pin;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize)]
pub struct Manifest {
    pub image: ImageInfo,
    pub daemon: FileInfo,
    /// Boot partition file -> sha256.
    pub boot_files: BTreeMap<String, String>,
    #[serde(rename = "package")]
    pub packages: Vec<Package>,
}

/// One package of the image: pinned in packages.lock, or given as a file (`--kernel-deb`).
#[derive(Clone, Debug, Serialize)]
pub struct Package {
    #[serde(flatten)]
    pub pin: Pin,
    /// The .deb's file name when it was given as a file instead of taken from the archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

#[derive(Serialize)]
pub struct ImageInfo {
    pub file: String,
    pub board: String,
    pub size_bytes: u64,
    pub sha256: String,
    pub source_date_epoch: u64,
    pub git_commit: String,
    pub kernel_release: String,
    pub root_squashfs_bytes: u64,
}

#[derive(Serialize)]
pub struct FileInfo {
    pub path: String,
    pub size_bytes: u64,
    pub sha256: String,
}

impl Manifest {
    pub fn to_toml(&self) -> String {
        format!(
            "# What roomcast-{}.img is made of. Written by `cargo image build`.\n\n{}",
            self.image.board,
            toml::to_string(self).unwrap_or_default()
        )
    }
}
