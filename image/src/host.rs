//! Making sure the host has what the build needs: Debian packages for the tools (installed with
//! apt-get only when missing, like tests/setup-host) and the aarch64 Rust target.

use crate::error::{Error, Result};
use crate::exec;
use std::process::Command;

/// Host tool -> the Debian package that provides it.
pub const TOOLS: &[(&str, &str)] = &[
    ("apt-get", "apt"),
    ("dpkg-deb", "dpkg"),
    ("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"),
    ("aarch64-linux-gnu-readelf", "binutils-aarch64-linux-gnu"),
    ("clang", "clang"),
    ("pkg-config", "pkg-config"),
    ("cmake", "cmake"),
    ("depmod", "kmod"),
    ("mksquashfs", "squashfs-tools"),
    ("mkfs.vfat", "dosfstools"),
    ("mcopy", "mtools"),
    ("sfdisk", "fdisk"),
    ("cpio", "cpio"),
    ("zstd", "zstd"),
];

/// Debian packages needed that provide no command to look for.
pub const LIBRARIES: &[&str] = &["libclang-dev", "libc6-dev-arm64-cross", "debian-archive-keyring"];

fn have_tool(tool: &str) -> bool {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file())).unwrap_or(false)
        || ["/usr/sbin", "/sbin"].iter().any(|d| std::path::Path::new(d).join(tool).is_file())
}

fn have_package(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Installs the missing host packages and the Rust target.
pub fn prepare() -> Result<()> {
    let mut missing: Vec<&str> = TOOLS.iter().filter(|(t, _)| !have_tool(t)).map(|(_, p)| *p).collect();
    missing.extend(LIBRARIES.iter().filter(|p| !have_package(p)));
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        eprintln!("image: installing host packages: {}", missing.join(" "));
        let root = exec::run(Command::new("id").arg("-u")).map(|u| u.trim() == "0").unwrap_or(false);
        let mut prefix: Vec<&str> = Vec::new();
        if !root {
            prefix.push("sudo");
        }
        let mut update = Command::new(prefix.first().copied().unwrap_or("apt-get"));
        if !root {
            update.arg("apt-get");
        }
        exec::run_visible(update.args(["update", "-q"]))?;
        let mut install = Command::new(prefix.first().copied().unwrap_or("apt-get"));
        if !root {
            install.arg("apt-get");
        }
        install
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing);
        exec::run_visible(&mut install)?;
    }
    let installed = exec::run(Command::new("rustup").args(["target", "list", "--installed"]));
    match installed {
        Ok(list) if list.lines().any(|l| l.trim() == crate::cross::TARGET) => {}
        Ok(_) => exec::run_visible(Command::new("rustup").args(["target", "add", crate::cross::TARGET]))?,
        Err(_) => return Err(Error::Host(format!("rustup is needed to add the {} target", crate::cross::TARGET))),
    }
    Ok(())
}
