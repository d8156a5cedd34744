//! The optional GPIO mute button (`[audio] mute_gpio_chip` + `mute_gpio_line`): the line is
//! requested from the kernel with edge events (gpio-cdev, both edges) and wrapped as an
//! embedded-hal pin that can wait ([`EdgePin`]: `InputPin` + `Wait`); roomcast-media's
//! [`Button`] runs on it as a tokio task that sleeps until the kernel reports an edge (no
//! sampling). Each press goes to the daemon's driver, which tells the session. The task stops
//! when its handle is dropped. A missing chip or line is reported, never fatal.

use std::pin::Pin;

use embedded_hal::digital::{ErrorKind, ErrorType, InputPin};
use embedded_hal_async::digital::Wait;
use futures_core::Stream;
use linux_embedded_hal::gpio_cdev::{AsyncLineEventHandle, Chip, EventRequestFlags, LineRequestFlags};
use linux_embedded_hal::Delay;
use roomcast_media::button::Button;
use roomcast_meeting::config::GpioButton;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

/// A gpio-cdev line with edge events, as an embedded-hal pin.
pub struct EdgePin {
    events: AsyncLineEventHandle,
}

impl ErrorType for EdgePin {
    type Error = ErrorKind;
}

impl InputPin for EdgePin {
    fn is_high(&mut self) -> Result<bool, ErrorKind> {
        self.events.as_ref().get_value().map(|v| v != 0).map_err(|_| ErrorKind::Other)
    }
    fn is_low(&mut self) -> Result<bool, ErrorKind> {
        self.is_high().map(|h| !h)
    }
}

impl EdgePin {
    async fn next_edge(&mut self) -> Result<(), ErrorKind> {
        match std::future::poll_fn(|cx| Pin::new(&mut self.events).poll_next(cx)).await {
            Some(Ok(_)) => Ok(()),
            Some(Err(_)) | None => Err(ErrorKind::Other),
        }
    }
}

impl Wait for EdgePin {
    async fn wait_for_high(&mut self) -> Result<(), ErrorKind> {
        while !self.is_high()? {
            self.next_edge().await?;
        }
        Ok(())
    }
    async fn wait_for_low(&mut self) -> Result<(), ErrorKind> {
        while self.is_high()? {
            self.next_edge().await?;
        }
        Ok(())
    }
    async fn wait_for_rising_edge(&mut self) -> Result<(), ErrorKind> {
        loop {
            self.next_edge().await?;
            if self.is_high()? {
                return Ok(());
            }
        }
    }
    async fn wait_for_falling_edge(&mut self) -> Result<(), ErrorKind> {
        loop {
            self.next_edge().await?;
            if !self.is_high()? {
                return Ok(());
            }
        }
    }
    async fn wait_for_any_edge(&mut self) -> Result<(), ErrorKind> {
        self.next_edge().await
    }
}

/// The running button task; dropping it stops the task.
pub struct ButtonTask(JoinHandle<()>);

impl Drop for ButtonTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Requests the line's edge events and starts the button task (inside a tokio runtime).
pub fn spawn(button: &GpioButton, presses: UnboundedSender<()>) -> Result<ButtonTask, String> {
    let at = |e: &dyn std::fmt::Display| format!("{} line {}: {e}", button.chip, button.line);
    let mut chip = Chip::new(&button.chip).map_err(|e| format!("{}: {e}", button.chip))?;
    let line = chip.get_line(button.line).map_err(|e| at(&e))?;
    let handle =
        line.events(LineRequestFlags::INPUT, EventRequestFlags::BOTH_EDGES, "roomcast-mute").map_err(|e| at(&e))?;
    let events = AsyncLineEventHandle::new(handle).map_err(|e| at(&e))?;
    tracing::info!(chip = %button.chip, line = button.line, "mute button ready");
    let mut button = Button::new(EdgePin { events }, Delay, button.active_low);
    Ok(ButtonTask(tokio::spawn(async move {
        loop {
            button.next_press().await;
            tracing::info!("mute button pressed");
            if presses.send(()).is_err() {
                return;
            }
        }
    })))
}
