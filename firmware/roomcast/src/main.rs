//! `roomcast`: one binary for the box daemon and its tools.
//!
//! Each subcommand lives in `cmd/<name>.rs`; this file only parses the command line,
//! sets up logging and hands over. Errors become `anyhow` here, at the edge.

mod cmd;

use clap::{Parser, Subcommand};

/// Meeting-room box over multicast, delivered by AMT (RFC 7450).
#[derive(Parser)]
#[command(name = "roomcast", version = VERSION, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an AMT relay.
    Relay(cmd::relay::Args),
    /// Run a standalone AMT gateway that forwards joined groups to a local address.
    Gateway(cmd::gateway::Args),
    /// Send the camera's and microphone's (or a synthetic) stream as RTP and write its SDP.
    Stream(cmd::stream::Args),
    /// Receive a stream described by an SDP file and write it to files.
    Record(cmd::record::Args),
    /// List cameras, microphones and encoders, and what `auto` would pick.
    Probe(cmd::probe::Args),
    /// Render a status screen with sample data to a PNG or a display.
    Display(cmd::display::Args),
    /// Run the meeting-room box daemon.
    #[command(name = "box")]
    Box(cmd::box_daemon::Args),
    /// Run the meeting service (join, leave, roster, groups) with its AMT relay.
    Server(cmd::server::Args),
    /// Check a roomcast.toml and report every error with its key and line.
    CheckConfig(cmd::check_config::Args),
    /// Read one value of a roomcast.toml (or board file) as the daemon does: `config get KEY`.
    Config(cmd::config::Args),
    /// Join one source-specific channel on an interface and print each datagram (diagnostics).
    Listen(cmd::listen::Args),
    /// Encode and decode synthetic frames on a V4L2 M2M codec (vicodec's FWHT, a Pi's H.264) and compare.
    CodecCheck(cmd::codec_check::Args),
}

/// `roomcast --version`: the crate version and the git commit it was built from.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("ROOMCAST_COMMIT"), ")");

/// Logs to stderr (`RUST_LOG`, default `info`), coloured only on a terminal and without `NO_COLOR`.
fn init_logging() {
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").map_or(true, |v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
}

/// An error and its causes on one line, each said once: a cause whose text the message before
/// already says (a thiserror message that embeds its source) is not repeated.
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if msg.is_empty() || out.contains(&msg) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&msg);
    }
    out
}

fn main() -> std::process::ExitCode {
    init_logging();
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Relay(args) => cmd::relay::run(args),
        Command::Gateway(args) => cmd::gateway::run(args),
        Command::Stream(args) => cmd::stream::run(args),
        Command::Record(args) => cmd::record::run(args),
        Command::Probe(args) => cmd::probe::run(args),
        Command::Display(args) => cmd::display::run(args),
        Command::Box(args) => cmd::box_daemon::run(args),
        Command::Server(args) => cmd::server::run(args),
        Command::Listen(args) => cmd::listen::run(args),
        Command::CheckConfig(args) => cmd::check_config::run(args),
        Command::Config(args) => cmd::config::run(args),
        Command::CodecCheck(args) => cmd::codec_check::run(args),
    }
}
