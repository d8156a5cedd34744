//! `roomcast config get KEY --config FILE`: prints one value of roomcast.toml (or the board
//! file) as the daemon's parser reads it — the init scripts' only TOML reader.
//! Exit 0 with the value (an array one element per line); 1 when the file, section or key is
//! missing (one line on stderr); 2 when the file is not UTF-8 text or not valid TOML
//! (check-config's message).
//!
//! `roomcast config wifi-conf --config FILE --out FILE`: writes wpa_supplicant.conf (mode 0600)
//! from `[network] wifi_*` for init, so that the passphrase never passes through a shell
//! variable or a command line. Exit 0 written; 1 no `wifi_ssid`; 2 the keys are wrong (named,
//! the passphrase never printed).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use roomcast_meeting::config::get::{get, Lookup};
use roomcast_meeting::config::{text, wifi};

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
    /// Write wpa_supplicant.conf (mode 0600) from `[network] wifi_ssid`, `wifi_psk`, `wifi_country`.
    WifiConf {
        /// The roomcast.toml to read.
        #[arg(long, value_name = "FILE", default_value = "/boot/roomcast.toml")]
        config: PathBuf,
        /// Where to write wpa_supplicant.conf.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// wpa_supplicant's control socket directory.
        #[arg(long, value_name = "DIR", default_value = "/run/wpa_supplicant")]
        ctrl_dir: String,
    },
}

/// Runs `roomcast config`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (key, config) = match args.command {
        Command::Get { key, config } => (key, config),
        Command::WifiConf { config, out, ctrl_dir } => return wifi_conf(&config, &out, &ctrl_dir),
    };
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

/// `roomcast config wifi-conf`.
fn wifi_conf(config: &Path, out: &Path, ctrl_dir: &str) -> anyhow::Result<()> {
    let bytes = std::fs::read(config).unwrap_or_else(|e| fail(1, &format!("cannot read {}: {e}", config.display())));
    let src = text::decode(&bytes).unwrap_or_else(|e| fail(2, &format!("{}: {e}", config.display())));
    let value = |key: &str| match get(src, &format!("network.{key}")) {
        Ok(Lookup::Value(lines)) => Some(lines.join("\n")),
        Ok(_) => None,
        Err(e) => fail(2, &format!("{}: {e}", config.display())),
    };
    let (ssid, psk, country) = (value("wifi_ssid"), value("wifi_psk"), value("wifi_country"));
    let wifi = match wifi::validate(ssid.as_deref(), psk.as_deref(), country.as_deref()) {
        Ok(Some(w)) => w,
        Ok(None) => fail(1, &format!("network.wifi_ssid: not set in {}", config.display())),
        Err(problems) => {
            let all: Vec<String> = problems.iter().map(|(k, m)| format!("network.{k}: {m}")).collect();
            fail(2, &format!("{}: {}", config.display(), all.join("; ")))
        }
    };
    let _ = std::fs::remove_file(out);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("creating {}", out.display()))?;
    f.write_all(wifi.wpa_supplicant_conf(ctrl_dir).as_bytes()).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

fn fail(code: i32, message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(code)
}
