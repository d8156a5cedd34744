//! The one error type of the meeting crate.

use thiserror::Error;

/// Errors of the meeting service, its control protocol and the configuration.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MeetingError {
    /// The request named a meeting this service does not hold.
    #[error("no meeting named {0:?}")]
    UnknownMeeting(String),
    /// The access token did not match the meeting's.
    #[error("wrong access token for meeting {0:?}")]
    WrongToken(String),
    /// The participant id is not (or no longer) in the meeting.
    #[error("no participant {0:?} in this meeting")]
    UnknownParticipant(String),
    /// No participant of the meeting has this room name.
    #[error("no room {room:?} in this meeting (rooms present: {present})")]
    UnknownRoom {
        /// The name asked for.
        room: String,
        /// The rooms in the meeting, comma-separated (or `none`).
        present: String,
    },
    /// A configured limit would be exceeded.
    #[error("limit reached: {0}")]
    Limit(String),
    /// The group ranges are exhausted.
    #[error("no free multicast group left in {0}")]
    PoolExhausted(String),
    /// A control message could not be parsed.
    #[error("bad control message: {0}")]
    BadRequest(String),
    /// A control message is not complete yet (more bytes are needed).
    #[error("incomplete control message")]
    Incomplete,
    /// A response from the meeting service could not be understood.
    #[error("bad response from the meeting service: {0}")]
    BadResponse(String),
    /// The meeting service answered with an error status.
    #[error("meeting service refused ({status}): {message}")]
    Refused {
        /// HTTP status code.
        status: u16,
        /// The service's explanation.
        message: String,
    },
    /// The meeting service's certificate is not the pinned one.
    #[error("the meeting service's certificate is {got}, not the configured fingerprint {expected}")]
    FingerprintMismatch {
        /// The configured fingerprint, `sha256:HEX`.
        expected: String,
        /// The certificate the service presented, `sha256:HEX`.
        got: String,
    },
    /// Making or loading a TLS certificate or configuration failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// A configuration value is invalid (used outside the line-aware config checker).
    #[error("invalid setting: {0}")]
    Invalid(String),
}
