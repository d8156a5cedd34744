//! The V4L2 M2M encoder and decoder on a real kernel driver: vicodec (the kernel's virtual
//! stateful FWHT codec, drivers/media/test-drivers/vicodec) in the qemu-virt guest.
//!
//! Debian does not build `CONFIG_VIDEO_VICODEC`, so the test builds vicodec.ko out of tree for
//! the guest's kernel with the shared helper (common/kernel_module.rs: linux-source, the
//! kernel's linux-headers and linux-kbuild, all Debian packages at the pinned version); its
//! dependencies (v4l2-mem2mem, videobuf2-vmalloc, ...) are Debian's own modules from the kernel
//! package. They go to the guest on a test-only FAT disk; the production image is unchanged.
//!
//! In the guest, `roomcast codec-check --format fwht` (the image's own binary) runs the real
//! stateful sequence on vicodec's encoder and decoder devices: format negotiation, REQBUFS +
//! mmap, QBUF/DQBUF, STREAMON/OFF, a resolution change (640x360 to 712x400: the encoder set up
//! again, the decoder through V4L2_EVENT_SOURCE_CHANGE; vicodec pads both, 360 lines to 368 and
//! 712-byte lines to 720, so the raw copies honour its stride and the visible rectangle is set
//! by VIDIOC_S_SELECTION crop and read back as the decoder's compose rectangle), encoder and decoder drain
//! (V4L2_ENC_CMD_STOP, V4L2_DEC_CMD_STOP, until V4L2_BUF_FLAG_LAST), every FWHT header checked
//! (magic, version, size, 4:2:0 with three components, intra flag matching V4L2's keyframe
//! flag), each decoded frame compared with its input (PSNR). Checked here from its report: all
//! frames through both, both sizes decoded, PSNR above 30 dB, key frames. Then the device
//! vanishing: vicodec unbound through sysfs while codec-check streams must end it within
//! seconds with an error naming the gone device, no panic.
//!
//! Needs qemu-system-aarch64, the image's build tools, make and the aarch64 cross compiler
//! (skipped outside CI when missing). The first run downloads about 150 MB of Debian packages.

#[path = "common/guest.rs"]
mod guest;
#[path = "common/kernel_module.rs"]
mod kernel_module;

use guest::{Guest, GuestSpec};
use kernel_module::{fat_disk, kernel_tree, prepare_lock};
use roomcast_image::paths;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The vicodec sources in the kernel tree (drivers/media/test-drivers/vicodec/Makefile).
const SOURCES: &[&str] = &[
    "drivers/media/test-drivers/vicodec/vicodec-core.c",
    "drivers/media/test-drivers/vicodec/codec-fwht.c",
    "drivers/media/test-drivers/vicodec/codec-fwht.h",
    "drivers/media/test-drivers/vicodec/codec-v4l2-fwht.c",
    "drivers/media/test-drivers/vicodec/codec-v4l2-fwht.h",
];
const KBUILD: &str = "obj-m := vicodec.o\nvicodec-objs := vicodec-core.o codec-fwht.o codec-v4l2-fwht.o\n";

/// Builds vicodec.ko and the test disk: the module, its dependencies and the `load` script.
fn payload(work: &Path) -> (PathBuf, String) {
    let _one = prepare_lock();
    let tree = kernel_tree();
    let module = tree.cache.join("vicodec");
    std::fs::create_dir_all(&module).unwrap();
    tree.sources(SOURCES, &module);
    let (ko, vermagic) = tree.build(&module, KBUILD, "vicodec.ko");
    let depends = tree.depends(&ko);
    for d in ["v4l2-mem2mem", "videobuf2-vmalloc"] {
        assert!(depends.iter().any(|x| x == d), "vicodec.ko does not depend on {d}: {depends:?}");
    }
    let files = work.join("payload");
    let _ = std::fs::remove_dir_all(&files);
    std::fs::create_dir_all(&files).unwrap();
    std::fs::copy(&ko, files.join("vicodec.ko")).unwrap();
    let names: Vec<&str> = depends.iter().map(String::as_str).collect();
    let order = tree.copy_modules(&names, &files);
    // Modules the image already loaded (videodev for vivid, ...) are skipped.
    let load = format!(
        "for m in {}; do n=$(basename $m .ko | tr - _); grep -q \"^$n \" /proc/modules || insmod /tmp/vc/$m || exit 1; \
         done; insmod /tmp/vc/vicodec.ko && echo VICODEC-LOADED; ls /sys/bus/platform/drivers/vicodec/",
        order.join(" ")
    );
    std::fs::write(files.join("load"), load + "\n").unwrap();
    let mut all: Vec<PathBuf> = order.iter().map(|m| files.join(m)).collect();
    all.push(files.join("vicodec.ko"));
    all.push(files.join("load"));
    let disk = work.join("payload.img");
    fat_disk(&disk, "VICODEC", &all);
    (disk, vermagic)
}

/// The qemu-virt image with a roomcast.toml without meeting (static address, nothing leaves).
fn image(work: &Path) -> PathBuf {
    guest::build_image(
        work,
        "# roomcast.toml of the vicodec test: no meeting; the test runs `roomcast codec-check` in the guest.\n\
         [room]\nname = \"vicodec\"\n\n[network]\nmode = 'static'\naddress = '10.0.2.15/24'\ngateway = '10.0.2.2'\n\
         hostname = 'codec-box'\nntp = ['10.0.2.2']\n",
    )
}

