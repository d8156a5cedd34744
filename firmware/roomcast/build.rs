//! Build script: the git commit (`git rev-parse --short HEAD`) for `roomcast --version`, as
//! `ROOMCAST_COMMIT`; "unknown" outside a git checkout or without git. Reruns when HEAD or a
//! ref moves (also in a `git worktree`, whose HEAD and refs live in different directories).

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=ROOMCAST_COMMIT={commit}");
    let dir = |arg: &str| git(&["rev-parse", "--path-format=absolute", arg]).map(PathBuf::from);
    if let (Some(git_dir), Some(common)) = (dir("--git-dir"), dir("--git-common-dir")) {
        let paths = [git_dir.join("HEAD"), common.join("refs"), common.join("packed-refs")];
        for path in paths.iter().filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
