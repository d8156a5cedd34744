//! The local address of each datagram (`IP_PKTINFO` / `IPV6_RECVPKTINFO`) and replies sent from
//! a chosen local address, for sockets bound to a wildcard address.
//!
//! A relay listening on `0.0.0.0` or `[::]` must advertise the unicast address a gateway
//! reached it at (RFC 7450 5.1.2) and answer from it; the kernel tells that address per
//! datagram in a control message when asked to. `socket2` and `tokio` do not parse control
//! messages, so this is a few lines of `libc` around `CMSG_*`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};

use crate::sockaddr::CAddr;

/// Bytes of control buffer one received datagram needs (an `in_pktinfo` and an `in6_pktinfo`,
/// with headers and padding, fit easily), in `u64`s for alignment.
pub(crate) const CONTROL_WORDS: usize = 16;

/// Asks the kernel to report the destination address of every received datagram (both
/// families on a dual-stack IPv6 socket).
pub fn enable_local_address(sock: &impl AsRawFd, ipv6: bool) -> io::Result<()> {
    let fd = sock.as_raw_fd();
    if ipv6 {
        set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)?;
        // IPv4 peers of a dual-stack socket: also as IP_PKTINFO (the IPv6 form is mapped).
        let _ = set_int(fd, libc::IPPROTO_IP, libc::IP_PKTINFO);
        Ok(())
    } else {
        set_int(fd, libc::IPPROTO_IP, libc::IP_PKTINFO)
    }
}

