//! IVF container (the simple frame-per-record format dav1d, ffmpeg and aomdec read): writer
//! for the recorder's `video.ivf` (AV1, fourcc `AV01`) and a bounds-checked reader used by
//! tests and tools to check what was written.

use std::io::{Seek, SeekFrom, Write};

use crate::error::{truncated, Result, RtpError};

/// Fourcc of AV1 in IVF.
pub const FOURCC_AV1: [u8; 4] = *b"AV01";
/// Fourcc of H.264 in IVF.
pub const FOURCC_H264: [u8; 4] = *b"H264";
/// IVF file header length.
pub const IVF_HEADER_LEN: usize = 32;
/// IVF frame header length.
pub const IVF_FRAME_HEADER_LEN: usize = 12;

/// The IVF file header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IvfHeader {
    /// Codec fourcc.
    pub fourcc: [u8; 4],
    /// Frame width in pixels (0 if unknown).
    pub width: u16,
    /// Frame height in pixels (0 if unknown).
    pub height: u16,
    /// Time base denominator (ticks per second; 90 000 for RTP timestamps).
    pub timebase_den: u32,
    /// Time base numerator (usually 1).
    pub timebase_num: u32,
    /// Number of frames (as written in the header; may be 0 for streamed files).
    pub frame_count: u32,
}

impl IvfHeader {
    /// Header for AV1 frames timestamped on the 90 kHz RTP clock.
    pub fn av1_90khz(width: u16, height: u16) -> Self {
        Self { fourcc: FOURCC_AV1, width, height, timebase_den: 90_000, timebase_num: 1, frame_count: 0 }
    }

    fn to_bytes(self) -> [u8; IVF_HEADER_LEN] {
        let mut b = [0u8; IVF_HEADER_LEN];
        b[0..4].copy_from_slice(b"DKIF");
        b[4..6].copy_from_slice(&0u16.to_le_bytes());
        b[6..8].copy_from_slice(&(IVF_HEADER_LEN as u16).to_le_bytes());
        b[8..12].copy_from_slice(&self.fourcc);
        b[12..14].copy_from_slice(&self.width.to_le_bytes());
        b[14..16].copy_from_slice(&self.height.to_le_bytes());
        b[16..20].copy_from_slice(&self.timebase_den.to_le_bytes());
        b[20..24].copy_from_slice(&self.timebase_num.to_le_bytes());
        b[24..28].copy_from_slice(&self.frame_count.to_le_bytes());
        b
    }
}

/// Writes an IVF file frame by frame.
#[derive(Debug)]
pub struct IvfWriter<W: Write> {
    inner: W,
    header: IvfHeader,
    frames: u32,
}

impl<W: Write> IvfWriter<W> {
    /// Writes the file header (frame count 0 until [`IvfWriter::finish_seekable`]).
    pub fn new(mut inner: W, header: IvfHeader) -> Result<Self> {
        inner.write_all(&header.to_bytes())?;
        Ok(Self { inner, header, frames: 0 })
    }

