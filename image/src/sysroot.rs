//! Unpacking Debian packages into a directory tree (the cross-compilation sysroot, the kernel,
//! the firmware), with a stamp so an unchanged set of packages is not unpacked again.

use crate::error::{IoContext, Result};
use crate::exec;
use crate::lockfile::Pin;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Unpacks `debs` (with their pins, for the stamp) into `dir`, unless `dir` already holds exactly them.
pub fn unpack(dir: &Path, debs: &[(Pin, PathBuf)]) -> Result<()> {
    let stamp_text: String = debs.iter().map(|(p, _)| format!("{} {} {}\n", p.name, p.version, p.sha256)).collect();
    let stamp = dir.join(".roomcast-unpacked");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(stamp_text.as_str()) {
        return Ok(());
    }
    exec::fresh_dir(dir)?;
    for (_, deb) in debs {
        exec::run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dir))?;
    }
    relativize_symlinks(dir, dir)?;
    std::fs::write(&stamp, stamp_text).with_context_io(|| format!("writing {}", stamp.display()))?;
    Ok(())
}

/// Points absolute symlinks (e.g. libm.so -> /lib/aarch64-linux-gnu/libm.so.6) into the tree
/// instead of the host, so that the linker finds the sysroot's libraries through them.
fn relativize_symlinks(root: &Path, dir: &Path) -> Result<()> {
    let reading = || format!("reading {}", dir.display());
    for e in std::fs::read_dir(dir).with_context_io(reading)? {
        let e = e.with_context_io(reading)?;
        let path = e.path();
        let ft = e.file_type().with_context_io(|| format!("reading {}", path.display()))?;
        if ft.is_dir() {
            relativize_symlinks(root, &path)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path).with_context_io(|| format!("reading link {}", path.display()))?;
            if let Ok(inside) = target.strip_prefix("/") {
                let depth = path.strip_prefix(root).map(|p| p.components().count() - 1).unwrap_or(0);
                let mut rel = PathBuf::new();
                for _ in 0..depth {
                    rel.push("..");
                }
                rel.push(inside);
                std::fs::remove_file(&path).with_context_io(|| format!("removing {}", path.display()))?;
                std::os::unix::fs::symlink(&rel, &path)
                    .with_context_io(|| format!("linking {} to {}", path.display(), rel.display()))?;
            }
        }
    }
    Ok(())
}

/// The multiarch library directories of an arm64 Debian tree, in search order.
pub fn lib_dirs(root: &Path) -> Vec<PathBuf> {
    ["lib/aarch64-linux-gnu", "usr/lib/aarch64-linux-gnu", "lib", "usr/lib"].iter().map(|d| root.join(d)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_symlinks_point_into_the_tree() {
        let root = std::env::temp_dir().join(format!("rc-sysroot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("usr/lib/x")).unwrap();
        std::fs::create_dir_all(root.join("lib/x")).unwrap();
        std::fs::write(root.join("lib/x/libm.so.6"), "m").unwrap();
        std::os::unix::fs::symlink("/lib/x/libm.so.6", root.join("usr/lib/x/libm.so")).unwrap();
        std::os::unix::fs::symlink("libm.so.6", root.join("lib/x/libm.so")).unwrap();
        relativize_symlinks(&root, &root).unwrap();
        assert_eq!(
            std::fs::read_link(root.join("usr/lib/x/libm.so")).unwrap(),
            PathBuf::from("../../../lib/x/libm.so.6")
        );
        assert_eq!(std::fs::read_to_string(root.join("usr/lib/x/libm.so")).unwrap(), "m");
        assert_eq!(std::fs::read_link(root.join("lib/x/libm.so")).unwrap(), PathBuf::from("libm.so.6"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
