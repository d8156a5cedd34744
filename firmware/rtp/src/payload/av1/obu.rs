//! AV1 bitstream pieces the RTP payload format needs: leb128 integers, OBU headers, iterating
//! the OBUs of a temporal unit in low-overhead format (obu_has_size_field=1), and telling a
//! key frame with a sequence header (start of a coded video sequence) from the frame header's
//! first bits. Only what packetization needs; no full AV1 parsing.

use crate::error::{Result, RtpError};

/// OBU type: sequence header.
pub const OBU_SEQUENCE_HEADER: u8 = 1;
/// OBU type: temporal delimiter.
pub const OBU_TEMPORAL_DELIMITER: u8 = 2;
/// OBU type: frame header.
pub const OBU_FRAME_HEADER: u8 = 3;
/// OBU type: tile group.
pub const OBU_TILE_GROUP: u8 = 4;
/// OBU type: metadata.
pub const OBU_METADATA: u8 = 5;
/// OBU type: frame (frame header + tile group).
pub const OBU_FRAME: u8 = 6;
/// OBU type: redundant frame header.
pub const OBU_REDUNDANT_FRAME_HEADER: u8 = 7;
/// OBU type: tile list.
pub const OBU_TILE_LIST: u8 = 8;
/// OBU type: padding.
pub const OBU_PADDING: u8 = 15;

/// The temporal delimiter OBU in low-overhead format (header 0x12, size 0).
pub const TEMPORAL_DELIMITER: [u8; 2] = [0x12, 0x00];

const CODEC: &str = "AV1";

/// Reads a leb128 value (at most 8 bytes, value < 2^32 as AV1 requires); returns (value, length).
pub fn read_leb128(data: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for i in 0..8 {
        let b = *data.get(i)?;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return (value <= u64::from(u32::MAX)).then_some((value, i + 1));
        }
    }
    None
}

/// Appends `value` as leb128.
pub fn write_leb128(mut value: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Number of bytes `value` takes as leb128.
pub fn leb128_len(value: u64) -> usize {
    let bits = 64 - value.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// One OBU borrowed from a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Obu<'a> {
    /// obu_type (4 bits).
    pub obu_type: u8,
    /// First header byte with obu_has_size_field cleared.
    pub header: u8,
    /// Extension byte (temporal/spatial id), when obu_extension_flag is set.
    pub extension: Option<u8>,
    /// OBU payload (after header and size field).
    pub payload: &'a [u8],
}

impl Obu<'_> {
    /// Appends this OBU in low-overhead format (obu_has_size_field=1).
    pub fn write_sized(&self, out: &mut Vec<u8>) {
        out.push(self.header | 0x02);
        out.extend(self.extension);
        write_leb128(self.payload.len() as u64, out);
        out.extend_from_slice(self.payload);
    }

    /// Appends this OBU as an RTP OBU element (obu_has_size_field=0, no size).
    pub fn write_unsized(&self, out: &mut Vec<u8>) {
        out.push(self.header & !0x02);
        out.extend(self.extension);
        out.extend_from_slice(self.payload);
    }

    /// Length of [`Obu::write_unsized`] output.
    pub fn unsized_len(&self) -> usize {
        1 + usize::from(self.extension.is_some()) + self.payload.len()
    }
}

