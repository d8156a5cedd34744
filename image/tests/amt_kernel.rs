//! Interop test of roomcast's AMT relay with the Linux kernel's AMT gateway (drivers/net/amt.c),
//! in one QEMU guest booting the qemu-virt image.
//!
//! Debian does not build `CONFIG_AMT`, so the test builds amt.ko out of tree, each run from
//! Debian's own packages (nothing of the kernel's source is committed; all of it is cached under
//! target/kernel-modules, by the shared helper common/kernel_module.rs): drivers/net/amt.c from linux-source-6.1 at exactly the version of the
//! guest's kernel (image/packages.lock), the arm64 linux-headers of that kernel (the image
//! builder's private apt) and the amd64 linux-kbuild-6.1 (host binaries of scripts/; Debian's
//! headers package asks for any version >= its own). `modinfo` must show the guest kernel's
//! vermagic. The guest gets amt.ko, udp_tunnel.ko (its one dependency, from the kernel package)
//! and iproute2's `ip` (busybox `ip` has no `type amt`) with the libraries its ELF needs on a
//! second, test-only virtio disk (a FAT image made with mtools): the production image is unchanged.
//!
//! Scenario: `roomcast relay` on the host (QEMU user networking: the host is 10.0.2.2 to the
//! guest; `--advertise 10.0.2.2` since the relay sees the guest's datagrams from 127.0.0.1, which
//! the kernel refuses as a relay address) with two injected test sources, one IPv4 and one IPv6
//! channel; in the guest `ip link add amt0 type amt mode gateway ... discovery 10.0.2.2` and
//! `roomcast listen` joining (S,G) on amt0. Checked, per family: the relay logs the join, the
//! receiver gets 50 numbered datagrams in order with none missing (the kernel renews its nonce
//! every ~2 s and reports IGMP and MLD in separate Updates: the relay must keep the memberships of
//! a renewed tunnel), and after it leaves the relay logs the leave. Then the relay (run with
//! `--state`) is killed with SIGKILL and restarted while the guest receives: all 150 datagrams
//! arrive, in order. tshark reads the guest's traffic (QEMU filter-dump): nothing malformed, the
//! kernel's P bit as described below, no query with G or L.
//!
//! Reverse scenario (second test): the kernel's relay in the guest (`ip link add amtr type amt
//! mode relay local 10.0.2.15 dev eth0`, QEMU `hostfwd=udp:127.0.0.1:P-:2268`) and `roomcast
//! gateway --relay 127.0.0.1:P --ignore-advertised-address` on the host (the kernel advertises
//! 10.0.2.15, which the host cannot reach). The kernel relay forwards into its tunnels whatever
//! is sent out of its device to a joined group (amt_dev_xmit), so the guest's channel sources are
//! `roomcast listen --send` bound to addresses of amtr (192.0.2.15, 2001:db8::15). Checked: the
//! IPv4 channel joins, 150 datagrams arrive in order, none missing; after the gateway leaves
//! (SIGTERM) the kernel relay still forwards the group (pcap; deviation below); the IPv6 channel
//! does not join (deviation below); a gateway from another port of the same address gets no
//! query (deviation below); after a relay restart (device deleted and made again: the kernel keeps
//! no state) data is back within 5 s by the gateway's silence probe, in order.
//!
//! Deviations of the kernel's AMT driver (6.1) from RFC 7450 section 5.1, read from its message
//! structs (include/net/amt.h, bit-fields allocated from the least significant bit, as GCC does):
//! - Request (5.1.3): the kernel puts the P flag in the most significant bit of the second
//!   octet (0x80); the RFC's P is its least significant bit (0x01). An RFC reader sees the
//!   kernel's MLD Request as an IGMP one with a reserved bit set. roomcast's relay reads either
//!   bit as P (RFC gateways send the reserved bits as zero), so the kernel gets its MLD query.
//! - Membership Query (5.1.4): the kernel reads L and G at 0x40 and 0x80 of the second octet and
//!   drops every query whose RFC L (0x02) or G (0x01) bit is set, taking them for reserved bits.
//!   roomcast's relay therefore sends G=0 (no gateway address and port) by default;
//!   `--query-gateway-address` turns it on for gateways behind NATs that need it for Teardown.
//! - The kernel's gateway sends from `gateway_port` but receives on `relay_port` (its socket is
//!   bound to relay_port in both modes): with different ports it never hears the Advertisement
//!   (ICMP port unreachable). The test sets both to the relay's port (2268 for both by default).
//! - Kernel relay: it drops a Request whose RFC P bit (0x01 of the second octet, a reserved bit
//!   to it) is set, so an RFC gateway never gets an MLD query and cannot join IPv6 channels
//!   (roomcast's gateway sends P=1 for its IPv6 channels and reports MLD only when queried); its
//!   Advertisement names its `local` address (no way to advertise another, e.g. behind NAT); it
//!   keys a tunnel by the gateway's IPv4 address alone and sends queries and data to the port it
//!   first saw (a gateway restarted on another port, or a second one behind the same NAT, gets
//!   nothing until that tunnel expires); Teardown is not handled; a leave (BLOCK in INCLUDE
//!   mode) keeps the source until its membership timer expires (no group-and-source-specific
//!   query is sent) and data is matched on the group alone, so forwarding goes on after a leave.
//! - The kernel takes a relay address only if it is not loopback, multicast or 0.0.0.0, and
//!   assumes the encapsulated query's IP header carries exactly one 4-byte option (IPv4 Router
//!   Alert) or 8 bytes of hop-by-hop options (IPv6): roomcast's queries have exactly those.
//!
//! Needs qemu-system-aarch64, the image's build tools, make and the aarch64 cross compiler
//! (skipped outside CI when missing). The first run downloads about 150 MB of Debian packages.

