//! The box's status: one value the daemon's driver publishes on a `tokio::sync::watch`
//! (the session's [`SessionStatus`] and the box's own fields: room, address, mic level),
//! turned into the display's state ([`roomcast_display::DisplayState`]) and written as JSON
//! to `[debug] state_file`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use roomcast_display::{Deadline, Device, DisplayState, Encoder, Meeting, Participant, Phase};
use roomcast_session::{SessionPhase, SessionStatus};
use serde::Serialize;

/// What the box is doing.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "name")]
pub enum BoxPhase {
    /// Starting.
    Booting {
        /// Step in progress.
        step: String,
    },
    /// roomcast.toml has errors; the daemon waits for a fixed file.
    ConfigError {
        /// The file.
        file: String,
        /// Every problem, `line N: key: message`.
        errors: Vec<ConfigProblem>,
    },
    /// No meeting server configured: the set-up screen, until roomcast.toml names one.
    SetUp {
        /// The file to edit.
        file: String,
    },
    /// Asking the meeting service to join.
    Joining,
    /// The meeting service refused the join (e.g. a wrong token); retrying slowly.
    Refused {
        /// The service's reason.
        reason: String,
        /// HTTP status.
        status: u16,
    },
    /// The meeting service cannot be reached.
    ServiceUnreachable {
        /// Why.
        reason: String,
    },
    /// Joined; the AMT tunnel is being set up.
    FindingRelay {
        /// The relay.
        relay: String,
    },
    /// Joined and the tunnel is up.
    InMeeting,
    /// The relay stopped answering; the gateway retries.
    RelayLost {
        /// The relay.
        relay: String,
        /// When the next attempt starts (in the JSON: `retry_in_ms`, from the snapshot).
        #[serde(rename = "retry_in_ms")]
        retry_at: Option<Deadline>,
    },
    /// Leaving (SIGTERM).
    Leaving,
    /// Left the meeting.
    Left,
}

/// The AMT gateway's state, in the state file as `"gateway": "joined"` with its fields beside it
/// (`gateway_relay`, `gateway_retry_in_ms`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(tag = "gateway", rename_all = "kebab-case")]
pub enum GatewayStatus {
    /// Not started (not joined to a meeting yet).
    #[default]
    NotStarted,
    /// Looking for the relay.
    Discovering,
    /// Relay found, waiting for its query.
    Requesting {
        /// The relay.
        #[serde(rename = "gateway_relay")]
        relay: SocketAddr,
    },
    /// The tunnel is up.
    Joined {
        /// The relay.
        #[serde(rename = "gateway_relay")]
        relay: SocketAddr,
    },
    /// The relay stopped answering.
    RelayLost {
        /// When discovery starts again (milliseconds from the snapshot).
        #[serde(rename = "gateway_retry_in_ms")]
        retry_at: Deadline,
    },
    /// Closed (the box left the meeting).
    Closed,
}

impl From<&SessionPhase> for BoxPhase {
    fn from(p: &SessionPhase) -> Self {
        match p {
            SessionPhase::Joining => BoxPhase::Joining,
            SessionPhase::Refused { reason, status } => BoxPhase::Refused { reason: reason.clone(), status: *status },
            SessionPhase::ServiceUnreachable { reason } => BoxPhase::ServiceUnreachable { reason: reason.clone() },
            SessionPhase::FindingRelay { relay } => BoxPhase::FindingRelay { relay: relay.clone() },
            SessionPhase::InMeeting => BoxPhase::InMeeting,
            SessionPhase::RelayLost { relay, retry_at } => {
                BoxPhase::RelayLost { relay: relay.clone(), retry_at: Some(Deadline(*retry_at)) }
            }
            SessionPhase::Leaving => BoxPhase::Leaving,
            SessionPhase::Left => BoxPhase::Left,
        }
    }
}

