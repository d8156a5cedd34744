//! The participant's side of the control protocol ([`crate::control`]): request bytes to send
//! to the meeting service and parsing of its responses (untrusted bytes, never panics).

use serde::de::DeserializeOwned;

use crate::roster::{Caps, ErrorBody, JoinReply, JoinRequest, KeepaliveRequest, KeyRequest, Roster, SrtpKey};
use crate::MeetingError;

/// One control request, before the transport: the box's client sends it with hyper, the
/// tools below encode it as HTTP/1.1 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// HTTP method.
    pub method: &'static str,
    /// Path and query.
    pub path: String,
    /// JSON body.
    pub body: Option<String>,
}

impl Call {
    /// A join request.
    pub fn join(meeting: &str, room: &str, caps: &Caps) -> Self {
        Self::join_keyed(meeting, room, caps, None)
    }

    /// A join request carrying the box's media key (the body holds key material: do not log it).
    pub fn join_keyed(meeting: &str, room: &str, caps: &Caps, key: Option<&SrtpKey>) -> Self {
        let req = JoinRequest { room: room.to_string(), caps: caps.clone(), key: key.cloned(), muted: false };
        let body = serde_json::to_string(&req).unwrap_or_default();
        Self { method: "POST", path: format!("/v1/meetings/{meeting}/participants"), body: Some(body) }
    }

    /// A new media key (send the participant's secret with it).
    pub fn set_key(meeting: &str, participant: &str, key: &SrtpKey) -> Self {
        let body = serde_json::to_string(&KeyRequest { key: key.clone() }).unwrap_or_default();
        Self { method: "PUT", path: format!("/v1/meetings/{meeting}/participants/{participant}/key"), body: Some(body) }
    }

    /// A participant's roster request (send its secret): the answer carries the media keys.
    pub fn roster_as(meeting: &str, since: Option<u64>, participant: &str) -> Self {
        let q = since.map(|v| format!("&since={v}")).unwrap_or_default();
        Self { method: "GET", path: format!("/v1/meetings/{meeting}/roster?participant={participant}{q}"), body: None }
    }

    /// A leave request (send the participant's secret with it).
    pub fn leave(meeting: &str, participant: &str) -> Self {
        Self { method: "DELETE", path: format!("/v1/meetings/{meeting}/participants/{participant}"), body: None }
    }

    /// A keepalive (send the participant's secret with it).
    pub fn keepalive(meeting: &str, participant: &str) -> Self {
        Self::keepalive_with(meeting, participant, KeepaliveRequest::default())
    }

    /// A keepalive that also tells the participant's state (its mute), shown to the others in
    /// the roster (send the participant's secret with it).
    pub fn keepalive_with(meeting: &str, participant: &str, state: KeepaliveRequest) -> Self {
        let body = (state != KeepaliveRequest::default()).then(|| serde_json::to_string(&state).unwrap_or_default());
        Self { method: "POST", path: format!("/v1/meetings/{meeting}/participants/{participant}/keepalive"), body }
    }

    /// A roster request; with `since`, the service holds it until the version passes `since`.
    pub fn roster(meeting: &str, since: Option<u64>) -> Self {
        let q = since.map(|v| format!("?since={v}")).unwrap_or_default();
        Self { method: "GET", path: format!("/v1/meetings/{meeting}/roster{q}"), body: None }
    }

    /// A room's SDP by its name (see [`room_sdp`]).
    pub fn room_sdp(meeting: &str, room: &str, forward: Option<(&str, &str)>) -> Self {
        let q = forward.map(|(addr, media)| format!("?forward={addr}&media={media}")).unwrap_or_default();
        Self {
            method: "GET",
            path: format!("/v1/meetings/{meeting}/rooms/{}/sdp{q}", encode_segment(room)),
            body: None,
        }
    }

    /// The HTTP/1.1 request bytes (`Connection: close`).
    pub fn encode(&self, host: &str, token: &str, secret: Option<&str>) -> Vec<u8> {
        let body = self.body.as_deref().unwrap_or("");
        let secret = secret.map(|s| format!("X-Roomcast-Secret: {s}\r\n")).unwrap_or_default();
        format!(
            "{} {} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n{secret}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.method,
            self.path,
            body.len()
        )
        .into_bytes()
    }
}

/// A join request.
pub fn join(host: &str, meeting: &str, token: &str, room: &str, caps: &Caps) -> Vec<u8> {
    Call::join(meeting, room, caps).encode(host, token, None)
}

/// A leave request with the participant's secret.
pub fn leave(host: &str, meeting: &str, token: &str, participant: &str, secret: &str) -> Vec<u8> {
    Call::leave(meeting, participant).encode(host, token, Some(secret))
}

