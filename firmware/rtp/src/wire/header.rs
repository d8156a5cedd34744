//! RTP fixed header (RFC 3550 section 5.1): parsing untrusted packets into [`RtpPacket`] and
//! serialising [`RtpHeader`]s. Handles version, padding, header extension, CSRC list, marker,
//! payload type, sequence number, timestamp and SSRC. Never panics on bad input.

use crate::error::{truncated, Result, RtpError};

/// Length of the fixed RTP header without CSRCs or extension.
pub const RTP_FIXED_HEADER_LEN: usize = 12;

/// An RTP header extension (RFC 3550 5.3.1): 16-bit profile-defined value and its data
/// (a multiple of 4 bytes on the wire; shorter data is zero-padded when written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpExtension {
    /// The "defined by profile" field (0xBEDE for RFC 8285 one-byte headers).
    pub profile: u16,
    /// Extension data.
    pub data: Vec<u8>,
}

/// The one-byte header extension profile (RFC 8285 §4.2).
pub const EXTENSION_PROFILE_ONE_BYTE: u16 = 0xBEDE;
/// The two-byte header extension profile (RFC 8285 §4.3): 0x100 in the top 12 bits, the low 4
/// ("appbits") free.
pub const EXTENSION_PROFILE_TWO_BYTE: u16 = 0x1000;

impl RtpExtension {
    /// Checks that every RFC 8285 element (one-byte or two-byte profile) lies inside the
    /// extension data: padding bytes (0) skipped, the one-byte form's reserved id 15 ends the
    /// walk. Other profiles are opaque and pass.
    pub fn check_elements(&self) -> Result<()> {
        let data = &self.data;
        let bad = |at, reason| Err(RtpError::BadExtensionElement { at, len: data.len(), reason });
        let mut pos = 0;
        if self.profile == EXTENSION_PROFILE_ONE_BYTE {
            while let Some(&b) = data.get(pos) {
                match b >> 4 {
                    _ if b == 0 => pos += 1,
                    15 => return Ok(()),
                    _ => {
                        let end = pos + 1 + usize::from(b & 0x0f) + 1;
                        if end > data.len() {
                            return bad(pos, "one-byte element longer than the extension");
                        }
                        pos = end;
                    }
                }
            }
        } else if self.profile & 0xfff0 == EXTENSION_PROFILE_TWO_BYTE {
            while let Some(&id) = data.get(pos) {
                if id == 0 {
                    pos += 1;
                    continue;
                }
                let Some(&len) = data.get(pos + 1) else { return bad(pos, "two-byte element without its length") };
                let end = pos + 2 + usize::from(len);
                if end > data.len() {
                    return bad(pos, "two-byte element longer than the extension");
                }
                pos = end;
            }
        }
        Ok(())
    }
}

/// The RTP header of one packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RtpHeader {
    /// Number of padding bytes at the end of the packet (0 = P bit clear).
    pub padding: u8,
    /// Marker bit (last packet of a video frame).
    pub marker: bool,
    /// Payload type, 7 bits.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence_number: u16,
    /// Media timestamp (90 kHz for video, 48 kHz for Opus).
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Contributing sources (at most 15).
    pub csrcs: Vec<u32>,
    /// Header extension, when the X bit is set.
    pub extension: Option<RtpExtension>,
}

/// A parsed RTP packet borrowing its payload from the input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The header.
    pub header: RtpHeader,
    /// The payload, without padding.
    pub payload: &'a [u8],
}

