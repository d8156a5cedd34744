//! `cargo image build`: the whole pipeline from a board profile to `roomcast-<board>.img`.

use crate::apt::{self, Apt, Snapshots, SourceList};
use crate::board::{Board, KernelSource};
use crate::bootfs::{self, ConfigSource};
use crate::error::{Error, ErrorContext, IoContext, Result};
use crate::local_deb::LocalDeb;
use crate::lockfile::{Lock, Pin};
use crate::manifest::{FileInfo, ImageInfo, Manifest, Package};
use crate::modules::ModuleTree;
use crate::paths::Paths;
use crate::resolve::{self, LockMode, Request};
use crate::{config_check, cross, disk, exec, host, initramfs, rootfs, sysroot};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Packages of the cross-compilation sysroot (headers and the libraries the daemon links; the root
/// filesystem takes from it only the libraries the daemon's ELF needs).
pub const SYSROOT_PACKAGES: &[&str] = &[
    "libc6",
    "libc6-dev",
    "linux-libc-dev",
    "libgcc-s1",
    "libasound2",
    "libasound2-dev",
    "libopus0",
    "libopus-dev",
    // libaom, the real-time software AV1 encoder (roomcast-media feature "aom").
    "libaom3",
    "libaom-dev",
];

/// The names of the package sets (and of their directories under target/image/pkg).
const SYSROOT: &str = "sysroot";
const KERNEL: &str = "kernel";
const BUSYBOX: &str = "busybox";
const OPENNTPD: &str = "openntpd";
const ALSA_DATA: &str = "alsa-data";
const RASPI_FIRMWARE: &str = "raspi-firmware";

/// Debian packages unpacked together into one directory.
struct PackageSet<'a> {
    name: &'static str,
    requests: Vec<Request<'a>>,
    /// Packages given as files (`--kernel-deb`, `[kernel.source] debs`).
    given: Vec<LocalDeb>,
}

/// Every package an image of `board` is made of: adding a package to the image is one line here
/// (plus its use in rootfs/bootfs).
fn package_sets<'a>(board: &'a Board) -> Vec<PackageSet<'a>> {
    let set = |name: &'static str, requests: Vec<Request<'a>>| PackageSet { name, requests, given: Vec::new() };
    let one = |name: &'static str, package: &'static str| set(name, vec![Request::package(package)]);
    let mut sets = vec![
        set(SYSROOT, SYSROOT_PACKAGES.iter().map(|p| Request::package(p)).collect()),
        set(KERNEL, vec![Request { name: &board.kernel.package, meta: true, suite: board.kernel.suite.as_deref() }]),
        one(BUSYBOX, "busybox-static"),
        one(OPENNTPD, "openntpd"),
        one(ALSA_DATA, "libasound2-data"),
    ];
    if !board.boot.firmware.is_empty() {
        sets.push(one(RASPI_FIRMWARE, "raspi-firmware"));
    }
    sets
}

/// Puts the packages given as files in place of the archive's: a file named like a package of
/// another set (e.g. raspi-firmware) replaces that package; all the others make the kernel set.
fn use_given(sets: &mut [PackageSet], given: Vec<LocalDeb>) {
    if given.is_empty() {
        return;
    }
    let mut kernel = Vec::new();
    for deb in given {
        let set = sets.iter_mut().find(|s| s.name != KERNEL && s.requests.iter().any(|r| r.name == deb.pin.name));
        match set {
            Some(set) => {
                set.requests.retain(|r| r.name != deb.pin.name);
                set.given.push(deb);
            }
            None => kernel.push(deb),
        }
    }
    if let Some(set) = sets.iter_mut().find(|s| s.name == KERNEL).filter(|_| !kernel.is_empty()) {
        set.requests.clear();
        set.given = kernel;
    }
}

/// The packages given as files: `--kernel-deb`, else the board's `[kernel.source] debs`.
fn given_debs(opts: &Options, board: &Board, repo: &Path) -> Result<Vec<LocalDeb>> {
    let files: Vec<PathBuf> = match (&opts.kernel_debs[..], &board.kernel.source) {
        ([], Some(source)) => source.debs.iter().map(|d| repo.join(d)).collect(),
        (given, _) => given.to_vec(),
    };
    files.iter().map(|f| LocalDeb::read(f)).collect()
}

/// What to build.
pub struct Options {
    pub board: String,
    pub config: Option<PathBuf>,
    /// Put `config` on the image even when the box would refuse it.
    pub force: bool,
    pub out: Option<PathBuf>,
    /// How image/packages.lock is honoured (`--locked`, `--update-lock`).
    pub lock: LockMode,
    /// Snapshot archives that still have the pinned versions (`--snapshot`).
    pub snapshots: Snapshots,
    /// Use this daemon binary instead of cross-compiling one.
    pub daemon: Option<PathBuf>,
    /// Cross-compile the daemon from this workspace instead of this repository (e.g. a `git archive`
    /// snapshot of a commit while the working tree is being edited).
    pub source: Option<PathBuf>,
    /// Take the kernel (and its device trees and firmware) from these .deb files (`--kernel-deb`).
    pub kernel_debs: Vec<PathBuf>,
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
    paths.known_board(&opts.board).map_err(Error::Config)?;
    let board = Board::load(&paths.board_profile(&opts.board))?;
    let epoch = source_date_epoch(&paths.repo);
    std::env::set_var("SOURCE_DATE_EPOCH", epoch.to_string());
    host::prepare()?;
    for dir in [&paths.work, &paths.out] {
        std::fs::create_dir_all(dir).with_context_io(|| format!("creating {}", dir.display()))?;
    }

