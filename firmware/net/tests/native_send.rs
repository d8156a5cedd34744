//! `--forward native` building block: [`NativeSender`] re-sends payloads as IPv4 multicast on
//! the loopback interface, and a socket that made a source-specific join there
//! ([`join_source_group`]) receives them. (IPv6 multicast has no route on `lo` without
//! changing the host's routing table, so only IPv4 is exercised here.)

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use roomcast_net::native::NativeSender;
use roomcast_net::socket::{interface_index, join_source_group, leave_source_group};

#[test]
fn native_sender_reaches_an_ssm_receiver_on_lo() {
    let lo = interface_index("lo").unwrap();
    let group: IpAddr = "232.9.9.8".parse().unwrap();
    let rx = UdpSocket::bind("0.0.0.0:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let port = rx.local_addr().unwrap().port();
    join_source_group(&rx, lo, "127.0.0.1".parse().unwrap(), group).unwrap();
    let tx = NativeSender::new(lo, 1).unwrap();
    let mut got = None;
    let mut buf = [0u8; 64];
    for _ in 0..20 {
        tx.send(SocketAddr::new(group, port), b"native payload").unwrap();
        if let Ok((n, from)) = rx.recv_from(&mut buf) {
            got = Some((buf[..n].to_vec(), from));
            break;
        }
    }
    let (data, from) = got.expect("the SSM receiver on lo must get the natively sent datagram");
    assert_eq!(data, b"native payload");
    assert_eq!(from.ip(), "127.0.0.1".parse::<IpAddr>().unwrap());
    leave_source_group(&rx, lo, "127.0.0.1".parse().unwrap(), group).unwrap();
    // A receiver joined to a DIFFERENT source gets nothing (the join really is source-specific).
    let rx2 = UdpSocket::bind("0.0.0.0:0").unwrap();
    rx2.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let port2 = rx2.local_addr().unwrap().port();
    join_source_group(&rx2, lo, "192.0.2.99".parse().unwrap(), group).unwrap();
    for _ in 0..3 {
        tx.send(SocketAddr::new(group, port2), b"x").unwrap();
    }
    assert!(rx2.recv_from(&mut buf).is_err(), "a receiver joined to another source must not get the data");
}