#[path = "common/guest.rs"]
mod guest;
#[path = "common/kernel_module.rs"]
mod kernel_module;

use guest::{Guest, GuestSpec, Proc};
use kernel_module::{arm64_deb, fat_disk, kernel_tree, prepare_lock, run};
use roomcast_image::paths;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The guest's libraries' and iproute2's packages (arm64, bookworm): `ip` and what its ELF needs
/// beyond the image's libc.
const IP_PACKAGES: &[&str] =
    &["iproute2", "libbpf1", "libelf1", "libmnl0", "libbsd0", "libmd0", "libcap2", "zlib1g", "libzstd1"];

/// The guest's address with the test's static configuration (QEMU user networking).
const GUEST: &str = "10.0.2.15";
/// What the test needs beyond an image build and a QEMU guest: the module build, the packages'
/// unpacking, tshark for the capture.
const TOOLS: &[&str] = &["aarch64-linux-gnu-readelf", "xz", "make", "modinfo", "dpkg-deb", "apt-get", "tshark"];

/// How the test disk's scripts run `ip` (the disk is mounted on /tmp/amt).
const IP: &str = "IP='env LD_LIBRARY_PATH=/tmp/amt/lib /tmp/amt/ip'";

/// What goes on the guest's test disk.
struct Payload {
    disk: PathBuf,
    vermagic: String,
}

/// Builds amt.ko for the guest's kernel and the FAT disk with it, udp_tunnel.ko, `ip` and the
/// test's shell `scripts` (name, text): the console shell takes only short command lines.
fn payload(work: &Path, scripts: &[(&str, String)]) -> Payload {
    let _one = prepare_lock();
    let tree = kernel_tree();
    let cache = tree.cache.clone();
    let apt = &tree.apt;
    let module = cache.join("amt");
    std::fs::create_dir_all(&module).unwrap();
    tree.sources(&["drivers/net/amt.c"], &module);
    let (ko, vermagic) = tree.build(&module, "obj-m := amt.o\n", "amt.ko");
    assert_eq!(tree.depends(&ko), ["udp_tunnel"]);

    // Files of the test disk.
    let files = work.join("payload");
    let _ = std::fs::remove_dir_all(&files);
    std::fs::create_dir_all(files.join("lib")).unwrap();
    std::fs::copy(&ko, files.join("amt.ko")).unwrap();
    let order = tree.copy_modules(&["udp_tunnel"], &files);
    assert_eq!(order, ["udp_tunnel.ko"], "udp_tunnel has dependencies now");
    let ip_root = cache.join("iproute2");
    if !ip_root.join("bin/ip").exists() {
        for name in IP_PACKAGES {
            let (_, deb) = arm64_deb(apt, name, None);
            run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&ip_root));
        }
    }
    std::fs::copy(ip_root.join("bin/ip"), files.join("ip")).unwrap();
    // The libraries `ip` needs, transitively, except the image's own libc.
    let mut todo = vec![ip_root.join("bin/ip")];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(elf) = todo.pop() {
        let dynamic = run(Command::new("aarch64-linux-gnu-readelf").arg("-d").arg(&elf));
        for lib in
            dynamic.lines().filter_map(|l| l.split_once("Shared library: [")).map(|(_, r)| r.trim_end_matches(']'))
        {
            if lib.starts_with("libc.so") || lib.starts_with("ld-linux") || !seen.insert(lib.to_string()) {
                continue;
            }
            let found = ["lib/aarch64-linux-gnu", "usr/lib/aarch64-linux-gnu"]
                .iter()
                .map(|d| ip_root.join(d).join(lib))
                .find(|p| p.exists())
                .unwrap_or_else(|| panic!("{lib} (needed by {}) is in none of {IP_PACKAGES:?}", elf.display()));
            std::fs::copy(&found, files.join("lib").join(lib)).unwrap(); // follows the symlink
            todo.push(found);
        }
    }
    let mut names = vec![files.join("amt.ko"), files.join("udp_tunnel.ko"), files.join("ip"), files.join("lib")];
    for (name, text) in scripts {
        std::fs::write(files.join(name), format!("{IP}\n{text}\n")).unwrap();
        names.push(files.join(name));
    }
    let disk = work.join("payload.img");
    fat_disk(&disk, "AMTTEST", &names);
    Payload { disk, vermagic }
}

