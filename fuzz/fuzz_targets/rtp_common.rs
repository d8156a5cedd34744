//! Shared helper of the rtp_* depacketizer fuzz targets (included with `#[path]`, not a target
//! itself): turns fuzz input into a sequence of RTP packets whose header fields the fuzzer
//! controls compactly, so it reaches deep into payload parsing and loss handling.

use roomcast_rtp::{build_rtp, RtpHeader};

/// Splits `data` into records `[control, len, payload[len]]` and builds an RTP packet from each.
/// control bit 0: marker; bits 1-3: sequence step - 1 (0 = in order, 7 = far jump, 6 = back);
/// bits 4-5: timestamp step (0 same frame, 1 next frame, 2 back, 3 big jump).
pub fn packets(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut seq: u16 = 65530;
    let mut ts: u32 = 0;
    let mut rest = data;
    while let [control, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        seq = match (control >> 1) & 7 {
            7 => seq.wrapping_add(40_000),
            6 => seq.wrapping_sub(3),
            step => seq.wrapping_add(u16::from(step)),
        };
        ts = match (control >> 4) & 3 {
            0 => ts,
            1 => ts.wrapping_add(3000),
            2 => ts.wrapping_sub(3000),
            _ => ts.wrapping_add(0x8000_0000),
        };
        let header = RtpHeader {
            marker: control & 1 != 0,
            payload_type: 96,
            sequence_number: seq,
            timestamp: ts,
            ssrc: 1,
            ..RtpHeader::default()
        };
        out.push(build_rtp(&header, payload));
    }
    out
}
