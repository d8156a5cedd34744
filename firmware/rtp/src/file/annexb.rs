//! H.264 Annex B byte streams: splitting an access unit into NAL units at start codes, and the
//! `.h264` file writer the recorder uses (access units as the depacketizer produces them, which
//! ffmpeg/ffprobe read with `-f h264`).

use std::io::Write;

use crate::error::Result;

/// The 4-byte start code written before each NAL unit.
pub const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// Iterator over the NAL units of an Annex B buffer (start codes and trailing zero bytes
/// stripped). Bytes before the first start code are ignored; empty NAL units are skipped.
#[derive(Debug, Clone)]
pub struct NalUnits<'a> {
    rest: &'a [u8],
}

/// Splits an Annex B access unit (3- or 4-byte start codes) into its NAL units.
pub fn nal_units(data: &[u8]) -> NalUnits<'_> {
    let rest = match find_start_code(data) {
        Some((_, after)) => &data[after..],
        None => &[],
    };
    NalUnits { rest }
}

/// Finds the next `00 00 01` start code: returns (index of its first byte, index after it).
fn find_start_code(data: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i + 2] > 1 {
            i += 3;
        } else if data[i..i + 3] == [0, 0, 1] {
            return Some((i, i + 3));
        } else {
            i += 1;
        }
    }
    None
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (nal, rest) = match find_start_code(self.rest) {
                Some((start, after)) => (&self.rest[..start], &self.rest[after..]),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            // Trailing zeros belong to the next start code (zero_byte) or are trailing_zero_8bits.
            let end = nal.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
            if end > 0 {
                return Some(&nal[..end]);
            }
        }
    }
}

/// H.264 NAL unit type (low 5 bits of the first byte); 0 for an empty slice.
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// True when the access unit holds an IDR slice (NAL type 5).
pub fn is_idr_access_unit(data: &[u8]) -> bool {
    nal_units(data).any(|n| nal_type(n) == 5)
}

/// Splits an Annex B elementary stream (e.g. a `.h264` file) into access units, following
/// H.264 7.4.1.2.3: a new access unit starts at an AUD, SPS, PPS, SEI (types 6-9, 14-18) after
/// a slice, or at a slice whose first_mb_in_slice is 0 after a slice. Each returned access unit
/// is the original bytes of its NAL units with 4-byte start codes.
pub fn split_access_units(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut units = Vec::new();
    let mut current = Vec::new();
    let mut has_slice = false;
    for nal in nal_units(stream) {
        let ty = nal_type(nal);
        let is_slice = matches!(ty, 1 | 5);
        // first_mb_in_slice is ue(v), first in the slice header: a leading 1 bit means 0.
        let first_slice_of_picture = is_slice && nal.get(1).is_some_and(|b| b & 0x80 != 0);
        let starts_new = has_slice && (matches!(ty, 6..=9 | 14..=18) || first_slice_of_picture);
        if starts_new {
            units.push(std::mem::take(&mut current));
            has_slice = false;
        }
        current.extend_from_slice(&START_CODE);
        current.extend_from_slice(nal);
        has_slice |= is_slice;
    }
    if !current.is_empty() {
        units.push(current);
    }
    units
}

/// Writes H.264 access units to an Annex B `.h264` file.
#[derive(Debug)]
pub struct AnnexBWriter<W: Write> {
    inner: W,
    access_units: u64,
}

impl<W: Write> AnnexBWriter<W> {
    /// Wraps a sink (nothing is written until the first access unit).
    pub fn new(inner: W) -> Self {
        Self { inner, access_units: 0 }
    }

    /// Writes one access unit. Data already in Annex B form (as
    /// [`crate::h264::H264Depacketizer`] produces) is re-emitted NAL by NAL with 4-byte start
    /// codes, so any 3-byte codes become 4-byte ones.
    pub fn write_access_unit(&mut self, data: &[u8]) -> Result<()> {
        for nal in nal_units(data) {
            self.inner.write_all(&START_CODE)?;
            self.inner.write_all(nal)?;
        }
        self.access_units += 1;
        Ok(())
    }

    /// Access units written so far.
    pub fn access_units(&self) -> u64 {
        self.access_units
    }

    /// Flushes and returns the sink.
    pub fn finish(mut self) -> Result<W> {
        self.inner.flush()?;
        Ok(self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_mixed_start_codes() {
        let au = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 1, 0x65, 4, 5, 0, 0];
        let nals: Vec<&[u8]> = nal_units(&au).collect();
        assert_eq!(nals, vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4, 5][..]]);
        assert!(is_idr_access_unit(&au));
        assert_eq!(nal_units(&[1, 2, 3]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 1]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 1, 0, 0, 1, 9]).collect::<Vec<_>>(), vec![&[9][..]]);
    }

    #[test]
    fn splits_access_units() {
        let stream = [
            0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2, 0, 0, 1, 0x65, 0x88, 0, 0, 1, 0x65, 0x10, // AU 1: two slices
            0, 0, 1, 0x41, 0x9a, 0, 0, 1, 0x41, 0x05, // AU 2: two slices
            0, 0, 1, 0x06, 5, 0, 0, 1, 0x41, 0x9a, // AU 3: SEI + slice
        ];
        let aus = split_access_units(&stream);
        assert_eq!(
            aus,
            vec![
                vec![0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2, 0, 0, 0, 1, 0x65, 0x88, 0, 0, 0, 1, 0x65, 0x10],
                vec![0, 0, 0, 1, 0x41, 0x9a, 0, 0, 0, 1, 0x41, 0x05],
                vec![0, 0, 0, 1, 0x06, 5, 0, 0, 0, 1, 0x41, 0x9a],
            ]
        );
    }

    #[test]
    fn writer_normalises_start_codes() {
        let mut w = AnnexBWriter::new(Vec::new());
        w.write_access_unit(&[0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x41, 7]).unwrap();
        assert_eq!(w.access_units(), 1);
        let out = w.finish().unwrap();
        assert_eq!(out, vec![0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x41, 7]);
    }
}
