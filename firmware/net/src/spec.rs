//! Textual specifications used on the command line and in configs:
//! `SOURCE@GROUP:PORT` channels, `ADDR[:PORT]` relay addresses (default AMT port 2268) and
//! `ADDR:PORT=SOURCE@GROUP:PORT` inject rules.
//!
//! IPv6 works with the same syntax: in `2001:db8::1@ff3e::8000:1:5004` the LAST `:PORT` is the
//! port, so the group is `ff3e::8000:1`. Brackets (`[ff3e::8000:1]:5004`) are accepted too.
//! Every error names the offending text and what is wrong with it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use roomcast_amt::SourceGroup;

use crate::error::NetError;

/// The IANA-assigned AMT UDP port (RFC 7450).
pub const AMT_PORT: u16 = roomcast_amt::AMT_PORT;

/// A source-specific multicast channel plus the UDP destination port of its data:
/// `SOURCE@GROUP:PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelSpec {
    /// Unicast source address S.
    pub source: IpAddr,
    /// Multicast group address G (same family as S).
    pub group: IpAddr,
    /// UDP destination port of the group's data.
    pub port: u16,
}

impl ChannelSpec {
    /// The group and port as a socket address (where native multicast of it is sent).
    pub fn group_addr(&self) -> SocketAddr {
        SocketAddr::new(self.group, self.port)
    }

    /// The (S,G) of this channel, validated (SSM range) by `roomcast-amt`.
    pub fn source_group(&self) -> SourceGroup {
        SourceGroup { source: self.source, group: self.group }
    }
}

fn parse_err(what: &'static str, input: &str, reason: impl Into<String>) -> NetError {
    NetError::Parse { what, input: input.to_owned(), reason: reason.into() }
}

fn parse_ip(what: &'static str, whole: &str, part: &str, role: &str) -> Result<IpAddr, NetError> {
    let trimmed = part.strip_prefix('[').and_then(|p| p.strip_suffix(']')).unwrap_or(part);
    trimmed.parse().map_err(|_| parse_err(what, whole, format!("{role} {part:?} is not an IPv4 or IPv6 address")))
}

fn parse_port(what: &'static str, whole: &str, part: &str) -> Result<u16, NetError> {
    part.parse().map_err(|_| parse_err(what, whole, format!("port {part:?} is not a number from 0 to 65535")))
}

/// Splits `ADDR:PORT` where ADDR may be bare IPv6 (the last colon separates the port) or
/// bracketed. Returns `(addr_text, port_text)`; `None` when there is no colon at all.
fn split_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((addr, port));
    }
    s.rsplit_once(':')
}

impl FromStr for ChannelSpec {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const WHAT: &str = "channel (expected SOURCE@GROUP:PORT, e.g. 192.0.2.1@232.1.1.1:5004)";
        let (src, rest) =
            s.split_once('@').ok_or_else(|| parse_err(WHAT, s, "missing '@' between SOURCE and GROUP"))?;
        let (grp, port) = split_port(rest).ok_or_else(|| parse_err(WHAT, s, "missing ':PORT' after the group"))?;
        let source = parse_ip(WHAT, s, src, "source")?;
        let group = parse_ip(WHAT, s, grp, "group")?;
        let port = parse_port(WHAT, s, port)?;
        if source.is_ipv4() != group.is_ipv4() {
            return Err(parse_err(WHAT, s, "source and group must both be IPv4 or both IPv6"));
        }
        if !group.is_multicast() {
            return Err(parse_err(WHAT, s, format!("group {group} is not a multicast address")));
        }
        if source.is_multicast() || source.is_unspecified() {
            return Err(parse_err(WHAT, s, format!("source {source} must be a unicast address")));
        }
        SourceGroup::new(source, group).map_err(|e| parse_err(WHAT, s, e.to_string()))?;
        Ok(ChannelSpec { source, group, port })
    }
}

impl fmt::Display for ChannelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}:{}", self.source, self.group, self.port)
    }
}

/// Parses a relay address `ADDR[:PORT]` (IPv4, bare or bracketed IPv6), defaulting the port
/// to [`AMT_PORT`].
pub fn parse_relay_addr(s: &str) -> Result<SocketAddr, NetError> {
    const WHAT: &str = "relay address (expected ADDR[:PORT])";
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, AMT_PORT));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(sa);
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        if let Ok(ip) = inner.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, AMT_PORT));
        }
    }
    if let Some((a, p)) = split_port(s) {
        let ip = parse_ip(WHAT, s, a, "address")?;
        return Ok(SocketAddr::new(ip, parse_port(WHAT, s, p)?));
    }
    Err(parse_err(WHAT, s, "not an IP address (host names are not resolved)"))
}

