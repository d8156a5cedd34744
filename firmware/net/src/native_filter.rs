//! The kernel-side filter of native multicast ingest: a classic BPF program (SO_ATTACH_FILTER)
//! that lets a raw UDP socket take only the datagrams of the joined (S,G) channels.
//!
//! A raw `IPPROTO_UDP` socket is the one socket that receives a channel's UDP whatever its
//! destination port (an AMT relay must forward every port of a joined (S,G)), but it also gets
//! every other UDP datagram of the host. The program compares the IP source and destination
//! (read relative to the network header, `SKF_NET_OFF`, which works for IPv4 raw sockets that see
//! the IP header and IPv6 raw sockets that do not) with each joined (S,G) and drops the rest in
//! the kernel, so no unrelated datagram is ever copied to the relay. Sans-IO: [`program`] builds
//! the instructions, the driver ([`crate::native`]) attaches them.

use std::net::IpAddr;

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Constant.
    pub k: u32,
}

/// `BPF_LD | BPF_W | BPF_ABS`: A = 32-bit word at k.
pub const LD_W_ABS: u16 = 0x20;
/// `BPF_JMP | BPF_JEQ | BPF_K`: jump jt if A == k else jf.
pub const JEQ_K: u16 = 0x15;
/// `BPF_RET | BPF_K`: accept k bytes (0: drop).
pub const RET_K: u16 = 0x06;
/// `SKF_NET_OFF`: loads relative to the network header.
pub const NET_OFF: u32 = (-0x10_0000i32) as u32;
/// The kernel's limit on a classic BPF program (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;
/// What an accepting program returns (the whole datagram).
pub const ACCEPT: u32 = 0xffff;

