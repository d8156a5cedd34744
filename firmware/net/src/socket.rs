//! Socket setup shared by the drivers: binding UDP sockets with sensible buffers, looking up
//! interfaces, source-specific multicast membership (IPv4 and IPv6 alike through
//! `MCAST_JOIN_SOURCE_GROUP`, RFC 3678) and the outgoing multicast interface.
//!
//! `socket2` covers binding and most options; the protocol-independent source-specific
//! join (one call for both families, by interface index) is not in `socket2`, so it is a
//! few lines of `libc` here.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};

use crate::error::{NetError, Result};
use crate::sockaddr::CAddr;

/// Socket buffer size we ask for on data-path sockets (the kernel may clamp it to
/// `net.core.rmem_max`/`wmem_max`; that is fine).
pub const DATA_SOCKET_BUFFER: usize = 4 << 20;

/// Creates a non-blocking UDP socket bound to `addr` with large buffers, as a std socket
/// (ready for `tokio::net::UdpSocket::from_std`).
pub fn bind_udp(addr: SocketAddr) -> Result<std::net::UdpSocket> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(|source| NetError::Bind { addr, source })?;
    // Bigger buffers absorb fan-out bursts and scheduling hiccups; failure is not fatal.
    grow_buffers(&sock, DATA_SOCKET_BUFFER);
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        // `[::]` serves IPv4 peers too (as mapped addresses), whatever net.ipv6.bindv6only says.
        let _ = sock.set_only_v6(false);
    }
    sock.set_nonblocking(true).map_err(|source| NetError::Bind { addr, source })?;
    sock.bind(&addr.into()).map_err(|source| NetError::Bind { addr, source })?;
    Ok(sock.into())
}

/// Asks for `size`-byte send and receive buffers. The kernel clamps plain requests to
/// `net.core.rmem_max`/`wmem_max` (about 200 KiB by default, ~90 full-size datagrams); with
/// `CAP_NET_ADMIN` the `*BUFFORCE` options lift that cap. Best effort, never fails.
pub fn grow_buffers(sock: &impl AsRawFd, size: usize) {
    let fd = sock.as_raw_fd();
    let val = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    for (plain, force) in [(libc::SO_RCVBUF, libc::SO_RCVBUFFORCE), (libc::SO_SNDBUF, libc::SO_SNDBUFFORCE)] {
        // SAFETY: plain int socket options of the exact size on a valid fd.
        unsafe {
            let p = (&val as *const libc::c_int).cast();
            let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            if libc::setsockopt(fd, libc::SOL_SOCKET, force, p, len) != 0 {
                libc::setsockopt(fd, libc::SOL_SOCKET, plain, p, len);
            }
        }
    }
}

/// Same as [`bind_udp`] but registered with the current tokio runtime.
pub fn bind_tokio_udp(addr: SocketAddr) -> Result<tokio::net::UdpSocket> {
    let std = bind_udp(addr)?;
    tokio::net::UdpSocket::from_std(std).map_err(|source| NetError::Bind { addr, source })
}

/// Maps `addr` to what a socket of family `socket_is_v6` can send to: IPv4 destinations
/// become IPv4-mapped IPv6 (`::ffff:a.b.c.d`) on a dual-stack IPv6 socket. (The AMT machines
/// canonicalise mapped addresses to IPv4, so replies need this on a `[::]` socket.)
pub fn for_socket(addr: SocketAddr, socket_is_v6: bool) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if socket_is_v6 => SocketAddr::new(IpAddr::V6(a.ip().to_ipv6_mapped()), a.port()),
        other => other,
    }
}

/// Index of the network interface `name` (e.g. "eth0", "lo").
pub fn interface_index(name: &str) -> Result<u32> {
    let c = std::ffi::CString::new(name).map_err(|_| NetError::Interface {
        name: name.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "name contains a NUL byte"),
    })?;
    // SAFETY: c is a valid NUL-terminated string alive for the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(NetError::Interface { name: name.to_owned(), source: std::io::Error::last_os_error() })
    } else {
        Ok(idx)
    }
}

fn source_group_req(ifindex: u32, source: IpAddr, group: IpAddr) -> libc::group_source_req {
    fn storage(ip: IpAddr) -> libc::sockaddr_storage {
        let c = CAddr::from_std(&SocketAddr::new(ip, 0));
        // SAFETY: sockaddr_storage is POD and larger than RawAddr; we copy `len` bytes of
        // a correctly encoded sockaddr into its start.
        unsafe {
            let mut st: libc::sockaddr_storage = std::mem::zeroed();
            std::ptr::copy_nonoverlapping(
                (&c.raw as *const crate::sockaddr::RawAddr).cast::<u8>(),
                (&mut st as *mut libc::sockaddr_storage).cast::<u8>(),
                c.len as usize,
            );
            st
        }
    }
    libc::group_source_req { gsr_interface: ifindex, gsr_group: storage(group), gsr_source: storage(source) }
}

