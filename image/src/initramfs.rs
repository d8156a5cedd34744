//! The initramfs: busybox, the modules needed to reach the root partition (SD card or virtio disk,
//! squashfs) and `/init` (image/initramfs/init), which mounts the squashfs root and switches to it.
//! A newc cpio made by GNU cpio with fixed times and owners, compressed with zstd.

use crate::board::Board;
use crate::exec;
use crate::modules::ModuleTree;
use crate::rootfs::module_list;
use anyhow::Result;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

/// Builds the initramfs `out` from staging directory `dir`.
pub fn build(dir: &Path, out: &Path, board: &Board, busybox: &Path, modules: &ModuleTree, repo: &Path, epoch: u64) -> Result<()> {
    exec::fresh_dir(dir)?;
    for d in ["bin", "dev", "proc", "sys", "newroot", "etc"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    std::fs::copy(busybox.join("bin/busybox"), dir.join("bin/busybox"))?;
    symlink("busybox", dir.join("bin/sh"))?;
    std::fs::copy(repo.join("image/initramfs/init"), dir.join("init"))?;
    for f in ["init", "bin/busybox"] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o755))?;
    }
    let order = modules.load_order(&board.kernel.initramfs_modules)?;
    let dest = dir.join("lib/modules").join(&modules.release);
    for rel in &order {
        modules.copy_module(rel, &dest)?;
    }
    let list = module_list(&order, &board.kernel.module_options)
        .lines()
        .map(|l| {
            if l.starts_with('#') {
                format!("{l}\n")
            } else {
                format!("/lib/modules/{}/{l}\n", modules.release)
            }
        })
        .collect::<String>();
    std::fs::write(dir.join("etc/modules"), list)?;
    exec::clamp_mtimes(dir, epoch)?;

    // Sorted file list -> cpio (newc, root-owned, device-independent) -> zstd.
    let listing = exec::run(Command::new("find").arg(".").current_dir(dir))?;
    let mut files: Vec<&str> = listing.lines().filter(|l| *l != ".").collect();
    files.sort_unstable();
    let mut cpio = Command::new("cpio")
        .args(["-o", "-H", "newc", "--reproducible", "-R", "0:0", "--quiet"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdin = cpio.stdin.take().expect("piped stdin");
    let names = files.join("\n") + "\n";
    let writer = std::thread::spawn(move || stdin.write_all(names.as_bytes()));
    let archive = cpio.wait_with_output()?;
    writer.join().map_err(|_| anyhow::anyhow!("cpio writer panicked"))??;
    anyhow::ensure!(archive.status.success(), "cpio failed: {}", String::from_utf8_lossy(&archive.stderr));
    let mut zstd = Command::new("zstd")
        .args(["-19", "-q", "-c", "-T1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut zin = zstd.stdin.take().expect("piped stdin");
    let data = archive.stdout;
    let writer = std::thread::spawn(move || zin.write_all(&data));
    let compressed = zstd.wait_with_output()?;
    writer.join().map_err(|_| anyhow::anyhow!("zstd writer panicked"))??;
    anyhow::ensure!(compressed.status.success(), "zstd failed");
    std::fs::write(out, compressed.stdout)?;
    Ok(())
}
