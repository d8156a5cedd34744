//! The meeting service's address as `[meeting] server` names it: `https://HOST[:PORT]`,
//! `http://HOST[:PORT]`, or the older bare `HOST:PORT` (plain HTTP). The port defaults to 8470.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::MeetingError;

/// The control API's default port.
pub const DEFAULT_PORT: u16 = 8470;

/// A parsed `[meeting] server`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// TLS (`https://`) or plain HTTP.
    pub tls: bool,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Endpoint {
    /// `HOST:PORT` (IPv6 in brackets), for connecting and for the `Host` header.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Whether the host is this machine's loopback (`localhost`, 127.0.0.0/8, `::1`): the only
    /// place plain HTTP is fine without saying so.
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost") || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", if self.tls { "https" } else { "http" }, self.authority())
    }
}

impl FromStr for Endpoint {
    type Err = MeetingError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| MeetingError::Invalid(why);
        let (tls, rest) = match s.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
            Some((scheme, _)) => return Err(bad(format!("{scheme:?}: the scheme must be https:// (or http://)"))),
            None => (false, s),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(bad(format!("{s:?}: give only the scheme, host and port (no path)")));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, tail) = v6.split_once(']').ok_or_else(|| bad(format!("{s:?}: unclosed [")))?;
            (h, tail.strip_prefix(':'))
        } else if rest.matches(':').count() > 1 {
            return Err(bad(format!("{s:?}: write an IPv6 address in brackets, [ADDR]:PORT")));
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| bad(format!("{p:?} is not a port (1..65535)")))?,
            None if s.contains("://") => DEFAULT_PORT,
            None => return Err(bad(format!("{s:?} needs a port: HOST:PORT (e.g. \"10.0.2.2:8470\") or https://HOST"))),
        };
        let host_ok = host.parse::<IpAddr>().is_ok()
            || (!host.is_empty()
                && host.len() <= 253
                && host.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.'));
        if !host_ok {
            return Err(bad(format!("{host:?} is not a host name or IP address")));
        }
        Ok(Self { tls, host: host.to_string(), port })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_schemes_hosts_and_ports() {
        let e: Endpoint = "https://meet.example.org".parse().unwrap();
        assert_eq!((e.tls, e.host.as_str(), e.port), (true, "meet.example.org", 8470));
        assert!(!e.is_loopback());
        let e: Endpoint = "10.0.2.2:8470".parse().unwrap();
        assert_eq!((e.tls, e.authority()), (false, "10.0.2.2:8470".to_string()));
        let e: Endpoint = "http://127.0.0.1:9000/".parse().unwrap();
        assert!(!e.tls && e.is_loopback() && e.port == 9000);
        let e: Endpoint = "https://[::1]:8443".parse().unwrap();
        assert_eq!((e.host.as_str(), e.authority()), ("::1", "[::1]:8443".to_string()));
        assert!(e.is_loopback());
        assert!("https://localhost".parse::<Endpoint>().unwrap().is_loopback());
        assert_eq!("https://h:1".parse::<Endpoint>().unwrap().to_string(), "https://h:1");
        for bad in ["ftp://h:1", "h", "https://h:0", "https://h:x", "https://h/path", "::1:80", "https://", "a b:1"] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }
}
