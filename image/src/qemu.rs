//! Booting the qemu-virt image: the kernel, initramfs and command line are copied out of the image's
//! boot partition (mtools, unprivileged), the image itself is the virtio disk (snapshot: the image
//! file is never written), user networking reaches the host as 10.0.2.2, virtio-gpu gives the
//! framebuffer, i6300esb the watchdog, and a QMP socket allows `screendump` from the host.

use crate::board::Board;
use crate::disk;
use crate::error::{Error, IoContext, Result};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How to boot.
pub struct Boot {
    pub image: PathBuf,
    /// Where the kernel and initramfs are copied to.
    pub work: PathBuf,
    /// Serial console: None = this terminal (interactive); Some(file) = recorded in that file and
    /// reachable for input on the unix socket `file` + ".sock" (see [`Console`]).
    pub serial_log: Option<PathBuf>,
    /// QMP socket path.
    pub qmp: Option<PathBuf>,
    /// Show a window with the display (needs a desktop session).
    pub gui: bool,
    /// A guest reset (the watchdog's, `reboot`) restarts the guest as a real board does; when false
    /// (`-no-reboot`) it ends QEMU, so a test sees a crash instead of a quiet reboot.
    pub reboot: bool,
}

/// The QEMU command that boots `boot.image` as described by `board`'s `[qemu]` table.
pub fn command(board: &Board, boot: &Boot) -> Result<Command> {
    let q =
        board.qemu.as_ref().ok_or_else(|| Error::Config(format!("board {} has no [qemu] table", board.board.name)))?;
    std::fs::create_dir_all(&boot.work).with_context_io(|| format!("creating {}", boot.work.display()))?;
    let kernel = boot.work.join("vmlinuz");
    let initrd = boot.work.join("initrd.img");
    let cmdline_file = boot.work.join("cmdline.txt");
    disk::read_boot_file(&boot.image, "vmlinuz", &kernel)?;
    disk::read_boot_file(&boot.image, "initrd.img", &initrd)?;
    disk::read_boot_file(&boot.image, "cmdline.txt", &cmdline_file)?;
    let cmdline = std::fs::read_to_string(&cmdline_file)
        .with_context_io(|| format!("reading {}", cmdline_file.display()))?
        .trim()
        .to_string();

    let mut c = Command::new("qemu-system-aarch64");
    c.args(["-M", &q.machine, "-cpu", &q.cpu, "-accel", "tcg,thread=multi"])
        .args(["-m", &q.memory_mib.to_string(), "-smp", &q.smp.to_string()])
        .args(["-nodefaults", "-no-user-config"])
        .args(if boot.reboot { &[][..] } else { &["-no-reboot"][..] })
        .arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", &cmdline])
        .arg("-drive")
        .arg(format!("if=none,id=disk0,format=raw,snapshot=on,file={}", boot.image.display()))
        .args(["-device", "virtio-blk-pci,drive=disk0"])
        .args(["-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0,romfile="])
        .args(["-device", &q.display_device])
        .args(q.screen_device.iter().flat_map(|d| ["-device", d.as_str()]))
        .args(["-device", &q.watchdog_device, "-action", "watchdog=reset"]);
    if boot.gui {
        c.args(["-display", "gtk"]);
    } else {
        c.args(["-display", "none"]);
    }
    match &boot.serial_log {
        Some(log) => c
            .arg("-chardev")
            .arg(format!(
                "socket,id=ser0,path={},server=on,wait=off,logfile={}",
                Console::socket_of(log).display(),
                log.display()
            ))
            .args(["-serial", "chardev:ser0"]),
        None => c.args(["-serial", "mon:stdio"]),
    };
    if let Some(qmp) = &boot.qmp {
        c.arg("-qmp").arg(format!("unix:{},server=on,wait=off", qmp.display()));
    }
    Ok(c)
}