fn source_membership(sock: &impl AsRawFd, ifindex: u32, source: IpAddr, group: IpAddr, join: bool) -> Result<()> {
    if source.is_ipv4() != group.is_ipv4() {
        return Err(NetError::Socket {
            what: format!("source {source} and group {group} are of different address families"),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        });
    }
    let level = if group.is_ipv4() { libc::IPPROTO_IP } else { libc::IPPROTO_IPV6 };
    let opt = if join { libc::MCAST_JOIN_SOURCE_GROUP } else { libc::MCAST_LEAVE_SOURCE_GROUP };
    let req = source_group_req(ifindex, source, group);
    // SAFETY: req is a fully initialised group_source_req and we pass its exact size.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            opt,
            (&req as *const libc::group_source_req).cast(),
            std::mem::size_of::<libc::group_source_req>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(NetError::Socket {
            what: format!(
                "{} source-specific group ({source}, {group}) on interface #{ifindex}",
                if join { "joining" } else { "leaving" }
            ),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Joins the source-specific multicast channel (source, group) on interface `ifindex`
/// (IGMPv3/MLDv2 report sent by the kernel). Works for IPv4 and IPv6.
pub fn join_source_group(sock: &impl AsRawFd, ifindex: u32, source: IpAddr, group: IpAddr) -> Result<()> {
    source_membership(sock, ifindex, source, group, true)
}

/// Leaves what [`join_source_group`] joined.
pub fn leave_source_group(sock: &impl AsRawFd, ifindex: u32, source: IpAddr, group: IpAddr) -> Result<()> {
    source_membership(sock, ifindex, source, group, false)
}

/// The first IPv4 address of interface `ifindex`, if it has one.
pub fn interface_ipv4(ifindex: u32) -> Option<std::net::Ipv4Addr> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates a linked list we walk read-only and free with freeifaddrs.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return None;
        }
        let mut found = None;
        let mut cur = list;
        while !cur.is_null() {
            let ifa = &*cur;
            if !ifa.ifa_addr.is_null()
                && i32::from((*ifa.ifa_addr).sa_family) == libc::AF_INET
                && libc::if_nametoindex(ifa.ifa_name) == ifindex
            {
                let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                found = Some(std::net::Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()));
                break;
            }
            cur = ifa.ifa_next;
        }
        libc::freeifaddrs(list);
        found
    }
}

/// Makes `sock` send its multicast on interface `ifindex`, loop back locally, and with a TTL /
/// hop limit of `ttl` (native re-send of `roomcast gateway --forward native`).
pub fn set_multicast_out(sock: &Socket, ipv6: bool, ifindex: u32, ttl: u32) -> Result<()> {
    let err = |what: &str, source| NetError::Socket { what: what.to_owned(), source };
    if ipv6 {
        sock.set_multicast_if_v6(ifindex).map_err(|e| err("setting IPV6_MULTICAST_IF", e))?;
        sock.set_multicast_hops_v6(ttl).map_err(|e| err("setting IPV6_MULTICAST_HOPS", e))?;
        sock.set_multicast_loop_v6(true).map_err(|e| err("setting IPV6_MULTICAST_LOOP", e))?;
    } else {
        // Index AND the interface's own address: with the index alone Linux may pick a source
        // address of another interface (it does for `lo`, whose addresses are host-scoped).
        let addr = interface_ipv4(ifindex).map_or(0, |a| u32::from_ne_bytes(a.octets()));
        let mreqn = libc::ip_mreqn {
            imr_multiaddr: libc::in_addr { s_addr: 0 },
            imr_address: libc::in_addr { s_addr: addr },
            imr_ifindex: ifindex as libc::c_int,
        };
        // SAFETY: mreqn is fully initialised and we pass its exact size.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_MULTICAST_IF,
                (&mreqn as *const libc::ip_mreqn).cast(),
                std::mem::size_of::<libc::ip_mreqn>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(err("setting IP_MULTICAST_IF", std::io::Error::last_os_error()));
        }
        sock.set_multicast_ttl_v4(ttl).map_err(|e| err("setting IP_MULTICAST_TTL", e))?;
        sock.set_multicast_loop_v4(true).map_err(|e| err("setting IP_MULTICAST_LOOP", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_interface_exists_and_bogus_does_not() {
        assert!(interface_index("lo").unwrap() > 0);
        let e = interface_index("no-such-if0").unwrap_err();
        assert!(e.to_string().contains("no-such-if0"), "{e}");
    }

    #[test]
    fn bind_reports_the_address() {
        let a = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let taken = a.local_addr().unwrap();
        let e = bind_udp(taken).unwrap_err();
        assert!(e.to_string().contains(&taken.to_string()), "{e}");
    }

    #[test]
    fn v4_destinations_are_mapped_for_v6_sockets() {
        let a: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(for_socket(a, false), a);
        assert_eq!(for_socket(a, true), "[::ffff:127.0.0.1]:9".parse::<SocketAddr>().unwrap());
        let b: SocketAddr = "[::1]:9".parse().unwrap();
        assert_eq!(for_socket(b, true), b);
    }

    #[test]
    fn loopback_has_127_0_0_1() {
        let lo = interface_index("lo").unwrap();
        assert_eq!(interface_ipv4(lo), Some(std::net::Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn mixed_family_join_is_rejected() {
        let s = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let e = join_source_group(&s, 1, "::1".parse().unwrap(), "232.1.1.1".parse().unwrap()).unwrap_err();
        assert!(e.to_string().contains("different address families"));
    }
}
