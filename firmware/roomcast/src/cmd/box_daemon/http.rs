//! The box's client of the meeting service's control API: one HTTP request per TCP
//! connection (the bytes come from `roomcast_meeting::client`), read to the end, parsed.

use std::time::Duration;

use roomcast_meeting::client::{self, Response};
use roomcast_meeting::roster::{Caps, JoinReply, Roster};
use roomcast_meeting::MeetingError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a request failed.
#[derive(Debug)]
pub enum CallError {
    /// No connection or a broken exchange.
    Unreachable(String),
    /// The service answered with an error, or something we could not read.
    Service(MeetingError),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreachable(s) => write!(f, "meeting service unreachable: {s}"),
            CallError::Service(e) => write!(f, "{e}"),
        }
    }
}

/// The meeting service as the box sees it.
#[derive(Debug, Clone)]
pub struct Service {
    /// `HOST:PORT`.
    pub server: String,
    /// Meeting id.
    pub meeting: String,
    /// Access token.
    pub token: String,
}

impl Service {
    async fn call(&self, request: Vec<u8>, timeout: Duration) -> Result<Response, CallError> {
        let exchange = async {
            let mut s = TcpStream::connect(&self.server).await?;
            s.write_all(&request).await?;
            let mut buf = Vec::with_capacity(4096);
            s.read_to_end(&mut buf).await?;
            Ok::<_, std::io::Error>(buf)
        };
        let buf = match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return Err(CallError::Unreachable(format!("{}: {e}", self.server))),
            Err(_) => return Err(CallError::Unreachable(format!("{}: timed out", self.server))),
        };
        client::parse_response(&buf).map_err(CallError::Service)
    }

    fn host(&self) -> &str {
        &self.server
    }

    /// Joins as `room` sending `caps`.
    pub async fn join(&self, room: &str, caps: &Caps) -> Result<JoinReply, CallError> {
        let req = client::join(self.host(), &self.meeting, &self.token, room, caps);
        let resp = self.call(req, Duration::from_secs(5)).await?;
        client::decode_join(&resp).map_err(CallError::Service)
    }

    /// Leaves.
    pub async fn leave(&self, participant: &str) -> Result<(), CallError> {
        let req = client::leave(self.host(), &self.meeting, &self.token, participant);
        let resp = self.call(req, Duration::from_secs(2)).await?;
        client::decode::<serde_json::Value>(&resp).map(|_| ()).map_err(CallError::Service)
    }

    /// Says we are alive.
    pub async fn keepalive(&self, participant: &str) -> Result<(), CallError> {
        let req = client::keepalive(self.host(), &self.meeting, &self.token, participant);
        let resp = self.call(req, Duration::from_secs(3)).await?;
        client::decode::<serde_json::Value>(&resp).map(|_| ()).map_err(CallError::Service)
    }

    /// The roster; with `since`, waits (up to the service's long-poll time) for a newer one.
    pub async fn roster(&self, since: Option<u64>) -> Result<Option<Roster>, CallError> {
        let req = client::roster(self.host(), &self.meeting, &self.token, since);
        let resp = self.call(req, Duration::from_secs(15)).await?;
        client::decode_roster(&resp).map_err(CallError::Service)
    }
}
