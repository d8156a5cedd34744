//! Frame-boundary and loss tracking shared by the video depacketizers (H.264, AV1): decides
//! for each packet whether it is a duplicate, late, or follows a gap, which frame it belongs
//! to (by RTP timestamp, ended by the marker bit), whether that frame is damaged, and gates
//! output until the next keyframe after any loss.

use crate::header::RtpHeader;
use crate::packetizer::{DepacketizerStats, Frame};
use crate::seq::{classify, SeqStep};

/// Largest frame a depacketizer assembles; bigger ones are dropped (bounds memory on hostile input).
pub const MAX_FRAME_SIZE: usize = 16 * 1024 * 1024;

/// What the codec-specific depacketizer should do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Ignore it (duplicate or late).
    Skip,
    /// Process its payload. `new_frame` tells that codec state of any previous frame must be
    /// discarded (buffers reset) before the payload is parsed.
    Process {
        /// This packet starts a new frame (new timestamp).
        new_frame: bool,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct FrameTracker {
    last_seq: Option<u16>,
    current_ts: Option<u32>,
    damaged: bool,
    pub(crate) waiting_for_keyframe: bool,
    pub(crate) stats: DepacketizerStats,
}

impl FrameTracker {
    pub(crate) fn new() -> Self {
        Self {
            last_seq: None,
            current_ts: None,
            damaged: false,
            waiting_for_keyframe: true,
            stats: DepacketizerStats::default(),
        }
    }

    /// Classifies a packet. `starts_frame` is asked, only after a gap on a packet with a new
    /// timestamp, whether the payload is recognisably the first packet of its frame (then the
    /// lost packets cannot have belonged to it and the frame is kept, e.g. an IDR access unit
    /// starting with its SPS right after a loss).
    pub(crate) fn admit(&mut self, header: &RtpHeader, starts_frame: impl FnOnce() -> bool) -> Admit {
        let step = classify(self.last_seq, header.sequence_number);
        let gap = match step {
            SeqStep::Duplicate => {
                self.stats.duplicates += 1;
                return Admit::Skip;
            }
            SeqStep::Late => {
                self.stats.late += 1;
                return Admit::Skip;
            }
            SeqStep::Gap(n) => {
                self.stats.lost_packets += u64::from(n);
                true
            }
            // The very first packet: what came before it is unknown, like after a gap.
            SeqStep::InOrder => self.last_seq.is_none(),
        };
        self.last_seq = Some(header.sequence_number);
        self.stats.packets += 1;
        let new_frame = self.current_ts != Some(header.timestamp);
        if new_frame {
            if self.current_ts.is_some() {
                // The previous frame never got its marker packet.
                self.stats.dropped_frames += 1;
                self.waiting_for_keyframe = true;
            }
            self.current_ts = Some(header.timestamp);
            self.damaged = false;
        }
        if gap {
            // Lost packets may have belonged to frames this one depends on, and (unless it
            // visibly starts here) to the start of this frame.
            self.waiting_for_keyframe = true;
            if !(new_frame && starts_frame()) {
                self.damaged = true;
            }
        }
        Admit::Process { new_frame }
    }

    /// Marks the current frame unusable (malformed payload, oversize, missing fragment start).
    pub(crate) fn damage(&mut self) {
        self.damaged = true;
        self.waiting_for_keyframe = true;
    }

    /// Ends the current frame (marker seen). Returns it if undamaged and decodable.
    pub(crate) fn complete(&mut self, data: Vec<u8>, keyframe: bool) -> Option<Frame> {
        let timestamp = self.current_ts.take()?;
        if self.damaged || data.is_empty() {
            self.damaged = false;
            self.stats.dropped_frames += 1;
            self.waiting_for_keyframe = true;
            return None;
        }
        if self.waiting_for_keyframe && !keyframe {
            self.stats.dropped_frames += 1;
            return None;
        }
        self.waiting_for_keyframe = false;
        self.stats.frames += 1;
        Some(Frame { timestamp, data, keyframe })
    }
}
