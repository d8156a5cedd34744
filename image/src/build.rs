//! `cargo image build`: the pipeline from a board profile to `roomcast-<board>.img`, in four phases:
//! - [`prepare`]: the board profile, the room's configuration checked, host tools, and every
//!   package of the table ([`crate::packages`]) resolved against packages.lock, fetched and unpacked;
//! - [`build_daemon`]: the daemon cross-compiled against the sysroot (or the one given);
//! - [`assemble`]: the root filesystem (squashfs), the initramfs and the boot partition's files;
//! - [`write`]: the disk image and its manifest.

use crate::apt::{self, Apt, SourceList};
use crate::board::{Board, KernelSource};
use crate::bootfs::{self, ConfigSource};
use crate::error::{Error, ErrorContext, IoContext, Result};
use crate::local_deb::LocalDeb;
use crate::lockfile::{Lock, Pin};
use crate::manifest::{FileInfo, ImageInfo, Manifest, Package};
use crate::modules::ModuleTree;
use crate::packages::{self, Set};
use crate::paths::Paths;
use crate::resolve::{self, LockMode, Request};
use crate::{config_check, cross, disk, exec, host, initramfs, rootfs, sysroot};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

pub use crate::packages::SYSROOT_PACKAGES;

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
    pub snapshots: apt::Snapshots,
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
    // One build at a time per checkout: builds share the package cache (apt's lists and .debs,
    // apt's own locking is off in our private config) and the daemon's cross build.
    let _one_build = lock_cache(&Paths::new(opts.out.clone()).cache)?;
    let prepared = prepare(opts)?;
    let daemon = build_daemon(opts, &prepared)?;
    let assembled = assemble(&prepared, &daemon)?;
    let (image, manifest, size) = write(&prepared, &daemon, &assembled)?;
    Ok(Built { image, manifest, size, seconds: started.elapsed().as_secs_f64() })
}

/// An exclusive lock on `cache/.build-lock`, held until the returned file is dropped; waits (and
/// says so) while another build holds it. Builds take it, and so does anything else that uses
/// the builder's private apt over `cache` (the kernel-module tests), across processes.
pub fn lock_cache(cache: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(cache).with_context_io(|| format!("creating {}", cache.display()))?;
    let path = cache.join(".build-lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context_io(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            eprintln!("image: waiting for another build that uses {}", cache.display());
            file.lock().with_context_io(|| format!("locking {}", path.display()))?;
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(Error::Io { what: format!("locking {}", path.display()), source: e })
        }
    }
    Ok(file)
}

/// The inputs of the image, on disk: the output of [`prepare`].
pub struct Prepared {
    pub paths: Paths,
    pub board: Board,
    pub epoch: u64,
    pub config: ConfigSource,
    /// Where each set of the package table was unpacked.
    pub unpacked: BTreeMap<Set, PathBuf>,
    /// Every package of the image (pinned ones, and the files given instead).
    pub packages: Vec<Package>,
}

impl Prepared {
    /// The directory `set` was unpacked into (None for a set this board has no row for).
    pub fn dir(&self, set: Set) -> Option<&Path> {
        self.unpacked.get(&set).map(PathBuf::as_path)
    }

    fn required(&self, set: Set) -> Result<&Path> {
        self.dir(set)
            .ok_or_else(|| Error::Config(format!("board {} has no {} packages", self.board.board.name, set.dir_name())))
    }
}

/// Phase 1: the board, the configuration checked, host tools, and the packages unpacked.
pub fn prepare(opts: &Options) -> Result<Prepared> {
    let paths = Paths::new(opts.out.clone());
    paths.known_board(&opts.board).map_err(Error::Config)?;
    let board = Board::load(&paths.board_profile(&opts.board))?;
    let epoch = source_date_epoch(&paths.repo);
    std::env::set_var("SOURCE_DATE_EPOCH", epoch.to_string());
    host::prepare()?;
    for dir in [&paths.work, &paths.out] {
        std::fs::create_dir_all(dir).with_context_io(|| format!("creating {}", dir.display()))?;
    }
    let config = checked_config(opts, &paths, &board)?;
    let (unpacked, packages) = unpack_packages(opts, &paths, &board)?;
    Ok(Prepared { paths, board, epoch, config, unpacked, packages })
}

