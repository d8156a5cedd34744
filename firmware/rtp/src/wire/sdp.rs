//! SDP (RFC 8866, formerly 4566) for roomcast streams: building a session description with
//! H.264 (packetization-mode=1, profile-level-id), AV1 (`AV1/90000`) and Opus (`opus/48000/2`)
//! media sections including `a=framerate`, and parsing one back (connection address, ports,
//! payload types, codecs, fmtp, framerate, SSM source filter). The text written is what
//! ffmpeg/ffplay (`-protocol_whitelist file,udp,rtp -i stream.sdp`) and `roomcast record` read.

use std::fmt;
use std::net::IpAddr;

use crate::clock::{OPUS_CLOCK_RATE, VIDEO_CLOCK_RATE};
use crate::error::{Result, RtpError};

/// Kind of a media section (`m=` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaKind {
    /// `m=video`
    Video,
    /// `m=audio`
    Audio,
    /// Anything else (`application`, `text`, ...).
    Other(String),
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MediaKind::Video => f.write_str("video"),
            MediaKind::Audio => f.write_str("audio"),
            MediaKind::Other(s) => f.write_str(s),
        }
    }
}

/// Codec of a payload type, from its `a=rtpmap` encoding name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Codec {
    /// H.264 (RFC 6184).
    H264,
    /// AV1 (AOM RTP payload format).
    Av1,
    /// Opus (RFC 7587).
    Opus,
    /// Another encoding name, as written.
    Other(String),
}

impl Codec {
    /// Encoding name as written in `a=rtpmap`.
    pub fn encoding_name(&self) -> &str {
        match self {
            Codec::H264 => "H264",
            Codec::Av1 => "AV1",
            Codec::Opus => "opus",
            Codec::Other(s) => s,
        }
    }

    fn from_name(name: &str) -> Self {
        match name.to_ascii_lowercase().as_str() {
            "h264" => Codec::H264,
            "av1" => Codec::Av1,
            "opus" => Codec::Opus,
            _ => Codec::Other(name.to_string()),
        }
    }
}

/// A connection address (`c=` line): unicast or multicast, with the IPv4 multicast TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    /// The address.
    pub address: IpAddr,
    /// TTL for IPv4 multicast (`/ttl` suffix); written as 16 when multicast and unset.
    pub ttl: Option<u8>,
}

impl Connection {
    /// A connection to `address` without TTL.
    pub fn new(address: IpAddr) -> Self {
        Self { address, ttl: None }
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.address {
            IpAddr::V4(a) if a.is_multicast() => write!(f, "IN IP4 {a}/{}", self.ttl.unwrap_or(16)),
            IpAddr::V4(a) => write!(f, "IN IP4 {a}"),
            IpAddr::V6(a) => write!(f, "IN IP6 {a}"),
        }
    }
}

/// One media section with one payload type.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaDescription {
    /// Media kind.
    pub kind: MediaKind,
    /// RTP port (RTCP on port + 1).
    pub port: u16,
    /// Payload type (the first one of the `m=` line when parsing).
    pub payload_type: u8,
    /// Codec of `payload_type`.
    pub codec: Codec,
    /// RTP clock rate from `a=rtpmap` (0 when unknown).
    pub clock_rate: u32,
    /// Channel count from `a=rtpmap` (audio).
    pub channels: Option<u8>,
    /// `a=fmtp` parameters of `payload_type`, as written (e.g. `packetization-mode=1;...`).
    pub fmtp: Option<String>,
    /// `a=framerate` (video).
    pub framerate: Option<f64>,
    /// Media-level `c=` line, overriding the session's.
    pub connection: Option<Connection>,
}

impl MediaDescription {
    /// H.264 video, packetization-mode 1, with `profile_level_id` as 6 hex digits
    /// (e.g. "42e01f" constrained baseline 3.1, "640028" high 4.0).
    pub fn h264(port: u16, payload_type: u8, profile_level_id: &str, framerate: Option<f64>) -> Self {
        Self {
            kind: MediaKind::Video,
            port,
            payload_type,
            codec: Codec::H264,
            clock_rate: VIDEO_CLOCK_RATE,
            channels: None,
            fmtp: Some(format!("packetization-mode=1;profile-level-id={profile_level_id};level-asymmetry-allowed=1")),
            framerate,
            connection: None,
        }
    }

    /// AV1 video (`a=rtpmap:PT AV1/90000`), no fmtp (defaults: profile 0, level 5.1, tier 0).
    pub fn av1(port: u16, payload_type: u8, framerate: Option<f64>) -> Self {
        Self {
            kind: MediaKind::Video,
            port,
            payload_type,
            codec: Codec::Av1,
            clock_rate: VIDEO_CLOCK_RATE,
            channels: None,
            fmtp: None,
            framerate,
            connection: None,
        }
    }

