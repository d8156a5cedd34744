//! `roomcast record`.

/// Command-line arguments of `roomcast record`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `roomcast record`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("roomcast record is not built yet")
}
