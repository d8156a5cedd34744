//! `roomcast box`.

/// Command-line arguments of `roomcast box`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `roomcast box`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("roomcast box is not built yet")
}
