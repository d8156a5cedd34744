//! The mute button: any embedded-hal pin that can wait for an edge ([`InputPin`] +
//! embedded-hal-async's [`Wait`]; on a box, a gpio-cdev line's edge events) and any async
//! delay ([`DelayNs`]). Nothing is sampled on a clock: [`Button::next_press`] sleeps until the
//! kernel reports an edge, lets the contact settle for [`SETTLE`], reads the level once and
//! reports a press when it has become "pressed". The driver runs it as a task and stops it by
//! dropping (aborting) that task.

use embedded_hal::digital::InputPin;
use embedded_hal_async::delay::DelayNs;
use embedded_hal_async::digital::Wait;

/// How long a contact is given to stop bouncing after an edge before its level counts.
pub const SETTLE: std::time::Duration = std::time::Duration::from_millis(30);

/// A push button on an input pin that reports edges.
pub struct Button<P, D> {
    pin: P,
    delay: D,
    active_low: bool,
    pressed: bool,
    failed: bool,
}

impl<P: InputPin + Wait, D: DelayNs> Button<P, D> {
    /// A button on `pin`, pressed when the pin is high (or low, with `active_low`); `delay`
    /// times the settling after each edge.
    pub fn new(pin: P, delay: D, active_low: bool) -> Self {
        Self { pin, delay, active_low, pressed: false, failed: false }
    }

    /// Waits for the next press (an edge that settles into "pressed" after having been
    /// released). A failing pin is logged once (until it works again) and waited on again.
    pub async fn next_press(&mut self) {
        loop {
            if let Err(e) = self.pin.wait_for_any_edge().await {
                self.failure(&e);
                // A pin that fails at once must not spin: give it the settling time.
                self.delay.delay_ms(SETTLE.as_millis() as u32).await;
                continue;
            }
            // Bounces within the settling time are edges of the same press or release.
            self.delay.delay_ms(SETTLE.as_millis() as u32).await;
            let high = match self.pin.is_high() {
                Ok(h) => h,
                Err(e) => {
                    self.failure(&e);
                    continue;
                }
            };
            self.failed = false;
            let pressed = high != self.active_low;
            let was = std::mem::replace(&mut self.pressed, pressed);
            if pressed && !was {
                return;
            }
        }
    }

    fn failure(&mut self, e: &impl core::fmt::Debug) {
        if !self.failed {
            tracing::warn!("mute button: {e:?}");
        }
        self.failed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::future::Future;
    use std::rc::Rc;
    use std::task::{Context, Poll, Waker};

    use embedded_hal::digital::{ErrorKind, ErrorType};

    /// What the fake line does next: an edge after which the level reads `level`, or a failure.
    #[derive(Clone, Copy)]
    enum Step {
        Edge(bool),
        EdgeFails,
        ReadFails,
    }

    /// A pin playing a script of edges; once the script is over, waiting never ends.
    struct ScriptPin {
        script: VecDeque<Step>,
        level: bool,
        read_fails: bool,
        clock: Rc<RefCell<u64>>,
    }

    impl ErrorType for ScriptPin {
        type Error = ErrorKind;
    }

    impl InputPin for ScriptPin {
        fn is_high(&mut self) -> Result<bool, ErrorKind> {
            if std::mem::take(&mut self.read_fails) {
                return Err(ErrorKind::Other);
            }
            Ok(self.level)
        }
        fn is_low(&mut self) -> Result<bool, ErrorKind> {
            self.is_high().map(|h| !h)
        }
    }

    impl ScriptPin {
        fn edge(&mut self) -> Poll<Result<(), ErrorKind>> {
            match self.script.pop_front() {
                Some(Step::Edge(level)) => {
                    self.level = level;
                    Poll::Ready(Ok(()))
                }
                Some(Step::EdgeFails) => Poll::Ready(Err(ErrorKind::Other)),
                Some(Step::ReadFails) => {
                    self.read_fails = true;
                    Poll::Ready(Ok(()))
                }
                None => Poll::Pending,
            }
        }
    }

    impl Wait for ScriptPin {
        async fn wait_for_high(&mut self) -> Result<(), ErrorKind> {
            unimplemented!("the button waits for edges")
        }
        async fn wait_for_low(&mut self) -> Result<(), ErrorKind> {
            unimplemented!("the button waits for edges")
        }
        async fn wait_for_rising_edge(&mut self) -> Result<(), ErrorKind> {
            unimplemented!("the button waits for any edge")
        }
        async fn wait_for_falling_edge(&mut self) -> Result<(), ErrorKind> {
            unimplemented!("the button waits for any edge")
        }
        async fn wait_for_any_edge(&mut self) -> Result<(), ErrorKind> {
            std::future::poll_fn(|_| self.edge()).await
        }
    }

    /// A delay that only counts the time it was asked to wait.
    struct CountingDelay(Rc<RefCell<u64>>);

    impl DelayNs for CountingDelay {
        async fn delay_ns(&mut self, ns: u32) {
            *self.0.borrow_mut() += u64::from(ns);
        }
    }

    /// Counts the presses the script makes (the future is polled until it would block).
    fn presses(script: &[Step], active_low: bool) -> (usize, u64) {
        let clock = Rc::new(RefCell::new(0));
        let level = active_low;
        let pin =
            ScriptPin { script: script.iter().copied().collect(), level, read_fails: false, clock: clock.clone() };
        let mut button = Button::new(pin, CountingDelay(clock.clone()), active_low);
        let mut count = 0;
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            let fut = std::pin::pin!(button.next_press());
            match fut.poll(&mut cx) {
                Poll::Ready(()) => count += 1,
                Poll::Pending => break,
            }
        }
        let waited = *button.pin.clock.borrow();
        (count, waited)
    }

    #[test]
    fn one_press_per_push_and_bounces_ignored() {
        use Step::Edge;
        // A bouncing push: three edges in the settling time, each read after it as the settled
        // level (pressed); a bouncing release (two edges); a clean push and release.
        let script = [Edge(true), Edge(true), Edge(true), Edge(false), Edge(false), Edge(true), Edge(false)];
        let (count, waited) = presses(&script, false);
        assert_eq!(count, 2);
        assert_eq!(waited, script.len() as u64 * SETTLE.as_nanos() as u64, "one settling wait per edge, no sampling");
    }

    #[test]
    fn an_active_low_button_presses_on_low() {
        use Step::Edge;
        assert_eq!(presses(&[Edge(false), Edge(true), Edge(false), Edge(true)], true).0, 2);
        assert_eq!(presses(&[Edge(true), Edge(true)], true).0, 0, "released edges are no press");
    }

    #[test]
    fn a_failing_pin_is_waited_on_again() {
        use Step::{Edge, EdgeFails, ReadFails};
        let (count, _) = presses(&[EdgeFails, ReadFails, Edge(true), Edge(false), EdgeFails, Edge(true)], false);
        assert_eq!(count, 2);
    }

    #[test]
    fn no_edge_means_no_wakeup() {
        let (count, waited) = presses(&[], false);
        assert_eq!((count, waited), (0, 0), "an idle button waits for the kernel, it does not poll");
    }
}
