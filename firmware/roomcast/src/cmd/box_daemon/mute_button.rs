//! The optional GPIO mute button (`[audio] mute_gpio_chip` + `mute_gpio_line`): the line is
//! opened through linux-embedded-hal's gpio-cdev pin and handed to roomcast-media's button
//! thread (sampled every 20 ms, debounced); each press goes to the daemon's driver, which
//! tells the session. A missing chip or line is reported, never fatal.

use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
use linux_embedded_hal::CdevPin;
use roomcast_media::button::{Button, ButtonThread, SAMPLE_EVERY};
use roomcast_meeting::config::GpioButton;
use tokio::sync::mpsc::UnboundedSender;

/// Opens the line and starts the sampling thread (stopped when the handle is dropped).
pub fn spawn(button: &GpioButton, presses: UnboundedSender<()>) -> Result<ButtonThread, String> {
    let at = |e: &dyn std::fmt::Display| format!("{} line {}: {e}", button.chip, button.line);
    let mut chip = Chip::new(&button.chip).map_err(|e| format!("{}: {e}", button.chip))?;
    let line = chip.get_line(button.line).map_err(|e| at(&e))?;
    let handle = line.request(LineRequestFlags::INPUT, 0, "roomcast-mute").map_err(|e| at(&e))?;
    let pin = CdevPin::new(handle).map_err(|e| at(&e))?;
    tracing::info!(chip = %button.chip, line = button.line, "mute button ready");
    ButtonThread::spawn(Button::new(pin, button.active_low), SAMPLE_EVERY, move || {
        tracing::info!("mute button pressed");
        presses.send(()).is_ok()
    })
    .map_err(|e| e.to_string())
}
