//! `roomcast probe`: lists cameras (formats, sizes, rates), ALSA microphones, video encoders
//! (hardware V4L2 M2M and software) with what each supports, and what `--encoder auto` picks.

use roomcast_media::probe::ProbeReport;

/// Command-line arguments of `roomcast probe`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `roomcast probe`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    print!("{}", ProbeReport::run());
    Ok(())
}
