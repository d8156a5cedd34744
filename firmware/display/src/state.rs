//! The box's state as the display sees it: a plain, serde-serializable value that the box
//! daemon owns and updates, and that [`crate::render`] turns into a screen.
//!
//! Everything here is data only (no IO, no clocks read). Sample values for every phase live in
//! [`crate::sample`]; they are what `roomcast display --state NAME` and the golden PNGs show.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Everything the screen shows: who the box is, and what it is doing now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DisplayState {
    /// The box's name (hostname or the `name` from roomcast.toml), shown on every screen.
    pub name: String,
    /// The box's IP address, shown on every screen (installers need it); `None` when it has none.
    pub ip: Option<IpAddr>,
    /// What the box is doing now: decides the screen's layout and its large text.
    pub phase: Phase,
}

/// What the box is doing now; one screen layout per variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "kebab-case")]
pub enum Phase {
    /// Starting up.
    Booting {
        /// The step in progress, e.g. "Starting camera".
        step: String,
        /// Rough progress, 0..=100.
        percent: u8,
    },
    /// The network is not usable.
    NoNetwork {
        /// The interface that should carry the meeting, e.g. "eth0".
        interface: String,
        /// Why it is not usable.
        problem: NetworkProblem,
    },
    /// Looking for the AMT relay (relay discovery / request).
    FindingRelay {
        /// The relay address being tried, e.g. "amt.example.net:2268" or an anycast address.
        relay: String,
        /// How many attempts so far (1 for the first).
        attempt: u32,
    },
    /// The relay answered; joining the meeting's groups.
    Joining {
        /// The meeting's name.
        meeting: String,
        /// The relay in use.
        relay: String,
    },
    /// In the meeting.
    InMeeting(Meeting),
    /// The relay stopped answering; retrying at a deadline.
    RelayLost {
        /// The relay that was lost.
        relay: String,
        /// Why it was declared lost, e.g. "no query for 30 s".
        reason: String,
        /// How many retries so far.
        attempt: u32,
        /// When the next try happens; the screen counts down to it.
        retry_at: Deadline,
    },
    /// No meeting server is configured (a fresh board): the box waits for roomcast.toml to name
    /// one and shows how to set it up, with its own address (the footer's, repeated large).
    SetUp {
        /// The file to edit, as the user sees it, e.g. "roomcast.toml".
        file: String,
        /// Where it is, as a phrase, e.g. "on the RC-BOOT drive" (the boot partition's label).
        place: String,
    },
    /// The box is leaving the meeting (SIGTERM, power-off), or has left it.
    Leaving {
        /// The meeting's name.
        meeting: String,
        /// The leave is finished: the box has left and is stopping.
        done: bool,
    },
    /// roomcast.toml has an error; the box runs with defaults or not at all until it is fixed.
    ConfigError {
        /// The config file, e.g. "/boot/roomcast.toml".
        file: String,
        /// The offending key, e.g. "amt.relay".
        key: String,
        /// The 1-based line of the key, when known.
        line: Option<u32>,
        /// What is wrong, short, e.g. "not a host:port".
        problem: String,
        /// What to do about it, short, e.g. "use host:2268".
        fix: String,
    },
    /// The camera and/or the microphone is missing.
    DeviceMissing {
        /// Which device(s).
        device: Device,
        /// What was expected, e.g. "/dev/video0" or "USB camera".
        expected: String,
        /// What to do, e.g. "plug in the USB camera".
        fix: String,
    },
}

/// Why the network is not usable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkProblem {
    /// No link: cable unplugged or switch port down.
    NoCarrier,
    /// Link up but no address (DHCP gave none).
    NoAddress,
    /// An address but no default route.
    NoRoute,
    /// The relay's name does not resolve.
    DnsFailed,
    /// Anything else, in a few words.
    Other(String),
}

impl NetworkProblem {
    /// A short description, e.g. "cable unplugged".
    pub fn describe(&self) -> &str {
        match self {
            NetworkProblem::NoCarrier => "cable unplugged",
            NetworkProblem::NoAddress => "no DHCP address",
            NetworkProblem::NoRoute => "no default route",
            NetworkProblem::DnsFailed => "DNS lookup failed",
            NetworkProblem::Other(s) => s,
        }
    }

    /// What an installer should try, in a few words.
    pub fn fix(&self) -> &str {
        match self {
            NetworkProblem::NoCarrier => "check the cable",
            NetworkProblem::NoAddress => "check DHCP server",
            NetworkProblem::NoRoute => "check the gateway",
            NetworkProblem::DnsFailed => "check DNS / relay name",
            NetworkProblem::Other(_) => "see `roomcast probe`",
        }
    }
}

/// A missing capture device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Device {
    /// The camera is missing.
    Camera,
    /// The microphone is missing.
    Microphone,
    /// Both are missing.
    CameraAndMicrophone,
}

impl Device {
    /// The headline for this device, e.g. "No camera".
    pub fn headline(self) -> &'static str {
        match self {
            Device::Camera => "No camera",
            Device::Microphone => "No mic",
            Device::CameraAndMicrophone => "No cam/mic",
        }
    }
}

/// The in-meeting view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Meeting {
    /// The meeting's name.
    pub name: String,
    /// The other participants (not this box), in roster order.
    pub participants: Vec<Participant>,
    /// This box's microphone level in dBFS (-inf..=0; the meter spans -60..0).
    pub mic_level_dbfs: f32,
    /// This box's microphone is muted.
    pub muted: bool,
    /// The video encoder in use.
    pub encoder: Encoder,
    /// The sender's reduced video mode while it adapts (e.g. "15fps 750k"); `None` at its full
    /// frame rate and bitrate, or when it sends no video.
    #[serde(default)]
    pub video_mode: Option<String>,
    /// Send bitrate in kbit/s.
    pub send_kbps: u32,
    /// Receive bitrate in kbit/s.
    pub recv_kbps: u32,
    /// Receive packet loss in percent (0..=100).
    pub loss_percent: f32,
}