impl From<&roomcast_amt::GatewayState> for GatewayStatus {
    fn from(s: &roomcast_amt::GatewayState) -> Self {
        use roomcast_amt::GatewayState as G;
        match *s {
            G::Discovering => Self::Discovering,
            G::Requesting { relay } => Self::Requesting { relay },
            G::Joined { relay } => Self::Joined { relay },
            G::RelayLost { retry_at } => Self::RelayLost { retry_at: Deadline(retry_at) },
            G::Closed => Self::Closed,
        }
    }
}

/// RTP packets sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PacketCounts {
    /// Video packets.
    pub video: u64,
    /// Audio packets.
    pub audio: u64,
}

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigProblem {
    /// `section.key`.
    pub key: String,
    /// 1-based line (0 = the file).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// One other participant as this box receives it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OtherStatus {
    /// Participant id.
    pub id: String,
    /// Room name.
    pub room: String,
    /// The (S,G) joined for it.
    pub channel: String,
    /// Video frames received (reassembled).
    pub video_frames: u64,
    /// Video codec last seen.
    pub video_codec: Option<String>,
    /// Audio packets decoded.
    pub audio_frames: u64,
    /// Audio frames concealed.
    pub audio_concealed: u64,
    /// RTP packets received.
    pub packets: u64,
    /// Loss in percent (from RTP sequence numbers).
    pub loss_percent: f32,
    /// Speaking now.
    pub speaking: bool,
    /// Its microphone is muted (it told the service; from the roster).
    pub muted: bool,
    /// It said BYE.
    pub said_bye: bool,
    /// Packets that failed to decrypt (forged, corrupted, or its key not known yet).
    pub decrypt_failed: u64,
}

/// The whole status.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// This room's name.
    pub room: String,
    /// The meeting id.
    pub meeting: String,
    /// Our participant id once joined.
    pub participant: Option<String>,
    /// The phase.
    pub phase: BoxPhase,
    /// Rooms in the meeting (us included), in join order.
    pub roster: Vec<String>,
    /// Roster version.
    pub roster_version: u64,
    /// The other participants.
    pub others: Vec<OtherStatus>,
    /// Video encoder label ("SW AV1", "HW H.264", "none").
    pub encoder: String,
    /// Why that encoder.
    pub encoder_reason: String,
    /// The sender's adapted video mode: "full", or frame rate, bitrate and why
    /// ("15 fps 1000 kbit/s (cpu)"); "none" while no video is sent.
    pub video_mode: String,
    /// The same, short, for the status display: `None` at full or without video.
    #[serde(skip)]
    pub video_mode_short: Option<String>,
    /// Send bitrate.
    pub send_kbps: u32,
    /// Receive bitrate.
    pub recv_kbps: u32,
    /// Receive loss over all streams.
    pub loss_percent: f32,
    /// Microphone muted.
    pub muted: bool,
    /// Microphone level.
    pub mic_level_dbfs: f32,
    /// Missing devices (camera, microphone, playback).
    pub missing: Vec<String>,
    /// Recent problems, newest last.
    pub errors: Vec<String>,
    /// AMT relay in use.
    pub relay: String,
    /// AMT gateway state (flattened: `gateway`, `gateway_relay`, `gateway_retry_in_ms`).
    #[serde(flatten)]
    pub gateway: GatewayStatus,
    /// RTP packets sent.
    pub packets_sent: PacketCounts,
    /// Video frames sent.
    pub video_frames_sent: u64,
    /// The box's IP address as seen on the way to the meeting service.
    pub ip: Option<IpAddr>,
    /// What init's Wi-Fi bring-up reports (`/run/roomcast/wifi`) when `[network] wifi_ssid` is set.
    pub wifi: Option<WifiStatus>,
}

/// The Wi-Fi link as init's bring-up reports it (one word, then details, in /run/roomcast/wifi).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WifiStatus {
    /// The Wi-Fi interface.
    pub interface: String,
    /// `connecting`, `connected`, `no-network`, `wrong-psk`, `no-interface`, `bad-config`.
    pub state: String,
    /// What is wrong, for the screen (None while connecting or connected).
    pub problem: Option<String>,
}

