//! The control API's transport: a TCP accept loop with a global and a per-address connection
//! cap, TLS by rustls (or plain HTTP on loopback), HTTP/1.1 by hyper (one request per
//! connection, a 5 s deadline for the TLS handshake and the whole request head together,
//! bounded head and body, a repeated Content-Length refused). Each request is routed by
//! `roomcast_meeting::control::route` and answered by the core task; this layer only routes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use roomcast_meeting::control::{route, Head, Reply, MAX_BODY, MAX_HEAD, SECRET_HEADER};
use roomcast_meeting::throttle::{address_bucket, Allow, LogLimiter};
use roomcast_meeting::MeetingError;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::core::{CoreHandle, LONG_POLL};

/// The transport's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once, over all peers.
    pub max_connections: usize,
    /// Connections open at once from one address (an IPv6 /64 counts as one).
    pub max_per_address: usize,
    /// Deadline for the TLS handshake and the whole request head.
    pub head_deadline: Duration,
    /// Deadline for reading the body.
    pub body_deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            max_per_address: 16,
            head_deadline: Duration::from_secs(5),
            body_deadline: Duration::from_secs(5),
        }
    }
}

/// Open connections per address; a [`Slot`] gives its place back when dropped.
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

struct Slot {
    table: Arc<PerAddress>,
    ip: IpAddr,
    _global: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = self.table.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = t.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                t.remove(&self.ip);
            }
        }
    }
}

/// Connection-level trouble (caps, timeouts, TLS and HTTP errors) logged a few lines a second.
struct Noise(Mutex<LogLimiter>);

impl Noise {
    fn log(&self, peer: SocketAddr, what: &str) {
        let allow = self.0.lock().unwrap_or_else(|e| e.into_inner()).allow(Instant::now());
        if let Allow::Log { suppressed } = allow {
            tracing::info!(%peer, suppressed, "control connection: {what}");
        }
    }
}

/// Serves the control API on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, tls: Option<TlsAcceptor>, limits: Limits, core: CoreHandle) {
    let global = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let per_address = Arc::new(PerAddress::default());
    let noise = Arc::new(Noise(Mutex::new(LogLimiter::new(5, Duration::from_secs(1)))));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: wait a little instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = global.clone().try_acquire_owned() else {
            noise.log(peer, "refused: too many connections");
            continue; // dropping the stream closes it
        };
        let slot = {
            let ip = address_bucket(peer.ip());
            let mut t = per_address.0.lock().unwrap_or_else(|e| e.into_inner());
            let n = t.entry(ip).or_insert(0);
            if *n >= limits.max_per_address {
                drop(t);
                noise.log(peer, "refused: too many connections from this address");
                continue;
            }
            *n += 1;
            Slot { table: per_address.clone(), ip, _global: permit }
        };
        let (tls, core, noise) = (tls.clone(), core.clone(), noise.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let _ = stream.set_nodelay(true);
            // Nothing lives longer than a long poll plus the head and body deadlines.
            let whole = LONG_POLL + limits.head_deadline + limits.body_deadline + Duration::from_secs(5);
            if tokio::time::timeout(whole, connection(stream, peer, tls, limits, core, &noise)).await.is_err() {
                noise.log(peer, "closed: took too long");
            }
        });
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    core: CoreHandle,
    noise: &Noise,
) {
    let deadline = tokio::time::Instant::now() + limits.head_deadline;
    match tls {
        Some(acceptor) => match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => http(tls, peer, deadline, limits, core, noise).await,
            Ok(Err(e)) => noise.log(peer, &format!("TLS handshake failed: {e}")),
            Err(_) => noise.log(peer, "closed: no TLS handshake within the deadline"),
        },
        None => http(stream, peer, deadline, limits, core, noise).await,
    }
}

async fn http<I>(
    io: I,
    peer: SocketAddr,
    deadline: tokio::time::Instant,
    limits: Limits,
    core: CoreHandle,
    noise: &Noise,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let head_time = deadline.saturating_duration_since(tokio::time::Instant::now()).max(Duration::from_millis(100));
    let service = hyper::service::service_fn(move |req| {
        let core = core.clone();
        async move { Ok::<_, Infallible>(handle(req, peer, limits, core).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(head_time)
        .keep_alive(false)
        .title_case_headers(true)
        .max_buf_size(16 * 1024)
        .max_header_size(MAX_HEAD)
        .max_headers(32)
        .serve_connection(TokioIo::new(io), service);
    if let Err(e) = conn.await {
        noise.log(peer, &format!("HTTP error: {e}"));
    }
}

fn response(status: u16, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn error(e: &MeetingError) -> Response<Full<Bytes>> {
    let status = if matches!(e, MeetingError::Limit(_)) { 413 } else { 400 };
    response(status, "application/json", serde_json::json!({ "error": e.to_string() }).to_string())
}

fn encode(reply: Reply) -> Response<Full<Bytes>> {
    match reply {
        Reply::Json { status, body } => response(status, "application/json", body),
        Reply::Sdp(body) => response(200, "application/sdp", body),
        Reply::Text(body) => response(200, "text/plain; charset=utf-8", body),
        // The core answers long polls itself; this only shows if that changes.
        Reply::WaitRoster { .. } => response(204, "application/json", String::new()),
    }
}

async fn handle(req: Request<Incoming>, peer: SocketAddr, limits: Limits, core: CoreHandle) -> Response<Full<Bytes>> {
    if req.headers().get_all(CONTENT_LENGTH).iter().count() > 1 {
        return error(&MeetingError::BadRequest("more than one Content-Length".into()));
    }
    let (parts, body) = req.into_parts();
    let body = match tokio::time::timeout(limits.body_deadline, Limited::new(body, MAX_BODY).collect()).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(_)) => return error(&MeetingError::Limit("request body too large".into())),
        Err(_) => return error(&MeetingError::BadRequest("request body not received in time".into())),
    };
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let head = Head {
        method: parts.method.as_str(),
        target,
        authorization: parts.headers.get(hyper::header::AUTHORIZATION).map(HeaderValue::as_bytes),
        secret: parts.headers.get(SECRET_HEADER).map(HeaderValue::as_bytes),
    };
    let request = match route(&head, &body) {
        Ok(r) => r,
        Err(e) => return error(&e),
    };
    match core.control(peer, request).await {
        Some((reply, delay)) => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            encode(reply)
        }
        None => response(503, "application/json", r#"{"error":"the service is stopping"}"#.into()),
    }
}
