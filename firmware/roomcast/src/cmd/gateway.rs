//! `roomcast gateway`.

/// Command-line arguments of `roomcast gateway`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `roomcast gateway`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("roomcast gateway is not built yet")
}
