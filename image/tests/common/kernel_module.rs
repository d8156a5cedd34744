//! Kernel modules for the qemu-virt guest's kernel, shared by the QEMU tests: out-of-tree
//! drivers Debian does not build (amt.ko for the AMT interop test, vicodec.ko for the M2M codec
//! test), and the kernel package's own (mac80211_hwsim for the Wi-Fi test). Everything comes from Debian's own packages, each run, cached under
//! target/kernel-modules/VERSION: the arm64 linux-headers of the guest's kernel (pinned in
//! image/packages.lock; the image builder's private apt), the amd64 linux-kbuild of its series
//! (host binaries of scripts/; the headers package asks for any version >= its own) and the
//! driver's sources from linux-source at exactly the kernel's version. `modinfo` must show the
//! guest kernel's vermagic. Test payloads go to the guest on a FAT disk made with mtools.

#![allow(dead_code)] // each test binary uses a part

use roomcast_image::apt::{self, Apt, Snapshots, SourceList};
use roomcast_image::lockfile::{Lock, Pin};
use roomcast_image::modules::ModuleTree;
use roomcast_image::{board::Board, paths, sysroot};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The QEMU tests share the image builder's package cache (its private apt runs without apt's
/// own locking) and target/kernel-modules, in one test binary and across the binaries tests/run
/// starts side by side: what uses them holds this, the image builder's own lock on the cache
/// (`roomcast_image::build::lock_cache`). Their guests still run side by side. Not held across
/// an image build (the builder takes it itself).
pub fn prepare_lock() -> std::fs::File {
    roomcast_image::build::lock_cache(&paths::Paths::new(None).cache).expect("locking the image builder's cache")
}

/// Runs `cmd`, panics unless it succeeds, returns its stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.stderr(Stdio::inherit()).output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A .deb of the host's architecture from the host's apt (`NAME` or `NAME=VERSION`), cached in `dir`.
pub fn host_deb(dir: &Path, spec: &str) -> PathBuf {
    let (name, version) = spec.split_once('=').unwrap_or((spec, ""));
    let find = || {
        std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| {
            let f = p.file_name().unwrap_or_default().to_string_lossy().into_owned();
            f.starts_with(&format!("{name}_{version}")) && f.ends_with(".deb")
        })
    };
    if let Some(p) = find() {
        return p;
    }
    std::fs::create_dir_all(dir).unwrap();
    run(Command::new("apt-get").current_dir(dir).args(["-q", "-o", "APT::Sandbox::User=root", "download", spec]));
    find().unwrap_or_else(|| panic!("apt-get download {spec} left no .deb in {}", dir.display()))
}

/// An arm64 package from the image builder's private apt (at `version`, or the candidate).
pub fn arm64_deb(apt: &Apt, name: &str, version: Option<&str>) -> (Pin, PathBuf) {
    let info = apt.show(name, version).unwrap();
    let pin = Pin { name: info.name, via: None, version: info.version, arch: info.arch, sha256: info.sha256 };
    let deb = apt.fetch(&pin).unwrap();
    (pin, deb)
}

/// The guest kernel's build environment: headers, kbuild, the package itself.
pub struct KernelTree {
    /// The pinned kernel package.
    pub kernel: Pin,
    /// `uname -r` of the guest, e.g. 6.1.0-56-arm64.
    pub release: String,
    /// e.g. 6.1.
    pub series: String,
    /// target/kernel-modules/VERSION.
    pub cache: PathBuf,
    /// The headers tree `make -C` builds against.
    pub headers: PathBuf,
    /// The image builder's private apt (arm64).
    pub apt: Apt,
}

/// Fetches and unpacks what building a module for the qemu-virt guest's kernel needs (cached).
pub fn kernel_tree() -> KernelTree {
    let p = paths::Paths::new(None);
    let board = Board::load(&p.board_profile("qemu-virt")).unwrap();
    let lock = Lock::load(&p.lockfile()).unwrap();
    let key = match &board.kernel.suite {
        Some(s) => format!("{}/{s}", board.kernel.package),
        None => board.kernel.package.clone(),
    };
    let kernel = lock.get(&key).unwrap_or_else(|| panic!("{key} is not pinned in image/packages.lock")).clone();
    // linux-image-6.1.0-56-arm64 6.1.192-2 → release 6.1.0-56-arm64, ABI 6.1.0-56, series 6.1.
    let release = kernel.name.strip_prefix("linux-image-").expect("a linux-image package").to_string();
    let abi = release.rsplit_once('-').unwrap().0.to_string();
    let series: String = kernel.version.split('.').take(2).collect::<Vec<_>>().join(".");
    let cache = paths::repo_root().join("target/kernel-modules").join(&kernel.version);
    let apt = Apt::new(&p.cache, &SourceList::debian(&apt::host_mirrors().unwrap(), &Snapshots::default())).unwrap();
    apt.update(false).unwrap(); // the lists, once (a fresh checkout has none)
    let root = cache.join("root");
    let headers = root.join(format!("usr/src/linux-headers-{release}"));
    if !headers.join("Module.symvers").exists() {
        let mut debs = vec![
            arm64_deb(&apt, &format!("linux-headers-{release}"), Some(&kernel.version)),
            arm64_deb(&apt, &format!("linux-headers-{abi}-common"), Some(&kernel.version)),
        ];
        let kbuild = host_deb(&cache.join("dl"), &format!("linux-kbuild-{series}"));
        debs.push((Pin { name: format!("linux-kbuild-{series}"), ..kernel.clone() }, kbuild));
        for (_, deb) in &debs {
            run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root));
        }
    }
    // The headers' Makefile includes the common headers by their installed absolute path.
    std::fs::write(
        headers.join("Makefile"),
        format!("include {}\n", root.join(format!("usr/src/linux-headers-{abi}-common/Makefile")).display()),
    )
    .unwrap();
    KernelTree { kernel, release, series, cache, headers, apt }
}

