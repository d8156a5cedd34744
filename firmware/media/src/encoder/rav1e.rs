//! Software AV1 encoding with rav1e, tuned for real time: low-latency mode (no frame
//! reordering), one frame of RDO lookahead (the encoder then holds 4 frames: its minimum), scene detection off, a speed preset per board
//! (10 on a Pi, see `board/`), a thread count (with one tile per thread, which is what rav1e
//! parallelises), and single-pass bitrate control with the quantizer range fully open (rav1e's
//! default `quantizer` 100 is a hard maximum in bitrate mode) and a one-second reservoir.
//!
//! A keyframe on request is a per-frame type override. rav1e cannot change the bitrate of a
//! running context, so [`Rav1eEncoder::set_bitrate`] drains the current context and starts a
//! new one at the new rate (which begins with a keyframe): a bitrate change costs one keyframe.

use std::collections::VecDeque;
use std::time::Instant;

use rav1e::prelude::*;

use super::{EncodedFrame, EncoderConfig, VideoCodec, VideoEncoder};
use crate::error::{MediaError, Result};
use crate::frame::VideoFrame;

const NAME: &str = "rav1e";

/// The rav1e AV1 encoder.
pub struct Rav1eEncoder {
    config: EncoderConfig,
    ctx: Context<u8>,
    /// (capture index, capture time) of frames sent and not yet returned, in order.
    pending: VecDeque<(u64, Instant)>,
    keyframe_requested: bool,
    new_bitrate: Option<u32>,
}

fn rav1e_config(config: &EncoderConfig) -> Result<Config> {
    if config.width < 16 || config.height < 16 || config.width % 2 != 0 || config.height % 2 != 0 {
        return Err(MediaError::encoder(
            NAME,
            format!("size {}x{} must be even and >= 16", config.width, config.height),
        ));
    }
    if config.fps == 0 || config.bitrate_bps < 10_000 {
        return Err(MediaError::encoder(
            NAME,
            format!("fps {} / bitrate {} out of range", config.fps, config.bitrate_bps),
        ));
    }
    let mut enc = rav1e::config::EncoderConfig::with_speed_preset(config.speed.min(10));
    enc.width = config.width as usize;
    enc.height = config.height as usize;
    enc.time_base = Rational::new(1, config.fps as u64);
    enc.bitrate = config.bitrate_bps.min(i32::MAX as u32) as i32;
    // In bitrate mode rav1e reads `quantizer` as the *maximum* base quantizer (default 100):
    // camera content at 720p then cannot get below ~8x the target. 255 lifts the cap. The
    // minimum is 1, not rav1e's 0: only a nonzero minimum clamps the quantizer its rate control
    // extrapolates when a static scene spends far less than the target; unclamped, that estimate
    // overflows rav1e's fixed-point arithmetic a few frames later (see the test
    // `static_pictures_and_targets_above_raw_keep_the_rate_control_in_range`).
    enc.quantizer = 255;
    enc.min_quantizer = 1;
    // The rate-control buffer: one second of frames (rav1e's minimum is 12), instead of 1.5
    // keyframe intervals, so the rate holds over the span a network path buffers.
    enc.reservoir_frame_delay = Some(config.fps.clamp(12, 240) as i32);
    enc.low_latency = true;
    enc.set_key_frame_interval(0, config.keyframe_interval.max(1) as u64);
    enc.speed_settings.rdo_lookahead_frames = 1;
    enc.speed_settings.scene_detection_mode = SceneDetectionSpeed::None;
    // rav1e works in parallel on tiles (frames are not pipelined in low-latency mode): one tile
    // per thread, or extra threads would idle.
    enc.tiles = config.threads.max(1);
    let cfg = Config::new().with_encoder_config(enc).with_threads(config.threads.max(1));
    cfg.validate().map_err(|e| MediaError::encoder(NAME, format!("invalid configuration: {e}")))?;
    Ok(cfg)
}

impl Rav1eEncoder {
    /// A new encoder.
    pub fn new(config: EncoderConfig) -> Result<Self> {
        let ctx = rav1e_config(&config)?
            .new_context()
            .map_err(|e| MediaError::encoder(NAME, format!("cannot create context: {e}")))?;
        tracing::debug!(?config, "rav1e encoder created");
        Ok(Rav1eEncoder { config, ctx, pending: VecDeque::new(), keyframe_requested: false, new_bitrate: None })
    }

