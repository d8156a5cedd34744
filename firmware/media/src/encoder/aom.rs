//! Software AV1 encoding with libaom in its real-time mode (`AOM_USAGE_REALTIME`): no lag
//! (every frame comes out of the call that took it: zero frames held), one-pass CBR with the
//! quantizer range fully open, cyclic-refresh AQ, row multithreading and one tile column per
//! thread, and the tools real-time encoding skips (global/warped motion, OBMC, TPL) off.
//!
//! Bindings: the `aom-sys` crate (bindgen against the system's libaom headers at build time,
//! so they match Debian 12's libaom 3.6 exactly). `speed` is the board's rav1e preset
//! (0..=10); libaom's cpu-used is `speed - 2` clamped to 6..=10 (boards' 10 gives cpu-used 8).
//!
//! The bitrate changes on the running encoder (`aom_codec_enc_config_set`), without a keyframe.

use std::collections::VecDeque;
use std::ffi::CStr;
use std::os::raw::{c_int, c_uint};
use std::time::Instant;

use aom_sys as sys;

use super::{EncodedFrame, EncoderConfig, VideoCodec, VideoEncoder};
use crate::error::{MediaError, Result};
use crate::frame::VideoFrame;

const NAME: &str = "libaom";

/// The encoder ABI of the headers the bindings were generated from (29 for libaom 3.6).
const ENCODER_ABI_VERSION: c_int = sys::AOM_ENCODER_ABI_VERSION as c_int;

/// The libaom real-time AV1 encoder.
pub struct AomEncoder {
    config: EncoderConfig,
    ctx: Box<sys::aom_codec_ctx_t>,
    cfg: sys::aom_codec_enc_cfg_t,
    /// (capture index, capture time) of frames sent and not yet returned, in order.
    pending: VecDeque<(u64, Instant)>,
    keyframe_requested: bool,
    cpu_used: c_int,
}

// SAFETY: the libaom context is plain heap state without thread affinity; `AomEncoder` owns it
// exclusively and every use goes through `&mut self`.
unsafe impl Send for AomEncoder {}

