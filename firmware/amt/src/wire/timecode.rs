//! The floating-point time codes of IGMPv3 and MLDv2 (RFC 3376 4.1.1/4.1.7, RFC 3810 5.1.3/5.1.9):
//! 8-bit Max Resp Code and QQIC, and MLDv2's 16-bit Maximum Response Code.

/// Decodes an 8-bit code (IGMPv3 Max Resp Code, IGMPv3/MLDv2 QQIC): below 128 literal,
/// else `1|exp(3)|mant(4)` meaning `(mant | 0x10) << (exp + 3)`.
pub fn decode_code8(code: u8) -> u32 {
    if code < 128 {
        u32::from(code)
    } else {
        let exp = u32::from((code >> 4) & 0x07);
        let mant = u32::from(code & 0x0f);
        (mant | 0x10) << (exp + 3)
    }
}

/// Encodes `value` as an 8-bit code, rounding down; saturates at the largest code (31744).
pub fn encode_code8(value: u32) -> u8 {
    if value < 128 {
        return value as u8;
    }
    for exp in 0..8u32 {
        let mant = value >> (exp + 3);
        if mant < 0x20 {
            return 0x80 | ((exp as u8) << 4) | ((mant & 0x0f) as u8);
        }
    }
    0xff
}

/// Decodes MLDv2's 16-bit Maximum Response Code (milliseconds): below 32768 literal, else
/// `1|exp(3)|mant(12)` meaning `(mant | 0x1000) << (exp + 3)`.
pub fn decode_code16(code: u16) -> u32 {
    if code < 0x8000 {
        u32::from(code)
    } else {
        let exp = u32::from((code >> 12) & 0x07);
        let mant = u32::from(code & 0x0fff);
        (mant | 0x1000) << (exp + 3)
    }
}

/// Encodes `value` as MLDv2's 16-bit code, rounding down; saturates at the largest code.
pub fn encode_code16(value: u32) -> u16 {
    if value < 0x8000 {
        return value as u16;
    }
    for exp in 0..8u32 {
        let mant = value >> (exp + 3);
        if mant < 0x2000 {
            return 0x8000 | ((exp as u16) << 12) | ((mant & 0x0fff) as u16);
        }
    }
    0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code8_known_values() {
        assert_eq!(decode_code8(125), 125);
        assert_eq!(encode_code8(125), 125);
        assert_eq!(decode_code8(0x80), 128);
        assert_eq!(decode_code8(0xff), 31744);
        assert_eq!(encode_code8(128), 0x80);
        assert_eq!(encode_code8(31744), 0xff);
        assert_eq!(encode_code8(1_000_000), 0xff);
        for code in 0..=255u8 {
            assert_eq!(encode_code8(decode_code8(code)), code);
        }
    }

    #[test]
    fn code16_known_values() {
        assert_eq!(decode_code16(10_000), 10_000);
        assert_eq!(decode_code16(0x8000), 32768);
        assert_eq!(decode_code16(0xffff), 0x1fff << 10);
        for code in (0..=0xffffu16).step_by(7) {
            assert_eq!(encode_code16(decode_code16(code)), code);
        }
    }

    #[test]
    fn rounding_down_never_exceeds() {
        for v in [129u32, 1000, 3000, 10_001, 99_999] {
            assert!(decode_code8(encode_code8(v)) <= v);
            assert!(decode_code16(encode_code16(v * 10)) <= v * 10);
        }
    }
}
