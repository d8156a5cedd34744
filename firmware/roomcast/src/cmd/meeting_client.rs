//! The client of the meeting service's control API (the box's, and `roomcast gateway
//! --meeting-server`'s), on hyper's HTTP/1.1 client (one
//! request per connection) over rustls: `[meeting] server = "https://HOST:PORT"` with the
//! service certificate's pinned `fingerprint` (or a `ca_file`), or plain `http://` to a loopback
//! address (or with `allow_plain_http`), with a warning. The requests and the answers' decoding
//! come from `roomcast_meeting::client`. The client keeps the participant secret of its last join
//! and sends it with leave and keepalive.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use roomcast_meeting::client::{self, Call, Response};
use roomcast_meeting::config::MeetingConfig;
use roomcast_meeting::control::SECRET_HEADER;
use roomcast_meeting::endpoint::Endpoint;
use roomcast_meeting::roster::{Caps, JoinReply, KeepaliveRequest, Roster, SrtpKey};
use roomcast_meeting::tls::{self, Fingerprint};
use roomcast_meeting::token::Token;
use roomcast_meeting::MeetingError;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Most bytes of an answer read (a roster of 16 participants is a few tens of KiB).
const MAX_ANSWER: usize = 4 << 20;

/// Why a request failed.
#[derive(Debug)]
pub enum CallError {
    /// No connection or a broken exchange (TLS errors other than a fingerprint mismatch too).
    Unreachable(String),
    /// The service answered with an error, or something we could not read.
    Service(MeetingError),
    /// The service's certificate is not the one `[meeting] fingerprint` pins.
    Fingerprint {
        /// The configured fingerprint, `sha256:HEX`.
        expected: String,
        /// The certificate the service presented, `sha256:HEX`.
        got: String,
    },
    /// `[meeting]` cannot be used as it is (plain http to another host, unreadable `ca_file`).
    Config(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreachable(s) => write!(f, "meeting service unreachable: {s}"),
            CallError::Service(e) => write!(f, "{e}"),
            CallError::Fingerprint { expected, got } => {
                write!(f, "the meeting service's certificate is {got}, not the configured fingerprint {expected}")
            }
            CallError::Config(s) => write!(f, "[meeting]: {s}"),
        }
    }
}

/// The meeting service as the box sees it.
#[derive(Debug, Clone)]
pub struct Service {
    /// `HOST:PORT` of the control API (without the scheme).
    pub server: String,
    /// Meeting id.
    pub meeting: String,
    token: Token,
    endpoint: Endpoint,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The participant id and secret of the last join.
    secret: Arc<Mutex<Option<(String, Token)>>>,
}

impl Service {
    /// A client for `[meeting]`: TLS with the pinned fingerprint or the CA file, or plain HTTP
    /// where that is allowed (loopback, or `allow_plain_http`), with a warning.
    pub fn new(m: &MeetingConfig) -> Result<Service, CallError> {
        let endpoint: Endpoint = m.server.parse().map_err(|e: MeetingError| CallError::Config(e.to_string()))?;
        let tls = if endpoint.tls {
            let cfg = match (&m.fingerprint, &m.ca_file) {
                (Some(fp), _) => {
                    let fp: Fingerprint = fp.parse().map_err(|e: MeetingError| CallError::Config(e.to_string()))?;
                    tls::pinned_client_config(fp)
                }
                (None, Some(path)) => {
                    let pem = std::fs::read(path).map_err(|e| CallError::Config(format!("ca_file {path}: {e}")))?;
                    tls::ca_client_config(&pem)
                }
                (None, None) => {
                    return Err(CallError::Config(
                        "https needs fingerprint = \"sha256:...\" (printed by roomcast server) or ca_file".into(),
                    ))
                }
            };
            Some(Arc::new(cfg.map_err(|e| CallError::Config(e.to_string()))?))
        } else if endpoint.is_loopback() {
            tracing::warn!(server = %endpoint, "plain http to the meeting service (loopback only)");
            None
        } else if m.allow_plain_http {
            tracing::warn!(server = %endpoint, "plain http to the meeting service: the token crosses the network in clear (allow_plain_http)");
            None
        } else {
            return Err(CallError::Config(format!(
                "plain http to {} would send the token in clear: use https:// with fingerprint (or allow_plain_http = true)",
                endpoint.authority()
            )));
        };
        Ok(Service {
            server: endpoint.authority(),
            meeting: m.id.clone(),
            token: Token::new(m.token.clone()),
            endpoint,
            tls,
            secret: Arc::new(Mutex::new(None)),
        })
    }

