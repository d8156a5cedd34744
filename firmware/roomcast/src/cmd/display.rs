//! `roomcast display`: renders one status screen with sample data, to a PNG (for the README's
//! screens and quick layout checks) and/or to real hardware (a framebuffer, an SSD1306 on I2C, or
//! whatever `--auto` finds), using the same code the box daemon uses.

use anyhow::{bail, Context};
use roomcast_display::backend::framebuffer::FramebufferBackend;
use roomcast_display::backend::png::write_png;
use roomcast_display::backend::sh1106::Sh1106Backend;
use roomcast_display::backend::ssd1306::Ssd1306Backend;
use roomcast_display::{render, Backend, BackendChoice, DisplayState, PhaseName};
use std::path::PathBuf;
use std::time::Instant;

/// Command-line arguments of `roomcast display`.
#[derive(clap::Args)]
pub struct Args {
    /// The state to show, with sample data.
    #[arg(long, value_name = "NAME", value_parser = parse_state, required_unless_present = "from_json", conflicts_with = "from_json",
          help = "booting | no-network | finding-relay | joining | in-meeting | relay-lost | config-error | no-camera | set-up | leaving")]
    state: Option<PhaseName>,
    /// Show the state in this JSON file instead of sample data: a serialized DisplayState, or
    /// the box's `[debug] state_file` (its "display" member).
    #[arg(long, value_name = "FILE")]
    from_json: Option<PathBuf>,
    /// Size of the PNG: 128x64 (monochrome OLED layout) or 320x240, 480x320, ... (colour layout).
    #[arg(long, value_name = "WxH", default_value = "320x240", value_parser = parse_size)]
    size: roomcast_display::FrameSize,
    /// Write the screen to this PNG file.
    #[arg(long, value_name = "FILE")]
    png: Option<PathBuf>,
    /// Draw on this Linux framebuffer (its own size and bit depth), e.g. /dev/fb0.
    #[arg(long, value_name = "DEVICE")]
    fb: Option<PathBuf>,
    /// Draw on an SSD1306 128x64 OLED on this I2C bus, e.g. /dev/i2c-1.
    #[arg(long, value_name = "BUS")]
    i2c: Option<PathBuf>,
    /// The OLED's I2C address (0x3c or 0x3d).
    #[arg(long, value_name = "ADDR", default_value = "0x3c", value_parser = parse_address)]
    address: u8,
    /// The OLED on --i2c is an SH1106 (most 1.3" modules) rather than an SSD1306.
    #[arg(long, requires = "i2c")]
    sh1106: bool,
    /// Draw on whatever display `auto` finds (SSD1306 on /dev/i2c-1, then /dev/fb0).
    #[arg(long)]
    auto: bool,
}

/// Reads a DisplayState from JSON: the state itself or an object with a "display" member.
fn read_state(path: &std::path::Path) -> anyhow::Result<DisplayState> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let value = value.get("display").cloned().unwrap_or(value);
    serde_json::from_value(value).with_context(|| format!("{}: not a display state", path.display()))
}

fn parse_state(s: &str) -> Result<PhaseName, String> {
    s.parse().map_err(|e: roomcast_display::DisplayError| e.to_string())
}

fn parse_size(s: &str) -> Result<roomcast_display::FrameSize, String> {
    roomcast_display::parse_size(s).map_err(|e| e.to_string())
}

fn parse_address(s: &str) -> Result<u8, String> {
    let t = s.trim_start_matches("0x").trim_start_matches("0X");
    u8::from_str_radix(t, 16)
        .ok()
        .filter(|a| (0x03..=0x77).contains(a))
        .ok_or_else(|| format!("bad I2C address {s:?}; expected hex like 0x3c"))
}

/// Runs `roomcast display`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.png.is_none() && args.fb.is_none() && args.i2c.is_none() && !args.auto {
        bail!("nothing to draw on: give --png FILE, --fb DEVICE, --i2c BUS or --auto");
    }
    let now = Instant::now();
    let (state, label) = match (&args.state, &args.from_json) {
        (Some(name), _) => (DisplayState::sample(*name, now), name.to_string()),
        (None, Some(path)) => (read_state(path)?, path.display().to_string()),
        (None, None) => bail!("give --state NAME or --from-json FILE"),
    };
    if let Some(path) = &args.png {
        let frame = render(&state, args.size, now);
        // The display crate's error names the file already.
        write_png(&frame, path)?;
        let size = format!("{}x{}", args.size.width, args.size.height);
        tracing::info!(state = %label, %size, file = %path.display(), "screen written");
    }
    let mut backends: Vec<Box<dyn Backend>> = Vec::new();
    if let Some(dev) = &args.fb {
        let mut fb = FramebufferBackend::open(dev)?;
        // Keep the picture after this command exits (the console would redraw over it).
        fb.keep_console_in_graphics_mode();
        backends.push(Box::new(fb));
    }
    if let Some(bus) = &args.i2c {
        if args.sh1106 {
            backends.push(Box::new(Sh1106Backend::open(bus, args.address)?));
        } else {
            backends.push(Box::new(Ssd1306Backend::open(bus, args.address)?));
        }
    }
    if args.auto {
        backends.push(roomcast_display::open(&BackendChoice::default())?);
    }
    for mut b in backends {
        let frame = render(&state, b.size(), now);
        b.show(&frame, None).with_context(|| format!("drawing on {}", b.describe()))?;
        tracing::info!(state = %label, display = %b.describe(), "screen drawn");
    }
    Ok(())
}
