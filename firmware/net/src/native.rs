//! Native (non-tunnelled) multicast for the relay and the gateway.
//!
//! Relay side — [`NativeReceiver`]: when a gateway subscribes to (S,G), the relay joins (S,G)
//! on a chosen interface (IGMPv3 / MLDv2 source-specific join through
//! `MCAST_JOIN_SOURCE_GROUP`) and forwards what arrives into the tunnels. An AMT relay must
//! forward the channel's UDP whatever its destination port, which an ordinary UDP socket
//! (bound to one port) cannot do, so this uses a raw `IPPROTO_UDP` socket per address family
//! (needs `CAP_NET_RAW`): IPv4 raw sockets hand us the IP header, IPv6 raw sockets do not, so
//! there the destination group comes from `IPV6_PKTINFO`. A raw UDP socket would see every UDP
//! datagram the host receives, so each socket carries a kernel-side BPF filter
//! ([`crate::native_filter`]) rebuilt on every join and leave: only datagrams of the joined (S,G)
//! reach the relay (checked once more here; [`NativeReceiver::unrelated_seen`] counts any other).
//! UDP sockets with source-specific joins would need one socket per destination port, which an
//! AMT relay does not know (gateways join (S,G), not ports).
//!
//! Service side — [`NativeSource`]: `roomcast server --native-out IFACE` sends every group's
//! stream also as native source-specific multicast from S itself (sockets bound to S and the
//! stream's source port), so that any AMT relay on a multicast network can serve it.
//!
//! Gateway side — [`NativeSender`]: `--forward native` re-sends each delivered payload as
//! native multicast to GROUP:PORT on a chosen interface (ordinary UDP socket with
//! `IP_MULTICAST_IF`/`IPV6_MULTICAST_IF`). The IP source is the interface's address, not S:
//! receivers on that LAN must join (*,G) or (this host, G).

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;

use crate::error::{NetError, Result};
use crate::sockaddr::CAddr;
use crate::socket::{join_source_group, leave_source_group, set_multicast_out};

/// A UDP datagram of a natively received (S,G) channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativePacket {
    /// Source address and UDP source port.
    pub source: SocketAddr,
    /// Group address and UDP destination port.
    pub group: SocketAddr,
    /// UDP payload.
    pub payload: Vec<u8>,
}

/// Parses an IPv4 packet as read from a raw IPPROTO_UDP socket: returns
/// (src, dst, sport, dport, payload) or `None` for anything malformed or fragmented.
pub fn parse_ipv4_udp(pkt: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, u16, u16, &[u8])> {
    let first = *pkt.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*pkt.get(2)?, *pkt.get(3)?]));
    let frag = u16::from_be_bytes([*pkt.get(6)?, *pkt.get(7)?]);
    if ihl < 20 || total < ihl || frag & 0x3fff != 0 || *pkt.get(9)? != 17 {
        return None;
    }
    let src = Ipv4Addr::new(*pkt.get(12)?, *pkt.get(13)?, *pkt.get(14)?, *pkt.get(15)?);
    let dst = Ipv4Addr::new(*pkt.get(16)?, *pkt.get(17)?, *pkt.get(18)?, *pkt.get(19)?);
    let ip_payload = pkt.get(ihl..total.min(pkt.len()))?;
    let (sport, dport, payload) = parse_udp(ip_payload)?;
    Some((src, dst, sport, dport, payload))
}

/// Parses a UDP header + payload: (sport, dport, payload) bounded by the UDP length field.
pub fn parse_udp(udp: &[u8]) -> Option<(u16, u16, &[u8])> {
    let sport = u16::from_be_bytes([*udp.first()?, *udp.get(1)?]);
    let dport = u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]);
    let len = usize::from(u16::from_be_bytes([*udp.get(4)?, *udp.get(5)?]));
    if len < 8 {
        return None;
    }
    Some((sport, dport, udp.get(8..len)?))
}

struct RawSock {
    fd: AsyncFd<Socket>,
    ipv6: bool,
}

