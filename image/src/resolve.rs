//! Which Debian package versions an image is made of: `image/packages.lock` read the way Cargo reads
//! Cargo.lock against a moving registry.
//!
//! - A pinned version is used while it can be had: its .deb already in the cache with the pinned
//!   sha256, or the archive (or a snapshot archive given with `--snapshot`) still listing it.
//! - When the archive no longer has it ([`LockMode::Follow`], the default), the package is resolved
//!   to the archive's current version — through its metapackage when the pin came from one, so a
//!   kernel whose ABI name changed (linux-image-6.1.0-56-arm64 → -57) follows linux-image-arm64 —
//!   one [`Drift`] line is printed for it, and the new pin goes into the lock and the manifest.
//! - [`LockMode::Locked`] (`--locked`, for release builds) refuses any drift or missing pin and
//!   names every such package.
//! - [`LockMode::Update`] (`--update-lock`) re-resolves every package to the current version.
//!
//! Before the first look-up of a run that needs the archive, the package lists are fetched anew, so
//! a dropped version is seen as drift rather than as a failed download.

use crate::apt::Apt;
use crate::error::{Error, Result};
use crate::lockfile::{Lock, Pin};
use std::fmt;

/// How the lock is honoured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// Pinned versions while the archive has them; drifted ones re-pinned to the current version.
    Follow,
    /// Pinned versions only: any drift (or a package without a pin) is an error.
    Locked,
    /// Every package re-pinned to the archive's current version.
    Update,
}

/// One package an image needs.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// The package, or a metapackage that stands for its first dependency (the kernel).
    pub name: &'a str,
    pub meta: bool,
    /// A suite apt does not pick by itself (bookworm-backports); None for the release.
    pub suite: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// A plain package of the release.
    pub fn package(name: &'a str) -> Self {
        Request { name, meta: false, suite: None }
    }

    /// The key of its pin: the name (or metapackage) and, for another suite, "name/suite".
    fn key(&self) -> String {
        match self.suite {
            Some(s) => format!("{}/{s}", self.name),
            None => self.name.to_string(),
        }
    }
}

/// A pinned version the archive no longer has, and what replaced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    pub pinned: Pin,
    /// The new pin (None under `--locked`, which refuses it).
    pub now: Option<Pin>,
}

impl fmt::Display for Drift {
    /// `linux-libc-dev 6.1.192-2 -> 6.1.192-3: pinned version no longer in the archive`; the new
    /// name too when a metapackage now points elsewhere.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.pinned;
        match &self.now {
            Some(n) if n.name == p.name => write!(f, "{} {} -> {}", p.name, p.version, n.version)?,
            Some(n) => write!(f, "{} {} -> {} {}", p.name, p.version, n.name, n.version)?,
            None => write!(f, "{} {}", p.name, p.version)?,
        }
        write!(f, ": pinned version no longer in the archive")?;
        if let Some(via) = &p.via {
            write!(f, " (via {via})")?;
        }
        Ok(())
    }
}

/// What [`resolve`] chose.
#[derive(Debug)]
pub struct Resolution {
    /// One pin per request, in the order of the requests.
    pub pins: Vec<Pin>,
    /// Pins that drifted and were replaced (printed as they were met).
    pub drifts: Vec<Drift>,
    /// The lock was changed (new, drifted or updated pins): save it.
    pub changed: bool,
}

/// Chooses the version of every requested package and records the choices in `lock`. Under
/// `--locked` every drifted or unpinned package is named in one error and `lock` is left as it was.
pub fn resolve(apt: &Apt, lock: &mut Lock, mode: LockMode, requests: &[Request]) -> Result<Resolution> {
    let mut r = Resolver { apt, lock, mode, changed: false, drifts: Vec::new(), refused: Vec::new() };
    let mut pins = Vec::with_capacity(requests.len());
    for req in requests {
        if let Some(pin) = r.pin(req)? {
            pins.push(pin);
        }
    }
    if !r.refused.is_empty() {
        return Err(Error::Locked { packages: r.refused });
    }
    Ok(Resolution { pins, drifts: r.drifts, changed: r.changed })
}

