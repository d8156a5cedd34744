//! The disk image, made without privileges: an MBR partition table written by sfdisk on a plain
//! file, the FAT boot partition made in place by mkfs.vfat --offset and filled by mtools, and the
//! squashfs root written at its partition's offset. Layout (512-byte sectors):
//!
//! | partition | start   | size      | type | contents                         |
//! |-----------|---------|-----------|------|----------------------------------|
//! | 1         | 4 MiB   | 128 MiB   | 0x0c | FAT32 "RC-BOOT": firmware, kernel, roomcast.toml |
//! | 2         | 132 MiB | root size | 0x83 | squashfs root (read-only)        |

use crate::bootfs::LABEL;
use crate::error::{Error, IoContext, Result};
use crate::exec;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Stdio};

pub const SECTOR: u64 = 512;
pub const MIB: u64 = 1024 * 1024;
/// Where the boot partition starts.
pub const BOOT_START: u64 = 4 * MIB;
/// Size of the boot partition.
pub const BOOT_SIZE: u64 = 128 * MIB;
/// Fixed disk identifier and FAT volume id, so that the image is reproducible.
pub const DISK_ID: u32 = 0x5243_0001;

/// A partition as found in an MBR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    pub kind: u8,
    pub start: u64,
    pub size: u64,
}

