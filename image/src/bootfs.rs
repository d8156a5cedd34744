//! The boot (FAT) partition's files: Raspberry Pi firmware, Debian's kernel and device trees, the
//! initramfs, config.txt, cmdline.txt, the room's roomcast.toml and a commented example of every
//! setting. Everything is staged in a directory first, then copied into the FAT by [`crate::disk`].

use crate::board::Board;
use crate::error::{Error, ErrorContext, IoContext, Result};
use std::path::{Path, PathBuf};

/// The label of the boot partition, as a laptop shows it when the SD card is plugged in.
pub const LABEL: &str = "RC-BOOT";

/// Where the room's configuration comes from.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    /// `--config FILE`.
    Given(PathBuf),
    /// config/roomcast.toml of the repository (a placeholder when it does not exist yet).
    Default(PathBuf),
}

/// Inputs of the boot partition.
pub struct Inputs<'a> {
    pub board: &'a Board,
    /// Unpacked kernel package.
    pub kernel: &'a Path,
    pub kernel_release: &'a str,
    /// Unpacked raspi-firmware (None for boards that need none).
    pub firmware: Option<&'a Path>,
    pub initramfs: &'a Path,
    pub config: ConfigSource,
    /// config/roomcast.example.toml, when the repository has it.
    pub example: Option<PathBuf>,
}

/// The kernel command line written to cmdline.txt (and given to QEMU).
pub fn cmdline(board: &Board) -> String {
    let id = crate::disk::DISK_ID;
    format!("{} roomcast.root=PARTUUID={id:08x}-02 roomcast.boot=PARTUUID={id:08x}-01", board.boot.cmdline.trim())
}

/// Fills `dir` with the boot partition's files.
pub fn stage(dir: &Path, inp: &Inputs) -> Result<()> {
    crate::exec::fresh_dir(dir)?;
    let board = inp.board;
    if !board.boot.firmware.is_empty() {
        let Some(fw) = inp.firmware else {
            return Err(Error::Config(format!("board {} needs raspi-firmware", board.board.name)));
        };
        for f in &board.boot.firmware {
            copy(&fw.join("usr/lib/raspi-firmware").join(f), &dir.join(f))?;
        }
    }
    let dtb_dir = inp.kernel.join("usr/lib").join(format!("linux-image-{}", inp.kernel_release));
    for dtb in &board.boot.device_trees {
        copy(&dtb_dir.join("broadcom").join(dtb), &dir.join(dtb))?;
    }
    copy(&inp.kernel.join("boot").join(format!("vmlinuz-{}", inp.kernel_release)), &dir.join("vmlinuz"))?;
    copy(inp.initramfs, &dir.join("initrd.img"))?;
    if !board.boot.config_txt.trim().is_empty() {
        let text = format!(
            "# Raspberry Pi firmware settings for the roomcast {} image (board/{}.toml).\n{}",
            board.board.name,
            board.board.name,
            board.boot.config_txt.trim_start()
        );
        write(&dir.join("config.txt"), text)?;
    }
    write(&dir.join("cmdline.txt"), cmdline(board) + "\n")?;
    match &inp.config {
        ConfigSource::Given(path) => {
            copy(path, &dir.join("roomcast.toml")).with_context(|| format!("--config {}", path.display()))?
        }
        ConfigSource::Default(path) if path.exists() => copy(path, &dir.join("roomcast.toml"))?,
        ConfigSource::Default(path) => {
            eprintln!(
                "image: warning: {} does not exist; the image gets a placeholder roomcast.toml \
                 (the box will show a configuration error until you edit it)",
                path.display()
            );
            write(
                &dir.join("roomcast.toml"),
                "# roomcast.toml: the room's settings. This image was built without one:\n\
                 # write yours here (see roomcast.example.toml beside this file).\n",
            )?;
        }
    }
    if let Some(example) = &inp.example {
        copy(example, &dir.join("roomcast.example.toml"))?;
    }
    write(
        &dir.join("README.txt"),
        format!(
            "roomcast meeting-room box ({}): boot partition.\r\n\r\n\
             Edit roomcast.toml in this folder (every setting is explained in roomcast.example.toml),\r\n\
             eject the card, put it in the box and power it on. The box reads roomcast.toml at start;\r\n\
             a mistake in it is shown on the box's display and in its log.\r\n\r\n\
             Do not change the other files.\r\n",
            board.board.description
        ),
    )?;
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).with_context_io(|| format!("copying {}", from.display()))?;
    Ok(())
}

fn write(path: &Path, text: impl AsRef<[u8]>) -> Result<()> {
    std::fs::write(path, text).with_context_io(|| format!("writing {}", path.display()))
}
