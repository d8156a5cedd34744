//! Helpers shared by roomcast's tests: finding the external tools that tests check against
//! (tshark, ffmpeg, dav1d, qemu), failing loudly under `CI=true` when one is missing, and
//! building a workspace binary for a test of another package ([`workspace_binary`]), a
//! loopback DNS server ([`dnsmasq`]), and bounded dumpcap captures dissected by tshark ([`tshark`]).

use std::path::PathBuf;

pub mod dnsmasq;
pub mod tshark;

/// True when running under CI (`CI=true`), where a missing tool is a failure, not a skip.
pub fn under_ci() -> bool {
    std::env::var("CI").map(|v| v == "true" || v == "1").unwrap_or(false)
}

/// Finds `tool` on `PATH`.
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(tool)).find(|candidate| candidate.is_file())
}

/// Returns the path of `tool`, or `None` when the test should be skipped.
///
/// Under `CI=true` a missing tool panics: a test that needs a tool must fail when it is
/// missing there, never pass silently. Outside CI it prints why the test is skipped.
/// The README's test command (`tests/run`) installs every tool the tests need.
pub fn require_tool(tool: &str) -> Option<PathBuf> {
    match find_tool(tool) {
        Some(path) => Some(path),
        None if under_ci() => panic!(
            "`{tool}` is not installed; under CI=true a test that needs it fails. \
             Run tests/setup-host to install it."
        ),
        None => {
            eprintln!("SKIPPED: `{tool}` is not installed (tests/setup-host installs it)");
            None
        }
    }
}

/// Like [`require_tool`] for a test that must not be skipped anywhere.
pub fn must_have_tool(tool: &str) -> PathBuf {
    find_tool(tool).unwrap_or_else(|| panic!("`{tool}` is not installed; run tests/setup-host to install it"))
}

/// Builds (if needed) the binary of workspace package `package` in the target directory and
/// profile the calling test was built in, and returns its path (for tests of another package,
/// which have no `CARGO_BIN_EXE_` for it). `repo` is the workspace root.
///
/// It is built as `cargo test --workspace` builds it: the whole workspace selected, with the
/// tests (`--tests`, which turns the dev-dependencies' features on), so the features, and with
/// them the artifacts, are the test build's own and, after tests/run's build, nothing is rebuilt
/// (`cargo build -p` chose other features and rebuilt 32 crates, 1.5 min, in every CI run).
pub fn workspace_binary(repo: &std::path::Path, package: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test>-HASH
    let profile_dir = exe.parent().and_then(std::path::Path::parent).expect("target/<profile>").to_path_buf();
    let target_dir = profile_dir.parent().expect("the target directory");
    let profile = profile_dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let mut cmd = std::process::Command::new(option_env!("CARGO").unwrap_or("cargo"));
    cmd.current_dir(repo)
        .args(["build", "--workspace", "--tests", "--bin", package])
        .env("CARGO_TARGET_DIR", target_dir);
    if profile == "release" {
        cmd.arg("--release");
    }
    let status = cmd.status().unwrap_or_else(|e| panic!("cargo build --bin {package}: {e}"));
    assert!(status.success(), "building {package} for the test failed");
    profile_dir.join(package)
}