    /// The current configuration.
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    fn drain(&mut self, out: &mut Vec<EncodedFrame>) -> Result<()> {
        loop {
            match self.ctx.receive_packet() {
                Ok(packet) => {
                    let (index, captured_at) =
                        self.pending.pop_front().unwrap_or((packet.input_frameno, Instant::now()));
                    out.push(EncodedFrame {
                        codec: VideoCodec::Av1,
                        data: packet.data,
                        keyframe: packet.frame_type == FrameType::KEY,
                        index,
                        captured_at,
                    });
                }
                Err(EncoderStatus::Encoded) => continue,
                Err(EncoderStatus::NeedMoreData) | Err(EncoderStatus::LimitReached) => return Ok(()),
                Err(e) => return Err(MediaError::encoder(NAME, format!("receive_packet: {e}"))),
            }
        }
    }

    fn restart_with_bitrate(&mut self, bitrate: u32, out: &mut Vec<EncodedFrame>) -> Result<()> {
        let mut config = self.config;
        config.bitrate_bps = bitrate;
        let new_ctx = rav1e_config(&config)?
            .new_context()
            .map_err(|e| MediaError::encoder(NAME, format!("cannot create context: {e}")))?;
        self.ctx.flush();
        self.drain(out)?;
        self.ctx = new_ctx;
        self.config = config;
        self.pending.clear();
        tracing::info!(bitrate, "rav1e restarted at new bitrate");
        Ok(())
    }
}

