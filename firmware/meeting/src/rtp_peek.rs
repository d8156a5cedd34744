//! Just enough of RTP/RTCP (RFC 3550, RFC 5761 multiplexing) for the meeting service to route
//! a packet: is it RTP or RTCP, whose SSRC, does it carry a BYE, and which media sources it
//! asks a keyframe of (PLI, RFC 4585 §6.3.1). It never panics on input;
//! the full codecs live in roomcast-rtp.

/// What a datagram on the service's media port is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peek {
    /// An RTP packet from `ssrc`.
    Rtp {
        /// Sender SSRC.
        ssrc: u32,
    },
    /// An RTCP (compound) packet whose first report is from `ssrc`.
    Rtcp {
        /// Sender SSRC of the first packet.
        ssrc: u32,
        /// SSRCs that said goodbye (RTCP BYE, PT 203), if any.
        bye: Vec<u32>,
        /// Media SSRCs a picture loss indication (PSFB, PT 206, FMT 1) names, if any.
        pli: Vec<u32>,
    },
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Classifies a datagram; `None` when it is neither valid RTP nor RTCP.
pub fn peek(data: &[u8]) -> Option<Peek> {
    let first = *data.first()?;
    if first >> 6 != 2 {
        return None;
    }
    let pt = *data.get(1)?;
    if (192..=223).contains(&pt) {
        // RTCP (RFC 5761 §4): walk the compound packet.
        let ssrc = be32(data, 4)?;
        let mut bye = Vec::new();
        let mut pli = Vec::new();
        let mut at = 0usize;
        let mut guard = 0;
        while at < data.len() && guard < 64 {
            guard += 1;
            let hdr = data.get(at..at + 4)?;
            if hdr[0] >> 6 != 2 {
                return None;
            }
            let count = usize::from(hdr[0] & 0x1f);
            let len_words = usize::from(u16::from_be_bytes([hdr[2], hdr[3]]));
            let len = (len_words + 1) * 4;
            let body = data.get(at..at + len)?;
            if hdr[1] == 203 {
                for i in 0..count {
                    if let Some(s) = be32(body, 4 + i * 4) {
                        bye.push(s);
                    }
                }
            }
            if hdr[1] == 206 && count == 1 {
                pli.extend(be32(body, 8));
            }
            at += len;
        }
        Some(Peek::Rtcp { ssrc, bye, pli })
    } else {
        if data.len() < 12 {
            return None;
        }
        Some(Peek::Rtp { ssrc: be32(data, 8)? })
    }
}

/// Builds an RTCP BYE packet (RFC 3550 §6.6) for `ssrcs` (at most 31).
pub fn bye(ssrcs: &[u32]) -> Vec<u8> {
    let n = ssrcs.len().min(31);
    let mut out = Vec::with_capacity(4 + 4 * n);
    out.push(0x80 | n as u8);
    out.push(203);
    out.extend_from_slice(&(n as u16).to_be_bytes());
    for s in &ssrcs[..n] {
        out.extend_from_slice(&s.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_and_rtcp_are_told_apart() {
        let mut rtp = vec![0x80, 96, 0, 1, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef];
        rtp.extend_from_slice(&[1, 2, 3]);
        assert_eq!(peek(&rtp), Some(Peek::Rtp { ssrc: 0xdeadbeef }));
        let b = bye(&[7, 9]);
        assert_eq!(peek(&b), Some(Peek::Rtcp { ssrc: 7, bye: vec![7, 9], pli: vec![] }));
        // A receiver report followed by a BYE.
        let mut compound = vec![0x80, 201, 0, 1, 0, 0, 0, 5];
        compound.extend_from_slice(&bye(&[5]));
        assert_eq!(peek(&compound), Some(Peek::Rtcp { ssrc: 5, bye: vec![5], pli: vec![] }));
        // A receiver report and a PLI on source 0xa0b0c0d0 (and a FIR, FMT 4, which is not one).
        let rr_pli = [0x80, 201, 0, 1, 0, 0, 0, 5, 0x81, 206, 0, 2, 0, 0, 0, 5, 0xa0, 0xb0, 0xc0, 0xd0];
        assert_eq!(peek(&rr_pli), Some(Peek::Rtcp { ssrc: 5, bye: vec![], pli: vec![0xa0b0_c0d0] }));
        let fir = [0x84, 206, 0, 2, 0, 0, 0, 5, 0, 0, 0, 0];
        assert_eq!(peek(&fir), Some(Peek::Rtcp { ssrc: 5, bye: vec![], pli: vec![] }));
        assert_eq!(peek(&[0x81, 206, 0, 1, 0, 0, 0, 5]), Some(Peek::Rtcp { ssrc: 5, bye: vec![], pli: vec![] }));
        assert_eq!(peek(&[]), None);
        assert_eq!(peek(&[0x80, 200, 0xff, 0xff, 0, 0, 0, 1]), None, "length past the end");
        assert_eq!(peek(&[0x40, 96, 0, 0]), None, "version 1");
    }
}
