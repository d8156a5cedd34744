//! A private apt for Debian's arm64 packages: its own sources.list, lists and cache under
//! `image/cache/apt`, so the host's apt configuration is never changed. The archive URLs are the
//! ones the host already uses (read from /etc/apt; `ROOMCAST_DEBIAN_MIRROR` on hosts that have no
//! Debian source), with the suites and components the image needs (bookworm main +
//! non-free-firmware for raspi-firmware), plus snapshot archives when given. apt checks the
//! archive's signatures with Debian's keyring; the builder checks every .deb against the sha256
//! pinned in packages.lock. Which version is used is decided in [`crate::resolve`].

use crate::error::{Error, ErrorContext, IoContext, Result};
use crate::exec;
use crate::lockfile::Pin;
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Debian release the images are made from.
pub const RELEASE: &str = "bookworm";

/// The archive mirrors to use.
#[derive(Clone, Debug)]
pub struct Mirrors {
    pub archive: String,
    pub security: Option<String>,
}

/// A private apt instance.
pub struct Apt {
    dir: PathBuf,
    debs: PathBuf,
    /// The package lists were fetched during this run (see [`Apt::refresh_once`]).
    refreshed: Cell<bool>,
}

/// The text of the private apt's sources.list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceList(pub String);

/// Snapshot archives (snapshot.debian.org style: one URL per archive at a timestamp) that still hold
/// every version ever published, so the pinned versions can always be fetched.
#[derive(Clone, Debug, Default)]
pub struct Snapshots {
    /// The Debian archive at a timestamp, e.g. `https://snapshot.debian.org/archive/debian/20261201T000000Z`.
    pub archive: Option<String>,
    /// The security archive at a timestamp (`.../archive/debian-security/...`).
    pub security: Option<String>,
}

impl Snapshots {
    /// `--snapshot`/`--security-snapshot`, else `ROOMCAST_DEBIAN_SNAPSHOT`/`ROOMCAST_DEBIAN_SECURITY_SNAPSHOT`.
    pub fn from_args_or_env(archive: Option<String>, security: Option<String>) -> Snapshots {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Snapshots {
            archive: archive.or_else(|| env("ROOMCAST_DEBIAN_SNAPSHOT")),
            security: security.or_else(|| env("ROOMCAST_DEBIAN_SECURITY_SNAPSHOT")),
        }
    }
}

/// Debian's archive keyring: apt checks every list it fetches from the archive against it.
pub const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

impl SourceList {
    /// The suites and components the images need from the mirrors (bookworm main + non-free-firmware
    /// for raspi-firmware, its updates, backports and security), plus the snapshots when given
    /// (searched too, so a version the mirror dropped is still found there).
    pub fn debian(mirrors: &Mirrors, snapshots: &Snapshots) -> SourceList {
        let opts = format!("[arch=arm64 signed-by={DEBIAN_KEYRING}]");
        // A snapshot's Release files are old by design: their Valid-Until has passed.
        let snap_opts = format!("[arch=arm64 signed-by={DEBIAN_KEYRING} check-valid-until=no]");
        let comps = "main non-free-firmware";
        let mut list = String::from("# Written by the roomcast image builder from the host's apt sources.\n");
        let mut archive = |opts: &str, uri: &str| {
            for suite in [RELEASE.to_string(), format!("{RELEASE}-updates"), format!("{RELEASE}-backports")] {
                list.push_str(&format!("deb {opts} {uri} {suite} {comps}\n"));
            }
        };
        archive(&opts, &mirrors.archive);
        if let Some(snap) = &snapshots.archive {
            archive(&snap_opts, snap);
        }
        if let Some(sec) = &mirrors.security {
            list.push_str(&format!("deb {opts} {sec} {RELEASE}-security {comps}\n"));
        }
        if let Some(snap) = &snapshots.security {
            list.push_str(&format!("deb {snap_opts} {snap} {RELEASE}-security {comps}\n"));
        }
        SourceList(list)
    }

