//! Wi-Fi system test: the qemu-virt image (which has the Pi images' wpa_supplicant, init's Wi-Fi
//! bring-up and `[network] wifi_*`) booted in QEMU, with two simulated radios from the kernel's
//! mac80211_hwsim (`radios=2`): an access point on one, the box on the other.
//!
//! - The access point: hostapd (WPA2-PSK) on the first radio, moved with the QEMU NIC (eth0) into a
//!   guest network namespace `ap`, with busybox udhcpd handing out 10.0.2.20-29/28 and a route on
//!   to QEMU's user network (10.0.2.0/24): forwarding and proxy ARP on eth0, so QEMU's slirp, which
//!   ARPs for the box's address, reaches it through the access point. The box's own namespace then
//!   has no wired interface: all its traffic goes over the simulated radio.
//! - The box: the image's roomcast.toml sets `wifi_ssid`, `wifi_psk`, `wifi_country` and
//!   `interface = "wlan1"`; init's /etc/init.d/wifi waits for wlan1 (it appears when the test loads
//!   mac80211_hwsim), writes /run/wpa_supplicant.conf (0600) and starts wpa_supplicant; udhcpc gets
//!   the address from the access point's udhcpd.
//!
//! One boot, two cases (`wifi_names_a_wrong_psk_then_connects_and_joins_the_meeting`):
//! 1. The access point starts with another passphrase than the box's: /run/roomcast/wifi says
//!    wrong-psk and the box's display state is no-network naming the wrong password on wlan1.
//! 2. hostapd restarts with the box's passphrase: wpa_supplicant's next attempt connects, the
//!    box's wlan1 gets an address from udhcpd's range, the daemon's state follows the status file
//!    to connected (its inotify watch), and the box joins `roomcast server` on the host (QEMU user
//!    networking, 10.0.2.2) as in qemu_boot.rs. wpa_supplicant.conf is mode 600 and holds only the
//!    derived key; the passphrase is on no command line and in no log of the box's.
//!
//! Test-only guest software (hostapd, iw, iproute2's `ip` for `ip netns`, their libraries from
//! Debian arm64 packages of the builder's private apt, and mac80211_hwsim with cfg80211, mac80211
//! and the crypto modules from the image's own kernel package) is on a second, test-only virtio
//! disk (a FAT image made with mtools; common/guest.rs and common/kernel_module.rs, shared with
//! amt_kernel.rs and vicodec.rs): the production image is unchanged.
//! What needs a real Pi: brcmfmac and its firmware (a FullMAC driver; hwsim is mac80211 SoftMAC).
//!
//! Needs qemu-system-aarch64 and the image's build tools (skipped outside CI when missing).

#[path = "common/guest.rs"]
mod guest;
#[path = "common/kernel_module.rs"]
mod kernel_module;

use guest::{Guest, GuestSpec, Proc};
use kernel_module::{arm64_deb, fat_disk, kernel_tree, run};
use roomcast_image::paths;
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const MEETING: &str = "wifi";
const TOKEN: &str = "wifi-token";
const ROOM: &str = "Wi-Fi test room";
const SSID: &str = "roomcast hwsim";
/// The access point's passphrase (and the box's in the first test).
const PASSPHRASE: &str = "hwsim-Passphrase-77";
/// The box's interface: mac80211_hwsim's second radio (the first goes to the access point).
const BOX_IFACE: &str = "wlan1";
/// The access point's passphrase at first: not the box's (the wrong-psk case).
const AP_OTHER_PASSPHRASE: &str = "another-Passphrase-78";
/// The test disk's mount point in the guest.
const MNT: &str = "/tmp/w";

/// Guest packages of the test disk only (arm64, bookworm).
const TEST_PACKAGES: &[&str] = &[
    "hostapd",
    "iw",
    "iproute2",
    "libnl-3-200",
    "libnl-genl-3-200",
    "libnl-route-3-200",
    "libssl3",
    "libbpf1",
    "libelf1",
    "libmnl0",
    "libbsd0",
    "libmd0",
    "libcap2",
    "zlib1g",
    "libzstd1",
];

/// The programs of the test disk.
const TEST_PROGRAMS: &[&str] = &["hostapd", "iw", "ip"];

