//! [`Recorder`]: the receiver's output written to files standard tools play: `video.ivf`
//! (AV1) or `video.h264` (Annex B), and `audio.opus` (Ogg Opus). Used by `roomcast record`
//! and by the box's `[debug] record_dir`. Files are created on the first frame of their kind
//! (the audio file earlier with [`Recorder::open_audio`]); a video codec change mid-stream
//! (hardware H.264 falling back to AV1) finishes the one file and starts the other.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use roomcast_rtp::annexb::AnnexBWriter;
use roomcast_rtp::ivf::{IvfHeader, IvfWriter};
use roomcast_rtp::ogg_opus::OggOpusWriter;
use roomcast_rtp::Frame;

use super::receiver::ReceiverEvent;
use crate::encoder::VideoCodec;
use crate::error::{MediaError, Result};

/// Opus pre-skip written in the Ogg header (libopus's encoder delay at 48 kHz).
const PRE_SKIP: u16 = 312;

enum VideoFile {
    Ivf { writer: IvfWriter<BufWriter<File>>, first_ts: Option<u32> },
    AnnexB(AnnexBWriter<BufWriter<File>>),
}

/// Writes one sender's received streams into a directory.
pub struct Recorder {
    dir: PathBuf,
    audio_serial: u32,
    audio_channels: u8,
    video_size: (u16, u16),
    video: Option<(VideoCodec, VideoFile)>,
    audio: Option<OggOpusWriter<BufWriter<File>>>,
    video_frames: u64,
    audio_packets: u64,
}

fn create(dir: &Path, name: &str) -> Result<BufWriter<File>> {
    std::fs::create_dir_all(dir).map_err(|e| MediaError::io(format!("creating {}", dir.display()), e))?;
    let path = dir.join(name);
    File::create(&path).map(BufWriter::new).map_err(|e| MediaError::io(format!("creating {}", path.display()), e))
}

fn rtp_err(e: roomcast_rtp::RtpError) -> MediaError {
    MediaError::Rtp(e.to_string())
}

/// Width and height from the sequence header of an AV1 temporal unit (for the IVF header).
fn av1_dimensions(temporal_unit: &[u8]) -> Option<(u16, u16)> {
    use roomcast_rtp::av1::obu::{parse_temporal_unit, sequence_header_dimensions, OBU_SEQUENCE_HEADER};
    let obus = parse_temporal_unit(temporal_unit).ok()?;
    let seq = obus.iter().find(|o| o.obu_type == OBU_SEQUENCE_HEADER)?;
    let (w, h) = sequence_header_dimensions(seq.payload)?;
    Some((u16::try_from(w).ok()?, u16::try_from(h).ok()?))
}

impl Recorder {
    /// A recorder into `dir` (created when the first file is); the Ogg stream gets serial
    /// `audio_serial` and `audio_channels` channels.
    pub fn new(dir: impl Into<PathBuf>, audio_serial: u32, audio_channels: u8) -> Self {
        Self {
            dir: dir.into(),
            audio_serial,
            audio_channels,
            video_size: (0, 0),
            video: None,
            audio: None,
            video_frames: 0,
            audio_packets: 0,
        }
    }

    /// The IVF header's size when the first AV1 frame carries no sequence header.
    pub fn with_video_size(mut self, width: u16, height: u16) -> Self {
        self.video_size = (width, height);
        self
    }

    /// The directory written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates `audio.opus` now (it is otherwise created on the first audio packet).
    pub fn open_audio(&mut self) -> Result<()> {
        if self.audio.is_none() {
            let f = create(&self.dir, "audio.opus")?;
            self.audio =
                Some(OggOpusWriter::new(f, self.audio_serial, self.audio_channels, PRE_SKIP).map_err(rtp_err)?);
        }
        Ok(())
    }

