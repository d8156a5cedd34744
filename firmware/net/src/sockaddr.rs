//! Conversions between `std::net::SocketAddr` and the C `sockaddr_in`/`sockaddr_in6` the raw
//! `sendmmsg`/`recvmmsg`/`recvmsg` calls of [`crate::mmsg`] and [`crate::native`] need.
//!
//! Kept tiny and self-contained so the `unsafe` in the batch IO code only ever sees
//! well-formed, correctly sized address buffers.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// A C socket address big enough for IPv4 and IPv6, with its length.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) union RawAddr {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

/// A C socket address plus the length the kernel should read.
#[derive(Clone, Copy)]
pub(crate) struct CAddr {
    pub(crate) raw: RawAddr,
    pub(crate) len: libc::socklen_t,
}

impl CAddr {
    /// Encodes a Rust socket address.
    pub(crate) fn from_std(addr: &SocketAddr) -> CAddr {
        match addr {
            SocketAddr::V4(a) => {
                // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
                let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr = libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) };
                CAddr { raw: RawAddr { v4: sin }, len: std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t }
            }
            SocketAddr::V6(a) => {
                // SAFETY: sockaddr_in6 is plain old data; all-zero is a valid value.
                let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_flowinfo = a.flowinfo();
                sin6.sin6_addr = libc::in6_addr { s6_addr: a.ip().octets() };
                sin6.sin6_scope_id = a.scope_id();
                CAddr { raw: RawAddr { v6: sin6 }, len: std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t }
            }
        }
    }

    /// An empty, zeroed buffer for the kernel to fill (receive side).
    pub(crate) fn empty() -> CAddr {
        CAddr {
            // SAFETY: the union of two POD structs; all-zero is valid.
            raw: unsafe { std::mem::zeroed() },
            len: std::mem::size_of::<RawAddr>() as libc::socklen_t,
        }
    }

    /// Pointer for `msg_name` (the kernel reads or writes `len` bytes).
    pub(crate) fn as_mut_ptr(&mut self) -> *mut libc::c_void {
        (&mut self.raw as *mut RawAddr).cast()
    }

    /// Decodes what the kernel wrote (family checked; unknown families give `None`).
    pub(crate) fn to_std(self) -> Option<SocketAddr> {
        // SAFETY: both variants start with the family field at the same offset
        // (sa_family_t), so reading it through either view is valid; we then only read
        // the variant that family names, and only if the kernel said it wrote enough bytes.
        let family = unsafe { self.raw.v4.sin_family } as libc::c_int;
        let len = self.len as usize;
        if family == libc::AF_INET && len >= std::mem::size_of::<libc::sockaddr_in>() {
            let sin = unsafe { self.raw.v4 };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        } else if family == libc::AF_INET6 && len >= std::mem::size_of::<libc::sockaddr_in6>() {
            let sin6 = unsafe { self.raw.v6 };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_v4_and_v6() {
        for s in ["127.0.0.1:2268", "[::1]:5004", "[ff3e::8000:1]:0", "0.0.0.0:65535"] {
            let a: SocketAddr = s.parse().unwrap();
            assert_eq!(CAddr::from_std(&a).to_std(), Some(a), "{s}");
        }
    }

    #[test]
    fn empty_buffer_decodes_to_none() {
        assert_eq!(CAddr::empty().to_std(), None);
    }
}