/// Modules of the test disk, loaded in this order with their dependencies: the simulated radios
/// and the crypto mac80211 does itself for CCMP (those the kernel has built in are skipped).
const TEST_MODULES: &[&str] = &["ccm", "gcm", "cmac", "ctr", "aes_generic", "mac80211_hwsim"];

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The access point's hostapd.conf (WPA2-PSK, CCMP) with `passphrase`.
fn hostapd_conf(passphrase: &str) -> String {
    format!(
        "interface=wlan0\ndriver=nl80211\nssid={SSID}\nhw_mode=g\nchannel=6\ncountry_code=GB\n\
         wpa=2\nwpa_key_mgmt=WPA-PSK\nrsn_pairwise=CCMP\nwpa_passphrase={passphrase}\n"
    )
}

/// The box's roomcast.toml: the host's meeting over Wi-Fi, DHCP, NTP at the host (nothing answers).
fn box_config(control: u16) -> String {
    format!(
        "# roomcast.toml of the Wi-Fi (mac80211_hwsim) test.\n\
         [room]\nname = \"{ROOM}\"\n\n\
         [meeting]\nserver = \"10.0.2.2:{control}\"\nid = \"{MEETING}\"\ntoken = \"{TOKEN}\"\nallow_plain_http = true\n\n\
         [amt]\nfamily = \"ipv4\"\n\n\
         [video]\nsource = \"auto\"\nencoder = \"auto\"\nbitrate_kbps = 150\n\n\
         [audio]\nsource = \"auto\"\nplayback = \"none\"\n\n\
         [network]\ninterface = \"{BOX_IFACE}\"\nwifi_ssid = \"{SSID}\"\nwifi_psk = \"{PASSPHRASE}\"\nwifi_country = \"GB\"\n\
         hostname = \"wifi-box\"\nntp = ['10.0.2.2']\n"
    )
}

struct Setup {
    roomcast: PathBuf,
    image: PathBuf,
    disk: PathBuf,
    work: PathBuf,
    control: u16,
}

/// Builds the image and the test disk.
fn setup() -> Option<&'static Setup> {
    static SETUP: OnceLock<Option<Setup>> = OnceLock::new();
    SETUP
        .get_or_init(|| {
            if !guest::tools_present(&["aarch64-linux-gnu-readelf", "dpkg-deb"]) {
                return None;
            }
            let work = paths::repo_root().join("target/image/wifi-test");
            std::fs::create_dir_all(&work).unwrap();
            let control = free_tcp_port();
            let roomcast = roomcast_test_support::workspace_binary(&paths::repo_root(), "roomcast");
            let image = guest::build_image(&work, &box_config(control));
            let disk = test_disk(&work);
            Some(Setup { roomcast, image, disk, work, control })
        })
        .as_ref()
}

