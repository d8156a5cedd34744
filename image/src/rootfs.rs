//! The read-only root filesystem: the daemon and the libraries it links (resolved in the sysroot),
//! busybox for init, DHCP and the rescue shell, openntpd for the clock, ALSA's configuration,
//! wpa_supplicant and the radio's firmware on boards with `[wifi]` ([`crate::wifi`]), the
//! kernel modules the board needs, init's scripts (from `image/rootfs/`) and the board defaults.
//! Packed with mksquashfs so that the same tree gives the same bytes.

use crate::board::Board;
use crate::elf;
use crate::error::{Error, IoContext, Result};
use crate::exec;
use crate::modules::{canonical, ModuleTree};
use crate::{sysroot, wifi};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Busybox applets linked in /bin: what init, the network scripts and a person at the rescue shell use.
pub const APPLETS: &[&str] = &[
    "[",
    "[[",
    "awk",
    "basename",
    "cat",
    "chmod",
    "chown",
    "clear",
    "cmp",
    "cp",
    "cttyhack",
    "cut",
    "date",
    "dd",
    "df",
    "diff",
    "dirname",
    "dmesg",
    "du",
    "echo",
    "egrep",
    "env",
    "expr",
    "false",
    "fgrep",
    "find",
    "free",
    "getty",
    "grep",
    "halt",
    "head",
    "hexdump",
    "hostname",
    "hwclock",
    "i2cdetect",
    "i2cdump",
    "i2cget",
    "i2cset",
    "id",
    "ifconfig",
    "init",
    "insmod",
    "ip",
    "kill",
    "killall",
    "klogd",
    "less",
    "ln",
    "logger",
    "logread",
    "ls",
    "lsmod",
    "mdev",
    "mkdir",
    "mknod",
    "mktemp",
    "modinfo",
    "modprobe",
    "more",
    "mount",
    "mv",
    "nc",
    "netstat",
    "nslookup",
    "od",
    "pidof",
    "ping",
    "ping6",
    "poweroff",
    "printf",
    "ps",
    "pwd",
    "readlink",
    "reboot",
    "rm",
    "rmdir",
    "rmmod",
    "route",
    "sed",
    "seq",
    "setsid",
    "sh",
    "sleep",
    "sort",
    "stat",
    "stty",
    "switch_root",
    "sync",
    "sysctl",
    "syslogd",
    "tail",
    "tee",
    "test",
    "timeout",
    "top",
    "touch",
    "tr",
    "true",
    "udhcpc",
    "umount",
    "uname",
    "uniq",
    "uptime",
    "usleep",
    "vi",
    "watch",
    "watchdog",
    "wc",
    "wget",
    "which",
    "xargs",
    "xxd",
];

/// The unpacked inputs of the root filesystem.
pub struct Inputs<'a> {
    pub board: &'a Board,
    /// The cross-compiled daemon.
    pub daemon: &'a Path,
    /// The arm64 sysroot (libraries the daemon and ntpd link).
    pub sysroot: &'a Path,
    /// Unpacked busybox-static.
    pub busybox: &'a Path,
    /// Unpacked openntpd.
    pub ntpd: &'a Path,
    /// Unpacked libasound2-data (ALSA's configuration).
    pub alsa_data: &'a Path,
    /// Unpacked wpasupplicant and its libraries (boards with `[wifi]`).
    pub wifi: Option<&'a Path>,
    /// Unpacked `[wifi] firmware_packages`.
    pub wifi_firmware: Option<&'a Path>,
    pub modules: &'a ModuleTree,
    /// The repository (for image/rootfs/).
    pub repo: &'a Path,
}

