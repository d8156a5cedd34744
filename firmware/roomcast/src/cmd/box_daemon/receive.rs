//! Receiving the other rooms: every delivery from the AMT gateway is matched to its sender by
//! group address and to its stream by UDP port (video RTP/RTCP on the video port and the next,
//! audio on the audio port and the next), decrypted with that sender's media keys (SRTP,
//! `roomcast_crypt::Unprotector`: what no key authenticates is counted and dropped), fed to
//! that sender's `roomcast_media` receiver
//! (jitter buffer, depacketizer, Opus decoder, loss from its reception statistics: the packet
//! is not parsed here); decoded audio goes to the playback thread's mixer, and with
//! `[debug] record_dir` every stream is also written to files (`video.ivf`/`video.h264`,
//! `audio.opus`) that standard tools decode. With `[network] lan_multicast` each delivery is
//! also re-sent, decrypted, as native multicast on the room LAN (for the room's own players).
//! Video frames go to the screen's thread ([`ScreenFeed`], `[screen]`), which decodes and
//! composes them. Each receiver's RTCP feedback (PLI while a remote's video cannot be decoded,
//! receiver reports) leaves by [`Receiving::poll_transmit`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Instant;

use roomcast_crypt::Unprotector;
use roomcast_media::pipeline::receiver::{Receiver, ReceiverEvent, StreamKind, DEFAULT_LATENCY};
use roomcast_media::pipeline::recorder::Recorder;
use roomcast_media::pipeline::PT_OPUS;
use roomcast_meeting::roster::{Family, ParticipantInfo, Roster};
use roomcast_net::native::NativeSender;
use roomcast_net::Delivery;
use roomcast_session::{ReceiveCounters, RemoteCounters};

use roomcast_media::mixer::SpeakingMeter;
use roomcast_media::speaker::PlaybackTx;

use super::screen::ScreenFeed;

/// One other participant being received.
struct Remote {
    info: ParticipantInfo,
    receiver: Receiver,
    /// Its media keys (none until the roster names one: everything fails to decrypt).
    keys: Option<Unprotector>,
    /// The recorder, until it fails.
    recorder: Option<Recorder>,
    status: RemoteCounters,
    /// Report blocks (source, fraction lost) this remote sent, not yet taken.
    reports: Vec<(u32, u8)>,
}

/// Everything received.
pub struct Receiving {
    family: Family,
    remotes: HashMap<IpAddr, Remote>,
    playback: PlaybackTx,
    speaking: SpeakingMeter,
    record_dir: Option<PathBuf>,
    lan: Option<NativeSender>,
    screen: Option<ScreenFeed>,
    /// Bytes received through the tunnel.
    bytes: u64,
    /// Our own video SSRC, the reporter of our feedback.
    feedback_ssrc: Option<u32>,
    /// Whether the receivers send PLIs (`[debug] keyframe_requests`).
    keyframe_requests: bool,
    errors: Vec<String>,
}

fn dir_name(room: &str, id: &str) -> String {
    let clean: String =
        room.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    if clean.is_empty() {
        id.to_string()
    } else {
        clean
    }
}

impl Receiving {
    /// Receiving for `family` groups, playing through `playback`, recording under `record_dir`.
    pub fn new(family: Family, playback: PlaybackTx, record_dir: Option<PathBuf>, lan: Option<NativeSender>) -> Self {
        Self {
            screen: None,
            family,
            remotes: HashMap::new(),
            playback,
            speaking: SpeakingMeter::default(),
            record_dir,
            lan,
            bytes: 0,
            feedback_ssrc: None,
            keyframe_requests: true,
            errors: Vec::new(),
        }
    }

    /// Hands every received video frame to the screen.
    pub fn with_screen(mut self, screen: Option<ScreenFeed>) -> Self {
        self.screen = screen;
        self
    }

