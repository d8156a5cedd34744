//! The hardware watchdog, fed from the box's own control loop.
//!
//! [`Watchdog`] is sans-IO: the loop that drives the session asks [`Watchdog::poll_timeout`]
//! when the next feed is due and calls [`Watchdog::handle_timeout`] from its own `select!`
//! (via [`Watchdog::due`]). There is no ticker thread or task: when that loop stalls (a hung
//! await, a blocked call, SIGSTOP) nothing feeds the device and the board resets after the
//! timeout. The device sits behind [`WatchdogDevice`]: [`LinuxWatchdog`] (`/dev/watchdog`,
//! `WDIOC_SETTIMEOUT` / `WDIOC_KEEPALIVE`) and a synthetic one for tests.
//!
//! Closing: dropping a [`LinuxWatchdog`] (a panic, an error return, being killed) closes the
//! file without the magic 'V', so the kernel keeps the watchdog armed; the init's feeder takes
//! over when the daemon is gone. Only an orderly SIGTERM shutdown calls [`Watchdog::disarm`]
//! (magic close) after the meeting was left: a poweroff must not turn into a reset a few
//! seconds later, and a daemon stopped on purpose is not a failure (the init script re-arms the
//! watchdog with its own feeder while the daemon is not running).

use std::future::Future;
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

/// A watchdog device.
pub trait WatchdogDevice: Send {
    /// Sets the timeout (seconds) and returns the one the device actually uses.
    fn set_timeout(&mut self, secs: u32) -> io::Result<u32>;
    /// Restarts the countdown.
    fn keepalive(&mut self) -> io::Result<()>;
    /// Stops the watchdog and closes it (magic close).
    fn disarm(self: Box<Self>) -> io::Result<()>;
    /// For logs.
    fn describe(&self) -> String;
}

mod ioctl {
    // <linux/watchdog.h>: WATCHDOG_IOCTL_BASE 'W'.
    nix::ioctl_read!(keepalive, b'W', 5, libc::c_int);
    nix::ioctl_readwrite!(set_timeout, b'W', 6, libc::c_int);
    nix::ioctl_read!(get_timeout, b'W', 7, libc::c_int);
}

/// `/dev/watchdog` (single-open: whoever holds it feeds it).
pub struct LinuxWatchdog {
    file: std::fs::File,
    path: String,
}

impl LinuxWatchdog {
    /// Opens the device; opening starts the watchdog.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        Ok(Self { file, path: path.display().to_string() })
    }
}

impl WatchdogDevice for LinuxWatchdog {
    fn set_timeout(&mut self, secs: u32) -> io::Result<u32> {
        use std::os::fd::AsRawFd;
        let mut t = libc::c_int::try_from(secs).unwrap_or(libc::c_int::MAX);
        let set = unsafe { ioctl::set_timeout(self.file.as_raw_fd(), &mut t) };
        if let Err(e) = set {
            // Out of the driver's range: it keeps its current timeout; report that one.
            let mut cur: libc::c_int = 0;
            unsafe { ioctl::get_timeout(self.file.as_raw_fd(), &mut cur) }.map_err(io::Error::from)?;
            tracing::warn!(device = %self.path, wanted = secs, using = cur, "watchdog: cannot set the timeout: {e}");
            t = cur;
        }
        u32::try_from(t).ok().filter(|&t| t > 0).ok_or_else(|| io::Error::other(format!("watchdog timeout {t}")))
    }

    fn keepalive(&mut self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let mut dummy: libc::c_int = 0;
        match unsafe { ioctl::keepalive(self.file.as_raw_fd(), &mut dummy) } {
            Ok(_) => Ok(()),
            // A driver without the ioctl: any write feeds it.
            Err(nix::errno::Errno::ENOTTY) => self.file.write_all(b"\0"),
            Err(e) => Err(e.into()),
        }
    }

    fn disarm(mut self: Box<Self>) -> io::Result<()> {
        self.file.write_all(b"V")
    }

    fn describe(&self) -> String {
        self.path.clone()
    }
}

/// When the box's loop feeds its watchdog: every third of the device's timeout.
pub struct Watchdog {
    dev: Option<Box<dyn WatchdogDevice>>,
    timeout: Duration,
    next: Instant,
}

impl Watchdog {
    /// No device: never due.
    pub fn none() -> Self {
        Self { dev: None, timeout: Duration::ZERO, next: Instant::now() }
    }