/// Assembles the root tree in `dir`.
pub fn assemble(dir: &Path, inp: &Inputs) -> Result<()> {
    exec::fresh_dir(dir)?;
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "usr/share",
        "lib",
        "etc/roomcast",
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "var",
        "boot",
        "root",
        "mnt",
    ] {
        let d = dir.join(d);
        std::fs::create_dir_all(&d).with_context_io(|| format!("creating {}", d.display()))?;
    }
    // Our init scripts and configuration files.
    copy_tree(&inp.repo.join("image/rootfs"), dir)?;

    // busybox and its applets.
    install_exec(&inp.busybox.join("bin/busybox"), &dir.join("bin/busybox"))?;
    for applet in APPLETS {
        let link = dir.join("bin").join(applet);
        if !link.exists() {
            symlink("busybox", &link).with_context_io(|| format!("linking {}", link.display()))?;
        }
    }
    symlink("../bin/busybox", dir.join("sbin/init"))
        .with_context_io(|| format!("linking {}/sbin/init", dir.display()))?;

    // The daemon, openntpd, and every library they link.
    install_exec(inp.daemon, &dir.join("usr/bin/roomcast"))?;
    install_exec(&inp.ntpd.join("usr/sbin/ntpd"), &dir.join("usr/sbin/ntpd"))?;
    let mut lib_dirs = sysroot::lib_dirs(inp.sysroot);
    let mut bins = vec![inp.daemon.to_path_buf(), inp.ntpd.join("usr/sbin/ntpd")];
    if let (Some(unpacked), Some(w)) = (inp.wifi, &inp.board.wifi) {
        for name in wifi::PROGRAMS {
            let from = wifi::program(unpacked, name)?;
            install_exec(&from, &dir.join("usr/sbin").join(name))?;
            bins.push(from);
        }
        lib_dirs.extend(sysroot::lib_dirs(unpacked));
        wifi::install_firmware(dir, unpacked, inp.wifi_firmware, w)?;
    }
    for bin in bins {
        let (libs, interp) = elf::closure(&bin, &lib_dirs)?;
        for (soname, path) in libs {
            install_exec(&path, &dir.join("lib/aarch64-linux-gnu").join(&soname))?;
        }
        if let Some(interp) = interp {
            let rel = interp.trim_start_matches('/');
            let target = dir.join(rel);
            if !target.exists() {
                let name = Path::new(rel).file_name().map(PathBuf::from).unwrap_or_default();
                let real = lib_dirs
                    .iter()
                    .map(|d| d.join(&name))
                    .find(|p| p.exists())
                    .ok_or_else(|| Error::Sysroot(format!("the interpreter {interp} is not in the sysroot")))?;
                install_exec(&real, &target)?;
            }
        }
    }
    // ALSA reads its configuration even to open hw: devices.
    copy_tree(&inp.alsa_data.join("usr/share/alsa"), &dir.join("usr/share/alsa"))?;

    // Kernel modules and the order init loads them in.
    let order = inp.modules.load_order(&inp.board.kernel.modules)?;
    inp.modules.install(&order, dir)?;
    write(&dir.join("etc/roomcast/modules"), module_list(&order, &inp.board.kernel.module_options))?;

    // Board defaults for the daemon, and what this image is.
    write(&dir.join("etc/roomcast/board.toml"), inp.board.runtime_toml())?;
    write(
        &dir.join("etc/roomcast/release"),
        format!(
            "board={}\nkernel={}\nsource_date_epoch={}\n",
            inp.board.board.name,
            inp.modules.release,
            std::env::var("SOURCE_DATE_EPOCH").unwrap_or_default()
        ),
    )?;
    Ok(())
}

/// The module list init reads: one line per module, `path options...`, dependencies first.
pub fn module_list(order: &[String], options: &std::collections::BTreeMap<String, String>) -> String {
    let mut out = String::from("# Kernel modules init loads (insmod), dependencies first: path [options]\n");
    for rel in order {
        let rel = &crate::modules::installed_name(rel);
        let name = canonical(rel.rsplit('/').next().unwrap_or(rel).split(".ko").next().unwrap_or(rel));
        let opts = options.iter().find(|(k, _)| canonical(k) == name).map(|(_, v)| v.as_str());
        match opts {
            Some(o) => out.push_str(&format!("{rel} {o}\n")),
            None => out.push_str(&format!("{rel}\n")),
        }
    }
    out
}

/// Packs `dir` into a squashfs file, reproducibly (owner root, fixed times, sorted by mksquashfs).
pub fn squash(dir: &Path, out: &Path, epoch: u64) -> Result<()> {
    if out.exists() {
        std::fs::remove_file(out).with_context_io(|| format!("removing {}", out.display()))?;
    }
    exec::run(
        Command::new("mksquashfs")
            // The options below set the times; mksquashfs refuses them together with the variable.
            .env_remove("SOURCE_DATE_EPOCH")
            .arg(dir)
            .arg(out)
            .args(["-noappend", "-all-root", "-no-xattrs", "-comp", "zstd", "-quiet", "-no-progress"])
            .args(["-mkfs-time", &epoch.to_string(), "-all-time", &epoch.to_string()])
            // Device nodes the kernel wants before devtmpfs is mounted.
            .args(["-p", "/dev/console c 600 0 0 5 1", "-p", "/dev/null c 666 0 0 1 3"]),
    )?;
    Ok(())
}

/// Copies a file and makes it executable.
fn install_exec(from: &Path, to: &Path) -> Result<()> {
    if let Some(p) = to.parent() {
        std::fs::create_dir_all(p).with_context_io(|| format!("creating {}", p.display()))?;
    }
    std::fs::copy(from, to).with_context_io(|| format!("copying {} to {}", from.display(), to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))
        .with_context_io(|| format!("making {} executable", to.display()))?;
    Ok(())
}

fn write(path: &Path, text: impl AsRef<[u8]>) -> Result<()> {
    std::fs::write(path, text).with_context_io(|| format!("writing {}", path.display()))
}

/// Copies a directory tree (files, directories, symlinks), keeping permissions.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context_io(|| format!("creating {}", to.display()))?;
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .with_context_io(|| format!("reading {}", from.display()))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let src = e.path();
        let dst = to.join(e.file_name());
        let ft = e.file_type().with_context_io(|| format!("reading {}", src.display()))?;
        if ft.is_symlink() {
            let _ = std::fs::remove_file(&dst);
            let target = std::fs::read_link(&src).with_context_io(|| format!("reading link {}", src.display()))?;
            symlink(target, &dst).with_context_io(|| format!("linking {}", dst.display()))?;
        } else if ft.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).with_context_io(|| format!("copying {} to {}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_list_puts_options_on_their_module() {
        let mut opts = std::collections::BTreeMap::new();
        opts.insert("snd-aloop".to_string(), "index=0".to_string());
        let text = module_list(&["kernel/a/snd-pcm.ko".into(), "kernel/a/snd-aloop.ko".into()], &opts);
        assert!(text.contains("\nkernel/a/snd-pcm.ko\nkernel/a/snd-aloop.ko index=0\n"), "{text}");
    }
}
