//! The Internet checksum (RFC 1071) used by IPv4 headers, UDP, IGMP and ICMPv6/MLD, with the
//! IPv4 and IPv6 pseudo-headers of UDP and MLD.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Running one's-complement sum of 16-bit big-endian words.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Checksum {
    sum: u64,
}

impl Checksum {
    /// An empty sum.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds `data`; an odd trailing byte is padded with zero (only valid as the last chunk).
    ///
    /// The bulk is summed as native-endian 32-bit halves of 64-bit loads (no byte swap per
    /// word, which lets the compiler vectorise the loop): `hi * 65536 + lo ≡ hi + lo (mod
    /// 65535)`, and the one's-complement sum is byte-order independent (RFC 1071 2.B), so the
    /// folded native sum is swapped once into network order. The < 8-byte tail goes word by word.
    pub(crate) fn add(&mut self, data: &[u8]) -> &mut Self {
        let mut chunks = data.chunks_exact(8);
        let mut native: u64 = 0;
        for c in &mut chunks {
            if let Ok(c) = <[u8; 8]>::try_from(c) {
                let v = u64::from_ne_bytes(c);
                native += (v & 0xffff_ffff) + (v >> 32);
            }
        }
        let native = fold(native) as u16;
        let mut acc = u64::from(if cfg!(target_endian = "little") { native.swap_bytes() } else { native });
        let mut rest = chunks.remainder().chunks_exact(2);
        for c in &mut rest {
            if let [a, b] = c {
                acc += u64::from(u16::from_be_bytes([*a, *b]));
            }
        }
        if let [last] = rest.remainder() {
            acc += u64::from(u16::from_be_bytes([*last, 0]));
        }
        // Fold into the running sum without any chance of overflow.
        self.sum = fold(self.sum) + fold(acc);
        self
    }

    /// Adds one 16-bit word.
    pub(crate) fn add_u16(&mut self, v: u16) -> &mut Self {
        self.sum += u64::from(v);
        self
    }

    /// Adds one 32-bit value as two words.
    pub(crate) fn add_u32(&mut self, v: u32) -> &mut Self {
        self.sum += u64::from(v >> 16) + u64::from(v & 0xffff);
        self
    }

    /// Adds the pseudo-header for an upper-layer packet of `len` bytes and protocol `proto`.
    pub(crate) fn add_pseudo(&mut self, src: IpAddr, dst: IpAddr, proto: u8, len: u32) -> &mut Self {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => self.add_pseudo_v4(s, d, proto, len),
            (IpAddr::V6(s), IpAddr::V6(d)) => self.add_pseudo_v6(s, d, proto, len),
            (s, d) => self.add(&ip_bytes(s)).add(&ip_bytes(d)).add_u32(len).add_u16(u16::from(proto)),
        }
    }

    /// IPv4 pseudo-header: source, destination, zero, protocol, length.
    pub(crate) fn add_pseudo_v4(&mut self, s: Ipv4Addr, d: Ipv4Addr, proto: u8, len: u32) -> &mut Self {
        self.add(&s.octets()).add(&d.octets()).add_u16(u16::from(proto)).add_u32(len)
    }

    /// IPv6 pseudo-header (RFC 8200 8.1): source, destination, 32-bit length, next header.
    pub(crate) fn add_pseudo_v6(&mut self, s: Ipv6Addr, d: Ipv6Addr, proto: u8, len: u32) -> &mut Self {
        self.add(&s.octets()).add(&d.octets()).add_u32(len).add_u16(u16::from(proto))
    }

    /// The folded one's-complement of the sum: the value to store in a checksum field.
    pub(crate) fn finish(&self) -> u16 {
        !(fold(self.sum) as u16)
    }
}

/// Folds a 64-bit sum of 16-bit words into 16 bits (end-around carry).
fn fold(mut s: u64) -> u64 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s
}

fn ip_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Checksum of `data` alone (IPv4 header, IGMP).
pub(crate) fn internet_checksum(data: &[u8]) -> u16 {
    Checksum::new().add(data).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example bytes: sum is 0xddf2, checksum its complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet_checksum(&data), !0xddf2);
    }

    #[test]
    fn verifies_to_zero_when_embedded() {
        // A well-known IPv4 header (Wikipedia example), checksum 0xb861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(internet_checksum(&h), 0xb861);
        h[10] = 0xb8;
        h[11] = 0x61;
        assert_eq!(internet_checksum(&h), 0);
    }

    #[test]
    fn wide_sum_equals_16_bit_sum() {
        // Reference: the textbook 16-bit loop, on lengths 0..64 of pseudo-random bytes.
        let data: Vec<u8> = (0u32..1400).map(|i| (i.wrapping_mul(2654435761) >> 7) as u8 | 0x80).collect();
        let ones = vec![0xffu8; 1400];
        for (data, len) in (0..64).chain([1315, 1316, 1399, 1400]).flat_map(|l| [(&data, l), (&ones, l)]) {
            let d = &data[..len];
            let mut s: u32 = 0;
            for c in d.chunks(2) {
                s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
            }
            while s > 0xffff {
                s = (s & 0xffff) + (s >> 16);
            }
            assert_eq!(internet_checksum(d), !(s as u16), "len {len}");
            // Split additions (even split points) agree too.
            let mid = len / 4 * 2;
            assert_eq!(Checksum::new().add(&d[..mid]).add(&d[mid..]).finish(), !(s as u16));
        }
    }

    #[test]
    fn odd_length_pads() {
        assert_eq!(internet_checksum(&[0x01]), !0x0100);
    }
}
