//! SRTP with per-sender keys: round trips, tampering, replay, and a rekey that shuts out a
//! receiver keeping the old key (a box that left).

use std::time::{Duration, Instant};

use roomcast_crypt::{CryptError, Protector, SrtpKey, Unprotector, OVERLAP, SRTCP_OVERHEAD, SRTP_OVERHEAD};

const SSRC: u32 = 0x1234_5678;
const PATTERN: &[u8] = b"ROOMCAST-TEST-PATTERN-0123456789";

fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
    p.extend_from_slice(&SSRC.to_be_bytes());
    for _ in 0..8 {
        p.extend_from_slice(PATTERN);
    }
    p
}

/// An RTCP sender report (PT 200) with no report blocks.
fn rtcp_sr() -> Vec<u8> {
    let mut p = vec![0x80, 200, 0, 6];
    p.extend_from_slice(&SSRC.to_be_bytes());
    p.extend_from_slice(&[0x11; 20]);
    p
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn rtp_and_rtcp_round_trip_and_the_ciphertext_hides_the_payload() {
    let key = SrtpKey::from_os(0);
    let mut tx = Protector::new(key.clone()).unwrap();
    let mut rx = Unprotector::new(key).unwrap();
    let now = Instant::now();
    for seq in 0..50u16 {
        let plain = rtp(seq.wrapping_add(65_500));
        let sealed = tx.protect(&plain).unwrap();
        assert_eq!(sealed.len(), plain.len() + SRTP_OVERHEAD);
        assert_eq!(sealed[..12], plain[..12], "the RTP header stays readable");
        assert!(!contains(&sealed, &PATTERN[..8]), "no plain payload in the SRTP packet");
        assert_eq!(rx.unprotect(now, &sealed).unwrap(), plain);
    }
    let sr = rtcp_sr();
    let sealed = tx.protect(&sr).unwrap();
    assert_eq!(sealed.len(), sr.len() + SRTCP_OVERHEAD);
    assert_ne!(sealed[8..sr.len()], sr[8..]);
    assert_eq!(rx.unprotect(now, &sealed).unwrap(), sr);
    assert_eq!(rx.stats().ok, 51);
    assert_eq!(rx.stats().failed, 0);
}

#[test]
fn tampered_replayed_and_foreign_packets_fail_and_are_counted() {
    let key = SrtpKey::from_os(0);
    let mut tx = Protector::new(key.clone()).unwrap();
    let mut rx = Unprotector::new(key).unwrap();
    let now = Instant::now();
    let sealed = tx.protect(&rtp(1)).unwrap();
    let mut bad = sealed.clone();
    bad[20] ^= 1;
    assert_eq!(rx.unprotect(now, &bad), Err(CryptError::NoKey));
    assert!(rx.unprotect(now, &sealed).is_ok());
    assert_eq!(rx.unprotect(now, &sealed), Err(CryptError::NoKey), "a replay is refused");
    let mut other = Protector::new(SrtpKey::from_os(0)).unwrap();
    assert_eq!(rx.unprotect(now, &other.protect(&rtp(2)).unwrap()), Err(CryptError::NoKey));
    assert_eq!(rx.unprotect(now, &rtp(3)), Err(CryptError::NoKey), "plain RTP is refused");
    assert_eq!(rx.unprotect(now, b""), Err(CryptError::NoKey));
    assert_eq!(rx.stats().failed, 5);
}

/// The sender rekeys when a room leaves: a member that got the new key decrypts across the
/// switch (old packets still in flight during the overlap), the departed box, which keeps its
/// old key and tries, decrypts nothing sent after the rekey.
#[test]
fn a_departed_box_keeping_the_old_key_cannot_decrypt_after_the_rekey() {
    let old = SrtpKey::from_os(0);
    let mut tx = Protector::new(old.clone()).unwrap();
    let mut member = Unprotector::new(old.clone()).unwrap();
    let mut departed = Unprotector::new(old).unwrap();
    let t0 = Instant::now();
    let before: Vec<Vec<u8>> = (0..20).map(|s| tx.protect(&rtp(s)).unwrap()).collect();
    for p in &before[..10] {
        assert!(member.unprotect(t0, p).is_ok());
        assert!(departed.unprotect(t0, p).is_ok());
    }
    // The leave: the sender draws and announces a new key; the member learns it, the
    // departed box does not.
    let new = SrtpKey::from_os(1);
    member.handle_key(t0, new.clone()).unwrap();
    tx.rekey(new).unwrap();
    let after: Vec<Vec<u8>> = (20..60).map(|s| tx.protect(&rtp(s)).unwrap()).collect();
    // Late old-key packets still decrypt during the overlap.
    let late = t0 + Duration::from_millis(300);
    for p in &before[10..] {
        assert!(member.unprotect(late, p).is_ok());
    }
    for p in &after {
        assert!(member.unprotect(late, p).is_ok());
        assert_eq!(departed.unprotect(late, p), Err(CryptError::NoKey));
    }
    assert_eq!(departed.stats().failed, after.len() as u64);
    assert_eq!(member.stats().by_previous, 10);
    let tail = member.previous_key_tail().unwrap();
    println!("old key last used {} ms after the rekey (overlap {} ms)", tail.as_millis(), OVERLAP.as_millis());
    assert_eq!(tail, Duration::from_millis(300));
    // After the overlap the old key is gone for the member too.
    member.handle_timeout(t0 + OVERLAP);
    assert_eq!(member.poll_timeout(), None);
}

#[test]
fn the_old_key_is_refused_after_the_overlap() {
    let old = SrtpKey::from_os(0);
    let mut tx_old = Protector::new(old.clone()).unwrap();
    let mut rx = Unprotector::new(old).unwrap();
    let t0 = Instant::now();
    rx.handle_key(t0, SrtpKey::from_os(1)).unwrap();
    let p = tx_old.protect(&rtp(1)).unwrap();
    let q = tx_old.protect(&rtp(2)).unwrap();
    assert!(rx.unprotect(t0 + OVERLAP - Duration::from_millis(1), &p).is_ok());
    assert_eq!(rx.unprotect(t0 + OVERLAP, &q), Err(CryptError::NoKey));
    assert_eq!(rx.key_id(), 1);
    rx.handle_key(t0, SrtpKey::from_os(0)).unwrap();
    assert_eq!(rx.key_id(), 1, "an older key from a stale roster is ignored");
}

/// Short and truncated packets are refused, never a panic: the fuzz smoke found a 4-byte RTCP-looking
/// datagram (`bd d3 0a 00`) that made webrtc-srtp index past its end; every prefix of a real SRTCP
/// packet is tried too.
#[test]
fn short_and_truncated_packets_are_refused_without_a_panic() {
    let key = SrtpKey::from_os(0);
    let mut tx = Protector::new(key.clone()).unwrap();
    let mut rx = Unprotector::new(key).unwrap();
    let now = Instant::now();
    assert!(rx.unprotect(now, &[0xbd, 0xd3, 0x0a, 0x00]).is_err());
    let sr = [0x80, 200, 0, 6, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let sealed = tx.protect(&sr).unwrap();
    for len in 0..sealed.len() {
        assert!(rx.unprotect(now, &sealed[..len]).is_err(), "a {len}-byte prefix");
    }
    assert_eq!(rx.unprotect(now, &sealed).unwrap(), sr);
}

/// An RTP packet whose RFC 8285 header extension element claims more bytes than the packet has
/// is refused, never a panic: the fuzz smoke found one (rtp 0.17, under webrtc-srtp, read past
/// the end). A packet with sound extension elements still round-trips.
#[test]
fn an_extension_element_past_the_packet_is_refused_without_a_panic() {
    let key = SrtpKey::from_os(0);
    let mut rx = Unprotector::new(key.clone()).unwrap();
    let now = Instant::now();
    // V=2 X=1, PT 96; two-byte profile 0x1000, one word: id 7 claiming 200 bytes.
    let bad = [0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 0x10, 0x00, 0, 1, 7, 200, 0, 0];
    assert!(rx.unprotect(now, &bad).is_err());
    // The fuzz smoke's own input.
    let found: &[u8] = include_bytes!("../../../fuzz/seeds/crypt_unprotect/rtp-extension-overrun");
    assert!(rx.unprotect(now, found).is_err());
    assert!(Protector::new(key.clone()).unwrap().protect(found).is_err(), "nor sealed");
    assert_eq!(rx.stats().failed, 2);
    // One-byte profile, id 1 with 2 data bytes, then padding: fine, and it round-trips.
    let good = [0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 0xbe, 0xde, 0, 1, 0x11, 5, 6, 0, 0xaa, 0xbb];
    let sealed = Protector::new(key).unwrap().protect(&good).unwrap();
    assert_eq!(rx.unprotect(now, &sealed).unwrap(), good);
}

/// Forged packets that arrive before a stream's first real one (a far-off sequence number, a
/// far-off SRTCP index) fail and change nothing: the real stream still decrypts, and replays of
/// it are still refused. webrtc-srtp's own detector set its window from the first packet it saw,
/// authenticated or not (the prefix test above failed one run in three on it).
#[test]
fn forged_packets_first_do_not_shut_out_the_real_stream() {
    let key = SrtpKey::from_os(0);
    let mut tx = Protector::new(key.clone()).unwrap();
    let mut rx = Unprotector::new(key).unwrap();
    let now = Instant::now();
    let real = tx.protect(&rtp(1)).unwrap();
    let mut forged = real.clone();
    forged[2..4].copy_from_slice(&30_001u16.to_be_bytes());
    assert!(rx.unprotect(now, &forged).is_err());
    let sr = tx.protect(&rtcp_sr()).unwrap();
    let mut forged_sr = sr.clone();
    let n = forged_sr.len();
    forged_sr[n - 4..].copy_from_slice(&(0x8000_0000u32 | 900_000).to_be_bytes());
    assert!(rx.unprotect(now, &forged_sr).is_err());
    assert_eq!(rx.unprotect(now, &real).unwrap(), rtp(1), "the real stream after a forged packet");
    assert_eq!(rx.unprotect(now, &sr).unwrap(), rtcp_sr());
    assert!(rx.unprotect(now, &real).is_err() && rx.unprotect(now, &sr).is_err(), "replays still refused");
    assert_eq!(rx.stats().failed, 4);
}