/// The room's configuration, checked as the box reads it before anything is downloaded.
fn checked_config(opts: &Options, paths: &Paths, board: &Board) -> Result<ConfigSource> {
    let config = match &opts.config {
        Some(c) => ConfigSource::Given(c.clone()),
        None => ConfigSource::Default(paths.repo.join(&board.boot.config)),
    };
    match &config {
        ConfigSource::Given(c) if !opts.force => config_check::validate(c, Some(board))?,
        ConfigSource::Default(c) if c.exists() => config_check::validate(c, Some(board))
            .with_context(|| format!("the board's default configuration ({})", board.boot.config))?,
        _ => {}
    }
    Ok(config)
}

/// Packages: pinned in image/packages.lock, downloaded into image/cache, one directory per set.
fn unpack_packages(opts: &Options, paths: &Paths, board: &Board) -> Result<(BTreeMap<Set, PathBuf>, Vec<Package>)> {
    let mut sources = SourceList::debian(&apt::host_mirrors()?, &opts.snapshots);
    if let Some(KernelSource { apt: Some(line), key: Some(key), .. }) = &board.kernel.source {
        sources.add(line, &paths.repo.join(key))?;
    }
    let apt = Apt::new(&paths.cache, &sources)?;
    let mut lock = Lock::load(&paths.lockfile())?;
    let mut sets = packages::sets_for(board);
    packages::use_given(&mut sets, given_debs(opts, board, &paths.repo)?);
    let requests: Vec<Request> = sets.iter().flat_map(|s| s.requests.iter().cloned()).collect();
    let resolved = resolve::resolve(&apt, &mut lock, opts.lock, &requests)?;
    if resolved.changed {
        lock.save(&paths.lockfile())?;
        eprintln!("image: updated {}", paths.lockfile().display());
    }
    let mut unpacked = BTreeMap::new();
    let mut pins = resolved.pins.iter();
    for set in &sets {
        let set_pins: Vec<Pin> = pins.by_ref().take(set.requests.len()).cloned().collect();
        let mut debs = set_pins.iter().map(|p| Ok((p.clone(), apt.fetch(p)?))).collect::<Result<Vec<_>>>()?;
        debs.extend(set.given.iter().map(|d| (d.pin.clone(), d.path.clone())));
        // One directory per set of packages, so boards with different kernels never share one.
        let key: String = debs.iter().map(|(p, _)| p.sha256.as_str()).collect();
        let digest = apt::hex(&<sha2::Sha256 as sha2::Digest>::digest(key.as_bytes()));
        let dir = paths.work.join("pkg").join(format!("{}-{}", set.set.dir_name(), &digest[..12]));
        sysroot::unpack(&dir, &debs)?;
        unpacked.insert(set.set, dir);
    }
    let mut packages: Vec<Package> = resolved.pins.into_iter().map(|pin| Package { pin, file: None }).collect();
    let given = sets.iter().flat_map(|s| &s.given);
    packages.extend(given.map(|d| Package { pin: d.pin.clone(), file: Some(d.file_name()) }));
    packages.sort_by(|a, b| a.pin.name.cmp(&b.pin.name));
    Ok((unpacked, packages))
}

/// The packages given as files: `--kernel-deb`, else the board's `[kernel.source] debs`.
fn given_debs(opts: &Options, board: &Board, repo: &Path) -> Result<Vec<LocalDeb>> {
    let files: Vec<PathBuf> = match (&opts.kernel_debs[..], &board.kernel.source) {
        ([], Some(source)) => source.debs.iter().map(|d| repo.join(d)).collect(),
        (given, _) => given.to_vec(),
    };
    files.iter().map(|f| LocalDeb::read(f)).collect()
}

/// Phase 2: the daemon, linked against the sysroot (or `--daemon`).
pub fn build_daemon(opts: &Options, p: &Prepared) -> Result<PathBuf> {
    match &opts.daemon {
        Some(d) => Ok(d.clone()),
        None => cross::build_daemon(
            opts.source.as_deref().unwrap_or(&p.paths.repo),
            p.required(Set::Sysroot)?,
            &p.paths.work.join("cross"),
        ),
    }
}