fn set_int(fd: RawFd, level: libc::c_int, opt: libc::c_int) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: an int option of the exact size on a valid fd.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The destination address in the control messages of a received `msghdr` (the IPv4 form of
/// an IPv4-mapped address), if the kernel put one there.
pub(crate) fn local_address(hdr: &libc::msghdr) -> Option<IpAddr> {
    let mut found = None;
    // SAFETY: hdr is a msghdr the kernel filled in recvmsg/recvmmsg; msg_control points at a
    // live, u64-aligned buffer of msg_controllen bytes; CMSG_* walk only inside it and we read
    // each payload unaligned, only when its length covers the struct read.
    unsafe {
        if hdr.msg_control.is_null() || hdr.msg_controllen == 0 {
            return None;
        }
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            let h = &*c;
            let data = libc::CMSG_DATA(c);
            let avail = (h.cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
            if h.cmsg_level == libc::IPPROTO_IPV6
                && h.cmsg_type == libc::IPV6_PKTINFO
                && avail >= std::mem::size_of::<libc::in6_pktinfo>()
            {
                let p: libc::in6_pktinfo = std::ptr::read_unaligned(data.cast());
                found = Some(IpAddr::V6(Ipv6Addr::from(p.ipi6_addr.s6_addr)).to_canonical());
            } else if h.cmsg_level == libc::IPPROTO_IP
                && h.cmsg_type == libc::IP_PKTINFO
                && avail >= std::mem::size_of::<libc::in_pktinfo>()
            {
                let p: libc::in_pktinfo = std::ptr::read_unaligned(data.cast());
                found.get_or_insert(IpAddr::V4(Ipv4Addr::from(p.ipi_addr.s_addr.to_ne_bytes())));
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
    found
}

/// Sends one datagram to `dest` from the local address `source` (non-blocking). `ipv6_socket`:
/// the socket is IPv6 (an IPv4 `source` then goes as an IPv4-mapped `IPV6_PKTINFO`, which Linux
/// accepts for IPv4-mapped destinations).
pub fn send_from(
    sock: &impl AsRawFd,
    payload: &[u8],
    dest: &SocketAddr,
    source: IpAddr,
    ipv6_socket: bool,
) -> io::Result<()> {
    let mut name = CAddr::from_std(dest);
    let mut iov = libc::iovec { iov_base: payload.as_ptr() as *mut libc::c_void, iov_len: payload.len() };
    let mut control = [0u64; CONTROL_WORDS];
    // SAFETY: msghdr is POD; every pointer we set points at a live local (name, iov, control)
    // that outlives the sendmsg call; the control message is written inside `control`, whose
    // size bounds msg_controllen, with CMSG_* computing offsets and lengths.
    unsafe {
        let mut hdr: libc::msghdr = std::mem::zeroed();
        hdr.msg_name = name.as_mut_ptr();
        hdr.msg_namelen = name.len;
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        hdr.msg_control = control.as_mut_ptr().cast();
        let (level, ty, len) = if ipv6_socket {
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, std::mem::size_of::<libc::in6_pktinfo>())
        } else {
            (libc::IPPROTO_IP, libc::IP_PKTINFO, std::mem::size_of::<libc::in_pktinfo>())
        };
        hdr.msg_controllen = libc::CMSG_SPACE(len as u32) as _;
        let c = libc::CMSG_FIRSTHDR(&hdr);
        if c.is_null() {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        (*c).cmsg_level = level;
        (*c).cmsg_type = ty;
        (*c).cmsg_len = libc::CMSG_LEN(len as u32) as _;
        let data = libc::CMSG_DATA(c);
        if ipv6_socket {
            let ip6 = match source {
                IpAddr::V4(a) => a.to_ipv6_mapped(),
                IpAddr::V6(a) => a,
            };
            let p = libc::in6_pktinfo { ipi6_addr: libc::in6_addr { s6_addr: ip6.octets() }, ipi6_ifindex: 0 };
            std::ptr::write_unaligned(data.cast(), p);
        } else {
            let IpAddr::V4(a) = source else {
                return Err(io::Error::from(io::ErrorKind::InvalidInput));
            };
            let p = libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr { s_addr: u32::from_ne_bytes(a.octets()) },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            std::ptr::write_unaligned(data.cast(), p);
        }
        let r = libc::sendmsg(sock.as_raw_fd(), &hdr, libc::MSG_DONTWAIT);
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mmsg::RecvBatch;
    use std::time::Duration;

    fn recv_one(batch: &mut RecvBatch, s: &std::net::UdpSocket) {
        for _ in 0..200 {
            match batch.recv(s) {
                Ok(_) => return,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("{e}"),
            }
        }
        panic!("nothing received");
    }

    #[test]
    fn wildcard_sockets_learn_the_local_address_and_answer_from_it() {
        for (wild, to, ipv6) in [
            ("0.0.0.0:0", "127.0.0.1", false),
            ("0.0.0.0:0", "127.0.0.2", false),
            ("[::]:0", "127.0.0.3", true),
            ("[::]:0", "::1", true),
        ] {
            let rx = crate::socket::bind_udp(wild.parse().unwrap()).unwrap();
            enable_local_address(&rx, ipv6).unwrap();
            let to_ip: IpAddr = to.parse().unwrap();
            let tx = std::net::UdpSocket::bind(SocketAddr::new(to_ip, 0)).unwrap();
            tx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            tx.send_to(b"ping", SocketAddr::new(to_ip, rx.local_addr().unwrap().port())).unwrap();
            let mut batch = RecvBatch::with_local_addresses(4, 64);
            recv_one(&mut batch, &rx);
            let d = batch.iter().next().unwrap();
            assert_eq!(d.local, Some(to_ip), "{wild} reached at {to}");
            let from = d.from;
            // The reply leaves from that address (the peer sees it as the sender).
            send_from(&rx, b"pong", &from, to_ip, ipv6).unwrap();
            let mut buf = [0u8; 8];
            let (n, src) = tx.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"pong");
            assert_eq!(src.ip().to_canonical(), to_ip);
        }
    }

    #[test]
    fn without_control_buffers_there_is_no_local_address() {
        let rx = crate::socket::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"x", rx.local_addr().unwrap()).unwrap();
        let mut batch = RecvBatch::new(2, 16);
        recv_one(&mut batch, &rx);
        assert_eq!(batch.iter().next().unwrap().local, None);
    }
}
