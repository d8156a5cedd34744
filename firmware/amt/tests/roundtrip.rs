//! Property tests: decode(encode(x)) == x for every AMT message type and for the nested
//! IGMPv3/MLDv2/IP/UDP packets, and decoding arbitrary or corrupted bytes never panics.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;
use roomcast_amt::group_record::{GroupRecord, RecordType};
use roomcast_amt::igmp::{IgmpMessage, IgmpV3Query, IgmpV3Report};
use roomcast_amt::membership::{EncapsulatedQuery, EncapsulatedReport};
use roomcast_amt::message::{MembershipQuery, MembershipUpdate, Teardown};
use roomcast_amt::mld::{MldMessage, MldV2Query, MldV2Report};
use roomcast_amt::{decapsulate, encapsulate, Message, MulticastData, ResponseMac, SourceGroup};

fn v4() -> impl Strategy<Value = Ipv4Addr> {
    any::<[u8; 4]>().prop_map(Ipv4Addr::from)
}

fn v6() -> impl Strategy<Value = Ipv6Addr> {
    any::<[u8; 16]>().prop_map(Ipv6Addr::from)
}

/// Gateway addresses as they can appear in the 16-byte field without ambiguity: any IPv4,
/// or an IPv6 address that is not IPv4-compatible/mapped.
fn gateway_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        v4().prop_map(IpAddr::V4),
        Just(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        v6().prop_filter("not IPv4-compatible or mapped", |a| {
            let o = a.octets();
            !(o[..10].iter().all(|&b| b == 0) && (o[10..12] == [0, 0] || o[10..12] == [0xff, 0xff]))
        })
        .prop_map(IpAddr::V6),
    ]
}

fn record_type() -> impl Strategy<Value = RecordType> {
    any::<u8>().prop_map(RecordType::from_u8)
}

fn igmp_query() -> impl Strategy<Value = IgmpV3Query> {
    (any::<u8>(), v4(), any::<bool>(), 0u8..8, any::<u8>(), prop::collection::vec(v4(), 0..5)).prop_map(
        |(max_resp_code, group, suppress, qrv, qqic, sources)| IgmpV3Query {
            max_resp_code,
            group,
            suppress,
            qrv,
            qqic,
            sources,
        },
    )
}

fn mld_query() -> impl Strategy<Value = MldV2Query> {
    (any::<u16>(), v6(), any::<bool>(), 0u8..8, any::<u8>(), prop::collection::vec(v6(), 0..4)).prop_map(
        |(max_resp_code, group, suppress, qrv, qqic, sources)| MldV2Query {
            max_resp_code,
            group,
            suppress,
            qrv,
            qqic,
            sources,
        },
    )
}

fn igmp_report() -> impl Strategy<Value = IgmpV3Report> {
    prop::collection::vec(
        (record_type(), v4(), prop::collection::vec(v4(), 0..4))
            .prop_map(|(record_type, group, sources)| GroupRecord { record_type, group, sources }),
        0..4,
    )
    .prop_map(|records| IgmpV3Report { records })
}

fn mld_report() -> impl Strategy<Value = MldV2Report> {
    prop::collection::vec(
        (record_type(), v6(), prop::collection::vec(v6(), 0..3))
            .prop_map(|(record_type, group, sources)| GroupRecord { record_type, group, sources }),
        0..4,
    )
    .prop_map(|records| MldV2Report { records })
}

fn encapsulated_query() -> impl Strategy<Value = EncapsulatedQuery> {
    prop_oneof![
        (v4(), igmp_query()).prop_map(|(source, query)| EncapsulatedQuery::Igmp { source, query }),
        (v6(), mld_query()).prop_map(|(source, query)| EncapsulatedQuery::Mld { source, query }),
    ]
}

fn encapsulated_report() -> impl Strategy<Value = EncapsulatedReport> {
    prop_oneof![
        (v4(), igmp_report()).prop_map(|(source, report)| EncapsulatedReport::Igmp { source, report }),
        (v6(), mld_report()).prop_map(|(source, report)| EncapsulatedReport::Mld { source, report }),
    ]
}

fn mac() -> impl Strategy<Value = ResponseMac> {
    any::<[u8; 6]>().prop_map(ResponseMac)
}

