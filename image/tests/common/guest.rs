//! The qemu-virt guest of the kernel-driver QEMU tests (AMT interop, vicodec, Wi-Fi): the image built
//! with a test's roomcast.toml, QEMU started with a test-only FAT disk as /dev/vdb, the serial
//! console's shell (commands run, output returned, the console saved to a file after each),
//! and child processes killed when dropped.

#![allow(dead_code)] // each test binary uses a part

use roomcast_image::qemu::{self, Console};
use roomcast_image::{board::Board, paths};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether the tools of an image build and a QEMU guest are installed, and `extra` (a test's
/// own); each missing one is named ([`roomcast_test_support::require_tool`]: under `CI=true` a
/// missing tool fails the test).
pub fn tools_present(extra: &[&str]) -> bool {
    let base =
        ["qemu-system-aarch64", "mcopy", "mkfs.vfat", "sfdisk", "mksquashfs", "aarch64-linux-gnu-gcc", "cpio", "zstd"];
    let mut ok = true;
    for t in base.iter().chain(extra) {
        ok &= roomcast_test_support::require_tool(t).is_some(); // every missing tool is named
    }
    ok
}

/// Builds the qemu-virt image into `work` with `config` as its roomcast.toml; returns the image.
pub fn build_image(work: &Path, config: &str) -> PathBuf {
    let path = work.join("roomcast.toml");
    std::fs::write(&path, config).unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_roomcast-image"))
        .args(["build", "--board", "qemu-virt", "--config"])
        .arg(&path)
        .arg("--out")
        .arg(work)
        .stderr(Stdio::inherit())
        .output()
        .expect("running the image builder");
    assert!(out.status.success(), "the image build failed");
    eprintln!("image built in {:.0} s", started.elapsed().as_secs_f64());
    work.join("roomcast-qemu-virt.img")
}

/// How to boot the guest.
pub struct GuestSpec<'a> {
    /// The test's FAT disk (/dev/vdb in the guest), opened snapshot=on.
    pub disk: &'a Path,
    /// Where the guest mounts it.
    pub mount: &'a str,
    /// Everything the guest's NIC sends and receives, as a pcap (QEMU filter-dump).
    pub pcap: Option<&'a Path>,
    /// QEMU user networking `hostfwd=...` rules added to its netdev.
    pub hostfwd: Option<&'a str>,
}

/// The booted qemu-virt guest, its console shell ready and the test disk mounted.
pub struct Guest {
    _qemu: Proc,
    /// The serial console.
    pub console: Console,
    /// The serial console's log file (QEMU writes it; its socket is beside it).
    pub serial: PathBuf,
    /// Where the console's text is saved after every command.
    pub log: PathBuf,
    /// When QEMU was started.
    pub started: Instant,
}

/// `cmd` with `user,id=net0` replaced by `user,id=net0,{fwd}` (qemu::command has one fixed
/// user netdev): the same program, arguments, environment and directory.
fn with_hostfwd(cmd: Command, fwd: &str) -> Command {
    let mut with = Command::new(cmd.get_program());
    let mut found = false;
    for a in cmd.get_args() {
        if a == "user,id=net0" {
            found = true;
            with.arg(format!("user,id=net0,{fwd}"));
        } else {
            with.arg(a);
        }
    }
    assert!(found, "no `-netdev user,id=net0` in {cmd:?}");
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => with.env(k, v),
            None => with.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        with.current_dir(d);
    }
    with
}

impl Guest {
    /// Boots `image` (QEMU's files under `work`) as `spec` says, waits (at most 240 s) for the
    /// console shell and mounts the test disk.
    pub fn boot(work: &Path, image: &Path, spec: &GuestSpec) -> Guest {
        let board = Board::load(&paths::repo_root().join("board/qemu-virt.toml")).unwrap();
        let sock_dir = std::env::temp_dir().join(format!("rc-guest-{}", std::process::id()));
        std::fs::create_dir_all(&sock_dir).unwrap();
        let serial = sock_dir.join(format!("serial-{}.log", work.file_name().unwrap().to_string_lossy()));
        let boot = qemu::Boot {
            image: image.to_path_buf(),
            work: work.join("boot"),
            serial_log: Some(serial.clone()),
            qmp: None,
            gui: false,
            reboot: false,
        };
        let mut cmd = qemu::command(&board, &boot).unwrap();
        if let Some(fwd) = spec.hostfwd {
            cmd = with_hostfwd(cmd, fwd);
        }
        cmd.arg("-drive")
            .arg(format!("if=none,id=disk1,format=raw,snapshot=on,file={}", spec.disk.display()))
            .args(["-device", "virtio-blk-pci,drive=disk1"]);
        if let Some(pcap) = spec.pcap {
            let _ = std::fs::remove_file(pcap);
            cmd.arg("-object").arg(format!("filter-dump,id=dump0,netdev=net0,file={}", pcap.display()));
        }
        let started = Instant::now();
        let qemu_log = std::fs::File::create(work.join("qemu.log")).unwrap();
        let qemu = Proc(
            cmd.stdin(Stdio::null())
                .stdout(qemu_log.try_clone().unwrap())
                .stderr(qemu_log)
                .spawn()
                .expect("starting QEMU"),
        );
        let sock_end = Instant::now() + Duration::from_secs(20);
        while !Console::socket_of(&serial).exists() && Instant::now() < sock_end {
            std::thread::sleep(Duration::from_millis(100));
        }
        let console = Console::new(&serial);
        let mut guest = Guest { _qemu: qemu, console, serial, log: work.join("console.log"), started };
        // The console shell takes input once it asks for Enter.
        let ready = guest.console.wait_for("Please press Enter to activate this console", Duration::from_secs(240));
        guest.save();
        assert!(ready, "the guest's console shell never came up; console in {}", guest.log.display());
        let m = spec.mount;
        let mounted = guest.sh(&format!("mkdir -p {m} && mount -t vfat /dev/vdb {m} && echo MOUNTED"), 60);
        assert!(mounted.contains("MOUNTED"), "the test disk did not mount on {m}: {mounted}");
        guest
    }

    /// Saves the console's text to [`Guest::log`].
    pub fn save(&self) {
        let _ = std::fs::write(&self.log, self.console.text());
    }

    /// Runs `cmd` in the guest's console shell (at most `secs`) and returns its output.
    pub fn sh(&mut self, cmd: &str, secs: u64) -> String {
        let out = self.console.shell(cmd, Duration::from_secs(secs));
        self.save();
        out.unwrap_or_else(|e| panic!("`{cmd}` on the guest: {e}; console in {}", self.log.display()))
    }
}
