//! The header of a frame of the kernel's FWHT codec (`struct fwht_cframe_hdr`,
//! drivers/media/test-drivers/vicodec/codec-fwht.h): two magic words, then ten big-endian
//! 32-bit fields, then `size` bytes of coded planes. Parsed from untrusted bytes: a short or
//! foreign buffer is an error, never a panic.

use crate::error::{MediaError, Result};

/// `FWHT_MAGIC1`.
pub const MAGIC1: u32 = 0x4f4f_4f4f;
/// `FWHT_MAGIC2`.
pub const MAGIC2: u32 = 0xffff_ffff;
/// Header length in bytes.
pub const HEADER_LEN: usize = 44;
/// `FWHT_FL_I_FRAME` (version 3 and later): an intra frame.
pub const FLAG_I_FRAME: u32 = 1 << 10;
/// `FWHT_FL_CHROMA_FULL_HEIGHT`.
pub const FLAG_CHROMA_FULL_HEIGHT: u32 = 1 << 7;
/// `FWHT_FL_CHROMA_FULL_WIDTH`.
pub const FLAG_CHROMA_FULL_WIDTH: u32 = 1 << 8;
/// `FWHT_FL_COMPONENTS_NUM_MSK` (components - 1), bits 16-18.
pub const COMPONENTS_MASK: u32 = 0x7 << 16;
/// `FWHT_FL_PIXENC_MSK`, bits 19-20 (1 = YUV, 2 = RGB, 3 = HSV).
pub const PIXENC_MASK: u32 = 0x3 << 19;

/// A parsed FWHT frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FwhtHeader {
    /// Bitstream version (3 in Linux 6.1).
    pub version: u32,
    /// Coded width.
    pub width: u32,
    /// Coded height.
    pub height: u32,
    /// `FWHT_FL_*` flags.
    pub flags: u32,
    /// V4L2 colorspace.
    pub colorspace: u32,
    /// V4L2 transfer function.
    pub xfer_func: u32,
    /// V4L2 Y'CbCr encoding.
    pub ycbcr_enc: u32,
    /// V4L2 quantization.
    pub quantization: u32,
    /// Bytes of coded data after the header.
    pub size: u32,
}

fn bad(reason: String) -> MediaError {
    MediaError::Decoder { decoder: "FWHT", reason }
}

impl FwhtHeader {
    /// Parses the header at the start of `data` and checks that the coded data it announces
    /// is there.
    pub fn parse(data: &[u8]) -> Result<Self> {
        let word = |i: usize| -> u32 {
            let b = &data[i * 4..i * 4 + 4];
            u32::from_be_bytes([b[0], b[1], b[2], b[3]])
        };
        if data.len() < HEADER_LEN {
            return Err(bad(format!("{} bytes, shorter than the {HEADER_LEN}-byte header", data.len())));
        }
        if word(0) != MAGIC1 || word(1) != MAGIC2 {
            return Err(bad(format!("no FWHT magic ({:08x} {:08x})", word(0), word(1))));
        }
        let h = FwhtHeader {
            version: word(2),
            width: word(3),
            height: word(4),
            flags: word(5),
            colorspace: word(6),
            xfer_func: word(7),
            ycbcr_enc: word(8),
            quantization: word(9),
            size: word(10),
        };
        if h.version == 0 || h.version > 3 {
            return Err(bad(format!("unknown version {}", h.version)));
        }
        if h.width == 0 || h.height == 0 || h.width > 16384 || h.height > 16384 {
            return Err(bad(format!("bad size {}x{}", h.width, h.height)));
        }
        let have = data.len() - HEADER_LEN;
        if (h.size as usize) > have {
            return Err(bad(format!("header announces {} bytes of planes, {have} follow", h.size)));
        }
        Ok(h)
    }

    /// Number of colour components (3 for YUV 4:2:0, 4 with alpha).
    pub fn components(&self) -> u32 {
        ((self.flags & COMPONENTS_MASK) >> 16) + 1
    }

    /// An intra (key) frame (version 3 flag; earlier versions code only intra frames' flags
    /// implicitly, so they count as intra).
    pub fn is_intra(&self) -> bool {
        self.version < 3 || self.flags & FLAG_I_FRAME != 0
    }

    /// Chroma subsampled in both directions (4:2:0).
    pub fn is_420(&self) -> bool {
        self.flags & (FLAG_CHROMA_FULL_HEIGHT | FLAG_CHROMA_FULL_WIDTH) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(version: u32, w: u32, h: u32, flags: u32, size: u32) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [MAGIC1, MAGIC2, version, w, h, flags, 8, 1, 1, 1, size] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.extend(std::iter::repeat_n(0xab, size as usize));
        v
    }

    #[test]
    fn reads_every_field() {
        let flags = FLAG_I_FRAME | (2 << 16) | (1 << 19);
        let h = FwhtHeader::parse(&header(3, 640, 480, flags, 100)).unwrap();
        assert_eq!((h.version, h.width, h.height, h.size, h.colorspace), (3, 640, 480, 100, 8));
        assert_eq!(h.components(), 3);
        assert!(h.is_intra() && h.is_420());
        let p = FwhtHeader::parse(&header(3, 64, 64, (2 << 16) | FLAG_CHROMA_FULL_WIDTH, 0)).unwrap();
        assert!(!p.is_intra() && !p.is_420());
    }

    #[test]
    fn rejects_short_foreign_and_truncated_buffers() {
        let good = header(3, 320, 240, 0, 10);
        for n in 0..HEADER_LEN {
            assert!(FwhtHeader::parse(&good[..n]).is_err(), "{n} bytes");
        }
        assert!(FwhtHeader::parse(&good[..good.len() - 1]).unwrap_err().to_string().contains("announces"));
        let mut foreign = good.clone();
        foreign[0] = 0;
        assert!(FwhtHeader::parse(&foreign).unwrap_err().to_string().contains("magic"));
        assert!(FwhtHeader::parse(&header(9, 320, 240, 0, 0)).is_err());
        assert!(FwhtHeader::parse(&header(3, 0, 240, 0, 0)).is_err());
        let mut huge = header(3, 320, 240, 0, 0);
        huge[40..44].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(FwhtHeader::parse(&huge).unwrap_err().to_string().contains("announces"));
    }
}
