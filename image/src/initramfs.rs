//! The initramfs: busybox, the modules needed to reach the root partition (SD card or virtio disk,
//! squashfs) and `/init` (image/initramfs/init), which mounts the squashfs root and switches to it.
//! A newc cpio made by GNU cpio with fixed times and owners, compressed with zstd.

use crate::board::Board;
use crate::error::{Error, IoContext, Result};
use crate::exec;
use crate::modules::ModuleTree;
use crate::rootfs::module_list;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

/// Builds the initramfs `out` from staging directory `dir`.
pub fn build(
    dir: &Path,
    out: &Path,
    board: &Board,
    busybox: &Path,
    modules: &ModuleTree,
    repo: &Path,
    epoch: u64,
) -> Result<()> {
    exec::fresh_dir(dir)?;
    for d in ["bin", "dev", "proc", "sys", "newroot", "etc"] {
        let d = dir.join(d);
        std::fs::create_dir_all(&d).with_context_io(|| format!("creating {}", d.display()))?;
    }
    copy(&busybox.join("bin/busybox"), &dir.join("bin/busybox"))?;
    symlink("busybox", dir.join("bin/sh")).with_context_io(|| format!("linking {}/bin/sh", dir.display()))?;
    copy(&repo.join("image/initramfs/init"), &dir.join("init"))?;
    for f in ["init", "bin/busybox"] {
        let f = dir.join(f);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755))
            .with_context_io(|| format!("making {} executable", f.display()))?;
    }
    let order = modules.load_order(&board.kernel.initramfs_modules)?;
    let dest = dir.join("lib/modules").join(&modules.release);
    for rel in &order {
        modules.copy_module(rel, &dest)?;
    }
    let list = module_list(&order, &board.kernel.module_options)
        .lines()
        .map(|l| if l.starts_with('#') { format!("{l}\n") } else { format!("/lib/modules/{}/{l}\n", modules.release) })
        .collect::<String>();
    let list_file = dir.join("etc/modules");
    std::fs::write(&list_file, list).with_context_io(|| format!("writing {}", list_file.display()))?;
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
        .spawn()
        .context_io("cannot start `cpio` (is it installed?)")?;
    let mut stdin = cpio.stdin.take().expect("piped stdin");
    let names = files.join("\n") + "\n";
    let writer = std::thread::spawn(move || stdin.write_all(names.as_bytes()));
    let archive = cpio.wait_with_output().context_io("running cpio")?;
    writer
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("writer thread panicked")))
        .context_io("writing the file list to cpio")?;
    if !archive.status.success() {
        return Err(Error::Command {
            command: "cpio -o -H newc".into(),
            status: archive.status.to_string(),
            output: String::from_utf8_lossy(&archive.stderr).into_owned(),
        });
    }
    let mut zstd = Command::new("zstd")
        .args(["-19", "-q", "-c", "-T1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context_io("cannot start `zstd` (is it installed?)")?;
    let mut zin = zstd.stdin.take().expect("piped stdin");
    let data = archive.stdout;
    let writer = std::thread::spawn(move || zin.write_all(&data));
    let compressed = zstd.wait_with_output().context_io("running zstd")?;
    writer
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("writer thread panicked")))
        .context_io("writing the cpio archive to zstd")?;
    if !compressed.status.success() {
        return Err(Error::Command {
            command: "zstd -19 -q -c -T1".into(),
            status: compressed.status.to_string(),
            output: String::new(),
        });
    }
    std::fs::write(out, compressed.stdout).with_context_io(|| format!("writing {}", out.display()))?;
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).with_context_io(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}