    // The room's configuration, checked as the box reads it before anything is downloaded.
    let config = match &opts.config {
        Some(c) => ConfigSource::Given(c.clone()),
        None => ConfigSource::Default(paths.repo.join(&board.boot.config)),
    };
    match &config {
        ConfigSource::Given(c) if !opts.force => config_check::validate(c, Some(&board))?,
        ConfigSource::Default(c) if c.exists() => config_check::validate(c, Some(&board))
            .with_context(|| format!("the board's default configuration ({})", board.boot.config))?,
        _ => {}
    }

    // Packages: pinned in image/packages.lock, downloaded into image/cache, one directory per set.
    let mut sources = SourceList::debian(&apt::host_mirrors()?, &opts.snapshots);
    if let Some(KernelSource { apt: Some(line), key: Some(key), .. }) = &board.kernel.source {
        sources.add(line, &paths.repo.join(key))?;
    }
    let apt = Apt::new(&paths.cache, &sources)?;
    let mut lock = Lock::load(&paths.lockfile())?;
    let mut sets = package_sets(&board);
    use_given(&mut sets, given_debs(opts, &board, &paths.repo)?);
    let requests: Vec<Request> = sets.iter().flat_map(|s| s.requests.iter().cloned()).collect();
    let resolved = resolve::resolve(&apt, &mut lock, opts.lock, &requests)?;
    if resolved.changed {
        lock.save(&paths.lockfile())?;
        eprintln!("image: updated {}", paths.lockfile().display());
    }
    let mut dirs: BTreeMap<&str, PathBuf> = BTreeMap::new();
    let mut pins = resolved.pins.iter();
    for set in &sets {
        let set_pins: Vec<Pin> = pins.by_ref().take(set.requests.len()).cloned().collect();
        let mut debs = set_pins.iter().map(|p| Ok((p.clone(), apt.fetch(p)?))).collect::<Result<Vec<_>>>()?;
        debs.extend(set.given.iter().map(|d| (d.pin.clone(), d.path.clone())));
        // One directory per set of packages, so boards with different kernels never share one.
        let key: String = debs.iter().map(|(p, _)| p.sha256.as_str()).collect();
        let digest = apt::hex(&<sha2::Sha256 as sha2::Digest>::digest(key.as_bytes()));
        let dir = paths.work.join("pkg").join(format!("{}-{}", set.name, &digest[..12]));
        sysroot::unpack(&dir, &debs)?;
        dirs.insert(set.name, dir);
    }
    let dir = |name: &str| dirs.get(name).cloned().expect("every package set is unpacked");
    let (sysroot_dir, kernel_dir) = (dir(SYSROOT), dir(KERNEL));

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
            busybox: &dir(BUSYBOX),
            ntpd: &dir(OPENNTPD),
            alsa_data: &dir(ALSA_DATA),
            modules: &modules,
            repo: &paths.repo,
        },
    )?;
    exec::clamp_mtimes(&root_dir, epoch)?;
    let squashfs = stage.join("root.squashfs");
    rootfs::squash(&root_dir, &squashfs, epoch)?;

    // Initramfs and boot partition.
    let initrd = stage.join("initrd.img");
    initramfs::build(&stage.join("initramfs"), &initrd, &board, &dir(BUSYBOX), &modules, &paths.repo, epoch)?;
    let example = paths.repo.join("config/roomcast.example.toml");
    let boot_dir = stage.join("boot");
    bootfs::stage(
        &boot_dir,
        &bootfs::Inputs {
            board: &board,
            kernel: &kernel_dir,
            kernel_release: &modules.release,
            firmware: dirs.get(RASPI_FIRMWARE).map(PathBuf::as_path),
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
    let mut packages: Vec<Package> = resolved.pins.into_iter().map(|pin| Package { pin, file: None }).collect();
    let given = sets.iter().flat_map(|s| &s.given);
    packages.extend(given.map(|d| Package { pin: d.pin.clone(), file: Some(d.file_name()) }));
    packages.sort_by(|a, b| a.pin.name.cmp(&b.pin.name));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn deb(name: &str) -> LocalDeb {
        let pin = Pin { name: name.into(), via: None, version: "1".into(), arch: "arm64".into(), sha256: "ab".into() };
        LocalDeb { pin, path: PathBuf::from(format!("{name}.deb")) }
    }

    fn names<'a>(sets: &'a [PackageSet], set: &str) -> (Vec<&'a str>, Vec<&'a str>) {
        let s = sets.iter().find(|s| s.name == set).unwrap();
        (s.requests.iter().map(|r| r.name).collect(), s.given.iter().map(|d| d.pin.name.as_str()).collect())
    }

    #[test]
    fn given_files_replace_the_kernel_and_the_packages_they_are_named_like() {
        let board = Board::load(&crate::paths::repo_root().join("board/pi4.toml")).unwrap();
        let mut sets = package_sets(&board);
        use_given(&mut sets, vec![deb("linux-image-6.6.74+rpt-rpi-v8"), deb("raspi-firmware")]);
        assert_eq!(names(&sets, KERNEL), (vec![], vec!["linux-image-6.6.74+rpt-rpi-v8"]));
        assert_eq!(names(&sets, RASPI_FIRMWARE), (vec![], vec!["raspi-firmware"]));
        assert_eq!(names(&sets, BUSYBOX), (vec!["busybox-static"], vec![]));

        // Only firmware given: the kernel still comes from the archive.
        let mut sets = package_sets(&board);
        use_given(&mut sets, vec![deb("raspi-firmware")]);
        assert_eq!(names(&sets, KERNEL), (vec!["linux-image-arm64"], vec![]));
    }
}
