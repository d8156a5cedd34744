//! The meeting control protocol: HTTP/1.1 (over TLS, or plain on loopback) with JSON bodies, one
//! request per connection. The `roomcast server` driver leaves the HTTP framing to hyper and
//! hands each request's method, target, credentials and body to [`route`]; [`parse_request`]
//! does the same from raw bytes (tests, fuzzing, benches).
//!
//! | request | meaning |
//! | --- | --- |
//! | `GET /v1/health` | liveness |
//! | `POST /v1/meetings/{m}/participants` body `{"room":..,"caps":{..}}` | join; returns SSRCs, groups, where to send RTP |
//! | `DELETE /v1/meetings/{m}/participants/{p}` | leave |
//! | `POST /v1/meetings/{m}/participants/{p}/keepalive` [body `{"muted":true}`] | I am still here (and my microphone's state) |
//! | `GET /v1/meetings/{m}/roster[?since=V][&participant=P]` | roster (JSON); with `since`, waits until the version passes V; with `participant` (and its secret) the members' media keys are included |
//! | `PUT /v1/meetings/{m}/participants/{p}/key` body `{"key":{"id":N,"key":HEX}}` | a sender's new media key (rekey) |
//! | `GET /v1/meetings/{m}/participants/{p}/sdp[?family=ipv6]` | a participant's SDP (`application/sdp`) |
//! | `GET /v1/meetings/{m}/participants/{p}/sdp?forward=ADDR:PORT&media=audio` | SDP for a player behind `roomcast gateway --forward ADDR:PORT` (one stream) |
//! | `GET /v1/meetings/{m}/rooms/{name}/sdp[?...]` | the same by room name (URL-encoded), for the room that joined last under that name |
//! | `GET /` | a short text page naming these endpoints |
//!
//! Every request but health and `GET /` carries the meeting's token as `Authorization: Bearer TOKEN` (or
//! `?token=TOKEN`, for players that fetch an SDP by URL); leave and keepalive also carry the
//! participant's secret from the join reply as `X-Roomcast-Secret: SECRET`. Parsing takes
//! untrusted bytes and never panics; requests are bounded (8 KiB of headers, 16 KiB of body).

use serde::Serialize;

use crate::roster::{Family, JoinRequest, KeepaliveRequest, KeyRequest, SrtpKey};
use crate::token::Token;
use crate::MeetingError;

/// What `GET /` answers: the endpoints, for someone pointing a browser or curl at the service.
pub const INDEX_PAGE: &str = "\
roomcast meeting service: HTTP/1.1 + JSON control API.
Every request but health and this page carries the meeting's token: `Authorization: Bearer TOKEN` (or ?token=TOKEN);
leave and keepalive also the participant's secret from the join reply: `X-Roomcast-Secret: SECRET`.