fn check(ctx: &mut sys::aom_codec_ctx_t, err: sys::aom_codec_err_t::Type, what: &str) -> Result<()> {
    if err == sys::aom_codec_err_t::AOM_CODEC_OK {
        return Ok(());
    }
    // SAFETY: libaom returns static or context-owned NUL-terminated strings (or NULL).
    let text = |p: *const std::os::raw::c_char| {
        if p.is_null() {
            String::new()
        } else {
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    let detail = text(unsafe { sys::aom_codec_error_detail(ctx) });
    let message = text(unsafe { sys::aom_codec_err_to_string(err) });
    Err(MediaError::encoder(NAME, format!("{what}: {message} {detail}").trim_end().to_string()))
}

fn validate(config: &EncoderConfig) -> Result<()> {
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
    Ok(())
}

/// log2 of the tile columns for `threads` (one column per thread, at most what the width allows:
/// AV1 tiles are at least 256 pixels wide).
fn tile_columns_log2(threads: usize, width: u32) -> c_uint {
    let max_cols = (width / 256).max(1) as usize;
    let cols = threads.clamp(1, max_cols);
    usize::BITS - 1 - cols.leading_zeros()
}

impl AomEncoder {
    /// A new encoder.
    pub fn new(config: EncoderConfig) -> Result<Self> {
        validate(&config)?;
        // SAFETY: zeroed is a valid bit pattern for these plain C structs; libaom fills them.
        let mut cfg: sys::aom_codec_enc_cfg_t = unsafe { std::mem::zeroed() };
        let mut ctx: Box<sys::aom_codec_ctx_t> = Box::new(unsafe { std::mem::zeroed() });
        let iface = unsafe { sys::aom_codec_av1_cx() };
        let err = unsafe { sys::aom_codec_enc_config_default(iface, &mut cfg, sys::AOM_USAGE_REALTIME) };
        check(&mut ctx, err, "default configuration")?;
        cfg.g_w = config.width;
        cfg.g_h = config.height;
        cfg.g_timebase = sys::aom_rational { num: 1, den: config.fps as c_int };
        cfg.g_threads = config.threads.clamp(1, 64) as c_uint;
        cfg.g_lag_in_frames = 0;
        cfg.g_pass = sys::aom_enc_pass::AOM_RC_ONE_PASS;
        cfg.g_error_resilient = 0;
        cfg.rc_end_usage = sys::aom_rc_mode::AOM_CBR;
        cfg.rc_target_bitrate = (config.bitrate_bps / 1000).max(1);
        // The whole quantizer range (the default realtime cap would overshoot on noisy content).
        cfg.rc_min_quantizer = 0;
        cfg.rc_max_quantizer = 63;
        // Every frame is coded: the pipeline's timestamps count frames.
        cfg.rc_dropframe_thresh = 0;
        cfg.rc_undershoot_pct = 50;
        cfg.rc_overshoot_pct = 50;
        // A one-second buffer, starting 60 % full (libaom's real-time example values).
        cfg.rc_buf_sz = 1000;
        cfg.rc_buf_initial_sz = 600;
        cfg.rc_buf_optimal_sz = 600;
        cfg.kf_mode = sys::aom_kf_mode::AOM_KF_AUTO;
        cfg.kf_min_dist = 0;
        cfg.kf_max_dist = config.keyframe_interval.max(1);
        let err = unsafe { sys::aom_codec_enc_init_ver(&mut *ctx, iface, &cfg, 0, ENCODER_ABI_VERSION) };
        check(&mut ctx, err, "init")?;
        let cpu_used = (config.speed as c_int - 2).clamp(6, 10);
        let mut enc = AomEncoder { config, ctx, cfg, pending: VecDeque::new(), keyframe_requested: false, cpu_used };
        enc.controls()?;
        tracing::debug!(?config, cpu_used, "libaom encoder created");
        Ok(enc)
    }

    fn control(&mut self, id: sys::aome_enc_control_id::Type, value: c_int, what: &str) -> Result<()> {
        // SAFETY: every control set here takes one int (or unsigned int) argument.
        let err = unsafe { sys::aom_codec_control(&mut *self.ctx, id as c_int, value) };
        check(&mut self.ctx, err, what)
    }

    fn controls(&mut self) -> Result<()> {
        use sys::aome_enc_control_id as id;
        let tiles = tile_columns_log2(self.config.threads, self.config.width) as c_int;
        self.control(id::AOME_SET_CPUUSED, self.cpu_used, "cpu-used")?;
        self.control(id::AV1E_SET_ROW_MT, 1, "row-mt")?;
        self.control(id::AV1E_SET_TILE_COLUMNS, tiles, "tile columns")?;
        self.control(id::AV1E_SET_AQ_MODE, 3, "cyclic refresh AQ")?;
        self.control(id::AV1E_SET_ENABLE_TPL_MODEL, 0, "TPL off")?;
        self.control(id::AV1E_SET_ENABLE_GLOBAL_MOTION, 0, "global motion off")?;
        self.control(id::AV1E_SET_ENABLE_WARPED_MOTION, 0, "warped motion off")?;
        self.control(id::AV1E_SET_ENABLE_OBMC, 0, "OBMC off")?;
        self.control(id::AV1E_SET_DELTAQ_MODE, 0, "delta-q off")?;
        self.control(id::AV1E_SET_COEFF_COST_UPD_FREQ, 3, "coefficient cost updates off")?;
        self.control(id::AV1E_SET_MODE_COST_UPD_FREQ, 3, "mode cost updates off")?;
        self.control(id::AV1E_SET_MV_COST_UPD_FREQ, 3, "MV cost updates off")?;
        // Keyframes at most 3x a frame's share of the bitrate, so they fit the buffer.
        self.control(id::AOME_SET_MAX_INTRA_BITRATE_PCT, 300, "max intra bitrate")?;
        Ok(())
    }

    /// The current configuration.
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    fn drain(&mut self, out: &mut Vec<EncodedFrame>) {
        let mut iter: sys::aom_codec_iter_t = std::ptr::null();
        loop {
            // SAFETY: the packet stays valid until the next get_cx_data/encode call; copied now.
            let pkt = unsafe { sys::aom_codec_get_cx_data(&mut *self.ctx, &mut iter) };
            if pkt.is_null() {
                return;
            }
            let pkt = unsafe { &*pkt };
            if pkt.kind != sys::aom_codec_cx_pkt_kind::AOM_CODEC_CX_FRAME_PKT {
                continue;
            }
            let frame = unsafe { pkt.data.frame };
            let data = if frame.buf.is_null() || frame.sz == 0 {
                Vec::new()
            } else {
                unsafe { std::slice::from_raw_parts(frame.buf as *const u8, frame.sz) }.to_vec()
            };
            let (index, captured_at) = self.pending.pop_front().unwrap_or((frame.pts as u64, Instant::now()));
            out.push(EncodedFrame {
                codec: VideoCodec::Av1,
                data,
                keyframe: frame.flags & sys::AOM_FRAME_IS_KEY != 0,
                index,
                captured_at,
            });
        }
    }
}

impl Drop for AomEncoder {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe { sys::aom_codec_destroy(&mut *self.ctx) };
    }
}

impl VideoEncoder for AomEncoder {
    fn codec(&self) -> VideoCodec {
        VideoCodec::Av1
    }
    fn describe(&self) -> String {
        format!(
            "libaom AV1 real-time cpu-used {}, {} thread(s), {} kbit/s",
            self.cpu_used,
            self.config.threads,
            self.config.bitrate_bps / 1000
        )
    }
    fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<EncodedFrame>> {
        self.config.check_i420_frame(NAME, frame)?;
        // SAFETY: aom_img_wrap only records pointers into `frame.data` (tightly packed I420, the
        // layout it computes with alignment 1); libaom reads them during aom_codec_encode only.
        let mut img: sys::aom_image_t = unsafe { std::mem::zeroed() };
        let wrapped = unsafe {
            sys::aom_img_wrap(
                &mut img,
                sys::aom_img_fmt::AOM_IMG_FMT_I420,
                frame.width,
                frame.height,
                1,
                frame.data.as_ptr() as *mut u8,
            )
        };
        if wrapped.is_null() {
            return Err(MediaError::encoder(NAME, "cannot wrap the frame"));
        }
        let flags = if std::mem::take(&mut self.keyframe_requested) { sys::AOM_EFLAG_FORCE_KF as i64 } else { 0 };
        self.pending.push_back((frame.index, frame.captured_at));
        let err = unsafe { sys::aom_codec_encode(&mut *self.ctx, &img, frame.index as i64, 1, flags) };
        check(&mut self.ctx, err, "encode")?;
        let mut out = Vec::new();
        self.drain(&mut out);
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
            self.cfg.rc_target_bitrate = bitrate_bps / 1000;
            let err = unsafe { sys::aom_codec_enc_config_set(&mut *self.ctx, &self.cfg) };
            check(&mut self.ctx, err, "bitrate change")?;
            self.config.bitrate_bps = bitrate_bps;
            tracing::info!(bitrate_bps, "libaom bitrate changed");
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<Vec<EncodedFrame>> {
        let mut out = Vec::new();
        if !self.pending.is_empty() {
            let err = unsafe { sys::aom_codec_encode(&mut *self.ctx, std::ptr::null(), -1, 1, 0) };
            check(&mut self.ctx, err, "flush")?;
            self.drain(&mut out);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
