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

    /// The boards there are: the names of `board/*.toml`, sorted.
    pub fn boards(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.repo.join("board"))
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let path = e.ok()?.path();
                (path.extension()? == "toml").then(|| path.file_stem()?.to_str().map(str::to_owned)).flatten()
            })
            .collect();
        names.sort();
        names
    }

    /// `board` when it is one of [`Paths::boards`]; else the error naming them all.
    pub fn known_board(&self, board: &str) -> std::result::Result<String, String> {
        let boards = self.boards();
        if boards.iter().any(|b| b == board) {
            Ok(board.to_owned())
        } else {
            let names: Vec<&str> = boards.iter().map(String::as_str).collect();
            let hint = roomcast_meeting::config::check::did_you_mean(board, &names)
                .map(|b| format!("; did you mean {b}?"))
                .unwrap_or_default();
            Err(format!("unknown board `{board}`{hint} The boards are {} (board/*.toml)", boards.join(", ")))
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boards_are_the_profiles_in_board_and_an_unknown_one_lists_them() {
        let paths = Paths::new(None);
        let boards = paths.boards();
        assert!(boards.iter().any(|b| b == "qemu-virt") && boards.iter().any(|b| b == "pi4"), "{boards:?}");
        assert!(boards.iter().all(|b| paths.board_profile(b).is_file()), "{boards:?}");
        assert_eq!(paths.known_board("pi4"), Ok("pi4".to_owned()));
        let e = paths.known_board("pi6").unwrap_err();
        assert!(e.contains(&boards.join(", ")) && !e.contains("did you mean"), "{e}");
        let e = paths.known_board("qemu").unwrap_err();
        assert!(e.contains("did you mean qemu-virt?"), "{e}");
    }
}
