//! `cargo image build`: the whole pipeline from a board profile to `roomcast-<board>.img`.

use crate::apt::{self, Apt};
use crate::board::Board;
use crate::bootfs::{self, ConfigSource};
use crate::error::{ErrorContext, IoContext, Result};
use crate::lockfile::{Lock, Pin};
use crate::manifest::{FileInfo, ImageInfo, Manifest};
use crate::modules::ModuleTree;
use crate::paths::Paths;
use crate::{cross, disk, exec, host, initramfs, rootfs, sysroot};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Packages of the cross-compilation sysroot (headers and the libraries the daemon links).
pub const SYSROOT_PACKAGES: &[&str] =
    &["libc6", "libc6-dev", "linux-libc-dev", "libgcc-s1", "libasound2", "libasound2-dev", "libopus0", "libopus-dev"];

/// What to build.
pub struct Options {
    pub board: String,
    pub config: Option<PathBuf>,
    pub out: Option<PathBuf>,
    /// Re-resolve every package to the archive's current version.
    pub update_lock: bool,
    /// Use this daemon binary instead of cross-compiling one.
    pub daemon: Option<PathBuf>,
    /// Cross-compile the daemon from this workspace instead of this repository (e.g. a `git archive`
    /// snapshot of a commit while the working tree is being edited).
    pub source: Option<PathBuf>,
}

/// What was built.
pub struct Built {
    pub image: PathBuf,
    pub manifest: PathBuf,
    pub size: u64,
    pub seconds: f64,
}

/// Builds the image.
pub fn build(opts: &Options) -> Result<Built> {
    let started = Instant::now();
    let paths = Paths::new(opts.out.clone());
    let board = Board::load(&paths.board_profile(&opts.board))
        .with_context(|| format!("unknown board `{}`? profiles are in board/", opts.board))?;
    let epoch = source_date_epoch(&paths.repo);
    std::env::set_var("SOURCE_DATE_EPOCH", epoch.to_string());
    host::prepare()?;
    for dir in [&paths.work, &paths.out] {
        std::fs::create_dir_all(dir).with_context_io(|| format!("creating {}", dir.display()))?;
    }

    // Packages: pinned in image/packages.lock, downloaded into image/cache.
    let apt = Apt::new(&paths.cache)?;
    let mut lock = Lock::load(&paths.lockfile())?;
    let mut resolver = Resolver { apt: &apt, lock: &mut lock, update: opts.update_lock, changed: false };
    let sysroot_pins: Vec<Pin> =
        SYSROOT_PACKAGES.iter().map(|p| resolver.pin(p, false, None)).collect::<Result<_>>()?;
    let kernel_pin = resolver.pin(&board.kernel.package, true, board.kernel.suite.as_deref())?;
    let busybox_pin = resolver.pin("busybox-static", false, None)?;
    let ntpd_pin = resolver.pin("openntpd", false, None)?;
    let alsa_data_pin = resolver.pin("libasound2-data", false, None)?;
    let firmware_pin =
        if board.boot.firmware.is_empty() { None } else { Some(resolver.pin("raspi-firmware", false, None)?) };
    if resolver.changed {
        lock.save(&paths.lockfile())?;
        eprintln!("image: updated {}", paths.lockfile().display());
    }
    let fetch =
        |pins: &[Pin]| -> Result<Vec<(Pin, PathBuf)>> { pins.iter().map(|p| Ok((p.clone(), apt.fetch(p)?))).collect() };
    let unpacked = |name: &str, pins: &[Pin]| -> Result<PathBuf> {
        // One directory per set of packages, so boards with different kernels never share one.
        let key: String = pins.iter().map(|p| p.sha256.as_str()).collect();
        let digest = apt::hex(&<sha2::Sha256 as sha2::Digest>::digest(key.as_bytes()));
        let dir = paths.work.join("pkg").join(format!("{name}-{}", &digest[..12]));
        sysroot::unpack(&dir, &fetch(pins)?)?;
        Ok(dir)
    };
    let sysroot_dir = unpacked("sysroot", &sysroot_pins)?;
    let kernel_dir = unpacked("kernel", std::slice::from_ref(&kernel_pin))?;
    let busybox_dir = unpacked("busybox", std::slice::from_ref(&busybox_pin))?;
    let ntpd_dir = unpacked("openntpd", std::slice::from_ref(&ntpd_pin))?;
    let alsa_data_dir = unpacked("alsa-data", std::slice::from_ref(&alsa_data_pin))?;
    let firmware_dir = match &firmware_pin {
        Some(p) => Some(unpacked("raspi-firmware", std::slice::from_ref(p))?),
        None => None,
    };

    // The daemon, linked against the sysroot.
    let daemon = match &opts.daemon {
        Some(d) => d.clone(),
        None => {
            cross::build_daemon(opts.source.as_deref().unwrap_or(&paths.repo), &sysroot_dir, &paths.work.join("cross"))?
        }
    };

    // Root filesystem.
    let modules = ModuleTree::open(&kernel_dir)?;
    // Staging trees live beside the output, so that builds into different directories never share them.
    let stage = paths.out.join(format!(".stage-{}", board.board.name));
    let root_dir = stage.join("root");
    rootfs::assemble(
        &root_dir,
        &rootfs::Inputs {
            board: &board,
            daemon: &daemon,
            sysroot: &sysroot_dir,
            busybox: &busybox_dir,
            ntpd: &ntpd_dir,
            alsa_data: &alsa_data_dir,
            modules: &modules,
            repo: &paths.repo,
        },
    )?;
    exec::clamp_mtimes(&root_dir, epoch)?;
    let squashfs = stage.join("root.squashfs");
    rootfs::squash(&root_dir, &squashfs, epoch)?;

    // Initramfs and boot partition.
    let initrd = stage.join("initrd.img");
    initramfs::build(&stage.join("initramfs"), &initrd, &board, &busybox_dir, &modules, &paths.repo, epoch)?;
    let config = match &opts.config {
        Some(c) => ConfigSource::Given(c.clone()),
        None => ConfigSource::Default(paths.repo.join("config/roomcast.toml")),
    };
    let example = paths.repo.join("config/roomcast.example.toml");
    let boot_dir = stage.join("boot");
    bootfs::stage(
        &boot_dir,
        &bootfs::Inputs {
            board: &board,
            kernel: &kernel_dir,
            kernel_release: &modules.release,
            firmware: firmware_dir.as_deref(),
            initramfs: &initrd,
            config,
            example: example.exists().then_some(example),
        },
    )?;
    exec::clamp_mtimes(&boot_dir, epoch)?;

    // The image and its manifest.
    let image = paths.image(&board.board.name);
    disk::make(&image, &boot_dir, &squashfs)?;
    let size = file_size(&image)?;
    let mut boot_files = BTreeMap::new();
    let reading_boot = || format!("reading {}", boot_dir.display());
    for e in std::fs::read_dir(&boot_dir).with_context_io(reading_boot)? {
        let p = e.with_context_io(reading_boot)?.path();
        boot_files.insert(p.file_name().unwrap_or_default().to_string_lossy().into_owned(), apt::sha256_file(&p)?);
    }
    let mut packages: Vec<Pin> = sysroot_pins;
    packages.extend([kernel_pin, busybox_pin, ntpd_pin, alsa_data_pin]);
    packages.extend(firmware_pin);
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    let manifest = Manifest {
        image: ImageInfo {
            file: image.file_name().unwrap_or_default().to_string_lossy().into_owned(),
            board: board.board.name.clone(),
            size_bytes: size,
            sha256: apt::sha256_file(&image)?,
            source_date_epoch: epoch,
            git_commit: git_commit(&paths.repo),
            kernel_release: modules.release.clone(),
            root_squashfs_bytes: file_size(&squashfs)?,
        },
        daemon: FileInfo {
            path: "/usr/bin/roomcast".into(),
            size_bytes: file_size(&daemon)?,
            sha256: apt::sha256_file(&daemon)?,
        },
        boot_files,
        packages,
    };
    let manifest_path = PathBuf::from(format!("{}.manifest.toml", image.display()));
    std::fs::write(&manifest_path, manifest.to_toml())
        .with_context_io(|| format!("writing {}", manifest_path.display()))?;
    Ok(Built { image, manifest: manifest_path, size, seconds: started.elapsed().as_secs_f64() })
}

