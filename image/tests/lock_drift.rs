//! Hermetic test of image/packages.lock against a moving archive, on local apt repositories this
//! test makes (dpkg-deb + dpkg-scanpackages, file: sources), so it does not depend on what Debian's
//! archive holds today:
//! - a pinned version is used while the archive has it, even when a newer one is there;
//! - when the archive drops it, `--locked` fails naming every such package and leaves the lock alone;
//! - otherwise the package is re-pinned to the current version (a metapackage followed to its new
//!   real package, as for a kernel ABI change), one drift line each, and the new pins download;
//! - a pinned version the cache already holds is used without the archive;
//! - a snapshot archive that still has the pinned version serves it exactly.

use roomcast_image::apt::{Apt, SourceList};
use roomcast_image::lockfile::Lock;
use roomcast_image::resolve::{self, LockMode, Request};
use roomcast_image::Error;
use roomcast_test_support::require_tool;
use std::path::{Path, PathBuf};
use std::process::Command;

fn tools() -> bool {
    ["apt-get", "apt-cache", "dpkg-deb", "dpkg-scanpackages"].iter().all(|t| require_tool(t).is_some())
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A local flat apt repository.
struct Repo {
    dir: PathBuf,
}

impl Repo {
    fn new(dir: PathBuf) -> Repo {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let repo = Repo { dir };
        repo.index();
        repo
    }

    /// Builds `name_version_arm64.deb` (with `depends`) into the repository.
    fn add(&self, name: &str, version: &str, depends: Option<&str>) {
        let tree = self.dir.join(format!(".tree-{name}-{version}"));
        std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
        std::fs::create_dir_all(tree.join("usr/share/doc").join(name)).unwrap();
        std::fs::write(tree.join("usr/share/doc").join(name).join("version"), format!("{name} {version}\n")).unwrap();
        let depends = depends.map(|d| format!("Depends: {d}\n")).unwrap_or_default();
        std::fs::write(
            tree.join("DEBIAN/control"),
            format!(
                "Package: {name}\nVersion: {version}\nArchitecture: arm64\nMaintainer: roomcast test <t@example.org>\n\
                 {depends}Description: roomcast lock test package\n"
            ),
        )
        .unwrap();
        run(Command::new("dpkg-deb")
            .args(["--build", "--root-owner-group", "-Zgzip"])
            .arg(&tree)
            .arg(self.deb(name, version)));
        std::fs::remove_dir_all(&tree).unwrap();
        self.index();
    }

    /// Copies a published .deb from another repository (a snapshot keeps the very file).
    fn copy_from(&self, other: &Repo, name: &str, version: &str) {
        std::fs::copy(other.deb(name, version), self.deb(name, version)).unwrap();
        self.index();
    }

    /// Drops a version from the archive, as Debian does when it publishes the next one.
    fn drop(&self, name: &str, version: &str) {
        std::fs::remove_file(self.deb(name, version)).unwrap();
        self.index();
    }

    fn deb(&self, name: &str, version: &str) -> PathBuf {
        self.dir.join(format!("{name}_{version}_arm64.deb"))
    }

    fn index(&self) {
        let packages = run(Command::new("dpkg-scanpackages").args(["--multiversion", "."]).current_dir(&self.dir));
        std::fs::write(self.dir.join("Packages"), packages).unwrap();
    }

    fn source(&self) -> String {
        format!("deb [trusted=yes] file:{} ./\n", self.dir.display())
    }
}

/// One builder run: a private apt over `sources` with its own cache (a fresh one unless shared).
fn apt(cache: &Path, sources: &[&Repo]) -> Apt {
    let list = SourceList(sources.iter().map(|r| r.source()).collect());
    Apt::new(cache, &list).unwrap()
}

const REQUESTS: &[Request<'static>] = &[
    Request { name: "rc-demo", meta: false, suite: None },
    Request { name: "rc-demo-kernel", meta: true, suite: None },
];

fn versions(lock: &Lock) -> Vec<(String, String)> {
    let mut v: Vec<_> = lock.packages.iter().map(|p| (p.name.clone(), p.version.clone())).collect();
    v.sort();
    v
}

#[test]
fn pins_survive_a_moving_archive() {
    if !tools() {
        return;
    }
    let work = std::env::temp_dir().join(format!("rc-lock-drift-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let archive = Repo::new(work.join("archive"));
    archive.add("rc-demo", "1.0-1", None);
    archive.add("rc-demo-kernel-1", "1", None);
    archive.add("rc-demo-kernel", "1", Some("rc-demo-kernel-1"));
    let lock_path = work.join("packages.lock");

    // An empty lock: everything pinned to what the archive has (the kernel through its metapackage).
    let mut lock = Lock::default();
    let r = resolve::resolve(&apt(&work.join("cache0"), &[&archive]), &mut lock, LockMode::Follow, REQUESTS).unwrap();
    assert!(r.changed && r.drifts.is_empty());
    assert_eq!(r.pins[1].name, "rc-demo-kernel-1");
    assert_eq!(r.pins[1].via.as_deref(), Some("rc-demo-kernel"));
    lock.save(&lock_path).unwrap();
    let pinned = versions(&lock);

    // Newer versions published (a new kernel ABI too): the pinned versions are still used.
    archive.add("rc-demo", "1.0-2", None);
    archive.add("rc-demo-kernel-2", "2", None);
    archive.add("rc-demo-kernel", "2", Some("rc-demo-kernel-2"));
    let shared_cache = work.join("cache1");
    let run1 = apt(&shared_cache, &[&archive]);
    let mut lock = Lock::load(&lock_path).unwrap();
    let r = resolve::resolve(&run1, &mut lock, LockMode::Follow, REQUESTS).unwrap();
    assert!(!r.changed && r.drifts.is_empty(), "{:?}", r.drifts);
    assert_eq!(versions(&lock), pinned);
    for pin in &r.pins {
        run1.fetch(pin).unwrap(); // downloads from the archive, checked against the pinned sha256
    }

    // A snapshot archive keeps every published file; then the archive drops the pinned versions.
    let snapshot = Repo::new(work.join("snapshot"));
    for (name, version) in [("rc-demo", "1.0-1"), ("rc-demo-kernel-1", "1"), ("rc-demo-kernel", "1")] {
        snapshot.copy_from(&archive, name, version);
    }
    archive.drop("rc-demo", "1.0-1");
    archive.drop("rc-demo-kernel-1", "1");
    archive.drop("rc-demo-kernel", "1");

    // --locked with a fresh cache: refused, every drifted package named, the lock untouched.
    let mut lock = Lock::load(&lock_path).unwrap();
    let err =
        resolve::resolve(&apt(&work.join("cache2"), &[&archive]), &mut lock, LockMode::Locked, REQUESTS).unwrap_err();
    let Error::Locked { packages } = &err else { panic!("not a --locked refusal: {err}") };
    assert_eq!(
        packages,
        &[
            "rc-demo 1.0-1: pinned version no longer in the archive",
            "rc-demo-kernel-1 1: pinned version no longer in the archive (via rc-demo-kernel)"
        ]
    );
    assert!(err.to_string().contains("--locked refuses"), "{err}");
    assert_eq!(versions(&lock), pinned);

    // --locked where the pinned .debs are already in the cache: they are used, no archive needed.
    let mut lock = Lock::load(&lock_path).unwrap();
    let r = resolve::resolve(&apt(&shared_cache, &[&archive]), &mut lock, LockMode::Locked, REQUESTS).unwrap();
    assert!(!r.changed);

    // A snapshot archive that still holds the pinned versions: --locked gets exactly them.
    let snap_run = apt(&work.join("cache3"), &[&archive, &snapshot]);
    let mut lock = Lock::load(&lock_path).unwrap();
    let r = resolve::resolve(&snap_run, &mut lock, LockMode::Locked, REQUESTS).unwrap();
    assert_eq!(versions(&lock), pinned);
    for pin in &r.pins {
        snap_run.fetch(pin).unwrap();
    }

    // Default mode: drift printed and re-pinned, the kernel following its metapackage.
    let run4 = apt(&work.join("cache4"), &[&archive]);
    let mut lock = Lock::load(&lock_path).unwrap();
    let r = resolve::resolve(&run4, &mut lock, LockMode::Follow, REQUESTS).unwrap();
    assert!(r.changed);
    let lines: Vec<String> = r.drifts.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        lines,
        [
            "rc-demo 1.0-1 -> 1.0-2: pinned version no longer in the archive",
            "rc-demo-kernel-1 1 -> rc-demo-kernel-2 2: pinned version no longer in the archive (via rc-demo-kernel)"
        ]
    );
    lock.save(&lock_path).unwrap();
    let back = Lock::load(&lock_path).unwrap();
    assert_eq!(
        versions(&back),
        [("rc-demo".to_string(), "1.0-2".to_string()), ("rc-demo-kernel-2".to_string(), "2".to_string())]
    );
    assert_eq!(back.get("rc-demo-kernel").unwrap().name, "rc-demo-kernel-2");
    for pin in &r.pins {
        run4.fetch(pin).unwrap();
    }
    // And the next run uses the new pins as they are.
    let r = resolve::resolve(&apt(&work.join("cache5"), &[&archive]), &mut lock, LockMode::Locked, REQUESTS).unwrap();
    assert!(!r.changed && r.drifts.is_empty());
    std::fs::remove_dir_all(&work).unwrap();
}
