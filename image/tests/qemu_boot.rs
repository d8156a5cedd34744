//! System test of the image: `cargo image build --board qemu-virt` with a test roomcast.toml,
//! then the image booted in QEMU exactly as `cargo image run` does (kernel + initramfs taken from
//! the image's boot partition, the image as the virtio disk, vivid camera, snd-aloop microphone,
//! virtio-gpu framebuffer, user networking to the host as 10.0.2.2).
//!
//! Checked from the host:
//! - `boots_joins_streams_and_shows_the_meeting`: the box read roomcast.toml from the boot
//!   partition (its room name reaches the host's meeting service), opened vivid and snd-aloop and
//!   chose the software encoder (its log), its stream reached the host through the meeting service
//!   and the AMT relay and decodes (`roomcast gateway` + `roomcast record` on the host, dav1d and
//!   ffprobe), and the display shows the meeting (QMP screendump compared with the state the box
//!   reports). A host room (`roomcast box` with the synthetic camera, [`HOST_ROOM`]) is in the
//!   meeting too: the guest's second display (the board's `screen_device`, QMP `screendump` with
//!   `device` = `screen`) shows its colour bars in its tile with its name as the caption, as the
//!   compositor draws it.
//! - `a_config_error_is_shown_and_the_daemon_keeps_running`: the same image with a broken
//!   roomcast.toml put on its boot partition (mtools, like a user editing the SD card): the box
//!   logs the error with its key and line, shows the config-error screen, and the daemon is still
//!   running (never restarted) a while later.
//! - `without_a_meeting_server_the_box_shows_the_set_up_screen`: the same image with the real
//!   boards' default (config/roomcast.setup.toml, no server): the box joins nothing and its
//!   screen is exactly the host's rendering of the set-up state it reports (with its address).
//!
//! - `a_stopped_daemon_trips_the_watchdog_and_the_box_rejoins`: with `[system] watchdog_timeout_s
//!   = 6`, the init hands the i6300esb over to the daemon, which feeds it from its main loop (no
//!   reset while it runs, nor across a killed daemon's respawn, when init feeds it); `kill -STOP`
//!   of the daemon resets the guest within the timeout (QEMU keeps running: `-no-reboot` dropped), and the
//!   box boots and joins the meeting again (times printed).
//!
//! Both need qemu-system-aarch64 and the image's build tools (skipped outside CI when missing).
//! The first run cross-compiles the daemon (minutes); later runs reuse it.

use roomcast_image::qemu::{self, Console, Qmp};
use roomcast_image::{board::Board, disk, paths};
use roomcast_test_support::require_tool;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// QEMU guests and image builds are heavy on a 2-core machine: one at a time.
static ONE_GUEST: Mutex<()> = Mutex::new(());

const MEETING: &str = "qemu";
const TOKEN: &str = "qemu-token";

/// Everything both tests share: tools, the host's roomcast binary, the built image.
struct Setup {
    roomcast: PathBuf,
    dav1d: PathBuf,
    ffprobe: PathBuf,
    image: PathBuf,
    work: PathBuf,
    ports: Ports,
}

#[derive(Clone, Copy)]
struct Ports {
    control: u16,
    rtp: u16,
    relay: u16,
}

fn tools_present() -> Option<(PathBuf, PathBuf)> {
    let mut ok = true;
    for t in
        ["qemu-system-aarch64", "mcopy", "mkfs.vfat", "sfdisk", "mksquashfs", "aarch64-linux-gnu-gcc", "cpio", "zstd"]
    {
        ok &= require_tool(t).is_some();
    }
    let dav1d = require_tool("dav1d");
    let ffprobe = require_tool("ffprobe");
    if !ok {
        return None;
    }
    Some((dav1d?, ffprobe?))
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn test_config(ports: Ports, room: &str) -> String {
    format!(
        "# roomcast.toml of the QEMU system test.\n\
         [room]\nname = \"{room}\"\n\n\
         [meeting]\nserver = \"10.0.2.2:{control}\"\nid = \"{MEETING}\"\ntoken = \"{TOKEN}\"\nallow_plain_http = true\n\n\
         [amt]\nfamily = \"ipv4\"\n\n\
         [video]\nsource = \"auto\"\nencoder = \"auto\"\nbitrate_kbps = 150\n\n\
         [audio]\nsource = \"auto\"\nplayback = \"none\"\n\n\
         [display]\nkind = \"auto\"\n\n\
         # Single quotes on purpose: init reads this with the daemon's parser (`roomcast config get`).\n\
         [network]\nmode = 'static'\naddress = '{GUEST_ADDRESS}'\ngateway = '10.0.2.2'\nhostname = '{HOSTNAME}'\n\
         # NTP: the host (10.0.2.2; nothing answers), so that no test traffic goes to the default pool.\n\
         ntp = ['10.0.2.2']\n",
        control = ports.control
    )
}

const ROOM: &str = "QEMU test room";
/// The guest's static address and host name in the test roomcast.toml (QEMU user networking).
const GUEST_ADDRESS: &str = "10.0.2.15/24";
const HOSTNAME: &str = "qemu-box";

/// Builds the host tools and the image once for both tests.
fn setup() -> Option<&'static Setup> {
    static SETUP: OnceLock<Option<Setup>> = OnceLock::new();
    SETUP
        .get_or_init(|| {
            let (dav1d, ffprobe) = tools_present()?;
            let work = paths::repo_root().join("target/image/system-test");
            std::fs::create_dir_all(&work).unwrap();
            let ports = Ports { control: free_tcp_port(), rtp: free_udp_port(), relay: free_udp_port() };
            let config = work.join("roomcast.toml");
            std::fs::write(&config, test_config(ports, ROOM)).unwrap();

            // The host's roomcast (meeting service, gateway, recorder, display renderer).
            let roomcast = host_roomcast();

            let started = Instant::now();
            let out = Command::new(env!("CARGO_BIN_EXE_roomcast-image"))
                .args(["build", "--board", "qemu-virt", "--config"])
                .arg(&config)
                .arg("--out")
                .arg(&work)
                .stderr(Stdio::inherit())
                .output()
                .expect("running the image builder");
            assert!(out.status.success(), "cargo image build failed");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let image = work.join("roomcast-qemu-virt.img");
            assert_eq!(stdout.lines().next().map(PathBuf::from), Some(image.clone()), "builder prints the image path");
            assert!(stdout.contains("size: "), "builder prints the image size: {stdout}");
            eprintln!("image built in {:.0} s: {stdout}", started.elapsed().as_secs_f64());
            Some(Setup { roomcast, dav1d, ffprobe, image, work, ports })
        })
        .as_ref()
}

