//! `roomcast check-config FILE [--board FILE]`: reads a roomcast.toml the way the box does
//! (with the board's defaults when given) and prints every problem with its key and line.
//! Exits non-zero when there is any.

use std::path::PathBuf;

use roomcast_meeting::config::{BoardDefaults, Config};

/// Command-line arguments of `roomcast check-config`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The roomcast.toml to check.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Board defaults (the image's /etc/roomcast/board.toml), if any.
    #[arg(long, value_name = "FILE")]
    pub board: Option<PathBuf>,
}

/// Runs `roomcast check-config`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let board = match &args.board {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read board file {}: {e}", path.display()))?;
            let (board, errors) = BoardDefaults::parse(&text);
            for e in &errors {
                eprintln!("{}: {e}", path.display());
            }
            board
        }
        None => BoardDefaults::default(),
    };
    match Config::load(&args.file, &board) {
        Ok(cfg) => {
            let meeting = match &cfg.meeting {
                Some(m) => format!("meeting {:?} at {}", m.id, m.server),
                None => "no meeting server: the box shows the set-up screen".to_owned(),
            };
            let a = &cfg.audio;
            let processing: Vec<&str> = [
                (a.echo_cancellation, "echo cancellation"),
                (a.noise_suppression, "noise suppression"),
                (a.auto_gain, "auto gain"),
            ]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect();
            let processing = if processing.is_empty() { "no processing".to_owned() } else { processing.join(", ") };
            let audio = if a.enabled { format!("{} ({processing})", a.source) } else { "off".to_owned() };
            println!(
                "{}: OK (room {:?}, {meeting}, video {} {}x{}@{} {} kbit/s, audio {audio}, watchdog timeout {} s)",
                args.file.display(),
                cfg.room.name,
                if cfg.video.enabled { cfg.video.source.as_str() } else { "off" },
                cfg.video.width,
                cfg.video.height,
                cfg.video.fps,
                cfg.video.bitrate_kbps,
                cfg.system.watchdog_timeout_s,
            );
            Ok(())
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{}: {e}", args.file.display());
            }
            eprintln!("{}: {} error(s)", args.file.display(), errors.len());
            std::process::exit(1);
        }
    }
}