impl WifiStatus {
    /// Reads the status file's text for the network `ssid` on `interface`.
    pub fn parse(text: &str, interface: &str, ssid: &str) -> Self {
        let line = text.lines().next().unwrap_or("").trim();
        let (state, detail) = line.split_once(' ').unwrap_or((line, ""));
        let problem = match state {
            "wrong-psk" => Some(format!("Wi-Fi \"{ssid}\": wrong password (wifi_psk)")),
            "no-network" => Some(format!("Wi-Fi: no network \"{ssid}\" in range")),
            "no-interface" => Some(format!("Wi-Fi: no {interface} (driver or firmware missing)")),
            "bad-config" => {
                Some(format!("Wi-Fi: {}", if detail.is_empty() { "check [network] wifi_*" } else { detail }))
            }
            _ => None,
        };
        let state = if state.is_empty() { "connecting" } else { state };
        WifiStatus { interface: interface.to_string(), state: state.to_string(), problem }
    }
}

/// The set-up screen for the config file `file`: on a box it is on the boot partition, which a
/// laptop shows as the RC-BOOT drive; elsewhere the screen names its directory.
fn set_up_phase(file: &str) -> Phase {
    let path = Path::new(file);
    let name = path.file_name().map_or_else(|| file.to_owned(), |n| n.to_string_lossy().into_owned());
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let place =
        if dir == Path::new("/boot") { "on the RC-BOOT drive".to_owned() } else { format!("in {}", dir.display()) };
    Phase::SetUp { file: name, place }
}

impl Status {
    /// The starting status.
    pub fn new(room: &str, meeting: &str) -> Self {
        Self {
            room: room.to_string(),
            meeting: meeting.to_string(),
            participant: None,
            phase: BoxPhase::Booting { step: "Starting".into() },
            roster: Vec::new(),
            roster_version: 0,
            others: Vec::new(),
            encoder: "none".into(),
            encoder_reason: String::new(),
            video_mode: "none".into(),
            video_mode_short: None,
            send_kbps: 0,
            recv_kbps: 0,
            loss_percent: 0.0,
            muted: false,
            mic_level_dbfs: roomcast_media::mixer::SILENCE_DBFS,
            missing: Vec::new(),
            errors: Vec::new(),
            relay: String::new(),
            gateway: GatewayStatus::NotStarted,
            packets_sent: PacketCounts::default(),
            video_frames_sent: 0,
            ip: None,
            wifi: None,
        }
    }

    /// Records a problem (kept: the last 10).
    pub fn error(&mut self, msg: impl Into<String>) {
        let msg = msg.into();
        tracing::warn!("{msg}");
        if self.errors.last() != Some(&msg) {
            self.errors.push(msg);
        }
        if self.errors.len() > 10 {
            self.errors.remove(0);
        }
    }

    /// Takes the session's part of the status; `early_errors` (problems from before the
    /// session, e.g. the watchdog's) stay listed ahead of the session's.
    pub fn apply_session(&mut self, s: &SessionStatus, early_errors: &[String]) {
        self.phase = (&s.phase).into();
        self.participant = s.participant.clone();
        self.roster = s.roster.clone();
        self.roster_version = s.roster_version;
        self.relay = s.relay.clone();
        self.gateway = s.gateway.as_ref().map_or(GatewayStatus::NotStarted, GatewayStatus::from);
        self.muted = s.muted;
        self.send_kbps = s.send_kbps;
        self.packets_sent = PacketCounts { video: s.packets_sent.0, audio: s.packets_sent.1 };
        self.video_frames_sent = s.video_frames_sent;
        self.missing = s.missing.clone();
        self.recv_kbps = s.recv_kbps;
        self.loss_percent = s.loss_percent;
        self.others = s
            .others
            .iter()
            .map(|o| OtherStatus {
                id: o.id.clone(),
                room: o.room.clone(),
                channel: o.channel.clone(),
                video_frames: o.counters.video_frames,
                video_codec: o.counters.video_codec.clone(),
                audio_frames: o.counters.audio_frames,
                audio_concealed: o.counters.audio_concealed,
                packets: o.counters.packets,
                loss_percent: o.loss_percent,
                speaking: o.counters.speaking,
                muted: o.muted,
                said_bye: o.counters.said_bye,
                decrypt_failed: o.counters.decrypt_failed,
            })
            .collect();
        if let Some((label, reason)) = &s.encoder {
            self.encoder = label.clone();
            self.encoder_reason = reason.clone();
        }
        let mut errors: Vec<String> = early_errors.iter().chain(&s.errors).cloned().collect();
        let drop = errors.len().saturating_sub(10);
        errors.drain(..drop);
        self.errors = errors;
    }