    /// Opus audio (`opus/48000/2` as RFC 7587 requires), with `stereo`/`useinbandfec` in fmtp.
    pub fn opus(port: u16, payload_type: u8, stereo: bool, inband_fec: bool) -> Self {
        Self {
            kind: MediaKind::Audio,
            port,
            payload_type,
            codec: Codec::Opus,
            clock_rate: OPUS_CLOCK_RATE,
            channels: Some(2),
            fmtp: Some(format!(
                "minptime=10;useinbandfec={};stereo={};sprop-stereo={}",
                u8::from(inband_fec),
                u8::from(stereo),
                u8::from(stereo)
            )),
            framerate: None,
            connection: None,
        }
    }

    /// Value of one fmtp parameter (`key=value` separated by `;`).
    pub fn fmtp_param(&self, key: &str) -> Option<&str> {
        self.fmtp.as_deref()?.split(';').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            k.trim().eq_ignore_ascii_case(key).then(|| v.trim())
        })
    }
}

/// A session description.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionDescription {
    /// Origin (`o=`) session id.
    pub session_id: u64,
    /// Origin address (`o=` unicast address of the sender).
    pub origin_address: IpAddr,
    /// Session name (`s=`).
    pub session_name: String,
    /// Session-level connection (`c=`).
    pub connection: Option<Connection>,
    /// Source-specific multicast sender (`a=source-filter: incl`), if any.
    pub source_filter: Option<IpAddr>,
    /// Media sections.
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    /// A session sent to `destination` (unicast or multicast group) from `origin`.
    pub fn new(session_name: &str, origin: IpAddr, destination: IpAddr) -> Self {
        Self {
            session_id: 0,
            origin_address: origin,
            session_name: session_name.to_string(),
            connection: Some(Connection::new(destination)),
            source_filter: None,
            media: Vec::new(),
        }
    }

    /// Adds a media section (builder style).
    pub fn with_media(mut self, media: MediaDescription) -> Self {
        self.media.push(media);
        self
    }

    /// The first video section.
    pub fn video(&self) -> Option<&MediaDescription> {
        self.media.iter().find(|m| m.kind == MediaKind::Video)
    }

    /// The first audio section.
    pub fn audio(&self) -> Option<&MediaDescription> {
        self.media.iter().find(|m| m.kind == MediaKind::Audio)
    }

    /// Connection address of a media section (its own `c=`, else the session's).
    pub fn connection_for(&self, media: &MediaDescription) -> Option<Connection> {
        media.connection.or(self.connection)
    }

    /// Parses SDP text. Needs `v=0` and, for each media section, a port, a payload type and a
    /// connection address (session- or media-level). Unknown lines are ignored.
    pub fn parse(text: &str) -> Result<Self> {
        let mut session = SessionDescription {
            session_id: 0,
            origin_address: IpAddr::from([0, 0, 0, 0]),
            session_name: String::new(),
            connection: None,
            source_filter: None,
            media: Vec::new(),
        };
        let mut saw_version = false;
        // fmtp/rtpmap/framerate lines are attached after the section's payload type is known.
        for (idx, raw) in text.lines().enumerate() {
            let line_no = idx + 1;
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let err = |reason: String| RtpError::Sdp { line: line_no, reason };
            let (ty, value) = line
                .split_once('=')
                .filter(|(t, _)| t.len() == 1)
                .ok_or_else(|| err(format!("expected `<type>=<value>`, got {line:?}")))?;
            match ty {
                "v" => {
                    if value.trim() != "0" {
                        return Err(err(format!("unsupported SDP version {value:?}")));
                    }
                    saw_version = true;
                }
                "o" => {
                    let f: Vec<&str> = value.split_whitespace().collect();
                    if f.len() < 6 {
                        return Err(err("o= needs 6 fields".into()));
                    }
                    session.session_id = f[1].parse().unwrap_or(0);
                    session.origin_address = f[5].parse().unwrap_or(session.origin_address);
                }
                "s" => session.session_name = value.to_string(),
                "c" => {
                    let c = parse_connection(value).map_err(err)?;
                    match session.media.last_mut() {
                        Some(m) => m.connection = Some(c),
                        None => session.connection = Some(c),
                    }
                }
                "m" => session.media.push(parse_media_line(value).map_err(err)?),
                "a" => {
                    let (name, arg) = value.split_once(':').unwrap_or((value, ""));
                    match (name, session.media.last_mut()) {
                        ("source-filter", _) => {
                            // a=source-filter: incl IN IP4 <dest> <src>
                            let f: Vec<&str> = arg.split_whitespace().collect();
                            if f.first() == Some(&"incl") {
                                session.source_filter = f.get(4).and_then(|s| s.parse().ok());
                            }
                        }
                        ("rtpmap", Some(m)) => {
                            let (pt, enc) =
                                arg.split_once(' ').ok_or_else(|| err("a=rtpmap without encoding".into()))?;
                            if pt.trim().parse::<u8>().ok() == Some(m.payload_type) {
                                let mut parts = enc.trim().split('/');
                                m.codec = Codec::from_name(parts.next().unwrap_or_default());
                                m.clock_rate = parts
                                    .next()
                                    .and_then(|r| r.parse().ok())
                                    .ok_or_else(|| err(format!("bad clock rate in a=rtpmap:{arg}")))?;
                                m.channels = parts.next().and_then(|c| c.parse().ok());
                            }
                        }
                        ("fmtp", Some(m)) => {
                            if let Some((pt, params)) = arg.split_once(' ') {
                                if pt.trim().parse::<u8>().ok() == Some(m.payload_type) {
                                    m.fmtp = Some(params.trim().to_string());
                                }
                            }
                        }
                        ("framerate", Some(m)) => {
                            let fps: f64 = arg.trim().parse().map_err(|_| err(format!("bad a=framerate:{arg}")))?;
                            if !(fps.is_finite() && fps > 0.0) {
                                return Err(err(format!("bad a=framerate:{arg}")));
                            }
                            m.framerate = Some(fps);
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        if !saw_version {
            return Err(RtpError::Sdp { line: 0, reason: "missing v=0 line".into() });
        }
        if session.media.is_empty() {
            return Err(RtpError::Sdp { line: 0, reason: "no m= media section".into() });
        }
        for m in &session.media {
            if m.connection.is_none() && session.connection.is_none() {
                return Err(RtpError::Sdp {
                    line: 0,
                    reason: format!("{} section has no c= connection address", m.kind),
                });
            }
        }
        Ok(session)
    }
}

fn parse_connection(value: &str) -> std::result::Result<Connection, String> {
    let f: Vec<&str> = value.split_whitespace().collect();
    if f.len() < 3 || f[0] != "IN" {
        return Err(format!("c= must be `IN IP4|IP6 <address>`, got {value:?}"));
    }
    let mut addr_parts = f[2].split('/');
    let addr = addr_parts.next().unwrap_or_default();
    let address: IpAddr = addr.parse().map_err(|_| format!("bad connection address {addr:?}"))?;
    let family_ok = matches!((f[1], address), ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)));
    if !family_ok {
        return Err(format!("address {addr} does not match address type {}", f[1]));
    }
    let ttl = match (address, addr_parts.next()) {
        (IpAddr::V4(_), Some(t)) => Some(t.parse().map_err(|_| format!("bad multicast TTL {t:?}"))?),
        _ => None,
    };
    Ok(Connection { address, ttl })
}

fn parse_media_line(value: &str) -> std::result::Result<MediaDescription, String> {
    let f: Vec<&str> = value.split_whitespace().collect();
    if f.len() < 4 {
        return Err(format!("m= needs `<media> <port> <proto> <fmt>`, got {value:?}"));
    }
    let kind = match f[0] {
        "video" => MediaKind::Video,
        "audio" => MediaKind::Audio,
        other => MediaKind::Other(other.to_string()),
    };
    let port_str = f[1].split('/').next().unwrap_or_default();
    let port: u16 = port_str.parse().map_err(|_| format!("bad port {:?}", f[1]))?;
    if !f[2].contains("RTP/AVP") && !f[2].contains("RTP/SAVP") {
        return Err(format!("unsupported transport {:?} (expected RTP/AVP)", f[2]));
    }
    let payload_type: u8 =
        f[3].parse().ok().filter(|pt| *pt < 128).ok_or_else(|| format!("bad payload type {:?}", f[3]))?;
    Ok(MediaDescription {
        kind,
        port,
        payload_type,
        codec: Codec::Other(format!("static payload type {payload_type}")),
        clock_rate: 0,
        channels: None,
        fmtp: None,
        framerate: None,
        connection: None,
    })
}

fn write_framerate(f: &mut fmt::Formatter<'_>, fps: f64) -> fmt::Result {
    if fps.fract() == 0.0 {
        write!(f, "a=framerate:{}\r\n", fps as u64)
    } else {
        write!(f, "a=framerate:{:.3}\r\n", fps)
    }
}

impl fmt::Display for SessionDescription {
    /// Writes the SDP text with CRLF line ends.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = |a: &IpAddr| if a.is_ipv4() { "IP4" } else { "IP6" };
        write!(f, "v=0\r\n")?;
        write!(f, "o=- {} 1 IN {} {}\r\n", self.session_id, ip(&self.origin_address), self.origin_address)?;
        let name = if self.session_name.trim().is_empty() { "-" } else { self.session_name.trim() };
        write!(f, "s={name}\r\n")?;
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        write!(f, "t=0 0\r\n")?;
        if let (Some(src), Some(c)) = (self.source_filter, self.connection) {
            write!(f, "a=source-filter: incl IN {} {} {}\r\n", ip(&c.address), c.address, src)?;
        }
        for m in &self.media {
            write!(f, "m={} {} RTP/AVP {}\r\n", m.kind, m.port, m.payload_type)?;
            if let Some(c) = &m.connection {
                write!(f, "c={c}\r\n")?;
            }
            write!(f, "a=rtpmap:{} {}/{}", m.payload_type, m.codec.encoding_name(), m.clock_rate)?;
            if let Some(ch) = m.channels {
                write!(f, "/{ch}")?;
            }
            write!(f, "\r\n")?;
            if let Some(p) = &m.fmtp {
                write!(f, "a=fmtp:{} {}\r\n", m.payload_type, p)?;
            }
            if let Some(fps) = m.framerate {
                write_framerate(f, fps)?;
            }
            write!(f, "a=recvonly\r\n")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_known_text() {
        let sdp = SessionDescription::new("roomcast", "127.0.0.1".parse().unwrap(), "127.0.0.1".parse().unwrap())
            .with_media(MediaDescription::h264(5004, 96, "42e01f", Some(25.0)))
            .with_media(MediaDescription::opus(5006, 111, false, true));
        assert_eq!(
            sdp.to_string(),
            "v=0\r\no=- 0 1 IN IP4 127.0.0.1\r\ns=roomcast\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=video 5004 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
             a=fmtp:96 packetization-mode=1;profile-level-id=42e01f;level-asymmetry-allowed=1\r\n\
             a=framerate:25\r\na=recvonly\r\n\
             m=audio 5006 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n\
             a=fmtp:111 minptime=10;useinbandfec=1;stereo=0;sprop-stereo=0\r\na=recvonly\r\n"
        );
        assert_eq!(SessionDescription::parse(&sdp.to_string()).unwrap(), sdp);
    }

    #[test]
    fn round_trips_av1_multicast_ssm() {
        let mut sdp = SessionDescription::new("room", "2001:db8::1".parse().unwrap(), "232.1.2.3".parse().unwrap())
            .with_media(MediaDescription::av1(6000, 98, Some(29.97)));
        sdp.source_filter = Some("198.51.100.7".parse().unwrap());
        let text = sdp.to_string();
        assert!(text.contains("c=IN IP4 232.1.2.3/16\r\n"), "{text}");
        assert!(text.contains("a=rtpmap:98 AV1/90000\r\na=framerate:29.970\r\n"), "{text}");
        let back = SessionDescription::parse(&text).unwrap();
        assert_eq!(back.video().unwrap().codec, Codec::Av1);
        assert_eq!(back.video().unwrap().framerate, Some(29.97));
        assert_eq!(back.connection.unwrap().ttl, Some(16));
        assert_eq!(back.source_filter, sdp.source_filter);
        assert_eq!(back.origin_address, sdp.origin_address);
    }

    #[test]
    fn parses_foreign_sdp() {
        let text = "v=0\no=user 123 0 IN IP4 10.0.0.1\ns=x\nt=0 0\nm=audio 7000 RTP/AVP 111 0\n\
                    c=IN IP6 ff3e::1234\na=rtpmap:0 PCMU/8000\na=rtpmap:111 OPUS/48000/2\n\
                    a=fmtp:111 useinbandfec=1; stereo=1\n";
        let s = SessionDescription::parse(text).unwrap();
        let a = s.audio().unwrap();
        assert_eq!(
            (a.port, a.payload_type, &a.codec, a.clock_rate, a.channels),
            (7000, 111, &Codec::Opus, 48000, Some(2))
        );
        assert_eq!(a.fmtp_param("stereo"), Some("1"));
        assert_eq!(s.connection_for(a).unwrap().address, "ff3e::1234".parse::<IpAddr>().unwrap());
        assert_eq!(s.session_id, 123);
    }

    #[test]
    fn rejects_bad() {
        for (text, needle) in [
            ("", "v=0"),
            ("v=1\n", "version"),
            ("v=0\nm=video 5004 RTP/AVP 96\n", "no c="),
            ("v=0\nc=IN IP4 1.2.3.4\n", "no m="),
            ("v=0\nc=IN IP4 1.2.3.4\nm=video x RTP/AVP 96\n", "bad port"),
            ("v=0\nc=IN IP4 ::1\nm=video 1 RTP/AVP 96\n", "does not match"),
            ("v=0\nc=IN IP4 1.2.3.4\nm=video 1 RTP/AVP 96\na=framerate:abc\n", "framerate"),
            ("v=0\ngarbage\n", "expected"),
        ] {
            let e = SessionDescription::parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
