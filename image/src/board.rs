//! Board profiles (`board/<name>.toml`): what goes on the boot partition, which kernel modules the
//! box loads, the defaults the daemon uses for devices (`[devices]`, installed as
//! `/etc/roomcast/board.toml`), and for qemu-virt how QEMU is started (`[qemu]`).
//!
//! The `[devices]` keys are documented for the daemon in /work/team/board-format.md and in
//! `board/README.md`; the builder passes that table through unchanged.

use crate::error::{Error, ErrorContext, IoContext, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// A parsed board profile.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    pub board: BoardInfo,
    pub boot: Boot,
    pub kernel: Kernel,
    /// Device defaults for the daemon; passed through as-is.
    pub devices: toml::Table,
    /// Wi-Fi: wpa_supplicant and the radio's firmware go into the image (`[network] wifi_ssid`).
    #[serde(default)]
    pub wifi: Option<Wifi>,
    /// How QEMU boots this board (qemu-virt only).
    pub qemu: Option<Qemu>,
    /// The text of the profile, for the manifest.
    #[serde(skip)]
    pub source: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardInfo {
    pub name: String,
    pub description: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boot {
    /// Files copied from Debian's raspi-firmware (/usr/lib/raspi-firmware).
    pub firmware: Vec<String>,
    /// Device trees copied from Debian's kernel package (/usr/lib/linux-image-*/broadcom).
    pub device_trees: Vec<String>,
    /// config.txt for the Raspberry Pi firmware ("" = no config.txt).
    pub config_txt: String,
    /// The kernel command line; the builder appends where the root and boot partitions are
    /// (by the image's partition UUIDs, so SD card, USB disk and virtio disk all work).
    pub cmdline: String,
    /// The roomcast.toml put on the boot partition when `--config` is not given, relative to the
    /// repository (default: the set-up configuration, which names no meeting server).
    #[serde(default = "default_config")]
    pub config: String,
}

fn default_config() -> String {
    "config/roomcast.setup.toml".to_string()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kernel {
    /// The Debian package providing the kernel (a metapackage is resolved to the real one).
    #[serde(default = "default_kernel_package")]
    pub package: String,
    /// The suite to take the kernel from, e.g. "bookworm-backports" (default: the release).
    #[serde(default)]
    pub suite: Option<String>,
    /// Modules the initramfs loads to reach the root filesystem.
    pub initramfs_modules: Vec<String>,
    /// Modules init loads from the root filesystem, in order.
    pub modules: Vec<String>,
    /// Options per module (module name with `_`), e.g. `vivid = "n_devs=1"`.
    #[serde(default)]
    pub module_options: BTreeMap<String, String>,
    /// Where the kernel, its device trees and the boot firmware come from when not from Debian's
    /// archive (`--kernel-deb` overrides it).
    #[serde(default)]
    pub source: Option<KernelSource>,
}

/// `[kernel.source]`: another archive, or local .deb files.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelSource {
    /// An extra apt source line, `deb URL SUITE COMPONENTS...`, searched beside Debian's archive
    /// (e.g. `deb http://archive.raspberrypi.com/debian bookworm main`).
    pub apt: Option<String>,
    /// The keyring that signs that archive, relative to the repository (required with `apt`).
    pub key: Option<String>,
    /// .deb files, relative to the repository, taken instead of the archive's packages (the
    /// kernel, and any other package of the image named by one of them, e.g. raspi-firmware).
    #[serde(default)]
    pub debs: Vec<String>,
}

impl KernelSource {
    fn check(&self) -> Result<()> {
        match (&self.apt, &self.key, self.debs.is_empty()) {
            (Some(_), None, _) => Err(Error::Config("[kernel.source] apt needs `key`, the archive's keyring".into())),
            (None, Some(_), _) => Err(Error::Config("[kernel.source] key is only used with `apt`".into())),
            (None, None, true) => Err(Error::Config("[kernel.source] names neither `apt` nor `debs`".into())),
            (Some(line), Some(_), _) if line.split_whitespace().count() < 4 || !line.starts_with("deb ") => {
                Err(Error::Config(format!("[kernel.source] apt must be `deb URL SUITE COMPONENTS`, not {line:?}")))
            }
            _ => Ok(()),
        }
    }
}

/// `[wifi]`: the board can join a Wi-Fi network.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wifi {
    /// Debian packages with the radio's firmware (e.g. firmware-brcm80211, from non-free-firmware).
    #[serde(default)]
    pub firmware_packages: Vec<String>,
    /// Which of their files go into /lib/firmware: paths under lib/firmware, a trailing `*`
    /// matching any rest of the name (e.g. "brcm/brcmfmac43455-sdio*"); symbolic links are
    /// followed.
    #[serde(default)]
    pub firmware_files: Vec<String>,
}

fn default_kernel_package() -> String {
    "linux-image-arm64".to_string()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Qemu {
    pub machine: String,
    pub cpu: String,
    pub memory_mib: u32,
    pub smp: u32,
    pub display_device: String,
    /// A second display for the room's screen (the far end), e.g. a second virtio-gpu-pci with
    /// `id=screen` (its own DRM card and /dev/fb1; `screendump` with `device` = that id).
    #[serde(default)]
    pub screen_device: Option<String>,
    pub watchdog_device: String,
}

impl Board {
    /// Reads and checks `board/<name>.toml`.
    pub fn load(path: &Path) -> Result<Board> {
        let text = std::fs::read_to_string(path)
            .with_context_io(|| format!("cannot read board profile {}", path.display()))?;
        Board::parse(&text).with_context(|| format!("in board profile {}", path.display()))
    }

    /// Parses and checks a profile's text.
    pub fn parse(text: &str) -> Result<Board> {
        let mut board: Board =
            toml::from_str(text).map_err(|source| Error::Toml { what: "not a valid board profile".into(), source })?;
        board.source = text.to_string();
        if let Some(source) = &board.kernel.source {
            source.check()?;
        }
        if let Some(w) = &board.wifi {
            if w.firmware_packages.is_empty() != w.firmware_files.is_empty() {
                return Err(Error::Config("[wifi] firmware_packages and firmware_files go together".into()));
            }
        }
        for key in ["camera", "microphone", "encoder", "expected_encoder", "watchdog", "framebuffer"] {
            if !board.devices.contains_key(key) {
                return Err(Error::Config(format!("[devices] has no `{key}`")));
            }
        }
        match board.devices.get("expected_encoder").and_then(|v| v.as_str()) {
            Some("hardware" | "software") => {}
            other => {
                return Err(Error::Config(format!(
                    "[devices] expected_encoder must be \"hardware\" or \"software\", not {other:?}"
                )))
            }
        }
        Ok(board)
    }

    /// The file installed as `/etc/roomcast/board.toml`: the `[board]` and `[devices]` tables.
    pub fn runtime_toml(&self) -> String {
        let mut board = toml::Table::new();
        board.insert("name".into(), self.board.name.clone().into());
        board.insert("description".into(), self.board.description.clone().into());
        let mut root = toml::Table::new();
        root.insert("board".into(), board.into());
        root.insert("devices".into(), self.devices.clone().into());
        format!(
            "# Board defaults for the roomcast daemon (from board/{}.toml). roomcast.toml on the boot\n\
             # partition overrides any of these. Written by the image builder; read-only on the box.\n\n{}",
            self.board.name,
            toml::to_string(&root).unwrap_or_default()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(name: &str) -> Board {
        Board::load(&crate::paths::repo_root().join("board").join(format!("{name}.toml"))).unwrap()
    }

    #[test]
    fn every_board_profile_parses() {
        for name in ["pi4", "pi5", "pi3", "zero2w", "qemu-virt"] {
            let b = profile(name);
            assert_eq!(b.board.name, name);
            assert!(!b.kernel.initramfs_modules.is_empty(), "{name}");
        }
    }

    #[test]
    fn runtime_toml_keeps_devices_and_drops_build_settings() {
        let b = profile("qemu-virt");
        let text = b.runtime_toml();
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(parsed["board"]["name"].as_str(), Some("qemu-virt"));
        assert_eq!(parsed["devices"]["expected_encoder"].as_str(), Some("software"));
        assert_eq!(parsed["devices"]["i2c_address"].as_integer(), Some(0x3C));
        assert!(parsed.get("kernel").is_none() && parsed.get("qemu").is_none());
    }

    #[test]
    fn kernel_source_is_checked() {
        let base = profile("pi4").source;
        let with = |table: &str| Board::parse(&format!("{base}\n[kernel.source]\n{table}\n"));
        let b = with("apt = \"deb http://archive.raspberrypi.com/debian bookworm main\"\nkey = \"board/keys/rpi.gpg\"")
            .unwrap();
        assert_eq!(b.kernel.source.unwrap().key.as_deref(), Some("board/keys/rpi.gpg"));
        let b = with("debs = [\"kernel.deb\"]").unwrap();
        assert_eq!(b.kernel.source.unwrap().debs, ["kernel.deb"]);
        for (table, says) in [
            ("apt = \"deb http://x bookworm main\"", "needs `key`"),
            ("key = \"k.gpg\"", "only used with `apt`"),
            ("debs = []", "neither"),
            ("apt = \"http://x bookworm\"\nkey = \"k\"", "deb URL SUITE"),
        ] {
            let err = with(table).unwrap_err().to_string();
            assert!(err.contains(says), "{table}: {err}");
        }
    }

    #[test]
    fn the_pi_boards_have_wifi_with_brcmfmac_firmware() {
        for name in ["pi3", "pi4", "pi5", "zero2w"] {
            let b = profile(name);
            let w = b.wifi.as_ref().unwrap_or_else(|| panic!("{name} has no [wifi]"));
            assert_eq!(w.firmware_packages, ["firmware-brcm80211"], "{name}");
            assert!(b.kernel.modules.iter().any(|m| m == "brcmfmac"), "{name} loads no brcmfmac");
        }
        let q = profile("qemu-virt").wifi.expect("qemu-virt has wpa_supplicant (the hwsim test)");
        assert!(q.firmware_packages.is_empty());
        let bad = profile("pi4").source.replace("firmware_files", "# firmware_files");
        assert!(Board::parse(&bad).unwrap_err().to_string().contains("go together"));
    }

    #[test]
    fn a_profile_without_camera_default_is_refused() {
        let b = profile("qemu-virt");
        let text = b.source.replace("camera = \"/dev/video0\"\n", "");
        let err = Board::parse(&text).unwrap_err().to_string();
        assert!(err.contains("camera"), "{err}");
    }
}