/// A QMP connection to a running QEMU.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects (retrying while QEMU starts) and enters command mode.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Qmp> {
        let deadline = std::time::Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if std::time::Instant::now() > deadline => {
                    return Err(e).with_context_io(|| format!("QMP socket {}", path.display()))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let what = || format!("QMP socket {}", path.display());
        stream.set_read_timeout(Some(Duration::from_secs(30))).with_context_io(what)?;
        let mut qmp = Qmp { reader: BufReader::new(stream.try_clone().with_context_io(what)?), writer: stream };
        qmp.read_reply()?; // greeting
        qmp.execute("{\"execute\":\"qmp_capabilities\"}")?;
        Ok(qmp)
    }

    fn read_reply(&mut self) -> Result<String> {
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).context_io("reading from QMP")? == 0 {
                return Err(Error::Qemu("QMP connection closed".into()));
            }
            // Skip asynchronous events.
            if !line.contains("\"event\"") {
                return Ok(line);
            }
        }
    }

    /// Sends one command; fails when QEMU answers with an error.
    pub fn execute(&mut self, json: &str) -> Result<String> {
        self.writer
            .write_all(json.as_bytes())
            .and_then(|()| self.writer.write_all(b"\n"))
            .with_context_io(|| format!("sending QMP {json}"))?;
        let reply = self.read_reply()?;
        if reply.contains("\"error\"") {
            return Err(Error::Qemu(format!("QMP {json} failed: {reply}")));
        }
        Ok(reply)
    }

    /// Saves the guest's display to `file` (PPM; PNG when QEMU supports the format argument).
    pub fn screendump(&mut self, file: &Path) -> Result<()> {
        self.screendump_of(file, None)
    }

    /// `screendump` of the display device with QEMU id `device` (None: the first display).
    pub fn screendump_of(&mut self, file: &Path, device: Option<&str>) -> Result<()> {
        let name = file.display().to_string().replace('\\', "\\\\").replace('"', "\\\"");
        let png = file.extension().is_some_and(|e| e == "png");
        let format = if png { ",\"format\":\"png\"" } else { "" };
        let device = device.map(|d| format!(",\"device\":\"{d}\"")).unwrap_or_default();
        let cmd = format!("{{\"execute\":\"screendump\",\"arguments\":{{\"filename\":\"{name}\"{format}{device}}}}}");
        self.execute(&cmd)?;
        Ok(())
    }

    /// Stops QEMU.
    pub fn quit(&mut self) -> Result<()> {
        self.execute("{\"execute\":\"quit\"}").map(|_| ())
    }
}

/// The guest's serial console as the tests use it: output recorded in a log file, input through
/// QEMU's unix socket.
pub struct Console {
    pub log: PathBuf,
    stream: Option<UnixStream>,
}

impl Console {
    /// The socket QEMU listens on for the console recorded in `log`.
    pub fn socket_of(log: &Path) -> PathBuf {
        let mut s = log.as_os_str().to_owned();
        s.push(".sock");
        PathBuf::from(s)
    }

    pub fn new(log: &Path) -> Console {
        Console { log: log.to_path_buf(), stream: None }
    }

    /// Everything the guest printed so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Waits until the console shows `needle`; returns whether it did within `timeout`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.text().contains(needle) {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn stream(&mut self) -> Result<&mut UnixStream> {
        if self.stream.is_none() {
            let s = UnixStream::connect(Self::socket_of(&self.log)).context_io("serial console socket")?;
            // QEMU also sends the console's output to the socket and stalls the guest's console when
            // nobody reads it: drain it (the log file has it all).
            let mut reader = s.try_clone().context_io("serial console socket")?;
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while matches!(std::io::Read::read(&mut reader, &mut buf), Ok(n) if n > 0) {}
            });
            self.stream = Some(s);
        }
        Ok(self.stream.as_mut().expect("just set"))
    }

    /// Types `command` at the rescue shell and returns its output (up to a marker it prints after).
    pub fn shell(&mut self, command: &str, timeout: Duration) -> Result<String> {
        // A marker of its own per command: output that arrives late (a command typed twice because
        // a loaded guest echoed it slowly) must never be taken for the next command's.
        static COMMANDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COMMANDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let marker = format!("END-{}-{n}", std::process::id());
        let before = self.text().len();
        // The console shell waits for Enter first ("Please press Enter to activate this console"),
        // and drops what is typed before its prompt: wait for the prompt.
        self.stream()?.write_all(b"\r").context_io("typing on the serial console")?;
        let prompt_deadline = std::time::Instant::now() + timeout / 2;
        // The prompt is "roomcast:<dir>#" (PS1 in image/rootfs/etc/profile).
        while !self.text().get(before..).unwrap_or("").contains("roomcast:/") {
            if std::time::Instant::now() > prompt_deadline {
                return Err(Error::Qemu("no shell prompt on the console".into()));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        // The shell may still drop input while it sets up line editing: type the command again
        // until it is echoed.
        // A command sent to the background ends in `&`, which already separates it from the marker.
        let sep = if command.trim_end().ends_with('&') { "" } else { ";" };
        let line = format!("{command}{sep} echo; echo {marker}-$((20+22))\r");
        let echoed = format!("{marker}-$((20+22))");
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(500));
            self.stream()?.write_all(line.as_bytes()).context_io("typing on the serial console")?;
            // Typing again runs the command twice if the first one was only slow to echo: wait long.
            let echo_deadline = std::time::Instant::now() + Duration::from_secs(12);
            while std::time::Instant::now() < echo_deadline
                && !self.text().get(before..).unwrap_or("").contains(&echoed)
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            if self.text().get(before..).unwrap_or("").contains(&echoed) {
                break;
            }
        }
        let want = format!("{marker}-42");
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let text = self.text();
            let new = text.get(before..).unwrap_or("");
            if let Some(end) = new.find(&want) {
                // Output starts after the echoed command line.
                let out = &new[..end];
                let start = out.find(&format!("{marker}-$((20+22))")).map(|i| i + marker.len() + 10).unwrap_or(0);
                return Ok(out[start.min(out.len())..].trim().to_string());
            }
            if std::time::Instant::now() > deadline {
                return Err(Error::Qemu(format!("no answer from the console to `{command}`")));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
