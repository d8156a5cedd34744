//! roomcast-image: builds the bootable SD-card image of the meeting-room box and boots the
//! qemu-virt image in QEMU.
//!
//! The build is a straight pipeline (see [`build`]: prepare, build, assemble, write): host tools →
//! the pinned Debian arm64 packages of the table in [`packages`] ([`apt`], [`lockfile`], [`resolve`],
//! or files given with `--kernel-deb`: [`local_deb`]) → a sysroot ([`sysroot`]) → the cross-compiled daemon ([`cross`]) →
//! the root filesystem ([`rootfs`], [`elf`], [`modules`]) → the initramfs ([`initramfs`]) → the
//! boot partition ([`bootfs`]) → the disk image ([`disk`]) and its manifest ([`manifest`]).
//! Everything runs unprivileged: no mount, no loop devices, no sudo.

pub mod apt;
pub mod board;
pub mod bootfs;
pub mod build;
pub mod config_check;
pub mod cross;
pub mod disk;
pub mod elf;
pub mod error;
pub mod exec;
pub mod host;
pub mod initramfs;
pub mod local_deb;
pub mod lockfile;
pub mod manifest;
pub mod modules;
pub mod packages;
pub mod paths;
pub mod qemu;
pub mod resolve;
pub mod rootfs;
pub mod sysroot;
pub mod wifi;

pub use error::{Error, Result};