/// The host's `roomcast` (meeting service, relay, gateway, recorder), built for this test.
fn host_roomcast() -> PathBuf {
    roomcast_test_support::workspace_binary(&paths::repo_root(), "roomcast")
}

/// A child process killed when dropped.
struct Proc(Child, &'static str);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(Some(status)) = self.0.try_wait() {
            eprintln!("{} had already exited ({status})", self.1);
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(name: &'static str, cmd: &mut Command, log: &Path) -> Proc {
    let f = std::fs::File::create(log).unwrap();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"));
    Proc(child, name)
}

/// A booted guest.
struct Guest {
    _qemu: Proc,
    console: Console,
    qmp: Qmp,
    booted: Instant,
}

fn boot(image: &Path, dir: &Path) -> Guest {
    boot_with(image, dir, false)
}

/// [`boot`]; with `resets`, a reset (the watchdog's) restarts the guest instead of ending QEMU.
fn boot_with(image: &Path, dir: &Path, resets: bool) -> Guest {
    let board = Board::load(&paths::repo_root().join("board/qemu-virt.toml")).unwrap();
    // Unix socket paths must be short: keep them in /tmp.
    let sock_dir = std::env::temp_dir().join(format!(
        "rc-qemu-{}-{}",
        std::process::id(),
        dir.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(&sock_dir).unwrap();
    let serial = sock_dir.join("serial.log");
    let qmp_path = sock_dir.join("qmp.sock");
    let mut cmd = qemu::command(
        &board,
        &qemu::Boot {
            image: image.to_path_buf(),
            work: dir.join("boot"),
            serial_log: Some(serial.clone()),
            qmp: Some(qmp_path.clone()),
            gui: false,
            reboot: resets,
        },
    )
    .unwrap();
    let booted = Instant::now();
    let qemu = spawn("qemu", &mut cmd, &dir.join("qemu.log"));
    let qmp = Qmp::connect(&qmp_path, Duration::from_secs(20)).expect("QMP");
    Guest { _qemu: qemu, console: Console::new(&serial), qmp, booted }
}

impl Guest {
    fn expect(&self, needle: &str, secs: u64, what: &str) {
        assert!(
            self.console.wait_for(needle, Duration::from_secs(secs)),
            "{what}: the console never showed {needle:?} within {secs} s. Console:\n{}",
            self.console.text()
        );
    }

    fn save_console(&self, to: &Path) {
        let _ = std::fs::write(to, self.console.text());
    }
}

/// A plain HTTP/1.1 GET on loopback; returns the body.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let (head, body) = resp.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// Reads a PNG as RGB: (width, height, pixels).
fn png_rgb(path: &Path) -> (usize, usize, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let (w, h) = (info.width as usize, info.height as usize);
    let px = &buf[..info.buffer_size()];
    let rgb = match info.color_type {
        png::ColorType::Rgb => px.to_vec(),
        png::ColorType::Rgba => px.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
        png::ColorType::Grayscale => px.iter().flat_map(|&g| [g, g, g]).collect(),
        png::ColorType::GrayscaleAlpha => px.chunks_exact(2).flat_map(|p| [p[0], p[0], p[0]]).collect(),
        other => panic!("unexpected PNG colour type {other:?} in {}", path.display()),
    };
    (w, h, rgb)
}

fn distinct_colours(rgb: &[u8]) -> usize {
    let mut set = std::collections::BTreeSet::new();
    for p in rgb.chunks_exact(3) {
        set.insert((p[0], p[1], p[2]));
    }
    set.len()
}

/// Fraction of pixels that are the same in two RGB images of the same size.
fn same_pixels(a: &[u8], b: &[u8]) -> f64 {
    let same = a.chunks_exact(3).zip(b.chunks_exact(3)).filter(|(x, y)| x == y).count();
    same as f64 / (a.len() / 3).max(1) as f64
}

/// The box's state file (`/run/roomcast/state.json`), read at the rescue shell on one line.
/// Log lines the daemon prints to the same console can interleave: retried until it parses.
fn box_state(guest: &mut Guest) -> String {
    let mut last = String::new();
    for _ in 0..5 {
        let out = guest
            .console
            .shell("echo; tr -d '\\n' < /run/roomcast/state.json", Duration::from_secs(30))
            .unwrap_or_default();
        if let Some(line) = out.lines().map(str::trim).find(|l| l.starts_with('{') && l.ends_with('}')) {
            if serde_json::from_str::<serde_json::Value>(line).is_ok() {
                return line.to_string();
            }
        }
        last = out;
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("no state JSON from the box; the console gave: {last:?}")
}

/// Saves the guest's screen and the host's rendering of the state the box reports, and returns
/// how alike they are (fraction of identical pixels). Also checks the screen is not blank.
fn compare_screen(s: &Setup, guest: &mut Guest, dir: &Path) -> (f64, String) {
    let state = box_state(guest);
    let shot = dir.join("screen.png");
    guest.qmp.screendump(&shot).unwrap();
    std::fs::write(dir.join("state.json"), &state).unwrap();
    let expected = dir.join("expected.png");
    let rendered = Command::new(&s.roomcast)
        .args(["display", "--size", "320x240", "--from-json"])
        .arg(dir.join("state.json"))
        .arg("--png")
        .arg(&expected)
        .output()
        .unwrap();
    assert!(rendered.status.success(), "roomcast display --from-json: {}", String::from_utf8_lossy(&rendered.stderr));
    let (w, h, screen) = png_rgb(&shot);
    assert_eq!((w, h), (320, 240), "virtio-gpu framebuffer at the board's 320x240");
    assert!(distinct_colours(&screen) >= 2, "the display shows something, not a blank screen");
    let (ew, eh, want) = png_rgb(&expected);
    assert_eq!((ew, eh), (w, h));
    let alike = same_pixels(&screen, &want);
    eprintln!("screen vs host rendering of the box's state: {:.1}% identical pixels", alike * 100.0);
    (alike, state)
}

/// The host side: the meeting service with its AMT relay, told that boxes reach it as 10.0.2.2.
fn meeting_server(s: &Setup, dir: &Path) -> Proc {
    spawn(
        "roomcast server",
        Command::new(&s.roomcast)
            .args(["server", "--advertise", "10.0.2.2"])
            .env("ROOMCAST_MEETINGS", format!("{MEETING} {TOKEN}"))
            .arg(format!("--listen=127.0.0.1:{}", s.ports.control))
            .arg(format!("--rtp-listen=127.0.0.1:{}", s.ports.rtp))
            .arg(format!("--relay-listen=127.0.0.1:{}", s.ports.relay)),
        &dir.join("server.log"),
    )
}

#[test]
fn boots_joins_streams_and_shows_the_meeting() {
    let Some(s) = setup() else { return };
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let dir = s.work.join("meeting");
    roomcast_image::exec::fresh_dir(&dir).unwrap();

    let _server = meeting_server(s, &dir);
    let _host_room = host_room(s, &dir);

    let mut guest = boot(&s.image, &dir);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| meeting_checks(s, &mut guest, &dir)));
    guest.save_console(&dir.join("console.log"));
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

fn meeting_checks(s: &Setup, guest: &mut Guest, dir: &Path) {
    // Init: the boot partition and its roomcast.toml, modules, network, then the daemon.
    guest.expect("roomcast-init: configuration: /boot/roomcast.toml", 60, "init mounts the boot partition");
    guest.expect(
        &format!("network: eth0 static {GUEST_ADDRESS} gateway 10.0.2.2"),
        30,
        "mode = 'static' (single quotes) gives the static address, not DHCP",
    );
    guest.expect("starting roomcast box (start 1)", 30, "init starts the daemon");
    let console = guest.console.text();
    assert!(!console.contains("cannot load module"), "every board module loads:\n{console}");
    let devices = console.lines().find(|l| l.contains("roomcast-init: devices:")).unwrap_or_default();
    assert!(
        devices.contains("video0") && devices.contains("fb0") && devices.contains("watchdog"),
        "vivid, virtio-gpu, i6300esb: {devices}"
    );
    assert!(console.contains("Loopback"), "snd-aloop gives the Loopback card:\n{console}");

    // The box joins the host's meeting under the room name from the boot partition's roomcast.toml.
    let (roster, _) = wait_in_roster(s, guest, 90, &[]);
    let first_join = guest.booted.elapsed();
    eprintln!("boot to join: {:.1} s", first_join.as_secs_f64());

    // The guest is configured as check-config reads the file: the static address, no DHCP client,
    // the host name without its quotes.
    let net = guest
        .console
        .shell(
            "echo host=$(hostname); ip -4 addr show dev eth0; pidof udhcpc || echo no-dhcp-client-$((1+1))",
            Duration::from_secs(30),
        )
        .unwrap_or_default();
    assert!(net.contains(&format!("host={HOSTNAME}")), "hostname '{HOSTNAME}' without quotes: {net:?}");
    assert!(net.contains(&format!("inet {GUEST_ADDRESS}")), "eth0 has the static {GUEST_ADDRESS}: {net:?}");
    assert!(net.contains("no-dhcp-client-2"), "no DHCP client in static mode: {net:?}");

    // Its software encoder on vivid and snd-aloop (the box's own log).
    guest.expect("video ready", 60, "the box opens the camera and the encoder");
    let console = guest.console.text();
    let video_line = console.lines().find(|l| l.contains("video ready")).unwrap_or_default().to_string();
    assert!(
        video_line.to_lowercase().contains("software") || video_line.contains("rav1e") || video_line.contains("AV1"),
        "software encoder: {video_line}"
    );
    assert!(video_line.contains("vivid") || video_line.contains("/dev/video0"), "camera is vivid: {video_line}");

    // Receive its stream on the host: AMT gateway through the relay -> roomcast record -> dav1d.
    // The far end on the guest's screen, before the host's gateways join (they would be tiles too).
    far_end_screen_check(guest, dir);

    let roster: RosterView = parse_roster(&roster, ROOM);
    let (v_port, a_port) = (free_udp_port(), free_udp_port());
    // The service's relay serves the meeting's groups only to addresses that joined it: the
    // host's gateways join the meeting as listeners (watch-only), the token by environment.
    let relay = format!("127.0.0.1:{}", s.ports.relay);
    let server = format!("http://127.0.0.1:{}", s.ports.control);
    let gateway = |media: &str, port: u16| {
        let mut cmd = Command::new(&s.roomcast);
        cmd.args([
            "gateway",
            "--meeting-server",
            &server,
            "--meeting",
            MEETING,
            "--room",
            ROOM,
            "--media",
            media,
            "--listener-name",
            &format!("host-{media}"),
            // The service advertises its relay as 10.0.2.2, the guest's name for this host.
            "--ignore-advertised-address",
            "--relay",
            &relay,
            "--forward",
            &format!("127.0.0.1:{port}"),
        ])
        .env("ROOMCAST_TOKEN", TOKEN);
        cmd
    };
    let _gw_v = spawn("gateway (video)", &mut gateway("video", v_port), &dir.join("gateway-video.log"));
    let _gw_a = spawn("gateway (audio)", &mut gateway("audio", a_port), &dir.join("gateway-audio.log"));
    let sdp = local_sdp(&roster.sdp, v_port, a_port);
    std::fs::write(dir.join("box.sdp"), &sdp).unwrap();
    let rec = dir.join("recorded");
    let record = Command::new(&s.roomcast)
        .args(["record", "--seconds", "12", "--sdp"])
        .arg(dir.join("box.sdp"))
        .arg("--out")
        .arg(&rec)
        .output()
        .unwrap();
    std::fs::write(dir.join("record.log"), [&record.stdout[..], &record.stderr[..]].concat()).unwrap();
    assert!(record.status.success(), "roomcast record: {}", String::from_utf8_lossy(&record.stderr));

    let ivf = rec.join("video.ivf");
    let decoded = Command::new(&s.dav1d).arg("-i").arg(&ivf).args(["-o", "/dev/null"]).output().unwrap();
    let dav1d_out = String::from_utf8_lossy(&decoded.stderr).into_owned() + &String::from_utf8_lossy(&decoded.stdout);
    assert!(decoded.status.success(), "dav1d decodes the box's video: {dav1d_out}");
    let frames = decoded_frames(&dav1d_out);
    assert!(frames >= 10, "at least 10 frames (5 fps for 12 s) decoded from the box: {dav1d_out}");
    let probe = Command::new(&s.ffprobe)
        .args(["-v", "error", "-show_entries", "stream=codec_name,sample_rate", "-of", "csv=p=0"])
        .arg(rec.join("audio.opus"))
        .output()
        .unwrap();
    let probe_out = String::from_utf8_lossy(&probe.stdout);
    assert!(probe.status.success() && probe_out.contains("opus"), "ffprobe reads the box's Opus: {probe_out}");

    // The display: the framebuffer shows the box's in-meeting screen, as the host renders that state
    // (live figures such as bitrates may change between the two reads).
    let (alike, state) = compare_screen(s, guest, dir);
    assert!(state.contains("in-meeting"), "the box is in the meeting: {state}");
    assert!(alike >= 0.8, "the screen is the in-meeting screen ({:.1}% like the host's rendering)", alike * 100.0);
}

/// Waits until the host's meeting service lists the box ([`ROOM`]) under a participant id not in
/// `not_ids` (a rejoin); returns the roster JSON and that id.
fn wait_in_roster(s: &Setup, guest: &Guest, secs: u64, not_ids: &[String]) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(body) = http_get(s.ports.control, &format!("/v1/meetings/{MEETING}/roster?token={TOKEN}")) {
            let ids = room_ids(&body);
            if let Some(id) = ids.into_iter().find(|id| !not_ids.contains(id)) {
                return (body, id);
            }
        }
        assert!(
            Instant::now() < deadline,
            "the box never joined the meeting as {ROOM:?} (other than {not_ids:?}). Console:\n{}",
            guest.console.text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The participant ids the roster JSON lists for [`ROOM`].
fn room_ids(json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let Some(ps) = v["participants"].as_array() else { return Vec::new() };
    ps.iter().filter(|p| p["room"] == ROOM).filter_map(|p| p["id"].as_str().map(str::to_owned)).collect()
}

/// What the host needs of the box's roster entry.
struct RosterView {
    sdp: String,
}

/// Finds `room` in the roster JSON.
fn parse_roster(json: &str, room: &str) -> RosterView {
    let v: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("roster is not JSON ({e}): {json}"));
    let p = v["participants"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["room"] == room))
        .unwrap_or_else(|| panic!("{room} not in roster {json}"));
    RosterView { sdp: p["sdp"]["ipv4"].as_str().expect("sdp.ipv4").to_string() }
}

/// The box's SDP rewritten for the streams as the gateways deliver them: unicast to loopback.
fn local_sdp(sdp: &str, video_port: u16, audio_port: u16) -> String {
    let mut out = String::new();
    for line in sdp.lines() {
        let line = line.trim_end();
        if line.starts_with("c=") {
            out.push_str("c=IN IP4 127.0.0.1\r\n");
        } else if line.starts_with("a=source-filter") {
            continue;
        } else if let Some(rest) = line.strip_prefix("m=video ") {
            let tail = rest.split_once(' ').map(|x| x.1).unwrap_or("");
            out.push_str(&format!("m=video {video_port} {tail}\r\n"));
        } else if let Some(rest) = line.strip_prefix("m=audio ") {
            let tail = rest.split_once(' ').map(|x| x.1).unwrap_or("");
            out.push_str(&format!("m=audio {audio_port} {tail}\r\n"));
        } else {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out
}

/// dav1d prints "Decoded N/M frames" as it goes; the last one counts.
fn decoded_frames(out: &str) -> usize {
    out.rsplit("Decoded ").next().and_then(|r| r.split('/').next()).and_then(|n| n.trim().parse().ok()).unwrap_or(0)
}

#[test]
fn a_config_error_is_shown_and_the_daemon_keeps_running() {
    let Some(s) = setup() else { return };
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let dir = s.work.join("config-error");
    roomcast_image::exec::fresh_dir(&dir).unwrap();

    // A user edits roomcast.toml on the SD card and gets a value wrong (line 11: a word for a number).
    let image = dir.join("roomcast-qemu-virt.img");
    std::fs::copy(&s.image, &image).unwrap();
    let bad = dir.join("roomcast.toml");
    std::fs::write(
        &bad,
        "# A room whose roomcast.toml has a mistake.\n[room]\nname = \"Broken room\"\n\n[meeting]\nserver = \"10.0.2.2:9\"\nid = \"x\"\ntoken = \"t\"\n\n[video]\nbitrate_kbps = \"fast\"\n",
    )
    .unwrap();
    disk::write_boot_file(&image, &bad, "roomcast.toml").unwrap();
    // It is on the boot partition now, as the box will read it.
    let back = dir.join("readback.toml");
    disk::read_boot_file(&image, "roomcast.toml", &back).unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&bad).unwrap());

    let mut guest = boot(&image, &dir);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        guest.expect("starting roomcast box (start 1)", 90, "init starts the daemon");
        guest.expect("bitrate_kbps", 60, "the daemon names the bad key");
        let console = guest.console.text();
        let err_line = console.lines().find(|l| l.contains("bitrate_kbps")).unwrap_or_default().to_string();
        assert!(err_line.contains("11"), "the error names line 11: {err_line}");

        // Still the same daemon a while later: never exited, never restarted.
        std::thread::sleep(Duration::from_secs(10));
        let console = guest.console.text();
        assert!(!console.contains("roomcast exited"), "the daemon kept running:\n{console}");
        assert!(!console.contains("start 2)"), "the daemon was not restarted:\n{console}");
        let pid = guest.console.shell("pidof roomcast", Duration::from_secs(20)).unwrap();
        assert!(pid.split_whitespace().any(|p| p.parse::<u32>().is_ok()), "roomcast runs: {pid:?}");

        // The display shows the configuration error: exactly the host's rendering of that state.
        let (alike, state) = compare_screen(s, &mut guest, &dir);
        assert!(
            state.contains("config-error") && state.contains("bitrate_kbps"),
            "the box's state names the bad key: {state}"
        );
        assert!(
            alike >= 0.99,
            "the screen is the config-error screen ({:.1}% like the host's rendering)",
            alike * 100.0
        );
    }));
    guest.save_console(&dir.join("console.log"));
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