/// Parses an RTP packet from untrusted bytes.
///
/// Checks version 2, bounds of CSRC list and extension, and the padding count.
pub fn parse_rtp(buf: &[u8]) -> Result<RtpPacket<'_>> {
    let fixed =
        buf.get(..RTP_FIXED_HEADER_LEN).ok_or_else(|| truncated("RTP header", RTP_FIXED_HEADER_LEN, buf.len()))?;
    let b0 = fixed[0];
    let version = b0 >> 6;
    if version != 2 {
        return Err(RtpError::BadVersion(version));
    }
    let has_padding = b0 & 0x20 != 0;
    let has_extension = b0 & 0x10 != 0;
    let csrc_count = usize::from(b0 & 0x0f);
    let b1 = fixed[1];
    let mut header = RtpHeader {
        padding: 0,
        marker: b1 & 0x80 != 0,
        payload_type: b1 & 0x7f,
        sequence_number: u16::from_be_bytes([fixed[2], fixed[3]]),
        timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
        ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
        csrcs: Vec::with_capacity(csrc_count),
        extension: None,
    };
    let mut pos = RTP_FIXED_HEADER_LEN;
    let csrc_end = pos + 4 * csrc_count;
    let csrc_bytes = buf.get(pos..csrc_end).ok_or_else(|| truncated("RTP CSRC list", csrc_end, buf.len()))?;
    header.csrcs.extend(csrc_bytes.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])));
    pos = csrc_end;
    if has_extension {
        let ext_hdr = buf.get(pos..pos + 4).ok_or_else(|| truncated("RTP header extension", pos + 4, buf.len()))?;
        let profile = u16::from_be_bytes([ext_hdr[0], ext_hdr[1]]);
        let words = usize::from(u16::from_be_bytes([ext_hdr[2], ext_hdr[3]]));
        let end = pos + 4 + 4 * words;
        let data = buf.get(pos + 4..end).ok_or_else(|| truncated("RTP header extension", end, buf.len()))?;
        header.extension = Some(RtpExtension { profile, data: data.to_vec() });
        pos = end;
    }
    let rest = buf.get(pos..).unwrap_or_default();
    let payload = if has_padding {
        let padding = usize::from(*rest.last().ok_or(RtpError::BadPadding { padding: 0, available: 0 })?);
        if padding == 0 || padding > rest.len() {
            return Err(RtpError::BadPadding { padding, available: rest.len() });
        }
        header.padding = padding as u8;
        &rest[..rest.len() - padding]
    } else {
        rest
    };
    Ok(RtpPacket { header, payload })
}

impl RtpHeader {
    /// Bytes this header takes on the wire (fixed part, CSRCs and extension).
    pub fn len(&self) -> usize {
        RTP_FIXED_HEADER_LEN
            + 4 * self.csrcs.len().min(15)
            + self.extension.as_ref().map_or(0, |e| 4 + e.data.len().div_ceil(4).min(usize::from(u16::MAX)) * 4)
    }