/// The FAT disk with the access point's programs, their libraries, the modules and the scripts.
fn test_disk(work: &Path) -> PathBuf {
    let _prepare = kernel_module::prepare_lock(); // the builder's apt is used throughout
    let kernel = kernel_tree();
    let apt = &kernel.apt;

    let files = work.join("payload");
    let _ = std::fs::remove_dir_all(&files);
    std::fs::create_dir_all(files.join("lib")).unwrap();
    std::fs::create_dir_all(files.join("ko")).unwrap();

    // The modules, from the image's own kernel package, in load order.
    let (_, modules) = kernel.modules();
    let mut wanted = Vec::new();
    for m in TEST_MODULES {
        // Crypto modules the kernel does not have at all are skipped; hwsim itself must be there.
        match modules.load_order(&[m.to_string()]) {
            Ok(_) => wanted.push(*m),
            Err(e) => assert_ne!(*m, "mac80211_hwsim", "the kernel has no mac80211_hwsim: {e}"),
        }
    }
    let mut load = String::new();
    for (i, file) in kernel.copy_modules(&wanted, &files.join("ko")).iter().enumerate() {
        let name = format!("{i:02}-{file}");
        std::fs::rename(files.join("ko").join(file), files.join("ko").join(&name)).unwrap();
        let opts = if name.contains("mac80211_hwsim") { " radios=2" } else { "" };
        load.push_str(&format!("insmod {MNT}/ko/{name}{opts} || echo INSMOD-FAILED {name}\n"));
    }
    assert!(load.contains("mac80211_hwsim"), "{load}");

    // hostapd, iw and ip with every library they need beyond the image's libc.
    let pkg_root = work.join("packages");
    if !pkg_root.join(".unpacked").exists() {
        for name in TEST_PACKAGES {
            let (_, deb) = arm64_deb(apt, name, None);
            run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&pkg_root));
        }
        std::fs::write(pkg_root.join(".unpacked"), "").unwrap();
    }
    let mut todo = Vec::new();
    for name in TEST_PROGRAMS {
        let from = ["sbin", "usr/sbin", "bin", "usr/bin"]
            .iter()
            .map(|d| pkg_root.join(d).join(name))
            // A real file only: iproute2's /sbin/ip is an absolute symlink, which would lead to the
            // host's own (x86-64) /bin/ip.
            .find(|p| p.symlink_metadata().is_ok_and(|m| m.is_file()))
            .unwrap_or_else(|| panic!("{name} is in none of {TEST_PACKAGES:?}"));
        std::fs::copy(&from, files.join(name)).unwrap();
        todo.push(from);
    }
    let mut seen = std::collections::BTreeSet::new();
    while let Some(elf) = todo.pop() {
        let dynamic = run(Command::new("aarch64-linux-gnu-readelf").arg("-d").arg(&elf));
        for lib in
            dynamic.lines().filter_map(|l| l.split_once("Shared library: [")).map(|(_, r)| r.trim_end_matches(']'))
        {
            // glibc's own libraries are in the image (libc6).
            let glibc = ["libc.so", "libm.so", "libpthread.so", "libdl.so", "librt.so", "libresolv.so", "ld-linux"];
            if glibc.iter().any(|g| lib.starts_with(g)) || !seen.insert(lib.to_string()) {
                continue;
            }
            let found = ["lib/aarch64-linux-gnu", "usr/lib/aarch64-linux-gnu"]
                .iter()
                .map(|d| pkg_root.join(d).join(lib))
                .find(|p| p.exists())
                .unwrap_or_else(|| panic!("{lib} (needed by {}) is in none of {TEST_PACKAGES:?}", elf.display()));
            std::fs::copy(&found, files.join("lib").join(lib)).unwrap();
            todo.push(found);
        }
    }

    // The scripts: the console shell takes only short command lines.
    let env = format!("L='env LD_LIBRARY_PATH={MNT}/lib'\nIP=\"$L {MNT}/ip\"\nIW=\"$L {MNT}/iw\"\n");
    let scripts = [
        ("up", format!("{load}ls /sys/class/net | tr '\\n' ' '; echo\necho MODULES-DONE\n")),
        (
            // Run in the guest's own namespace: the first radio and eth0 go to the access point's.
            "ap",
            format!(
                "{env}$IP netns add ap || exit 1\nphy=$(cat /sys/class/net/wlan0/phy80211/name)\n\
                 $IW phy \"$phy\" set netns name ap || exit 1\n$IP link set eth0 netns ap || exit 1\n\
                 $IP netns exec ap sh {MNT}/ap-inside\n"
            ),
        ),
        (
            "ap-inside",
            format!(
                "{env}$IP link set lo up\n$IP addr add 10.0.2.15/24 dev eth0\n$IP link set eth0 up\n\
                 $IP route add default via 10.0.2.2\n\
                 echo 1 > /proc/sys/net/ipv4/ip_forward\necho 1 > /proc/sys/net/ipv4/conf/eth0/proxy_arp\n\
                 echo 0 > /proc/sys/net/ipv4/neigh/eth0/proxy_delay\n\
                 $IP link set wlan0 up\n$IP addr add 10.0.2.17/28 dev wlan0\n\
                 sh {MNT}/hostapd-start {MNT}/hostapd-other.conf || exit 1\n\
                 touch /tmp/udhcpd.leases\nbusybox udhcpd {MNT}/udhcpd.conf || exit 1\n\
                 $IP -4 addr show wlan0 | grep -q 10.0.2.17 && echo AP-UP\n"
            ),
        ),
        (
            // (Re)starts hostapd with the conf $1 in the namespace it runs in; HOSTAPD-UP once enabled.
            "hostapd-start",
            format!(
                "{env}if [ -f /tmp/hostapd.pid ]; then\n pid=$(cat /tmp/hostapd.pid); kill $pid\n n=0\n\
                 while kill -0 $pid 2>/dev/null && [ $n -lt 50 ]; do sleep 0.2; n=$((n+1)); done\nfi\n\
                 $L {MNT}/hostapd \"$1\" > /tmp/hostapd.log 2>&1 &\necho $! > /tmp/hostapd.pid\n\
                 n=0\nwhile ! grep -q AP-ENABLED /tmp/hostapd.log && [ $n -lt 30 ]; do sleep 1; n=$((n+1)); done\n\
                 cat /tmp/hostapd.log\ngrep -q AP-ENABLED /tmp/hostapd.log && echo HOSTAPD-UP\n"
            ),
        ),
        ("ap-right", format!("{env}$IP netns exec ap sh {MNT}/hostapd-start {MNT}/hostapd.conf\n")),
        ("hostapd.conf", hostapd_conf(PASSPHRASE)),
        ("hostapd-other.conf", hostapd_conf(AP_OTHER_PASSPHRASE)),
        (
            "udhcpd.conf",
            "start 10.0.2.20\nend 10.0.2.29\ninterface wlan0\nmax_leases 10\nlease_file /tmp/udhcpd.leases\n\
             pidfile /tmp/udhcpd.pid\noption subnet 255.255.255.240\noption router 10.0.2.17\noption dns 10.0.2.3\n\
             option lease 3600\n"
                .to_string(),
        ),
        (
            // Every process's command line, one a line (read by the host: no needle on the guest's).
            "cmdlines",
            "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < \"$f\"; echo; done\n".to_string(),
        ),
    ];
    let mut names = vec![files.join("ko"), files.join("lib")];
    names.extend(TEST_PROGRAMS.iter().map(|name| files.join(name)));
    for (name, text) in scripts {
        std::fs::write(files.join(name), text).unwrap();
        names.push(files.join(name));
    }
    let disk = work.join("payload.img");
    fat_disk(&disk, "WIFITEST", &names);
    disk
}