// --- A real board's default roomcast.toml (no meeting server): the set-up screen. ---

/// The display phase in the box's state JSON (`display.phase.phase`).
fn display_phase(state: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(state).unwrap_or_default();
    v["display"]["phase"]["phase"].as_str().unwrap_or_default().to_string()
}

/// The box's state JSON once the daemon reports `phase` and `needle`, polled over the console.
fn box_state_once(guest: &mut Guest, phase: &str, needle: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let state = box_state(guest);
        if display_phase(&state) == phase && state.contains(needle) {
            return state;
        }
        assert!(Instant::now() < deadline, "no {phase} state with {needle:?} within {secs} s; last: {state}");
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[test]
fn without_a_meeting_server_the_box_shows_the_set_up_screen() {
    let Some(s) = setup() else { return };
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let dir = s.work.join("set-up");
    roomcast_image::exec::fresh_dir(&dir).unwrap();

    // The real boards' default config on the boot partition, as a freshly flashed Pi has it.
    let image = dir.join("roomcast-qemu-virt.img");
    std::fs::copy(&s.image, &image).unwrap();
    let setup_toml = paths::repo_root().join("config/roomcast.setup.toml");
    assert!(!std::fs::read_to_string(&setup_toml).unwrap().lines().any(|l| l.trim_start().starts_with("server")));
    // Except NTP: the host (nothing answers) instead of the default pool, so no traffic leaves the host.
    let setup_text =
        std::fs::read_to_string(&setup_toml).unwrap().replacen("[network]\n", "[network]\nntp = ['10.0.2.2']\n", 1);
    assert!(setup_text.contains("ntp = ['10.0.2.2']"), "the set-up config has a [network] section");
    let setup_copy = dir.join("roomcast.setup.toml");
    std::fs::write(&setup_copy, setup_text).unwrap();
    disk::write_boot_file(&image, &setup_copy, "roomcast.toml").unwrap();

    let mut guest = boot(&image, &dir);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        guest.expect("starting roomcast box (start 1)", 90, "init starts the daemon");
        guest.expect("no meeting server in /boot/roomcast.toml", 60, "the daemon says it waits for a server");
        // DHCP (the setup config's mode) gives 10.0.2.15: the set-up screen shows it.
        let state = box_state_once(&mut guest, "set-up", "10.0.2.15", 60);
        assert!(state.contains("RC-BOOT"), "the set-up screen names the RC-BOOT drive: {state}");
        let console = guest.console.text();
        assert!(!console.contains("roomcast exited"), "the daemon keeps running:\n{console}");
        assert!(!console.contains("joined the meeting"), "nothing is joined without a server:\n{console}");

        // The display shows exactly the host's rendering of the set-up state the box reports.
        let (alike, state) = compare_screen(s, &mut guest, &dir);
        assert_eq!(display_phase(&state), "set-up", "still the set-up screen: {state}");
        assert!(alike >= 0.99, "the screen is the set-up screen ({:.1}% like the host's rendering)", alike * 100.0);
    }));
    guest.save_console(&dir.join("console.log"));
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

