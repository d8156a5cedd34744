//! The data every participant learns about the meeting: the roster of participants, each with
//! its SSRCs, its (S,G) per address family, its ports and the SDP of its streams. These types
//! are the JSON bodies of the control protocol (see [`crate::control`]).

use serde::{Deserialize, Serialize};

/// The (S,G) of the roster is the AMT crate's validated [`roomcast_amt::SourceGroup`]
/// (unicast source, SSM group of the same family), written `S@G` in the JSON bodies.
pub use roomcast_amt::SourceGroup;

/// A sender's media key (SRTP AEAD_AES_128_GCM master key and salt, with a key id); zeroized
/// on drop, redacted `Debug`, `{"id":N,"key":"HEX"}` in JSON.
pub use roomcast_crypt::SrtpKey;

/// A participant's channels: one IPv4 and one IPv6 (S,G) carrying the same streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPair {
    /// The IPv4 (S,G) (group in 232.0.0.0/8).
    pub ipv4: SourceGroup,
    /// The IPv6 (S,G) (group in ff3x::/32).
    pub ipv6: SourceGroup,
}

impl GroupPair {
    /// The (S,G) of one family.
    pub fn get(&self, family: Family) -> SourceGroup {
        match family {
            Family::Ipv4 => self.ipv4,
            Family::Ipv6 => self.ipv6,
        }
    }
}

/// An address family choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4 groups.
    #[default]
    Ipv4,
    /// IPv6 groups.
    Ipv6,
}

/// What a participant sends (it may send video, audio, or both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Caps {
    /// The video stream, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoCaps>,
    /// The audio stream, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioCaps>,
}

/// A video stream's description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoCaps {
    /// RTP encoding name: `AV1` or `H264`.
    pub codec: String,
    /// RTP payload type (96..=127).
    pub payload_type: u8,
    /// Picture width.
    pub width: u16,
    /// Picture height.
    pub height: u16,
    /// Frames per second.
    pub fps: u16,
    /// Optional `a=fmtp` parameters (e.g. H.264's `packetization-mode=1;profile-level-id=...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fmtp: Option<String>,
}

/// An audio stream's description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioCaps {
    /// RTP encoding name: `opus`.
    pub codec: String,
    /// RTP payload type (96..=127).
    pub payload_type: u8,
    /// Channels encoded (1 or 2).
    pub channels: u8,
}

/// The SSRCs the service gave a participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ssrcs {
    /// SSRC of the video stream.
    pub video: u32,
    /// SSRC of the audio stream.
    pub audio: u32,
}

/// The UDP destination ports of the streams inside each participant's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ports {
    /// Video RTP port (its RTCP on the next port).
    pub video: u16,
    /// Audio RTP port (its RTCP on the next port).
    pub audio: u16,
}

/// The SDP of a participant's streams, for each family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SdpPair {
    /// SDP describing the IPv4 (S,G).
    pub ipv4: String,
    /// SDP describing the IPv6 (S,G).
    pub ipv6: String,
}

/// One participant as everyone sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    /// The participant's id (random, 16 hex digits).
    pub id: String,
    /// The room's name.
    pub room: String,
    /// The SSRCs of its streams.
    pub ssrc: Ssrcs,
    /// Its channels.
    pub groups: GroupPair,
    /// Ports of its streams inside its groups.
    pub ports: Ports,
    /// What it sends.
    pub caps: Caps,
    /// SDP of its streams.
    pub sdp: SdpPair,
    /// Its current media key: present only in answers to a participant (join replies and
    /// rosters asked with `?participant=ID` and its secret), absent for a watch-only member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<SrtpKey>,
    /// Its microphone is muted (as it last told the service: join or keepalive).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub muted: bool,
}

/// The roster of a meeting. `version` grows by one at every change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    /// The meeting's id.
    pub meeting: String,
    /// Change counter (starts again at 1 when the service restarts: compare `epoch` first).
    pub version: u64,
    /// The service instance: a random number drawn at service start. A roster or join reply
    /// with another epoch than the one a box joined under means the service restarted and
    /// forgot the box: rejoin. 0 from a service older than the field.
    #[serde(default)]
    pub epoch: u64,
    /// The AMT relay carrying the groups, as `ADDR:PORT` (advertised; a client that reached the
    /// service at another address uses that address with this port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<String>,
    /// Participants, in order of joining.
    pub participants: Vec<ParticipantInfo>,
}

impl Roster {
    /// The participant that joined last under room name `room`.
    pub fn by_room(&self, room: &str) -> Option<&ParticipantInfo> {
        self.participants.iter().rev().find(|p| p.room == room)
    }

    /// The rooms present, comma-separated, or `none`.
    pub fn room_names(&self) -> String {
        if self.participants.is_empty() {
            return "none".into();
        }
        self.participants.iter().map(|p| p.room.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// The answer to a join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinReply {
    /// The new participant's id (used to leave and keep alive).
    pub participant: String,
    /// The participant's secret (32 hex digits, from the OS random source): send it as
    /// `X-Roomcast-Secret` with leave and keepalive. Only the participant learns it.
    #[serde(default)]
    pub secret: String,
    /// The service instance that admitted it (see [`Roster::epoch`]).
    #[serde(default)]
    pub epoch: u64,
    /// SSRCs to put in its RTP.
    pub ssrc: Ssrcs,
    /// Where to send all its RTP and RTCP (one port; the service tells streams apart by SSRC), as `ADDR:PORT`.
    pub send_rtp_to: String,
    /// The AMT relay that carries the meeting's groups, as `ADDR:PORT`.
    pub relay: String,
    /// The participant's own channels.
    pub groups: GroupPair,
    /// Ports of the streams inside the groups.
    pub ports: Ports,
    /// Send a keepalive (or RTP) at least this often, in milliseconds.
    pub keepalive_ms: u64,
    /// A participant silent this long is removed, in milliseconds.
    pub silence_timeout_ms: u64,
    /// The roster after the join.
    pub roster: Roster,
}

/// The body of a join request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The room's name (1 to 64 printable characters).
    pub room: String,
    /// What it will send.
    #[serde(default)]
    pub caps: Caps,
    /// Its media key, drawn from the OS random source (absent for a watch-only member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<SrtpKey>,
    /// It joins with its microphone muted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub muted: bool,
}

/// The body of `PUT …/participants/{p}/key`: a sender's new media key (after a rekey).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRequest {
    /// The new key (its id must be above the current one's).
    pub key: SrtpKey,
}

/// The optional body of a keepalive: the participant's state the others see in the roster.
/// A keepalive without a body (or without a field) leaves that state as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KeepaliveRequest {
    /// Its microphone is muted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted: Option<bool>,
}

/// Error body of every refused request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What was wrong.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_group_round_trips() {
        let sg: SourceGroup = "10.0.2.2@232.10.0.1".parse().unwrap();
        assert_eq!(sg.to_string(), "10.0.2.2@232.10.0.1");
        let sg6: SourceGroup = "2001:db8::1@ff3e::8000:1".parse().unwrap();
        assert_eq!(sg6.to_string(), "2001:db8::1@ff3e::8000:1");
        assert!("10.0.2.2@ff3e::1".parse::<SourceGroup>().is_err());
        assert!("nonsense".parse::<SourceGroup>().is_err());
        assert!(serde_json::from_str::<SourceGroup>("\"10.0.2.2@239.1.1.1\"").is_err(), "validated: SSM only");
        let json = serde_json::to_string(&sg).unwrap();
        assert_eq!(json, "\"10.0.2.2@232.10.0.1\"");
        assert_eq!(serde_json::from_str::<SourceGroup>(&json).unwrap(), sg);
    }
}
