//! The [`Display`] driver: redraws only on change, at most every MIN_REDRAW_INTERVAL, ticks the
//! relay-lost countdown once a second, and survives backends that are missing or fail (drops to
//! none, retries after RETRY_INTERVAL). Time is passed in, so these tests run instantly.

use embedded_graphics::prelude::Size;
use roomcast_display::{
    Backend, BackendChoice, Display, DisplayError, DisplayState, Frame, Outcome, Phase, PhaseName, MIN_REDRAW_INTERVAL,
    RETRY_INTERVAL,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A backend that records frames, and fails when told to.
struct Fake {
    shown: Arc<Mutex<Vec<Frame>>>,
    fail: Arc<Mutex<bool>>,
    size: Size,
}

impl Backend for Fake {
    fn describe(&self) -> String {
        "fake".into()
    }
    fn size(&self) -> Size {
        self.size
    }
    fn show(&mut self, frame: &Frame, _previous: Option<&Frame>) -> Result<(), DisplayError> {
        if *self.fail.lock().unwrap() {
            return Err(DisplayError::NoDisplay("unplugged".into()));
        }
        self.shown.lock().unwrap().push(frame.clone());
        Ok(())
    }
}

struct Rig {
    display: Display,
    shown: Arc<Mutex<Vec<Frame>>>,
    fail: Arc<Mutex<bool>>,
    opens: Arc<AtomicUsize>,
    present: Arc<Mutex<bool>>,
}

fn rig(choice: BackendChoice) -> Rig {
    rig_sized(choice, Size::new(128, 64))
}

fn rig_sized(choice: BackendChoice, size: Size) -> Rig {
    let shown = Arc::new(Mutex::new(Vec::new()));
    let fail = Arc::new(Mutex::new(false));
    let opens = Arc::new(AtomicUsize::new(0));
    let present = Arc::new(Mutex::new(true));
    let (s, f, o, p) = (shown.clone(), fail.clone(), opens.clone(), present.clone());
    let display = Display::with_opener(
        choice,
        Box::new(move |_c: &BackendChoice| {
            o.fetch_add(1, Ordering::SeqCst);
            if !*p.lock().unwrap() {
                return Err(DisplayError::NoDisplay("nothing on the bus".into()));
            }
            Ok(Box::new(Fake { shown: s.clone(), fail: f.clone(), size }) as Box<dyn Backend>)
        }),
    );
    Rig { display, shown, fail, opens, present }
}

fn count(r: &Rig) -> usize {
    r.shown.lock().unwrap().len()
}

#[test]
fn redraws_only_on_change_and_at_most_every_min_interval() {
    let mut r = rig(BackendChoice::default());
    let t0 = Instant::now();
    let booting = DisplayState::sample(PhaseName::Booting, t0);
    assert!(matches!(r.display.handle_state(t0, &booting), Outcome::Sent));
    assert_eq!(r.display.backend_description().as_deref(), Some("fake"));
    assert_eq!(r.display.poll_timeout(t0, &booting), None);
    for i in 1..20 {
        assert!(matches!(r.display.handle_state(t0 + Duration::from_millis(i * 100), &booting), Outcome::Unchanged));
    }
    assert_eq!(count(&r), 1);

    // A change 100 ms after the last send waits for the rate limit...
    let t1 = t0 + Duration::from_secs(2);
    let joining = DisplayState::sample(PhaseName::Joining, t1);
    assert!(matches!(r.display.handle_state(t1, &joining), Outcome::Sent));
    let meeting = DisplayState::sample(PhaseName::InMeeting, t1);
    let t2 = t1 + Duration::from_millis(100);
    match r.display.handle_state(t2, &meeting) {
        Outcome::RateLimited { until } => assert_eq!(until, t1 + MIN_REDRAW_INTERVAL),
        other => panic!("expected RateLimited, got {other:?}"),
    }
    // ...and the driver says when to come back.
    assert_eq!(r.display.poll_timeout(t2, &meeting), Some(t1 + MIN_REDRAW_INTERVAL));
    assert_eq!(count(&r), 2);
    assert!(matches!(r.display.handle_state(t1 + MIN_REDRAW_INTERVAL, &meeting), Outcome::Sent));
    assert_eq!(count(&r), 3);

    // A state change that renders identically (the mic level moves less than one meter
    // segment) is rendered but sends nothing.
    let mut quieter = meeting.clone();
    if let Phase::InMeeting(m) = &mut quieter.phase {
        m.mic_level_dbfs = -18.1;
    }
    assert!(matches!(r.display.handle_state(t1 + Duration::from_secs(1), &quieter), Outcome::Unchanged));
    assert_eq!(count(&r), 3);
    assert_eq!(r.opens.load(Ordering::SeqCst), 1);
}

#[test]
fn countdown_ticks_once_per_second() {
    let mut r = rig(BackendChoice::default());
    let t0 = Instant::now();
    let lost = DisplayState::sample(PhaseName::RelayLost, t0);
    assert!(matches!(r.display.handle_state(t0, &lost), Outcome::Sent));
    // Exactly 12 s left: the display changes to 11 one second from now.
    assert_eq!(r.display.poll_timeout(t0, &lost), Some(t0 + Duration::from_secs(1)));
    let mut sent = 1;
    let mut t = t0;
    for _ in 0..40 {
        t += Duration::from_millis(300);
        if let Outcome::Sent = r.display.handle_state(t, &lost) {
            sent += 1;
        }
    }
    // 12 s of countdown in 12 s of updates: 12 -> 0 is 12 changes, then it stays at 0.
    assert_eq!(sent, 13, "one frame per second of countdown");
    assert_eq!(count(&r), 13);
    assert_eq!(r.display.poll_timeout(t, &lost), None);
}

#[test]
fn a_failing_display_drops_to_none_and_is_retried() {
    let mut r = rig(BackendChoice::default());
    let t0 = Instant::now();
    let s1 = DisplayState::sample(PhaseName::Booting, t0);
    let s2 = DisplayState::sample(PhaseName::FindingRelay, t0);
    assert!(matches!(r.display.handle_state(t0, &s1), Outcome::Sent));
    *r.fail.lock().unwrap() = true;
    let t1 = t0 + Duration::from_secs(1);
    match r.display.handle_state(t1, &s2) {
        Outcome::Failed(e) => assert!(e.to_string().contains("unplugged")),
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(r.display.backend_description(), None);
    assert_eq!(r.display.poll_timeout(t1, &s2), Some(t1 + RETRY_INTERVAL));
    // Until the retry time: no display, no open attempts.
    assert!(matches!(r.display.handle_state(t1 + Duration::from_secs(5), &s2), Outcome::NoDisplay));
    assert_eq!(r.opens.load(Ordering::SeqCst), 1);
    // The display came back: reopened, and the current state is drawn in full.
    *r.fail.lock().unwrap() = false;
    assert!(matches!(r.display.handle_state(t1 + RETRY_INTERVAL, &s2), Outcome::Sent));
    assert_eq!(r.opens.load(Ordering::SeqCst), 2);
    assert_eq!(count(&r), 2);
}

#[test]
fn no_display_found_is_retried_quietly() {
    let mut r = rig(BackendChoice::default());
    *r.present.lock().unwrap() = false;
    let t0 = Instant::now();
    let s = DisplayState::sample(PhaseName::Booting, t0);
    assert!(matches!(r.display.handle_state(t0, &s), Outcome::NoDisplay));
    assert!(matches!(r.display.handle_state(t0 + Duration::from_secs(9), &s), Outcome::NoDisplay));
    assert_eq!(r.opens.load(Ordering::SeqCst), 1);
    *r.present.lock().unwrap() = true;
    assert!(matches!(r.display.handle_state(t0 + RETRY_INTERVAL, &s), Outcome::Sent));
    assert_eq!(r.opens.load(Ordering::SeqCst), 2);
}

#[test]
fn display_none_never_opens_anything() {
    let mut r = rig(BackendChoice::None);
    let t0 = Instant::now();
    let s = DisplayState::sample(PhaseName::Booting, t0);
    assert!(matches!(r.display.handle_state(t0, &s), Outcome::NoDisplay));
    assert_eq!(r.display.poll_timeout(t0, &s), None);
    assert_eq!(r.opens.load(Ordering::SeqCst), 0);
}

#[test]
fn state_and_backend_choice_round_trip_through_json() {
    let now = Instant::now();
    for name in PhaseName::ALL {
        let s = DisplayState::sample(name, now);
        let json = serde_json::to_string(&s).unwrap();
        let back: DisplayState = serde_json::from_str(&json).unwrap();
        match (&s.phase, &back.phase) {
            // A deadline travels as "milliseconds left", so it comes back shifted by the time
            // the round trip took; compare the countdown instead.
            (Phase::RelayLost { retry_at: a, .. }, Phase::RelayLost { retry_at: b, .. }) => {
                let (a, b) = (a.remaining(Instant::now()), b.remaining(Instant::now()));
                assert!(a.max(b) - a.min(b) < Duration::from_secs(1), "{a:?} vs {b:?}");
            }
            _ => assert_eq!(back, s, "{json}"),
        }
    }
    let json = serde_json::to_string(&DisplayState::sample(PhaseName::NoNetwork, now)).unwrap();
    assert!(json.contains(r#""phase":"no-network""#) && json.contains(r#""problem":"no-carrier""#), "{json}");
    let c: BackendChoice = serde_json::from_str(r#"{"kind":"ssd1306","bus":"/dev/i2c-1","address":60}"#).unwrap();
    assert!(matches!(c, BackendChoice::Ssd1306 { address: 0x3c, .. }));
    let c: BackendChoice = serde_json::from_str(r#"{"kind":"auto"}"#).unwrap();
    assert_eq!(c, BackendChoice::default());
}

#[test]
fn big_screens_are_redrawn_less_often() {
    let mut r = rig_sized(BackendChoice::default(), Size::new(1280, 800));
    let t0 = Instant::now();
    let a = DisplayState::sample(PhaseName::Joining, t0);
    let b = DisplayState::sample(PhaseName::InMeeting, t0);
    assert!(matches!(r.display.handle_state(t0, &a), Outcome::Sent));
    assert_eq!(r.display.min_interval_for_current(), MIN_REDRAW_INTERVAL * 4);
    match r.display.handle_state(t0 + MIN_REDRAW_INTERVAL, &b) {
        Outcome::RateLimited { until } => assert_eq!(until, t0 + MIN_REDRAW_INTERVAL * 4),
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(matches!(r.display.handle_state(t0 + MIN_REDRAW_INTERVAL * 4, &b), Outcome::Sent));
    let small = rig_sized(BackendChoice::default(), Size::new(320, 240));
    let mut small = small;
    small.display.handle_state(t0, &a);
    assert_eq!(small.display.min_interval_for_current(), MIN_REDRAW_INTERVAL);
}
