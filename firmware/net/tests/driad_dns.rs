//! DRIAD against a real DNS server: dnsmasq on 127.0.0.1 (a port of its own, no upstream, only
//! its `--dns-rr` records) serving AMTRELAY records (type 260) of every relay type, a relay name
//! with its A record, a source without records and a malformed record. Needs dnsmasq (Debian
//! dnsmasq-base): skipped outside CI when missing.

use std::net::IpAddr;

use roomcast_net::driad::{self, reverse_name, AMTRELAY};
use roomcast_test_support::dnsmasq::Dnsmasq;

#[test]
fn driad_finds_relays_through_amtrelay_records() {
    let Some(bin) = roomcast_test_support::require_tool("dnsmasq") else { return };
    let s1: IpAddr = "192.0.2.10".parse().unwrap();
    let s2: IpAddr = "2001:db8::10".parse().unwrap();
    let none: IpAddr = "192.0.2.11".parse().unwrap();
    let bad: IpAddr = "192.0.2.12".parse().unwrap();
    let v6 = [&[0u8, 0x82][..], &"2001:db8::7".parse::<std::net::Ipv6Addr>().unwrap().octets()].concat();
    let records = vec![
        // S1: an IPv4 relay at precedence 10 and a named relay at 5 (preferred).
        (reverse_name(s1), AMTRELAY, vec![10, 0x01, 192, 0, 2, 7]),
        (reverse_name(s1), AMTRELAY, [&[5u8, 0x03][..], b"\x05relay\x04site\x04test\x00"].concat()),
        // S2: an IPv6 relay, D bit set.
        (reverse_name(s2), AMTRELAY, v6),
        // Malformed (IPv4 relay of 3 bytes) and "no relay": nothing usable.
        (reverse_name(bad), AMTRELAY, vec![0, 0x01, 192, 0, 2]),
        (reverse_name(bad), AMTRELAY, vec![0, 0x00]),
    ];
    let dns = Dnsmasq::start(&bin, &records, &[("relay.site.test", "127.0.0.9")]);
    let server = dns.addr;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let resolver = driad::resolver(Some(server)).unwrap();
        let mut n = 0u64;
        let mut random = move || {
            n += 1;
            n
        };
        let found = driad::discover(&resolver, s1, 2268, &mut random).await.unwrap();
        assert_eq!(found, vec!["127.0.0.9:2268".parse().unwrap(), "192.0.2.7:2268".parse().unwrap()]);
        let found = driad::discover(&resolver, s2, 2268, &mut random).await.unwrap();
        assert_eq!(found, vec!["[2001:db8::7]:2268".parse().unwrap()]);
        assert_eq!(driad::discover(&resolver, none, 2268, &mut random).await.unwrap(), vec![]);
        assert_eq!(driad::discover(&resolver, bad, 2268, &mut random).await.unwrap(), vec![]);
    });
}