/// The qemu-virt image with the test's roomcast.toml (no meeting server, static address, NTP at
/// the host where nothing answers: no traffic leaves the machine), built once for both tests
/// into target/image/amt-kernel/image: a second build would rewrite the file the other test's
/// guest is running from.
fn image() -> PathBuf {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(build_image).clone()
}

fn build_image() -> PathBuf {
    let work = paths::repo_root().join("target/image/amt-kernel/image");
    std::fs::create_dir_all(&work).unwrap();
    guest::build_image(
        &work,
        &format!(
            "# roomcast.toml of the kernel AMT interop test: no meeting, the guest's receiver is `roomcast listen`.\n\
             [room]\nname = \"AMT interop\"\n\n[amt]\nfamily = \"ipv4\"\n\n\
             [network]\nmode = 'static'\naddress = '{GUEST}/24'\ngateway = '10.0.2.2'\nhostname = 'amt-box'\n\
             ntp = ['10.0.2.2']\n"
        ),
    )
}

/// The host's `roomcast` (meeting service, relay, gateway, recorder), built for this test.
fn host_roomcast() -> PathBuf {
    roomcast_test_support::workspace_binary(&paths::repo_root(), "roomcast")
}

/// Boots the guest with the test disk on /tmp/amt, the NIC's traffic dumped to `pcap` and
/// `hostfwd` rules on its netdev; then amt.ko loaded, iproute2 checked and eth0 up.
fn boot(work: &Path, image: &Path, disk: &Path, pcap: &Path, hostfwd: Option<&str>) -> Guest {
    let spec = GuestSpec { disk, mount: "/tmp/amt", pcap: Some(pcap), hostfwd };
    let mut guest = Guest::boot(work, image, &spec);
    let setup = guest.sh("sh /tmp/amt/up", 60);
    eprintln!("guest up after {:.0} s: {setup}", guest.started.elapsed().as_secs_f64());
    assert!(setup.contains("MODULES-LOADED"), "amt.ko did not load: {setup}");
    assert!(setup.contains("iproute2"), "iproute2's ip does not run in the guest: {setup}");
    // The address comes up with the box's network setup; wait for it.
    let mut addr = String::new();
    for _ in 0..30 {
        addr = guest.sh("sh /tmp/amt/addr", 20);
        if addr.contains(GUEST) {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(addr.contains(GUEST), "eth0 never got {GUEST}: {addr}");
    guest
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Sends `roomcast-seq N` datagrams, N = 1, 2, ..., every 20 ms to `to` until stopped (at most 3 min).
fn sender(to: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let end = Instant::now() + Duration::from_secs(180);
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) && Instant::now() < end {
            n += 1;
            let _ = s.send_to(format!("roomcast-seq {n}").as_bytes(), ("127.0.0.1", to));
            std::thread::sleep(Duration::from_millis(20));
        }
        n
    })
}

/// The sequence numbers `roomcast listen` printed in `text`.
fn received(text: &str) -> Vec<u64> {
    text.lines()
        .filter(|l| l.contains("listen: recv "))
        .filter_map(|l| l.split("roomcast-seq ").nth(1))
        .filter_map(|n| n.split_whitespace().next()?.parse().ok())
        .collect()
}