impl RawSock {
    fn open(ipv6: bool) -> io::Result<RawSock> {
        let domain = if ipv6 { Domain::IPV6 } else { Domain::IPV4 };
        let s = Socket::new(domain, Type::RAW, Some(Protocol::UDP))?;
        s.set_nonblocking(true)?;
        let _ = s.set_recv_buffer_size(crate::socket::DATA_SOCKET_BUFFER);
        if ipv6 {
            let on: libc::c_int = 1;
            // SAFETY: plain int option of the exact size.
            let r = unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::IPPROTO_IPV6,
                    libc::IPV6_RECVPKTINFO,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if r != 0 {
                return Err(io::Error::last_os_error());
            }
        } else {
            // Receive only what we joined, not every group some other socket joined.
            let _ = s.set_multicast_all_v4(false);
        }
        // Nothing joined yet: the kernel drops everything before it is queued.
        attach(&s, ipv6, &HashSet::new())?;
        // SAFETY: socket2::Socket owns its fd, which stays open and unchanged until the
        // AsyncFd (which owns the Socket) is dropped.
        let fd = unsafe { AsyncFd::register(s) }.map_err(|e| io::Error::other(e.to_string()))?;
        Ok(RawSock { fd, ipv6 })
    }

    /// One non-blocking read: (sender, destination, bytes). For IPv4 the bytes include the IP header.
    fn recv(&self, buf: &mut [u8]) -> io::Result<(Option<SocketAddr>, Option<IpAddr>, usize)> {
        let mut name = CAddr::empty();
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        let mut control = [0u64; 16]; // 128 bytes, 8-aligned, room for in6_pktinfo
                                      // SAFETY: POD zero init; all pointers below refer to live locals/`buf` for the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = name.as_mut_ptr();
        msg.msg_namelen = name.len;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: msg is fully set up as above.
        let r = unsafe { libc::recvmsg(self.fd.get_ref().as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        name.len = msg.msg_namelen;
        let mut dst = None;
        if self.ipv6 {
            // SAFETY: walking the control buffer the kernel filled, with the libc CMSG macros,
            // bounded by msg_controllen; in6_pktinfo is read unaligned.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&msg);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::IPPROTO_IPV6 && (*c).cmsg_type == libc::IPV6_PKTINFO {
                        let info: libc::in6_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                        dst = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
                    }
                    c = libc::CMSG_NXTHDR(&msg, c);
                }
            }
        }
        Ok((name.to_std(), dst, r as usize))
    }
}

/// Attaches the filter taking only the `joined` pairs of this socket's family.
fn attach(s: &Socket, ipv6: bool, joined: &HashSet<(IpAddr, IpAddr)>) -> io::Result<()> {
    let prog: Vec<socket2::SockFilter> = crate::native_filter::program(ipv6, joined)
        .into_iter()
        .map(|i| socket2::SockFilter::new(i.code, i.jt, i.jf, i.k))
        .collect();
    s.attach_filter(&prog)
}

/// Relay-side native multicast: joins (S,G) channels on one interface and yields their UDP.
pub struct NativeReceiver {
    ifindex: u32,
    v4: Option<RawSock>,
    v6: Option<RawSock>,
    joined: HashSet<(IpAddr, IpAddr)>,
    buf: Vec<u8>,
    unrelated: u64,
}

impl std::fmt::Debug for NativeReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeReceiver").field("ifindex", &self.ifindex).field("joined", &self.joined).finish()
    }
}

impl NativeReceiver {
    /// Opens raw UDP sockets (IPv4 and IPv6; at least one must succeed) for interface `ifindex`.
    /// Must be called inside a tokio runtime.
    pub fn new(ifindex: u32) -> Result<NativeReceiver> {
        let v4 = RawSock::open(false);
        let v6 = RawSock::open(true);
        if let (Err(e4), Err(_)) = (&v4, &v6) {
            return Err(NetError::Socket {
                what: "opening raw UDP sockets for native multicast (needs CAP_NET_RAW)".into(),
                source: io::Error::new(e4.kind(), e4.to_string()),
            });
        }
        Ok(NativeReceiver {
            ifindex,
            v4: v4.ok(),
            v6: v6.ok(),
            joined: HashSet::new(),
            buf: vec![0; 65536],
            unrelated: 0,
        })
    }

    fn sock_for(&self, group: IpAddr) -> Result<&RawSock> {
        let s = if group.is_ipv4() { self.v4.as_ref() } else { self.v6.as_ref() };
        s.ok_or_else(|| NetError::Socket {
            what: format!("no raw socket for the address family of {group}"),
            source: io::Error::from(io::ErrorKind::Unsupported),
        })
    }