    /// Adds another archive (a board's `[kernel.source] apt`, `deb URL SUITE COMPONENTS...`),
    /// checked with `keyring` as Debian's is with Debian's keyring.
    pub fn add(&mut self, line: &str, keyring: &Path) -> Result<()> {
        let Some(rest) = line.trim().strip_prefix("deb ") else {
            return Err(Error::Config(format!("not an apt source line (`deb URL SUITE COMPONENTS`): {line:?}")));
        };
        if rest.trim_start().starts_with('[') {
            return Err(Error::Config(format!(
                "give the apt source without [options] (the builder adds them): {line:?}"
            )));
        }
        self.0.push_str(&format!("deb [arch=arm64 signed-by={}] {}\n", keyring.display(), rest.trim()));
        Ok(())
    }
}

/// What the archive says about one version of a package.
#[derive(Clone, Debug)]
pub struct PackageInfo {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub sha256: String,
    pub depends: String,
}

impl Apt {
    /// Sets up the private apt under `cache` (idempotent) with the given sources.
    pub fn new(cache: &Path, sources: &SourceList) -> Result<Apt> {
        let dir = cache.join("apt");
        let debs = cache.join("debs");
        for d in ["lists/partial", "cache/archives/partial", "etc", "download"] {
            let d = dir.join(d);
            std::fs::create_dir_all(&d).with_context_io(|| format!("creating {}", d.display()))?;
        }
        std::fs::create_dir_all(&debs).with_context_io(|| format!("creating {}", debs.display()))?;
        let status = dir.join("status");
        if !status.exists() {
            std::fs::write(&status, "").with_context_io(|| format!("writing {}", status.display()))?;
        }
        let path = dir.join("etc/sources.list");
        if std::fs::read_to_string(&path).ok().as_deref() != Some(sources.0.as_str()) {
            std::fs::write(&path, &sources.0).with_context_io(|| format!("writing {}", path.display()))?;
            // New sources: the old lists no longer match.
            let _ = std::fs::remove_file(dir.join("lists/.updated"));
        }
        Ok(Apt { dir, debs, refreshed: Cell::new(false) })
    }

