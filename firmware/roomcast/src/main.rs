//! `roomcast`: one binary for the box daemon and its tools.
//!
//! Each subcommand lives in `cmd/<name>.rs`; this file only parses the command line,
//! sets up logging and hands over. Errors become `anyhow` here, at the edge.

mod cmd;

use clap::{Parser, Subcommand};

/// Meeting-room box over multicast, delivered by AMT (RFC 7450).
#[derive(Parser)]
#[command(name = "roomcast", version, about)]
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
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Relay(args) => cmd::relay::run(args),
        Command::Gateway(args) => cmd::gateway::run(args),
    }
}
