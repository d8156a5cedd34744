//! `roomcast gateway --meeting-server URL --meeting ID --room NAME`: the channel to join is
//! looked up in the meeting's roster (the room's (S,G) and the port of its audio or video), and
//! the relay defaults to the service's relay port at the address the service was reached at (as
//! a box does), so nothing is copied from the roster by hand. The service is spoken to with the
//! box's client ([`crate::cmd::meeting_client`]): `https://HOST:PORT` with `--fingerprint` (or
//! `--ca-file`), plain http only to a loopback address or with `--allow-plain-http` (a warning).
//! The meeting's token comes from `--token-file` or `$ROOMCAST_TOKEN`, never from the command line.
//!
//! The gateway then joins the meeting itself as a watch-only participant (`--listener-name`): the
//! service's embedded relay serves a meeting's groups only to addresses that joined it. It sends
//! keepalives, rejoins when the service lost it (restart, silence) and leaves when it stops.
//! As a participant it gets the senders' SRTP keys (join reply, then every roster it long-polls
//! for as that participant: rekeys after a leave), so it decrypts the room's media before
//! forwarding plain RTP ([`super::keys::RoomKeys`]); the SDP the service writes stays playable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use roomcast_meeting::config::MeetingConfig;
use roomcast_meeting::roster::{Caps, Family, Roster};
use roomcast_meeting::MeetingError;
use roomcast_net::ChannelSpec;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::keys::RoomKeys;
use crate::cmd::meeting_client::{CallError, Service};

/// The environment variable holding the meeting's token when there is no `--token-file`.
pub const TOKEN_ENV: &str = "ROOMCAST_TOKEN";

/// Which stream of the room to receive.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaArg {
    /// The room's audio (Opus).
    Audio,
    /// The room's video.
    Video,
}

/// Which family's (S,G) to join.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyArg {
    /// The room's IPv4 (S,G).
    Ipv4,
    /// The room's IPv6 (S,G).
    Ipv6,
}

/// Options that name a room of a meeting instead of a channel.
#[derive(clap::Args, Debug, Clone)]
pub struct RoomArgs {
    /// The meeting service's control API: https://HOST[:PORT] (with --fingerprint or
    /// --ca-file), or http://HOST:PORT / HOST:PORT (plain HTTP: loopback only, unless
    /// --allow-plain-http). With --meeting and --room, the channel comes from the roster (no
    /// --join) and the relay defaults to the service's (no --relay).
    #[arg(long, value_name = "URL", requires_all = ["meeting", "room"], conflicts_with = "join")]
    pub meeting_server: Option<String>,
    /// The meeting's id (with --meeting-server).
    #[arg(long, value_name = "ID", requires = "meeting_server")]
    pub meeting: Option<String>,
    /// The room to receive, by its name in the roster (with --meeting-server).
    #[arg(long, value_name = "NAME", requires = "meeting_server")]
    pub room: Option<String>,
    /// Which of the room's streams to receive (with --room).
    #[arg(long, value_name = "audio|video", default_value = "audio")]
    pub media: MediaArg,
    /// Which of the room's (S,G) to join (with --room).
    #[arg(long, value_name = "ipv4|ipv6", default_value = "ipv4")]
    pub family: FamilyArg,
    /// A file holding the meeting's token (with --room); without it, $ROOMCAST_TOKEN.
    #[arg(long, value_name = "FILE", requires = "meeting_server")]
    pub token_file: Option<PathBuf>,
    /// With an https --meeting-server: the service certificate's SHA-256 fingerprint,
    /// `sha256:HEX`, as `roomcast server` prints it.
    #[arg(long, value_name = "sha256:HEX", requires = "meeting_server")]
    pub fingerprint: Option<String>,
    /// With an https --meeting-server: trust the CA certificates of this PEM file instead of a
    /// pinned fingerprint.
    #[arg(long, value_name = "FILE", requires = "meeting_server")]
    pub ca_file: Option<String>,
    /// Allow plain http to a --meeting-server that is not a loopback address (the token then
    /// crosses the network in clear; warns).
    #[arg(long, requires = "meeting_server")]
    pub allow_plain_http: bool,
    /// The name this gateway joins the meeting under (watch-only: it sends nothing); the
    /// service's relay serves the room's group only to participants.
    #[arg(long, value_name = "NAME", default_value = "gateway", requires = "meeting_server")]
    pub listener_name: String,
}

/// The token: the first line of `--token-file`, or `$ROOMCAST_TOKEN`.
fn token(args: &RoomArgs) -> anyhow::Result<String> {
    let token = match &args.token_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("--token-file {}: cannot read the meeting's token", path.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string(),
        None => std::env::var(TOKEN_ENV).unwrap_or_default().trim().to_string(),
    };
    if token.is_empty() {
        bail!(
            "--room needs the meeting's token: set {TOKEN_ENV}, or put it in a file and pass --token-file FILE \
             (never on the command line)"
        );
    }
    Ok(token)
}

fn call_error(server: &str, e: CallError) -> anyhow::Error {
    match e {
        CallError::Unreachable(s) => {
            anyhow::anyhow!("--meeting-server {server}: {s} (is `roomcast server` running?)")
        }
        other => anyhow::anyhow!("--meeting-server {server}: {other}"),
    }
}