/// Parses a socket address `ADDR:PORT` (IPv6 bracketed or bare with the last colon before the port).
pub fn parse_socket_addr(s: &str) -> Result<SocketAddr, NetError> {
    const WHAT: &str = "socket address (expected ADDR:PORT)";
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(sa);
    }
    let (a, p) = split_port(s).ok_or_else(|| parse_err(WHAT, s, "missing ':PORT'"))?;
    let ip = parse_ip(WHAT, s, a, "address")?;
    Ok(SocketAddr::new(ip, parse_port(WHAT, s, p)?))
}

/// `ADDR:PORT=SOURCE@GROUP:PORT`: every UDP datagram received on `listen` is injected as
/// multicast data of `channel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InjectSpec {
    /// Local address to receive plain UDP on.
    pub listen: SocketAddr,
    /// The channel the datagrams become.
    pub channel: ChannelSpec,
}

impl FromStr for InjectSpec {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (l, c) = s
            .split_once('=')
            .ok_or_else(|| parse_err("inject rule (expected ADDR:PORT=SOURCE@GROUP:PORT)", s, "missing '='"))?;
        let listen = parse_socket_addr(l)?;
        let channel = c.parse()?;
        Ok(InjectSpec { listen, channel })
    }
}

impl fmt::Display for InjectSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.listen, self.channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v4_and_v6_channels() {
        let c: ChannelSpec = "192.0.2.1@232.1.1.1:5004".parse().unwrap();
        assert_eq!(c.source, "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(c.group, "232.1.1.1".parse::<IpAddr>().unwrap());
        assert_eq!(c.port, 5004);
        let c: ChannelSpec = "2001:db8::1@ff3e::8000:1:5004".parse().unwrap();
        assert_eq!(c.source, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(c.group, "ff3e::8000:1".parse::<IpAddr>().unwrap());
        assert_eq!(c.port, 5004);
        let b: ChannelSpec = "[2001:db8::1]@[ff3e::8000:1]:5004".parse().unwrap();
        assert_eq!(b, c);
        assert_eq!(c.to_string().parse::<ChannelSpec>().unwrap(), c);
        assert_eq!(c.group_addr(), "[ff3e::8000:1]:5004".parse().unwrap());
    }

    #[test]
    fn channel_errors_name_the_problem() {
        let cases = [
            ("232.1.1.1:5004", "missing '@'"),
            ("192.0.2.1@232.1.1.1", "missing ':PORT'"),
            ("192.0.2.1@232.1.1.1:x", "port \"x\""),
            ("192.0.2.1@10.0.0.1:5004", "not a multicast"),
            ("2001:db8::1@232.1.1.1:5004", "IPv4 or both IPv6"),
            ("nope@232.1.1.1:5004", "source \"nope\""),
            ("192.0.2.1@ff3e::zz:5004", "group \"ff3e::zz\""),
            ("232.2.2.2@232.1.1.1:5004", "unicast"),
            ("192.0.2.1@239.1.1.1:5004", "SSM range"),
            ("2001:db8::1@ff0e::1:5004", "SSM range"),
        ];
        for (input, needle) in cases {
            let e = input.parse::<ChannelSpec>().unwrap_err().to_string();
            assert!(e.contains(needle), "{input}: {e}");
            assert!(e.contains(input), "{input}: {e}");
        }
    }

    #[test]
    fn relay_addresses_default_to_2268() {
        assert_eq!(parse_relay_addr("127.0.0.1").unwrap(), "127.0.0.1:2268".parse().unwrap());
        assert_eq!(parse_relay_addr("127.0.0.1:4000").unwrap(), "127.0.0.1:4000".parse().unwrap());
        assert_eq!(parse_relay_addr("::1").unwrap(), "[::1]:2268".parse().unwrap());
        assert_eq!(parse_relay_addr("[::1]").unwrap(), "[::1]:2268".parse().unwrap());
        assert_eq!(parse_relay_addr("[::1]:9").unwrap(), "[::1]:9".parse().unwrap());
        assert!(parse_relay_addr("relay.example").unwrap_err().to_string().contains("relay.example"));
    }

    #[test]
    fn inject_rules() {
        let r: InjectSpec = "127.0.0.1:6000=192.0.2.1@232.1.1.1:5004".parse().unwrap();
        assert_eq!(r.listen, "127.0.0.1:6000".parse().unwrap());
        assert_eq!(r.channel.port, 5004);
        let r: InjectSpec = "[::1]:6000=2001:db8::1@ff3e::1:5006".parse().unwrap();
        assert_eq!(r.listen, "[::1]:6000".parse().unwrap());
        assert_eq!(r.channel.group, "ff3e::1".parse::<IpAddr>().unwrap());
        assert!("127.0.0.1:6000".parse::<InjectSpec>().unwrap_err().to_string().contains("missing '='"));
    }
}
