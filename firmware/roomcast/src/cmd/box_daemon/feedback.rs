//! RTCP feedback on the box's media socket (the one its RTP leaves from): the receivers' PLIs
//! and receiver reports go out to the service from it, and the keyframe requests (PLI on our
//! video SSRC) the service routes back to it are read by a small thread that sets the sender
//! pipeline's keyframe flag. Both directions are authenticated (`roomcast_meeting::media_auth`):
//! what we send carries the same trailer as our media (the service drops anything else), and a
//! keyframe request counts only when it verifies with our downlink key (sealed by the service
//! with the key derived from our secret for that direction; replays refused), so nobody but the
//! service can make us spend bits on keyframes. The thread reads with a short timeout and ends
//! with its stop flag.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use roomcast_meeting::media_auth::{Sealer, Verifier};
use roomcast_rtp::rtcp::{parse_compound, RtcpPacket};

/// How long one read waits before the stop flag is looked at again.
const READ_TIMEOUT: Duration = Duration::from_millis(200);

/// True when `data` (from the service) asks a keyframe of `video_ssrc`.
pub fn asks_keyframe_of(data: &[u8], video_ssrc: u32) -> bool {
    parse_compound(data)
        .is_ok_and(|ps| ps.iter().any(|p| matches!(p, RtcpPacket::Pli(pli) if pli.media_ssrc == video_ssrc)))
}

/// The keys of both directions.
pub struct Auth {
    /// Seals what we send (shared with the media sink: one counter space).
    pub sealer: Arc<Sealer>,
    /// Verifies the service's keyframe requests.
    pub downlink: Verifier,
}

/// The feedback side of the media socket.
pub struct Feedback {
    sock: Arc<UdpSocket>,
    target: SocketAddr,
    sealer: Arc<Sealer>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Keyframe requests heard.
    pub plis_heard: Arc<AtomicU64>,
}

impl Feedback {
    /// Listens on `sock` for PLIs on `video_ssrc` from `target` (the service), sealed for us,
    /// setting `keyframe`.
    pub fn start(
        sock: Arc<UdpSocket>,
        target: SocketAddr,
        video_ssrc: u32,
        auth: Auth,
        keyframe: Option<Arc<AtomicBool>>,
    ) -> std::io::Result<Self> {
        let Auth { sealer, mut downlink } = auth;
        let stop = Arc::new(AtomicBool::new(false));
        let plis_heard = Arc::new(AtomicU64::new(0));
        let thread = match keyframe {
            Some(flag) => {
                sock.set_read_timeout(Some(READ_TIMEOUT))?;
                let (s, rsock, heard) = (stop.clone(), sock.clone(), plis_heard.clone());
                Some(std::thread::Builder::new().name("feedback".into()).spawn(move || {
                    let mut buf = vec![0u8; 2048];
                    while !s.load(Ordering::Relaxed) {
                        let Ok((n, from)) = rsock.recv_from(&mut buf) else { continue };
                        if from != target {
                            continue;
                        }
                        let Ok(v) = downlink.verify(&buf[..n]) else {
                            tracing::debug!("unauthenticated feedback datagram dropped");
                            continue;
                        };
                        if asks_keyframe_of(v.packet, video_ssrc) {
                            heard.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!("keyframe requested (PLI)");
                            flag.store(true, Ordering::Relaxed);
                        }
                    }
                })?)
            }
            None => None,
        };
        Ok(Self { sock, target, sealer, stop, thread, plis_heard })
    }

    /// Sends one RTCP compound packet (a receiver's RR/PLI) to the service, sealed.
    pub fn send(&self, data: &[u8]) {
        if let Err(e) = self.sock.send_to(&self.sealer.seal(data), self.target) {
            tracing::debug!("feedback to the service: {e}");
        }
    }
}

impl Drop for Feedback {
    fn drop(&mut self) {
        tracing::debug!(heard = self.plis_heard.load(Ordering::Relaxed), "keyframe requests heard");
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomcast_meeting::media_auth::MediaKey;
    use roomcast_rtp::rtcp::{encode_compound, Pli, ReceiverReport};

    #[test]
    fn only_an_authenticated_pli_from_the_service_on_our_video_sets_the_keyframe_flag() {
        let secret = "box secret";
        let service = UdpSocket::bind("127.0.0.1:0").unwrap();
        let media = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let flag = Arc::new(AtomicBool::new(false));
        let auth = Auth {
            sealer: Arc::new(Sealer::new(MediaKey::from_secret(secret), 1)),
            downlink: Verifier::new(MediaKey::downlink_from_secret(secret)),
        };
        let fb = Feedback::start(media.clone(), service.local_addr().unwrap(), 7, auth, Some(flag.clone())).unwrap();
        let to = media.local_addr().unwrap();
        let rr = RtcpPacket::ReceiverReport(ReceiverReport { ssrc: 9, reports: vec![] });
        let pli = |media_ssrc| encode_compound(&[rr.clone(), RtcpPacket::Pli(Pli { sender_ssrc: 9, media_ssrc })]);
        let downlink = Sealer::new(MediaKey::downlink_from_secret(secret), 1);
        let uplink = Sealer::new(MediaKey::from_secret(secret), 1);
        // Another source's PLI, one from elsewhere, an unsealed one and one sealed with the
        // uplink key (a reflected datagram of ours) are ignored.
        service.send_to(&downlink.seal(&pli(8)), to).unwrap();
        UdpSocket::bind("127.0.0.1:0").unwrap().send_to(&downlink.seal(&pli(7)), to).unwrap();
        service.send_to(&pli(7), to).unwrap();
        service.send_to(&uplink.seal(&pli(7)), to).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(!flag.load(Ordering::Relaxed));
        let good = downlink.seal(&pli(7));
        service.send_to(&good, to).unwrap();
        let wait = |n| {
            for _ in 0..100 {
                if fb.plis_heard.load(Ordering::Relaxed) >= n {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        wait(1);
        assert!(flag.load(Ordering::Relaxed));
        assert_eq!(fb.plis_heard.load(Ordering::Relaxed), 1);
        // The same datagram again is a replay.
        service.send_to(&good, to).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(fb.plis_heard.load(Ordering::Relaxed), 1);
        // Outgoing feedback reaches the service, sealed with our uplink key.
        fb.send(&pli(1));
        let mut buf = [0u8; 128];
        service.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let (n, _) = service.recv_from(&mut buf).unwrap();
        let v = Verifier::new(MediaKey::from_secret(secret)).verify(&buf[..n]).map(|v| v.packet.to_vec()).unwrap();
        assert!(asks_keyframe_of(&v, 1));
    }
}