/// The gateway's own participation in the meeting (watch-only), kept alive by a task; another
/// task follows the roster (with the media keys) into [`Membership::rosters`].
pub struct Membership {
    service: Service,
    keepalive: JoinHandle<()>,
    follower: JoinHandle<()>,
    participant: std::sync::Arc<std::sync::Mutex<String>>,
    /// The latest roster, asked as the gateway's participant (so it carries the keys).
    pub rosters: watch::Receiver<Roster>,
}

impl Membership {
    /// Stops the keepalives and leaves the meeting.
    pub async fn leave(self) {
        self.keepalive.abort();
        self.follower.abort();
        let id = self.participant.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match self.service.leave(&id).await {
            Ok(()) => tracing::info!(participant = %id, "left the meeting"),
            Err(e) => tracing::warn!(participant = %id, "leave: {e}"),
        }
    }
}

/// The relay and channel of `--room`, from the roster, the gateway's watch-only membership and
/// the room's media key (from the join reply). `relay` is `--relay` if given.
pub async fn resolve(
    args: &RoomArgs,
    relay: Option<SocketAddr>,
) -> anyhow::Result<(SocketAddr, ChannelSpec, Membership, RoomKeys)> {
    let (Some(server), Some(meeting), Some(room)) = (&args.meeting_server, &args.meeting, &args.room) else {
        bail!("--meeting-server, --meeting and --room go together");
    };
    let cfg = MeetingConfig {
        server: server.clone(),
        id: meeting.clone(),
        token: token(args)?,
        fingerprint: args.fingerprint.clone(),
        ca_file: args.ca_file.clone(),
        allow_plain_http: args.allow_plain_http,
    };
    let service = Service::new(&cfg).map_err(|e| call_error(server, e))?;
    let roster = service
        .roster(None)
        .await
        .map_err(|e| call_error(server, e))
        .with_context(|| format!("asking {server} for the roster of meeting {meeting:?}"))?
        .context("empty roster reply")?;
    let Some(p) = roster.by_room(room) else {
        bail!(
            "no room {room:?} in meeting {meeting:?} (rooms present: {}); start its box first, or check the name",
            roster.room_names()
        );
    };
    let sg = p.groups.get(match args.family {
        FamilyArg::Ipv4 => Family::Ipv4,
        FamilyArg::Ipv6 => Family::Ipv6,
    });
    let port = match args.media {
        MediaArg::Audio if p.caps.audio.is_some() => p.ports.audio,
        MediaArg::Video if p.caps.video.is_some() => p.ports.video,
        m => bail!("room {room:?} sends no {m:?} stream", m = format!("{m:?}").to_lowercase()),
    };
    let channel = ChannelSpec { source: sg.source, group: sg.group, port };
    let participant = p.id.clone();
    let joined = service.join(&args.listener_name, &Caps::default()).await.map_err(|e| call_error(server, e))?;
    let relay = match relay {
        Some(r) => r,
        None => {
            let port = joined.relay.parse::<SocketAddr>().map_or(2268, |r| r.port());
            let host = tokio::net::lookup_host(service.server.as_str())
                .await
                .ok()
                .and_then(|mut a| a.next())
                .with_context(|| format!("--meeting-server {server}: no address"))?;
            SocketAddr::new(host.ip(), port)
        }
    };
    tracing::info!(
        room,
        participant = %participant,
        listener = %joined.participant,
        channel = %channel,
        relay = %relay,
        "room found in the roster; joined the meeting watch-only"
    );
    let keys = RoomKeys::new(Instant::now(), &participant, &joined.roster)
        .with_context(|| format!("the media key of room {room:?} in the join reply"))?;
    if !keys.has_key() {
        tracing::warn!(room, "the join reply has no media key for the room: nothing decrypts until one arrives");
    }
    let every = Duration::from_millis(joined.keepalive_ms.clamp(200, 60_000));
    let id = std::sync::Arc::new(std::sync::Mutex::new(joined.participant.clone()));
    let keepalive = tokio::spawn(keep_alive(service.clone(), args.listener_name.clone(), id.clone(), every));
    let (tx, rosters) = watch::channel(joined.roster.clone());
    let follower = tokio::spawn(follow_roster(service.clone(), joined.roster.version, tx));
    Ok((relay, channel, Membership { service, keepalive, follower, participant: id, rosters }, keys))
}

/// Long-polls the roster (as the gateway's participant, so with the keys) and publishes every
/// newer one; a failed poll is retried after a second.
async fn follow_roster(service: Service, mut version: u64, tx: watch::Sender<Roster>) {
    loop {
        match service.roster(Some(version)).await {
            Ok(Some(r)) => {
                version = r.version;
                if tx.send(r).is_err() {
                    return;
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!("roster: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Keepalives every `every`; a service that no longer knows us (404: it restarted, or we were
/// silent too long) gets a new watch-only join at once.
async fn keep_alive(service: Service, name: String, id: std::sync::Arc<std::sync::Mutex<String>>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let current = id.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match service.keepalive(&current, None).await {
            Ok(()) => {}
            Err(CallError::Service(MeetingError::Refused { status: 404, .. })) => {
                match service.join(&name, &Caps::default()).await {
                    Ok(j) => {
                        tracing::info!(participant = %j.participant, "the service lost this gateway: joined again");
                        *id.lock().unwrap_or_else(|e| e.into_inner()) = j.participant;
                    }
                    Err(e) => tracing::warn!("rejoin: {e}"),
                }
            }
            Err(e) => tracing::warn!("keepalive: {e}"),
        }
    }
}