// --- Liveness: the daemon feeds the watchdog; a stopped daemon resets the board. ---

/// Watchdog timeout of the liveness test's roomcast.toml (short, so the test is quick).
const WATCHDOG_S: u64 = 6;

/// How many times the guest's init has started so far (its first line, once per boot).
fn boots(guest: &Guest) -> usize {
    guest.console.text().matches("roomcast-init: board=").count()
}

/// The daemon's pid (pidof also names the init script of the same name). Console commands stay
/// short: the shell's line editing wraps long lines, and a repeated one must do no harm.
fn daemon_pid(guest: &mut Guest) -> u32 {
    let pids = guest.console.shell("pidof roomcast", Duration::from_secs(30)).unwrap_or_default();
    for pid in pids.split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
        let exe =
            guest.console.shell(&format!("readlink /proc/{pid}/exe"), Duration::from_secs(30)).unwrap_or_default();
        if exe.contains("/usr/bin/roomcast") {
            return pid;
        }
    }
    panic!("no daemon process among {pids:?}")
}

#[test]
fn a_stopped_daemon_trips_the_watchdog_and_the_box_rejoins() {
    let Some(s) = setup() else { return };
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let dir = s.work.join("watchdog");
    roomcast_image::exec::fresh_dir(&dir).unwrap();
    let _server = meeting_server(s, &dir);
    // The system test's roomcast.toml with a short watchdog timeout.
    let image = dir.join("roomcast-qemu-virt.img");
    std::fs::copy(&s.image, &image).unwrap();
    let config = dir.join("roomcast.toml");
    std::fs::write(&config, format!("{}\n[system]\nwatchdog_timeout_s = {WATCHDOG_S}\n", test_config(s.ports, ROOM)))
        .unwrap();
    disk::write_boot_file(&image, &config, "roomcast.toml").unwrap();

    let mut guest = boot_with(&image, &dir, true);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let guest = &mut guest;
        // The init feeds the watchdog until the daemon starts, then hands it over armed.
        guest.expect(&format!("watchdog: init feeds /dev/watchdog (timeout {WATCHDOG_S}s"), 90, "init's feeder");
        guest.expect("watchdog: handed over to the daemon", 60, "handover before the daemon starts");
        guest.expect(&format!("timeout_s={WATCHDOG_S}"), 60, "the daemon sets the configured timeout");
        guest.expect("clock: ntpd started with 10.0.2.2 (from roomcast.toml [network] ntp)", 30, "NTP source logged");
        let (_, first_id) = wait_in_roster(s, guest, 120, &[]);
        box_state_once(guest, "in-meeting", ROOM, 90);

        // Fed from the main loop: well past the timeout, no reset.
        std::thread::sleep(Duration::from_secs(3 * WATCHDOG_S));
        assert_eq!(boots(guest), 1, "no watchdog reset while the daemon runs:\n{}", guest.console.text());

        // Killed: init takes the watchdog back for the respawn gap, no reset; the daemon comes back.
        let pid = daemon_pid(guest);
        guest.console.shell(&format!("kill -KILL {pid}"), Duration::from_secs(30)).unwrap();
        guest.expect("starting roomcast box (start 2)", 60, "init restarts the daemon");
        let console = guest.console.text();
        let takeover = console.rsplit("roomcast exited").next().unwrap_or_default();
        assert!(
            console.matches("watchdog: init feeds /dev/watchdog").count() >= 2 && takeover.contains("handed over"),
            "init fed the watchdog in the respawn gap and handed it over again:\n{console}"
        );
        let (_, second_id) = wait_in_roster(s, guest, 120, std::slice::from_ref(&first_id));
        std::thread::sleep(Duration::from_secs(3 * WATCHDOG_S));
        assert_eq!(boots(guest), 1, "no reset across the respawn:\n{}", guest.console.text());

        // SIGSTOP: the daemon's loop stops feeding; the i6300esb resets the guest.
        let pid = daemon_pid(guest);
        // The daemon stops somewhere between sending the command and its prompt coming back
        // (seconds apart under TCG on a loaded host): bound the reset from both ends.
        let sent = Instant::now();
        guest.console.shell(&format!("kill -STOP {pid}"), Duration::from_secs(30)).unwrap();
        let t_stop = Instant::now();
        let deadline = t_stop + Duration::from_secs(2 * WATCHDOG_S + 60);
        while boots(guest) < 2 {
            assert!(Instant::now() < deadline, "no reset after SIGSTOP:\n{}", guest.console.text());
            std::thread::sleep(Duration::from_millis(200));
        }
        // When the guest reset: its new kernel's uptime back from now.
        let up = guest.console.shell("cat /proc/uptime", Duration::from_secs(60)).unwrap_or_default();
        let asked = Instant::now();
        let uptime: f64 = up
            .lines()
            .find_map(|l| {
                let mut it = l.split_whitespace().map(str::parse::<f64>);
                match (it.next(), it.next(), it.next()) {
                    (Some(Ok(up)), Some(Ok(_)), None) => Some(up),
                    _ => None,
                }
            })
            .unwrap_or_else(|| panic!("guest uptime: {up:?}"));
        // At the latest / the earliest the daemon can have stopped.
        let reset_after = (asked - t_stop).as_secs_f64() - uptime;
        let reset_after_at_most = (asked - sent).as_secs_f64() - uptime;
        // Linux's i6300esb driver splits the timeout over the chip's two stages (half each), and the
        // last feed was up to a third of the timeout before the SIGSTOP.
        eprintln!(
            "watchdog: SIGSTOP to reset {reset_after:.1}-{reset_after_at_most:.1} s (timeout {WATCHDOG_S} s, fed every {} s)",
            WATCHDOG_S / 3
        );
        assert!(reset_after <= WATCHDOG_S as f64 + 4.0, "the reset came within the timeout: {reset_after:.1} s");
        assert!(
            reset_after_at_most >= (WATCHDOG_S - WATCHDOG_S / 3) as f64 - 1.5,
            "not before the timeout after the last feed: {reset_after_at_most:.1} s"
        );

        // It boots again and is back in the meeting under a new participant id.
        let (_, third_id) = wait_in_roster(s, guest, 180, &[first_id.clone(), second_id.clone()]);
        let rejoin = t_stop.elapsed();
        box_state_once(guest, "in-meeting", ROOM, 90);
        eprintln!("watchdog: SIGSTOP to back in the meeting {:.1} s (participant {third_id})", rejoin.as_secs_f64());
    }));
    guest.save_console(&dir.join("console.log"));
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn the_image_is_reproducible() {
    // Same inputs (daemon, pinned packages, init scripts, roomcast.toml, SOURCE_DATE_EPOCH) -> the same
    // bytes. Both builds get the same daemon binary (a copy of the one cross-compiled for the first
    // image: other people may be changing the sources meanwhile), so this costs two image
    // assemblies (~15 s each).
    let Some(s) = setup() else { return };
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let daemon = s.work.join("roomcast-aarch64");
    std::fs::copy(paths::repo_root().join("target/image/cross/aarch64-unknown-linux-gnu/release/roomcast"), &daemon)
        .unwrap();
    let built = |n: u32| -> (PathBuf, String) {
        let out = s.work.join(format!("repro-{n}"));
        roomcast_image::exec::fresh_dir(&out).unwrap();
        let status = Command::new(env!("CARGO_BIN_EXE_roomcast-image"))
            .args(["build", "--board", "qemu-virt", "--config"])
            .arg(s.work.join("roomcast.toml"))
            .arg("--out")
            .arg(&out)
            .arg("--daemon")
            .arg(&daemon)
            .env("SOURCE_DATE_EPOCH", "1790000000")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let img = out.join("roomcast-qemu-virt.img");
        // The manifest also names the git commit, which others may move meanwhile.
        let manifest = std::fs::read_to_string(out.join("roomcast-qemu-virt.img.manifest.toml"))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("git_commit"))
            .collect::<Vec<_>>()
            .join("\n");
        (img, manifest)
    };
    let (a, ma) = built(1);
    let (b, mb) = built(2);
    let sum = |p: &Path| roomcast_image::apt::sha256_file(p).unwrap();
    assert_eq!(sum(&a), sum(&b), "two builds from the same inputs give the same image");
    assert_eq!(ma, mb, "and the same manifest");
    assert!(ma.contains(&format!("sha256 = \"{}\"", sum(&a))), "the manifest names the image's sha256");
    assert!(ma.contains("source_date_epoch = 1790000000"));
    for pkg in ["libc6", "busybox-static", "linux-image-", "libasound2"] {
        assert!(ma.contains(&format!("name = \"{pkg}")), "the manifest pins {pkg}");
    }
}

