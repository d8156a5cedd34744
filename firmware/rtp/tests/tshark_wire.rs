//! Third-party check of our wire formats with Wireshark's dissectors: RTP headers, H.264
//! STAP-A / FU-A payloads, an Opus payload and RTCP compound packets (SR + report block + SDES
//! CNAME, RR + SDES + PLI + BYE with reason) are written to a pcap file (raw IPv4/UDP on loopback
//! addresses, no traffic sent) and tshark must decode every field as we meant it, with no
//! malformed packets or warnings.

mod common;

use std::process::Command;

use common::*;
use roomcast_rtp::rtcp::{
    encode_compound, Bye, NtpTimestamp, Pli, ReceiverReport, ReportBlock, RtcpPacket, SdesChunk, SenderReport,
};
use roomcast_rtp::{H264Packetizer, OpusPacketizer, Packetizer, AMT_MAX_RTP_PACKET_SIZE};

const VIDEO_PORT: u16 = 5004;
const AUDIO_PORT: u16 = 5006;

/// pcap file (LINKTYPE_RAW) of IPv4/UDP datagrams from 127.0.0.1:40000 to 127.0.0.1:port.
fn pcap(datagrams: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&0i32.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&101u32.to_le_bytes()); // LINKTYPE_RAW
    for (i, (port, payload)) in datagrams.iter().enumerate() {
        let udp_len = 8 + payload.len();
        let total = 20 + udp_len;
        let mut ip = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            i as u8,
            0x40,
            0,
            64,
            17,
            0,
            0,
            127,
            0,
            0,
            1,
            127,
            0,
            0,
            1,
        ];
        let sum = ip.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum::<u32>();
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        ip.extend_from_slice(&40000u16.to_be_bytes());
        ip.extend_from_slice(&port.to_be_bytes());
        ip.extend_from_slice(&(udp_len as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 0]);
        ip.extend_from_slice(payload);
        f.extend_from_slice(&(i as u32 + 1).to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&(ip.len() as u32).to_le_bytes());
        f.extend_from_slice(&(ip.len() as u32).to_le_bytes());
        f.extend_from_slice(&ip);
    }
    f
}

