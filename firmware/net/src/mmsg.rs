//! Batched UDP IO: `sendmmsg(2)` for the relay's fan-out and `recvmmsg(2)` for receiving,
//! behind a small safe API.
//!
//! Why raw `libc`: neither `socket2` nor `tokio` expose `sendmmsg`/`recvmmsg`, and the
//! crates that do (quinn-udp) are built around one-destination GSO/GRO segments. Our hot
//! path is the opposite shape: ONE encapsulated AMT Multicast Data packet (identical bytes)
//! to MANY gateways, each a different destination address. `sendmmsg` does exactly that in
//! one system call per [`SEND_BATCH`] gateways: every `mmsghdr` points at the same payload
//! `iovec` and differs only in `msg_name`.
//!
//! UDP GSO (`UDP_SEGMENT`) is NOT applicable here: it splits one large buffer into segments
//! that all go to the SAME destination, while a relay sends the same packet to different
//! destinations. (GSO would only help a single gateway receiving a burst, which is not the
//! scaling problem.)
//!
//! Fallback: on non-Linux targets, or if the kernel (or a seccomp filter, or qemu-user)
//! answers `ENOSYS`, we loop over plain `sendto`/`recvfrom`, one datagram per call, with the
//! same semantics.
//!
//! All functions here are non-blocking (`MSG_DONTWAIT`) and return `WouldBlock` when the
//! socket is not ready, so they slot straight into `tokio::net::UdpSocket::try_io`/`async_io`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::pktinfo::CONTROL_WORDS;
use crate::sockaddr::CAddr;

/// Destinations per `sendmmsg` call (the kernel caps one call at `UIO_MAXIOV` = 1024).
pub const SEND_BATCH: usize = 256;

/// Datagrams per `recvmmsg` call of a [`RecvBatch`] made with [`RecvBatch::default`].
pub const RECV_BATCH: usize = 32;

/// Largest UDP payload we accept into a receive slot (jumbo-safe; AMT data is < 1500 bytes).
pub const MAX_DATAGRAM: usize = 9216;

/// Set once the kernel told us it has no mmsg calls; from then on we use the fallback.
static MMSG_UNAVAILABLE: AtomicBool = AtomicBool::new(false);

/// Whether the batched calls are in use (false after an `ENOSYS`, or off Linux).
pub fn mmsg_available() -> bool {
    cfg!(any(target_os = "linux", target_os = "android")) && !MMSG_UNAVAILABLE.load(Ordering::Relaxed)
}

/// A list of destinations encoded once as C socket addresses, reusable for many fan-outs
/// (the relay rebuilds it only when a group's subscriber set changes).
#[derive(Clone, Default)]
pub struct Destinations {
    addrs: Vec<CAddr>,
    std: Vec<SocketAddr>,
}

impl Destinations {
    /// Encodes `addrs`.
    pub fn new(addrs: impl IntoIterator<Item = SocketAddr>) -> Destinations {
        let std: Vec<SocketAddr> = addrs.into_iter().collect();
        let addrs = std.iter().map(CAddr::from_std).collect();
        Destinations { addrs, std }
    }

    /// Number of destinations.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// The destinations as Rust addresses.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.std
    }
}

impl std::fmt::Debug for Destinations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.std).finish()
    }
}

