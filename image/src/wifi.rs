//! Wi-Fi in the root filesystem (boards with `[wifi]`): wpa_supplicant and wpa_cli from Debian's
//! wpasupplicant, the kernel's regulatory database (wireless-regdb, upstream-signed copy, so
//! `country=` in wpa_supplicant.conf takes effect), and the radio firmware files the board names
//! from its `[wifi] firmware_packages` (firmware-brcm80211 on the Pis) in /lib/firmware, where the
//! kernel's firmware loader finds them. init's `/etc/init.d/wifi` starts wpa_supplicant.

use crate::board::Wifi;
use crate::error::{Error, IoContext, Result};
use std::path::{Path, PathBuf};

/// The programs installed, in /usr/sbin of the root filesystem.
pub const PROGRAMS: &[&str] = &["wpa_supplicant", "wpa_cli"];

/// Where a program is in the unpacked wpasupplicant (Debian has it in /sbin).
pub fn program(unpacked: &Path, name: &str) -> Result<PathBuf> {
    ["sbin", "usr/sbin", "usr/bin"]
        .iter()
        .map(|d| unpacked.join(d).join(name))
        .find(|p| p.exists())
        .ok_or_else(|| Error::Sysroot(format!("{name} is not in the unpacked wpasupplicant ({})", unpacked.display())))
}

/// Installs the regulatory database and the board's firmware files under `root`/lib/firmware;
/// returns the firmware files installed (relative to lib/firmware).
pub fn install_firmware(root: &Path, unpacked: &Path, firmware: Option<&Path>, wifi: &Wifi) -> Result<Vec<String>> {
    let dest = root.join("lib/firmware");
    std::fs::create_dir_all(&dest).with_context_io(|| format!("creating {}", dest.display()))?;
    for (from, to) in [("regulatory.db-upstream", "regulatory.db"), ("regulatory.db.p7s-upstream", "regulatory.db.p7s")]
    {
        let src = firmware_dirs(unpacked)
            .map(|d| d.join(from))
            .find(|p| p.exists())
            .ok_or_else(|| Error::Sysroot(format!("wireless-regdb has no {from}")))?;
        copy(&src, &dest.join(to))?;
    }
    let mut installed = Vec::new();
    for pattern in &wifi.firmware_files {
        let mut matched = false;
        let dir = firmware.map(firmware_dirs).into_iter().flatten();
        for base in dir {
            for rel in matching(&base, pattern)? {
                copy(&base.join(&rel), &dest.join(&rel))?;
                installed.push(rel);
                matched = true;
            }
        }
        if !matched {
            return Err(Error::Config(format!(
                "[wifi] firmware_files {pattern:?} matches no file of {:?}",
                wifi.firmware_packages
            )));
        }
    }
    installed.sort();
    installed.dedup();
    Ok(installed)
}

fn firmware_dirs(unpacked: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    ["lib/firmware", "usr/lib/firmware"].into_iter().map(move |d| unpacked.join(d)).filter(|d| d.is_dir())
}

/// Files under `base` that `pattern` names: `dir/name`, or `dir/prefix*` (a `*` at the end only).
fn matching(base: &Path, pattern: &str) -> Result<Vec<String>> {
    let (dir, name) = pattern.rsplit_once('/').unwrap_or(("", pattern));
    let Ok(entries) = std::fs::read_dir(base.join(dir)) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for e in entries {
        let e = e.with_context_io(|| format!("reading {}", base.join(dir).display()))?;
        let file = e.file_name().to_string_lossy().into_owned();
        let hit = match name.strip_suffix('*') {
            Some(prefix) => file.starts_with(prefix),
            None => file == name,
        };
        // Symbolic links count (followed when copied); directories do not.
        if hit && !base.join(dir).join(&file).is_dir() {
            out.push(if dir.is_empty() { file } else { format!("{dir}/{file}") });
        }
    }
    out.sort();
    Ok(out)
}

/// Copies a file (following a symbolic link), making its directory.
fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(p) = to.parent() {
        std::fs::create_dir_all(p).with_context_io(|| format!("creating {}", p.display()))?;
    }
    std::fs::copy(from, to).with_context_io(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn firmware_files_are_picked_by_prefix_and_links_followed() {
        let t = std::env::temp_dir().join(format!("rc-wifi-fw-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        let (regdb, fw, root) = (t.join("regdb"), t.join("fw"), t.join("root"));
        std::fs::create_dir_all(regdb.join("lib/firmware")).unwrap();
        for f in ["regulatory.db-upstream", "regulatory.db.p7s-upstream", "regulatory.db-debian"] {
            std::fs::write(regdb.join("lib/firmware").join(f), f).unwrap();
        }
        std::fs::create_dir_all(fw.join("lib/firmware/brcm")).unwrap();
        std::fs::create_dir_all(fw.join("lib/firmware/cypress")).unwrap();
        std::fs::write(fw.join("lib/firmware/cypress/cyfmac43455-sdio.bin"), "fw").unwrap();
        symlink("../cypress/cyfmac43455-sdio.bin", fw.join("lib/firmware/brcm/brcmfmac43455-sdio.bin")).unwrap();
        std::fs::write(fw.join("lib/firmware/brcm/brcmfmac43455-sdio.raspberrypi,4-model-b.txt"), "nv").unwrap();
        std::fs::write(fw.join("lib/firmware/brcm/brcmfmac4356-pcie.bin"), "other").unwrap();
        let wifi = Wifi {
            firmware_packages: vec!["firmware-brcm80211".into()],
            firmware_files: vec!["brcm/brcmfmac43455-sdio*".into()],
        };
        let got = install_firmware(&root, &regdb, Some(&fw), &wifi).unwrap();
        assert_eq!(got, ["brcm/brcmfmac43455-sdio.bin", "brcm/brcmfmac43455-sdio.raspberrypi,4-model-b.txt"]);
        let bin = root.join("lib/firmware/brcm/brcmfmac43455-sdio.bin");
        assert!(!bin.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(bin).unwrap(), "fw");
        assert_eq!(std::fs::read_to_string(root.join("lib/firmware/regulatory.db")).unwrap(), "regulatory.db-upstream");
        assert!(!root.join("lib/firmware/brcm/brcmfmac4356-pcie.bin").exists());

        let none = Wifi { firmware_files: vec!["brcm/brcmfmac99999*".into()], ..wifi };
        let err = install_firmware(&root, &regdb, Some(&fw), &none).unwrap_err().to_string();
        assert!(err.contains("brcmfmac99999") && err.contains("matches no file"), "{err}");
        std::fs::remove_dir_all(&t).unwrap();
    }
}
