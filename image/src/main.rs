//! `cargo image build --board NAME [--config FILE]`: builds the SD-card image of the meeting-room box.
//! `cargo image run --board qemu-virt`: boots that image in QEMU (the "try it without a Pi" path).
//! `cargo image set-config --image FILE --config FILE`: puts a roomcast.toml on a built image.
//!
//! A roomcast.toml the box would refuse is refused here too, with its keys and lines (`--force`
//! overrides). How image/packages.lock is followed is in `roomcast_image::resolve`.

use anyhow::Result;
use clap::{Parser, Subcommand};
use roomcast_image::apt::Snapshots;
use roomcast_image::resolve::LockMode;
use roomcast_image::{board::Board, build, config_check, disk, paths::Paths, qemu};
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
    /// Build roomcast-<board>.img for one of the boards in board/ (see --board).
    ///
    /// Debian packages come in the versions pinned in image/packages.lock while the archive has them;
    /// a pinned version the archive dropped is replaced by the current one, printed and re-pinned.
    Build {
        #[arg(long, value_name = "BOARD", value_parser = known_board, help = board_help("The board"))]
        board: String,
        /// The room's roomcast.toml to put on the boot partition (default: the board's, see board/README.md).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Put --config on the image even if the box would refuse it.
        #[arg(long)]
        force: bool,
        /// Output directory (default: target/image).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Re-pin every Debian package to the archive's current version (updates image/packages.lock).
        #[arg(long, conflicts_with = "locked")]
        update_lock: bool,
        /// Use exactly the pinned versions: fail, naming each package, if any has left the archive.
        #[arg(long)]
        locked: bool,
        /// A snapshot of the Debian archive (snapshot.debian.org style, at a timestamp) that still has
        /// the pinned versions; also ROOMCAST_DEBIAN_SNAPSHOT.
        #[arg(long, value_name = "URL")]
        snapshot: Option<String>,
        /// The same for the security archive; also ROOMCAST_DEBIAN_SECURITY_SNAPSHOT.
        #[arg(long, value_name = "URL")]
        security_snapshot: Option<String>,
        /// Put this aarch64 roomcast binary in the image instead of cross-compiling one.
        #[arg(long)]
        daemon: Option<PathBuf>,
        /// Cross-compile the daemon from this workspace (default: this repository).
        #[arg(long)]
        source: Option<PathBuf>,
        /// Take the kernel, its device trees and firmware from this .deb (repeatable; e.g. Raspberry
        /// Pi's linux-image-rpi-v8 and raspi-firmware). A file named like another package of the
        /// image replaces that package. Overrides the board's `[kernel.source]`.
        #[arg(long, value_name = "FILE")]
        kernel_deb: Vec<PathBuf>,
    },
    /// Boot a qemu-virt image in QEMU, console on this terminal (Ctrl-A X quits).
    Run {
        #[arg(long, default_value = "qemu-virt", value_name = "BOARD", value_parser = known_board)]
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
    /// Replace roomcast.toml on the boot partition of a built image (no mount needed). The file is
    /// checked as the box reads it first; the image is not touched when it is refused.
    SetConfig {
        #[arg(long, value_name = "FILE")]
        image: PathBuf,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The image's board, for its defaults (default: read from the manifest beside the image).
        #[arg(long, value_name = "BOARD", value_parser = known_board)]
        board: Option<String>,
        /// Write the file even if the box would refuse it.
        #[arg(long)]
        force: bool,
    },
}

/// `--board`'s help: `what`, then the boards board/*.toml has.
fn board_help(what: &str) -> String {
    format!("{what}: {} (board/*.toml)", Paths::new(None).boards().join(", "))
}

/// `--board`'s parser: a board of board/*.toml, or the error listing them.
fn known_board(name: &str) -> std::result::Result<String, String> {
    Paths::new(None).known_board(name)
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Build {
            board,
            config,
            force,
            out,
            update_lock,
            locked,
            snapshot,
            security_snapshot,
            daemon,
            source,
            kernel_deb,
        } => {
            let lock = match (locked, update_lock) {
                (true, _) => LockMode::Locked,
                (_, true) => LockMode::Update,
                _ => LockMode::Follow,
            };
            let snapshots = Snapshots::from_args_or_env(snapshot, security_snapshot);
            let built = build::build(&build::Options {
                board,
                config,
                force,
                out,
                lock,
                snapshots,
                daemon,
                source,
                kernel_debs: kernel_deb,
            })?;
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
                &qemu::Boot {
                    image,
                    work: paths.work.join("run"),
                    serial_log: None,
                    qmp: Some(qmp.clone()),
                    gui,
                    reboot: true,
                },
            )?;
            eprintln!("image: booting; Ctrl-A X quits. Screen: QMP at {} (screendump)", qmp.display());
            let status = cmd.status()?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Cmd::SetConfig { image, config, board, force } => {
            if !image.exists() {
                anyhow::bail!("{} does not exist", image.display());
            }
            if !force {
                let board = match board.or_else(|| board_of_image(&image)) {
                    Some(name) => Some(Board::load(&Paths::new(None).board_profile(&name))?),
                    None => None,
                };
                config_check::validate(&config, board.as_ref())?;
            }
            disk::write_boot_file(&image, &config, "roomcast.toml")?;
            println!("{}: roomcast.toml replaced", image.display());
        }
    }
    Ok(())
}

/// The board named in the manifest beside an image (`<image>.manifest.toml`), if there is one.
fn board_of_image(image: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(format!("{}.manifest.toml", image.display())).ok()?;
    let manifest: toml::Table = toml::from_str(&text).ok()?;
    manifest.get("image")?.get("board")?.as_str().map(str::to_string)
}
