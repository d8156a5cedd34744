//! The image's package table: every Debian package an image is made of, grouped into sets that are
//! unpacked together into one directory each (`target/image/pkg/<set>-<digest>`). Adding a package
//! to the image is one row (or one name in a row) here plus its use in [`crate::rootfs`] or
//! [`crate::bootfs`]; [`crate::build`] resolves, fetches and unpacks whatever the table says.

use crate::board::Board;
use crate::local_deb::LocalDeb;
use crate::resolve::Request;

/// A set of packages unpacked together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Set {
    /// The cross-compilation sysroot: headers and the libraries the daemon links (the root
    /// filesystem takes from it only the libraries the daemon's ELF needs).
    Sysroot,
    /// The board's kernel, its modules and device trees.
    Kernel,
    /// busybox-static: init, the DHCP client, the rescue shell.
    Busybox,
    /// openntpd: the clock.
    Ntpd,
    /// libasound2-data: ALSA's configuration.
    AlsaData,
    /// Debian's raspi-firmware (the Pi boards' boot firmware).
    RaspiFirmware,
    /// wpa_supplicant, the libraries it links and the regulatory database (boards with `[wifi]`).
    Wifi,
    /// The board's `[wifi] firmware_packages` (firmware-brcm80211 on the Pis).
    WifiFirmware,
}

impl Set {
    /// The name of its directory under target/image/pkg.
    pub fn dir_name(self) -> &'static str {
        match self {
            Set::Sysroot => "sysroot",
            Set::Kernel => "kernel",
            Set::Busybox => "busybox",
            Set::Ntpd => "openntpd",
            Set::AlsaData => "alsa-data",
            Set::RaspiFirmware => "raspi-firmware",
            Set::Wifi => "wifi",
            Set::WifiFirmware => "wifi-firmware",
        }
    }
}

/// Which packages a row stands for.
pub enum Packages {
    /// These packages of the release.
    Named(&'static [&'static str]),
    /// The board's `[kernel] package` (a metapackage, from `[kernel] suite`).
    BoardKernel,
    /// The board's `[wifi] firmware_packages`.
    BoardWifiFirmware,
}

/// Which images have a row.
pub enum When {
    Always,
    /// Boards whose `[boot] firmware` lists files (the Raspberry Pis).
    BoardHasFirmware,
    /// Boards with a `[wifi]` table.
    BoardHasWifi,
}

/// One row of the table.
pub struct Row {
    pub set: Set,
    pub packages: Packages,
    pub when: When,
}

/// Packages of the cross-compilation sysroot.
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
    // libdav1d, the AV1 decoder of the other rooms' video (roomcast-media feature "dav1d"); the
    // root filesystem gets libdav1d6 from here because the daemon's ELF needs it.
    "libdav1d6",
    "libdav1d-dev",
    // OpenH264 (roomcast-media feature "openh264", the software H.264 decoder) is C++: the
    // daemon's ELF needs libstdc++.so.6 (the cross g++ links against the host's headers).
    "libstdc++6",
];

/// wpa_supplicant (and wpa_cli) with every library they link beyond the sysroot's, and
/// wireless-regdb (the kernel's regulatory database, for `wifi_country`).
pub const WIFI_PACKAGES: &[&str] = &[
    "wpasupplicant",
    "wireless-regdb",
    "libnl-3-200",
    "libnl-genl-3-200",
    "libnl-route-3-200",
    "libssl3",
    "libdbus-1-3",
    "libsystemd0",
    "libcap2",
    "libgcrypt20",
    "libgpg-error0",
    "liblz4-1",
    "liblzma5",
    "libzstd1",
    "libpcsclite1",
    "libreadline8",
    "libtinfo6",
];

/// The table.
pub const TABLE: &[Row] = &[
    Row { set: Set::Sysroot, packages: Packages::Named(SYSROOT_PACKAGES), when: When::Always },
    Row { set: Set::Kernel, packages: Packages::BoardKernel, when: When::Always },
    Row { set: Set::Busybox, packages: Packages::Named(&["busybox-static"]), when: When::Always },
    Row { set: Set::Ntpd, packages: Packages::Named(&["openntpd"]), when: When::Always },
    Row { set: Set::AlsaData, packages: Packages::Named(&["libasound2-data"]), when: When::Always },
    Row { set: Set::RaspiFirmware, packages: Packages::Named(&["raspi-firmware"]), when: When::BoardHasFirmware },
    Row { set: Set::Wifi, packages: Packages::Named(WIFI_PACKAGES), when: When::BoardHasWifi },
    Row { set: Set::WifiFirmware, packages: Packages::BoardWifiFirmware, when: When::BoardHasWifi },
];

/// The packages of one set for one board: requests to the archive and files given instead.
pub struct PackageSet<'a> {
    pub set: Set,
    pub requests: Vec<Request<'a>>,
    /// Packages given as files (`--kernel-deb`, `[kernel.source] debs`).
    pub given: Vec<LocalDeb>,
}