    fn options(&self) -> Vec<String> {
        let d = self.dir.display();
        [
            format!("Dir::Etc::SourceList={d}/etc/sources.list"),
            "Dir::Etc::SourceParts=/dev/null".into(),
            "Dir::Etc::Preferences=/dev/null".into(),
            "Dir::Etc::PreferencesParts=/dev/null".into(),
            format!("Dir::State::Lists={d}/lists"),
            format!("Dir::State::status={d}/status"),
            format!("Dir::Cache={d}/cache"),
            "APT::Architecture=arm64".into(),
            "APT::Architectures::=arm64".into(),
            "APT::Sandbox::User=root".into(),
            "Debug::NoLocking=1".into(),
            "Acquire::Languages=none".into(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect()
    }

    fn apt_get(&self) -> Command {
        let mut c = Command::new("apt-get");
        c.args(self.options()).arg("-q");
        c
    }

    /// Fetches the package lists, unless already fetched (or `force`).
    pub fn update(&self, force: bool) -> Result<()> {
        let stamp = self.dir.join("lists/.updated");
        if stamp.exists() && !force {
            return Ok(());
        }
        eprintln!("image: fetching Debian {RELEASE} arm64 package lists");
        exec::run(self.apt_get().arg("update"))?;
        std::fs::write(&stamp, "").with_context_io(|| format!("writing {}", stamp.display()))?;
        self.refreshed.set(true);
        Ok(())
    }

    /// Fetches the package lists once per run: before anything is looked up or downloaded, so a
    /// version the archive has dropped since the last run is seen as gone, not as a failed download.
    pub fn refresh_once(&self) -> Result<()> {
        if self.refreshed.get() {
            return Ok(());
        }
        self.update(true)
    }

    /// Whether the archive (the fetched lists) has exactly this pinned version. A record of the
    /// same version with another sha256 is an error: the archive's file is not the pinned one.
    pub fn has(&self, pin: &Pin) -> Result<bool> {
        let mut c = Command::new("apt-cache");
        c.args(self.options()).args(["show", "--no-all-versions", &format!("{}={}", pin.name, pin.version)]);
        // apt-cache exits non-zero (or prints nothing) when the version is not in the lists.
        let Ok(text) = exec::run(&mut c) else { return Ok(false) };
        let Some(info) = parse_record(&text) else { return Ok(false) };
        if info.sha256 != pin.sha256 {
            return Err(Error::Package {
                package: format!("{} {}", pin.name, pin.version),
                problem: format!(
                    "the archive's .deb has sha256 {} but image/packages.lock pins {}: refusing it",
                    info.sha256, pin.sha256
                ),
            });
        }
        Ok(true)
    }

    /// The cached .deb of a pin, when it is there with the pinned sha256 (no network needed).
    pub fn cached(&self, pin: &Pin) -> Result<Option<PathBuf>> {
        let file = self.deb_path(pin);
        Ok((file.exists() && sha256_file(&file)? == pin.sha256).then_some(file))
    }

    fn deb_path(&self, pin: &Pin) -> PathBuf {
        self.debs.join(format!("{}_{}_{}.deb", pin.name, pin.version.replace(':', "%3a"), pin.arch))
    }

    /// The archive's record of `name` (at `version`, or the candidate when None).
    pub fn show(&self, name: &str, version: Option<&str>) -> Result<PackageInfo> {
        let spec = match version {
            Some(v) => format!("{name}={v}"),
            None => name.to_string(),
        };
        let mut c = Command::new("apt-cache");
        c.args(self.options()).args(["show", "--no-all-versions", &spec]);
        let text = exec::run(&mut c).with_context(|| format!("package {spec} is not in the archive"))?;
        parse_record(&text)
            .ok_or_else(|| Error::Package { package: spec, problem: "apt-cache gave no record for it".into() })
    }

    /// The newest version of `name` in `suite` (e.g. bookworm-backports, which apt never picks by itself).
    pub fn version_in_suite(&self, name: &str, suite: &str) -> Result<String> {
        let mut c = Command::new("apt-cache");
        c.args(self.options()).args(["madison", name]);
        let text = exec::run(&mut c)?;
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('|').map(str::trim).collect();
                (f.len() >= 3 && f[2].split_whitespace().any(|w| w.starts_with(&format!("{suite}/"))))
                    .then(|| f[1].to_string())
            })
            .next()
            .ok_or_else(|| Error::Package { package: name.to_string(), problem: format!("not in {suite}") })
    }

    /// Downloads the pinned package (or reuses the cached copy) and checks its sha256.
    pub fn fetch(&self, pin: &Pin) -> Result<PathBuf> {
        if let Some(file) = self.cached(pin)? {
            return Ok(file);
        }
        let file = self.deb_path(pin);
        self.refresh_once()?;
        let tmp = self.dir.join("download");
        exec::fresh_dir(&tmp)?;
        eprintln!("image: downloading {} {}", pin.name, pin.version);
        exec::run(self.apt_get().current_dir(&tmp).args(["download", &format!("{}={}", pin.name, pin.version)]))
            .with_context(|| {
                format!(
                    "{}={} (pinned in image/packages.lock) cannot be downloaded from the archive",
                    pin.name, pin.version
                )
            })?;
        let got = std::fs::read_dir(&tmp)
            .with_context_io(|| format!("reading {}", tmp.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .ok_or_else(|| Error::Package {
                package: pin.name.clone(),
                problem: "apt-get download left no .deb for it".into(),
            })?;
        let sum = sha256_file(&got)?;
        if sum != pin.sha256 {
            return Err(Error::Package {
                package: format!("{} {}", pin.name, pin.version),
                problem: format!("sha256 {} does not match the pin {} in image/packages.lock", sum, pin.sha256),
            });
        }
        std::fs::rename(&got, &file).with_context_io(|| format!("moving {} to {}", got.display(), file.display()))?;
        Ok(file)
    }
}

/// Parses the first record of `apt-cache show` output.
pub fn parse_record(text: &str) -> Option<PackageInfo> {
    let record = text.split("\n\n").next()?;
    let field = |key: &str| {
        record.lines().find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':'))).map(|v| v.trim().to_string())
    };
    Some(PackageInfo {
        name: field("Package")?,
        version: field("Version")?,
        arch: field("Architecture")?,
        sha256: field("SHA256")?,
        depends: field("Depends").unwrap_or_default(),
    })
}