// --- The far end on the guest's room screen (its second display). ---

/// The host room whose video the guest's screen shows.
const HOST_ROOM: &str = "Host room";

/// A `roomcast box` on the host in the test meeting: synthetic camera (colour bars) and
/// microphone, nothing shown, the software encoder.
fn host_room(s: &Setup, dir: &Path) -> Proc {
    let config = dir.join("host-room.toml");
    let text = format!(
        "[room]\nname = \"{HOST_ROOM}\"\n\n\
         [meeting]\nserver = \"127.0.0.1:{control}\"\nid = \"{MEETING}\"\ntoken = \"{TOKEN}\"\nallow_plain_http = true\n\n\
         [amt]\nfamily = \"ipv4\"\n\n\
         [video]\nsource = \"synthetic\"\nwidth = 160\nheight = 90\nfps = 5\nbitrate_kbps = 100\nencoder = \"software\"\nthreads = 1\nkeyframe_interval_s = 1\n\n\
         [audio]\nsource = \"synthetic\"\nplayback = \"null\"\n\n\
         [display]\nkind = \"none\"\n\n[screen]\noutput = \"none\"\n\n\
         [debug]\nstate_file = \"{state}\"\n",
        control = s.ports.control,
        state = dir.join("host-room-state.json").display()
    );
    std::fs::write(&config, text).unwrap();
    spawn(
        "host room box",
        Command::new(&s.roomcast).args(["box", "--config"]).arg(&config).args(["--board", "/nonexistent"]),
        &dir.join("host-room.log"),
    )
}