fn wait_for_log(log: &Path, needle: &str, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if std::fs::read_to_string(log).unwrap_or_default().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// One channel through the kernel gateway: join, data in order, leave.
struct Channel {
    name: &'static str,
    spec: &'static str,
    sg: &'static str,
    inject: u16,
}

#[test]
fn kernel_amt_gateway_receives_through_the_roomcast_relay() {
    if !guest::tools_present(TOOLS) {
        return;
    }
    let work = paths::repo_root().join("target/image/amt-kernel");
    std::fs::create_dir_all(&work).unwrap();
    let image = image();
    let roomcast = host_roomcast();

    // The relay on the host.
    let relay_port = free_udp_port();
    let channels = [
        Channel { name: "IPv4", spec: "192.0.2.1@232.1.1.1:5004", sg: "192.0.2.1@232.1.1.1", inject: free_udp_port() },
        Channel {
            name: "IPv6",
            spec: "2001:db8::1@ff3e::8000:1:5006",
            sg: "2001:db8::1@ff3e::8000:1",
            inject: free_udp_port(),
        },
    ];
    // The kernel's gateway sends from gateway_port but receives on relay_port (amt_socket_create
    // binds relay_port in both modes): they must be the same port.
    let mut scripts = vec![
        ("up", "insmod /tmp/amt/udp_tunnel.ko && insmod /tmp/amt/amt.ko && echo MODULES-LOADED; $IP -V".to_string()),
        ("addr", "$IP -4 addr show dev eth0".to_string()),
        (
            "gw",
            format!(
                "$IP link add amt0 type amt mode gateway local {GUEST} discovery 10.0.2.2 dev eth0 \
                 relay_port {relay_port} gateway_port {relay_port} && $IP link set amt0 up && $IP -d link show amt0"
            ),
        ),
    ];
    for (name, c) in ["rx0", "rx1"].into_iter().zip(&channels) {
        scripts.push((
            name,
            format!("roomcast listen --channel {} --interface amt0 --count 50 --timeout 60 2>&1", c.spec),
        ));
    }
    let restart_count = 150;
    scripts.push((
        "rx2",
        format!(
            "roomcast listen --channel {} --interface amt0 --count {restart_count} --timeout 60 2>&1",
            channels[0].spec
        ),
    ));
    let payload = payload(&work, &scripts);
    eprintln!("amt.ko vermagic: {}", payload.vermagic);
    let relay_log = work.join("relay.log");
    let state = work.join("relay.state");
    let _ = std::fs::remove_file(&state);
    let _ = std::fs::remove_file(&relay_log);
    let start_relay = || {
        let mut relay = Command::new(&roomcast);
        relay.args(["relay", "--listen", &format!("127.0.0.1:{relay_port}"), "--advertise", "10.0.2.2", "--state"]);
        relay.arg(&state);
        for c in &channels {
            relay.args(["--inject", &format!("127.0.0.1:{}={}", c.inject, c.spec)]);
        }
        let f = std::fs::OpenOptions::new().create(true).append(true).open(&relay_log).unwrap();
        let before = std::fs::read_to_string(&relay_log).unwrap_or_default().matches("AMT relay listening").count();
        let p = Proc(
            relay
                .env("RUST_LOG", "info,roomcast_net=debug,roomcast_amt=debug")
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(f.try_clone().unwrap())
                .stderr(f)
                .spawn()
                .expect("starting roomcast relay"),
        );
        let end = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&relay_log).unwrap_or_default().matches("AMT relay listening").count() == before {
            assert!(Instant::now() < end, "the relay did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        p
    };
    let relay = std::sync::Mutex::new(Some(start_relay()));

    let pcap = work.join("guest.pcap");
    let mut guest = boot(&work, &image, &payload.disk, &pcap, None);
    let link = guest.sh("sh /tmp/amt/gw", 30);
    assert!(link.contains("amt0") && link.contains("amt"), "amt0 was not created: {link}");

    let mut report = Vec::new();
    for (i, c) in channels.iter().enumerate() {
        let stop = Arc::new(AtomicBool::new(false));
        let sending = sender(c.inject, stop.clone());
        let out = guest.sh(&format!("sh /tmp/amt/rx{i}"), 120);
        stop.store(true, Ordering::Relaxed);
        let sent = sending.join().unwrap();
        let relay_text = std::fs::read_to_string(&relay_log).unwrap_or_default();
        let joined = relay_text.contains(&format!("first tunnel joined sg={}", c.sg));
        let seqs = received(&out);
        let in_order = seqs.windows(2).all(|w| w[0] < w[1]);
        let gaps: u64 = seqs.windows(2).map(|w| w[1] - w[0] - 1).sum();
        let left = wait_for_log(&relay_log, &format!("last tunnel left sg={}", c.sg), Duration::from_secs(10));
        // The sender started with the receiver: the first number received says how long joining took.
        if let Some(first) = seqs.first() {
            eprintln!("{}: first datagram about {} ms after the receiver started", c.name, first * 20);
        }
        eprintln!(
            "{}: relay saw the join: {joined}; received {} of {sent} sent, in order: {in_order}, {gaps} missing \
             between the first and the last; relay saw the leave: {left}",
            c.name,
            seqs.len()
        );
        report.push((c.name, joined, seqs.len(), in_order, gaps, left, out));
    }
    // Relay restart: SIGKILL while data flows, restarted at once on the same ports with its
    // --state file. The kernel's gateway re-requests only at its query interval (125 s here), so
    // data comes back only if the relay kept the tunnel's MAC secret and memberships.
    let stop = Arc::new(AtomicBool::new(false));
    let sending = sender(channels[0].inject, stop.clone());
    let mark = guest.console.text().len();
    let serial = guest.serial.clone();
    let (restart_out, restart_took) = std::thread::scope(|scope| {
        let killer = scope.spawn(|| {
            let end = Instant::now() + Duration::from_secs(90);
            while Instant::now() < end {
                let text = std::fs::read_to_string(&serial).unwrap_or_default();
                if text.get(mark..).unwrap_or("").matches("listen: recv ").count() >= 30 {
                    let mut guard = relay.lock().unwrap();
                    if let Some(mut old) = guard.take() {
                        let _ = old.0.kill(); // SIGKILL
                        let _ = old.0.wait();
                    }
                    let t = Instant::now();
                    *guard = Some(start_relay());
                    return Some(t.elapsed());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            None
        });
        let out = guest.sh("sh /tmp/amt/rx2", 120);
        (out, killer.join().unwrap())
    });
    stop.store(true, Ordering::Relaxed);
    sending.join().unwrap();
    let seqs = received(&restart_out);
    let gap = seqs.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    eprintln!(
        "relay restart (SIGKILL, --state): restarted in {restart_took:?}; the guest received {} of {restart_count}, \
         in order: {}; longest gap {gap} datagrams (about {} ms)",
        seqs.len(),
        seqs.windows(2).all(|w| w[0] < w[1]),
        gap * 20
    );
    guest.save();
    let wire = dissect(&pcap, relay_port);
    for (name, joined, n, in_order, gaps, left, out) in &report {
        assert!(joined, "{name}: the kernel gateway's join never reached the relay; relay log {}", relay_log.display());
        assert!(*n >= 50, "{name}: the guest received {n} datagrams, not 50: {out}");
        assert!(in_order, "{name}: datagrams out of order: {out}");
        // The kernel's gateway renews its nonce every few seconds and reports IGMP and MLD in
        // separate Updates: a relay that dropped memberships on a new nonce lost data here.
        assert_eq!(*gaps, 0, "{name}: datagrams missing between the first and the last: {out}");
        assert!(left, "{name}: the relay never saw the leave; relay log {}", relay_log.display());
    }
    assert!(restart_took.is_some(), "the relay was never restarted: {restart_out}");
    assert_eq!(seqs.len(), restart_count, "after the relay restart the guest stopped receiving: {restart_out}");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "out of order across the restart: {restart_out}");
    assert!(gap * 20 < 5000, "data stopped for {} ms across the relay restart", gap * 20);
    wire.check();
}

/// Collects the `roomcast-seq N` numbers of the datagrams arriving on a UDP socket, with their
/// arrival times, until stopped (at most 3 min).
fn collector(stop: Arc<AtomicBool>) -> (u16, std::thread::JoinHandle<Vec<(Instant, u64)>>) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let port = s.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(180);
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) && Instant::now() < end {
            if let Ok(n) = s.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]);
                if let Some(seq) = text.strip_prefix("roomcast-seq ").and_then(|t| t.trim().parse().ok()) {
                    got.push((Instant::now(), seq));
                }
            }
        }
        got
    });
    (port, h)
}