impl KernelTree {
    /// Extracts `files` (paths inside the kernel tree, e.g. drivers/net/amt.c) from linux-source
    /// at the kernel's version into `dest`, flat; skipped when all are there.
    pub fn sources(&self, files: &[&str], dest: &Path) {
        let name = |f: &str| dest.join(Path::new(f).file_name().unwrap());
        if files.iter().all(|f| name(f).exists()) {
            return;
        }
        // Architecture-independent, so the builder's own (fresh) arm64 lists have it at the pinned version.
        let (_, deb) = arm64_deb(&self.apt, &format!("linux-source-{}", self.series), Some(&self.kernel.version));
        let part = dest.join(".part");
        let _ = std::fs::remove_dir_all(&part);
        std::fs::create_dir_all(&part).unwrap();
        let members: Vec<String> = files.iter().map(|f| format!("'linux-source-{}/{f}'", self.series)).collect();
        let script = format!(
            "dpkg-deb --fsys-tarfile '{deb}' | tar -xO ./usr/src/linux-source-{s}.tar.xz | xz -dc \
             | tar -x -C '{part}' {members}",
            deb = deb.display(),
            s = self.series,
            part = part.display(),
            members = members.join(" ")
        );
        run(Command::new("sh").args(["-c", &script]));
        for f in files {
            let src = part.join(format!("linux-source-{}", self.series)).join(f);
            std::fs::rename(&src, name(f)).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        }
        let _ = std::fs::remove_dir_all(&part);
    }

    /// Builds the module(s) in `dir` (its sources there, `kbuild` as its Kbuild) for the guest's
    /// kernel with the aarch64 cross compiler; returns `ko`'s path and vermagic, which must be
    /// the guest kernel's.
    pub fn build(&self, dir: &Path, kbuild: &str, ko: &str) -> (PathBuf, String) {
        std::fs::write(dir.join("Kbuild"), kbuild).unwrap();
        let started = Instant::now();
        run(Command::new("nice").arg("make").arg("-C").arg(&self.headers).arg(format!("M={}", dir.display())).args([
            "ARCH=arm64",
            "CROSS_COMPILE=aarch64-linux-gnu-",
            "modules",
        ]));
        eprintln!("{ko} built in {:.0} s", started.elapsed().as_secs_f64());
        let path = dir.join(ko);
        let vermagic = run(Command::new("modinfo").args(["-F", "vermagic"]).arg(&path)).trim().to_string();
        assert!(
            vermagic.starts_with(&format!("{} ", self.release)),
            "{ko}'s vermagic {vermagic:?} does not match the guest kernel {}",
            self.release
        );
        (path, vermagic)
    }

    /// The `depends` of a built module.
    pub fn depends(&self, ko: &Path) -> Vec<String> {
        let d = run(Command::new("modinfo").args(["-F", "depends"]).arg(ko));
        d.trim().split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
    }

    /// The kernel package unpacked (its modules), cached.
    pub fn modules(&self) -> (PathBuf, ModuleTree) {
        let dir = self.cache.join("kernel");
        sysroot::unpack(&dir, &[(self.kernel.clone(), self.apt.fetch(&self.kernel).unwrap())]).unwrap();
        let tree = ModuleTree::open(&dir).unwrap();
        assert_eq!(tree.release, self.release);
        (dir, tree)
    }

    /// Copies the kernel's own modules `names` needs (themselves and their dependencies, in load
    /// order) flat into `dest`; returns their file names in load order.
    pub fn copy_modules(&self, names: &[&str], dest: &Path) -> Vec<String> {
        let (_, tree) = self.modules();
        let want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let order = tree.load_order(&want).unwrap();
        let tmp = dest.join(".modules");
        let mut out = Vec::new();
        for m in &order {
            let rel = tree.copy_module(m, &tmp).unwrap();
            let file = Path::new(&rel).file_name().unwrap().to_string_lossy().into_owned();
            std::fs::rename(tmp.join(&rel), dest.join(&file)).unwrap();
            out.push(file);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        out
    }
}

/// A FAT disk image at `disk` (labelled `label`; 16 MiB, or twice what `files` hold when that
/// is more) holding `files` (files or directories).
pub fn fat_disk(disk: &Path, label: &str, files: &[PathBuf]) {
    fn bytes(p: &Path) -> u64 {
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => std::fs::read_dir(p).unwrap().map(|e| bytes(&e.unwrap().path())).sum(),
            Ok(m) => m.len(),
            Err(_) => 0,
        }
    }
    let kib = (files.iter().map(|f| bytes(f)).sum::<u64>() * 2 / 1024).max(16384);
    let _ = std::fs::remove_file(disk);
    run(Command::new("mkfs.vfat").args(["-n", label, "-C"]).arg(disk).arg(kib.to_string()));
    run(Command::new("mcopy").args(["-s", "-i"]).arg(disk).args(files).arg("::/"));
}