struct Resolver<'a> {
    apt: &'a Apt,
    lock: &'a mut Lock,
    mode: LockMode,
    changed: bool,
    drifts: Vec<Drift>,
    /// Under `--locked`: what was refused, one line per package.
    refused: Vec<String>,
}

impl Resolver<'_> {
    /// The pin to use for `req`; None when `--locked` refuses it (recorded in `refused`).
    fn pin(&mut self, req: &Request) -> Result<Option<Pin>> {
        let key = req.key();
        let pinned = self.lock.get(&key).cloned();
        if let (Some(pin), false) = (&pinned, self.mode == LockMode::Update) {
            if self.apt.cached(pin)?.is_some() {
                return Ok(Some(pin.clone()));
            }
            self.apt.refresh_once()?;
            if self.apt.has(pin)? {
                return Ok(Some(pin.clone()));
            }
        }
        if self.mode == LockMode::Locked {
            self.refused.push(match pinned {
                Some(pin) => Drift { pinned: pin, now: None }.to_string(),
                None => format!("{key}: not pinned in image/packages.lock"),
            });
            return Ok(None);
        }
        self.apt.refresh_once()?;
        let now = self.current(req, &key)?;
        match pinned {
            Some(old) if old == now => return Ok(Some(now)),
            Some(old) if self.mode == LockMode::Follow => {
                let drift = Drift { pinned: old, now: Some(now.clone()) };
                eprintln!("image: {drift}");
                self.drifts.push(drift);
            }
            _ => eprintln!("image: pinned {} {}", now.name, now.version),
        }
        self.lock.put(now.clone());
        self.changed = true;
        Ok(Some(now))
    }

    /// The archive's current version of `req`, as a pin (a metapackage resolved to its package).
    fn current(&self, req: &Request, key: &str) -> Result<Pin> {
        let version = match req.suite {
            Some(s) => Some(self.apt.version_in_suite(req.name, s)?),
            None => None,
        };
        let mut info = self.apt.show(req.name, version.as_deref())?;
        let mut via = req.suite.map(|_| key.to_string());
        if req.meta {
            // The metapackage's first dependency is the real package, at the same version.
            let real = info.depends.split([',', ' ', '|']).find(|s| !s.is_empty()).map(str::to_string);
            if let Some(real) = real.filter(|r| r != req.name) {
                via = Some(key.to_string());
                info = self.apt.show(&real, version.as_deref())?;
            }
        }
        Ok(Pin { name: info.name, via, version: info.version, arch: info.arch, sha256: info.sha256 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(name: &str, via: Option<&str>, version: &str) -> Pin {
        Pin {
            name: name.into(),
            via: via.map(Into::into),
            version: version.into(),
            arch: "arm64".into(),
            sha256: "ab".into(),
        }
    }

    #[test]
    fn drift_lines_name_the_package_and_both_versions() {
        let d = Drift {
            pinned: pin("linux-libc-dev", None, "6.1.192-2"),
            now: Some(pin("linux-libc-dev", None, "6.1.192-3")),
        };
        assert_eq!(d.to_string(), "linux-libc-dev 6.1.192-2 -> 6.1.192-3: pinned version no longer in the archive");
        let k = Drift {
            pinned: pin("linux-image-6.1.0-56-arm64", Some("linux-image-arm64"), "6.1.192-2"),
            now: Some(pin("linux-image-6.1.0-57-arm64", Some("linux-image-arm64"), "6.1.192-3")),
        };
        assert_eq!(
            k.to_string(),
            "linux-image-6.1.0-56-arm64 6.1.192-2 -> linux-image-6.1.0-57-arm64 6.1.192-3: \
             pinned version no longer in the archive (via linux-image-arm64)"
        );
        let locked = Drift { pinned: pin("libc6", None, "2.36-9"), now: None };
        assert_eq!(locked.to_string(), "libc6 2.36-9: pinned version no longer in the archive");
    }

    #[test]
    fn request_keys() {
        assert_eq!(Request::package("libc6").key(), "libc6");
        let k = Request { name: "linux-image-arm64", meta: true, suite: Some("bookworm-backports") };
        assert_eq!(k.key(), "linux-image-arm64/bookworm-backports");
    }
}
