//! Benchmark of the RTP hot paths (run with `cargo bench -p roomcast-rtp`): packetizing and
//! depacketizing H.264 and AV1 frames at the AMT packet size, Opus packets, and RTP header
//! parsing; prints throughput and per-call cost. Not a test: figures only.

use std::hint::black_box;
use std::time::{Duration, Instant};

use roomcast_rtp::av1::obu::write_leb128;
use roomcast_rtp::{
    parse_rtp, Av1Depacketizer, Av1Packetizer, Depacketizer, H264Depacketizer, H264Packetizer, OpusDepacketizer,
    OpusPacketizer, Packetizer, AMT_MAX_RTP_PACKET_SIZE,
};

fn pseudo_random(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x as u8) | 1 // no zero bytes: no accidental start codes
        })
        .collect()
}

fn h264_au(size: usize, idr: bool, seed: u32) -> Vec<u8> {
    let mut au = Vec::new();
    if idr {
        au.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0x8c, 0x8d, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
    }
    au.extend_from_slice(&[0, 0, 0, 1, if idr { 0x65 } else { 0x41 }, 0x88]);
    au.extend(pseudo_random(size, seed));
    au
}

fn av1_tu(size: usize, key: bool, seed: u32) -> Vec<u8> {
    let mut tu = vec![0x12, 0x00];
    if key {
        tu.extend_from_slice(&[0x0a, 0x0b, 0, 0, 0, 0x24, 0xc4, 0xff, 0xdf, 0x00, 0x68, 0x02, 0x10]);
    }
    let mut payload = pseudo_random(size, seed);
    payload[0] = if key { 0x10 } else { 0x30 };
    tu.push(0x32);
    write_leb128(payload.len() as u64, &mut tu);
    tu.extend(payload);
    tu
}

fn measure(name: &str, bytes_per_iter: usize, mut f: impl FnMut()) {
    let start = Instant::now();
    let mut iters = 0u64;
    while start.elapsed() < Duration::from_millis(800) {
        f();
        iters += 1;
    }
    let per = start.elapsed() / iters as u32;
    let mbps = bytes_per_iter as f64 * iters as f64 / start.elapsed().as_secs_f64() / 1e6;
    println!("{name:<48} {:>9.2} us/call {:>9.1} MB/s", per.as_secs_f64() * 1e6, mbps);
}

fn main() {
    println!("roomcast-rtp packetization at max packet size {AMT_MAX_RTP_PACKET_SIZE} (AMT)");
    let h264: Vec<Vec<u8>> = (0..25).map(|i| h264_au(if i == 0 { 60_000 } else { 6_000 }, i == 0, i)).collect();
    let av1: Vec<Vec<u8>> = (0..25).map(|i| av1_tu(if i == 0 { 60_000 } else { 6_000 }, i == 0, i)).collect();
    let h264_bytes: usize = h264.iter().map(Vec::len).sum();
    let av1_bytes: usize = av1.iter().map(Vec::len).sum();

    let mut p = H264Packetizer::new(1, 96, AMT_MAX_RTP_PACKET_SIZE, 0);
    let mut out = Vec::new();
    measure("H.264 packetize (1 s of 25 fps, ~200 kB)", h264_bytes, || {
        out.clear();
        for (i, au) in h264.iter().enumerate() {
            p.packetize(au, i as u32 * 3600, &mut out).unwrap();
        }
        black_box(&out);
    });
    let packets = out.clone();
    measure("H.264 depacketize (same)", h264_bytes, || {
        let mut d = H264Depacketizer::new();
        for pk in &packets {
            black_box(d.depacketize(&parse_rtp(pk).unwrap()).unwrap());
        }
    });

    let mut p = Av1Packetizer::new(1, 96, AMT_MAX_RTP_PACKET_SIZE, 0);
    measure("AV1 packetize (1 s of 25 fps, ~200 kB)", av1_bytes, || {
        out.clear();
        for (i, tu) in av1.iter().enumerate() {
            p.packetize(tu, i as u32 * 3600, &mut out).unwrap();
        }
        black_box(&out);
    });
    let packets = out.clone();
    measure("AV1 depacketize (same)", av1_bytes, || {
        let mut d = Av1Depacketizer::new();
        for pk in &packets {
            black_box(d.depacketize(&parse_rtp(pk).unwrap()).unwrap());
        }
    });

    let opus = pseudo_random(160, 7);
    let mut p = OpusPacketizer::new(1, 111, AMT_MAX_RTP_PACKET_SIZE, 0);
    let mut d = OpusDepacketizer::new();
    let mut ts = 0u32;
    measure("Opus packetize+depacketize (one 20 ms packet)", opus.len(), || {
        out.clear();
        ts = ts.wrapping_add(960);
        p.packetize(&opus, ts, &mut out).unwrap();
        black_box(d.depacketize(&parse_rtp(&out[0]).unwrap()).unwrap());
    });
    let pkt = packets[3].clone();
    measure("RTP header parse (one packet)", pkt.len(), || {
        black_box(parse_rtp(black_box(&pkt)).unwrap());
    });
}