    /// Writes what `event` carries (video frames and received Opus packets; the rest is ignored).
    pub fn record(&mut self, event: &ReceiverEvent) -> Result<()> {
        match event {
            ReceiverEvent::Video { codec, frame } => self.video(*codec, frame),
            ReceiverEvent::Audio { opus, .. } => {
                self.open_audio()?;
                self.audio.as_mut().expect("opened above").write_packet(opus).map_err(rtp_err)?;
                self.audio_packets += 1;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn video(&mut self, codec: VideoCodec, frame: &Frame) -> Result<()> {
        if self.video.as_ref().is_some_and(|(c, _)| *c != codec) {
            tracing::warn!(dir = %self.dir.display(), "video codec changed to {}; writing a second file", codec.name());
            self.finish_video()?;
        }
        if self.video.is_none() {
            let file = match codec {
                VideoCodec::Av1 => {
                    let (w, h) = av1_dimensions(&frame.data).unwrap_or(self.video_size);
                    let f = create(&self.dir, "video.ivf")?;
                    let writer = IvfWriter::new(f, IvfHeader::av1_90khz(w, h)).map_err(rtp_err)?;
                    VideoFile::Ivf { writer, first_ts: None }
                }
                VideoCodec::H264 => VideoFile::AnnexB(AnnexBWriter::new(create(&self.dir, "video.h264")?)),
            };
            self.video = Some((codec, file));
        }
        match &mut self.video.as_mut().expect("set above").1 {
            VideoFile::Ivf { writer, first_ts } => {
                let first = *first_ts.get_or_insert(frame.timestamp);
                let pts = u64::from(frame.timestamp.wrapping_sub(first));
                writer.write_frame(pts, &frame.data).map_err(rtp_err)?;
            }
            VideoFile::AnnexB(w) => w.write_access_unit(&frame.data).map_err(rtp_err)?,
        }
        self.video_frames += 1;
        Ok(())
    }

    fn finish_video(&mut self) -> Result<()> {
        match self.video.take() {
            Some((_, VideoFile::Ivf { writer, .. })) => writer.finish_seekable().map(drop).map_err(rtp_err),
            Some((_, VideoFile::AnnexB(w))) => w.finish().map(drop).map_err(rtp_err),
            None => Ok(()),
        }
    }

    /// Video frames written.
    pub fn video_frames(&self) -> u64 {
        self.video_frames
    }

    /// The codec of the video file being written.
    pub fn video_codec(&self) -> Option<VideoCodec> {
        self.video.as_ref().map(|(c, _)| *c)
    }

    /// Opus packets written.
    pub fn audio_packets(&self) -> u64 {
        self.audio_packets
    }

    /// Finishes the files (the IVF header gets its frame count); the recorder can go on
    /// with new files afterwards.
    pub fn finish(&mut self) -> Result<()> {
        let video = self.finish_video();
        let audio = match self.audio.take() {
            Some(a) => a.finish().map(drop).map_err(rtp_err),
            None => Ok(()),
        };
        video.and(audio)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ts: u32, data: &[u8]) -> Frame {
        Frame { timestamp: ts, data: data.to_vec(), keyframe: false }
    }

    #[test]
    fn writes_h264_then_av1_and_opus_into_their_files() {
        let dir = std::env::temp_dir().join(format!("roomcast-recorder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut r = Recorder::new(&dir, 7, 1).with_video_size(64, 48);
        assert!(!dir.exists(), "nothing created before the first frame");
        let au = [0, 0, 1, 0x65, 0xaa, 0, 0, 1, 0x41, 0xbb];
        r.record(&ReceiverEvent::Video { codec: VideoCodec::H264, frame: frame(0, &au) }).unwrap();
        r.record(&ReceiverEvent::Audio { timestamp: 0, opus: vec![0xf8, 1, 2], pcm: vec![] }).unwrap();
        r.record(&ReceiverEvent::Video { codec: VideoCodec::Av1, frame: frame(3000, &[0x12, 0]) }).unwrap();
        r.record(&ReceiverEvent::Bye(super::super::receiver::StreamKind::Audio)).unwrap();
        assert_eq!((r.video_frames(), r.audio_packets(), r.video_codec()), (2, 1, Some(VideoCodec::Av1)));
        r.finish().unwrap();
        let h264 = std::fs::read(dir.join("video.h264")).unwrap();
        assert_eq!(h264, [0, 0, 0, 1, 0x65, 0xaa, 0, 0, 0, 1, 0x41, 0xbb], "4-byte start codes");
        let ivf = std::fs::read(dir.join("video.ivf")).unwrap();
        assert_eq!(&ivf[..4], b"DKIF");
        assert_eq!(u16::from_le_bytes([ivf[12], ivf[13]]), 64, "no sequence header: the given width");
        let ogg = std::fs::read(dir.join("audio.opus")).unwrap();
        assert_eq!(&ogg[..4], b"OggS");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