    /// Starts receiving `info`.
    pub fn add(&mut self, info: ParticipantInfo) -> Result<(), String> {
        let sg = info.groups.get(self.family);
        let audio_pt = info.caps.audio.as_ref().map_or(PT_OPUS, |a| a.payload_type);
        let mut receiver = Receiver::new(1, audio_pt, DEFAULT_LATENCY).map_err(|e| e.to_string())?;
        if let Some(ssrc) = self.feedback_ssrc {
            receiver.set_feedback_ssrc(ssrc);
        }
        receiver.set_keyframe_requests(self.keyframe_requests);
        let recorder = self.record_dir.as_ref().map(|d| {
            let mut dir = d.join(dir_name(&info.room, &info.id));
            if dir.exists() {
                dir = d.join(format!("{}-{}", dir_name(&info.room, &info.id), info.id));
            }
            let (w, h) = info.caps.video.as_ref().map_or((0, 0), |v| (v.width, v.height));
            Recorder::new(dir, info.ssrc.audio, 1).with_video_size(w, h)
        });
        let status = RemoteCounters { id: info.id.clone(), ..Default::default() };
        let keys = match info.key.clone().map(Unprotector::new).transpose() {
            Ok(k) => k,
            Err(e) => return Err(format!("media key of {}: {e}", info.room)),
        };
        self.remotes.insert(sg.group, Remote { info, receiver, keys, recorder, status, reports: Vec::new() });
        Ok(())
    }

    /// Sends feedback (PLI, RR) on every remote as `ssrc` (our own video SSRC).
    pub fn set_feedback_ssrc(&mut self, ssrc: u32) {
        self.feedback_ssrc = Some(ssrc);
    }

    /// Whether the receivers of remotes added later ask for keyframes (PLI).
    pub fn set_keyframe_requests(&mut self, on: bool) {
        self.keyframe_requests = on;
    }

    /// Loss (fraction lost, 1/256) the other rooms reported on our video since the last call.
    pub fn take_loss_reports(&mut self) -> Vec<u8> {
        let me = self.feedback_ssrc;
        let blocks = self.remotes.values_mut().flat_map(|r| std::mem::take(&mut r.reports));
        blocks.filter(|(ssrc, _)| Some(*ssrc) == me).map(|(_, lost)| lost).collect()
    }