#[test]
fn tshark_decodes_our_rtp_and_rtcp() {
    let Some(tshark) = roomcast_test_support::require_tool("tshark") else { return };
    let dir = scratch_dir("tshark");

    let mut datagrams = Vec::new();
    // H.264 access unit: x264's SPS + PPS for 320x240 baseline (STAP-A) and a 3000-byte IDR
    // slice (3 FU-A fragments).
    let mut au = vec![
        0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
        0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80, 0, 0, 0, 1, 0x68, 0xcb, 0x83, 0xcb, 0x20, 0, 0, 0, 1, 0x65,
        0x88,
    ];
    au.extend((0..2998u32).map(|i| (i % 251) as u8 | 1));
    let mut video = H264Packetizer::new(0x1111_2222, 96, AMT_MAX_RTP_PACKET_SIZE, 0xfffe);
    video.sender_mut().next_sequence = 65534;
    let mut packets = Vec::new();
    video.packetize(&au, 90_000, &mut packets).unwrap();
    assert_eq!(packets.len(), 4);
    datagrams.extend(packets.into_iter().map(|p| (VIDEO_PORT, p)));
    // One Opus packet (config 31: CELT fullband 20 ms).
    let mut audio = OpusPacketizer::new(0x3333_4444, 111, AMT_MAX_RTP_PACKET_SIZE, 0xfffe);
    let mut packets = Vec::new();
    audio.packetize(&[0xfc, 0xff, 0xfe, 0x12, 0x34], 48_000, &mut packets).unwrap();
    datagrams.extend(packets.into_iter().map(|p| (AUDIO_PORT, p)));
    // RTCP: SR with a report block + SDES; then RR + SDES + BYE with a reason.
    let block = ReportBlock {
        ssrc: 0x3333_4444,
        fraction_lost: 64,
        cumulative_lost: 7,
        extended_highest_seq: 0x0001_0005,
        jitter: 123,
        last_sr: 0x1234_5678,
        delay_since_last_sr: 65536,
    };
    let mut sr = SenderReport::from_sender(video.sender(), NtpTimestamp(0xe000_0000_8000_0000), 90_000);
    sr.reports.push(block.clone());
    datagrams.push((
        VIDEO_PORT + 1,
        encode_compound(&[
            RtcpPacket::SenderReport(sr),
            RtcpPacket::SourceDescription(vec![SdesChunk::cname(0x1111_2222, "roomcast@box")]),
        ]),
    ));
    datagrams.push((
        AUDIO_PORT + 1,
        encode_compound(&[
            RtcpPacket::ReceiverReport(ReceiverReport { ssrc: 0x5555_6666, reports: vec![block] }),
            RtcpPacket::SourceDescription(vec![SdesChunk::cname(0x5555_6666, "listener")]),
            RtcpPacket::Pli(Pli { sender_ssrc: 0x5555_6666, media_ssrc: 0x1111_2222 }),
            RtcpPacket::Bye(Bye { sources: vec![0x5555_6666], reason: Some(b"left".to_vec()) }),
        ]),
    ));
    let file = dir.join("wire.pcap");
    std::fs::write(&file, pcap(&datagrams)).unwrap();

    let out = run(Command::new(&tshark).arg("-r").arg(&file).args([
        "-d",
        "udp.port==5004,rtp",
        "-d",
        "udp.port==5006,rtp",
        "-d",
        "udp.port==5005,rtcp",
        "-d",
        "udp.port==5007,rtcp",
        "-d",
        "rtp.pt==96,h264",
        "-d",
        "rtp.pt==111,opus",
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
        "-e",
        "rtp.seq",
        "-e",
        "rtp.marker",
        "-e",
        "rtp.p_type",
        "-e",
        "rtp.timestamp",
        "-e",
        "rtp.ssrc",
        "-e",
        "h264.nal_unit_hdr",
        "-e",
        "h264.start.bit",
        "-e",
        "h264.end.bit",
        "-e",
        "opus.TOC.config",
        "-e",
        "rtcp.pt",
        "-e",
        "rtcp.sender.packetcount",
        "-e",
        "rtcp.sender.octetcount",
        "-e",
        "rtcp.sdes.text",
        "-e",
        "rtcp.ssrc.fraction",
        "-e",
        "rtcp.ssrc.cum_nr",
        "-e",
        "rtcp.ssrc.jitter",
        "-e",
        "rtcp.ssrc.dlsr",
        "-e",
        "_ws.expert.severity",
        "-e",
        "_ws.malformed",
        "-e",
        "_ws.expert.group",
        "-e",
        "h264.nal_unit_type",
        "-e",
        "rtcp.psfb.fmt",
        "-e",
        "rtcp.mediassrc",
    ]));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), 7, "tshark output:\n{text}");
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.len(), 23, "row {i}: {r:?}");
        // Expert infos up to "note" are fine, and so is "slice data not decoded" (group
        // Undecoded: Wireshark does not parse H.264 slice data); warnings and errors are not.
        let num = |s: &str| s.parse::<u32>().unwrap_or(u32::MAX);
        let severities: Vec<u32> = r[17].split(',').filter(|s| !s.is_empty()).map(num).collect();
        let groups: Vec<u32> = r[19].split(',').filter(|s| !s.is_empty()).map(num).collect();
        assert_eq!(severities.len(), groups.len(), "row {i}: {r:?}");
        let acceptable =
            severities.iter().zip(&groups).all(|(&s, &g)| s < 0x0060_0000 || (g == 0x0500_0000 && s == 0x0060_0000));
        assert!(acceptable && r[18].is_empty(), "tshark warning/malformed on packet {}: {r:?}", i + 1);
    }
    // RTP headers: sequence wraps 65534 -> 1, marker on the last packet of the access unit.
    let seqs: Vec<&str> = rows[..4].iter().map(|r| r[0]).collect();
    assert_eq!(seqs, ["65534", "65535", "0", "1"]);
    let markers: Vec<&str> = rows[..4].iter().map(|r| r[1]).collect();
    assert!(
        matches!(markers.as_slice(), [m0, m1, m2, m3] if [m0, m1, m2].iter().all(|m| ["0", "False"].contains(m)) && ["1", "True"].contains(m3)),
        "{markers:?}"
    );
    assert!(rows[..4].iter().all(|r| r[2] == "96" && r[3] == "90000" && r[4] == "0x11112222"), "{rows:?}");
    // Payloads: STAP-A (24) holding SPS (7) + PPS (8), then FU-A (28) start/middle/end of an IDR (5).
    assert_eq!(rows[0][5], "24,7,8", "{:?}", rows[0]);
    let fu: Vec<(&str, &str, &str, &str)> = rows[1..4].iter().map(|r| (r[5], r[20], r[6], r[7])).collect();
    for (i, (hdr, nal_type, s, e)) in fu.iter().enumerate() {
        assert_eq!((*hdr, *nal_type), ("28", "5"), "FU-A {i} carrying an IDR slice");
        let truthy = |v: &str| v == "1" || v == "True";
        assert_eq!((truthy(s), truthy(e)), (i == 0, i == 2), "FU-A {i} start/end bits: {s} {e}");
    }
    assert_eq!((rows[4][2], rows[4][8], rows[4][1]), ("111", "31", "1"), "Opus row {:?}", rows[4]);
    // RTCP: SR + SDES, RR + SDES + PLI + BYE.
    assert_eq!(rows[5][9], "200,202");
    let octets = video.sender().octet_count.to_string();
    assert_eq!((rows[5][10], rows[5][11]), ("4", octets.as_str()));
    assert_eq!(rows[5][12], "roomcast@box");
    assert_eq!((rows[5][13], rows[5][14], rows[5][15], rows[5][16]), ("64", "7", "123", "65536"));
    assert_eq!(rows[6][9], "201,202,206,203");
    // PLI (RFC 4585 PSFB FMT 1) on the video source.
    assert_eq!((rows[6][21], rows[6][22]), ("1", "0x11112222"), "{:?}", rows[6]);
    assert_eq!(rows[6][12], "listener,left"); // CNAME, then the BYE reason
}