    /// Always false: a header is never empty (present for API symmetry with `len`).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Appends the serialised header to `out`. At most 15 CSRCs are written; the
    /// padding bytes themselves are appended by [`RtpHeader::write_padding`].
    pub fn write(&self, out: &mut Vec<u8>) {
        let csrcs = &self.csrcs[..self.csrcs.len().min(15)];
        let mut b0 = 0x80 | csrcs.len() as u8;
        if self.padding > 0 {
            b0 |= 0x20;
        }
        if self.extension.is_some() {
            b0 |= 0x10;
        }
        out.push(b0);
        out.push((u8::from(self.marker) << 7) | (self.payload_type & 0x7f));
        out.extend_from_slice(&self.sequence_number.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        for c in csrcs {
            out.extend_from_slice(&c.to_be_bytes());
        }
        if let Some(ext) = &self.extension {
            let words = ext.data.len().div_ceil(4).min(usize::from(u16::MAX));
            out.extend_from_slice(&ext.profile.to_be_bytes());
            out.extend_from_slice(&(words as u16).to_be_bytes());
            let data = &ext.data[..ext.data.len().min(words * 4)];
            out.extend_from_slice(data);
            out.resize(out.len() + (words * 4 - data.len()), 0);
        }
    }

    /// Appends `self.padding` padding bytes (zeros, last byte = count) to a packet whose
    /// header and payload are already in `out`.
    pub fn write_padding(&self, out: &mut Vec<u8>) {
        if self.padding > 0 {
            out.resize(out.len() + usize::from(self.padding) - 1, 0);
            out.push(self.padding);
        }
    }
}

/// Builds a complete RTP packet from a header and payload (including padding if set).
pub fn build_rtp(header: &RtpHeader, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len() + payload.len() + usize::from(header.padding));
    header.write(&mut out);
    out.extend_from_slice(payload);
    header.write_padding(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8285_elements_must_fit_their_extension() {
        let ext = |profile, data: &[u8]| RtpExtension { profile, data: data.to_vec() };
        // One-byte: id 1 len 2 (3 bytes), padding, id 15 stops the walk.
        assert!(ext(0xBEDE, &[0x11, 1, 2, 0, 0xf0, 0xff, 0xff, 0xff]).check_elements().is_ok());
        assert!(ext(0xBEDE, &[0, 0, 0x13, 1]).check_elements().is_err(), "4 bytes claimed, 1 there");
        // Two-byte (any appbits): id, length, data.
        assert!(ext(0x1003, &[7, 2, 9, 9]).check_elements().is_ok());
        assert!(ext(0x1000, &[0, 0, 0, 7]).check_elements().is_err(), "no length byte");
        let e = ext(0x1000, &[7, 200, 0, 0]).check_elements().unwrap_err();
        assert!(e.to_string().contains("two-byte element longer"), "{e}");
        // Another profile is opaque.
        assert!(ext(0xABCD, &[0xff; 4]).check_elements().is_ok());
    }

    #[test]
    fn parses_known_packet() {
        // V=2 P=0 X=0 CC=0, M=1 PT=96, seq=0x1234, ts=0xdeadbeef, ssrc=0x01020304
        let pkt = [0x80, 0xe0, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04, 0xaa, 0xbb];
        let p = parse_rtp(&pkt).unwrap();
        assert!(p.header.marker);
        assert_eq!(p.header.payload_type, 96);
        assert_eq!(p.header.sequence_number, 0x1234);
        assert_eq!(p.header.timestamp, 0xdeadbeef);
        assert_eq!(p.header.ssrc, 0x01020304);
        assert_eq!(p.payload, &[0xaa, 0xbb]);
        assert_eq!(build_rtp(&p.header, p.payload), pkt);
    }

    #[test]
    fn parses_csrc_extension_padding() {
        let pkt = [
            0xb1, 0x0b, 0x00, 0x01, 0, 0, 0, 2, 0, 0, 0, 3, // P X CC=1, PT 11
            0, 0, 0, 9, // CSRC 9
            0xbe, 0xde, 0x00, 0x01, 0x10, 0xff, 0, 0,    // one-byte ext, 1 word
            0x55, // payload
            0, 0, 3, // padding 3
        ];
        let p = parse_rtp(&pkt).unwrap();
        assert_eq!(p.header.csrcs, vec![9]);
        assert_eq!(p.header.padding, 3);
        let ext = p.header.extension.as_ref().unwrap();
        assert_eq!(ext.profile, 0xbede);
        assert_eq!(ext.data, vec![0x10, 0xff, 0, 0]);
        assert_eq!(p.payload, &[0x55]);
        assert_eq!(build_rtp(&p.header, p.payload), pkt);
    }

    #[test]
    fn len_matches_written_bytes() {
        let h = RtpHeader {
            csrcs: vec![1, 2, 3],
            extension: Some(RtpExtension { profile: 1, data: vec![9; 5] }),
            ..RtpHeader::default()
        };
        let mut out = Vec::new();
        h.write(&mut out);
        assert_eq!(out.len(), h.len());
        assert_eq!(out.len(), 12 + 12 + 4 + 8);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(parse_rtp(&[0x80; 5]), Err(RtpError::Truncated { .. })));
        assert!(matches!(parse_rtp(&[0x40; 12]), Err(RtpError::BadVersion(1))));
        // CC=15 but no CSRCs
        assert!(matches!(parse_rtp(&[0x8f; 12]), Err(RtpError::Truncated { .. })));
        // padding count 0
        let mut p = vec![0xa0, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(parse_rtp(&p), Err(RtpError::BadPadding { .. })));
        p[12] = 5;
        assert!(matches!(parse_rtp(&p), Err(RtpError::BadPadding { .. })));
        // padding bit set with no payload bytes at all
        assert!(matches!(parse_rtp(&p[..12]), Err(RtpError::BadPadding { .. })));
    }
}