/// The size of a file in bytes.
fn file_size(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path).with_context_io(|| format!("reading the size of {}", path.display()))?.len())
}

/// Chooses and pins package versions.
struct Resolver<'a> {
    apt: &'a Apt,
    lock: &'a mut Lock,
    update: bool,
    changed: bool,
}

impl Resolver<'_> {
    /// The pin of `name`; `meta` means `name` is a metapackage standing for its first dependency
    /// (the kernel).
    fn pin(&mut self, name: &str, meta: bool, suite: Option<&str>) -> Result<Pin> {
        // Pins are keyed by name (or metapackage) and, for another suite, "name/suite".
        let key = match suite {
            Some(s) => format!("{name}/{s}"),
            None => name.to_string(),
        };
        if !self.update {
            if let Some(p) = self.lock.get(&key) {
                return Ok(p.clone());
            }
        }
        self.apt.update(self.update)?;
        let version = match suite {
            Some(s) => Some(self.apt.version_in_suite(name, s)?),
            None => None,
        };
        let mut info = self.apt.show(name, version.as_deref())?;
        let mut via = suite.map(|_| key.clone());
        if meta {
            // The metapackage's first dependency is the real kernel package, at the same version.
            let real = info.depends.split([',', ' ', '|']).find(|s| !s.is_empty()).map(str::to_string);
            if let Some(real) = real.filter(|r| r != name) {
                via = Some(key.clone());
                info = self.apt.show(&real, version.as_deref())?;
            }
        }
        let pin = Pin { name: info.name, via, version: info.version, arch: info.arch, sha256: info.sha256 };
        eprintln!("image: pinned {} {}", pin.name, pin.version);
        self.lock.put(pin.clone());
        self.changed = true;
        Ok(pin)
    }
}

/// SOURCE_DATE_EPOCH from the environment, else the time of the last commit, else a constant.
pub fn source_date_epoch(repo: &Path) -> u64 {
    if let Some(e) = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|v| v.trim().parse().ok()) {
        return e;
    }
    exec::run(Command::new("git").args(["log", "-1", "--format=%ct"]).current_dir(repo))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1_700_000_000)
}

fn git_commit(repo: &Path) -> String {
    exec::run(Command::new("git").args(["rev-parse", "HEAD"]).current_dir(repo))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
