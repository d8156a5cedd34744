//! `roomcast check-config`.

/// Command-line arguments of `roomcast check-config`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `roomcast check-config`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("roomcast check-config is not built yet")
}