    /// Joins (source, group) on the interface (idempotent).
    pub fn join(&mut self, source: IpAddr, group: IpAddr) -> Result<()> {
        if self.joined.contains(&(source, group)) {
            return Ok(());
        }
        let sock = self.sock_for(group)?;
        let mut with = self.joined.clone();
        with.insert((source, group));
        // The filter first, so the channel's first datagrams are taken.
        attach(sock.fd.get_ref(), group.is_ipv6(), &with)
            .map_err(|e| NetError::Socket { what: "attaching the native multicast filter".into(), source: e })?;
        join_source_group(sock.fd.get_ref(), self.ifindex, source, group)?;
        self.joined = with;
        Ok(())
    }

    /// Leaves (source, group) (no-op when not joined).
    pub fn leave(&mut self, source: IpAddr, group: IpAddr) -> Result<()> {
        if !self.joined.remove(&(source, group)) {
            return Ok(());
        }
        let sock = self.sock_for(group)?;
        let left = leave_source_group(sock.fd.get_ref(), self.ifindex, source, group);
        attach(sock.fd.get_ref(), group.is_ipv6(), &self.joined)
            .map_err(|e| NetError::Socket { what: "attaching the native multicast filter".into(), source: e })?;
        left
    }

    /// Datagrams read that were of no joined (S,G) (the kernel filter should leave none).
    pub fn unrelated_seen(&self) -> u64 {
        self.unrelated
    }

    /// The joined channels.
    pub fn joined(&self) -> impl Iterator<Item = &(IpAddr, IpAddr)> {
        self.joined.iter()
    }

    /// Waits for the next datagram of a joined channel.
    pub async fn recv(&mut self) -> io::Result<NativePacket> {
        loop {
            let ipv6 = match (&self.v4, &self.v6) {
                (Some(a), Some(b)) => tokio::select! {
                    r = a.fd.readable() => { drop(r?); false }
                    r = b.fd.readable() => { drop(r?); true }
                },
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (None, None) => std::future::pending().await,
            };
            // try_io clears readiness only when the read would block, so queued datagrams
            // are never stranded.
            let sock = if ipv6 { self.v6.as_ref() } else { self.v4.as_ref() };
            let Some(sock) = sock else { continue };
            let mut guard = sock.fd.readable().await?;
            let got = match guard.try_io(|_| sock.recv(&mut self.buf)) {
                Ok(r) => r?,
                Err(_would_block) => continue,
            };
            let (from, dst, n) = got;
            let data = &self.buf[..n.min(self.buf.len())];
            let pkt = if ipv6 {
                let (Some(from), Some(dst)) = (from, dst) else { continue };
                let Some((sport, dport, payload)) = parse_udp(data) else { continue };
                NativePacket {
                    source: SocketAddr::new(from.ip(), sport),
                    group: SocketAddr::new(dst, dport),
                    payload: payload.to_vec(),
                }
            } else {
                let Some((src, dst, sport, dport, payload)) = parse_ipv4_udp(data) else { continue };
                NativePacket {
                    source: SocketAddr::new(src.into(), sport),
                    group: SocketAddr::new(dst.into(), dport),
                    payload: payload.to_vec(),
                }
            };
            if self.joined.contains(&(pkt.source.ip(), pkt.group.ip())) {
                return Ok(pkt);
            }
            self.unrelated += 1;
        }
    }
}

/// Gateway-side native re-send of delivered payloads to GROUP:PORT on one interface.
#[derive(Debug)]
pub struct NativeSender {
    v4: Option<std::net::UdpSocket>,
    v6: Option<std::net::UdpSocket>,
}

impl NativeSender {
    /// Sockets sending multicast out of interface `ifindex` with TTL/hop limit `ttl`.
    pub fn new(ifindex: u32, ttl: u32) -> Result<NativeSender> {
        let make = |ipv6: bool| -> Result<std::net::UdpSocket> {
            let domain = if ipv6 { Domain::IPV6 } else { Domain::IPV4 };
            let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
            set_multicast_out(&s, ipv6, ifindex, ttl)?;
            s.set_nonblocking(true)?;
            Ok(s.into())
        };
        let v4 = make(false);
        let v6 = make(true);
        if let (Err(e), Err(_)) = (&v4, &v6) {
            return Err(NetError::Socket {
                what: format!("native multicast sender: {e}"),
                source: io::Error::other("no usable socket"),
            });
        }
        Ok(NativeSender { v4: v4.ok(), v6: v6.ok() })
    }