/// The sha256 of a file, in hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context_io(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).with_context_io(|| format!("reading {}", path.display()))?;
    Ok(hex(&h.finalize()))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The Debian mirrors the host uses, from `ROOMCAST_DEBIAN_MIRROR` /
/// `ROOMCAST_DEBIAN_SECURITY_MIRROR` or the host's /etc/apt sources.
pub fn host_mirrors() -> Result<Mirrors> {
    if let Ok(archive) = std::env::var("ROOMCAST_DEBIAN_MIRROR") {
        return Ok(Mirrors { archive, security: std::env::var("ROOMCAST_DEBIAN_SECURITY_MIRROR").ok() });
    }
    let mut text = String::new();
    for f in ["/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"] {
        text.push_str(&std::fs::read_to_string(f).unwrap_or_default());
        text.push('\n');
    }
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut files: Vec<_> = dir.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        files.sort();
        for f in files {
            if f.extension().is_some_and(|x| x == "sources" || x == "list") {
                text.push_str(&std::fs::read_to_string(&f).unwrap_or_default());
                text.push('\n');
            }
        }
    }
    mirrors_from_sources(&text).ok_or_else(|| {
        Error::Config(
            "cannot find a Debian archive in the host's /etc/apt sources; set ROOMCAST_DEBIAN_MIRROR \
             (and ROOMCAST_DEBIAN_SECURITY_MIRROR) to the Debian archive URLs to use"
                .into(),
        )
    })
}

/// Debian's release names and aliases, by which a source line is known as Debian's whatever its URL.
const DEBIAN_SUITES: &[&str] =
    &["bullseye", "bookworm", "trixie", "forky", "sid", "oldstable", "stable", "testing", "unstable"];