/// Parses one OBU from the start of `data`. If `has_size` is false in the header, the OBU
/// extends to the end of `data` (RTP OBU element form). Returns the OBU and bytes consumed.
pub fn parse_obu(data: &[u8]) -> Result<(Obu<'_>, usize)> {
    let &h = data.first().ok_or(RtpError::MalformedPayload { codec: CODEC, reason: "empty OBU" })?;
    if h & 0x80 != 0 {
        return Err(RtpError::MalformedPayload { codec: CODEC, reason: "OBU forbidden bit set" });
    }
    let obu_type = (h >> 3) & 0x0f;
    let has_ext = h & 0x04 != 0;
    let has_size = h & 0x02 != 0;
    let mut pos = 1;
    let extension = if has_ext {
        let e =
            *data.get(1).ok_or(RtpError::MalformedPayload { codec: CODEC, reason: "OBU extension byte missing" })?;
        pos = 2;
        Some(e)
    } else {
        None
    };
    let payload_len = if has_size {
        let (len, n) = data
            .get(pos..)
            .and_then(read_leb128)
            .ok_or(RtpError::MalformedPayload { codec: CODEC, reason: "bad OBU size field" })?;
        pos += n;
        usize::try_from(len).unwrap_or(usize::MAX)
    } else {
        data.len() - pos
    };
    let end = pos
        .checked_add(payload_len)
        .filter(|&e| e <= data.len())
        .ok_or(RtpError::MalformedPayload { codec: CODEC, reason: "OBU size past end of data" })?;
    Ok((Obu { obu_type, header: h & !0x02, extension, payload: &data[pos..end] }, end))
}

/// Splits a temporal unit in low-overhead format into OBUs. Every OBU must carry a size
/// field except possibly the last one (which then runs to the end).
pub fn parse_temporal_unit(data: &[u8]) -> Result<Vec<Obu<'_>>> {
    let mut obus = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (obu, used) = parse_obu(rest)?;
        obus.push(obu);
        rest = &rest[used..];
    }
    Ok(obus)
}

/// True when the OBUs start a coded video sequence: a sequence header followed by a frame
/// (header) whose frame_type is KEY_FRAME (or a reduced still-picture sequence header).
pub fn starts_coded_video_sequence(obus: &[Obu<'_>]) -> bool {
    let Some(seq) = obus.iter().find(|o| o.obu_type == OBU_SEQUENCE_HEADER) else {
        return false;
    };
    // seq_profile (3) still_picture (1) reduced_still_picture_header (1)
    let reduced_still = seq.payload.first().is_some_and(|b| b & 0x08 != 0);
    if reduced_still {
        return true;
    }
    obus.iter()
        .find(|o| o.obu_type == OBU_FRAME || o.obu_type == OBU_FRAME_HEADER)
        .and_then(|f| f.payload.first())
        // show_existing_frame (1) = 0, frame_type (2) = KEY_FRAME (0)
        .is_some_and(|b| b & 0xe0 == 0)
}

/// MSB-first bit reader over a byte slice; reads past the end yield None.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl BitReader<'_> {
    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.pos / 8)?;
            v = (v << 1) | u32::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Some(v)
    }

    fn flag(&mut self) -> Option<bool> {
        self.bits(1).map(|b| b == 1)
    }

    /// uvlc() of the AV1 spec (4.10.3).
    fn uvlc(&mut self) -> Option<u32> {
        let mut leading = 0;
        while !self.flag()? {
            leading += 1;
            if leading >= 32 {
                return None;
            }
        }
        Some(self.bits(leading)? + ((1u32 << leading) - 1))
    }
}

/// Maximum frame size (width, height) from a sequence header OBU payload (AV1 spec 5.5.1),
/// which an IVF header or a recorder can show. None when the payload is truncated.
pub fn sequence_header_dimensions(payload: &[u8]) -> Option<(u32, u32)> {
    let mut r = BitReader { data: payload, pos: 0 };
    let _seq_profile = r.bits(3)?;
    let _still_picture = r.flag()?;
    let reduced_still_picture_header = r.flag()?;
    if reduced_still_picture_header {
        r.bits(5)?; // seq_level_idx[0]
    } else {
        let timing_info_present = r.flag()?;
        let mut decoder_model_info_present = false;
        let mut buffer_delay_length = 0;
        if timing_info_present {
            r.bits(32)?; // num_units_in_display_tick
            r.bits(32)?; // time_scale
            if r.flag()? {
                r.uvlc()?; // num_ticks_per_picture_minus_1
            }
            decoder_model_info_present = r.flag()?;
            if decoder_model_info_present {
                buffer_delay_length = r.bits(5)? + 1;
                r.bits(32)?; // num_units_in_decoding_tick
                r.bits(5)?; // buffer_removal_time_length_minus_1
                r.bits(5)?; // frame_presentation_time_length_minus_1
            }
        }
        let initial_display_delay_present = r.flag()?;
        let operating_points = r.bits(5)? + 1;
        for _ in 0..operating_points {
            r.bits(12)?; // operating_point_idc
            let seq_level_idx = r.bits(5)?;
            if seq_level_idx > 7 {
                r.bits(1)?; // seq_tier
            }
            if decoder_model_info_present && r.flag()? {
                r.bits(buffer_delay_length)?; // decoder_buffer_delay
                r.bits(buffer_delay_length)?; // encoder_buffer_delay
                r.bits(1)?; // low_delay_mode_flag
            }
            if initial_display_delay_present && r.flag()? {
                r.bits(4)?; // initial_display_delay_minus_1
            }
        }
    }
    let width_bits = r.bits(4)? + 1;
    let height_bits = r.bits(4)? + 1;
    let width = r.bits(width_bits)? + 1;
    let height = r.bits(height_bits)? + 1;
    Some((width, height))
}