/// A keepalive with the participant's secret.
pub fn keepalive(host: &str, meeting: &str, token: &str, participant: &str, secret: &str) -> Vec<u8> {
    Call::keepalive(meeting, participant).encode(host, token, Some(secret))
}

/// A roster request; with `since`, the service holds it until the version passes `since`.
pub fn roster(host: &str, meeting: &str, token: &str, since: Option<u64>) -> Vec<u8> {
    Call::roster(meeting, since).encode(host, token, None)
}

/// A room's SDP by its name, for a player behind `roomcast gateway --forward ADDR:PORT`
/// (`forward` is `Some((ADDR:PORT, "audio"|"video"))`) or of its (S,G).
pub fn room_sdp(host: &str, meeting: &str, token: &str, room: &str, forward: Option<(&str, &str)>) -> Vec<u8> {
    Call::room_sdp(meeting, room, forward).encode(host, token, None)
}

/// Percent-encodes everything but unreserved characters (RFC 3986) of a path segment.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A complete HTTP response: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// Parses a whole response (the service closes the connection after it).
pub fn parse_response(buf: &[u8]) -> Result<Response, MeetingError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(MeetingError::Incomplete),
        Err(e) => return Err(MeetingError::BadResponse(e.to_string())),
    };
    let status = resp.code.ok_or_else(|| MeetingError::BadResponse("no status".into()))?;
    let mut len = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            len = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<usize>().ok());
        }
    }
    let rest = buf.get(head..).unwrap_or_default();
    let body = match len {
        Some(n) => rest.get(..n).ok_or(MeetingError::Incomplete)?,
        None => rest,
    };
    Ok(Response { status, body: body.to_vec() })
}

/// Decodes a 200's JSON body, or turns an error status into [`MeetingError::Refused`].
pub fn decode<T: DeserializeOwned>(resp: &Response) -> Result<T, MeetingError> {
    if resp.status != 200 {
        let message = serde_json::from_slice::<ErrorBody>(&resp.body)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&resp.body).into_owned());
        return Err(MeetingError::Refused { status: resp.status, message });
    }
    serde_json::from_slice(&resp.body).map_err(|e| MeetingError::BadResponse(e.to_string()))
}

/// Decodes a join reply.
pub fn decode_join(resp: &Response) -> Result<JoinReply, MeetingError> {
    decode(resp)
}

/// Decodes a roster; `Ok(None)` for a long poll that ended without change (204).
pub fn decode_roster(resp: &Response) -> Result<Option<Roster>, MeetingError> {
    if resp.status == 204 {
        return Ok(None);
    }
    decode(resp).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{encode_response, parse_request, ControlRequest};

    #[test]
    fn client_requests_parse_on_the_service_side() {
        let caps = Caps::default();
        let (r, _) = parse_request(&join("h", "demo", "tok", "Room", &caps)).unwrap();
        assert!(matches!(r, ControlRequest::Join { ref token, .. } if token.expose() == "tok"));
        let (r, _) = parse_request(&roster("h", "demo", "tok", Some(3))).unwrap();
        assert_eq!(
            r,
            ControlRequest::Roster {
                meeting: "demo".into(),
                token: "tok".into(),
                since: Some(3),
                participant: None,
                secret: None
            }
        );
        let (r, _) = parse_request(&leave("h", "demo", "tok", "abc", "5ec")).unwrap();
        assert!(matches!(r, ControlRequest::Leave { secret: Some(ref s), .. } if s.expose() == "5ec"));
        let (r, _) = parse_request(&keepalive("h", "demo", "tok", "abc", "5ec")).unwrap();
        assert!(matches!(r, ControlRequest::Keepalive { secret: Some(_), body: KeepaliveRequest { muted: None }, .. }));
        let muted = Call::keepalive_with("demo", "abc", KeepaliveRequest { muted: Some(true) });
        let (r, _) = parse_request(&muted.encode("h", "tok", Some("5ec"))).unwrap();
        assert!(matches!(r, ControlRequest::Keepalive { body: KeepaliveRequest { muted: Some(true) }, .. }), "{r:?}");
        let (r, _) =
            parse_request(&room_sdp("h", "demo", "tok", "Salle 2/B é", Some(("127.0.0.1:4000", "audio")))).unwrap();
        assert!(
            matches!(r, ControlRequest::Sdp { participant: crate::control::Who::Room(ref n), forward: Some(_), .. }
            if n == "Salle 2/B é")
        );
    }

    #[test]
    fn errors_become_refused() {
        let raw = encode_response(403, "application/json", br#"{"error":"wrong access token"}"#);
        let resp = parse_response(&raw).unwrap();
        assert_eq!(
            decode_join(&resp),
            Err(MeetingError::Refused { status: 403, message: "wrong access token".into() })
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
    }
}