    /// The next RTCP feedback packet of any remote's receiver, for the service.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.remotes.values_mut().find_map(|r| r.receiver.poll_transmit())
    }

    /// Stops receiving participant `id` (its files are finished).
    pub fn remove(&mut self, id: &str) {
        let key = self.remotes.iter().find(|(_, r)| r.info.id == id).map(|(k, _)| *k);
        if let Some(mut r) = key.and_then(|k| self.remotes.remove(&k)) {
            self.finish_remote(&mut r);
            self.playback.remove(id);
            self.speaking.remove(id);
        }
    }

    fn finish_remote(&mut self, r: &mut Remote) {
        let now = Instant::now();
        r.receiver.handle_close(now);
        Self::handle_events(&self.playback, &mut self.speaking, self.screen.as_ref(), r, now, &mut self.errors);
        if let Some(rec) = r.recorder.as_mut() {
            if let Err(e) = rec.finish() {
                tracing::warn!(dir = %rec.dir().display(), "finishing the recording: {e}");
            }
        }
    }

    /// Finishes every file (at shutdown).
    pub fn finish_all(&mut self) {
        let ids: Vec<String> = self.remotes.values().map(|r| r.info.id.clone()).collect();
        for id in ids {
            self.remove(&id);
        }
    }

    /// The media keys of a newer roster (a sender rekeyed): each remote's key becomes current,
    /// its previous one stays accepted for `roomcast_crypt::OVERLAP`.
    pub fn handle_roster(&mut self, now: Instant, roster: &Roster) {
        for p in &roster.participants {
            let Some(key) = p.key.clone() else { continue };
            let Some(r) = self.remotes.values_mut().find(|r| r.info.id == p.id) else { continue };
            let result = match r.keys.as_mut() {
                Some(k) => k.handle_key(now, key),
                None => Unprotector::new(key).map(|k| r.keys = Some(k)),
            };
            if let Err(e) = result {
                self.errors.push(format!("media key of {}: {e}", r.info.room));
            }
        }
    }

    /// Takes one datagram from the tunnel.
    pub fn on_delivery(&mut self, d: Delivery, now: Instant) {
        self.bytes += d.payload.len() as u64;
        let Some(r) = self.remotes.get_mut(&d.group.ip()) else { return };
        let port = d.group.port();
        let (vp, ap) = (r.info.ports.video, r.info.ports.audio);
        if ![vp, ap, vp.wrapping_add(1), ap.wrapping_add(1)].contains(&port) {
            return;
        }
        // End-to-end decryption before anything reads the packet.
        let plain = match r.keys.as_mut().map(|k| k.unprotect(now, &d.payload)) {
            Some(Ok(p)) => p,
            Some(Err(_)) | None => {
                r.status.decrypt_failed += 1;
                return;
            }
        };
        if let Some(lan) = &self.lan {
            if let Err(e) = lan.send(d.group, &plain) {
                tracing::debug!("LAN re-send to {}: {e}", d.group);
            }
        }
        if port == vp {
            r.status.packets += 1;
            r.receiver.handle_video_rtp(now, plain);
        } else if port == ap {
            r.status.packets += 1;
            r.receiver.handle_audio_rtp(now, plain);
        } else if port == vp.wrapping_add(1) {
            r.receiver.handle_rtcp(StreamKind::Video, &plain);
        } else {
            r.receiver.handle_rtcp(StreamKind::Audio, &plain);
        }
        Self::handle_events(&self.playback, &mut self.speaking, self.screen.as_ref(), r, now, &mut self.errors);
    }

    fn handle_events(
        playback: &PlaybackTx,
        speaking: &mut SpeakingMeter,
        screen: Option<&ScreenFeed>,
        r: &mut Remote,
        now: Instant,
        errors: &mut Vec<String>,
    ) {
        while let Some(ev) = r.receiver.poll_event() {
            if let Some(rec) = r.recorder.as_mut() {
                if let Err(e) = rec.record(&ev) {
                    errors.push(format!("recording {}: {e}", r.info.room));
                    r.recorder = None;
                }
            }
            match ev {
                ReceiverEvent::Video { codec, frame } => {
                    if r.status.video_frames == 0 {
                        // The time-to-first-frame bench reads this line.
                        tracing::info!(room = %r.info.room, keyframe = frame.keyframe, "first video frame");
                    }
                    r.status.video_frames += 1;
                    r.status.video_codec = Some(codec.name().to_string());
                    if let Some(s) = screen {
                        s.handle_video(&r.info.id, codec, frame.timestamp, frame.data);
                    }
                }
                ReceiverEvent::Audio { pcm, .. } => {
                    r.status.audio_frames += 1;
                    speaking.handle_pcm(now, &r.info.id, &pcm);
                    playback.pcm(&r.info.id, pcm);
                }
                ReceiverEvent::AudioConcealed { pcm, .. } => {
                    r.status.audio_concealed += 1;
                    speaking.handle_pcm(now, &r.info.id, &pcm);
                    playback.pcm(&r.info.id, pcm);
                }
                ReceiverEvent::Bye(_) => r.status.said_bye = true,
                ReceiverEvent::ReceiverReport { blocks, .. } => {
                    r.reports.extend(blocks.iter().map(|b| (b.ssrc, b.fraction_lost)));
                    let excess = r.reports.len().saturating_sub(64);
                    r.reports.drain(..excess);
                }
                ReceiverEvent::SenderReport(_) => {}
            }
        }
    }

    /// When [`Receiving::handle_timeout`] should run next: the earliest jitter-buffer deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.remotes.values().filter_map(|r| r.receiver.poll_timeout()).min()
    }

    /// Releases what the jitter buffers hold past their latency.
    pub fn handle_timeout(&mut self, now: Instant) {
        for r in self.remotes.values_mut() {
            r.receiver.handle_timeout(now);
            if let Some(k) = r.keys.as_mut() {
                k.handle_timeout(now);
            }
            Self::handle_events(&self.playback, &mut self.speaking, self.screen.as_ref(), r, now, &mut self.errors);
        }
    }

    /// Problems since the last call.
    pub fn take_errors(&mut self) -> Vec<String> {
        std::mem::take(&mut self.errors)
    }

    /// The totals so far, for the session (which orders them and derives loss and bitrate).
    pub fn counters(&self, now: Instant) -> ReceiveCounters {
        let remotes = self
            .remotes
            .values()
            .map(|r| {
                let expected_received = [StreamKind::Video, StreamKind::Audio]
                    .into_iter()
                    .filter_map(|k| r.receiver.reception(k).map(|s| s.expected_and_received()))
                    .fold((0, 0), |(e, g), (e1, g1)| (e + e1, g + g1));
                RemoteCounters {
                    expected_received,
                    speaking: self.speaking.speaking(&r.info.id, now),
                    ..r.status.clone()
                }
            })
            .collect();
        ReceiveCounters { bytes: self.bytes, remotes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_directories_are_safe_names() {
        assert_eq!(dir_name("Blue room", "abc"), "Blue_room");
        assert_eq!(dir_name("../x", "abc"), "___x");
        assert_eq!(dir_name("", "abc"), "abc");
    }
}
