//! `roomcast server`.

/// Command-line arguments of `roomcast server`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `roomcast server`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("roomcast server is not built yet")
}
