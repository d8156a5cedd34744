//! Property tests of the packetizer/depacketizer pairs: random frames and packet sizes survive
//! a packetize -> parse -> depacketize round trip byte for byte, and under random loss,
//! reordering and duplication the depacketizers never panic, never output a corrupted frame,
//! and deliver every frame from the first keyframe after the last disturbance on.

use proptest::prelude::*;
use roomcast_rtp::av1::obu::write_leb128;
use roomcast_rtp::{
    parse_rtp, Av1Depacketizer, Av1Packetizer, Depacketizer, Frame, H264Depacketizer, H264Packetizer, OpusDepacketizer,
    OpusPacketizer, Packetizer,
};

/// NAL body bytes that cannot form a start code (no zero bytes) and do not end in zero.
fn nal_body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(1u8..=255, 0..1500)
}

fn h264_nal(ty: u8) -> impl Strategy<Value = Vec<u8>> {
    (0u8..4, nal_body()).prop_map(move |(nri, body)| {
        let mut n = vec![(nri << 5) | ty];
        n.extend(body);
        n
    })
}

fn annexb(nals: &[Vec<u8>]) -> Vec<u8> {
    let mut au = Vec::new();
    for n in nals {
        au.extend_from_slice(&[0, 0, 0, 1]);
        au.extend_from_slice(n);
    }
    au
}

/// A keyframe access unit: SPS, PPS, IDR slices.
fn h264_key_au() -> impl Strategy<Value = Vec<u8>> {
    (h264_nal(7), h264_nal(8), prop::collection::vec(h264_nal(5), 1..4)).prop_map(|(sps, pps, idr)| {
        let mut nals = vec![sps, pps];
        nals.extend(idr);
        annexb(&nals)
    })
}

fn h264_delta_au() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![h264_nal(1), h264_nal(6)], 1..5).prop_map(|mut nals| {
        nals.push(vec![0x41, 0x9a]); // at least one non-IDR slice
        annexb(&nals)
    })
}

fn av1_obu(obu_type: u8, ext: Option<u8>, payload: &[u8]) -> Vec<u8> {
    let mut o = vec![(obu_type << 3) | 0x02 | if ext.is_some() { 0x04 } else { 0 }];
    o.extend(ext);
    write_leb128(payload.len() as u64, &mut o);
    o.extend_from_slice(payload);
    o
}

fn av1_payload() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..2000)
}

/// A key temporal unit: TD, sequence header, key frame OBU (frame_type bits 0).
fn av1_key_tu() -> impl Strategy<Value = Vec<u8>> {
    (av1_payload(), av1_payload(), any::<bool>()).prop_map(|(seq, mut frame, ext)| {
        let seq = if seq.is_empty() { vec![0] } else { seq };
        let mut seq = seq;
        seq[0] &= !0x08; // not a reduced still picture header
        if frame.is_empty() {
            frame.push(0);
        }
        frame[0] &= 0x1f; // show_existing_frame=0, frame_type=KEY_FRAME
        let mut tu = vec![0x12, 0x00];
        tu.extend(av1_obu(1, None, &seq));
        tu.extend(av1_obu(6, ext.then_some(0x08), &frame));
        tu
    })
}

fn av1_delta_tu() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec((prop_oneof![Just(3u8), Just(4), Just(5), Just(6)], av1_payload()), 1..5), av1_payload())
        .prop_map(|(obus, mut frame)| {
            if frame.is_empty() {
                frame.push(0);
            }
            frame[0] |= 0x20; // frame_type INTER
            let mut tu = vec![0x12, 0x00];
            for (ty, p) in obus {
                tu.extend(av1_obu(ty, None, &p));
            }
            tu.extend(av1_obu(6, None, &frame));
            tu
        })
}

/// Valid Opus packet: any config, code 0 or 1/2, random body.
fn opus_packet() -> impl Strategy<Value = Vec<u8>> {
    (0u8..32, 0u8..3, prop::collection::vec(any::<u8>(), 0..1200)).prop_map(|(config, code, body)| {
        let mut p = vec![(config << 3) | code];
        p.extend(body);
        p
    })
}

