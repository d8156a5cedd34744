//! The receiving side, sans-IO: RTP and RTCP packets of one stream (video + audio, as an SDP
//! describes it) go in with the time they arrived; out come [`ReceiverEvent`]s: reassembled
//! video frames (H.264 access units or AV1 temporal units, to count, record or decode) and
//! decoded Opus PCM for the box's mixer (lost audio frames concealed, recovered from in-band
//! FEC when the next packet carries it). Each stream has a jitter buffer. In quinn-proto's
//! vocabulary: `handle_video_rtp` / `handle_audio_rtp` / `handle_rtcp` feed it, [`Receiver::poll_event`]
//! drains what is ready, and [`Receiver::handle_timeout`] runs at [`Receiver::poll_timeout`].
//! Each RTP packet is parsed once on
//! arrival (for the jitter buffer and the stream's [`ReceptionStats`]: loss, jitter) and once
//! when the jitter buffer releases it.
//!
//! Feedback (RFC 4585): while the video cannot be decoded (no keyframe yet after joining, or
//! loss) the receiver asks the sender for a keyframe with an RTCP PLI, at most once per
//! [`PLI_INTERVAL`]; every [`RR_INTERVAL`] it reports reception (RR with loss and jitter).
//! Both leave as RTCP compound packets by [`Receiver::poll_transmit`], once
//! [`Receiver::set_feedback_ssrc`] named the reporter's own SSRC. Receiver reports from the
//! other receivers arrive as [`ReceiverEvent::ReceiverReport`] (a sender adapts to them).
//!
//! The video payload type may change mid-stream from H.264 ([`super::PT_H264`]) to AV1
//! ([`super::PT_AV1`]) when the sender's hardware encoder fails; the receiver follows.

use bytes::Bytes;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use roomcast_rtp::jitter::{JitterBuffer, Released};
use roomcast_rtp::rtcp::{
    encode_compound, parse_compound, Pli, ReceiverReport, ReceptionStats, ReportBlock, RtcpPacket,
};
use roomcast_rtp::sdp::{Codec, SessionDescription};
use roomcast_rtp::{parse_rtp, Av1Depacketizer, Depacketizer, Frame, H264Depacketizer, OpusDepacketizer};

use super::{video_codec_of, PT_OPUS};
use crate::encoder::VideoCodec;
use crate::error::{MediaError, Result};
use crate::opus::OpusDecoder;

/// Default jitter-buffer latency.
pub const DEFAULT_LATENCY: Duration = Duration::from_millis(100);
/// Shortest time between two picture loss indications while the video stays undecodable.
pub const PLI_INTERVAL: Duration = Duration::from_millis(250);
/// Time between two receiver reports.
pub const RR_INTERVAL: Duration = Duration::from_secs(1);
/// At most this many lost audio frames are concealed in a row (longer gaps stay silent).
const MAX_CONCEAL: u64 = 5;

/// Which stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// Video.
    Video,
    /// Audio.
    Audio,
}

/// Something the receiver produced.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiverEvent {
    /// A reassembled video frame.
    Video {
        /// Its codec.
        codec: VideoCodec,
        /// The frame.
        frame: Frame,
    },
    /// One received Opus packet and its decoded PCM.
    Audio {
        /// RTP timestamp.
        timestamp: u32,
        /// The Opus packet (for recording).
        opus: Vec<u8>,
        /// Decoded interleaved PCM, 48 kHz.
        pcm: Vec<i16>,
    },
    /// PCM standing in for a lost audio frame (FEC or concealment).
    AudioConcealed {
        /// 20 ms of PCM.
        pcm: Vec<i16>,
        /// True when recovered from in-band FEC.
        fec: bool,
    },
    /// The sender said BYE on a stream.
    Bye(StreamKind),
    /// A sender report arrived.
    SenderReport(StreamKind),
    /// A receiver report arrived (another receiver of the same group reporting, among others,
    /// on our own streams): its report blocks.
    ReceiverReport {
        /// The reporter.
        reporter: u32,
        /// One block per source it receives.
        blocks: Vec<ReportBlock>,
    },
}

/// Counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Video frames returned.
    pub video_frames: u64,
    /// Audio packets decoded.
    pub audio_frames: u64,
    /// Audio frames concealed (PLC or FEC).
    pub audio_concealed: u64,
    /// Packets rejected (unparseable, unknown payload type).
    pub rejected: u64,
    /// Sender reports seen.
    pub sender_reports: u64,
    /// Picture loss indications sent.
    pub plis_sent: u64,
    /// Receiver reports sent.
    pub reports_sent: u64,
}

/// The receiver core.
pub struct Receiver {
    video_jb: JitterBuffer,
    audio_jb: JitterBuffer,
    video: Option<(u8, Box<dyn Depacketizer + Send>)>,
    audio: OpusDepacketizer,
    decoder: OpusDecoder,
    audio_pt: u8,
    stats: ReceiverStats,
    /// Reception statistics of the video and the audio stream (from their first packet; a
    /// new SSRC starts them again).
    reception: [Option<ReceptionStats>; 2],
    events: VecDeque<ReceiverEvent>,
    /// Our own SSRC as the reporter of feedback; `None`: no feedback.
    feedback_ssrc: Option<u32>,
    /// Whether PLIs are sent at all (receiver reports are, regardless).
    keyframe_requests: bool,
    last_pli: Option<Instant>,
    next_rr: Option<Instant>,
    transmits: VecDeque<Vec<u8>>,
}

impl Receiver {
    /// A receiver for the streams an SDP describes (decoding audio to its channel count).
    pub fn from_sdp(sdp: &SessionDescription, latency: Duration) -> Result<Self> {
        let audio = sdp.audio().ok_or_else(|| MediaError::Config("SDP has no audio m-line".into()))?;
        if audio.codec != Codec::Opus {
            return Err(MediaError::Config(format!("audio codec {} is not Opus", audio.codec.encoding_name())));
        }
        let stereo = audio.fmtp_param("sprop-stereo") == Some("1") || audio.fmtp_param("stereo") == Some("1");
        Self::new(if stereo { 2 } else { 1 }, audio.payload_type, latency)
    }

    /// A receiver decoding audio to `channels`.
    pub fn new(channels: u8, audio_pt: u8, latency: Duration) -> Result<Self> {
        Ok(Receiver {
            video_jb: JitterBuffer::new(latency),
            audio_jb: JitterBuffer::new(latency),
            video: None,
            audio: OpusDepacketizer::new(),
            decoder: OpusDecoder::new(channels)?,
            audio_pt,
            stats: ReceiverStats::default(),
            reception: [None, None],
            events: VecDeque::new(),
            feedback_ssrc: None,
            keyframe_requests: true,
            last_pli: None,
            next_rr: None,
            transmits: VecDeque::new(),
        })
    }

    /// Audio output channels.
    pub fn audio_channels(&self) -> u8 {
        self.decoder.channels()
    }

    /// Counters.
    pub fn stats(&self) -> &ReceiverStats {
        &self.stats
    }

    /// True while video frames are dropped until a keyframe (ask the sender for one).
    pub fn waiting_for_keyframe(&self) -> bool {
        self.video.as_ref().map_or(true, |(_, d)| d.waiting_for_keyframe())
    }

    /// Sends feedback (PLI, receiver reports) as `ssrc`, the reporter's own SSRC.
    pub fn set_feedback_ssrc(&mut self, ssrc: u32) {
        self.feedback_ssrc = Some(ssrc);
    }

    /// Whether to ask for keyframes (PLI; default on). Off, a receiver that joins waits for the
    /// sender's periodic keyframe (the reference of the time-to-first-frame bench).
    pub fn set_keyframe_requests(&mut self, on: bool) {
        self.keyframe_requests = on;
    }

