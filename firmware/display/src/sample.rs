//! Sample data for every phase: what `roomcast display --state NAME`, the golden PNGs under
//! docs/screens/ and the tests render. Realistic values, chosen to exercise long names.

use crate::state::{Deadline, Device, DisplayState, Encoder, Meeting, NetworkProblem, Participant, Phase, PhaseName};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

/// The sample box name.
pub const SAMPLE_NAME: &str = "room-4b";
/// The sample box address.
pub const SAMPLE_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 41));
/// Seconds left on the sample relay-lost countdown.
pub const SAMPLE_RETRY_SECS: u64 = 12;

impl Default for DisplayState {
    /// A box with the sample name, no address yet, booting.
    fn default() -> Self {
        DisplayState { name: SAMPLE_NAME.to_owned(), ip: None, phase: Phase::default() }
    }
}

impl Default for Phase {
    /// Booting, at the start.
    fn default() -> Self {
        Phase::Booting { step: "Starting".to_owned(), percent: 0 }
    }
}

impl Default for Meeting {
    /// The sample meeting.
    fn default() -> Self {
        Meeting::sample()
    }
}

impl DisplayState {
    /// The sample state for phase `name`; `now` anchors the relay-lost countdown.
    pub fn sample(name: PhaseName, now: Instant) -> Self {
        let ip = match name {
            PhaseName::Booting | PhaseName::NoNetwork => None,
            _ => Some(SAMPLE_IP),
        };
        DisplayState { name: SAMPLE_NAME.to_owned(), ip, phase: Phase::sample(name, now) }
    }
}

impl Meeting {
    /// A meeting with four other participants, one speaking, one muted.
    pub fn sample() -> Self {
        let p = |name: &str, speaking, muted| Participant { name: name.to_owned(), speaking, muted };
        Meeting {
            name: "Weekly planning".to_owned(),
            participants: vec![
                p("Berlin office", true, false),
                p("Ana (home)", false, false),
                p("Lab 2", false, true),
                p("Tokyo", false, false),
            ],
            mic_level_dbfs: -18.0,
            muted: false,
            encoder: Encoder::HwH264,
            video_mode: Some("15fps 1500k".to_owned()),
            send_kbps: 1850,
            recv_kbps: 4210,
            loss_percent: 0.4,
        }
    }
}

impl Phase {
    /// The sample phase for `name`; `now` anchors the relay-lost countdown.
    pub fn sample(name: PhaseName, now: Instant) -> Self {
        match name {
            PhaseName::Booting => Phase::Booting { step: "Starting camera".to_owned(), percent: 60 },
            PhaseName::NoNetwork => {
                Phase::NoNetwork { interface: "eth0".to_owned(), problem: NetworkProblem::NoCarrier }
            }
            PhaseName::FindingRelay => Phase::FindingRelay { relay: "amt.example.net:2268".to_owned(), attempt: 2 },
            PhaseName::Joining => {
                Phase::Joining { meeting: "Weekly planning".to_owned(), relay: "amt.example.net:2268".to_owned() }
            }
            PhaseName::InMeeting => Phase::InMeeting(Meeting::sample()),
            PhaseName::RelayLost => Phase::RelayLost {
                relay: "amt.example.net:2268".to_owned(),
                reason: "no query for 30 s".to_owned(),
                attempt: 3,
                retry_at: Deadline::after(now, Duration::from_secs(SAMPLE_RETRY_SECS)),
            },
            PhaseName::ConfigError => Phase::ConfigError {
                file: "/boot/roomcast.toml".to_owned(),
                key: "amt.relay".to_owned(),
                line: Some(7),
                problem: "not a host:port".to_owned(),
                fix: "write host:2268".to_owned(),
            },
            PhaseName::Leaving => Phase::Leaving { meeting: "Weekly planning".to_owned(), done: false },
            PhaseName::SetUp => {
                Phase::SetUp { file: "roomcast.toml".to_owned(), place: "on the RC-BOOT drive".to_owned() }
            }
            PhaseName::NoCamera => Phase::DeviceMissing {
                device: Device::Camera,
                expected: "/dev/video0".to_owned(),
                fix: "plug in the USB camera".to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_has_the_phase_it_was_asked_for() {
        let now = Instant::now();
        for name in PhaseName::ALL {
            assert_eq!(DisplayState::sample(name, now).phase.name(), name);
        }
    }
}
