//! Third-party dissection: every AMT message type this crate emits is written as UDP/2268
//! datagrams into a pcap and decoded by tshark, which must see the expected AMT type and
//! inner IGMP/ICMPv6 type, good IPv4/UDP/IGMP/ICMPv6 checksums and nothing malformed.
//!
//! Two captures: the golden one (fixed nonces and MACs, committed under `tests/golden/`, and
//! the encoder must still produce it byte for byte; `UPDATE_GOLDEN=1` rewrites it), and one
//! recorded from a live Gateway ↔ Relay exchange (random nonces, real MACs).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};
use roomcast_amt::group_record::{GroupRecord, RecordType};
use roomcast_amt::igmp::{IgmpV3Query, IgmpV3Report};
use roomcast_amt::membership::{EncapsulatedQuery, EncapsulatedReport};
use roomcast_amt::message::{MembershipQuery, MembershipUpdate, Teardown};
use roomcast_amt::mld::{MldV2Query, MldV2Report};
use roomcast_amt::{Gateway, GatewayConfig, Message, MulticastData, Relay, RelayConfig, ResponseMac, SourceGroup};

const RELAY: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 2268);
const GATEWAY: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9)), 40000);

/// RFC 1071 checksum, written independently of the crate's own implementation.
fn csum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Ethernet + IPv4 + UDP frame around an AMT datagram, with correct checksums.
fn frame(from: SocketAddr, to: SocketAddr, amt: &[u8]) -> Vec<u8> {
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (from.ip(), to.ip()) else { panic!("IPv4 outer") };
    let udp_len = (8 + amt.len()) as u16;
    let mut udp = Vec::new();
    udp.extend_from_slice(&from.port().to_be_bytes());
    udp.extend_from_slice(&to.port().to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(amt);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&udp_len.to_be_bytes());
    pseudo.extend_from_slice(&udp);
    let c = match csum(&pseudo) {
        0 => 0xffff,
        c => c,
    };
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&(20 + udp_len).to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = csum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut eth = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00];
    eth.extend_from_slice(&ip);
    eth.extend_from_slice(&udp);
    eth
}

fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        endianness: Endianness::Little,
        ts_resolution: TsResolution::MicroSecond,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(Vec::new(), header).unwrap();
    for (i, f) in frames.iter().enumerate() {
        let ts = Duration::from_secs(1_700_000_000) + Duration::from_millis(10 * i as u64);
        w.write_packet(&PcapPacket::new(ts, f.len() as u32, f)).unwrap();
    }
    w.into_writer()
}

/// Expected tshark view of one packet: AMT type, IGMP type, ICMPv6 type.
type Expect = (u8, Option<u8>, Option<u8>);

