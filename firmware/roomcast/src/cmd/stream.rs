//! `roomcast stream`.

/// Command-line arguments of `roomcast stream`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `roomcast stream`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("roomcast stream is not built yet")
}