/// One remote participant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// The participant's display name.
    pub name: String,
    /// Currently speaking.
    pub speaking: bool,
    /// Muted.
    pub muted: bool,
}

/// The video encoder in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoder {
    /// Hardware H.264 (V4L2 M2M).
    HwH264,
    /// Software AV1 (rav1e).
    SwAv1,
    /// No video (audio only).
    None,
}

impl Encoder {
    /// The short label shown on screen.
    pub fn label(self) -> &'static str {
        match self {
            Encoder::HwH264 => "HW H.264",
            Encoder::SwAv1 => "SW AV1",
            Encoder::None => "no video",
        }
    }
}

/// A monotonic deadline. In memory it is an [`Instant`]; serialized it is the milliseconds
/// remaining at the time of serialization (a monotonic instant means nothing in another process),
/// and deserializing adds them to the current instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline(pub Instant);

impl Deadline {
    /// A deadline `after` from `now`.
    pub fn after(now: Instant, after: Duration) -> Self {
        Deadline(now + after)
    }

    /// Time left at `now` (zero once passed).
    pub fn remaining(self, now: Instant) -> Duration {
        self.0.saturating_duration_since(now)
    }

    /// Whole seconds left at `now`, rounded up (so a countdown shows 1 until it reaches 0).
    pub fn remaining_secs_ceil(self, now: Instant) -> u64 {
        let r = self.remaining(now);
        r.as_secs() + u64::from(r.subsec_nanos() > 0)
    }
}

impl Serialize for Deadline {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ms = self.remaining(Instant::now()).as_millis();
        s.serialize_u64(u64::try_from(ms).unwrap_or(u64::MAX))
    }
}

impl<'de> Deserialize<'de> for Deadline {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let ms = u64::deserialize(d)?;
        let now = Instant::now();
        // Clamp absurd values instead of overflowing the Instant.
        let ms = ms.min(365 * 24 * 3600 * 1000);
        Ok(Deadline(now + Duration::from_millis(ms)))
    }
}

/// The names of the phases, as used on the command line (`roomcast display --state NAME`) and
/// in the golden PNGs' file names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PhaseName {
    /// `booting`
    Booting,
    /// `no-network`
    NoNetwork,
    /// `finding-relay`
    FindingRelay,
    /// `joining`
    Joining,
    /// `in-meeting`
    InMeeting,
    /// `relay-lost`
    RelayLost,
    /// `config-error`
    ConfigError,
    /// `no-camera`
    NoCamera,
    /// `set-up`
    SetUp,
    /// `leaving`
    Leaving,
}

impl PhaseName {
    /// Every phase name, in the order the README shows them.
    pub const ALL: [PhaseName; 10] = [
        PhaseName::Booting,
        PhaseName::NoNetwork,
        PhaseName::FindingRelay,
        PhaseName::Joining,
        PhaseName::InMeeting,
        PhaseName::RelayLost,
        PhaseName::ConfigError,
        PhaseName::NoCamera,
        PhaseName::SetUp,
        PhaseName::Leaving,
    ];

    /// The command-line name, e.g. "in-meeting".
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseName::Booting => "booting",
            PhaseName::NoNetwork => "no-network",
            PhaseName::FindingRelay => "finding-relay",
            PhaseName::Joining => "joining",
            PhaseName::InMeeting => "in-meeting",
            PhaseName::RelayLost => "relay-lost",
            PhaseName::ConfigError => "config-error",
            PhaseName::NoCamera => "no-camera",
            PhaseName::SetUp => "set-up",
            PhaseName::Leaving => "leaving",
        }
    }
}

impl std::fmt::Display for PhaseName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PhaseName {
    type Err = crate::DisplayError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PhaseName::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| crate::DisplayError::UnknownState(s.to_owned()))
    }
}

impl Phase {
    /// The name of this phase (a missing microphone is shown under `no-camera` too).
    pub fn name(&self) -> PhaseName {
        match self {
            Phase::Booting { .. } => PhaseName::Booting,
            Phase::NoNetwork { .. } => PhaseName::NoNetwork,
            Phase::FindingRelay { .. } => PhaseName::FindingRelay,
            Phase::Joining { .. } => PhaseName::Joining,
            Phase::InMeeting(_) => PhaseName::InMeeting,
            Phase::RelayLost { .. } => PhaseName::RelayLost,
            Phase::ConfigError { .. } => PhaseName::ConfigError,
            Phase::DeviceMissing { .. } => PhaseName::NoCamera,
            Phase::SetUp { .. } => PhaseName::SetUp,
            Phase::Leaving { .. } => PhaseName::Leaving,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_names_round_trip() {
        for p in PhaseName::ALL {
            assert_eq!(p.as_str().parse::<PhaseName>().unwrap(), p);
        }
        assert!("bogus".parse::<PhaseName>().is_err());
    }

    #[test]
    fn countdown_rounds_up_and_stops_at_zero() {
        let now = Instant::now();
        let d = Deadline::after(now, Duration::from_millis(2500));
        assert_eq!(d.remaining_secs_ceil(now), 3);
        assert_eq!(d.remaining_secs_ceil(now + Duration::from_millis(1500)), 1);
        assert_eq!(d.remaining_secs_ceil(now + Duration::from_secs(2)), 1);
        assert_eq!(d.remaining_secs_ceil(now + Duration::from_millis(2500)), 0);
        assert_eq!(d.remaining_secs_ceil(now + Duration::from_secs(10)), 0);
    }
}