fn packetize_all(p: &mut dyn Packetizer, frames: &[Vec<u8>], step: u32) -> Vec<(usize, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let mut pkts = Vec::new();
        p.packetize(f, (i as u32).wrapping_mul(step), &mut pkts).expect("packetize");
        let max = p.sender().max_packet_size;
        for pk in &pkts {
            assert!(pk.len() <= max, "packet {} > max {}", pk.len(), max);
        }
        let last = pkts.len() - 1;
        for (j, pk) in pkts.into_iter().enumerate() {
            if step != 960 {
                assert_eq!(pk[1] & 0x80 != 0, j == last, "marker only on the last packet");
            }
            out.push((i, pk));
        }
    }
    out
}

fn depacketize_all(d: &mut dyn Depacketizer, packets: &[(usize, Vec<u8>)]) -> Vec<Frame> {
    let mut frames = Vec::new();
    for (_, pk) in packets {
        let parsed = parse_rtp(pk).expect("our packets parse");
        if let Ok(Some(f)) = d.depacketize(&parsed) {
            frames.push(f);
        }
    }
    frames
}

/// Normalises an Annex B access unit to 4-byte start codes (what the depacketizer emits).
fn normalise_annexb(au: &[u8]) -> Vec<u8> {
    roomcast_rtp::annexb::nal_units(au).flat_map(|n| [0, 0, 0, 1].into_iter().chain(n.iter().copied())).collect()
}

#[derive(Debug, Clone)]
enum Disturb {
    Drop(usize),
    Swap(usize),
    Duplicate(usize),
    /// Drops the last packet of a frame (marker lost): the next frame follows a gap.
    DropFrameEnd(usize),
}

fn disturbances() -> impl Strategy<Value = Vec<Disturb>> {
    prop::collection::vec(
        prop_oneof![
            any::<prop::sample::Index>().prop_map(|i| Disturb::Drop(i.index(1 << 20))),
            any::<prop::sample::Index>().prop_map(|i| Disturb::Swap(i.index(1 << 20))),
            any::<prop::sample::Index>().prop_map(|i| Disturb::Duplicate(i.index(1 << 20))),
            any::<prop::sample::Index>().prop_map(|i| Disturb::DropFrameEnd(i.index(1 << 20))),
        ],
        0..6,
    )
}

/// Applies disturbances; returns the disturbed list and the index (in the original list) of
/// the last packet that was disturbed.
fn disturb(packets: &[(usize, Vec<u8>)], ops: &[Disturb]) -> (Vec<(usize, Vec<u8>)>, Option<usize>) {
    // Work on original indices so "last disturbed" stays meaningful.
    let mut order: Vec<usize> = (0..packets.len()).collect();
    let mut last = None;
    for op in ops {
        if order.len() < 2 {
            break;
        }
        match *op {
            Disturb::Drop(i) => {
                let i = i % order.len();
                let orig = order.remove(i);
                last = last.max(Some(orig));
            }
            Disturb::Swap(i) => {
                let i = i % (order.len() - 1);
                order.swap(i, i + 1);
                last = last.max(Some(order[i].max(order[i + 1])));
            }
            Disturb::Duplicate(i) => {
                let i = i % order.len();
                order.insert(i, order[i]);
                last = last.max(Some(order[i]));
            }
            Disturb::DropFrameEnd(f) => {
                let frame = packets[order[f % order.len()]].0;
                if let Some(pos) = order.iter().rposition(|&o| packets[o].0 == frame) {
                    let orig = order.remove(pos);
                    last = last.max(Some(orig));
                }
            }
        }
    }
    (order.into_iter().map(|i| packets[i].clone()).collect(), last)
}

