//! `roomcast display`.

/// Command-line arguments of `roomcast display`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `roomcast display`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("roomcast display is not built yet")
}
