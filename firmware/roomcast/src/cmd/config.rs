//! `roomcast config get KEY --config FILE`: prints one value of roomcast.toml (or the board
//! file) as the daemon's parser reads it — the init scripts' only TOML reader.
//! Exit 0 with the value (an array one element per line); 1 when the file, section or key is
//! missing (one line on stderr); 2 when the file is not UTF-8 text or not valid TOML
//! (check-config's message).

use std::io::Write;
use std::path::PathBuf;

use roomcast_meeting::config::get::{get, Lookup};
use roomcast_meeting::config::text;

/// Command-line arguments of `roomcast config`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Print the value of KEY (`section.key`, e.g. `network.mode`).
    Get {
        /// `section.key`.
        #[arg(value_name = "KEY")]
        key: String,
        /// The TOML file to read.
        #[arg(long, value_name = "FILE", default_value = "/boot/roomcast.toml")]
        config: PathBuf,
    },
}

/// Runs `roomcast config`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let Command::Get { key, config } = args.command;
    let bytes = match std::fs::read(&config) {
        Ok(b) => b,
        Err(e) => fail(1, &format!("{key}: not set: cannot read {}: {e}", config.display())),
    };
    // Not UTF-8 text (UTF-16, binary): as check-config says it, and not "not set".
    let src = match text::decode(&bytes) {
        Ok(s) => s,
        Err(e) => fail(2, &format!("{}: {e}", config.display())),
    };
    match get(src, &key) {
        Ok(Lookup::Value(lines)) => {
            let mut out = std::io::stdout().lock();
            for l in lines {
                writeln!(out, "{l}")?;
            }
            out.flush()?;
            Ok(())
        }
        Ok(Lookup::NotSet) => fail(1, &format!("{key}: not set in {}", config.display())),
        Ok(Lookup::Table) => fail(1, &format!("{key}: is a table in {}, not a value", config.display())),
        Err(e) if e.line == 0 => fail(1, &e.to_string()),
        Err(e) => fail(2, &format!("{}: {e}", config.display())),
    }
}

fn fail(code: i32, message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(code)
}