    async fn call(&self, call: Call, secret: Option<Token>, timeout: Duration) -> Result<Response, CallError> {
        let mut req = Request::builder()
            .method(call.method)
            .uri(call.path.as_str())
            .header(HOST, self.server.as_str())
            .header(AUTHORIZATION, format!("Bearer {}", self.token.expose()))
            .header(CONTENT_TYPE, "application/json");
        if let Some(s) = &secret {
            req = req.header(SECRET_HEADER, s.expose());
        }
        let req = req
            .body(Full::new(Bytes::from(call.body.unwrap_or_default())))
            .map_err(|e| CallError::Service(MeetingError::BadRequest(e.to_string())))?;
        match tokio::time::timeout(timeout, self.exchange(req)).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Unreachable(format!("{}: timed out", self.server))),
        }
    }

    async fn exchange(&self, req: Request<Full<Bytes>>) -> Result<Response, CallError> {
        let unreachable = |e: String| CallError::Unreachable(format!("{}: {e}", self.server));
        let tcp = TcpStream::connect(self.server.as_str()).await.map_err(|e| unreachable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            Some(cfg) => {
                let name = ServerName::try_from(self.endpoint.host.clone())
                    .map_err(|e| CallError::Config(format!("{}: {e}", self.endpoint.host)))?;
                let stream = TlsConnector::from(cfg.clone()).connect(name, tcp).await.map_err(|e| {
                    match tls::fingerprint_mismatch(&e) {
                        Some(m) => CallError::Fingerprint { expected: m.expected.to_string(), got: m.got.to_string() },
                        None => unreachable(format!("TLS: {e}")),
                    }
                })?;
                send(stream, req).await.map_err(unreachable)
            }
            None => send(tcp, req).await.map_err(unreachable),
        }
    }

    fn secret_for(&self, participant: &str) -> Option<Token> {
        let s = self.secret.lock().unwrap_or_else(|e| e.into_inner());
        s.as_ref().filter(|(p, _)| p == participant).map(|(_, t)| t.clone())
    }

    /// The media authentication sealer of `participant` (the last join's), keyed from its
    /// secret, counters from 1; `None` for another participant.
    pub fn media_sealer(&self, participant: &str) -> Option<roomcast_meeting::media_auth::Sealer> {
        let secret = self.secret_for(participant)?;
        let key = roomcast_meeting::media_auth::MediaKey::from_secret(secret.expose());
        Some(roomcast_meeting::media_auth::Sealer::new(key, 1))
    }

    /// The verifier of the keyframe requests the service seals for `participant` (its downlink
    /// key), from the secret its join reply gave.
    pub fn media_downlink(&self, participant: &str) -> Option<roomcast_meeting::media_auth::Verifier> {
        let secret = self.secret_for(participant)?;
        let key = roomcast_meeting::media_auth::MediaKey::downlink_from_secret(secret.expose());
        Some(roomcast_meeting::media_auth::Verifier::new(key))
    }

    /// Joins as `room` sending `caps`, without a media key (a watch-only listener).
    pub async fn join(&self, room: &str, caps: &Caps) -> Result<JoinReply, CallError> {
        self.join_keyed(room, caps, None).await
    }

    /// Joins as `room` sending `caps` with its media key.
    pub async fn join_keyed(&self, room: &str, caps: &Caps, key: Option<&SrtpKey>) -> Result<JoinReply, CallError> {
        let call = Call::join_keyed(&self.meeting, room, caps, key);
        let resp = self.call(call, None, Duration::from_secs(5)).await?;
        let reply = client::decode_join(&resp).map_err(CallError::Service)?;
        *self.secret.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((reply.participant.clone(), Token::new(reply.secret.clone())));
        Ok(reply)
    }

    /// Leaves.
    pub async fn leave(&self, participant: &str) -> Result<(), CallError> {
        let secret = self.secret_for(participant);
        let resp = self.call(Call::leave(&self.meeting, participant), secret, Duration::from_secs(2)).await?;
        client::decode::<serde_json::Value>(&resp).map(|_| ()).map_err(CallError::Service)
    }

    /// Says we are alive, and (`Some`) whether our microphone is muted (the others see it in the roster).
    pub async fn keepalive(&self, participant: &str, muted: Option<bool>) -> Result<(), CallError> {
        let secret = self.secret_for(participant);
        let call = Call::keepalive_with(&self.meeting, participant, KeepaliveRequest { muted });
        let resp = self.call(call, secret, Duration::from_secs(3)).await?;
        client::decode::<serde_json::Value>(&resp).map(|_| ()).map_err(CallError::Service)
    }

    /// Announces a new media key (a rekey).
    pub async fn set_key(&self, participant: &str, key: &SrtpKey) -> Result<(), CallError> {
        let secret = self.secret_for(participant);
        let resp = self.call(Call::set_key(&self.meeting, participant, key), secret, Duration::from_secs(3)).await?;
        client::decode::<serde_json::Value>(&resp).map(|_| ()).map_err(CallError::Service)
    }

    /// The roster; with `since`, waits (up to the service's long-poll time) for a newer one.
    /// Asked as the joined participant (with its secret), so it carries the media keys.
    pub async fn roster(&self, since: Option<u64>) -> Result<Option<Roster>, CallError> {
        let me = self.secret.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (call, secret) = match me {
            Some((p, s)) => (Call::roster_as(&self.meeting, since, &p), Some(s)),
            None => (Call::roster(&self.meeting, since), None),
        };
        let resp = self.call(call, secret, Duration::from_secs(15)).await?;
        client::decode_roster(&resp).map_err(CallError::Service)
    }
}

/// One request on a fresh connection; the whole answer (at most [`MAX_ANSWER`] bytes).
async fn send<I>(io: I, req: Request<Full<Bytes>>) -> Result<Response, String>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| e.to_string())?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = async {
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), MAX_ANSWER).collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Response { status, body: body.to_vec() })
    }
    .await;
    conn.abort();
    result
}
