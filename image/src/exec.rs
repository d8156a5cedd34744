//! Running the external tools the build relies on (apt-get, dpkg-deb, mksquashfs, sfdisk, mtools,
//! cargo, qemu), with errors that say which command failed and what it printed.

use crate::error::{Error, IoContext, Result};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `cmd`, failing with its stderr when it exits non-zero. Returns its stdout.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = output(cmd)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `cmd` with its output shown to the user (long steps such as cargo), failing when it exits non-zero.
pub fn run_visible(cmd: &mut Command) -> Result<()> {
    let shown = describe(cmd);
    let status = cmd.stdin(Stdio::null()).status().with_context_io(|| format!("cannot start `{shown}`"))?;
    if !status.success() {
        return Err(Error::Command { command: shown, status: status.to_string(), output: String::new() });
    }
    Ok(())
}

/// Runs `cmd` and returns its whole output, failing when it exits non-zero.
pub fn output(cmd: &mut Command) -> Result<Output> {
    let shown = describe(cmd);
    let out =
        cmd.stdin(Stdio::null()).output().with_context_io(|| format!("cannot start `{shown}` (is it installed?)"))?;
    if !out.status.success() {
        return Err(Error::Command {
            command: shown,
            status: out.status.to_string(),
            output: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        });
    }
    Ok(out)
}

/// The command line of `cmd`, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Sets the modification time of everything under `dir` (symlinks themselves included) to `epoch`,
/// so archives made from it do not depend on when the build ran.
pub fn clamp_mtimes(dir: &Path, epoch: u64) -> Result<()> {
    run(Command::new("find").arg(dir).args(["-exec", "touch", "-h", "-d"]).arg(format!("@{epoch}")).args(["{}", "+"]))?;
    Ok(())
}

/// Creates an empty directory at `dir`, removing whatever was there.
pub fn fresh_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context_io(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context_io(|| format!("creating {}", dir.display()))
}
