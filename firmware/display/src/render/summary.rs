//! What every layout says about a phase: the headline (the one thing that matters now, in large
//! type), the header label and how serious it is. Layout-specific detail lines stay in each layout.

use crate::Phase;
use std::time::Instant;

/// How serious the phase is; decides colours (and inversion on monochrome).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Working as intended (in the meeting).
    Ok,
    /// On the way (booting, finding the relay, joining).
    Busy,
    /// Needs attention (no network, relay lost, bad config, missing device).
    Error,
}

/// The common facts about a phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Small upper-case label for the header, e.g. "FINDING RELAY".
    pub label: &'static str,
    /// The large text, e.g. "No network".
    pub headline: String,
    /// How serious.
    pub severity: Severity,
}

/// The summary of `phase` as of `now`.
pub fn summary(phase: &Phase, _now: Instant) -> Summary {
    let (label, headline, severity) = match phase {
        Phase::Booting { .. } => ("STARTING", "Starting up".to_owned(), Severity::Busy),
        Phase::NoNetwork { .. } => ("NO NETWORK", "No network".to_owned(), Severity::Error),
        Phase::FindingRelay { .. } => ("CONNECTING", "Finding relay".to_owned(), Severity::Busy),
        Phase::Joining { .. } => ("CONNECTING", "Joining".to_owned(), Severity::Busy),
        Phase::InMeeting(m) => ("IN MEETING", if m.muted { "Muted".to_owned() } else { m.name.clone() }, Severity::Ok),
        Phase::RelayLost { .. } => ("RECONNECTING", "Relay lost".to_owned(), Severity::Error),
        Phase::ConfigError { .. } => ("CONFIG ERROR", "Config error".to_owned(), Severity::Error),
        Phase::DeviceMissing { device, .. } => ("DEVICE MISSING", device.headline().to_owned(), Severity::Error),
        Phase::SetUp { .. } => ("SET-UP", "Set up".to_owned(), Severity::Busy),
        Phase::Leaving { done: false, .. } => ("LEAVING", "Leaving".to_owned(), Severity::Busy),
        Phase::Leaving { done: true, .. } => ("LEFT", "Left".to_owned(), Severity::Busy),
    };
    Summary { label, headline, severity }
}

/// A bitrate in kbit/s, short: "850k", "1.85M", "12.4M".
pub fn kbps(k: u32) -> String {
    match k {
        0..=999 => format!("{k}k"),
        1000..=9999 => format!("{:.2}M", f64::from(k) / 1000.0),
        _ => format!("{:.1}M", f64::from(k) / 1000.0),
    }
}

/// A loss percentage, short: "0%", "0.4%", "12%".
pub fn loss(p: f32) -> String {
    let p = if p.is_finite() { p.clamp(0.0, 100.0) } else { 0.0 };
    if p == 0.0 {
        "0%".to_owned()
    } else if p < 10.0 {
        format!("{p:.1}%")
    } else {
        format!("{p:.0}%")
    }
}

/// The mic level as a 0..=1 fraction of the meter (-60 dBFS..0 dBFS).
pub fn meter_fraction(dbfs: f32) -> f32 {
    if dbfs.is_nan() {
        return 0.0;
    }
    ((dbfs + 60.0) / 60.0).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short_and_robust() {
        assert_eq!(kbps(850), "850k");
        assert_eq!(kbps(1850), "1.85M");
        assert_eq!(kbps(12400), "12.4M");
        assert_eq!(loss(0.0), "0%");
        assert_eq!(loss(0.44), "0.4%");
        assert_eq!(loss(37.0), "37%");
        assert_eq!(loss(f32::NAN), "0%");
        assert_eq!(loss(-3.0), "0%");
        assert_eq!(meter_fraction(0.0), 1.0);
        assert_eq!(meter_fraction(-30.0), 0.5);
        assert_eq!(meter_fraction(f32::NEG_INFINITY), 0.0);
        assert_eq!(meter_fraction(f32::NAN), 0.0);
    }
}