GET    /v1/health                                      liveness
POST   /v1/meetings/{m}/participants                   join: body {\"room\":NAME,\"caps\":{...}}
DELETE /v1/meetings/{m}/participants/{p}               leave
POST   /v1/meetings/{m}/participants/{p}/keepalive     I am still here [body {\"muted\":BOOL}: mute state]
GET    /v1/meetings/{m}/roster[?since=V]               the roster (JSON); with since, waits for a newer one;
                                                       [&participant=P] with P's secret: with the media keys
PUT    /v1/meetings/{m}/participants/{p}/key           a new media key: body {\"key\":{\"id\":N,\"key\":HEX}}
GET    /v1/meetings/{m}/participants/{p}/sdp           a participant's SDP ([?family=ipv6],
                                                       [?forward=ADDR:PORT&media=audio|video] for roomcast gateway)
GET    /v1/meetings/{m}/rooms/{name}/sdp               the same by room name (URL-encoded)

Example: curl --cacert CERT.pem -H 'Authorization: Bearer TOKEN' https://HOST:8470/v1/meetings/ID/roster
";

/// Most bytes of request head accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Most bytes of request body accepted.
pub const MAX_BODY: usize = 16 * 1024;

/// A parsed control request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlRequest {
    /// `GET /v1/health`.
    Health,
    /// `GET /`: a page naming the endpoints.
    Index,
    /// Join a meeting.
    Join {
        /// Meeting id.
        meeting: String,
        /// Token presented.
        token: Token,
        /// Room and capabilities.
        body: JoinRequest,
    },
    /// Leave.
    Leave {
        /// Meeting id.
        meeting: String,
        /// Token presented.
        token: Token,
        /// Participant id.
        participant: String,
        /// The participant's secret (`X-Roomcast-Secret`).
        secret: Option<Token>,
    },
    /// Keep a participant alive.
    Keepalive {
        /// Meeting id.
        meeting: String,
        /// Token presented.
        token: Token,
        /// Participant id.
        participant: String,
        /// The participant's secret (`X-Roomcast-Secret`).
        secret: Option<Token>,
        /// Its state, when the keepalive has a body (`{"muted":true}`).
        body: KeepaliveRequest,
    },
    /// Fetch the roster, optionally waiting for a version newer than `since`.
    Roster {
        /// Meeting id.
        meeting: String,
        /// Token presented.
        token: Token,
        /// Wait for a version past this one.
        since: Option<u64>,
        /// The participant asking (`?participant=ID`): with its secret, the answer carries keys.
        participant: Option<String>,
        /// The participant's secret (`X-Roomcast-Secret`).
        secret: Option<Token>,
    },
    /// A sender's new media key.
    SetKey {
        /// Meeting id.
        meeting: String,
        /// Token presented.
        token: Token,
        /// Participant id.
        participant: String,
        /// The participant's secret (`X-Roomcast-Secret`).
        secret: Option<Token>,
        /// The new key.
        key: SrtpKey,
    },
    /// Fetch a participant's SDP.
    Sdp {
        /// Meeting id.
        meeting: String,
        /// Token presented.
        token: Token,
        /// Whose: a participant id or a room name.
        participant: Who,
        /// Which family's (S,G).
        family: Family,
        /// A unicast SDP for one stream forwarded to this address instead.
        forward: Option<(std::net::SocketAddr, Media)>,
    },
}

/// A participant named by its id or by its room's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// The participant id.
    Id(String),
    /// The room name (the participant that joined last under that name).
    Room(String),
}

/// One of a participant's streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// The video stream.
    Video,
    /// The audio stream.
    Audio,
}

/// What the service answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A JSON body with a status.
    Json {
        /// HTTP status.
        status: u16,
        /// Serialized JSON.
        body: String,
    },
    /// An SDP body (200).
    Sdp(String),
    /// A plain text body (200).
    Text(String),
    /// Long poll: the driver waits until the roster version passes `since` (or a timeout),
    /// then asks again without `since`.
    WaitRoster {
        /// Meeting id.
        meeting: String,
        /// Version the client has.
        since: u64,
        /// Answer with the media keys (the asker proved it is a participant).
        keys: bool,
    },
}

impl Reply {
    /// A JSON reply.
    pub fn json<T: Serialize>(status: u16, value: &T) -> Self {
        Reply::Json { status, body: serde_json::to_string(value).unwrap_or_else(|_| "{}".into()) }
    }

    /// The HTTP response bytes (not valid for `WaitRoster`, which yields a 204).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Reply::Json { status, body } => encode_response(*status, "application/json", body.as_bytes()),
            Reply::Sdp(body) => encode_response(200, "application/sdp", body.as_bytes()),
            Reply::Text(body) => encode_response(200, "text/plain; charset=utf-8", body.as_bytes()),
            Reply::WaitRoster { .. } => encode_response(204, "application/json", b""),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// An HTTP/1.1 response with `Connection: close`.
pub fn encode_response(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason(status),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A bad request reply for a parse error (to send before closing).
pub fn error_response(e: &MeetingError) -> Vec<u8> {
    let status = match e {
        MeetingError::Limit(_) => 413,
        _ => 400,
    };
    let body = serde_json::json!({ "error": e.to_string() }).to_string();
    encode_response(status, "application/json", body.as_bytes())
}

fn bad(msg: impl Into<String>) -> MeetingError {
    MeetingError::BadRequest(msg.into())
}

/// Decodes `%XX` escapes and `+` (a query value); invalid escapes are an error.
fn percent_decode(s: &str) -> Result<String, MeetingError> {
    decode_escapes(s, true)
}

/// Decodes `%XX` escapes; `plus_is_space` for query values (in a path `+` is itself).
fn decode_escapes(s: &str, plus_is_space: bool) -> Result<String, MeetingError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3).ok_or_else(|| bad("truncated % escape"))?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad("bad % escape"))?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad("bad % escape"))?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad("escaped text is not UTF-8"))
}

/// A room name in a path (URL-encoded, e.g. `Blue%20room`); the service checks its length.
fn room_segment(s: &str) -> Result<String, MeetingError> {
    let room = decode_escapes(s, false)?;
    if room.is_empty() || room.chars().count() > 64 || room.chars().any(char::is_control) {
        return Err(bad("room name in path must be 1 to 64 printable characters"));
    }
    Ok(room)
}

