//! `[amt] relay = "auto"` on the box: the relay comes from DRIAD (RFC 8777). A `roomcast server`
//! whose embedded relay listens only on 127.0.0.N:2268 (the AMT port: an AMTRELAY record has no
//! port), dnsmasq on loopback serving the AMTRELAY record that names 127.0.0.N for the meeting's
//! IPv6 source (the server's default fd00:726f:6f6d::1; the IPv4 one is 127.0.0.1, whose reverse
//! zone resolvers answer themselves, RFC 6761), and two boxes: A with `family = "ipv6"`,
//! `relay = "auto"` and `dns` pointing at that dnsmasq, B (IPv4) with the relay configured. A must find
//! the relay by DRIAD (logged) and receive B's audio and video through it, and B A's. Without the
//! record A would fall back to the anycast relay and receive nothing. Needs dnsmasq.

use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use roomcast_net::driad::{reverse_name, AMTRELAY};
use roomcast_test_support::dnsmasq::Dnsmasq;
use serde_json::Value;

mod meeting_util;
use meeting_util::*;

const MEETING: &str = "driad";
const TOKEN: &str = "driad-token";

/// A loopback address whose AMT port is free now (the relay binds it right after).
fn free_relay_address() -> u8 {
    (90..120u8)
        .find(|n| UdpSocket::bind(("127.0.0.".to_string() + &n.to_string(), roomcast_net::AMT_PORT)).is_ok())
        .expect("a loopback address with a free AMT port")
}

fn receives_the_other(state: &Option<Value>) -> bool {
    state.as_ref().is_some_and(|s| {
        let others = s["others"].as_array().cloned().unwrap_or_default();
        s["phase"]["name"] == "in-meeting"
            && others.len() == 1
            && others[0]["video_frames"].as_u64().unwrap_or(0) >= 5
            && others[0]["audio_frames"].as_u64().unwrap_or(0) >= 50
    })
}

#[test]
fn box_with_relay_auto_finds_the_relay_by_driad_and_receives_the_other_room() {
    let Some(dnsmasq) = roomcast_test_support::require_tool("dnsmasq") else { return };
    let dir = std::env::temp_dir().join(format!("roomcast-box-driad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let n = free_relay_address();
    let relay = format!("127.0.0.{n}:{}", roomcast_net::AMT_PORT);
    let record = (reverse_name("fd00:726f:6f6d::1".parse().unwrap()), AMTRELAY, vec![1, 0x01, 127, 0, 0, n]);
    let dns = Dnsmasq::start(&dnsmasq, &[record], &[]);

    let (http, media) = (free_tcp_port(), free_udp_port());
    let server_args = [
        "server",
        "--listen",
        &format!("127.0.0.1:{http}"),
        "--rtp-listen",
        &format!("127.0.0.1:{media}"),
        "--relay-listen",
        &relay,
        "--meeting",
        &format!("{MEETING}:{TOKEN}"),
        "--query-interval",
        "5",
    ]
    .map(String::from);
    let _server = Proc::spawn("server", &server_args, &dir.join("server.log"));
    wait_for("the control API", Duration::from_secs(10), || (TcpStream::connect(("127.0.0.1", http)).is_ok(), ()));

    let server = format!("127.0.0.1:{http}");
    let amt_a = format!("\n[amt]\nfamily = \"ipv6\"\nrelay = \"auto\"\ndns = \"{}\"\n", dns.addr);
    let amt_b = format!("\n[amt]\nrelay = \"{relay}\"\n");
    let cfg_a = box_config(&dir, "A", &server, MEETING, TOKEN, &amt_a);
    let cfg_b = box_config(&dir, "B", &server, MEETING, TOKEN, &amt_b);
    let _a = spawn_box(&dir, "A", &cfg_a);
    let _b = spawn_box(&dir, "B", &cfg_b);

    let took = wait_for("both boxes in the meeting, each receiving the other", Duration::from_secs(60), || {
        let states = [read_state(&dir, "A"), read_state(&dir, "B")];
        (states.iter().all(receives_the_other), states)
    });
    eprintln!("A (relay by DRIAD) and B in the meeting and receiving after {took:?}");
    let log_a = std::fs::read_to_string(dir.join("box-A.log")).unwrap_or_default();
    let found = log_a.lines().find(|l| l.contains("DRIAD: relay found")).unwrap_or_else(|| panic!("box A:\n{log_a}"));
    assert!(found.contains(&relay), "A took {found:?}, not {relay}");
    let log_b = std::fs::read_to_string(dir.join("box-B.log")).unwrap_or_default();
    assert!(!log_b.contains("DRIAD"), "B has a configured relay and must not ask DNS:\n{log_b}");
    let _ = std::fs::remove_dir_all(&dir);
}