/// Checks the loss-recovery property for one codec.
fn check_recovery(
    frames: &[Vec<u8>],
    keyframes: &[bool],
    packets: &[(usize, Vec<u8>)],
    ops: &[Disturb],
    d: &mut dyn Depacketizer,
    expected_data: impl Fn(&[u8]) -> Vec<u8>,
    step: u32,
) {
    let (disturbed, last) = disturb(packets, ops);
    let out = depacketize_all(d, &disturbed);
    // Never a corrupted frame, never out of order.
    let mut prev = None;
    for f in &out {
        let i = (f.timestamp / step) as usize;
        assert!(i < frames.len());
        assert_eq!(f.data, expected_data(&frames[i]), "frame {i} corrupted");
        assert_eq!(f.keyframe, keyframes[i]);
        assert!(prev < Some(i), "frames out of order or repeated");
        prev = Some(i);
    }
    // Recovery: every frame from the first keyframe whose packets all follow the last
    // disturbance is delivered.
    let first_clean_key = match last {
        None => Some(0),
        Some(p) => (0..frames.len())
            .find(|&i| keyframes[i] && packets.iter().position(|(f, _)| *f == i).is_some_and(|first| first > p)),
    };
    if let Some(k) = first_clean_key {
        let got: Vec<usize> = out.iter().map(|f| (f.timestamp / step) as usize).filter(|&i| i >= k).collect();
        let want: Vec<usize> = (k..frames.len()).collect();
        assert_eq!(got, want, "frames from keyframe {k} on (last disturbed packet {last:?})");
        assert!(!d.waiting_for_keyframe());
    }
}

