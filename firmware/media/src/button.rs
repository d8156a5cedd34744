//! The mute button: any embedded-hal [`InputPin`] (on a box, a gpio-cdev line through
//! linux-embedded-hal), sampled every 20 ms and debounced; each press calls back once.
//! [`Button`] is the pure part (a pin and a [`Debouncer`]); [`ButtonThread`] samples it on a
//! thread (gpio-cdev reads block and have no async form) until stopped or dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use embedded_hal::digital::InputPin;

use crate::error::{MediaError, Result};

/// How often the pin is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(20);
/// Presses shorter than this many samples are bounces.
const DEBOUNCE: u32 = 3;

/// Pure debouncer: feed raw "pressed" samples, get `true` once per press.
#[derive(Debug, Default)]
pub struct Debouncer {
    stable: bool,
    count: u32,
}

impl Debouncer {
    /// Takes one sample; true on the sample a press becomes stable.
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

/// A push button on an input pin.
pub struct Button<P> {
    pin: P,
    active_low: bool,
    debouncer: Debouncer,
}

impl<P: InputPin> Button<P> {
    /// A button on `pin`, pressed when the pin is high (or low, with `active_low`).
    pub fn new(pin: P, active_low: bool) -> Self {
        Self { pin, active_low, debouncer: Debouncer::default() }
    }

    /// Samples the pin once: `Ok(true)` when a press just became stable.
    pub fn sample(&mut self) -> std::result::Result<bool, P::Error> {
        let high = self.pin.is_high()?;
        Ok(self.debouncer.sample(high != self.active_low))
    }
}

/// A thread sampling a [`Button`].
pub struct ButtonThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ButtonThread {
    /// Samples `button` every `every`, calling `on_press` at each press; the thread ends when
    /// `on_press` returns false, on [`ButtonThread::stop`] or when dropped. A failing read is
    /// logged once until the pin reads again.
    pub fn spawn<P>(
        mut button: Button<P>,
        every: Duration,
        mut on_press: impl FnMut() -> bool + Send + 'static,
    ) -> Result<Self>
    where
        P: InputPin + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("mute-button".into())
            .spawn(move || {
                let mut failed = false;
                while !stopped.load(Ordering::Relaxed) {
                    match button.sample() {
                        Ok(pressed) => {
                            failed = false;
                            if pressed && !on_press() {
                                return;
                            }
                        }
                        Err(e) if !failed => {
                            failed = true;
                            tracing::warn!("mute button: {e:?}");
                        }
                        Err(_) => {}
                    }
                    std::thread::sleep(every);
                }
            })
            .map_err(|e| MediaError::io("starting the button thread", e))?;
        Ok(Self { stop, thread: Some(thread) })
    }

    /// Stops the thread and waits for it (at most one sampling period).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ButtonThread {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::time::Instant;

    use embedded_hal::digital::{ErrorKind, ErrorType};

    /// A pin reading a script of levels, then staying at the last one.
    struct ScriptPin(Arc<Mutex<VecDeque<Option<bool>>>>, bool);

    impl ErrorType for ScriptPin {
        type Error = ErrorKind;
    }

    impl InputPin for ScriptPin {
        fn is_high(&mut self) -> std::result::Result<bool, ErrorKind> {
            match self.0.lock().unwrap().pop_front() {
                Some(Some(level)) => {
                    self.1 = level;
                    Ok(level)
                }
                Some(None) => Err(ErrorKind::Other),
                None => Ok(self.1),
            }
        }
        fn is_low(&mut self) -> std::result::Result<bool, ErrorKind> {
            self.is_high().map(|h| !h)
        }
    }

    fn pin(levels: &[Option<bool>]) -> ScriptPin {
        ScriptPin(Arc::new(Mutex::new(levels.iter().copied().collect())), false)
    }

    #[test]
    fn one_toggle_per_press_and_bounces_ignored() {
        let mut d = Debouncer::default();
        let samples = [true, false, true, true, true, true, true, false, false, false, false, true, true, true];
        let presses: usize = samples.iter().filter(|&&s| d.sample(s)).count();
        assert_eq!(presses, 2);
    }

    #[test]
    fn an_active_low_button_presses_on_low_and_survives_a_failed_read() {
        let (h, l) = (Some(true), Some(false));
        let mut b = Button::new(pin(&[h, h, l, None, l, l, h, h, h]), true);
        let presses: Vec<bool> = (0..9).map(|_| b.sample().unwrap_or(false)).collect();
        assert_eq!(presses.iter().filter(|p| **p).count(), 1, "{presses:?}");
        assert!(b.sample().is_ok());
    }

    #[test]
    fn the_thread_reports_presses_and_stops() {
        let (h, l) = (Some(true), Some(false));
        let button = Button::new(pin(&[h, h, h, l, l, l, h, h, h]), false);
        let presses = Arc::new(Mutex::new(0));
        let p = presses.clone();
        let t = ButtonThread::spawn(button, Duration::from_millis(1), move || {
            *p.lock().unwrap() += 1;
            true
        })
        .unwrap();
        let until = Instant::now() + Duration::from_secs(2);
        while *presses.lock().unwrap() < 2 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
        let started = Instant::now();
        t.stop();
        assert!(started.elapsed() < Duration::from_millis(500), "stop waits one period, not forever");
        assert_eq!(*presses.lock().unwrap(), 2);
    }
}