/// The table's rows for `board`, as sets of requests.
pub fn sets_for(board: &Board) -> Vec<PackageSet<'_>> {
    TABLE
        .iter()
        .filter(|row| match row.when {
            When::Always => true,
            When::BoardHasFirmware => !board.boot.firmware.is_empty(),
            When::BoardHasWifi => board.wifi.is_some(),
        })
        .map(|row| PackageSet {
            set: row.set,
            requests: match row.packages {
                Packages::Named(names) => names.iter().map(|p| Request::package(p)).collect(),
                Packages::BoardKernel => {
                    vec![Request { name: &board.kernel.package, meta: true, suite: board.kernel.suite.as_deref() }]
                }
                Packages::BoardWifiFirmware => {
                    let names = board.wifi.iter().flat_map(|w| &w.firmware_packages);
                    names.map(|p| Request::package(p)).collect()
                }
            },
            given: Vec::new(),
        })
        .collect()
}

/// Puts the packages given as files in place of the archive's: a file named like a package of
/// another set (e.g. raspi-firmware) replaces that package; all the others make the kernel set.
pub fn use_given(sets: &mut [PackageSet], given: Vec<LocalDeb>) {
    let mut kernel = Vec::new();
    for deb in given {
        let set = sets.iter_mut().find(|s| s.set != Set::Kernel && s.requests.iter().any(|r| r.name == deb.pin.name));
        match set {
            Some(set) => {
                set.requests.retain(|r| r.name != deb.pin.name);
                set.given.push(deb);
            }
            None => kernel.push(deb),
        }
    }
    if let Some(set) = sets.iter_mut().find(|s| s.set == Set::Kernel).filter(|_| !kernel.is_empty()) {
        set.requests.clear();
        set.given = kernel;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lockfile::Pin;
    use std::path::PathBuf;

    fn board(name: &str) -> Board {
        Board::load(&crate::paths::repo_root().join("board").join(format!("{name}.toml"))).unwrap()
    }

    fn deb(name: &str) -> LocalDeb {
        let pin = Pin { name: name.into(), via: None, version: "1".into(), arch: "arm64".into(), sha256: "ab".into() };
        LocalDeb { pin, path: PathBuf::from(format!("{name}.deb")) }
    }

    fn names<'a>(sets: &'a [PackageSet], set: Set) -> (Vec<&'a str>, Vec<&'a str>) {
        let s = sets.iter().find(|s| s.set == set).unwrap();
        (s.requests.iter().map(|r| r.name).collect(), s.given.iter().map(|d| d.pin.name.as_str()).collect())
    }

    #[test]
    fn the_table_gives_each_board_its_sets() {
        let pi4 = board("pi4");
        let sets = sets_for(&pi4);
        let order: Vec<Set> = sets.iter().map(|s| s.set).collect();
        assert_eq!(
            order,
            [
                Set::Sysroot,
                Set::Kernel,
                Set::Busybox,
                Set::Ntpd,
                Set::AlsaData,
                Set::RaspiFirmware,
                Set::Wifi,
                Set::WifiFirmware
            ]
        );
        assert_eq!(names(&sets, Set::WifiFirmware).0, ["firmware-brcm80211"]);
        assert!(names(&sets, Set::Wifi).0.contains(&"wpasupplicant"));
        assert_eq!(names(&sets, Set::Sysroot).0.len(), SYSROOT_PACKAGES.len());
        let k = &sets.iter().find(|s| s.set == Set::Kernel).unwrap().requests[0];
        assert!(k.meta && k.name == pi4.kernel.package);
        // qemu-virt needs no Raspberry Pi firmware, and has wpa_supplicant without radio firmware.
        let qemu = board("qemu-virt");
        let q = sets_for(&qemu);
        assert!(q.iter().all(|s| s.set != Set::RaspiFirmware));
        assert!(names(&q, Set::Wifi).0.contains(&"wpasupplicant") && names(&q, Set::WifiFirmware).0.is_empty());
    }

    #[test]
    fn given_files_replace_the_kernel_and_the_packages_they_are_named_like() {
        let board = board("pi4");
        let mut sets = sets_for(&board);
        use_given(&mut sets, vec![deb("linux-image-6.6.74+rpt-rpi-v8"), deb("raspi-firmware")]);
        assert_eq!(names(&sets, Set::Kernel), (vec![], vec!["linux-image-6.6.74+rpt-rpi-v8"]));
        assert_eq!(names(&sets, Set::RaspiFirmware), (vec![], vec!["raspi-firmware"]));
        assert_eq!(names(&sets, Set::Busybox), (vec!["busybox-static"], vec![]));

        // Only firmware given: the kernel still comes from the archive.
        let mut sets = sets_for(&board);
        use_given(&mut sets, vec![deb("raspi-firmware")]);
        assert_eq!(names(&sets, Set::Kernel), (vec!["linux-image-arm64"], vec![]));
    }
}