/// An id in a path: letters, digits, `-`, `_`, `.` (not first); 1 to 64 characters.
fn id_segment(s: &str) -> Result<String, MeetingError> {
    if s.is_empty()
        || s.starts_with('.')
        || s.len() > 64
        || !s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return Err(bad(format!("bad id in path: {:?}", s.chars().take(64).collect::<String>())));
    }
    Ok(s.to_string())
}

/// The parts of an HTTP request the control protocol reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct Head<'a> {
    /// `GET`, `POST`, `DELETE`.
    pub method: &'a str,
    /// Path and query, e.g. `/v1/meetings/demo/roster?since=3`.
    pub target: &'a str,
    /// The `Authorization` header's value.
    pub authorization: Option<&'a [u8]>,
    /// The `X-Roomcast-Secret` header's value.
    pub secret: Option<&'a [u8]>,
}

/// The header carrying a participant's secret.
pub const SECRET_HEADER: &str = "x-roomcast-secret";

/// Parses one request from the start of `buf`. Returns the request and the bytes it used;
/// [`MeetingError::Incomplete`] when more bytes are needed.
pub fn parse_request(buf: &[u8]) -> Result<(ControlRequest, usize), MeetingError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_HEAD {
                Err(MeetingError::Limit("request head too large".into()))
            } else {
                Err(MeetingError::Incomplete)
            };
        }
        Err(e) => return Err(bad(format!("HTTP: {e}"))),
    };
    if head_len > MAX_HEAD {
        return Err(MeetingError::Limit("request head too large".into()));
    }
    let mut head = Head {
        method: req.method.ok_or_else(|| bad("no method"))?,
        target: req.path.ok_or_else(|| bad("no path"))?,
        ..Head::default()
    };
    let mut content_length = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            if content_length.is_some() {
                return Err(bad("more than one Content-Length"));
            }
            let v = std::str::from_utf8(h.value).map_err(|_| bad("bad Content-Length"))?;
            content_length = Some(v.trim().parse::<usize>().map_err(|_| bad("bad Content-Length"))?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad("Transfer-Encoding is not supported; send Content-Length"));
        } else if h.name.eq_ignore_ascii_case("authorization") {
            head.authorization = Some(h.value);
        } else if h.name.eq_ignore_ascii_case(SECRET_HEADER) {
            head.secret = Some(h.value);
        }
    }
    let content_length = content_length.unwrap_or(0);
    if content_length > MAX_BODY {
        return Err(MeetingError::Limit("request body too large".into()));
    }
    let total = head_len.checked_add(content_length).ok_or_else(|| bad("length overflow"))?;
    let body = match buf.get(head_len..total) {
        Some(b) => b,
        None => return Err(MeetingError::Incomplete),
    };
    Ok((route(&head, body)?, total))
}

/// `Bearer TOKEN` of an `Authorization` header.
fn bearer(value: &[u8]) -> Result<Token, MeetingError> {
    let v = std::str::from_utf8(value).map_err(|_| bad("bad Authorization"))?;
    let t = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .ok_or_else(|| bad("Authorization must be `Bearer TOKEN`"))?;
    Ok(Token::new(t.trim()))
}