/// `roomcast gateway` on the host, from UDP port `bind`, joining `join` through the guest's relay
/// at 127.0.0.1:`port` and forwarding to 127.0.0.1:`forward`, logging into `log`.
fn host_gateway(roomcast: &Path, port: u16, bind: u16, join: &str, forward: u16, log: &Path) -> Proc {
    let f = std::fs::File::create(log).unwrap();
    Proc(
        Command::new(roomcast)
            .args(["gateway", "--relay", &format!("127.0.0.1:{port}"), "--ignore-advertised-address"])
            .args(["--bind", &format!("127.0.0.1:{bind}")])
            .args(["--join", join, "--forward", &format!("127.0.0.1:{forward}")])
            .env("RUST_LOG", "info,roomcast_net=debug,roomcast_amt=debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("starting roomcast gateway"),
    )
}

/// SIGTERM (the gateway leaves its groups and tears the tunnel down), then waits for the exit.
fn terminate(p: &mut Proc) {
    let _ = Command::new("kill").args(["-TERM", &p.0.id().to_string()]).status();
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if let Ok(Some(_)) = p.0.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the gateway did not exit on SIGTERM");
}

#[test]
fn roomcast_gateway_receives_through_the_kernel_relay() {
    if !guest::tools_present(TOOLS) {
        return;
    }
    let top = paths::repo_root().join("target/image/amt-kernel");
    std::fs::create_dir_all(&top).unwrap();
    let image = image();
    let roomcast = host_roomcast();
    let work = top.join("kernel-relay");
    std::fs::create_dir_all(&work).unwrap();

    // The kernel's relay in the guest on the AMT port; QEMU forwards the host's 127.0.0.1:fwd to
    // it (the relay sees the host's gateway as 10.0.2.2, QEMU's address). The channels' sources
    // are addresses of amtr itself: the kernel relay forwards into its tunnels what is sent out
    // of its device to a group a tunnel joined (amt_dev_xmit), whatever the source.
    let fwd = free_udp_port();
    // The kernel relay keys its tunnels by the gateway's IP address alone and answers at the port
    // it first saw from it: the host's gateways (all 10.0.2.2 to the guest) use one port.
    let gw_port = free_udp_port();
    let relay = format!(
        "$IP link add amtr type amt mode relay local {GUEST} dev eth0 relay_port 2268 gateway_port 2268 \
         && $IP link set amtr up && $IP addr add 192.0.2.15/32 dev amtr \
         && $IP -6 addr add 2001:db8::15/128 dev amtr nodad && $IP -d link show amtr && echo RELAY-UP"
    );
    let channels = [("IPv4", "192.0.2.15@232.1.1.1:5004"), ("IPv6", "2001:db8::15@ff3e::8000:1:5006")];
    let send = |ch: &str, n: u32| format!("roomcast listen --channel {ch} --interface amtr --send {n} --timeout 60");
    let mut scripts = vec![
        ("up", "insmod /tmp/amt/udp_tunnel.ko && insmod /tmp/amt/amt.ko && echo MODULES-LOADED; $IP -V".to_string()),
        ("addr", "$IP -4 addr show dev eth0".to_string()),
        ("relay", relay),
        // A relay restart: the device deleted (tunnels, MAC key and memberships go) and made again.
        ("restart", "$IP link del amtr && sh /tmp/amt/relay".to_string()),
    ];
    for (i, (_, ch)) in channels.iter().enumerate() {
        scripts.push((["tx0", "tx1"][i], format!("{} 2>&1", send(ch, 150))));
        // After the leave: the same group on another port, which the relay must no longer forward.
        let late = ch.rsplit_once(':').unwrap().0.to_string() + ":5099";
        scripts.push((["late0", "late1"][i], format!("{} 2>&1", send(&late, 50))));
    }
    scripts.push(("tx2", format!("{} > /tmp/tx2.log 2>&1 &", send(channels[0].1, 400))));
    let payload = payload(&work, &scripts);
    let pcap = work.join("guest.pcap");
    let mut guest = boot(&work, &image, &payload.disk, &pcap, Some(&format!("hostfwd=udp:127.0.0.1:{fwd}-:2268")));
    let up = guest.sh("sh /tmp/amt/relay", 30);
    assert!(up.contains("RELAY-UP"), "the kernel relay amtr was not created: {up}");

    let mut report = Vec::new();
    for (i, (name, ch)) in channels.iter().enumerate() {
        let stop = Arc::new(AtomicBool::new(false));
        let (rx, collecting) = collector(stop.clone());
        let log = work.join(format!("gateway-{name}.log"));
        let mut gw = host_gateway(&roomcast, fwd, gw_port, ch, rx, &log);
        let joined = wait_for_log(&log, "state=Joined", Duration::from_secs(15));
        let joined_log = std::fs::read_to_string(&log).unwrap_or_default();
        let tx = guest.sh(&format!("sh /tmp/amt/tx{i}"), 120);
        std::thread::sleep(Duration::from_millis(500));
        terminate(&mut gw);
        stop.store(true, Ordering::Relaxed);
        let got: Vec<u64> = collecting.join().unwrap().into_iter().map(|(_, n)| n).collect();
        let in_order = got.windows(2).all(|w| w[0] < w[1]);
        let gaps: u64 = got.windows(2).map(|w| w[1] - w[0] - 1).sum();
        // After the leave the relay must stop forwarding the group: counted in the pcap.
        let late = guest.sh(&format!("sh /tmp/amt/late{i}"), 60);
        eprintln!(
            "{name}: gateway joined: {joined}; received {} of 150 ({tx:?}), in order: {in_order}, {gaps} missing \
             between the first and the last",
            got.len()
        );
        report.push((*name, joined, got, in_order, gaps, joined_log, late));
    }

    // Deviation: a gateway from the same address but another port gets no query (the relay sends
    // it to the port of the tunnel it has for that address).
    let other_log = work.join("gateway-other-port.log");
    let mut other = host_gateway(&roomcast, fwd, free_udp_port(), channels[0].1, free_udp_port(), &other_log);
    let other_joined = wait_for_log(&other_log, "state=Joined", Duration::from_secs(10));
    terminate(&mut other);

    // Relay restart while data flows: the kernel relay keeps nothing, so the gateway must notice
    // (its silence probe) and join again.
    let stop = Arc::new(AtomicBool::new(false));
    let (rx, collecting) = collector(stop.clone());
    let log = work.join("gateway-restart.log");
    let mut gw = host_gateway(&roomcast, fwd, gw_port, channels[0].1, rx, &log);
    assert!(wait_for_log(&log, "state=Joined", Duration::from_secs(15)), "no join before the restart: {log:?}");
    guest.sh("sh /tmp/amt/tx2", 30);
    std::thread::sleep(Duration::from_secs(2));
    let restarted = Instant::now();
    let again = guest.sh("sh /tmp/amt/restart", 30);
    assert!(again.contains("RELAY-UP"), "the kernel relay did not come back: {again}");
    let took = restarted.elapsed();
    // 400 datagrams of 20 ms: the sender ends ~8 s after it started.
    std::thread::sleep(Duration::from_secs(8));
    let tx2 = guest.sh("cat /tmp/tx2.log", 30);
    terminate(&mut gw);
    stop.store(true, Ordering::Relaxed);
    let got = collecting.join().unwrap();
    let seqs: Vec<u64> = got.iter().map(|(_, n)| *n).collect();
    let after: Vec<u64> = got.iter().filter(|(t, _)| *t > restarted + took).map(|(_, n)| *n).collect();
    let longest = got.windows(2).map(|w| w[1].0 - w[0].0).max().unwrap_or_default();
    eprintln!(
        "relay restart (device deleted and made again in {took:?}): {} datagrams, in order: {}, {} after the \
         restart, longest silence {longest:?}; sender: {tx2}",
        seqs.len(),
        seqs.windows(2).all(|w| w[0] < w[1]),
        after.len()
    );
    guest.save();
    let wire = dissect_kernel_relay(&pcap);
    eprintln!("tshark: {wire:?}");

    let (_, joined4, got4, in_order4, gaps4, _, _) = &report[0];
    assert!(
        joined4,
        "IPv4: the gateway never joined the kernel relay; log {}",
        work.join("gateway-IPv4.log").display()
    );
    assert!(got4.len() >= 140, "IPv4: {} of 150 datagrams", got4.len());
    assert!(in_order4, "IPv4: out of order: {got4:?}");
    assert_eq!(*gaps4, 0, "IPv4: datagrams missing: {got4:?}");
    // Deviation (kernel relay): after the gateway's leave (IGMPv3 BLOCK_OLD_SOURCES {S} in an
    // Update with a valid MAC) the kernel keeps INCLUDE(A) without sending the Q(G,A*B) RFC 3376
    // asks for, so the source only expires with its membership timer (minutes), and its data
    // path matches the group alone: the relay goes on forwarding. Asserted as it is.
    assert_eq!(wire.late_data[0], 50, "IPv4: after the leave the kernel relay forwarded not all 50: {wire:?}");
    // Deviation (kernel relay): the P flag of an RFC 7450 Request (the low bit of the second
    // octet) is a reserved bit to the kernel (its P is 0x80), which drops the Request: an RFC
    // gateway gets no MLD query and cannot join IPv6 channels. Asserted as it is.
    let (_, joined6, got6, _, _, log6, _) = &report[1];
    assert!(!joined6, "IPv6: joined the kernel relay, which this test says it cannot: {log6}");
    assert!(got6.is_empty(), "IPv6: {} datagrams arrived", got6.len());
    assert!(wire.rfc_p_requests >= 1, "no RFC P=1 Request seen: {wire:?}");
    assert_eq!(wire.mld_queries, 0, "the kernel relay answered a P=1 Request: {wire:?}");
    assert!(!other_joined, "a gateway from another port joined: the kernel relay no longer keys tunnels by address");
    // Restart: data comes back in order within 5 s.
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "out of order across the restart: {seqs:?}");
    assert!(after.len() >= 100, "only {} datagrams after the relay restart", after.len());
    assert!(longest < Duration::from_secs(5), "data stopped for {longest:?} across the relay restart");
    assert!(wire.malformed.trim().is_empty(), "tshark found malformed packets:\n{}", wire.malformed);
}

