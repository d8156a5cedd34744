//! `roomcast probe`.

/// Command-line arguments of `roomcast probe`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `roomcast probe`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("roomcast probe is not built yet")
}