/// Turns one request (its head and its whole body, at most [`MAX_BODY`]) into a
/// [`ControlRequest`]: the routes of the table above, with their path and query values
/// checked. Never panics.
pub fn route(head: &Head<'_>, body: &[u8]) -> Result<ControlRequest, MeetingError> {
    if body.len() > MAX_BODY {
        return Err(MeetingError::Limit("request body too large".into()));
    }
    let method = head.method;
    let target = head.target;
    // A bad Authorization only matters to the requests that need a token.
    let header_token = head.authorization.map(bearer);
    let mut query_token = None;
    let secret = match head.secret {
        Some(v) => Some(Token::new(std::str::from_utf8(v).map_err(|_| bad("bad X-Roomcast-Secret"))?.trim())),
        None => None,
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut since = None;
    let mut family = Family::Ipv4;
    let mut forward = None;
    let mut media = None;
    let mut asker = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v)?;
        match k {
            "token" => query_token = Some(Token::new(v)),
            "participant" => asker = Some(id_segment(&v)?),
            "since" => since = Some(v.parse::<u64>().map_err(|_| bad("since must be a number"))?),
            "forward" => {
                forward = Some(v.parse::<std::net::SocketAddr>().map_err(|_| bad("forward must be ADDR:PORT"))?)
            }
            "media" => {
                media = Some(match v.as_str() {
                    "audio" => Media::Audio,
                    "video" => Media::Video,
                    _ => return Err(bad("media must be audio or video")),
                })
            }
            "family" => {
                family = match v.as_str() {
                    "ipv4" => Family::Ipv4,
                    "ipv6" => Family::Ipv6,
                    _ => return Err(bad("family must be ipv4 or ipv6")),
                }
            }
            _ => {}
        }
    }
    let token = || match &header_token {
        Some(t) => t.clone(),
        None => query_token.clone().ok_or_else(|| bad("missing token (Authorization: Bearer TOKEN)")),
    };
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let request = match (method, segs.as_slice()) {
        ("GET", ["v1", "health"]) => ControlRequest::Health,
        ("POST", ["v1", "meetings", m, "participants"]) => {
            let body: JoinRequest = serde_json::from_slice(body).map_err(|e| bad(format!("join body: {e}")))?;
            ControlRequest::Join { meeting: id_segment(m)?, token: token()?, body }
        }
        ("DELETE", ["v1", "meetings", m, "participants", p]) => ControlRequest::Leave {
            meeting: id_segment(m)?,
            token: token()?,
            participant: id_segment(p)?,
            secret: secret.clone(),
        },
        ("POST", ["v1", "meetings", m, "participants", p, "keepalive"]) => ControlRequest::Keepalive {
            meeting: id_segment(m)?,
            token: token()?,
            participant: id_segment(p)?,
            secret: secret.clone(),
            body: if body.iter().all(u8::is_ascii_whitespace) {
                KeepaliveRequest::default()
            } else {
                serde_json::from_slice(body).map_err(|e| bad(format!("keepalive body: {e}")))?
            },
        },
        ("GET", ["v1", "meetings", m, "roster"]) => {
            ControlRequest::Roster { meeting: id_segment(m)?, token: token()?, since, participant: asker, secret }
        }
        ("PUT", ["v1", "meetings", m, "participants", p, "key"]) => {
            let body: KeyRequest = serde_json::from_slice(body).map_err(|e| bad(format!("key body: {e}")))?;
            ControlRequest::SetKey {
                meeting: id_segment(m)?,
                token: token()?,
                participant: id_segment(p)?,
                secret: secret.clone(),
                key: body.key,
            }
        }
        ("GET", ["v1", "meetings", m, kind @ ("participants" | "rooms"), p, "sdp"]) => ControlRequest::Sdp {
            meeting: id_segment(m)?,
            token: token()?,
            participant: if *kind == "rooms" { Who::Room(room_segment(p)?) } else { Who::Id(id_segment(p)?) },
            family,
            forward: match (forward, media) {
                (Some(f), Some(m)) => Some((f, m)),
                (None, None) => None,
                _ => return Err(bad("forward and media go together: forward=ADDR:PORT&media=audio|video")),
            },
        },
        ("GET", []) => ControlRequest::Index,
        _ => return Err(bad(format!("no such request: {method} {}", path.chars().take(100).collect::<String>()))),
    };
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_join() {
        let body = r#"{"room":"Blue room","caps":{"audio":{"codec":"opus","payload_type":111,"channels":1}}}"#;
        let raw = format!(
            "POST /v1/meetings/demo/participants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let (req, used) = parse_request(raw.as_bytes()).unwrap();
        assert_eq!(used, raw.len());
        match req {
            ControlRequest::Join { meeting, token, body } => {
                assert_eq!(meeting, "demo");
                assert_eq!(token.expose(), "s3cret");
                assert_eq!(body.room, "Blue room");
                assert_eq!(body.caps.audio.unwrap().payload_type, 111);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn incomplete_and_bad_requests() {
        let raw = b"POST /v1/meetings/demo/participants HTTP/1.1\r\nAuthorization: Bearer t\r\nContent-Length: 10\r\n\r\n{\"ro";
        assert_eq!(parse_request(raw), Err(MeetingError::Incomplete));
        assert_eq!(parse_request(b"GET /v1/hea"), Err(MeetingError::Incomplete));
        assert!(matches!(
            parse_request(b"GET /v1/meetings/demo/roster HTTP/1.1\r\n\r\n"),
            Err(MeetingError::BadRequest(_))
        ));
        assert!(matches!(
            parse_request(b"GET /v1/meetings/../roster?token=a HTTP/1.1\r\n\r\n"),
            Err(MeetingError::BadRequest(_))
        ));
        assert!(matches!(parse_request(b"\x00\x01\x02\r\n\r\n"), Err(MeetingError::BadRequest(_))));
        let big = format!("POST /v1/meetings/d/participants HTTP/1.1\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1);
        assert!(matches!(parse_request(big.as_bytes()), Err(MeetingError::Limit(_))));
    }

    #[test]
    fn parses_roster_sdp_leave_with_query_tokens() {
        let (r, _) = parse_request(b"GET /v1/meetings/demo/roster?since=4&token=a%20b HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(
            r,
            ControlRequest::Roster {
                meeting: "demo".into(),
                token: "a b".into(),
                since: Some(4),
                participant: None,
                secret: None
            }
        );
        let dup = b"GET /v1/health HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(parse_request(dup), Err(MeetingError::BadRequest(m)) if m.contains("Content-Length")));
        let (r, _) = parse_request(
            b"POST /v1/meetings/demo/participants/ab12/keepalive HTTP/1.1\r\nAuthorization: Bearer t\r\nX-Roomcast-Secret: 00ff\r\n\r\n",
        )
        .unwrap();
        assert!(matches!(r, ControlRequest::Keepalive { secret: Some(ref s), body, .. }
            if s.expose() == "00ff" && body.muted.is_none()));
        let (r, _) = parse_request(
            b"POST /v1/meetings/demo/participants/ab12/keepalive HTTP/1.1\r\nAuthorization: Bearer t\r\nContent-Length: 14\r\n\r\n{\"muted\":true}",
        )
        .unwrap();
        assert!(matches!(r, ControlRequest::Keepalive { body: KeepaliveRequest { muted: Some(true) }, .. }), "{r:?}");
        assert!(parse_request(
            b"POST /v1/meetings/demo/participants/ab12/keepalive HTTP/1.1\r\nAuthorization: Bearer t\r\nContent-Length: 3\r\n\r\n{x}",
        )
        .is_err());
        let (r, _) = parse_request(b"GET /v1/health HTTP/1.1\r\nAuthorization: Basic xyz\r\n\r\n").unwrap();
        assert_eq!(r, ControlRequest::Health, "health needs no token, a bad one is no error");
        assert!(parse_request(b"GET /v1/meetings/d/roster?token=t HTTP/1.1\r\nAuthorization: Basic x\r\n\r\n").is_err());
        let (r, _) = parse_request(
            b"GET /v1/meetings/demo/participants/ab12/sdp?family=ipv6 HTTP/1.1\r\nAuthorization: Bearer t\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            r,
            ControlRequest::Sdp {
                meeting: "demo".into(),
                token: "t".into(),
                participant: Who::Id("ab12".into()),
                family: Family::Ipv6,
                forward: None
            }
        );
        let (r, _) = parse_request(
            b"GET /v1/meetings/demo/participants/ab12/sdp?token=t&forward=127.0.0.1:4000&media=audio HTTP/1.1\r\n\r\n",
        )
        .unwrap();
        assert!(matches!(r, ControlRequest::Sdp { forward: Some((a, Media::Audio)), .. } if a.port() == 4000));
        assert!(parse_request(
            b"GET /v1/meetings/demo/participants/ab12/sdp?token=t&forward=127.0.0.1:4000 HTTP/1.1\r\n\r\n"
        )
        .is_err());
        let (r, _) = parse_request(b"GET /v1/meetings/demo/rooms/Blue%20room+1/sdp?token=t HTTP/1.1\r\n\r\n").unwrap();
        assert!(matches!(r, ControlRequest::Sdp { participant: Who::Room(ref n), .. } if n == "Blue room+1"));
        assert!(parse_request(b"GET /v1/meetings/demo/rooms/%0A/sdp?token=t HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_request(b"GET /v1/meetings/demo/rooms/%ff/sdp?token=t HTTP/1.1\r\n\r\n").is_err());
        let (r, _) = parse_request(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(r, ControlRequest::Index);
        let (r, _) =
            parse_request(b"DELETE /v1/meetings/demo/participants/ab12 HTTP/1.1\r\nAuthorization: Bearer t\r\n\r\n")
                .unwrap();
        assert!(matches!(r, ControlRequest::Leave { .. }));
    }

    #[test]
    fn responses_are_http() {
        let r = Reply::json(403, &serde_json::json!({"error": "no"})).encode();
        let s = String::from_utf8(r).unwrap();
        assert!(s.starts_with("HTTP/1.1 403 Forbidden\r\n"));
        assert!(s.ends_with("\r\n\r\n{\"error\":\"no\"}"));
    }
}