/// What tshark read in the kernel relay's traffic (the guest listens on 2268).
#[derive(Debug, Default)]
struct RelayWire {
    requests: usize,
    /// Requests with the RFC's P bit (0x01 of the second octet) set.
    rfc_p_requests: usize,
    igmp_queries: usize,
    mld_queries: usize,
    /// Multicast Data of the after-leave senders (port 5099), IPv4 and IPv6.
    late_data: [usize; 2],
    malformed: String,
}

fn dissect_kernel_relay(pcap: &Path) -> RelayWire {
    let decode = "udp.port==2268,amt";
    let fields = run(Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-n", "-d", decode, "-Y", "amt", "-T", "fields", "-E", "occurrence=l"])
        .args(["-e", "amt.type", "-e", "amt.request.p", "-e", "igmp.type", "-e", "icmpv6.type"])
        .args(["-e", "udp.dstport", "-e", "ipv6.dst"]));
    let mut w = RelayWire::default();
    for line in fields.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let get = |i: usize| f.get(i).copied().unwrap_or("");
        let set = |v: &str| !v.is_empty() && v != "0" && v != "0x00" && v != "False";
        match get(0) {
            "3" => {
                w.requests += 1;
                if set(get(1)) {
                    w.rfc_p_requests += 1;
                }
            }
            "4" if get(2).trim_start_matches("0x").trim_start_matches('0') == "11" => w.igmp_queries += 1,
            "4" if get(3) == "130" => w.mld_queries += 1,
            "6" if get(4) == "5099" => w.late_data[usize::from(!get(5).is_empty())] += 1,
            _ => {}
        }
    }
    w.malformed = run(Command::new("tshark").arg("-r").arg(pcap).args(["-n", "-d", decode, "-Y", "_ws.malformed"]));
    w
}

