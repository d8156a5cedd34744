//! What the session shows: [`SessionStatus`], a plain value the driver publishes (the box's
//! display and state file read it); [`SenderCounters`] and [`ReceiveCounters`], the media's
//! totals fed back in.

use std::time::Instant;

use roomcast_amt::GatewayState;

/// Where the box is in the meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionPhase {
    /// Asking the meeting service to join.
    Joining,
    /// The meeting service refused the join (e.g. a wrong token); retrying slowly.
    Refused {
        /// The service's reason.
        reason: String,
        /// HTTP status.
        status: u16,
    },
    /// The meeting service cannot be reached; retrying.
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
    /// The relay stopped answering; the gateway retries at `retry_at`.
    RelayLost {
        /// The relay.
        relay: String,
        /// When the gateway's next discovery starts.
        retry_at: Instant,
    },
    /// Leaving (shutdown).
    Leaving,
    /// Left the meeting; nothing more to do.
    Left,
}

/// The sender's running totals and device state, as the driver reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderCounters {
    /// RTP bytes sent so far.
    pub bytes: u64,
    /// Video RTP packets sent so far.
    pub video_packets: u64,
    /// Audio RTP packets sent so far.
    pub audio_packets: u64,
    /// Video frames sent so far.
    pub video_frames: u64,
    /// A capture thread stopped (device lost or encoder failed).
    pub ended: bool,
    /// Devices missing now (camera, microphone).
    pub missing: Vec<String>,
    /// Encoder label ("SW AV1", "HW H.264") and why, when there is an encoder.
    pub encoder: Option<(String, String)>,
}

/// One other participant's receive totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteCounters {
    /// Participant id.
    pub id: String,
    /// RTP packets received.
    pub packets: u64,
    /// RTP packets expected (from sequence numbers) and received, over its streams.
    pub expected_received: (u64, u64),
    /// Video frames reassembled.
    pub video_frames: u64,
    /// Video codec last seen.
    pub video_codec: Option<String>,
    /// Audio packets decoded.
    pub audio_frames: u64,
    /// Audio frames concealed.
    pub audio_concealed: u64,
    /// Speaking now (the mixer's level).
    pub speaking: bool,
    /// It said BYE.
    pub said_bye: bool,
    /// Packets none of its media keys authenticated (dropped before the receiver).
    pub decrypt_failed: u64,
}

/// Everything received so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiveCounters {
    /// Bytes received through the tunnel.
    pub bytes: u64,
    /// Per participant.
    pub remotes: Vec<RemoteCounters>,
}

/// One other participant as this box receives it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RemoteStatus {
    /// Participant id.
    pub id: String,
    /// Room name.
    pub room: String,
    /// The (S,G) joined for it.
    pub channel: String,
    /// Its totals.
    pub counters: RemoteCounters,
    /// Loss in percent.
    pub loss_percent: f32,
    /// Its microphone is muted (from the roster).
    pub muted: bool,
}

/// The session's status.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionStatus {
    /// The phase.
    pub phase: SessionPhase,
    /// Our participant id while joined.
    pub participant: Option<String>,
    /// Rooms in the meeting (us included), in join order.
    pub roster: Vec<String>,
    /// Roster version.
    pub roster_version: u64,
    /// The AMT relay in use (as configured or as the service named it).
    pub relay: String,
    /// The AMT gateway's state; `None` before a gateway runs.
    pub gateway: Option<GatewayState>,
    /// Microphone muted.
    pub muted: bool,
    /// Recent problems, newest last (at most 10, no repeat in a row).
    pub errors: Vec<String>,
    /// Send bitrate over the last second or more.
    pub send_kbps: u32,
    /// Video and audio RTP packets sent.
    pub packets_sent: (u64, u64),
    /// Video frames sent.
    pub video_frames_sent: u64,
    /// Missing devices.
    pub missing: Vec<String>,
    /// Encoder label and reason.
    pub encoder: Option<(String, String)>,
    /// The other participants being received, in roster order.
    pub others: Vec<RemoteStatus>,
    /// Receive bitrate over the last second or more.
    pub recv_kbps: u32,
    /// Loss over every stream received.
    pub loss_percent: f32,
}

impl SessionStatus {
    pub(crate) fn new(muted: bool) -> Self {
        Self {
            phase: SessionPhase::Joining,
            participant: None,
            roster: Vec::new(),
            roster_version: 0,
            relay: String::new(),
            gateway: None,
            muted,
            errors: Vec::new(),
            send_kbps: 0,
            packets_sent: (0, 0),
            video_frames_sent: 0,
            missing: Vec::new(),
            encoder: None,
            others: Vec::new(),
            recv_kbps: 0,
            loss_percent: 0.0,
        }
    }

    /// Records a problem (logged; the last 10 kept, a repeat of the last one not added).
    pub(crate) fn error(&mut self, msg: String) {
        tracing::warn!("{msg}");
        if self.errors.last() != Some(&msg) {
            self.errors.push(msg);
        }
        if self.errors.len() > 10 {
            self.errors.remove(0);
        }
    }
}

/// `expected - received` in percent of `expected` (0 when nothing was expected).
pub(crate) fn loss_percent(expected: u64, received: u64) -> f32 {
    if expected == 0 {
        0.0
    } else {
        (expected.saturating_sub(received) as f32 * 100.0 / expected as f32).min(100.0)
    }
}