    /// Takes `dev` over: sets `timeout_s`, feeds it now.
    pub fn new(mut dev: Box<dyn WatchdogDevice>, timeout_s: u32, now: Instant) -> io::Result<Self> {
        let secs = dev.set_timeout(timeout_s)?;
        dev.keepalive()?;
        tracing::info!(device = %dev.describe(), timeout_s = secs, "watchdog: the daemon feeds it from its main loop");
        Ok(Self {
            dev: Some(dev),
            timeout: Duration::from_secs(secs.into()),
            next: now + Duration::from_secs(secs.into()) / 3,
        })
    }

    /// Opens the Linux device at `path`, retrying while it is busy (the init's feeder is still
    /// releasing it) for up to `busy_for`.
    pub fn open(path: &Path, timeout_s: u32, busy_for: Duration) -> io::Result<Self> {
        let start = Instant::now();
        loop {
            match LinuxWatchdog::open(path) {
                Ok(dev) => return Self::new(Box::new(dev), timeout_s, Instant::now()),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < busy_for => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The device's timeout (zero without a device).
    #[cfg(test)]
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sets a new timeout (the configuration became valid); feeds now.
    pub fn set_timeout(&mut self, timeout_s: u32, now: Instant) {
        let Some(dev) = self.dev.as_mut() else { return };
        if Duration::from_secs(timeout_s.into()) == self.timeout {
            return;
        }
        match dev.set_timeout(timeout_s) {
            Ok(secs) => {
                tracing::info!(timeout_s = secs, "watchdog: timeout set");
                self.timeout = Duration::from_secs(secs.into());
            }
            Err(e) => tracing::warn!("watchdog: setting the timeout: {e}"),
        }
        self.feed(now);
    }

    /// When the loop must call [`Self::handle_timeout`] next; `None` without a device.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.dev.as_ref().map(|_| self.next)
    }

    /// Feeds the device if a feed is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|at| now >= at) {
            self.feed(now);
        }
    }

    fn feed(&mut self, now: Instant) {
        let Some(dev) = self.dev.as_mut() else { return };
        if let Err(e) = dev.keepalive() {
            tracing::warn!(device = %dev.describe(), "watchdog: keepalive failed: {e}");
        }
        self.next = now + self.timeout / 3;
    }