/// What tshark (RFC 7450 bit layout) read in the guest's traffic.
#[derive(Debug, Default)]
struct Wire {
    requests: usize,
    /// Requests with the RFC's P bit clear but the bit the kernel uses for P (0x80) set.
    kernel_p_requests: usize,
    queries: usize,
    /// Queries with the G or L bit set (the kernel's gateway drops them).
    queries_with_g_or_l: usize,
    updates: usize,
    data: usize,
    malformed: String,
}

impl Wire {
    fn check(&self) {
        eprintln!("tshark: {self:?}");
        assert!(self.malformed.trim().is_empty(), "tshark found malformed packets:\n{}", self.malformed);
        assert!(self.requests >= 2 && self.queries >= 2 && self.updates >= 2 && self.data >= 100, "{self:?}");
        // The deviation this test documents: the kernel's MLD Request sets 0x80, not the RFC's P.
        assert!(self.kernel_p_requests >= 1, "no kernel-style P=1 Request seen: {self:?}");
        assert_eq!(self.queries_with_g_or_l, 0, "{self:?}");
    }
}

fn dissect(pcap: &Path, relay_port: u16) -> Wire {
    let decode = format!("udp.port=={relay_port},amt");
    let fields = run(Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-n", "-d", &decode, "-Y", "amt", "-T", "fields"])
        .args(["-e", "amt.type", "-e", "amt.request.p", "-e", "amt.request.reserved"])
        .args(["-e", "amt.membership_query.l", "-e", "amt.membership_query.g"]));
    let mut w = Wire::default();
    for line in fields.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let get = |i: usize| f.get(i).copied().unwrap_or("");
        let set = |v: &str| !v.is_empty() && v != "0" && v != "0x00" && v != "False";
        match get(0) {
            "3" => {
                w.requests += 1;
                if !set(get(1)) && set(get(2)) {
                    w.kernel_p_requests += 1;
                }
            }
            "4" => {
                w.queries += 1;
                if set(get(3)) || set(get(4)) {
                    w.queries_with_g_or_l += 1;
                }
            }
            "5" => w.updates += 1,
            "6" => w.data += 1,
            _ => {}
        }
    }
    w.malformed = run(Command::new("tshark").arg("-r").arg(pcap).args(["-n", "-d", &decode, "-Y", "_ws.malformed"]));
    w
}