impl VideoEncoder for Rav1eEncoder {
    fn codec(&self) -> VideoCodec {
        VideoCodec::Av1
    }
    fn describe(&self) -> String {
        format!(
            "rav1e AV1 speed {}, {} thread(s), {} kbit/s",
            self.config.speed,
            self.config.threads,
            self.config.bitrate_bps / 1000
        )
    }
    fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<EncodedFrame>> {
        self.config.check_i420_frame(NAME, frame)?;
        let mut out = Vec::new();
        if let Some(bitrate) = self.new_bitrate.take() {
            self.restart_with_bitrate(bitrate, &mut out)?;
        }
        let mut f = self.ctx.new_frame();
        let (y, u, v) = frame.planes();
        let (w, h) = (frame.width as usize, frame.height as usize);
        let (cw, _) = frame.chroma_size();
        f.planes[0].copy_from_raw_u8(y, w, 1);
        f.planes[1].copy_from_raw_u8(u, cw, 1);
        f.planes[2].copy_from_raw_u8(v, cw, 1);
        let _ = h;
        let params = FrameParameters {
            frame_type_override: if std::mem::take(&mut self.keyframe_requested) {
                FrameTypeOverride::Key
            } else {
                FrameTypeOverride::No
            },
            opaque: None,
            t35_metadata: Box::new([]),
        };
        self.pending.push_back((frame.index, frame.captured_at));
        self.ctx.send_frame((f, params)).map_err(|e| MediaError::encoder(NAME, format!("send_frame: {e}")))?;
        self.drain(&mut out)?;
        Ok(out)
    }
    fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }
    fn set_bitrate(&mut self, bitrate_bps: u32) -> Result<()> {
        if bitrate_bps < 10_000 {
            return Err(MediaError::encoder(NAME, format!("bitrate {bitrate_bps} bit/s too low")));
        }
        if bitrate_bps != self.config.bitrate_bps {
            self.new_bitrate = Some(bitrate_bps);
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<Vec<EncodedFrame>> {
        self.ctx.flush();
        let mut out = Vec::new();
        self.drain(&mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::synthetic::SyntheticCamera;

    fn encode_n(enc: &mut Rav1eEncoder, n: u64, keyframe_at: Option<u64>) -> Vec<EncodedFrame> {
        let mut out = Vec::new();
        for i in 0..n {
            if keyframe_at == Some(i) {
                enc.request_keyframe();
            }
            out.extend(enc.encode(&SyntheticCamera::render(64, 48, i, Instant::now())).unwrap());
        }
        out.extend(enc.flush().unwrap());
        out
    }

    #[test]
    fn encodes_every_frame_in_order_with_keyframe_on_request() {
        let mut cfg = EncoderConfig::new(64, 48, 30);
        cfg.keyframe_interval = 1000;
        cfg.bitrate_bps = 200_000;
        let mut enc = Rav1eEncoder::new(cfg).unwrap();
        let out = encode_n(&mut enc, 8, Some(5));
        assert_eq!(out.iter().map(|f| f.index).collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
        let keys: Vec<u64> = out.iter().filter(|f| f.keyframe).map(|f| f.index).collect();
        assert_eq!(keys, vec![0, 5]);
        // Temporal delimiter OBU (type 2, has_size) opens each temporal unit.
        assert!(out.iter().all(|f| f.data.starts_with(&[0x12, 0x00])));
        assert_eq!(enc.codec(), VideoCodec::Av1);
    }

    #[test]
    fn output_starts_before_the_end_of_stream() {
        let mut cfg = EncoderConfig::new(64, 48, 30);
        cfg.bitrate_bps = 200_000;
        let mut enc = Rav1eEncoder::new(cfg).unwrap();
        let mut got = 0;
        for i in 0..10 {
            got += enc.encode(&SyntheticCamera::render(64, 48, i, Instant::now())).unwrap().len();
        }
        // rav1e's pipeline holds the keyframe lookahead plus rdo_lookahead_frames + 1 frames:
        // with lookahead 1 that is a delay of 4 frames, no more.
        assert!(got >= 6, "low-latency mode must emit frames while running, got {got} of 10");
    }

    #[test]
    fn bitrate_change_restarts_with_keyframe_and_loses_nothing() {
        let mut cfg = EncoderConfig::new(64, 48, 30);
        cfg.keyframe_interval = 1000;
        let mut enc = Rav1eEncoder::new(cfg).unwrap();
        let mut out = Vec::new();
        for i in 0..10u64 {
            if i == 4 {
                enc.set_bitrate(300_000).unwrap();
            }
            out.extend(enc.encode(&SyntheticCamera::render(64, 48, i, Instant::now())).unwrap());
        }
        out.extend(enc.flush().unwrap());
        assert_eq!(out.iter().map(|f| f.index).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
        assert!(out.iter().find(|f| f.index == 4).unwrap().keyframe);
        assert_eq!(enc.config().bitrate_bps, 300_000);
        assert!(enc.set_bitrate(5).is_err());
    }

    /// rav1e 0.8.1's one-pass rate control, when the encoder spends far less than the target
    /// (a static picture, or a target above what the picture can absorb: the reservoir would
    /// overflow), extrapolates the quantizer below its range (rate.rs:990 soft limit); with
    /// `min_quantizer` 0 nothing clamps it, the next frame's scale estimate goes out of range and
    /// the i64 arithmetic overflows (a panic in debug at rate.rs:990 or 1116, garbage in release;
    /// upstream xiph/rav1e#2255, still open). A floor of 1 turns on rav1e's own lower clamp.
    #[test]
    fn static_pictures_and_targets_above_raw_keep_the_rate_control_in_range() {
        for (w, h, bitrate, gray) in
            [(640, 360, 1_000_000, true), (64, 48, 1_000_000, false), (64, 48, 1_000_000, true)]
        {
            let mut cfg = EncoderConfig::new(w, h, 20);
            cfg.bitrate_bps = bitrate;
            let mut enc = Rav1eEncoder::new(cfg).unwrap();
            let mut coded = 0;
            for i in 0..120 {
                let mut f = SyntheticCamera::render(w, h, i, Instant::now());
                if gray {
                    f.data.fill(128);
                }
                coded += enc.encode(&f).unwrap().len();
            }
            coded += enc.flush().unwrap().len();
            assert_eq!(coded, 120, "{w}x{h} at {bitrate} bit/s, gray {gray}");
        }
    }

    #[test]
    fn rejects_wrong_frame_size_and_odd_sizes() {
        let mut enc = Rav1eEncoder::new(EncoderConfig::new(64, 48, 30)).unwrap();
        assert!(enc.encode(&SyntheticCamera::render(32, 48, 0, Instant::now())).is_err());
        assert!(Rav1eEncoder::new(EncoderConfig::new(63, 48, 30)).is_err());
    }
}
