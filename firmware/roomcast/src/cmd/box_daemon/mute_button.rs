//! The optional GPIO mute button (`[audio] mute_gpio_chip` + `mute_gpio_line`): a thread polls
//! the line through linux-embedded-hal's gpio-cdev every 20 ms, debounces it, and toggles the
//! microphone mute on each press (a press goes to the daemon's driver, which tells the
//! session). A missing chip or line is reported, never fatal.

use std::time::Duration;

use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
use roomcast_meeting::config::GpioButton;

use tokio::sync::mpsc::UnboundedSender;

/// Presses shorter than this are bounces.
const DEBOUNCE: u32 = 3; // polls of 20 ms

/// Pure debouncer: feed raw "pressed" samples, get `true` once per press.
#[derive(Debug, Default)]
pub struct Debouncer {
    stable: bool,
    count: u32,
}

impl Debouncer {
    /// Takes one sample; true on the poll a press becomes stable.
    pub fn sample(&mut self, pressed: bool) -> bool {
        if pressed == self.stable {
            self.count = 0;
            return false;
        }
        self.count += 1;
        if self.count >= DEBOUNCE {
            self.stable = pressed;
            self.count = 0;
            return pressed;
        }
        false
    }
}

/// Opens the line and starts the polling thread.
pub fn spawn(button: &GpioButton, presses: UnboundedSender<()>) -> Result<std::thread::JoinHandle<()>, String> {
    let mut chip = Chip::new(&button.chip).map_err(|e| format!("{}: {e}", button.chip))?;
    let line = chip.get_line(button.line).map_err(|e| format!("{} line {}: {e}", button.chip, button.line))?;
    let handle = line
        .request(LineRequestFlags::INPUT, 0, "roomcast-mute")
        .map_err(|e| format!("{} line {}: {e}", button.chip, button.line))?;
    let active_low = button.active_low;
    tracing::info!(chip = %button.chip, line = button.line, "mute button ready");
    std::thread::Builder::new()
        .name("mute-button".into())
        .spawn(move || {
            let mut deb = Debouncer::default();
            let mut failed = false;
            loop {
                match handle.get_value() {
                    Ok(v) => {
                        failed = false;
                        let pressed = (v != 0) != active_low;
                        if deb.sample(pressed) {
                            tracing::info!("mute button pressed");
                            if presses.send(()).is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) if !failed => {
                        failed = true;
                        tracing::warn!("mute button: {e}");
                    }
                    Err(_) => {}
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::Debouncer;

    #[test]
    fn one_toggle_per_press_and_bounces_ignored() {
        let mut d = Debouncer::default();
        let samples = [true, false, true, true, true, true, true, false, false, false, false, true, true, true];
        let presses: usize = samples.iter().filter(|&&s| d.sample(s)).count();
        assert_eq!(presses, 2);
    }
}
