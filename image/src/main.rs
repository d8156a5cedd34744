//! `cargo image build --board NAME [--config FILE]`: the SD-card image builder.
fn main() -> anyhow::Result<()> {
    anyhow::bail!("the image builder is not built yet")
}
