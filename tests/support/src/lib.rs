//! Helpers shared by roomcast's tests: finding the external tools that tests check against
//! (tshark, ffmpeg, dav1d, qemu), failing loudly under `CI=true` when one is missing.

use std::path::PathBuf;

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
