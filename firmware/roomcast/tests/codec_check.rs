//! `roomcast codec-check` on the build host, which has no M2M FWHT codec (vicodec is not built by
//! Debian): it must say so and fail cleanly, and refuse bad sizes. The run on a real codec is
//! image/tests/vicodec.rs (QEMU guest with vicodec.ko).

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_roomcast");

#[test]
fn without_a_codec_it_fails_with_a_clear_message() {
    if std::path::Path::new("/sys/bus/platform/drivers/vicodec").exists() {
        eprintln!("vicodec is loaded on this host: nothing to check here");
        return;
    }
    let out = Command::new(BIN).args(["codec-check", "--format", "fwht", "--frames", "2"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no M2M FWHT Encoder found"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn refuses_bad_sizes_and_formats() {
    for args in [["--size", "321x240"], ["--resize", "0x0"], ["--format", "vp8"]] {
        let out = Command::new(BIN).arg("codec-check").args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("invalid value"), "{args:?}: {err}");
    }
}