    /// Sends `payload` to `group` (GROUP:PORT). Non-blocking; a full buffer drops the datagram.
    pub fn send(&self, group: SocketAddr, payload: &[u8]) -> io::Result<()> {
        let s = if group.is_ipv4() { self.v4.as_ref() } else { self.v6.as_ref() };
        let s = s.ok_or_else(|| io::Error::from(io::ErrorKind::Unsupported))?;
        s.send_to(payload, group).map(|_| ())
    }
}

/// Native SSM sending of (S,G) streams from S: one socket per (S, source port), opened on
/// first use. A source that cannot be bound (not an address of this host) is reported once and
/// skipped from then on.
#[derive(Debug)]
pub struct NativeSource {
    ifindex: u32,
    ttl: u32,
    socks: std::collections::HashMap<SocketAddr, Option<std::net::UdpSocket>>,
}

impl NativeSource {
    /// Sends out of interface `ifindex` with TTL / hop limit `ttl`.
    pub fn new(ifindex: u32, ttl: u32) -> NativeSource {
        NativeSource { ifindex, ttl, socks: std::collections::HashMap::new() }
    }

    /// Sends `payload` of (source, group) from `source:sport` to `group:dport`. Non-blocking: a
    /// full socket buffer drops the datagram (error returned).
    pub fn send(&mut self, source: IpAddr, group: IpAddr, sport: u16, dport: u16, payload: &[u8]) -> io::Result<()> {
        let from = SocketAddr::new(source, sport);
        let (ifindex, ttl) = (self.ifindex, self.ttl);
        let sock = self.socks.entry(from).or_insert_with(|| match source_socket(from, ifindex, ttl) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(%from, "native multicast out disabled for this source: {e}");
                None
            }
        });
        let s = sock.as_ref().ok_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable))?;
        s.send_to(payload, SocketAddr::new(group, dport)).map(|_| ())
    }
}

fn source_socket(from: SocketAddr, ifindex: u32, ttl: u32) -> Result<std::net::UdpSocket> {
    let domain = if from.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    let _ = s.set_reuse_address(true);
    s.bind(&from.into())
        .map_err(|e| NetError::Socket { what: format!("binding the multicast source {from}"), source: e })?;
    set_multicast_out(&s, from.is_ipv6(), ifindex, ttl)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// A UDP socket that sends native multicast out of interface `ifindex` from `source` (bound to
/// it, so receivers that joined (source, G) take it; `source` must be an address of this host).
pub fn multicast_source_socket(source: IpAddr, ifindex: u32, ttl: u32) -> Result<std::net::UdpSocket> {
    let s = source_socket(SocketAddr::new(source, 0), ifindex, ttl)?;
    s.set_nonblocking(false)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let total = 28 + payload.len();
        let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, 17, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        let ulen = 8 + payload.len();
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&(ulen as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn parses_ipv4_udp_and_rejects_junk() {
        let p = ipv4_udp([10, 0, 0, 1], [232, 1, 1, 1], 4000, 5004, b"data");
        let (s, d, sp, dp, pl) = parse_ipv4_udp(&p).unwrap();
        assert_eq!(
            (s, d, sp, dp, pl),
            (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(232, 1, 1, 1), 4000, 5004, &b"data"[..])
        );
        for cut in 0..p.len() - 4 {
            assert!(parse_ipv4_udp(&p[..cut]).is_none(), "cut at {cut}");
        }
        let mut frag = p.clone();
        frag[6] = 0x20; // MF
        assert!(parse_ipv4_udp(&frag).is_none());
        let mut tcp = p.clone();
        tcp[9] = 6;
        assert!(parse_ipv4_udp(&tcp).is_none());
        assert!(parse_udp(&[0, 1, 0, 2, 0, 3, 0, 0]).is_none(), "UDP length < 8");
    }
}