    /// When the screen for this status changes by itself (the missing-device notice comes and
    /// goes), `since_start` being the time since the display started.
    pub fn next_change(&self, now: Instant, since_start: Duration) -> Option<Instant> {
        if self.phase != BoxPhase::InMeeting || self.missing.is_empty() {
            return None;
        }
        let into = Duration::from_millis((since_start.as_millis() % 10_000) as u64);
        let next = if into < Duration::from_secs(3) { Duration::from_secs(3) } else { Duration::from_secs(10) };
        Some(now + (next - into))
    }

    /// The screen for this status at `now`. A missing device is shown for 3 s of every 10 s
    /// while in the meeting, so the meeting screen stays visible most of the time.
    pub fn display_state(&self, now: Instant, since_start: Duration) -> DisplayState {
        let name = self.room.clone();
        // The service cannot be reached (or not yet) and the Wi-Fi says why: the Wi-Fi's problem.
        let wifi_problem = self.wifi.as_ref().and_then(|w| Some((w, w.problem.as_ref()?)));
        if let (Some((w, problem)), BoxPhase::ServiceUnreachable { .. } | BoxPhase::Joining) =
            (wifi_problem, &self.phase)
        {
            let problem = roomcast_display::NetworkProblem::Other(problem.clone());
            return DisplayState {
                name,
                ip: self.ip,
                phase: Phase::NoNetwork { interface: w.interface.clone(), problem },
            };
        }
        let phase = match &self.phase {
            BoxPhase::Booting { step } => Phase::Booting { step: step.clone(), percent: 10 },
            BoxPhase::ConfigError { file, errors } => {
                let first = errors.first();
                Phase::ConfigError {
                    file: file.clone(),
                    // A problem of the whole file (not UTF-8, unreadable) has no key: name the file.
                    key: match first {
                        Some(e) if e.key.is_empty() => {
                            Path::new(file).file_name().map_or(file.clone(), |n| n.to_string_lossy().into_owned())
                        }
                        Some(e) => e.key.clone(),
                        None => String::new(),
                    },
                    line: first.and_then(|e| u32::try_from(e.line).ok()).filter(|l| *l > 0),
                    problem: first.map(|e| e.message.clone()).unwrap_or_default(),
                    fix: if errors.len() > 1 {
                        format!("fix {} errors; see log", errors.len())
                    } else {
                        "edit roomcast.toml".into()
                    },
                }
            }
            BoxPhase::SetUp { file } => set_up_phase(file),
            BoxPhase::Refused { reason, status } => Phase::ConfigError {
                file: "roomcast.toml".into(),
                // 401 (the TLS service: wrong token or unknown meeting, one answer) and 403 (older
                // services) name the token; a certificate that does not match (status 0) the pin.
                key: match status {
                    401 | 403 => "meeting.token".into(),
                    0 if reason.contains("fingerprint") => "meeting.fingerprint".into(),
                    _ => "meeting.id".into(),
                },
                line: None,
                problem: reason.clone(),
                fix: "check [meeting] id and token".into(),
            },
            BoxPhase::ServiceUnreachable { reason } => Phase::NoNetwork {
                interface: "meeting service".into(),
                problem: roomcast_display::NetworkProblem::Other(reason.clone()),
            },
            BoxPhase::Joining => Phase::Joining { meeting: self.meeting.clone(), relay: self.relay.clone() },
            BoxPhase::Leaving => Phase::Leaving { meeting: self.meeting.clone(), done: false },
            BoxPhase::Left => Phase::Leaving { meeting: self.meeting.clone(), done: true },
            BoxPhase::FindingRelay { relay } => Phase::FindingRelay { relay: relay.clone(), attempt: 1 },
            BoxPhase::RelayLost { relay, retry_at } => Phase::RelayLost {
                relay: relay.clone(),
                reason: "relay not answering".into(),
                attempt: 1,
                retry_at: retry_at.unwrap_or(Deadline(now)),
            },
            BoxPhase::InMeeting => {
                let show_missing = !self.missing.is_empty() && since_start.as_secs() % 10 < 3;
                if show_missing {
                    let cam = self.missing.iter().any(|m| m == "camera");
                    let mic = self.missing.iter().any(|m| m == "microphone");
                    let device = match (cam, mic) {
                        (true, true) => Device::CameraAndMicrophone,
                        (true, false) => Device::Camera,
                        _ => Device::Microphone,
                    };
                    Phase::DeviceMissing {
                        device,
                        expected: self.missing.join(", "),
                        // Neither: the box joined watch-only (it receives, sends nothing).
                        fix: if cam && mic {
                            "plug them in; watch-only until then".into()
                        } else {
                            "plug it in; running without".into()
                        },
                    }
                } else {
                    Phase::InMeeting(Meeting {
                        name: self.meeting.clone(),
                        participants: self
                            .others
                            .iter()
                            .map(|o| Participant { name: o.room.clone(), speaking: o.speaking, muted: o.muted })
                            .collect(),
                        mic_level_dbfs: self.mic_level_dbfs,
                        muted: self.muted,
                        encoder: match self.encoder.as_str() {
                            "HW H.264" => Encoder::HwH264,
                            "SW AV1" => Encoder::SwAv1,
                            _ => Encoder::None,
                        },
                        video_mode: self.video_mode_short.clone(),
                        send_kbps: self.send_kbps,
                        recv_kbps: self.recv_kbps,
                        loss_percent: self.loss_percent,
                    })
                }
            }
        };
        DisplayState { name, ip: self.ip, phase }
    }
}