    /// The next RTCP compound packet (RR, with a PLI when a keyframe is needed) for the
    /// video sender; the caller sends it to the service.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// A video RTP packet arrived at `now`; what it completes is queued for [`Receiver::poll_event`].
    pub fn handle_video_rtp(&mut self, now: Instant, data: impl Into<Bytes>) {
        self.arrived(StreamKind::Video, data, now);
        // Ask at once (a join): the jitter buffer holds the packet before the depacketizer sees it.
        self.feedback(now);
        self.handle_timeout(now);
    }

    /// Queues a PLI when the video cannot be decoded (rate-limited), and the periodic RR.
    fn feedback(&mut self, now: Instant) {
        let Some(me) = self.feedback_ssrc else { return };
        let Some(media_ssrc) = self.reception[StreamKind::Video as usize].as_ref().map(|s| s.ssrc()) else { return };
        let pli_due = self.keyframe_requests
            && self.waiting_for_keyframe()
            && self.last_pli.is_none_or(|t| now >= t + PLI_INTERVAL);
        let rr_due = self.next_rr.is_none_or(|t| now >= t);
        if !pli_due && !rr_due {
            return;
        }
        let reports = self.reception.iter_mut().flatten().map(|s| s.report_block(now)).collect();
        let mut packets = vec![RtcpPacket::ReceiverReport(ReceiverReport { ssrc: me, reports })];
        if pli_due {
            packets.push(RtcpPacket::Pli(Pli { sender_ssrc: me, media_ssrc }));
            self.last_pli = Some(now);
            self.stats.plis_sent += 1;
            tracing::debug!(media_ssrc, "asking for a keyframe (PLI)");
        }
        self.next_rr = Some(now + RR_INTERVAL);
        self.stats.reports_sent += 1;
        self.transmits.push_back(encode_compound(&packets));
    }

    /// An audio RTP packet arrived at `now`.
    pub fn handle_audio_rtp(&mut self, now: Instant, data: impl Into<Bytes>) {
        self.arrived(StreamKind::Audio, data, now);
        self.handle_timeout(now);
    }

    /// The next event: a frame, decoded audio, a sender report, a BYE.
    pub fn poll_event(&mut self) -> Option<ReceiverEvent> {
        self.events.pop_front()
    }

    /// Reception statistics of a stream (loss from sequence numbers, interarrival jitter);
    /// `None` before its first packet.
    pub fn reception(&self, kind: StreamKind) -> Option<&ReceptionStats> {
        self.reception[kind as usize].as_ref()
    }

    fn arrived(&mut self, kind: StreamKind, data: impl Into<Bytes>, now: Instant) {
        let data: Bytes = data.into();
        let (seq, ts, ssrc) = match parse_rtp(&data) {
            Ok(p) => (p.header.sequence_number, p.header.timestamp, p.header.ssrc),
            Err(_) => {
                self.stats.rejected += 1;
                return;
            }
        };
        let clock_rate = match kind {
            StreamKind::Video => 90_000,
            StreamKind::Audio => 48_000,
        };
        let stats = &mut self.reception[kind as usize];
        if stats.as_ref().map_or(true, |s| s.ssrc() != ssrc) {
            *stats = Some(ReceptionStats::new(ssrc, clock_rate));
        }
        if let Some(s) = stats.as_mut() {
            s.on_packet(seq, ts, now);
        }
        let jb = match kind {
            StreamKind::Video => &mut self.video_jb,
            StreamKind::Audio => &mut self.audio_jb,
        };
        jb.handle_parsed(now, seq, data);
    }

    /// An RTCP packet arrived on the video or audio RTCP port.
    pub fn handle_rtcp(&mut self, kind: StreamKind, data: &[u8]) {
        let Ok(packets) = parse_compound(data) else {
            self.stats.rejected += 1;
            return;
        };
        for p in packets {
            match p {
                RtcpPacket::SenderReport(_) => {
                    self.stats.sender_reports += 1;
                    self.events.push_back(ReceiverEvent::SenderReport(kind));
                }
                RtcpPacket::Bye(_) => self.events.push_back(ReceiverEvent::Bye(kind)),
                RtcpPacket::ReceiverReport(rr) => {
                    self.events.push_back(ReceiverEvent::ReceiverReport { reporter: rr.ssrc, blocks: rr.reports })
                }
                _ => {}
            }
        }
    }

