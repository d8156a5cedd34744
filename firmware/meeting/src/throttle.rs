//! Defences of the control API against guessing, sans-IO (fed the peer's address and `now`):
//! [`Backoff`] slows the answers to an address after repeated failed credentials, and
//! [`LogLimiter`] keeps refusal logs to a few lines a second however fast the guesses come.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures an address may have before its answers slow down.
pub const FREE_FAILURES: u32 = 10;
/// One failure is forgotten per this much time without new ones (a leaky bucket).
pub const FORGET_EVERY: Duration = Duration::from_secs(6);
/// The delay of the first answer past [`FREE_FAILURES`]; it doubles with each further failure.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest delay.
pub const MAX_DELAY: Duration = Duration::from_secs(5);
/// Addresses tracked at once (the quietest are forgotten first beyond that).
pub const MAX_TRACKED: usize = 4096;

/// The unit limits are counted per: an IPv4 address, or an IPv6 /64 (one host usually has a
/// whole /64 to pick addresses from); IPv4-mapped IPv6 counts as the IPv4 address.
pub fn address_bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
}

impl Entry {
    /// Failures left after leaking one per [`FORGET_EVERY`] since the last.
    fn current(&self, now: Instant) -> u32 {
        let leaked = now.saturating_duration_since(self.last).as_millis() / FORGET_EVERY.as_millis();
        self.failures.saturating_sub(u32::try_from(leaked).unwrap_or(u32::MAX))
    }
}

/// Per-address count of failed credentials and the delay it earns.
#[derive(Debug, Default)]
pub struct Backoff {
    by_addr: HashMap<IpAddr, Entry>,
}

impl Backoff {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a failed token (or participant secret) from `addr`.
    pub fn handle_failure(&mut self, now: Instant, addr: IpAddr) {
        let addr = address_bucket(addr);
        if self.by_addr.len() >= MAX_TRACKED && !self.by_addr.contains_key(&addr) {
            self.by_addr.retain(|_, e| e.current(now) > 0);
            if self.by_addr.len() >= MAX_TRACKED {
                if let Some(quietest) = self.by_addr.iter().min_by_key(|(_, e)| e.last).map(|(a, _)| *a) {
                    self.by_addr.remove(&quietest);
                }
            }
        }
        let e = self.by_addr.entry(addr).or_insert(Entry { failures: 0, last: now });
        e.failures = e.current(now).saturating_add(1);
        e.last = now;
    }

    /// How long to hold the answer to a request from `addr` before sending it.
    pub fn delay(&self, now: Instant, addr: IpAddr) -> Duration {
        let failures = self.by_addr.get(&address_bucket(addr)).map_or(0, |e| e.current(now));
        match failures.checked_sub(FREE_FAILURES + 1) {
            None => Duration::ZERO,
            Some(extra) => FIRST_DELAY.saturating_mul(1u32 << extra.min(16)).min(MAX_DELAY),
        }
    }

    /// Addresses tracked.
    pub fn tracked(&self) -> usize {
        self.by_addr.len()
    }
}

/// What [`LogLimiter::allow`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allow {
    /// Log this one; `suppressed` lines were dropped since the last one logged.
    Log {
        /// Lines not logged since the last that was.
        suppressed: u64,
    },
    /// Do not log it (counted).
    Drop,
}

/// Lets through `burst` lines per `period` and counts the rest.
#[derive(Debug)]
pub struct LogLimiter {
    burst: u32,
    period: Duration,
    window_start: Option<Instant>,
    in_window: u32,
    suppressed: u64,
}

impl LogLimiter {
    /// At most `burst` lines per `period`.
    pub fn new(burst: u32, period: Duration) -> Self {
        Self { burst, period, window_start: None, in_window: 0, suppressed: 0 }
    }

    /// Whether to log a line at `now`.
    pub fn allow(&mut self, now: Instant) -> Allow {
        let fresh = self.window_start.map_or(true, |s| now.saturating_duration_since(s) >= self.period);
        if fresh {
            self.window_start = Some(now);
            self.in_window = 0;
        }
        if self.in_window < self.burst {
            self.in_window += 1;
            Allow::Log { suppressed: std::mem::take(&mut self.suppressed) }
        } else {
            self.suppressed += 1;
            Allow::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_slow_down_after_ten_failures_and_recover() {
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let mut b = Backoff::new();
        for i in 0..FREE_FAILURES {
            b.handle_failure(t0, a);
            assert_eq!(b.delay(t0, a), Duration::ZERO, "failure {}", i + 1);
        }
        b.handle_failure(t0, a);
        assert_eq!(b.delay(t0, a), FIRST_DELAY);
        b.handle_failure(t0, a);
        assert_eq!(b.delay(t0, a), FIRST_DELAY * 2);
        for _ in 0..40 {
            b.handle_failure(t0, a);
        }
        assert_eq!(b.delay(t0, a), MAX_DELAY);
        assert_eq!(b.delay(t0, other), Duration::ZERO, "other addresses are not slowed");
        // Quiet for long enough, the address is forgiven.
        assert_eq!(b.delay(t0 + FORGET_EVERY * 60, a), Duration::ZERO);
    }

    #[test]
    fn ipv6_counts_per_64() {
        let t0 = Instant::now();
        let mut b = Backoff::new();
        for i in 0..(FREE_FAILURES + 1) {
            b.handle_failure(t0, format!("2001:db8:1:2::{i:x}").parse().unwrap());
        }
        assert_eq!(b.delay(t0, "2001:db8:1:2::ffff".parse().unwrap()), FIRST_DELAY, "one /64");
        assert_eq!(b.delay(t0, "2001:db8:1:3::1".parse().unwrap()), Duration::ZERO, "another /64");
        assert_eq!(address_bucket("::ffff:192.0.2.1".parse().unwrap()), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_table_stays_bounded() {
        let t0 = Instant::now();
        let mut b = Backoff::new();
        for i in 0..(MAX_TRACKED as u32 + 100) {
            b.handle_failure(t0 + Duration::from_millis(u64::from(i)), IpAddr::from(i.to_be_bytes()));
        }
        assert!(b.tracked() <= MAX_TRACKED);
    }

    #[test]
    fn the_log_limiter_counts_what_it_drops() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(2, Duration::from_secs(1));
        assert_eq!(l.allow(t0), Allow::Log { suppressed: 0 });
        assert_eq!(l.allow(t0), Allow::Log { suppressed: 0 });
        for _ in 0..1000 {
            assert_eq!(l.allow(t0 + Duration::from_millis(500)), Allow::Drop);
        }
        assert_eq!(l.allow(t0 + Duration::from_secs(1)), Allow::Log { suppressed: 1000 });
    }
}