/// Writes the image `img` from the staged boot files and the squashfs root.
pub fn make(img: &Path, boot_dir: &Path, root_squashfs: &Path) -> Result<()> {
    let root_len = std::fs::metadata(root_squashfs)
        .with_context_io(|| format!("reading the size of {}", root_squashfs.display()))?
        .len();
    let root_size = root_len.div_ceil(4 * MIB) * 4 * MIB;
    let root_start = BOOT_START + BOOT_SIZE;
    let total = root_start + root_size;
    if img.exists() {
        std::fs::remove_file(img).with_context_io(|| format!("removing {}", img.display()))?;
    }
    std::fs::File::create(img)
        .and_then(|f| f.set_len(total))
        .with_context_io(|| format!("creating {}", img.display()))?;

    let script = format!(
        "label: dos\nlabel-id: 0x{DISK_ID:08x}\nunit: sectors\n\n\
         start={}, size={}, type=c, bootable\nstart={}, size={}, type=83\n",
        BOOT_START / SECTOR,
        BOOT_SIZE / SECTOR,
        root_start / SECTOR,
        root_size / SECTOR
    );
    let mut sfdisk = Command::new("sfdisk");
    sfdisk.args(["--no-reread", "--no-tell-kernel", "--quiet"]).arg(img);
    let shown = exec::describe(&sfdisk);
    let mut child = sfdisk
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context_io("starting sfdisk")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).context_io("writing the partition table to sfdisk")?;
    }
    let out = child.wait_with_output().context_io("waiting for sfdisk")?;
    if !out.status.success() {
        return Err(Error::Command {
            command: shown,
            status: out.status.to_string(),
            output: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }

    // The FAT is made in its own file (mtools is happiest with a whole-file filesystem), then
    // written at its partition's offset.
    let fat = img.with_extension("boot.vfat");
    if fat.exists() {
        std::fs::remove_file(&fat).with_context_io(|| format!("removing {}", fat.display()))?;
    }
    exec::run(
        Command::new("mkfs.vfat")
            .args(["-F", "32", "-n", LABEL, "-i", &format!("{DISK_ID:08x}"), "--invariant", "-C"])
            .arg(format!("-h{}", BOOT_START / SECTOR))
            .arg(&fat)
            .arg((BOOT_SIZE / 1024).to_string()),
    )?;
    let mut files: Vec<_> = std::fs::read_dir(boot_dir)
        .with_context_io(|| format!("reading {}", boot_dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    files.sort();
    if !files.is_empty() {
        exec::run(
            Command::new("mcopy").env("MTOOLS_SKIP_CHECK", "1").arg("-i").arg(&fat).arg("-m").args(&files).arg("::"),
        )?;
    }
    write_at(img, BOOT_START, &fat)?;
    std::fs::remove_file(&fat).with_context_io(|| format!("removing {}", fat.display()))?;
    write_at(img, root_start, root_squashfs)?;
    Ok(())
}

/// Writes the contents of `src` into `img` at byte `offset` (like `dd conv=notrunc seek=`).
fn write_at(img: &Path, offset: u64, src: &Path) -> Result<()> {
    (|| {
        let mut out = std::fs::OpenOptions::new().write(true).open(img)?;
        out.seek(SeekFrom::Start(offset))?;
        std::io::copy(&mut std::fs::File::open(src)?, &mut out)?;
        out.flush()
    })()
    .with_context_io(|| format!("writing {} into {} at byte {offset}", src.display(), img.display()))
}
/// The mtools image spec of a FAT at `offset` in `img`.
pub fn fat_spec(img: &Path, offset: u64) -> String {
    format!("{}@@{offset}", img.display())
}

/// Reads the four primary partitions of an MBR disk image.
pub fn partitions(img: &Path) -> Result<Vec<Partition>> {
    let mut mbr = [0u8; 512];
    std::fs::File::open(img)
        .with_context_io(|| format!("opening {}", img.display()))?
        .read_exact(&mut mbr)
        .with_context_io(|| format!("reading the partition table of {}", img.display()))?;
    parse_mbr(&mbr)
}

/// Parses an MBR sector.
pub fn parse_mbr(mbr: &[u8; 512]) -> Result<Vec<Partition>> {
    if mbr[510..512] != [0x55, 0xAA] {
        return Err(Error::Disk("no MBR partition table (signature missing)".into()));
    }
    let mut parts = Vec::new();
    for i in 0..4 {
        let e = &mbr[446 + 16 * i..446 + 16 * (i + 1)];
        let kind = e[4];
        let start = u32::from_le_bytes([e[8], e[9], e[10], e[11]]) as u64 * SECTOR;
        let size = u32::from_le_bytes([e[12], e[13], e[14], e[15]]) as u64 * SECTOR;
        if kind != 0 {
            parts.push(Partition { kind, start, size });
        }
    }
    Ok(parts)
}

/// Copies `name` out of the image's boot partition into `dest` (mtools, no mount).
pub fn read_boot_file(img: &Path, name: &str, dest: &Path) -> Result<()> {
    let boot = partitions(img)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Disk(format!("{} has no boot partition", img.display())))?;
    exec::run(
        Command::new("mcopy")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-o", "-n", "-i"])
            .arg(fat_spec(img, boot.start))
            .arg(format!("::{name}"))
            .arg(dest),
    )?;
    Ok(())
}

/// Replaces (or adds) `name` in the image's boot partition with the file `src`, as a user does
/// when editing roomcast.toml on the SD card.
pub fn write_boot_file(img: &Path, src: &Path, name: &str) -> Result<()> {
    let boot = partitions(img)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Disk(format!("{} has no boot partition", img.display())))?;
    exec::run(
        Command::new("mcopy")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-o", "-n", "-i"])
            .arg(fat_spec(img, boot.start))
            .arg(src)
            .arg(format!("::{name}")),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_mbr() {
        let mut mbr = [0u8; 512];
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        mbr[446 + 4] = 0x0c;
        mbr[446 + 8..446 + 12].copy_from_slice(&8192u32.to_le_bytes());
        mbr[446 + 12..446 + 16].copy_from_slice(&262144u32.to_le_bytes());
        mbr[462 + 4] = 0x83;
        mbr[462 + 8..462 + 12].copy_from_slice(&270336u32.to_le_bytes());
        mbr[462 + 12..462 + 16].copy_from_slice(&8192u32.to_le_bytes());
        let p = parse_mbr(&mbr).unwrap();
        assert_eq!(
            p,
            vec![
                Partition { kind: 0x0c, start: BOOT_START, size: BOOT_SIZE },
                Partition { kind: 0x83, start: BOOT_START + BOOT_SIZE, size: 4 * MIB },
            ]
        );
        mbr[511] = 0;
        assert!(parse_mbr(&mbr).is_err());
    }
}
