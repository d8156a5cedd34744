//! `roomcast gateway --meeting-server HOST:PORT --meeting ID --room NAME`: the channel to join
//! is looked up in the meeting's roster (the room's (S,G) and the port of its audio or video),
//! and the relay defaults to the service's relay port at the address the service was reached
//! at (as a box does), so nothing is copied from the roster by hand. The meeting's token comes
//! from `--token-file` or `$ROOMCAST_TOKEN`, never from the command line.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use roomcast_meeting::client;
use roomcast_meeting::roster::{Family, Roster};
use roomcast_net::ChannelSpec;

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
    /// The meeting service's control API, HOST:PORT. With --meeting and --room, the channel
    /// comes from the roster (no --join) and the relay defaults to the service's (no --relay).
    #[arg(long, value_name = "HOST:PORT", requires_all = ["meeting", "room"], conflicts_with = "join")]
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

/// One request to the control API (blocking: done once, before the gateway starts).
fn get(server: SocketAddr, request: &[u8]) -> anyhow::Result<client::Response> {
    let mut s = TcpStream::connect_timeout(&server, Duration::from_secs(5))
        .with_context(|| format!("--meeting-server {server}: cannot connect (is `roomcast server` running?)"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(request)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).with_context(|| format!("--meeting-server {server}: no answer"))?;
    Ok(client::parse_response(&buf)?)
}

/// The relay and channel of `--room`, from the roster. `relay` is `--relay` if given.
pub fn resolve(args: &RoomArgs, relay: Option<SocketAddr>) -> anyhow::Result<(SocketAddr, ChannelSpec)> {
    let (Some(server), Some(meeting), Some(room)) = (&args.meeting_server, &args.meeting, &args.room) else {
        bail!("--meeting-server, --meeting and --room go together");
    };
    let token = token(args)?;
    let addr = server
        .to_socket_addrs()
        .with_context(|| format!("--meeting-server {server}: expected HOST:PORT"))?
        .next()
        .with_context(|| format!("--meeting-server {server}: no address"))?;
    let resp = get(addr, &client::roster(server, meeting, &token, None))?;
    let roster: Roster = client::decode_roster(&resp)
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
    let relay = match relay {
        Some(r) => r,
        None => {
            let port = roster.relay.as_deref().and_then(|r| r.parse::<SocketAddr>().ok()).map_or(2268, |r| r.port());
            SocketAddr::new(addr.ip(), port)
        }
    };
    let channel = ChannelSpec { source: sg.source, group: sg.group, port };
    tracing::info!(room, participant = %p.id, channel = %channel, relay = %relay, "room found in the roster");
    Ok((relay, channel))
}