fn golden_messages() -> Vec<(SocketAddr, SocketAddr, Message, Expect)> {
    let mac = ResponseMac([0x11, 0x22, 0x33, 0x44, 0x55, 0x66]);
    let nonce = 0x5eed_1234;
    let v4 = |s: &str| s.parse::<Ipv4Addr>().unwrap();
    let v6 = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap();
    vec![
        (GATEWAY, RELAY, Message::RelayDiscovery { nonce: 0xd15c_0001 }, (1, None, None)),
        (RELAY, GATEWAY, Message::RelayAdvertisement { nonce: 0xd15c_0001, relay: RELAY.ip() }, (2, None, None)),
        (
            RELAY,
            GATEWAY,
            Message::RelayAdvertisement { nonce: 0xd15c_0001, relay: "2001:db8::1".parse().unwrap() },
            (2, None, None),
        ),
        (GATEWAY, RELAY, Message::Request { nonce, mld: false }, (3, None, None)),
        (GATEWAY, RELAY, Message::Request { nonce, mld: true }, (3, None, None)),
        (
            RELAY,
            GATEWAY,
            Message::MembershipQuery(MembershipQuery {
                limit: false,
                mac,
                nonce,
                query: EncapsulatedQuery::Igmp {
                    source: v4("192.0.2.1"),
                    query: IgmpV3Query::general(Duration::from_secs(125), Duration::from_secs(10), 2),
                },
                gateway: Some(GATEWAY),
            }),
            (4, Some(0x11), None),
        ),
        (
            RELAY,
            GATEWAY,
            Message::MembershipQuery(MembershipQuery {
                limit: false,
                mac,
                nonce,
                query: EncapsulatedQuery::Mld {
                    source: v6("fe80::1"),
                    query: MldV2Query::general(Duration::from_secs(125), Duration::from_secs(10), 2),
                },
                gateway: Some(GATEWAY),
            }),
            (4, None, Some(130)),
        ),
        (
            GATEWAY,
            RELAY,
            Message::MembershipUpdate(MembershipUpdate {
                mac,
                nonce,
                report: EncapsulatedReport::Igmp {
                    source: v4("0.0.0.0"),
                    report: IgmpV3Report {
                        records: vec![
                            GroupRecord {
                                record_type: RecordType::ModeIsInclude,
                                group: v4("232.1.1.1"),
                                sources: vec![v4("10.0.0.1"), v4("10.0.0.2")],
                            },
                            GroupRecord {
                                record_type: RecordType::BlockOldSources,
                                group: v4("232.1.1.2"),
                                sources: vec![v4("10.0.0.1")],
                            },
                        ],
                    },
                },
            }),
            (5, Some(0x22), None),
        ),
        (
            GATEWAY,
            RELAY,
            Message::MembershipUpdate(MembershipUpdate {
                mac,
                nonce,
                report: EncapsulatedReport::Mld {
                    source: v6("fe80::1"),
                    report: MldV2Report {
                        records: vec![GroupRecord {
                            record_type: RecordType::AllowNewSources,
                            group: v6("ff3e::8000:1"),
                            sources: vec![v6("2001:db8::1")],
                        }],
                    },
                },
            }),
            (5, None, Some(143)),
        ),
        (
            RELAY,
            GATEWAY,
            Message::MulticastData(MulticastData {
                source: "10.0.0.1:4000".parse().unwrap(),
                group: "232.1.1.1:5004".parse().unwrap(),
                payload: b"roomcast ipv4 multicast payload".to_vec(),
            }),
            (6, None, None),
        ),
        (
            RELAY,
            GATEWAY,
            Message::MulticastData(MulticastData {
                source: "[2001:db8::1]:4000".parse().unwrap(),
                group: "[ff3e::8000:1]:5004".parse().unwrap(),
                payload: b"roomcast ipv6 multicast payload".to_vec(),
            }),
            (6, None, None),
        ),
        (GATEWAY, RELAY, Message::Teardown(Teardown { mac, nonce, gateway: GATEWAY }), (7, None, None)),
    ]
}