/// The hue sector (0 red .. 5 magenta) of a saturated pixel.
fn hue_sector(p: &[u8]) -> Option<usize> {
    let (r, g, b) = (i32::from(p[0]), i32::from(p[1]), i32::from(p[2]));
    let (max, min) = (r.max(g).max(b), r.min(g).min(b));
    if max - min < 90 {
        return None;
    }
    let d = f64::from(max - min);
    let h = if max == r {
        60.0 * (f64::from(g - b) / d).rem_euclid(6.0)
    } else if max == g {
        60.0 * (f64::from(b - r) / d + 2.0)
    } else {
        60.0 * (f64::from(r - g) / d + 4.0)
    };
    Some((((h + 30.0) / 60.0) as usize) % 6)
}

/// Pixels of each hue in the middle band (35-65 % of the height, 5-95 % of the width) of `area`.
fn hues_in(rgb: &[u8], width: usize, (x0, y0, w, h): (usize, usize, usize, usize)) -> [usize; 6] {
    let mut count = [0; 6];
    for y in (y0 + h * 35 / 100)..(y0 + h * 65 / 100) {
        for x in (x0 + w / 20)..(x0 + w * 19 / 20) {
            let i = (y * width + x) * 3;
            if let Some(s) = hue_sector(&rgb[i..i + 3]) {
                count[s] += 1;
            }
        }
    }
    count
}