/// Sends `payload` to the destinations `dests[start..]`, as many as one system call takes
/// (at most [`SEND_BATCH`]). Returns how many were sent (at least 1), or the error of the
/// FIRST destination tried (`WouldBlock` if the send buffer is full).
///
/// A caller that gets a non-`WouldBlock` error should skip that one destination
/// (`start + 1`) and go on: one unreachable gateway must not stop the others.
pub fn send_same_to_many(fd: &impl AsRawFd, payload: &[u8], dests: &Destinations, start: usize) -> io::Result<usize> {
    let rest = dests.addrs.get(start..).unwrap_or(&[]);
    if rest.is_empty() {
        return Ok(0);
    }
    let fd = fd.as_raw_fd();
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if !MMSG_UNAVAILABLE.load(Ordering::Relaxed) {
        match sendmmsg_same(fd, payload, &rest[..rest.len().min(SEND_BATCH)]) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                MMSG_UNAVAILABLE.store(true, Ordering::Relaxed);
                tracing::warn!("sendmmsg unavailable (ENOSYS); falling back to one sendto per datagram");
            }
            other => return other,
        }
    }
    // Fallback: one sendto per destination, until the first error.
    let mut sent = 0;
    for addr in rest.iter().take(SEND_BATCH) {
        match sendto(fd, payload, addr) {
            Ok(()) => sent += 1,
            Err(e) if sent == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(sent)
}

/// Sends every payload of `payloads` to every destination, as many (payload, destination)
/// pairs as one system call takes (at most [`SEND_BATCH`]), starting at pair `start`; pairs
/// are numbered payload-major (pair `k` is payload `k / dests.len()` to destination
/// `k % dests.len()`), so the order of each destination's datagrams is the payloads' order.
/// Returns how many pairs were sent (at least 1), or the error of the FIRST pair tried; the
/// caller skips a failing pair (`start + 1`) unless it is `WouldBlock`, as with
/// [`send_same_to_many`]. One call carries a whole receive batch to one gateway, or one
/// packet to many.
pub fn send_each_to_many(
    fd: &impl AsRawFd,
    payloads: &[&[u8]],
    dests: &Destinations,
    start: usize,
) -> io::Result<usize> {
    send_parts_to_many(fd, one_part_each(payloads), dests, start)
}

/// `payloads` as datagrams of one part each, without copying the list.
fn one_part_each<'a, 'b>(payloads: &'a [&'b [u8]]) -> &'a [[&'b [u8]; 1]] {
    // SAFETY: `[T; 1]` has the size, alignment and layout of `T`, so a slice of `T` is a slice
    // of `[T; 1]` of the same length; the lifetimes are carried over unchanged.
    unsafe { std::slice::from_raw_parts(payloads.as_ptr().cast::<[&'b [u8]; 1]>(), payloads.len()) }
}

/// Like [`send_each_to_many`] for datagrams made of `N` parts each (e.g. a header and a
/// payload borrowed from a receive buffer): the kernel gathers the parts, nothing is copied.
pub fn send_parts_to_many<const N: usize>(
    fd: &impl AsRawFd,
    datagrams: &[[&[u8]; N]],
    dests: &Destinations,
    start: usize,
) -> io::Result<usize> {
    let total = datagrams.len() * dests.len();
    if start >= total {
        return Ok(0);
    }
    let fd = fd.as_raw_fd();
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if !MMSG_UNAVAILABLE.load(Ordering::Relaxed) {
        match sendmmsg_pairs(fd, datagrams, &dests.addrs, start, (total - start).min(SEND_BATCH)) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                MMSG_UNAVAILABLE.store(true, Ordering::Relaxed);
                tracing::warn!("sendmmsg unavailable (ENOSYS); falling back to one sendto per datagram");
            }
            other => return other,
        }
    }
    let mut sent = 0;
    let mut whole = Vec::new();
    for k in (start..total).take(SEND_BATCH) {
        whole.clear();
        datagrams[k / dests.len()].iter().for_each(|p| whole.extend_from_slice(p));
        match sendto(fd, &whole, &dests.addrs[k % dests.len()]) {
            Ok(()) => sent += 1,
            Err(e) if sent == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(sent)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn sendmmsg_pairs<const N: usize>(
    fd: RawFd,
    datagrams: &[[&[u8]; N]],
    addrs: &[CAddr],
    start: usize,
    count: usize,
) -> io::Result<usize> {
    let mut iovs: Vec<libc::iovec> = datagrams
        .iter()
        .flatten()
        .map(|p| libc::iovec { iov_base: p.as_ptr() as *mut libc::c_void, iov_len: p.len() })
        .collect();
    let iov_base = iovs.as_mut_ptr();
    let mut hdrs: Vec<libc::mmsghdr> = (start..start + count)
        .map(|k| {
            let name = &addrs[k % addrs.len()];
            // SAFETY: POD; zero = no control data.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_name = (&name.raw as *const crate::sockaddr::RawAddr).cast_mut().cast();
            h.msg_hdr.msg_namelen = name.len;
            // SAFETY: k / addrs.len() < datagrams.len(), so its N iovecs are inside iovs.
            h.msg_hdr.msg_iov = unsafe { iov_base.add(k / addrs.len() * N) };
            h.msg_hdr.msg_iovlen = N as _;
            h
        })
        .collect();
    // SAFETY: every header points at N live iovecs of `iovs` (whose buffers are the caller's
    // datagram parts) and a live address of `addrs`; nothing moves during the call; the kernel
    // only reads them and writes msg_len.
    let r = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), hdrs.len() as libc::c_uint, libc::MSG_DONTWAIT) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Outcome of one [`fan_out`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FanoutResult {
    /// Destinations the datagram was handed to the kernel for.
    pub sent: usize,
    /// Destinations that failed (skipped, logged at debug level).
    pub failed: usize,
    /// System calls used.
    pub syscalls: usize,
}

/// Sends `payload` to every destination, waiting for socket buffer space when needed.
/// One failing destination is skipped, never stops the rest. `progress` grows by the
/// destinations sent after every system call (a reader sees a long fan-out advance).
pub async fn fan_out(
    sock: &tokio::net::UdpSocket,
    payload: &[u8],
    dests: &Destinations,
    progress: &AtomicU64,
) -> FanoutResult {
    let mut r = FanoutResult::default();
    let mut i = 0;
    while i < dests.len() {
        r.syscalls += 1;
        match sock.async_io(tokio::io::Interest::WRITABLE, || send_same_to_many(sock, payload, dests, i)).await {
            Ok(0) => break,
            Ok(n) => {
                i += n;
                r.sent += n;
                progress.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::debug!(dest = ?dests.addrs().get(i), "send failed: {e}");
                i += 1;
                r.failed += 1;
            }
        }
    }
    r
}

/// Sends every payload to every destination ([`send_each_to_many`], payload-major: each
/// destination gets the payloads in order), waiting for socket buffer space when needed. One
/// failing pair is skipped, never stops the rest. `progress` as in [`fan_out`].
pub async fn fan_out_each(
    sock: &tokio::net::UdpSocket,
    payloads: &[&[u8]],
    dests: &Destinations,
    progress: &AtomicU64,
) -> FanoutResult {
    fan_out_parts(sock, one_part_each(payloads), dests, progress).await
}

/// [`fan_out_each`] for datagrams of `N` parts each ([`send_parts_to_many`]: gathered by the
/// kernel, not copied).
pub async fn fan_out_parts<const N: usize>(
    sock: &tokio::net::UdpSocket,
    datagrams: &[[&[u8]; N]],
    dests: &Destinations,
    progress: &AtomicU64,
) -> FanoutResult {
    let mut r = FanoutResult::default();
    let total = datagrams.len() * dests.len();
    let mut i = 0;
    while i < total {
        r.syscalls += 1;
        match sock.async_io(tokio::io::Interest::WRITABLE, || send_parts_to_many(sock, datagrams, dests, i)).await {
            Ok(0) => break,
            Ok(n) => {
                i += n;
                r.sent += n;
                progress.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::debug!(dest = ?dests.addrs().get(i % dests.len()), "send failed: {e}");
                i += 1;
                r.failed += 1;
            }
        }
    }
    r
}

/// Sends one datagram to one address (non-blocking).
pub fn send_one(fd: &impl AsRawFd, payload: &[u8], dest: &SocketAddr) -> io::Result<()> {
    sendto(fd.as_raw_fd(), payload, &CAddr::from_std(dest))
}

fn sendto(fd: RawFd, payload: &[u8], addr: &CAddr) -> io::Result<()> {
    let mut a = *addr;
    // SAFETY: payload is a valid readable buffer of the given length; the address buffer
    // is a local copy of a correctly encoded sockaddr with its exact length.
    let r = unsafe {
        libc::sendto(fd, payload.as_ptr().cast(), payload.len(), libc::MSG_DONTWAIT, a.as_mut_ptr().cast(), a.len)
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn sendmmsg_same(fd: RawFd, payload: &[u8], addrs: &[CAddr]) -> io::Result<usize> {
    debug_assert!(!addrs.is_empty() && addrs.len() <= SEND_BATCH);
    // One iovec shared by every message: the kernel only reads it.
    let mut iov = libc::iovec { iov_base: payload.as_ptr() as *mut libc::c_void, iov_len: payload.len() };
    let mut hdrs: Vec<libc::mmsghdr> = addrs
        .iter()
        .map(|name| {
            // SAFETY: msghdr/mmsghdr are POD; zero is a valid "no control data" state.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            // The kernel only reads msg_name on send, so the const-to-mut cast is sound.
            h.msg_hdr.msg_name = (&name.raw as *const crate::sockaddr::RawAddr).cast_mut().cast();
            h.msg_hdr.msg_namelen = name.len;
            h.msg_hdr.msg_iov = &mut iov;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    // SAFETY: hdrs has hdrs.len() initialised headers whose name/iov pointers point into
    // `addrs` and `iov`, both alive and unmoved for the duration of the call; the payload
    // outlives the call; the kernel writes only msg_len.
    let r = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), hdrs.len() as libc::c_uint, libc::MSG_DONTWAIT) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// One received datagram, borrowed from a [`RecvBatch`].
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    /// Sender.
    pub from: SocketAddr,
    /// Payload (possibly cut at the slot size; see `truncated`).
    pub data: &'a [u8],
    /// The datagram was larger than the slot and was cut.
    pub truncated: bool,
    /// The local address it was sent to, if the batch asks for it
    /// ([`RecvBatch::with_local_addresses`] on a socket with
    /// [`crate::pktinfo::enable_local_address`]).
    pub local: Option<IpAddr>,
}

/// Reusable receive buffers for up to `batch` datagrams per system call.
pub struct RecvBatch {
    bufs: Vec<u8>,
    slot: usize,
    names: Vec<CAddr>,
    lens: Vec<usize>,
    truncated: Vec<bool>,
    /// Control buffers (one per slot) when local addresses are asked for; else empty.
    control: Vec<[u64; CONTROL_WORDS]>,
    locals: Vec<Option<IpAddr>>,
    count: usize,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch::new(RECV_BATCH, MAX_DATAGRAM)
    }
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch").field("batch", &self.names.len()).field("slot", &self.slot).finish()
    }
}

impl RecvBatch {
    /// Buffers for `batch` datagrams of up to `slot` bytes each (`batch` >= 1).
    pub fn new(batch: usize, slot: usize) -> RecvBatch {
        let batch = batch.max(1);
        RecvBatch {
            bufs: vec![0; batch * slot],
            slot,
            names: vec![CAddr::empty(); batch],
            lens: vec![0; batch],
            truncated: vec![false; batch],
            control: Vec::new(),
            locals: vec![None; batch],
            count: 0,
        }
    }

    /// Like [`RecvBatch::new`], and each datagram also tells the local address it was sent to
    /// (needs [`crate::pktinfo::enable_local_address`] on the socket).
    pub fn with_local_addresses(batch: usize, slot: usize) -> RecvBatch {
        let mut b = RecvBatch::new(batch, slot);
        b.control = vec![[0; CONTROL_WORDS]; b.names.len()];
        b
    }

    /// Receives as many datagrams as are queued (up to the batch size) without blocking.
    /// Returns the number received (>= 1) or `WouldBlock`.
    pub fn recv(&mut self, fd: &impl AsRawFd) -> io::Result<usize> {
        self.count = 0;
        let fd = fd.as_raw_fd();
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if !MMSG_UNAVAILABLE.load(Ordering::Relaxed) {
            match self.recvmmsg(fd) {
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                    MMSG_UNAVAILABLE.store(true, Ordering::Relaxed);
                    tracing::warn!("recvmmsg unavailable (ENOSYS); falling back to one recvfrom per datagram");
                }
                other => return other,
            }
        }
        self.recvfrom(fd)
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn recvmmsg(&mut self, fd: RawFd) -> io::Result<usize> {
        let batch = self.names.len();
        let mut iovs: Vec<libc::iovec> = self
            .bufs
            .chunks_exact_mut(self.slot)
            .map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() })
            .collect();
        let mut hdrs: Vec<libc::mmsghdr> = Vec::with_capacity(batch);
        let mut control = self.control.iter_mut();
        for (name, iov) in self.names.iter_mut().zip(iovs.iter_mut()) {
            *name = CAddr::empty();
            // SAFETY: POD, zero = no control data.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_name = name.as_mut_ptr();
            h.msg_hdr.msg_namelen = name.len;
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            if let Some(c) = control.next() {
                h.msg_hdr.msg_control = c.as_mut_ptr().cast();
                h.msg_hdr.msg_controllen = std::mem::size_of_val(c) as _;
            }
            hdrs.push(h);
        }
        // SAFETY: every header points at a distinct live slot of self.bufs (slot bytes) and a
        // distinct live CAddr; none move during the call. A null timeout with MSG_DONTWAIT
        // returns what is queued now.
        let r = unsafe {
            libc::recvmmsg(fd, hdrs.as_mut_ptr(), hdrs.len() as libc::c_uint, libc::MSG_DONTWAIT, std::ptr::null_mut())
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = r as usize;
        for (i, h) in hdrs.iter().take(n).enumerate() {
            self.lens[i] = (h.msg_len as usize).min(self.slot);
            self.truncated[i] = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            self.names[i].len = h.msg_hdr.msg_namelen;
            self.locals[i] = crate::pktinfo::local_address(&h.msg_hdr);
        }
        self.count = n;
        Ok(n)
    }

    fn recvfrom(&mut self, fd: RawFd) -> io::Result<usize> {
        let slot = self.slot;
        let buf = &mut self.bufs[..slot];
        let name = &mut self.names[0];
        *name = CAddr::empty();
        // SAFETY: buf is a live writable buffer of `slot` bytes; name/len are a live
        // sockaddr buffer and its size. MSG_TRUNC makes the return value the real length.
        let r = unsafe {
            libc::recvfrom(
                fd,
                buf.as_mut_ptr().cast(),
                slot,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                name.as_mut_ptr().cast(),
                &mut name.len,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = r as usize;
        self.lens[0] = n.min(slot);
        self.truncated[0] = n > slot;
        self.locals[0] = None;
        self.count = 1;
        Ok(1)
    }

    /// The datagrams of the last successful [`recv`](Self::recv) (senders of unknown address
    /// families are skipped).
    pub fn iter(&self) -> impl Iterator<Item = Datagram<'_>> + '_ {
        (0..self.count).filter_map(move |i| {
            let from = self.names[i].to_std()?;
            let start = i * self.slot;
            let data = self.bufs.get(start..start + self.lens[i])?;
            Some(Datagram { from, data, truncated: self.truncated[i], local: self.locals[i] })
        })
    }

    /// Mutable access to datagram `i` of the last receive, for in-place (zero-copy) decoding.
    pub fn get_mut(&mut self, i: usize) -> Option<(SocketAddr, &mut [u8])> {
        if i >= self.count {
            return None;
        }
        let from = self.names[i].to_std()?;
        let start = i * self.slot;
        let len = self.lens[i];
        Some((from, self.bufs.get_mut(start..start + len)?))
    }

    /// Number of datagrams of the last receive.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when the last receive got nothing.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    fn nb_socket(addr: &str) -> UdpSocket {
        let s = UdpSocket::bind(addr).unwrap();
        s.set_nonblocking(true).unwrap();
        s
    }

    fn wait_recv(batch: &mut RecvBatch, s: &UdpSocket) -> usize {
        for _ in 0..200 {
            match batch.recv(s) {
                Ok(n) => return n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("{e}"),
            }
        }
        panic!("nothing received")
    }

    #[test]
    fn fan_out_reaches_every_destination_once() {
        let tx = nb_socket("127.0.0.1:0");
        let rxs: Vec<UdpSocket> = (0..5).map(|_| nb_socket("127.0.0.1:0")).collect();
        let dests = Destinations::new(rxs.iter().map(|s| s.local_addr().unwrap()));
        let n = send_same_to_many(&tx, b"hello", &dests, 0).unwrap();
        assert_eq!(n, 5);
        let mut batch = RecvBatch::new(4, 64);
        for rx in &rxs {
            assert_eq!(wait_recv(&mut batch, rx), 1);
            let d = batch.iter().next().unwrap();
            assert_eq!(d.data, b"hello");
            assert_eq!(d.from, tx.local_addr().unwrap());
            assert!(!d.truncated);
        }
        // start offset skips the first destinations
        assert_eq!(send_same_to_many(&tx, b"x", &dests, 3).unwrap(), 2);
        assert_eq!(send_same_to_many(&tx, b"x", &dests, 5).unwrap(), 0);
    }

    #[test]
    fn each_payload_reaches_each_destination_in_order() {
        let tx = nb_socket("127.0.0.1:0");
        let rxs: Vec<UdpSocket> = (0..3).map(|_| nb_socket("127.0.0.1:0")).collect();
        let dests = Destinations::new(rxs.iter().map(|s| s.local_addr().unwrap()));
        let payloads: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 8 + usize::from(i)]).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let mut k = 0;
        while k < 12 {
            k += send_each_to_many(&tx, &refs, &dests, k).unwrap();
        }
        assert_eq!(send_each_to_many(&tx, &refs, &dests, 12).unwrap(), 0);
        let mut batch = RecvBatch::new(8, 64);
        for rx in &rxs {
            let mut got = Vec::new();
            while got.len() < 4 {
                wait_recv(&mut batch, rx);
                got.extend(batch.iter().map(|d| d.data.to_vec()));
            }
            assert_eq!(got, payloads, "every payload once, in order");
        }
    }

    #[test]
    fn datagram_parts_are_gathered_in_order() {
        let tx = nb_socket("127.0.0.1:0");
        let rxs: Vec<UdpSocket> = (0..2).map(|_| nb_socket("127.0.0.1:0")).collect();
        let dests = Destinations::new(rxs.iter().map(|s| s.local_addr().unwrap()));
        let bodies: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 5 + usize::from(i)]).collect();
        let datagrams: Vec<[&[u8]; 2]> = bodies.iter().map(|b| [&b"hdr"[..], b.as_slice()]).collect();
        let mut k = 0;
        while k < 6 {
            k += send_parts_to_many(&tx, &datagrams, &dests, k).unwrap();
        }
        let mut batch = RecvBatch::new(8, 64);
        for rx in &rxs {
            let mut got = Vec::new();
            while got.len() < 3 {
                wait_recv(&mut batch, rx);
                got.extend(batch.iter().map(|d| d.data.to_vec()));
            }
            let want: Vec<Vec<u8>> = bodies.iter().map(|b| [&b"hdr"[..], b].concat()).collect();
            assert_eq!(got, want, "header then body, each datagram once, in order");
        }
    }

    #[tokio::test]
    async fn fan_out_progress_advances_per_call_and_adds_up() {
        // 3 payloads x 200 destinations = 600 pairs: three sendmmsg calls of at most SEND_BATCH.
        let tx = tokio::net::UdpSocket::from_std(nb_socket("127.0.0.1:0")).unwrap();
        let rxs: Vec<UdpSocket> = (0..200).map(|_| nb_socket("127.0.0.1:0")).collect();
        let dests = Destinations::new(rxs.iter().map(|s| s.local_addr().unwrap()));
        let payloads: [&[u8]; 3] = [b"a", b"bb", b"ccc"];
        let progress = AtomicU64::new(7);
        let r = fan_out_each(&tx, &payloads, &dests, &progress).await;
        assert_eq!((r.sent, r.failed), (600, 0));
        assert!(r.syscalls >= 600usize.div_ceil(SEND_BATCH), "{r:?}");
        assert_eq!(progress.load(Ordering::Relaxed), 7 + 600);
        let r = fan_out(&tx, b"d", &dests, &progress).await;
        assert_eq!(r.sent, 200);
        assert_eq!(progress.load(Ordering::Relaxed), 7 + 800);
        let mut batch = RecvBatch::new(8, 16);
        for rx in rxs.iter().step_by(50) {
            let mut got = Vec::new();
            while got.len() < 4 {
                wait_recv(&mut batch, rx);
                got.extend(batch.iter().map(|d| d.data.to_vec()));
            }
            assert_eq!(got, [&b"a"[..], b"bb", b"ccc", b"d"], "each destination gets every payload in order");
        }
    }

    #[test]
    fn recv_batch_gets_several_in_order_and_flags_truncation() {
        let tx = nb_socket("[::1]:0");
        let rx = nb_socket("[::1]:0");
        let to = rx.local_addr().unwrap();
        for i in 0..6u8 {
            send_one(&tx, &[i; 10], &to).unwrap();
        }
        send_one(&tx, &[9; 100], &to).unwrap();
        let mut batch = RecvBatch::new(8, 32);
        let mut got = Vec::new();
        while got.len() < 7 {
            wait_recv(&mut batch, &rx);
            got.extend(batch.iter().map(|d| (d.data.to_vec(), d.truncated, d.from)));
        }
        for (i, (data, trunc, from)) in got.iter().take(6).enumerate() {
            assert_eq!(data, &vec![i as u8; 10]);
            assert!(!trunc);
            assert_eq!(*from, tx.local_addr().unwrap());
        }
        assert_eq!(got[6].0.len(), 32);
        assert!(got[6].1, "oversize datagram must be flagged truncated");
    }

    #[test]
    fn empty_socket_would_block() {
        let rx = nb_socket("127.0.0.1:0");
        let mut batch = RecvBatch::default();
        let e = batch.recv(&rx).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(batch.is_empty());
    }

    #[test]
    fn fallback_paths_work() {
        let tx = nb_socket("127.0.0.1:0");
        let rx = nb_socket("127.0.0.1:0");
        let mut batch = RecvBatch::new(1, 64);
        send_one(&tx, b"abc", &rx.local_addr().unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(batch.recvfrom(rx.as_raw_fd()).unwrap(), 1);
        assert_eq!(batch.iter().next().unwrap().data, b"abc");
    }
}