/// Messages recorded from a real Gateway ↔ Relay exchange (random nonces and MACs).
fn live_messages() -> Vec<(SocketAddr, SocketAddr, Message)> {
    let t0 = Instant::now();
    // G flag on (off by default), so the live exchange includes the Teardown.
    let mut relay = Relay::new(
        RelayConfig { advertised: RELAY.ip(), query_gateway_address: true, ..RelayConfig::default() },
        rand::SeedableRng::seed_from_u64(1),
        t0,
    );
    let mut gw = Gateway::new(
        GatewayConfig { relay: Some(RELAY), ..GatewayConfig::default() },
        rand::SeedableRng::seed_from_u64(2),
        t0,
    );
    let v4: SourceGroup = "10.0.0.1@232.1.1.1".parse().unwrap();
    let v6: SourceGroup = "2001:db8::1@ff3e::8000:1".parse().unwrap();
    gw.handle_join(t0, v6).unwrap();
    let mut log = Vec::new();
    let exchange = |gw: &mut Gateway, relay: &mut Relay, log: &mut Vec<(SocketAddr, SocketAddr, Vec<u8>)>| {
        for _ in 0..5 {
            while let Some(t) = gw.poll_transmit() {
                log.push((GATEWAY, t.destination, t.payload.clone()));
                let _ = relay.handle_datagram(t0, GATEWAY, &t.payload);
            }
            while let Some(t) = relay.poll_transmit() {
                log.push((RELAY, t.destination, t.payload.clone()));
                let _ = gw.handle_datagram(t0, RELAY, &t.payload);
            }
        }
    };
    exchange(&mut gw, &mut relay, &mut log);
    gw.handle_join(t0, v4).unwrap();
    exchange(&mut gw, &mut relay, &mut log);
    // A refresh of a gateway with both families: a P=0 and a P=1 Request, each query answered
    // in its own protocol.
    gw.handle_timeout(t0 + Duration::from_secs(2));
    exchange(&mut gw, &mut relay, &mut log);
    let requests: Vec<bool> = log
        .iter()
        .filter_map(|(_, _, b)| match Message::decode(b) {
            Ok(Message::Request { mld, .. }) => Some(mld),
            _ => None,
        })
        .collect();
    assert!(requests.contains(&false) && requests.contains(&true), "P=0 and P=1 Requests: {requests:?}");
    for sg in [v4, v6] {
        let mut buf = Vec::new();
        Relay::encapsulate(&sg, 4000, 5004, b"live payload", &mut buf).unwrap();
        for to in relay.subscribers(&sg) {
            log.push((RELAY, to, buf.clone()));
        }
    }
    gw.handle_close(t0);
    exchange(&mut gw, &mut relay, &mut log);
    assert_eq!(relay.tunnel_count(), 0, "teardown accepted");
    log.into_iter().map(|(f, t, b)| (f, t, Message::decode(&b).unwrap())).collect()
}

fn expect_of(m: &Message) -> Expect {
    let ty = m.message_type() as u8;
    match m {
        Message::MembershipQuery(q) => match q.query {
            EncapsulatedQuery::Igmp { .. } => (ty, Some(0x11), None),
            EncapsulatedQuery::Mld { .. } => (ty, None, Some(130)),
        },
        Message::MembershipUpdate(u) => match u.report {
            EncapsulatedReport::Igmp { .. } => (ty, Some(0x22), None),
            EncapsulatedReport::Mld { .. } => (ty, None, Some(143)),
        },
        _ => (ty, None, None),
    }
}

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/amt_messages.pcap")
}

#[test]
fn golden_pcap_bytes_are_unchanged() {
    let frames: Vec<Vec<u8>> =
        golden_messages().iter().map(|(f, t, m, _)| frame(*f, *t, &m.to_bytes().unwrap())).collect();
    let bytes = pcap(&frames);
    let path = golden_path();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &bytes).unwrap();
    }
    let golden = std::fs::read(&path).expect("golden pcap committed (UPDATE_GOLDEN=1 to create)");
    assert_eq!(golden, bytes, "encoder output differs from {}", path.display());
}

/// Parses a tshark number field (decimal or 0x-hex); empty means absent.
fn number(s: &str) -> Option<u8> {
    if s.is_empty() {
        return None;
    }
    let v = match s.strip_prefix("0x") {
        Some(hex) => u8::from_str_radix(hex, 16),
        None => s.parse(),
    };
    Some(v.unwrap_or_else(|_| panic!("not a number: {s:?}")))
}

