//! `cargo image build --kernel-deb FILE`: the kernel comes from a .deb given as a file (as Raspberry
//! Pi's linux-image-rpi-v8 would, from archive.raspberrypi.com), not from Debian's archive.
//!
//! The given file is Debian's own pinned kernel package repacked under another release name
//! (`<release>-rcgiven`, package linux-image-<release>-rcgiven), so that an image still carrying the
//! archive's kernel cannot pass: the built image's root filesystem and initramfs have that release's
//! modules directory and no other, its boot partition's vmlinuz is the file's, and the manifest lists
//! the package with its file name and sha256 (and not the archive's kernel).
//!
//! The image's other packages are the pinned ones (`--locked`), from the builder's cache when it has
//! them; the daemon is a small aarch64 program (no cross build). Needs the image's build tools.

use roomcast_image::apt::{self, Apt, Snapshots, SourceList};
use roomcast_image::lockfile::Lock;
use roomcast_image::{disk, paths};
use roomcast_test_support::require_tool;
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tools() -> bool {
    let need = [
        "dpkg-deb",
        "apt-get",
        "aarch64-linux-gnu-gcc",
        "mksquashfs",
        "unsquashfs",
        "mcopy",
        "mkfs.vfat",
        "zstd",
        "cpio",
    ];
    let mut ok = true;
    for t in need {
        ok &= require_tool(t).is_some(); // every missing tool is named
    }
    ok
}

/// Debian's pinned arm64 kernel .deb (from the builder's cache, else the archive).
fn debian_kernel() -> PathBuf {
    let paths = paths::Paths::new(None);
    let lock = Lock::load(&paths.lockfile()).unwrap();
    let pin = lock.get("linux-image-arm64").expect("packages.lock pins linux-image-arm64").clone();
    let sources = SourceList::debian(&apt::host_mirrors().unwrap(), &Snapshots::default());
    // The builder's apt has no locking of its own: hold its cache lock, as builds do.
    let _cache = roomcast_image::build::lock_cache(&paths.cache).unwrap();
    Apt::new(&paths.cache, &sources).unwrap().fetch(&pin).unwrap()
}