/// The program for the (source, group) pairs of one address family (`ipv6`); pairs of the other
/// family are skipped. No pair: drop everything. Too many pairs for [`MAX_INSNS`]: accept
/// everything (the driver still checks each datagram against the joined set).
pub fn program<'a>(ipv6: bool, joined: impl IntoIterator<Item = &'a (IpAddr, IpAddr)>) -> Vec<Insn> {
    // (offset in the IP header, expected word) for every word of S and G.
    let mut blocks: Vec<Vec<(u32, u32)>> = Vec::new();
    for (s, g) in joined {
        match (s, g, ipv6) {
            (IpAddr::V4(s), IpAddr::V4(g), false) => {
                blocks.push(vec![(12, u32::from_be_bytes(s.octets())), (16, u32::from_be_bytes(g.octets()))]);
            }
            (IpAddr::V6(s), IpAddr::V6(g), true) => {
                let mut words = Vec::with_capacity(8);
                for (base, addr) in [(8u32, s.octets()), (24, g.octets())] {
                    for (i, w) in addr.chunks_exact(4).enumerate() {
                        words.push((base + 4 * i as u32, u32::from_be_bytes([w[0], w[1], w[2], w[3]])));
                    }
                }
                blocks.push(words);
            }
            _ => {}
        }
    }
    let len: usize = blocks.iter().map(|b| 2 * b.len() + 1).sum::<usize>() + 1;
    if len > MAX_INSNS {
        return vec![Insn { code: RET_K, jt: 0, jf: 0, k: ACCEPT }];
    }
    let mut prog = Vec::with_capacity(len);
    for words in &blocks {
        let block_len = 2 * words.len() + 1;
        for (i, (off, word)) in words.iter().enumerate() {
            prog.push(Insn { code: LD_W_ABS, jt: 0, jf: 0, k: NET_OFF.wrapping_add(*off) });
            // On a mismatch skip the rest of this block: its remaining loads and compares and its RET.
            let after = block_len - (2 * i + 2);
            prog.push(Insn { code: JEQ_K, jt: 0, jf: after as u8, k: *word });
        }
        prog.push(Insn { code: RET_K, jt: 0, jf: 0, k: ACCEPT });
    }
    prog.push(Insn { code: RET_K, jt: 0, jf: 0, k: 0 });
    prog
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// Runs the program the way the kernel does on a packet whose network header is `ip`.
    fn run(prog: &[Insn], ip: &[u8]) -> u32 {
        let (mut pc, mut a) = (0usize, 0u32);
        for _ in 0..MAX_INSNS {
            let i = prog[pc];
            match i.code {
                LD_W_ABS => {
                    let off = i.k.wrapping_sub(NET_OFF) as usize;
                    let Some(w) = ip.get(off..off + 4) else { return 0 };
                    a = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
                    pc += 1;
                }
                JEQ_K => pc += 1 + usize::from(if a == i.k { i.jt } else { i.jf }),
                RET_K => return i.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
        panic!("the program does not end");
    }

    fn v4(s: [u8; 4], d: [u8; 4]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0];
        p.extend_from_slice(&s);
        p.extend_from_slice(&d);
        p.extend_from_slice(&[0; 8]);
        p
    }

    fn v6(s: Ipv6Addr, d: Ipv6Addr) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        p.extend_from_slice(&s.octets());
        p.extend_from_slice(&d.octets());
        p.extend_from_slice(&[0; 8]);
        p
    }

    #[test]
    fn ipv4_program_takes_only_the_joined_pairs() {
        let a = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), IpAddr::V4(Ipv4Addr::new(232, 1, 1, 1)));
        let b = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), IpAddr::V4(Ipv4Addr::new(232, 1, 1, 2)));
        let other_family = (IpAddr::V6(Ipv6Addr::LOCALHOST), "ff3e::1".parse().unwrap());
        let prog = program(false, &[a, b, other_family]);
        assert_eq!(prog.len(), 2 * 5 + 1);
        assert_eq!(run(&prog, &v4([10, 0, 0, 1], [232, 1, 1, 1])), ACCEPT);
        assert_eq!(run(&prog, &v4([10, 0, 0, 2], [232, 1, 1, 2])), ACCEPT);
        // Crossed pairs, other sources, unicast: dropped.
        assert_eq!(run(&prog, &v4([10, 0, 0, 1], [232, 1, 1, 2])), 0);
        assert_eq!(run(&prog, &v4([10, 0, 0, 3], [232, 1, 1, 1])), 0);
        assert_eq!(run(&prog, &v4([10, 0, 0, 1], [10, 0, 0, 9])), 0);
        assert_eq!(run(&program(false, &[]), &v4([10, 0, 0, 1], [232, 1, 1, 1])), 0, "nothing joined");
    }

    #[test]
    fn ipv6_program_compares_all_sixteen_bytes() {
        let s: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let g: Ipv6Addr = "ff3e::8000:1".parse().unwrap();
        let prog = program(true, &[(s.into(), g.into()), ("2001:db8::2".parse().unwrap(), g.into())]);
        assert_eq!(run(&prog, &v6(s, g)), ACCEPT);
        assert_eq!(run(&prog, &v6("2001:db8::2".parse().unwrap(), g)), ACCEPT);
        // Each word of S and of G matters.
        for i in 0..16 {
            let mut so = s.octets();
            so[i] ^= 0x80;
            assert_eq!(run(&prog, &v6(Ipv6Addr::from(so), g)), 0, "source byte {i}");
            let mut go = g.octets();
            go[i] ^= 0x01;
            assert_eq!(run(&prog, &v6(s, Ipv6Addr::from(go))), 0, "group byte {i}");
        }
    }

    #[test]
    fn too_many_pairs_fall_back_to_accepting_everything() {
        let pairs: Vec<(IpAddr, IpAddr)> = (0..300u32)
            .map(|i| (Ipv6Addr::from(u128::from(i) + 1).into(), "ff3e::1".parse::<Ipv6Addr>().unwrap().into()))
            .collect();
        let prog = program(true, &pairs);
        assert_eq!(prog, vec![Insn { code: RET_K, jt: 0, jf: 0, k: ACCEPT }]);
        assert!(program(true, &pairs[..240]).len() <= MAX_INSNS);
    }
}