/// Runs tshark over `frames`, checking each packet against `expect`.
fn check_with_tshark(name: &str, frames: &[Vec<u8>], expect: &[Expect]) {
    let Some(tshark) = roomcast_test_support::require_tool("tshark") else { return };
    let dir = std::env::temp_dir().join(format!("roomcast-amt-tshark-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("amt.pcap");
    std::fs::write(&file, pcap(frames)).unwrap();
    let out = Command::new(tshark)
        .arg("-r")
        .arg(&file)
        .args(["-d", "udp.port==2268,amt"])
        .args(["-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"])
        .args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"])
        .args(["-e", "amt.type", "-e", "igmp.type", "-e", "icmpv6.type"])
        .args(["-e", "ip.checksum.status", "-e", "udp.checksum.status"])
        .args(["-e", "igmp.checksum.status", "-e", "icmpv6.checksum.status"])
        .args(["-e", "_ws.malformed", "-e", "_ws.expert.severity", "-e", "_ws.expert.message"])
        .args(["-e", "ipv6.hopopts.nxt", "-e", "ip.ttl", "-e", "ipv6.hlim"])
        .output()
        .expect("tshark runs");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "tshark failed: {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), expect.len(), "one line per packet:\n{stdout}");
    for (i, (line, (amt, igmp, icmpv6))) in lines.iter().zip(expect).enumerate() {
        let f: Vec<&str> = line.split('|').collect();
        let ctx = format!("{name} packet {}: {line}", i + 1);
        assert_eq!(f[0], amt.to_string(), "AMT type, {ctx}");
        assert_eq!(number(f[1]), *igmp, "IGMP type, {ctx}");
        assert_eq!(number(f[2]), *icmpv6, "ICMPv6 type, {ctx}");
        // Checksum status 1 = Good (0 = Bad, 2 = Unverified): every one tshark checked is good.
        for (col, what) in [(3, "IPv4"), (4, "UDP"), (5, "IGMP"), (6, "ICMPv6")] {
            for s in f[col].split(',').filter(|s| !s.is_empty()) {
                assert_eq!(s, "1", "{what} checksum status, {ctx}");
            }
        }
        // Outer IPv4 and UDP are always checked; the inner ones of data/IGMP packets too.
        assert!(!f[3].is_empty() && !f[4].is_empty(), "checksums verified, {ctx}");
        if *amt == 6 {
            assert_eq!(f[4].split(',').count(), 2, "inner UDP checksum verified too, {ctx}");
        }
        if igmp.is_some() {
            assert_eq!(f[3].split(',').count(), 2, "inner IPv4 header checksum verified, {ctx}");
            assert_eq!(f[11].split(',').next_back(), Some("1"), "IGMP packet TTL 1, {ctx}");
            assert_eq!(f[5], "1", "IGMP checksum verified good, {ctx}");
        }
        if icmpv6.is_some() {
            assert_eq!(f[10], "58", "MLD behind a hop-by-hop header, {ctx}");
            assert_eq!(f[12], "1", "MLD hop limit 1, {ctx}");
            assert_eq!(f[6], "1", "ICMPv6 checksum (pseudo-header) verified good, {ctx}");
        }
        assert!(f[7].is_empty(), "malformed, {ctx}");
        // Expert severities: 0x600000 warning, 0x800000 error. Only chat/note are allowed.
        for sev in f[8].split(',').filter(|s| !s.is_empty()) {
            let v = u32::from_str_radix(sev.trim_start_matches("0x"), 16).or_else(|_| sev.parse()).unwrap_or(u32::MAX);
            assert!(v < 0x0060_0000, "expert info of severity {sev} ({}), {ctx}", f[9]);
        }
    }
}

#[test]
fn tshark_decodes_every_golden_message() {
    let msgs = golden_messages();
    let frames: Vec<Vec<u8>> = msgs.iter().map(|(f, t, m, _)| frame(*f, *t, &m.to_bytes().unwrap())).collect();
    let expect: Vec<Expect> = msgs.iter().map(|x| x.3).collect();
    let mut types: Vec<u8> = expect.iter().map(|e| e.0).collect();
    types.dedup();
    assert_eq!(types, vec![1, 2, 3, 4, 5, 6, 7], "all seven message types covered");
    check_with_tshark("golden", &frames, &expect);
}

#[test]
fn tshark_decodes_a_live_gateway_relay_exchange() {
    let msgs = live_messages();
    let mut types: Vec<u8> = msgs.iter().map(|(_, _, m)| m.message_type() as u8).collect();
    types.sort();
    types.dedup();
    assert_eq!(types, vec![1, 2, 3, 4, 5, 6, 7], "the state machines emitted every type");
    let frames: Vec<Vec<u8>> = msgs.iter().map(|(f, t, m)| frame(*f, *t, &m.to_bytes().unwrap())).collect();
    let expect: Vec<Expect> = msgs.iter().map(|(_, _, m)| expect_of(m)).collect();
    check_with_tshark("live", &frames, &expect);
}