    /// Writes one frame (for AV1: a temporal unit in low-overhead format) with its
    /// presentation timestamp in time-base units. For AV1 with a 0x0 size in the header, the
    /// size is taken from the first sequence header seen (written by
    /// [`IvfWriter::finish_seekable`]).
    pub fn write_frame(&mut self, pts: u64, data: &[u8]) -> Result<()> {
        if self.header.fourcc == FOURCC_AV1 && self.header.width == 0 && self.header.height == 0 {
            if let Some((w, h)) = crate::av1::obu::temporal_unit_dimensions(data) {
                self.header.width = u16::try_from(w).unwrap_or(u16::MAX);
                self.header.height = u16::try_from(h).unwrap_or(u16::MAX);
            }
        }
        let size = u32::try_from(data.len())
            .map_err(|_| RtpError::InvalidFrame { codec: "IVF", reason: "frame larger than 4 GiB" })?;
        self.inner.write_all(&size.to_le_bytes())?;
        self.inner.write_all(&pts.to_le_bytes())?;
        self.inner.write_all(data)?;
        self.frames = self.frames.saturating_add(1);
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// The header as it stands (size possibly learnt from the stream, count not yet patched).
    pub fn header(&self) -> &IvfHeader {
        &self.header
    }

    /// Flushes and returns the sink (the header keeps frame count 0, which readers accept).
    pub fn finish(mut self) -> Result<W> {
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write + Seek> IvfWriter<W> {
    /// Patches the frame count (and a frame size learnt from the stream) into the header,
    /// flushes and returns the sink. Use this for files (`File`, `BufWriter<File>`).
    pub fn finish_seekable(mut self) -> Result<W> {
        let end = self.inner.stream_position()?;
        self.header.frame_count = self.frames;
        self.inner.seek(SeekFrom::Start(0))?;
        self.inner.write_all(&self.header.to_bytes())?;
        self.inner.seek(SeekFrom::Start(end))?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

/// One frame read from an IVF file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IvfFrame<'a> {
    /// Presentation timestamp.
    pub pts: u64,
    /// Frame bytes.
    pub data: &'a [u8],
}

/// Parses a whole IVF file held in memory.
pub fn read_ivf(buf: &[u8]) -> Result<(IvfHeader, Vec<IvfFrame<'_>>)> {
    let h = buf.get(..IVF_HEADER_LEN).ok_or_else(|| truncated("IVF header", IVF_HEADER_LEN, buf.len()))?;
    if &h[0..4] != b"DKIF" {
        return Err(RtpError::InvalidFrame { codec: "IVF", reason: "missing DKIF signature" });
    }
    let le16 = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]);
    let le32 = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let header_len = usize::from(le16(6)).max(IVF_HEADER_LEN);
    let header = IvfHeader {
        fourcc: [h[8], h[9], h[10], h[11]],
        width: le16(12),
        height: le16(14),
        timebase_den: le32(16),
        timebase_num: le32(20),
        frame_count: le32(24),
    };
    let mut rest = buf.get(header_len..).ok_or_else(|| truncated("IVF header", header_len, buf.len()))?;
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let fh = rest
            .get(..IVF_FRAME_HEADER_LEN)
            .ok_or_else(|| truncated("IVF frame header", IVF_FRAME_HEADER_LEN, rest.len()))?;
        let size = u32::from_le_bytes([fh[0], fh[1], fh[2], fh[3]]) as usize;
        let mut pts = [0u8; 8];
        pts.copy_from_slice(&fh[4..12]);
        let data = rest
            .get(IVF_FRAME_HEADER_LEN..IVF_FRAME_HEADER_LEN + size)
            .ok_or_else(|| truncated("IVF frame", IVF_FRAME_HEADER_LEN + size, rest.len()))?;
        frames.push(IvfFrame { pts: u64::from_le_bytes(pts), data });
        rest = &rest[IVF_FRAME_HEADER_LEN + size..];
    }
    Ok((header, frames))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn writes_known_bytes_and_reads_back() {
        let mut w = IvfWriter::new(Cursor::new(Vec::new()), IvfHeader::av1_90khz(640, 360)).unwrap();
        w.write_frame(0, &[0x12, 0x00]).unwrap();
        w.write_frame(3000, &[1, 2, 3]).unwrap();
        let out = w.finish_seekable().unwrap().into_inner();
        assert_eq!(
            &out[..32],
            &[
                b'D', b'K', b'I', b'F', 0, 0, 32, 0, b'A', b'V', b'0', b'1', 0x80, 2, 0x68, 1, //
                0x90, 0x5f, 1, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,
            ]
        );
        assert_eq!(&out[32..46], &[2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0]);
        let (h, frames) = read_ivf(&out).unwrap();
        assert_eq!(h.frame_count, 2);
        assert_eq!(frames[1], IvfFrame { pts: 3000, data: &[1, 2, 3] });
        assert!(read_ivf(&out[..out.len() - 1]).is_err());
        assert!(read_ivf(b"RIFF").is_err());
    }
}
