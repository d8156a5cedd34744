//! `cargo image set-config` (the real binary) on a small image made with the builder's own disk
//! code: a binary file, a UTF-16 file and a file with a bad value are refused with a message naming
//! the problem, and the image stays byte-identical; a valid file replaces roomcast.toml on the boot
//! partition; `--force` writes even a refused file.

use roomcast_image::{apt, disk};
use roomcast_test_support::require_tool;
use std::path::Path;
use std::process::Command;

fn set_config(image: &Path, config: &Path, extra: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_roomcast-image"))
        .arg("set-config")
        .arg("--image")
        .arg(image)
        .arg("--config")
        .arg(config)
        .args(["--board", "qemu-virt"])
        .args(extra)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn refused_files_leave_the_card_untouched() {
    if ["mcopy", "mkfs.vfat", "sfdisk"].iter().any(|t| require_tool(t).is_none()) {
        return;
    }
    let work = std::env::temp_dir().join(format!("rc-set-config-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let boot = work.join("boot");
    std::fs::create_dir_all(&boot).unwrap();
    let repo = roomcast_image::paths::repo_root();
    std::fs::copy(repo.join("config/roomcast.toml"), boot.join("roomcast.toml")).unwrap();
    let root = work.join("root.squashfs");
    std::fs::write(&root, vec![0u8; 4096]).unwrap();
    let image = work.join("card.img");
    disk::make(&image, &boot, &root).unwrap();
    let before = apt::sha256_file(&image).unwrap();

    let binary = work.join("binary.toml");
    std::fs::write(&binary, [0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0xff, 0xfe, 0x90, 0x00]).unwrap();
    let utf16 = work.join("utf16.toml");
    let text: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain("[room]\r\nname = \"x\"\r\n".encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    std::fs::write(&utf16, text).unwrap();
    let bad = work.join("bad.toml");
    let demo = std::fs::read_to_string(repo.join("config/roomcast.toml")).unwrap();
    std::fs::write(&bad, demo.replace("bitrate_kbps = 300", "bitrate_kbps = \"fast\"")).unwrap();

    for (file, says) in [(&binary, "binary"), (&utf16, "UTF-16"), (&bad, "video.bitrate_kbps")] {
        let (ok, err) = set_config(&image, file, &[]);
        assert!(!ok, "{} was accepted", file.display());
        assert!(err.contains(says) && err.contains("nothing was written"), "{}: {err}", file.display());
        assert_eq!(apt::sha256_file(&image).unwrap(), before, "{} changed the image", file.display());
    }

    // A valid file goes onto the boot partition.
    let good = work.join("good.toml");
    std::fs::write(&good, demo.replace("Demo room", "Blue room")).unwrap();
    let (ok, err) = set_config(&image, &good, &[]);
    assert!(ok, "{err}");
    let back = work.join("back.toml");
    disk::read_boot_file(&image, "roomcast.toml", &back).unwrap();
    assert!(std::fs::read_to_string(&back).unwrap().contains("Blue room"));

    // --force writes what the box would refuse (the box then shows the config error).
    let (ok, err) = set_config(&image, &bad, &["--force"]);
    assert!(ok, "{err}");
    disk::read_boot_file(&image, "roomcast.toml", &back).unwrap();
    assert!(std::fs::read_to_string(&back).unwrap().contains("\"fast\""));
    std::fs::remove_dir_all(&work).unwrap();
}