    /// Resolves when the next feed is due (never without a device); for a `select!` branch
    /// whose handler calls [`Self::handle_timeout`].
    pub fn due(&self) -> impl Future<Output = ()> + Send + 'static {
        let at = self.poll_timeout();
        async move {
            match at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        }
    }

    /// Awaits one step of the loop (a join request, a DNS lookup, the leave sequence) and keeps
    /// feeding while it runs, for at most `limit`: a step that takes longer counts as a hung
    /// loop and the feeding stops (the board resets unless the step finishes within the
    /// watchdog's timeout after that).
    pub async fn drive<F: Future>(&mut self, limit: Duration, fut: F) -> F::Output {
        let give_up = Instant::now() + limit;
        let mut fut = std::pin::pin!(fut);
        let mut warned = self.dev.is_none();
        loop {
            let feeding = self.poll_timeout().is_some_and(|at| at < give_up);
            let due = self.due();
            tokio::select! {
                out = &mut fut => return out,
                _ = due, if feeding => self.handle_timeout(Instant::now()),
                _ = tokio::time::sleep_until(give_up), if !warned => {
                    warned = true;
                    tracing::error!("a step of the main loop takes longer than {limit:?}: no longer feeding the watchdog");
                }
            }
        }
    }

    /// Awaits an event the loop is idle for (a file or address change, shutdown) and keeps
    /// feeding all the while: waiting for the user is not a hung loop.
    pub async fn idle<F: Future>(&mut self, fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        loop {
            let due = self.due();
            tokio::select! {
                out = &mut fut => return out,
                _ = due => self.handle_timeout(Instant::now()),
            }
        }
    }

    /// Orderly shutdown only: stops the watchdog (magic close).
    pub fn disarm(mut self) {
        if let Some(dev) = self.dev.take() {
            let name = dev.describe();
            match dev.disarm() {
                Ok(()) => tracing::info!(device = %name, "watchdog: stopped (orderly shutdown)"),
                Err(e) => tracing::warn!(device = %name, "watchdog: magic close failed: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// What a synthetic device saw.
    #[derive(Default, Debug)]
    struct Seen {
        timeout: u32,
        feeds: u32,
        disarmed: bool,
    }

    /// A synthetic watchdog: takes timeouts up to `max`, counts feeds.
    struct Synthetic {
        seen: Arc<Mutex<Seen>>,
        max: u32,
    }

    impl WatchdogDevice for Synthetic {
        fn set_timeout(&mut self, secs: u32) -> io::Result<u32> {
            let mut s = self.seen.lock().unwrap();
            if secs <= self.max {
                s.timeout = secs;
            } else if s.timeout == 0 {
                s.timeout = self.max;
            }
            Ok(s.timeout)
        }
        fn keepalive(&mut self) -> io::Result<()> {
            self.seen.lock().unwrap().feeds += 1;
            Ok(())
        }
        fn disarm(self: Box<Self>) -> io::Result<()> {
            self.seen.lock().unwrap().disarmed = true;
            Ok(())
        }
        fn describe(&self) -> String {
            "synthetic".into()
        }
    }

    fn synthetic(max: u32) -> (Box<dyn WatchdogDevice>, Arc<Mutex<Seen>>) {
        let seen = Arc::new(Mutex::new(Seen::default()));
        (Box::new(Synthetic { seen: seen.clone(), max }), seen)
    }

    /// A loop that wakes at the watchdog's deadline feeds at a third of the timeout, and a
    /// stalled loop stops feeding: the device's countdown (reset at each feed) runs out.
    #[test]
    fn fed_at_a_third_of_the_timeout_and_not_while_the_loop_stalls() {
        let (dev, seen) = synthetic(600);
        let t0 = Instant::now();
        let mut wd = Watchdog::new(dev, 15, t0).unwrap();
        assert_eq!(seen.lock().unwrap().timeout, 15);
        assert_eq!(wd.poll_timeout(), Some(t0 + Duration::from_secs(5)));

        // Early wake-ups (other branches of the select) do not feed.
        wd.handle_timeout(t0 + Duration::from_secs(4));
        assert_eq!(seen.lock().unwrap().feeds, 1, "only the feed on taking the device over");

        // The loop runs for a minute, waking whenever the watchdog is due.
        let mut now = t0;
        let mut last_feed = t0;
        let mut max_gap = Duration::ZERO;
        while now < t0 + Duration::from_secs(60) {
            now = wd.poll_timeout().unwrap();
            let before = seen.lock().unwrap().feeds;
            wd.handle_timeout(now);
            assert_eq!(seen.lock().unwrap().feeds, before + 1);
            max_gap = max_gap.max(now - last_feed);
            last_feed = now;
        }
        assert_eq!(max_gap, Duration::from_secs(5));
        assert_eq!(seen.lock().unwrap().feeds, 13);

        // The loop stalls for 20 s: nobody calls it, so the device's 15 s run out.
        let feeds = seen.lock().unwrap().feeds;
        let stalled_until = now + Duration::from_secs(20);
        assert!(stalled_until - last_feed > wd.timeout(), "the hardware would reset");
        wd.handle_timeout(stalled_until);
        assert_eq!(seen.lock().unwrap().feeds, feeds + 1, "it feeds again only when the loop runs again");
        assert!(!seen.lock().unwrap().disarmed, "never disarmed except on orderly shutdown");
    }

    #[test]
    fn a_timeout_the_device_refuses_uses_the_devices_and_disarm_is_explicit() {
        let (dev, seen) = synthetic(15);
        let t0 = Instant::now();
        let mut wd = Watchdog::new(dev, 60, t0).unwrap();
        assert_eq!(wd.timeout(), Duration::from_secs(15), "the Pi's bcm2835 takes at most 15 s");
        assert_eq!(wd.poll_timeout(), Some(t0 + Duration::from_secs(5)));
        wd.set_timeout(6, t0 + Duration::from_secs(1));
        assert_eq!(wd.timeout(), Duration::from_secs(6));
        assert_eq!(wd.poll_timeout(), Some(t0 + Duration::from_secs(3)));
        wd.disarm();
        assert!(seen.lock().unwrap().disarmed);

        let none = Watchdog::none();
        assert_eq!(none.poll_timeout(), None);
    }

    /// `drive` keeps feeding while a step of the loop runs, and stops after its limit.
    #[tokio::test(start_paused = true)]
    async fn drive_feeds_during_a_step_up_to_its_limit() {
        let (dev, seen) = synthetic(600);
        let mut wd = Watchdog::new(dev, 6, Instant::now()).unwrap();
        // A 7 s step (longer than the timeout) with a 30 s limit: fed every 2 s meanwhile.
        let out = wd.drive(Duration::from_secs(30), async {
            tokio::time::sleep(Duration::from_secs(7)).await;
            42
        });
        assert_eq!(out.await, 42);
        assert_eq!(seen.lock().unwrap().feeds, 1 + 3);

        // A step that hangs: fed for the 10 s limit only.
        let start = Instant::now();
        wd.drive(Duration::from_secs(10), tokio::time::sleep(Duration::from_secs(40))).await;
        assert_eq!(start.elapsed(), Duration::from_secs(40));
        assert_eq!(seen.lock().unwrap().feeds, 1 + 3 + 5, "fed at 1, 3, 5, 7, 9 s of the step, then no more");
    }
}