    /// When [`Receiver::handle_timeout`] should run next: a jitter-buffer deadline, the next
    /// receiver report or PLI retry (None while nothing is buffered and no feedback is due).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let feedback = (self.feedback_ssrc.is_some() && self.reception[StreamKind::Video as usize].is_some())
            .then(|| {
                let pli = self.last_pli.filter(|_| self.waiting_for_keyframe()).map(|t| t + PLI_INTERVAL);
                [self.next_rr, pli].into_iter().flatten().min()
            })
            .flatten();
        [self.video_jb.poll_timeout(), self.audio_jb.poll_timeout(), feedback].into_iter().flatten().min()
    }

    /// Releases whatever the jitter buffers let go at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(r) = self.video_jb.poll_packet(now) {
            self.video_packet(r);
        }
        while let Some(r) = self.audio_jb.poll_packet(now) {
            self.audio_packet(r);
        }
        self.feedback(now);
    }

    /// End of stream at `now`: releases everything still buffered, waiting for nothing.
    pub fn handle_close(&mut self, now: Instant) {
        self.handle_timeout(now + Duration::from_secs(3600));
        if let Some((pt, d)) = self.video.as_mut() {
            if let Some(frame) = d.finish() {
                if let Some(codec) = video_codec_of(*pt) {
                    self.stats.video_frames += 1;
                    self.events.push_back(ReceiverEvent::Video { codec, frame });
                }
            }
        }
    }

    fn video_packet(&mut self, r: Released) {
        let Ok(packet) = parse_rtp(&r.data) else {
            self.stats.rejected += 1;
            return;
        };
        let pt = packet.header.payload_type;
        let Some(codec) = video_codec_of(pt) else {
            self.stats.rejected += 1;
            return;
        };
        if self.video.as_ref().map_or(true, |(cur, _)| *cur != pt) {
            if self.video.is_some() {
                tracing::warn!(codec = codec.name(), "video payload type changed: following the sender");
            }
            let d: Box<dyn Depacketizer + Send> = match codec {
                VideoCodec::H264 => Box::new(H264Depacketizer::new()),
                VideoCodec::Av1 => Box::new(Av1Depacketizer::new()),
            };
            self.video = Some((pt, d));
        }
        let Some((_, d)) = self.video.as_mut() else { return };
        match d.depacketize(&packet) {
            Ok(Some(frame)) => {
                self.stats.video_frames += 1;
                self.events.push_back(ReceiverEvent::Video { codec, frame });
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!("video packet dropped: {e}");
            }
        }
    }

    fn audio_packet(&mut self, r: Released) {
        let Ok(packet) = parse_rtp(&r.data) else {
            self.stats.rejected += 1;
            return;
        };
        if packet.header.payload_type != self.audio_pt && packet.header.payload_type != PT_OPUS {
            self.stats.rejected += 1;
            return;
        }
        let frame = match self.audio.depacketize(&packet) {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!("audio packet dropped: {e}");
                return;
            }
        };
        let lost = r.lost_before.min(MAX_CONCEAL);
        for i in 0..lost {
            // The frame right before this packet can come back from this packet's FEC.
            let fec = i + 1 == lost;
            let pcm = if fec { self.decoder.conceal(Some(&frame.data)) } else { self.decoder.conceal(None) };
            if let Ok(pcm) = pcm {
                self.stats.audio_concealed += 1;
                self.events.push_back(ReceiverEvent::AudioConcealed { pcm, fec });
            }
        }
        match self.decoder.decode(&frame.data) {
            Ok(pcm) => {
                self.stats.audio_frames += 1;
                self.events.push_back(ReceiverEvent::Audio { timestamp: frame.timestamp, opus: frame.data, pcm });
            }
            Err(e) => tracing::debug!("Opus decode failed: {e}"),
        }
    }
}
