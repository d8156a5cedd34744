//! Property tests: the parsers of this crate that see untrusted input (raw packets from the
//! native-multicast socket, command-line/config text) never panic, and the spec forms round-trip.

use proptest::prelude::*;
use roomcast_net::native::{parse_ipv4_udp, parse_udp};
use roomcast_net::spec::{parse_relay_addr, parse_socket_addr};
use roomcast_net::{ChannelSpec, InjectSpec};

proptest! {
    #[test]
    fn packet_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_ipv4_udp(&bytes);
        let _ = parse_udp(&bytes);
    }

    #[test]
    fn udp_payload_is_bounded_by_both_lengths(bytes in proptest::collection::vec(any::<u8>(), 8..100)) {
        if let Some((_, _, payload)) = parse_udp(&bytes) {
            let len = usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
            prop_assert_eq!(payload.len(), len - 8);
            prop_assert!(len <= bytes.len());
        }
    }

    #[test]
    fn text_parsers_never_panic(s in "[0-9a-f:.@\\[\\]=]{0,48}") {
        let _ = s.parse::<ChannelSpec>();
        let _ = s.parse::<InjectSpec>();
        let _ = parse_relay_addr(&s);
        let _ = parse_socket_addr(&s);
    }

    #[test]
    fn channel_specs_round_trip(src in any::<[u8; 4]>(), g in any::<[u8; 3]>(), port in any::<u16>(),
                                s6 in any::<[u16; 8]>(), g6 in any::<[u16; 6]>(), scope in 0u16..16) {
        prop_assume!(src[0] != 0 && src[0] < 224);
        let v4 = format!("{}.{}.{}.{}@232.{}.{}.{}:{port}", src[0], src[1], src[2], src[3], g[0], g[1], g[2]);
        let c: ChannelSpec = v4.parse().unwrap();
        prop_assert_eq!(c.to_string().parse::<ChannelSpec>().unwrap(), c);
        prop_assert_eq!(c.port, port);
        let source = std::net::Ipv6Addr::new(0x2001, 0xdb8, s6[2], s6[3], s6[4], s6[5], s6[6], s6[7]);
        let group = std::net::Ipv6Addr::new(0xff30 | scope, 0, g6[0], g6[1], g6[2], g6[3], g6[4], g6[5]);
        let text = format!("{source}@{group}:{port}");
        let c6: ChannelSpec = text.parse().unwrap();
        prop_assert_eq!(c6.source, std::net::IpAddr::V6(source));
        prop_assert_eq!(c6.group, std::net::IpAddr::V6(group));
        prop_assert_eq!(c6.port, port);
    }
}