/// The status as the driver publishes it.
pub type StatusTx = tokio::sync::watch::Sender<Status>;

/// The `[debug] state_file` document: the status and the screen's state (README, "The box
/// daemon", lists the fields).
#[derive(Serialize)]
pub struct StateFile<'a> {
    /// The box's status.
    pub status: &'a Status,
    /// What the display shows (a [`DisplayState`]: `roomcast display --from-json` reads it).
    pub display: &'a DisplayState,
}

/// Writes `value` as JSON to `path` atomically (temp file + rename).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let tmp: PathBuf = path.with_extension("json.tmp");
    let body = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_map_to_screens() {
        let now = Instant::now();
        let mut s = Status::new("Blue", "demo");
        s.phase = BoxPhase::Refused { reason: "wrong access token".into(), status: 403 };
        match s.display_state(now, Duration::ZERO).phase {
            Phase::ConfigError { key, problem, .. } => {
                assert_eq!(key, "meeting.token");
                assert!(problem.contains("wrong access token"));
            }
            other => panic!("{other:?}"),
        }
        s.phase = BoxPhase::Refused { reason: "unknown meeting or wrong token".into(), status: 401 };
        assert!(
            matches!(s.display_state(now, Duration::ZERO).phase, Phase::ConfigError { key, .. } if key == "meeting.token")
        );
        s.phase = BoxPhase::Refused {
            reason: "the certificate is sha256:AB, not the configured fingerprint sha256:CD".into(),
            status: 0,
        };
        assert!(
            matches!(s.display_state(now, Duration::ZERO).phase, Phase::ConfigError { key, .. } if key == "meeting.fingerprint")
        );
        s.phase = BoxPhase::Refused { reason: "no such meeting".into(), status: 404 };
        assert!(
            matches!(s.display_state(now, Duration::ZERO).phase, Phase::ConfigError { key, .. } if key == "meeting.id")
        );
        s.phase = BoxPhase::ConfigError {
            file: "/boot/roomcast.toml".into(),
            errors: vec![ConfigProblem { key: "video.fps".into(), line: 12, message: "500 is out of range".into() }],
        };
        match s.display_state(now, Duration::ZERO).phase {
            Phase::ConfigError { key, line, .. } => assert_eq!((key.as_str(), line), ("video.fps", Some(12))),
            other => panic!("{other:?}"),
        }
        // A Wi-Fi problem is shown while the service cannot be reached, not once it can.
        s.phase = BoxPhase::ServiceUnreachable { reason: "connection timed out".into() };
        s.wifi = Some(WifiStatus::parse("wrong-psk\n", "wlan0", "Blue net"));
        match s.display_state(now, Duration::ZERO).phase {
            Phase::NoNetwork { interface, problem } => {
                assert_eq!(interface, "wlan0");
                assert_eq!(problem.describe(), "Wi-Fi \"Blue net\": wrong password (wifi_psk)");
            }
            other => panic!("{other:?}"),
        }
        s.wifi = Some(WifiStatus::parse("no-network", "wlan0", "Blue net"));
        assert!(matches!(s.display_state(now, Duration::ZERO).phase,
            Phase::NoNetwork { problem, .. } if problem.describe().contains("no network \"Blue net\"")));
        s.wifi = Some(WifiStatus::parse("connected 192.168.7.20", "wlan0", "Blue net"));
        assert!(matches!(s.display_state(now, Duration::ZERO).phase,
            Phase::NoNetwork { interface, .. } if interface == "meeting service"));
        s.phase = BoxPhase::InMeeting;
        s.wifi = Some(WifiStatus::parse("wrong-psk", "wlan0", "Blue net"));
        assert!(!matches!(s.display_state(now, Duration::ZERO).phase, Phase::NoNetwork { .. }));
        s.wifi = None;
        s.phase = BoxPhase::SetUp { file: "/boot/roomcast.toml".into() };
        s.ip = Some("10.0.2.15".parse().unwrap());
        let ds = s.display_state(now, Duration::ZERO);
        assert_eq!(ds.ip, s.ip, "the set-up screen shows the box's address");
        assert_eq!(ds.phase, Phase::SetUp { file: "roomcast.toml".into(), place: "on the RC-BOOT drive".into() });
        s.phase = BoxPhase::SetUp { file: "/home/me/room.toml".into() };
        assert_eq!(
            s.display_state(now, Duration::ZERO).phase,
            Phase::SetUp { file: "room.toml".into(), place: "in /home/me".into() }
        );
        s.phase = BoxPhase::Leaving;
        assert_eq!(s.display_state(now, Duration::ZERO).phase, Phase::Leaving { meeting: "demo".into(), done: false });
        s.phase = BoxPhase::Left;
        assert_eq!(s.display_state(now, Duration::ZERO).phase, Phase::Leaving { meeting: "demo".into(), done: true });
        s.phase = BoxPhase::InMeeting;
        s.encoder = "SW AV1".into();
        s.video_mode_short = Some("15fps 750k".into());
        s.others.push(OtherStatus { room: "Green".into(), speaking: true, ..Default::default() });
        match s.display_state(now, Duration::from_secs(5)).phase {
            Phase::InMeeting(m) => {
                assert_eq!(m.encoder, Encoder::SwAv1);
                assert_eq!(m.video_mode.as_deref(), Some("15fps 750k"), "the OLED shows the reduced mode");
                assert_eq!(m.participants.len(), 1);
                assert!(m.participants[0].speaking);
            }
            other => panic!("{other:?}"),
        }
        // A missing camera is shown 3 s out of every 10 while in the meeting.
        s.missing = vec!["camera".into()];
        assert!(matches!(
            s.display_state(now, Duration::from_secs(21)).phase,
            Phase::DeviceMissing { device: Device::Camera, .. }
        ));
        assert!(matches!(s.display_state(now, Duration::from_secs(25)).phase, Phase::InMeeting(_)));
    }

    #[test]
    fn the_state_file_holds_data_not_debug_strings() {
        let now = Instant::now();
        let mut s = Status::new("Blue", "demo");
        s.gateway = GatewayStatus::Joined { relay: "10.0.2.2:2268".parse().unwrap() };
        s.packets_sent = PacketCounts { video: 88, audio: 287 };
        s.mic_level_dbfs = -15.1;
        s.phase =
            BoxPhase::RelayLost { relay: "r:2268".into(), retry_at: Some(Deadline(now + Duration::from_secs(60))) };
        let ds = s.display_state(now, Duration::ZERO);
        let v = serde_json::to_value(StateFile { status: &s, display: &ds }).unwrap();
        let st = &v["status"];
        assert_eq!(st["gateway"], "joined", "{v:#}");
        assert_eq!(st["gateway_relay"], "10.0.2.2:2268", "{v:#}");
        assert_eq!(st["packets_sent"], serde_json::json!({ "video": 88, "audio": 287 }));
        let text = serde_json::to_string(&StateFile { status: &s, display: &ds }).unwrap();
        assert!(text.contains("\"mic_level_dbfs\":-15.1,"), "an f32 as written, not widened: {text}");
        assert_eq!(st["phase"]["name"], "relay-lost");
        let ms = st["phase"]["retry_in_ms"].as_u64().unwrap();
        assert!((59_000..=60_000).contains(&ms), "{ms}");
        assert_eq!(v["display"]["phase"]["phase"], "relay-lost");
        s.gateway = GatewayStatus::RelayLost { retry_at: Deadline(now + Duration::from_secs(5)) };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["gateway"], "relay-lost");
        assert!(v["gateway_retry_in_ms"].as_u64().unwrap() <= 5000, "{v:#}");
        // The display member is a DisplayState: what `roomcast display --from-json` reads back.
        let back: DisplayState = serde_json::from_value(serde_json::to_value(&ds).unwrap()).unwrap();
        assert_eq!(back.name, "Blue");
    }

    #[test]
    fn the_missing_device_notice_has_deadlines() {
        let now = Instant::now();
        let mut s = Status::new("Blue", "demo");
        s.phase = BoxPhase::InMeeting;
        assert_eq!(s.next_change(now, Duration::from_secs(1)), None, "nothing missing: no deadline");
        s.missing = vec!["camera".into()];
        assert_eq!(s.next_change(now, Duration::from_millis(21_500)), Some(now + Duration::from_millis(1500)));
        assert_eq!(s.next_change(now, Duration::from_secs(25)), Some(now + Duration::from_secs(5)));
    }

    #[test]
    fn the_session_part_is_taken_over() {
        let mut s = Status::new("Blue", "demo");
        let session = roomcast_session::BoxSession::new(Default::default(), Instant::now());
        let mut st = session.status().clone();
        st.errors = (0..10).map(|i| format!("s{i}")).collect();
        st.encoder = Some(("SW AV1".into(), "no hardware".into()));
        s.apply_session(&st, &["watchdog".to_string()]);
        assert_eq!(s.phase, BoxPhase::Joining);
        assert_eq!(s.encoder, "SW AV1");
        assert_eq!(s.errors.len(), 10);
        assert_eq!(s.errors.first().map(String::as_str), Some("s0"), "the oldest dropped first");
    }

    #[test]
    fn errors_are_bounded_and_deduplicated() {
        let mut s = Status::new("Blue", "demo");
        for i in 0..20 {
            s.error(format!("e{i}"));
            s.error(format!("e{i}"));
        }
        assert_eq!(s.errors.len(), 10);
        assert_eq!(s.errors.last().map(String::as_str), Some("e19"));
    }
}