fn data() -> impl Strategy<Value = MulticastData> {
    let payload = prop::collection::vec(any::<u8>(), 0..300);
    prop_oneof![
        (v4(), v4(), any::<u16>(), any::<u16>(), payload.clone()).prop_map(|(s, g, sp, dp, payload)| MulticastData {
            source: SocketAddr::new(s.into(), sp),
            group: SocketAddr::new(g.into(), dp),
            payload
        }),
        (v6(), v6(), any::<u16>(), any::<u16>(), payload).prop_map(|(s, g, sp, dp, payload)| MulticastData {
            source: SocketAddr::new(s.into(), sp),
            group: SocketAddr::new(g.into(), dp),
            payload
        }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        any::<u32>().prop_map(|nonce| Message::RelayDiscovery { nonce }),
        (any::<u32>(), prop_oneof![v4().prop_map(IpAddr::V4), v6().prop_map(IpAddr::V6)])
            .prop_map(|(nonce, relay)| Message::RelayAdvertisement { nonce, relay }),
        (any::<u32>(), any::<bool>()).prop_map(|(nonce, mld)| Message::Request { nonce, mld }),
        (any::<bool>(), mac(), any::<u32>(), encapsulated_query(), prop::option::of((gateway_ip(), any::<u16>())))
            .prop_map(|(limit, mac, nonce, query, gw)| Message::MembershipQuery(MembershipQuery {
                limit,
                mac,
                nonce,
                query,
                gateway: gw.map(|(ip, port)| SocketAddr::new(ip, port)),
            })),
        (mac(), any::<u32>(), encapsulated_report())
            .prop_map(|(mac, nonce, report)| Message::MembershipUpdate(MembershipUpdate { mac, nonce, report })),
        data().prop_map(Message::MulticastData),
        (mac(), any::<u32>(), gateway_ip(), any::<u16>()).prop_map(|(mac, nonce, ip, port)| Message::Teardown(
            Teardown { mac, nonce, gateway: SocketAddr::new(ip, port) }
        )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_message_roundtrips(m in message()) {
        let bytes = m.to_bytes().unwrap();
        prop_assert_eq!(Message::decode(&bytes).unwrap(), m.clone());
        prop_assert_eq!(bytes[0] >> 4, 0, "version 0");
        prop_assert_eq!(bytes[0] & 0x0f, m.message_type() as u8);
    }

    #[test]
    fn igmp_roundtrips(q in igmp_query(), r in igmp_report()) {
        let mut out = Vec::new();
        q.encode(&mut out).unwrap();
        prop_assert_eq!(IgmpMessage::decode(&out).unwrap(), IgmpMessage::Query(q));
        out.clear();
        r.encode(&mut out).unwrap();
        prop_assert_eq!(IgmpMessage::decode(&out).unwrap(), IgmpMessage::Report(r));
    }

    #[test]
    fn mld_roundtrips(q in mld_query(), r in mld_report(), src in v6(), dst in v6()) {
        for m in [MldMessage::Query(q), MldMessage::Report(r)] {
            let mut out = Vec::new();
            m.encode(src, dst, &mut out).unwrap();
            prop_assert_eq!(MldMessage::decode(&out, src, dst).unwrap(), m);
        }
    }

    #[test]
    fn data_fast_path_agrees_with_the_message_decoder(d in data()) {
        let sg = SourceGroup { source: d.source.ip(), group: d.group.ip() };
        let mut out = Vec::new();
        encapsulate(&sg, d.source.port(), d.group.port(), &d.payload, &mut out).unwrap();
        prop_assert_eq!(&out, &Message::MulticastData(d.clone()).to_bytes().unwrap());
        prop_assert_eq!(decapsulate(&out).unwrap().to_owned(), d);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Message::decode(&bytes);
        let _ = decapsulate(&bytes);
        let _ = IgmpMessage::decode(&bytes);
        let _ = MldMessage::decode(&bytes, Ipv6Addr::UNSPECIFIED, Ipv6Addr::LOCALHOST);
    }

    #[test]
    fn corrupted_messages_never_panic_and_reencode_stably(m in message(), at in any::<prop::sample::Index>(), xor in 1u8..=255, cut in any::<prop::sample::Index>()) {
        let bytes = m.to_bytes().unwrap();
        let mut bad = bytes.clone();
        let i = at.index(bad.len());
        bad[i] ^= xor;
        // A corrupted message is rejected, or whatever it decodes to re-encodes to itself
        // (reserved bits are ignored, so some corruptions are harmless).
        if let Ok(other) = Message::decode(&bad) {
            let again = other.to_bytes().unwrap();
            prop_assert_eq!(Message::decode(&again).unwrap(), other);
        }
        let truncated = &bytes[..cut.index(bytes.len())];
        let _ = Message::decode(truncated);
    }
}
