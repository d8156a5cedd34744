//! Cross-compiling the daemon (`cargo build -p roomcast --release --target aarch64-unknown-linux-gnu`)
//! against the arm64 sysroot made from the same Debian packages that go into the image: the linker,
//! pkg-config, bindgen and C builds (cc/cmake crates) all look into the sysroot.

use crate::error::Result;
use crate::exec;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Rust target of every board.
pub const TARGET: &str = "aarch64-unknown-linux-gnu";
/// The GNU triplet of the cross toolchain.
pub const TRIPLET: &str = "aarch64-linux-gnu";

/// Builds the daemon; returns the path of the binary.
pub fn build_daemon(repo: &Path, sysroot: &Path, target_dir: &Path) -> Result<PathBuf> {
    let s = sysroot.display();
    let home = std::env::var("CARGO_HOME")
        .or_else(|_| std::env::var("HOME").map(|h| format!("{h}/.cargo")))
        .unwrap_or_default();
    // Reproducible paths in the binary (panic messages, debug line tables).
    let remap = format!("--remap-path-prefix={}=/roomcast --remap-path-prefix={home}=/cargo", repo.display());
    let rustflags = format!("-C link-arg=--sysroot={s} {remap}");
    let cflags = format!("--sysroot={s} -isystem {s}/usr/include/{TRIPLET} -isystem {s}/usr/include");
    let target_env = TARGET.replace('-', "_");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(repo)
        .args(["build", "--release", "-p", "roomcast", "--target", TARGET])
        .env("CARGO_TARGET_DIR", target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        // Set when the builder runs from a test (cargo test): ring's build script reruns on a
        // change of it, so a build from `cargo run` and one from a test would rebuild each other.
        .env_remove("CARGO_MANIFEST_DIR")
        .env_remove("CARGO_MANIFEST_PATH")
        .env(format!("CARGO_TARGET_{}_RUSTFLAGS", target_env.to_uppercase()), rustflags)
        .env(format!("CARGO_TARGET_{}_LINKER", target_env.to_uppercase()), format!("{TRIPLET}-gcc"))
        .env(format!("CC_{target_env}"), format!("{TRIPLET}-gcc"))
        .env(format!("AR_{target_env}"), format!("{TRIPLET}-ar"))
        .env(format!("CFLAGS_{target_env}"), &cflags)
        .env("PKG_CONFIG_ALLOW_CROSS", "1")
        .env("PKG_CONFIG_LIBDIR", format!("{s}/usr/lib/{TRIPLET}/pkgconfig:{s}/usr/share/pkgconfig"))
        .env("PKG_CONFIG_SYSROOT_DIR", sysroot)
        .env(
            format!("BINDGEN_EXTRA_CLANG_ARGS_{target_env}"),
            format!("--target={TRIPLET} --sysroot={s} -I{s}/usr/include/{TRIPLET} -I{s}/usr/include"),
        );
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        cmd.env("SOURCE_DATE_EPOCH", epoch);
    }
    eprintln!("image: cross-compiling the daemon for {TARGET} (first time: several minutes)");
    exec::run_visible(&mut cmd)?;
    Ok(target_dir.join(TARGET).join("release").join("roomcast"))
}