fn frames_with_keys(
    key: impl Strategy<Value = Vec<u8>>,
    delta: impl Strategy<Value = Vec<u8>>,
) -> impl Strategy<Value = (Vec<Vec<u8>>, Vec<bool>)> {
    prop::collection::vec((any::<bool>(), key, delta), 1..12).prop_map(|v| {
        let mut frames = Vec::new();
        let mut keys = Vec::new();
        for (i, (is_key, k, d)) in v.into_iter().enumerate() {
            // First frame is always a keyframe; afterwards about one in four.
            let is_key = i == 0 || (is_key && i % 2 == 0);
            frames.push(if is_key { k } else { d });
            keys.push(is_key);
        }
        (frames, keys)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn h264_round_trip(frames in prop::collection::vec(prop_oneof![h264_key_au(), h264_delta_au()], 1..6),
                       max in 15usize..1600, seq in any::<u16>()) {
        let mut p = H264Packetizer::new(0x5eed, 96, max, 0xfffe);
        p.sender_mut().next_sequence = seq;
        let mut frames = frames;
        frames.insert(0, annexb(&[vec![0x67, 1], vec![0x68, 2], vec![0x65, 3]]));
        let packets = packetize_all(&mut p, &frames, 3000);
        let out = depacketize_all(&mut H264Depacketizer::new(), &packets);
        prop_assert_eq!(out.len(), frames.len());
        for (f, want) in out.iter().zip(&frames) {
            prop_assert_eq!(&f.data, &normalise_annexb(want));
            prop_assert_eq!(f.keyframe, roomcast_rtp::annexb::is_idr_access_unit(want));
        }
    }

    #[test]
    fn av1_round_trip(frames in prop::collection::vec(prop_oneof![av1_key_tu(), av1_delta_tu()], 1..6),
                      max in 14usize..1600, seq in any::<u16>()) {
        let mut p = Av1Packetizer::new(0x5eed, 96, max, 0xfffe);
        p.sender_mut().next_sequence = seq;
        let mut frames = frames;
        frames.insert(0, vec![0x12, 0x00, 0x0a, 0x01, 0x00, 0x32, 0x01, 0x10]);
        let packets = packetize_all(&mut p, &frames, 3000);
        let out = depacketize_all(&mut Av1Depacketizer::new(), &packets);
        prop_assert_eq!(out.len(), frames.len());
        for (f, want) in out.iter().zip(&frames) {
            prop_assert_eq!(&f.data, want);
        }
    }

    #[test]
    fn opus_round_trip(frames in prop::collection::vec(opus_packet(), 1..20), seq in any::<u16>()) {
        let mut p = OpusPacketizer::new(0x5eed, 111, 1300, 0xfffe);
        p.sender_mut().next_sequence = seq;
        let packets = packetize_all(&mut p, &frames, 960);
        let out = depacketize_all(&mut OpusDepacketizer::new(), &packets);
        prop_assert_eq!(out.iter().map(|f| &f.data).collect::<Vec<_>>(), frames.iter().collect::<Vec<_>>());
    }

    #[test]
    fn h264_recovers_after_loss((frames, keys) in frames_with_keys(h264_key_au(), h264_delta_au()),
                                max in 40usize..1500, ops in disturbances(), seq in any::<u16>()) {
        let mut p = H264Packetizer::new(1, 96, max, 0xfffe);
        p.sender_mut().next_sequence = seq;
        let packets = packetize_all(&mut p, &frames, 3000);
        check_recovery(&frames, &keys, &packets, &ops, &mut H264Depacketizer::new(), normalise_annexb, 3000);
    }

    #[test]
    fn av1_recovers_after_loss((frames, keys) in frames_with_keys(av1_key_tu(), av1_delta_tu()),
                               max in 40usize..1500, ops in disturbances(), seq in any::<u16>()) {
        let mut p = Av1Packetizer::new(1, 96, max, 0xfffe);
        p.sender_mut().next_sequence = seq;
        let packets = packetize_all(&mut p, &frames, 3000);
        check_recovery(&frames, &keys, &packets, &ops, &mut Av1Depacketizer::new(), |f| f.to_vec(), 3000);
    }

    #[test]
    fn opus_survives_loss(frames in prop::collection::vec(opus_packet(), 1..30), ops in disturbances()) {
        let mut p = OpusPacketizer::new(1, 111, 1300, 0xfffe);
        let packets = packetize_all(&mut p, &frames, 960);
        let (disturbed, _) = disturb(&packets, &ops);
        let dropped = ops.iter().filter(|o| matches!(o, Disturb::Drop(_) | Disturb::DropFrameEnd(_))).count();
        let out = depacketize_all(&mut OpusDepacketizer::new(), &disturbed);
        prop_assert!(out.len() + dropped + 2 * ops.len() >= frames.len());
        for f in &out {
            prop_assert_eq!(&f.data, &frames[(f.timestamp / 960) as usize]);
        }
    }

    #[test]
    fn garbage_never_panics(packets in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..40)) {
        let mut h = H264Depacketizer::new();
        let mut a = Av1Depacketizer::new();
        let mut o = OpusDepacketizer::new();
        for mut pk in packets {
            if pk.len() >= 12 {
                pk[0] = 0x80 | (pk[0] & 0x3f);
            }
            if let Ok(parsed) = parse_rtp(&pk) {
                let _ = h.depacketize(&parsed);
                let _ = a.depacketize(&parsed);
                let _ = o.depacketize(&parsed);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Receive path: packets reordered within a window, arriving 1 ms apart, pass a jitter
    /// buffer with a latency longer than the reordering and come out in order, so the
    /// depacketizer delivers every frame.
    #[test]
    fn jitter_buffer_undoes_reordering(frames in prop::collection::vec(h264_delta_au(), 1..10),
                                       swaps in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
                                       seq in any::<u16>()) {
        use roomcast_rtp::jitter::JitterBuffer;
        use std::time::{Duration, Instant};
        let mut frames = frames;
        frames.insert(0, annexb(&[vec![0x67, 1], vec![0x68, 2], vec![0x65, 0x88]]));
        let mut p = H264Packetizer::new(1, 96, 200, 0xfffe);
        p.sender_mut().next_sequence = seq;
        let mut packets: Vec<Vec<u8>> = packetize_all(&mut p, &frames, 3000).into_iter().map(|(_, pk)| pk).collect();
        let n = packets.len();
        for s in swaps {
            let i = s.index(n);
            let j = (i + 3).min(n - 1); // displaced by at most 3 places
            packets.swap(i, j);
        }
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Duration::from_millis(50));
        let mut d = H264Depacketizer::new();
        let mut out = Vec::new();
        let mut feed = |jb: &mut JitterBuffer, now: Instant, out: &mut Vec<Frame>| {
            while let Some(r) = jb.poll_packet(now) {
                if let Some(f) = d.depacketize(&parse_rtp(&r.data).unwrap()).unwrap() {
                    out.push(f);
                }
            }
        };
        for (i, pk) in packets.into_iter().enumerate() {
            let now = t0 + Duration::from_millis(i as u64);
            jb.handle_packet(now, pk).unwrap();
            feed(&mut jb, now, &mut out);
        }
        feed(&mut jb, t0 + Duration::from_secs(10), &mut out);
        prop_assert_eq!(jb.stats().lost, 0);
        prop_assert_eq!(out.len(), frames.len());
        for (f, want) in out.iter().zip(&frames) {
            prop_assert_eq!(&f.data, &normalise_annexb(want));
        }
    }
}