/// Finds the Debian archive and security URLs in apt sources text (deb822 or one-line format).
pub fn mirrors_from_sources(text: &str) -> Option<Mirrors> {
    let mut pairs: Vec<(String, String)> = Vec::new(); // (uri, suites)
    for stanza in text.split("\n\n") {
        let get = |k: &str| {
            stanza
                .lines()
                .find_map(|l| l.trim().strip_prefix(k).and_then(|r| r.strip_prefix(':')).map(|v| v.trim().to_string()))
        };
        if let (Some(uris), Some(suites)) = (get("URIs"), get("Suites")) {
            for uri in uris.split_whitespace() {
                pairs.push((uri.to_string(), suites.clone()));
            }
        }
    }
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("deb ") {
            let mut words = rest.split_whitespace().filter(|w| !w.starts_with('[') && !w.ends_with(']'));
            if let (Some(uri), Some(suite)) = (words.next(), words.next()) {
                pairs.push((uri.to_string(), suite.to_string()));
            }
        }
    }
    // A Debian source: its URL says so, or it serves a Debian release (a mirror may be named anything).
    let is_debian = |uri: &str, suites: &str| {
        uri.contains("debian")
            || suites.split_whitespace().any(|s| DEBIAN_SUITES.contains(&s.split('-').next().unwrap_or(s)))
    };
    let security = pairs
        .iter()
        .find(|(u, s)| is_debian(u, s) && s.contains("-security"))
        .map(|(u, _)| u.trim_end_matches('/').to_string());
    let archive = pairs
        .iter()
        .find(|(u, s)| is_debian(u, s) && !u.contains("security") && !s.contains("-security"))
        .map(|(u, _)| u.trim_end_matches('/').to_string())?;
    Some(Mirrors { archive, security })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_archive_is_signed_by_its_own_key() {
        let mut list = SourceList(String::new());
        list.add("deb http://archive.raspberrypi.com/debian bookworm main", Path::new("/r/board/keys/rpi.gpg"))
            .unwrap();
        assert_eq!(
            list.0,
            "deb [arch=arm64 signed-by=/r/board/keys/rpi.gpg] http://archive.raspberrypi.com/debian bookworm main\n"
        );
        assert!(list.add("deb [trusted=yes] http://x bookworm main", Path::new("k")).is_err());
        assert!(list.add("http://x bookworm main", Path::new("k")).is_err());
    }

    #[test]
    fn finds_mirrors_in_deb822_sources() {
        let text = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n\
                    Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n";
        let m = mirrors_from_sources(text).unwrap();
        assert_eq!(m.archive, "http://mirror.example/debian");
        assert_eq!(m.security.as_deref(), Some("http://mirror.example/debian-security"));
    }

    #[test]
    fn finds_mirrors_in_one_line_sources() {
        let text = "deb [arch=amd64] http://mirror.example/debian/ bookworm main\n\
                    deb http://mirror.example/debian-security bookworm-security main\n";
        let m = mirrors_from_sources(text).unwrap();
        assert_eq!(m.archive, "http://mirror.example/debian");
        assert_eq!(m.security.as_deref(), Some("http://mirror.example/debian-security"));
    }

    #[test]
    fn a_debian_mirror_is_known_by_its_suites_whatever_its_name() {
        let text =
            "deb http://deb.example.org/pub bookworm main\ndeb http://sec.example.org/pub bookworm-security main\n";
        let m = mirrors_from_sources(text).unwrap();
        assert_eq!(m.archive, "http://deb.example.org/pub");
        assert_eq!(m.security.as_deref(), Some("http://sec.example.org/pub"));
    }

    #[test]
    fn snapshots_are_searched_beside_the_mirror() {
        let m = Mirrors { archive: "http://m.example/debian".into(), security: None };
        let plain = SourceList::debian(&m, &Snapshots::default()).0;
        assert_eq!(plain.lines().filter(|l| l.starts_with("deb ")).count(), 3);
        let snap =
            Snapshots { archive: Some("http://snap.example/archive/debian/20261201T000000Z".into()), security: None };
        let list = SourceList::debian(&m, &snap).0;
        let snap_lines: Vec<&str> = list.lines().filter(|l| l.contains("snap.example")).collect();
        assert_eq!(snap_lines.len(), 3, "{list}");
        assert!(snap_lines.iter().all(|l| l.contains("check-valid-until=no")), "{list}");
    }

    #[test]
    fn no_debian_archive_is_none() {
        assert!(mirrors_from_sources("deb http://mirror.example/ubuntu jammy main\n").is_none());
    }

    #[test]
    fn parses_an_apt_cache_record() {
        let text = "Package: libc6\nVersion: 2.36-9+deb12u14\nArchitecture: arm64\nDepends: libgcc-s1\n\
                    SHA256: abcd\nDescription: x\n\nPackage: libc6\nVersion: old\n";
        let r = parse_record(text).unwrap();
        assert_eq!((r.name.as_str(), r.version.as_str(), r.sha256.as_str()), ("libc6", "2.36-9+deb12u14", "abcd"));
        assert_eq!(r.depends, "libgcc-s1");
        assert!(parse_record("Package: x\n").is_none());
    }
}