/// Frame size from the sequence header in a temporal unit (low-overhead format), if it has one.
pub fn temporal_unit_dimensions(tu: &[u8]) -> Option<(u32, u32)> {
    let obus = parse_temporal_unit(tu).ok()?;
    let seq = obus.iter().find(|o| o.obu_type == OBU_SEQUENCE_HEADER)?;
    sequence_header_dimensions(seq.payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_header_dimensions_known() {
        // libaom 320x240 realtime sequence header payload (from `ffmpeg -c:v libaom-av1`).
        let seq = [0x20, 0x00, 0x00, 0x04, 0x3c, 0xff, 0xbc, 0xda, 0xf9, 0x20, 0x21, 0xa0, 0x04];
        assert_eq!(sequence_header_dimensions(&seq), Some((320, 240)));
        assert_eq!(sequence_header_dimensions(&seq[..4]), None);
        // reduced still picture header: profile 000, still 1, reduced 1, level 00000,
        // width bits-1 0011, height bits-1 0010, width-1 1111, height-1 111
        let still = [0x18, 0x0c, 0xbf, 0x80];
        assert_eq!(sequence_header_dimensions(&still), Some((16, 8)));
    }

    #[test]
    fn leb128_round_trip() {
        for v in [0u64, 1, 127, 128, 300, 16383, 16384, u32::MAX as u64] {
            let mut out = Vec::new();
            write_leb128(v, &mut out);
            assert_eq!(out.len(), leb128_len(v));
            assert_eq!(read_leb128(&out), Some((v, out.len())));
        }
        assert_eq!(read_leb128(&[0xac, 0x02]), Some((300, 2)));
        assert_eq!(read_leb128(&[0x80]), None);
        assert_eq!(read_leb128(&[0xff; 9]), None);
    }

    #[test]
    fn parses_temporal_unit() {
        // TD, sequence header (payload 2 bytes), frame OBU with extension (payload 3 bytes)
        let tu = [0x12, 0x00, 0x0a, 0x02, 0x00, 0x00, 0x36, 0x08, 0x03, 0x10, 0xaa, 0xbb];
        let obus = parse_temporal_unit(&tu).unwrap();
        assert_eq!(obus.len(), 3);
        assert_eq!(obus[0].obu_type, OBU_TEMPORAL_DELIMITER);
        assert_eq!(obus[1].obu_type, OBU_SEQUENCE_HEADER);
        assert_eq!(obus[2].obu_type, OBU_FRAME);
        assert_eq!(obus[2].extension, Some(0x08));
        assert_eq!(obus[2].payload, &[0x10, 0xaa, 0xbb]);
        assert!(starts_coded_video_sequence(&obus));
        let mut out = Vec::new();
        for o in &obus {
            o.write_sized(&mut out);
        }
        assert_eq!(out, tu);
        assert!(parse_temporal_unit(&[0x32, 0x05, 1]).is_err());
        assert!(parse_temporal_unit(&[0x92, 0x00]).is_err());
    }
}