/// Repacks `deb` with its kernel release renamed `<release>-rcgiven`; returns (file, new release).
fn repack(deb: &Path, work: &Path) -> (PathBuf, String) {
    let tree = work.join("tree");
    let _ = std::fs::remove_dir_all(&tree);
    run(Command::new("dpkg-deb").arg("-R").arg(deb).arg(&tree));
    let release = std::fs::read_dir(tree.join("lib/modules"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .next()
        .expect("a modules directory");
    let given = format!("{release}-rcgiven");
    for (dir, prefix) in [
        ("lib/modules", ""),
        ("usr/lib", "linux-image-"),
        ("boot", "vmlinuz-"),
        ("boot", "config-"),
        ("boot", "System.map-"),
    ] {
        let from = tree.join(dir).join(format!("{prefix}{release}"));
        if from.exists() {
            std::fs::rename(&from, tree.join(dir).join(format!("{prefix}{given}"))).unwrap();
        }
    }
    let control = tree.join("DEBIAN/control");
    let text = std::fs::read_to_string(&control).unwrap();
    let text: String = text
        .lines()
        .map(|l| match l.split_once(": ") {
            Some(("Package", p)) => format!("Package: {}\n", p.replace(&release, &given)),
            Some(("Version", v)) => format!("Version: {v}+rcgiven1\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&control, text).unwrap();
    // Maintainer scripts name the old release; the builder never runs them.
    for s in ["preinst", "postinst", "prerm", "postrm"] {
        let _ = std::fs::remove_file(tree.join("DEBIAN").join(s));
    }
    let file = work.join(format!("linux-image-{given}_test_arm64.deb"));
    run(Command::new("dpkg-deb").args(["--build", "--root-owner-group", "-Zgzip", "-z1"]).arg(&tree).arg(&file));
    std::fs::remove_dir_all(&tree).unwrap();
    (file, given)
}

/// A dynamically linked aarch64 program standing in for the daemon.
fn small_daemon(work: &Path) -> PathBuf {
    let src = work.join("daemon.c");
    std::fs::write(&src, "#include <stdio.h>\nint main(void) { puts(\"roomcast stand-in\"); return 0; }\n").unwrap();
    let bin = work.join("roomcast");
    run(Command::new("aarch64-linux-gnu-gcc").arg("-O2").arg("-o").arg(&bin).arg(&src));
    bin
}

/// The modules directories (`lib/modules/*`) in a listing of `unsquashfs -l` or `cpio -t`.
fn module_dirs(listing: &str) -> Vec<String> {
    let mut dirs: Vec<String> = listing
        .lines()
        .filter_map(|l| {
            let rest = l.trim_start_matches("squashfs-root").trim_start_matches('/');
            let rest = rest.strip_prefix("lib/modules/").or_else(|| rest.strip_prefix("usr/lib/modules/"))?;
            Some(rest.split('/').next()?.to_string()).filter(|d| !d.is_empty())
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

#[test]
fn an_image_built_with_kernel_deb_carries_that_kernel() {
    if !tools() {
        return;
    }
    let work = paths::repo_root().join("target/image/kernel-deb-test");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let (given, release) = repack(&debian_kernel(), &work);
    let daemon = small_daemon(&work);
    let out = work.join("out");
    let status = Command::new(env!("CARGO_BIN_EXE_roomcast-image"))
        .args(["build", "--board", "qemu-virt", "--locked", "--out"])
        .arg(&out)
        .arg("--daemon")
        .arg(&daemon)
        .arg("--kernel-deb")
        .arg(&given)
        .status()
        .unwrap();
    assert!(status.success(), "cargo image build --kernel-deb failed");
    let image = out.join("roomcast-qemu-virt.img");

    // The manifest: the given kernel, with its file name and sha256; not the archive's.
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(out.join("roomcast-qemu-virt.img.manifest.toml")).unwrap()).unwrap();
    assert_eq!(manifest["image"]["kernel_release"].as_str(), Some(release.as_str()));
    let packages = manifest["package"].as_array().unwrap();
    let kernels: Vec<&toml::Value> =
        packages.iter().filter(|p| p["name"].as_str().unwrap().starts_with("linux-image-")).collect();
    assert_eq!(kernels.len(), 1, "{kernels:?}");
    let k = kernels[0];
    assert_eq!(k["name"].as_str(), Some(format!("linux-image-{release}").as_str()));
    assert_eq!(k["file"].as_str(), Some(given.file_name().unwrap().to_str().unwrap()));
    assert_eq!(k["sha256"].as_str(), Some(apt::sha256_file(&given).unwrap().as_str()));
    assert!(k["version"].as_str().unwrap().ends_with("+rcgiven1"));
    assert!(packages.iter().filter(|p| p["name"].as_str() != k["name"].as_str()).all(|p| p.get("file").is_none()));

    // The boot partition's vmlinuz is the given package's.
    let tree = work.join("given");
    run(Command::new("dpkg-deb").arg("-x").arg(&given).arg(&tree));
    let vmlinuz = work.join("vmlinuz");
    disk::read_boot_file(&image, "vmlinuz", &vmlinuz).unwrap();
    assert!(std::fs::read(&vmlinuz).unwrap() == std::fs::read(tree.join(format!("boot/vmlinuz-{release}"))).unwrap());
    assert_eq!(manifest["boot_files"]["vmlinuz"].as_str(), Some(apt::sha256_file(&vmlinuz).unwrap().as_str()));

    // The root filesystem (squashfs, partition 2) and the initramfs hold that release's modules only.
    let root = disk::partitions(&image).unwrap()[1].start;
    let listing = run(Command::new("unsquashfs").arg("-o").arg(root.to_string()).arg("-l").arg(&image));
    assert_eq!(module_dirs(&listing), std::slice::from_ref(&release), "root filesystem modules");
    let initrd = work.join("initrd.img");
    disk::read_boot_file(&image, "initrd.img", &initrd).unwrap();
    let cpio = run(Command::new("sh").arg("-c").arg(format!("zstd -dc {} | cpio -t --quiet", initrd.display())));
    assert_eq!(module_dirs(&cpio), [release], "initramfs modules");
    std::fs::remove_dir_all(&work).unwrap();
}