/// The number after `key` in `text` (e.g. `encoded 40 frames` → 40 for key `encoded `).
fn number_after(text: &str, key: &str) -> Option<f64> {
    let rest = &text[text.find(key)? + key.len()..];
    let n: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    n.parse().ok()
}

#[test]
fn m2m_encoder_and_decoder_on_vicodec() {
    if !guest::tools_present(&["xz", "make", "modinfo", "dpkg-deb", "apt-get"]) {
        return;
    }
    let work = paths::repo_root().join("target/image/vicodec");
    std::fs::create_dir_all(&work).unwrap();
    // The module first: it fails faster than the image.
    let (disk, vermagic) = payload(&work);
    eprintln!("vicodec.ko vermagic: {vermagic}");
    let image = image(&work);
    let mut guest = Guest::boot(&work, &image, &GuestSpec { disk: &disk, mount: "/tmp/vc", pcap: None, hostfwd: None });
    eprintln!("guest up after {:.0} s", guest.started.elapsed().as_secs_f64());
    let loaded = guest.sh("sh /tmp/vc/load 2>&1", 60);
    assert!(loaded.contains("VICODEC-LOADED"), "vicodec.ko did not load: {loaded}");
    let nodes = guest.sh("for d in /sys/class/video4linux/*; do echo $d $(cat $d/name); done", 30);
    eprintln!("video nodes: {nodes}");

    // The stateful sequence, a resolution change, both drains, PSNR and headers.
    let frames = 40;
    let report = guest.sh(&format!("roomcast codec-check --format fwht --frames {frames} 2>&1; echo EXIT=$?"), 300);
    eprintln!("{report}");
    assert!(!report.contains("panicked"), "codec-check panicked: {report}");
    assert!(report.contains("codec-check: encoder /dev/video"), "no vicodec encoder found: {report}");
    assert!(report.contains("codec-check: decoder /dev/video"), "no vicodec decoder found: {report}");
    assert!(report.contains("resolution change 640x360 -> 712x400"), "{report}");
    // vicodec pads: 360 lines to 368 (cropped back by VIDIOC_S_SELECTION), 712-byte lines to 720.
    assert!(report.contains("encoder OUTPUT YU12 640x368 stride 640 size 353280 for 640x360 frames"), "{report}");
    assert!(report.contains("encoder OUTPUT YU12 720x400 stride 720 size 432000 for 712x400 frames"), "{report}");
    assert_eq!(number_after(&report, "codec-check: encoded "), Some(frames as f64), "{report}");
    assert_eq!(number_after(&report, "codec-check: decoded "), Some(frames as f64), "{report}");
    assert!(report.contains("sizes [(640, 360), (712, 400)]"), "the decoder did not follow the change: {report}");
    assert!(report.contains("encoder drain LAST: true") && report.contains("decoder drain LAST: true"), "{report}");
    let worst = number_after(&report, "worst ").expect("a PSNR figure");
    assert!(worst >= 30.0, "worst PSNR {worst} dB: {report}");
    // Intra frames: the first of each size at least (GOP 10); V4L2's keyframe flag, where the driver
    // sets it, matches the header's (codec-check FAILs otherwise).
    let intra = number_after(&report, "key frames, ").unwrap_or(0.0);
    assert!(intra >= 2.0, "{intra} intra FWHT headers: {report}");
    assert!(!report.contains("FAIL"), "{report}");
    assert!(report.contains("codec-check: OK") && report.contains("EXIT=0"), "{report}");

    // The device vanishing while streaming: vicodec unbound through sysfs.
    guest.sh(
        "(roomcast codec-check --format fwht --frames 1000000 --resize 640x360; echo EXIT=$?) > /tmp/vanish.log 2>&1 &",
        30,
    );
    let end = Instant::now() + Duration::from_secs(120);
    let mut log = String::new();
    while Instant::now() < end && !log.contains("streaming, ") {
        std::thread::sleep(Duration::from_secs(1));
        log = guest.sh("cat /tmp/vanish.log", 30);
    }
    assert!(log.contains("streaming, "), "codec-check never streamed: {log}");
    let unbind = guest.sh("echo vicodec.0 > /sys/bus/platform/drivers/vicodec/unbind; echo UNBOUND=$?", 30);
    assert!(unbind.contains("UNBOUND=0"), "{unbind}");
    let unbound_at = Instant::now();
    while unbound_at.elapsed() < Duration::from_secs(30) && !log.contains("EXIT=") {
        std::thread::sleep(Duration::from_millis(500));
        log = guest.sh("cat /tmp/vanish.log", 30);
    }
    let took = unbound_at.elapsed();
    eprintln!("after the unbind ({took:?}): {log}");
    guest.save();
    assert!(log.contains("EXIT="), "codec-check hung after the device vanished: {log}");
    assert!(log.contains("EXIT=1"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(log.contains("is gone"), "the error does not say the device vanished: {log}");
    let nodes_after = guest.sh("ls /sys/bus/platform/drivers/vicodec/", 30);
    assert!(!nodes_after.contains("vicodec.0"), "vicodec still bound: {nodes_after}");
}
