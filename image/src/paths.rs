//! Where the builder finds its inputs (the repository) and puts its outputs and caches.
//!
//! - `image/packages.lock` (committed): pinned Debian package versions and sha256.
//! - `image/cache/` (gitignored): private apt state and downloaded .deb files, kept across `cargo clean`.
//! - `target/image/` (gitignored): sysroot, cross-build target dir, staging trees and the images.

use std::path::PathBuf;

/// The layout of one build.
#[derive(Clone, Debug)]
pub struct Paths {
    /// The repository root (the cargo workspace).
    pub repo: PathBuf,
    /// Private apt configuration, lists and downloaded packages.
    pub cache: PathBuf,
    /// Intermediate trees (sysroot, staging, cross target dir).
    pub work: PathBuf,
    /// Where the finished image and its manifest go.
    pub out: PathBuf,
}

impl Paths {
    /// The default layout, relative to the repository this builder was compiled from.
    pub fn new(out: Option<PathBuf>) -> Paths {
        let repo = repo_root();
        let work = repo.join("target").join("image");
        Paths { cache: repo.join("image").join("cache"), out: out.unwrap_or_else(|| work.clone()), work, repo }
    }

    /// The committed package pins.
    pub fn lockfile(&self) -> PathBuf {
        self.repo.join("image").join("packages.lock")
    }

    /// A board profile.
    pub fn board_profile(&self, name: &str) -> PathBuf {
        self.repo.join("board").join(format!("{name}.toml"))
    }

    /// The image file of a board.
    pub fn image(&self, board: &str) -> PathBuf {
        self.out.join(format!("roomcast-{board}.img"))
    }
}

/// The workspace root: `image/..`, fixed when the builder is compiled.
pub fn repo_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().map(PathBuf::from).unwrap_or(manifest_dir)
}
