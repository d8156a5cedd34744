//! `roomcast relay`.

/// Command-line arguments of `roomcast relay`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `roomcast relay`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("roomcast relay is not built yet")
}
