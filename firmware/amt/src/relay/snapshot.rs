//! [`RelaySnapshot`]: what a relay keeps across a restart (its MAC secrets and membership
//! table), so that gateways which refresh only every query interval never notice it.
//!
//! Times are relative ("expires in"), so a snapshot means the same after a reboot; the driver
//! says how long ago it was taken when restoring. With the `serde` feature the snapshot
//! (de)serialises, for drivers that write it to a file. It holds secrets: its `Debug` output
//! does not show them, and drivers must keep the file private.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::{canonical, Relay, RelayConfig, Tunnel};
use crate::mac::Secrets;
use crate::SourceGroup;

/// The state of a [`Relay`] worth keeping across a restart.
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RelaySnapshot {
    /// The current MAC secret.
    pub secret: [u8; 32],
    /// The previous MAC secret (still accepted until the next rotation).
    pub previous_secret: Option<[u8; 32]>,
    /// Time left until the next rotation.
    pub rotate_in: Duration,
    /// The tunnels.
    pub tunnels: Vec<TunnelSnapshot>,
}

impl std::fmt::Debug for RelaySnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelaySnapshot")
            .field("secrets", &"..")
            .field("rotate_in", &self.rotate_in)
            .field("tunnels", &self.tunnels)
            .finish()
    }
}

/// One tunnel of a [`RelaySnapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TunnelSnapshot {
    /// The gateway's address as the driver reported it (data goes there).
    pub gateway: SocketAddr,
    /// Current request nonce.
    pub nonce: u32,
    /// The nonce it replaced, if any (Updates still carrying it are stale).
    pub previous_nonce: Option<u32>,
    /// Joined (S,G)s with the time left before each expires unless refreshed.
    pub groups: Vec<MembershipSnapshot>,
}

/// One joined (S,G) of a [`TunnelSnapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MembershipSnapshot {
    /// Source S.
    pub source: IpAddr,
    /// Group G.
    pub group: IpAddr,
    /// Time left before the membership expires without refresh.
    pub expires_in: Duration,
}

impl Relay {
    /// The secrets and the membership table as of `now`.
    pub fn snapshot(&self, now: Instant) -> RelaySnapshot {
        let (secret, previous_secret, rotate_in) = self.secrets.export(now);
        let mut tunnels: Vec<TunnelSnapshot> = self
            .tunnels
            .values()
            .map(|t| {
                let mut groups: Vec<MembershipSnapshot> = t
                    .groups
                    .iter()
                    .map(|(sg, expiry)| MembershipSnapshot {
                        source: sg.source,
                        group: sg.group,
                        expires_in: expiry.saturating_duration_since(now),
                    })
                    .collect();
                groups.sort_by_key(|m| (m.group, m.source));
                TunnelSnapshot { gateway: t.peer, nonce: t.nonce, previous_nonce: t.previous_nonce, groups }
            })
            .collect();
        tunnels.sort_by_key(|t| t.gateway);
        RelaySnapshot { secret, previous_secret, rotate_in, tunnels }
    }

