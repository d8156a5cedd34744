//! The box's meeting session as a sans-IO state machine, in the shape of quinn-proto's
//! `Connection` and str0m's `Rtc`: [`BoxSession`] is fed the answers of the meeting service
//! (`handle_join_reply`, `handle_roster`, `handle_call_failed`, ...), the AMT gateway's state,
//! the sender's counters, mute presses, shutdown and time; it says what to do through
//! [`BoxSession::poll_transmit`] (requests to the meeting service), [`BoxSession::poll_event`]
//! (media and tunnel actions: start, subscribe, unsubscribe, keyframe, mute, stop) and
//! [`BoxSession::poll_timeout`] (its next deadline), and shows where it is as a value,
//! [`BoxSession::status`]. No IO, no clock, no randomness: `roomcast box` drives it.
//!
//! It is its own crate because it joins the vocabularies of two others: the meeting's roster
//! and join reply (roomcast-meeting) and the AMT gateway's state (roomcast-amt).

mod session;
mod status;

pub use session::{BoxSession, Call, CallFailure, Event, Joined, RejoinReason, SessionConfig, Transmit};
pub use status::{ReceiveCounters, RemoteCounters, RemoteStatus, SenderCounters, SessionPhase, SessionStatus};