/// (caption pixels in `reference`, how many `actual` has the same): white text and its dark
/// pill in the tile's bottom quarter, left half.
fn caption_match(
    actual: &[u8],
    reference: &[u8],
    width: usize,
    (x0, y0, w, h): (usize, usize, usize, usize),
) -> (usize, usize) {
    let (mut seen, mut same) = (0, 0);
    for y in (y0 + h * 3 / 4)..(y0 + h) {
        for x in x0..(x0 + w / 2) {
            let i = (y * width + x) * 3;
            let p = &reference[i..i + 3];
            if p == [255, 255, 255] || p == [16, 16, 20] {
                seen += 1;
                same += usize::from(&actual[i..i + 3] == p);
            }
        }
    }
    (seen, same)
}

/// The compositor's screen of `size` with one tile named `name` (no picture).
fn reference_screen(size: (u32, u32), name: &str) -> Vec<u8> {
    use roomcast_display::screen::{Compositor, Layout, Status, Tile};
    let mut c = Compositor::new(roomcast_display::FrameSize::new(size.0, size.1), Layout::Auto);
    let tiles = [Tile { name, muted: false, speaking: false, picture: None }];
    c.compose(&tiles, None, &Status::default()).unwrap().to_rgb_bytes()
}

/// The guest's second display shows the host room's colour bars in its (only) tile and the
/// room's name as its caption, pixel for pixel as the compositor draws it (and not another name).
fn far_end_screen_check(guest: &mut Guest, dir: &Path) {
    use roomcast_display::screen::{Compositor, Layout};
    let shot = dir.join("far-end-screen.png");
    let started = Instant::now();
    let mut last = String::new();
    // TCG: the guest decodes and composes slowly; bounded.
    while started.elapsed() < Duration::from_secs(150) {
        std::thread::sleep(Duration::from_secs(3));
        if let Err(e) = guest.qmp.screendump_of(&shot, Some("screen")) {
            last = format!("screendump: {e}");
            continue;
        }
        let (w, h, rgb) = png_rgb(&shot);
        let c = Compositor::new(roomcast_display::FrameSize::new(w as u32, h as u32), Layout::Auto);
        let t = c.tile_rects(1)[0];
        let tile = (t.top_left.x as usize, t.top_left.y as usize, t.size.width as usize, t.size.height as usize);
        let hues = hues_in(&rgb, w, tile);
        let (seen, same) = caption_match(&rgb, &reference_screen((w as u32, h as u32), HOST_ROOM), w, tile);
        let (seen_z, same_z) = caption_match(&rgb, &reference_screen((w as u32, h as u32), "Zebra room"), w, tile);
        last = format!("{w}x{h}: hues {hues:?}, caption {same}/{seen}, another name {same_z}/{seen_z}");
        if hues.iter().all(|&n| n >= 50) && seen >= 200 && same * 100 >= seen * 99 && same_z * 100 < seen_z * 99 {
            eprintln!("far-end screen right after {:.0} s: {last}", started.elapsed().as_secs_f64());
            assert_eq!((w, h), (640, 360), "the screen_device's size");
            return;
        }
    }
    let console = guest.console.text();
    let screen_lines: Vec<&str> = console.lines().filter(|l| l.contains("screen")).collect();
    panic!("the guest's screen never showed {HOST_ROOM}'s video and name: {last}; screen log lines: {screen_lines:#?}");
}
