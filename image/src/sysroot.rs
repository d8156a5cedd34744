//! Unpacking Debian packages into a directory tree (the cross-compilation sysroot, the kernel,
//! the firmware), with a stamp so an unchanged set of packages is not unpacked again.

use crate::exec;
use crate::lockfile::Pin;
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Unpacks `debs` (with their pins, for the stamp) into `dir`, unless `dir` already holds exactly them.
pub fn unpack(dir: &Path, debs: &[(Pin, PathBuf)]) -> Result<()> {
    let stamp_text: String = debs
        .iter()
        .map(|(p, _)| format!("{} {} {}\n", p.name, p.version, p.sha256))
        .collect();
    let stamp = dir.join(".roomcast-unpacked");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(stamp_text.as_str()) {
        return Ok(());
    }
    exec::fresh_dir(dir)?;
    for (_, deb) in debs {
        exec::run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dir))?;
    }
    std::fs::write(stamp, stamp_text)?;
    Ok(())
}

/// The multiarch library directories of an arm64 Debian tree, in search order.
pub fn lib_dirs(root: &Path) -> Vec<PathBuf> {
    ["lib/aarch64-linux-gnu", "usr/lib/aarch64-linux-gnu", "lib", "usr/lib"]
        .iter()
        .map(|d| root.join(d))
        .collect()
}