    /// A relay that continues from `snapshot`, taken `elapsed` ago: same secrets (so MACs
    /// the gateways hold stay valid), same tunnels and memberships with their remaining
    /// lifetimes shortened by `elapsed` (those that ran out are dropped). One
    /// [`super::RelayEvent::Subscribe`] is queued per joined (S,G), as if they had just been
    /// joined. Entries that make no sense (non-SSM (S,G), more tunnels or groups than the
    /// limits) are skipped; the snapshot comes from a file.
    /// `rng` draws the secrets of later rotations (see [`Relay::new`]).
    pub fn restore(
        config: RelayConfig,
        snapshot: &RelaySnapshot,
        elapsed: Duration,
        rng: rand::rngs::StdRng,
        now: Instant,
    ) -> Relay {
        let mut r = Relay::new(config, rng, now);
        let c = &r.config.clone();
        r.secrets = Secrets::import(
            c.secret_rotation,
            snapshot.secret,
            snapshot.previous_secret,
            snapshot.rotate_in,
            elapsed,
            now,
        );
        let gmi = c.membership_interval();
        let mut tunnels = HashMap::new();
        for t in &snapshot.tunnels {
            if tunnels.len() >= c.max_tunnels {
                break;
            }
            let key = canonical(t.gateway);
            if tunnels.contains_key(&key) || r.tunnels_per_address.get(key.ip()) >= c.max_tunnels_per_address {
                continue;
            }
            let mut groups = HashMap::new();
            for m in &t.groups {
                let Ok(sg) = SourceGroup::new(m.source, m.group) else { continue };
                let left = m.expires_in.min(gmi).saturating_sub(elapsed);
                if !left.is_zero() && groups.len() < c.max_groups_per_tunnel {
                    groups.insert(sg, now + left);
                }
            }
            let tunnel = Tunnel { previous_nonce: t.previous_nonce, groups, ..Tunnel::new(t.gateway, t.nonce, c, now) };
            r.tunnels_per_address.add(key.ip());
            tunnels.insert(key, tunnel);
        }
        let index: Vec<(SourceGroup, SocketAddr)> =
            tunnels.values().flat_map(|t: &Tunnel| t.groups.keys().map(move |sg| (*sg, t.peer))).collect();
        r.tunnels = tunnels;
        for (sg, peer) in index {
            r.index(sg, peer);
        }
        r.transmits = VecDeque::new();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::group_record::RecordType;
    use crate::wire::message::{MembershipQuery, Message};
    use crate::RelayEvent;

    fn cfg() -> RelayConfig {
        RelayConfig {
            advertised: "192.0.2.1".parse().unwrap(),
            query_interval: Duration::from_secs(125),
            query_response_interval: Duration::from_secs(10),
            secret_rotation: Duration::from_secs(600),
            ..RelayConfig::default()
        }
    }

    fn query(r: &mut Relay, from: SocketAddr, nonce: u32, now: Instant) -> MembershipQuery {
        r.handle_datagram(now, from, &Message::Request { nonce, mld: false }.to_bytes().unwrap()).unwrap();
        match Message::decode(&r.poll_transmit().unwrap().payload).unwrap() {
            Message::MembershipQuery(q) => q,
            other => panic!("{other:?}"),
        }
    }

    fn join(r: &mut Relay, from: SocketAddr, nonce: u32, sg: &str, now: Instant) -> crate::ResponseMac {
        let q = query(r, from, nonce, now);
        let sg: SourceGroup = sg.parse().unwrap();
        r.handle_datagram(now, from, &super::super::tests::update_for(q.mac, nonce, RecordType::ModeIsInclude, sg))
            .unwrap();
        q.mac
    }

    #[test]
    fn restored_relay_keeps_tunnels_macs_and_subscribers() {
        let t0 = Instant::now();
        let a: SocketAddr = "198.51.100.9:40000".parse().unwrap();
        let b: SocketAddr = "[::ffff:203.0.113.7]:5000".parse().unwrap();
        let mut r = Relay::new(cfg(), super::super::tests::rng(), t0);
        let g0 = r.generation();
        let mac_a = join(&mut r, a, 1, "10.0.0.1@232.1.1.1", t0);
        join(&mut r, b, 2, "2001:db8::1@ff3e::8000:1", t0);
        assert!(r.generation() > g0, "joins move the generation");
        let t1 = t0 + Duration::from_secs(30);
        let snap = r.snapshot(t1);
        assert_eq!(snap.tunnels.len(), 2);
        assert_eq!(snap.tunnels[0].groups[0].expires_in, cfg().membership_interval() - Duration::from_secs(30));
        assert!(!format!("{snap:?}").contains(&format!("{:?}", snap.secret)), "Debug hides the secrets");

        // Restart 5 s later (a new process: a new clock origin).
        let t2 = t1 + Duration::from_secs(100);
        let mut r2 = Relay::restore(cfg(), &snap, Duration::from_secs(5), super::super::tests::rng(), t2);
        let mut ev: Vec<RelayEvent> = std::iter::from_fn(|| r2.poll_event()).collect();
        ev.sort_by_key(|e| format!("{e:?}"));
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert!(ev.contains(&RelayEvent::Subscribe("10.0.0.1@232.1.1.1".parse().unwrap())));
        assert_eq!(r2.subscriber_slice(&"10.0.0.1@232.1.1.1".parse().unwrap()), &[a]);
        assert_eq!(r2.subscriber_slice(&"2001:db8::1@ff3e::8000:1".parse().unwrap()), &[b], "as reported");
        // The gateway's MAC still works: same Query MAC, and an Update under it is accepted.
        assert_eq!(query(&mut r2, a, 1, t2).mac, mac_a);
        let upd =
            super::super::tests::update_for(mac_a, 1, RecordType::ModeIsInclude, "10.0.0.1@232.1.1.2".parse().unwrap());
        r2.handle_datagram(t2, a, &upd).unwrap();
        // Remaining lifetimes: 260 - 30 - 5 = 225 s for b's membership, then it expires.
        let mut t = t2;
        while r2.subscriber_slice(&"2001:db8::1@ff3e::8000:1".parse().unwrap()).len() == 1
            && t < t2 + Duration::from_secs(400)
        {
            t = r2.poll_timeout().unwrap();
            r2.handle_timeout(t);
        }
        let lived = t - t2;
        assert!(lived >= Duration::from_secs(225) && lived <= Duration::from_secs(227), "{lived:?}");
    }

    #[test]
    fn a_snapshot_older_than_the_memberships_restores_nothing_joined() {
        let t0 = Instant::now();
        let mut r = Relay::new(cfg(), super::super::tests::rng(), t0);
        join(&mut r, "198.51.100.9:40000".parse().unwrap(), 1, "10.0.0.1@232.1.1.1", t0);
        let snap = r.snapshot(t0);
        let r2 = Relay::restore(cfg(), &snap, cfg().membership_interval(), super::super::tests::rng(), t0);
        assert_eq!(r2.subscribed().count(), 0);
        // Limits of the new configuration apply to what is restored.
        let r3 = Relay::restore(
            RelayConfig { max_tunnels: 0, ..cfg() },
            &snap,
            Duration::ZERO,
            super::super::tests::rng(),
            t0,
        );
        assert_eq!(r3.tunnel_count(), 0);
    }

    #[test]
    fn secret_rotation_across_a_restart_keeps_joined_gateways_valid() {
        let t0 = Instant::now();
        let gw: SocketAddr = "198.51.100.9:40000".parse().unwrap();
        let mut r = Relay::new(cfg(), super::super::tests::rng(), t0);
        let mac = join(&mut r, gw, 1, "10.0.0.1@232.1.1.1", t0);
        let snap = r.snapshot(t0 + Duration::from_secs(590));
        // Down for 20 s: the rotation fell due meanwhile and happens at the first timer.
        let t1 = t0 + Duration::from_secs(1000);
        let mut r2 = Relay::restore(cfg(), &snap, Duration::from_secs(20), super::super::tests::rng(), t1);
        assert_eq!(r2.poll_timeout(), Some(t1));
        let g = r2.generation();
        r2.handle_timeout(t1);
        assert!(r2.generation() > g, "rotation is a change worth saving");
        assert_ne!(query(&mut r2, gw, 1, t1).mac, mac, "rotated");
        // The joined gateway still refreshes with the MAC it holds; its data keeps flowing.
        let upd =
            super::super::tests::update_for(mac, 1, RecordType::ModeIsInclude, "10.0.0.1@232.1.1.1".parse().unwrap());
        r2.handle_datagram(t1, gw, &upd).unwrap();
        assert_eq!(r2.subscriber_slice(&"10.0.0.1@232.1.1.1".parse().unwrap()), &[gw]);
    }
}