/// The trees of an image before it is written: the output of [`assemble`].
pub struct Assembled {
    pub modules: ModuleTree,
    pub squashfs: PathBuf,
    pub boot_dir: PathBuf,
}

/// Phase 3: the root filesystem, the initramfs and the boot partition's files.
pub fn assemble(p: &Prepared, daemon: &Path) -> Result<Assembled> {
    let modules = ModuleTree::open(p.required(Set::Kernel)?)?;
    // Staging trees live beside the output, so that builds into different directories never share them.
    let stage = p.paths.out.join(format!(".stage-{}", p.board.board.name));
    let root_dir = stage.join("root");
    rootfs::assemble(
        &root_dir,
        &rootfs::Inputs {
            board: &p.board,
            daemon,
            sysroot: p.required(Set::Sysroot)?,
            busybox: p.required(Set::Busybox)?,
            ntpd: p.required(Set::Ntpd)?,
            alsa_data: p.required(Set::AlsaData)?,
            wifi: p.dir(Set::Wifi),
            wifi_firmware: p.dir(Set::WifiFirmware),
            modules: &modules,
            repo: &p.paths.repo,
        },
    )?;
    exec::clamp_mtimes(&root_dir, p.epoch)?;
    let squashfs = stage.join("root.squashfs");
    rootfs::squash(&root_dir, &squashfs, p.epoch)?;

    let initrd = stage.join("initrd.img");
    let busybox = p.required(Set::Busybox)?;
    initramfs::build(&stage.join("initramfs"), &initrd, &p.board, busybox, &modules, &p.paths.repo, p.epoch)?;
    let example = p.paths.repo.join("config/roomcast.example.toml");
    let boot_dir = stage.join("boot");
    bootfs::stage(
        &boot_dir,
        &bootfs::Inputs {
            board: &p.board,
            kernel: p.required(Set::Kernel)?,
            kernel_release: &modules.release,
            firmware: p.dir(Set::RaspiFirmware),
            initramfs: &initrd,
            config: p.config.clone(),
            example: example.exists().then_some(example),
        },
    )?;
    exec::clamp_mtimes(&boot_dir, p.epoch)?;
    Ok(Assembled { modules, squashfs, boot_dir })
}

/// Phase 4: the disk image and its manifest; returns their paths and the image's size.
pub fn write(p: &Prepared, daemon: &Path, a: &Assembled) -> Result<(PathBuf, PathBuf, u64)> {
    let image = p.paths.image(&p.board.board.name);
    disk::make(&image, &a.boot_dir, &a.squashfs)?;
    let size = file_size(&image)?;
    let mut boot_files = BTreeMap::new();
    let reading_boot = || format!("reading {}", a.boot_dir.display());
    for e in std::fs::read_dir(&a.boot_dir).with_context_io(reading_boot)? {
        let path = e.with_context_io(reading_boot)?.path();
        boot_files
            .insert(path.file_name().unwrap_or_default().to_string_lossy().into_owned(), apt::sha256_file(&path)?);
    }
    let manifest = Manifest {
        image: ImageInfo {
            file: image.file_name().unwrap_or_default().to_string_lossy().into_owned(),
            board: p.board.board.name.clone(),
            size_bytes: size,
            sha256: apt::sha256_file(&image)?,
            source_date_epoch: p.epoch,
            git_commit: git_commit(&p.paths.repo),
            kernel_release: a.modules.release.clone(),
            root_squashfs_bytes: file_size(&a.squashfs)?,
        },
        daemon: FileInfo {
            path: "/usr/bin/roomcast".into(),
            size_bytes: file_size(daemon)?,
            sha256: apt::sha256_file(daemon)?,
        },
        boot_files,
        packages: p.packages.clone(),
    };
    let manifest_path = PathBuf::from(format!("{}.manifest.toml", image.display()));
    std::fs::write(&manifest_path, manifest.to_toml())
        .with_context_io(|| format!("writing {}", manifest_path.display()))?;
    Ok((image, manifest_path, size))
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
