//! `cargo image build --board NAME [--config FILE]`: builds the SD-card image of the meeting-room box.
//! `cargo image run --board qemu-virt`: boots that image in QEMU (the "try it without a Pi" path).
//! `cargo image set-config --image FILE --config FILE`: puts a roomcast.toml on a built image.

use anyhow::Result;
use clap::{Parser, Subcommand};
use roomcast_image::{board::Board, build, disk, paths::Paths, qemu};
use std::path::PathBuf;

/// Builds and boots roomcast's SD-card images.
#[derive(Parser)]
#[command(name = "cargo image", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build roomcast-<board>.img (boards: pi4, pi5, pi3, zero2w, qemu-virt).
    Build {
        #[arg(long)]
        board: String,
        /// The room's roomcast.toml to put on the boot partition (default: config/roomcast.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Output directory (default: target/image).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Re-pin every Debian package to the archive's current version (updates image/packages.lock).
        #[arg(long)]
        update_lock: bool,
        /// Put this aarch64 roomcast binary in the image instead of cross-compiling one.
        #[arg(long)]
        daemon: Option<PathBuf>,
        /// Cross-compile the daemon from this workspace (default: this repository).
        #[arg(long)]
        source: Option<PathBuf>,
    },
    /// Boot a qemu-virt image in QEMU, console on this terminal (Ctrl-A X quits).
    Run {
        #[arg(long, default_value = "qemu-virt")]
        board: String,
        /// The image (default: target/image/roomcast-<board>.img).
        #[arg(long)]
        image: Option<PathBuf>,
        /// Also show the box's display in a window.
        #[arg(long)]
        gui: bool,
        /// QMP socket for `screendump` (default: target/image/qmp.sock).
        #[arg(long)]
        qmp: Option<PathBuf>,
    },
    /// Replace roomcast.toml on the boot partition of a built image (no mount needed).
    SetConfig {
        #[arg(long)]
        image: PathBuf,
        #[arg(long)]
        config: PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Build { board, config, out, update_lock, daemon, source } => {
            let built = build::build(&build::Options { board, config, out, update_lock, daemon, source })?;
            println!("{}", built.image.display());
            println!(
                "size: {} bytes ({:.1} MiB); manifest: {}; built in {:.0} s",
                built.size,
                built.size as f64 / 1048576.0,
                built.manifest.display(),
                built.seconds
            );
        }
        Cmd::Run { board, image, gui, qmp } => {
            let paths = Paths::new(None);
            let profile = Board::load(&paths.board_profile(&board))?;
            let image = image.unwrap_or_else(|| paths.image(&board));
            if !image.exists() {
                anyhow::bail!("{} does not exist: run `cargo image build --board {board}` first", image.display());
            }
            let qmp = qmp.unwrap_or_else(|| paths.work.join("qmp.sock"));
            let mut cmd = qemu::command(
                &profile,
                &qemu::Boot { image, work: paths.work.join("run"), serial_log: None, qmp: Some(qmp.clone()), gui },
            )?;
            eprintln!("image: booting; Ctrl-A X quits. Screen: QMP at {} (screendump)", qmp.display());
            let status = cmd.status()?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Cmd::SetConfig { image, config } => {
            disk::write_boot_file(&image, &config, "roomcast.toml")?;
            println!("{}: roomcast.toml replaced", image.display());
        }
    }
    Ok(())
}