/// The host's meeting service with its AMT relay (boxes reach it as 10.0.2.2).
fn meeting_server(s: &Setup, dir: &Path) -> Proc {
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    Proc(
        Command::new(&s.roomcast)
            .args(["server", "--advertise", "10.0.2.2"])
            .env("ROOMCAST_MEETINGS", format!("{MEETING} {TOKEN}"))
            .arg(format!("--listen=127.0.0.1:{}", s.control))
            .arg(format!("--rtp-listen=127.0.0.1:{}", free_udp_port()))
            .arg(format!("--relay-listen=127.0.0.1:{}", free_udp_port()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting roomcast server"),
    )
}

/// Boots the image with the test disk on /tmp/w, loads the simulated radios and brings up the
/// access point (with the other passphrase) in its namespace.
fn boot_with_access_point(s: &Setup, dir: &Path) -> Guest {
    let spec = GuestSpec { disk: &s.disk, mount: MNT, pcap: None, hostfwd: None };
    let mut guest = Guest::boot(dir, &s.image, &spec);
    let up = guest.sh(&format!("sh {MNT}/up"), 120);
    assert!(up.contains("MODULES-DONE") && !up.contains("INSMOD-FAILED"), "the modules did not load: {up}");
    assert!(up.contains("wlan0") && up.contains(BOX_IFACE), "mac80211_hwsim made no two radios: {up}");
    let ap = guest.sh(&format!("sh {MNT}/ap 2>&1"), 60);
    assert!(ap.contains("HOSTAPD-UP") && ap.contains("AP-UP"), "the access point did not come up: {ap}");
    guest
}

/// Polls `cmd` until its output contains `needle` (at most `secs`); returns the last output.
fn wait_sh(guest: &mut Guest, cmd: &str, needle: &str, secs: u64) -> String {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        // A read that starts after the deadline is the last: one that starts before it may take
        // long on a starved TCG guest and show the state of its start, not the window's end.
        let started = Instant::now();
        let out = guest.sh(cmd, 30);
        if out.contains(needle) || started > end {
            return out;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// A plain HTTP/1.1 GET on loopback; returns the body.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    std::io::Write::write_all(
        &mut s,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text.split_once("\r\n\r\n")?.1.to_string())
}

/// The box's state file as JSON (null until the daemon wrote one).
fn box_state(guest: &mut Guest) -> serde_json::Value {
    let state = guest.sh("echo; tr -d '\\n' < /run/roomcast/state.json", 30);
    state
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_default()
}

/// Polls the box's state until `ok` holds (at most `secs`); returns it, or panics naming `what`.
fn wait_state(guest: &mut Guest, what: &str, secs: u64, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        // As in wait_sh: only a read that started after the deadline shows the state at its end.
        let started = Instant::now();
        let v = box_state(guest);
        if ok(&v) {
            return v;
        }
        assert!(started < end, "{what} within {secs} s: {v}; console in {}", guest.log.display());
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[test]
fn wifi_names_a_wrong_psk_then_connects_and_joins_the_meeting() {
    let Some(s) = setup() else { return };
    let dir = s.work.join("run");
    roomcast_image::exec::fresh_dir(&dir).unwrap();
    let _server = meeting_server(s, &dir);
    let started = Instant::now();
    let mut guest = boot_with_access_point(s, &dir);
    let links = guest.sh("ls /sys/class/net | tr '\\n' ' '", 30);
    assert!(!links.contains("eth0"), "the box still has a wired interface: {links}");
    eprintln!("booted, access point up after {:.0} s", started.elapsed().as_secs_f64());

    // 1. The access point has another passphrase: the box names the wrong password.
    let wifi = wait_sh(&mut guest, "cat /run/roomcast/wifi", "wrong-psk", 120);
    assert!(wifi.contains("wrong-psk"), "the box's Wi-Fi status does not name the wrong passphrase: {wifi}");
    let state = wait_state(&mut guest, "the screen says wrong password", 90, |v| {
        let phase = &v["display"]["phase"];
        phase["phase"] == "no-network" && phase.to_string().contains("wrong password")
    });
    assert_eq!(state["display"]["phase"]["interface"], BOX_IFACE, "{state}");
    eprintln!("wrong password named after {:.0} s", started.elapsed().as_secs_f64());

    // 2. The access point takes the box's passphrase: the box connects, gets its address, joins.
    let ap = guest.sh(&format!("sh {MNT}/ap-right 2>&1"), 60);
    assert!(ap.contains("HOSTAPD-UP"), "hostapd did not restart with the box's passphrase: {ap}");
    let wifi = wait_sh(&mut guest, "cat /run/roomcast/wifi", "connected", 120);
    assert!(wifi.contains("connected"), "the box's Wi-Fi never connected: {wifi}");
    let addr = wait_sh(&mut guest, &format!("ip -4 addr show dev {BOX_IFACE}"), "inet 10.0.2.2", 90);
    assert!(addr.contains("inet 10.0.2.2"), "{BOX_IFACE} has no address from the access point's udhcpd: {addr}");
    eprintln!(
        "Wi-Fi up with {} after {:.0} s",
        addr.lines().find(|l| l.contains("inet")).unwrap_or("").trim(),
        started.elapsed().as_secs_f64()
    );
    // The daemon followed the status file (inotify): its state says connected, no Wi-Fi problem,
    // and the screen shows the address the access point gave (looked up again once it came).
    let inet = addr.split_whitespace().skip_while(|w| *w != "inet").nth(1).unwrap_or_default();
    let ip = inet.split('/').next().unwrap_or_default().to_string();
    wait_state(&mut guest, "the box's state follows the Wi-Fi status to connected, with its address", 60, |v| {
        let wifi = &v["status"]["wifi"];
        wifi["state"] == "connected" && wifi["problem"].is_null() && v["display"]["ip"] == ip.as_str()
    });

    // The box joins the host's meeting, over the simulated radio.
    let deadline = Instant::now() + Duration::from_secs(180);
    let roster = loop {
        let body = http_get(s.control, &format!("/v1/meetings/{MEETING}/roster?token={TOKEN}")).unwrap_or_default();
        if body.contains(ROOM) {
            break body;
        }
        assert!(Instant::now() < deadline, "the box never joined the meeting; console in {}", guest.log.display());
        std::thread::sleep(Duration::from_secs(1));
    };
    eprintln!("joined after {:.0} s: {roster}", started.elapsed().as_secs_f64());

    // The passphrase is in no file of the box's and on no command line.
    // (A marked line: the console can echo stray characters before a command's output.)
    let conf = guest.sh("stat -c mode=%a /run/wpa_supplicant.conf; cat /run/wpa_supplicant.conf", 30);
    assert!(conf.lines().any(|l| l.trim() == "mode=600"), "wpa_supplicant.conf is not mode 600: {conf}");
    assert!(conf.contains("psk=") && !conf.contains(PASSPHRASE), "the conf has the derived key only: {conf}");
    let cmdlines = guest.sh(&format!("sh {MNT}/cmdlines"), 30);
    assert!(cmdlines.contains("wpa_supplicant"), "{cmdlines}");
    let on_box: Vec<&str> = cmdlines.lines().filter(|l| !l.contains("hostapd")).collect();
    assert!(on_box.iter().all(|l| !l.contains(PASSPHRASE)), "the passphrase is on a command line: {on_box:?}");
    let log = guest.sh("cat /var/log/init.log /var/log/wpa_supplicant.log", 30);
    assert!(!log.contains(PASSPHRASE), "the passphrase is in a log");
    guest.save();
    eprintln!("wifi_hwsim: guest part {:.0} s", started.elapsed().as_secs_f64());
}
