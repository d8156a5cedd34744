//! `roomcast codec-check`: runs the V4L2 M2M stateful encoder and decoder on a machine's codec
//! (FWHT on the kernel's `vicodec`, H.264 on a Pi) with synthetic frames: encodes `--frames`
//! frames at `--size`, changes the resolution to `--resize` half way, decodes everything with
//! the M2M decoder, compares each decoded frame with its input (PSNR), checks FWHT headers, and
//! drains both (`V4L2_ENC_CMD_STOP`, `V4L2_DEC_CMD_STOP`). A device that vanishes midway ends
//! it with an error naming the device. Lines start with `codec-check:` for scripts and tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use roomcast_media::camera::synthetic::SyntheticCamera;
use roomcast_media::decode::fwht::FwhtHeader;
use roomcast_media::decode::m2m::{psnr_i420, DecodedFrame, StatefulDecoder};
use roomcast_media::encoder::m2m::linux::LinuxM2m;
use roomcast_media::encoder::m2m::{self, CodedFormat, CodedFrame, Role, StatefulEncoder};
use roomcast_media::encoder::EncoderConfig;
use roomcast_media::frame::VideoFrame;

/// Command-line arguments of `roomcast codec-check`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Encoder device (default: the first M2M encoder for `--format`).
    #[arg(long, value_name = "NODE")]
    device: Option<PathBuf>,
    /// Decoder device (default: the first M2M decoder for `--format`).
    #[arg(long, value_name = "NODE")]
    decoder: Option<PathBuf>,
    /// Coded format: fwht (vicodec) or h264.
    #[arg(long, default_value = "fwht", value_name = "CODEC")]
    format: CodedFormat,
    /// Frames to encode in all (half at `--size`, half at `--resize`).
    #[arg(long, default_value_t = 40, value_name = "COUNT")]
    frames: u64,
    /// First frame size, WxH (vicodec codes 640x360 and larger; 360 lines are padded to 368).
    #[arg(long, default_value = "640x360", value_parser = parse_size, value_name = "WxH")]
    size: (u32, u32),
    /// Size after the resolution change, WxH (712 pixels wide: lines padded to 720 by vicodec).
    #[arg(long, default_value = "712x400", value_parser = parse_size, value_name = "WxH")]
    resize: (u32, u32),
    /// Frames between key frames.
    #[arg(long, default_value_t = 10, value_name = "FRAMES")]
    gop: u32,
    /// Lowest PSNR (dB) a decoded frame may have.
    #[arg(long, default_value_t = 30.0, value_name = "DB")]
    min_psnr: f64,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once('x').ok_or("expected WxH")?;
    let w: u32 = w.parse().map_err(|_| "bad width")?;
    let h: u32 = h.parse().map_err(|_| "bad height")?;
    if w == 0 || h == 0 || w > 8192 || h > 8192 || !w.is_multiple_of(2) || !h.is_multiple_of(2) {
        return Err("width and height must be even, 2..8192".into());
    }
    Ok((w, h))
}

fn pick(given: &Option<PathBuf>, format: CodedFormat, role: Role) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.clone());
    }
    let all = m2m::probe_all(format, role);
    for p in &all {
        println!("codec-check: probe {} {}: {}", p.path, p.name, p.reason);
    }
    match all.into_iter().find(|p| p.usable) {
        Some(p) => Ok(PathBuf::from(p.path)),
        None => bail!("no M2M {format} {role:?} found among /dev/video*"),
    }
}

/// What the run saw.
#[derive(Default)]
struct Tally {
    encoded: u64,
    decoded: u64,
    keyframes: u64,
    header_errors: Vec<String>,
    /// Frames whose header says intra but V4L2's keyframe flag not (or the other way round).
    flag_mismatches: Vec<String>,
    intra_headers: u64,
    worst_psnr: f64,
    psnr_sum: f64,
    sizes_decoded: Vec<(u32, u32)>,
}

impl Tally {
    fn coded(&mut self, f: &CodedFrame, size: (u32, u32)) {
        self.encoded += 1;
        self.keyframes += u64::from(f.keyframe);
        if f.format != CodedFormat::Fwht {
            return;
        }
        match FwhtHeader::parse(&f.data) {
            Err(e) => self.header_errors.push(format!("frame {}: {e}", f.index)),
            Ok(h) => {
                if (h.width, h.height) != size {
                    self.header_errors
                        .push(format!("frame {}: header {}x{}, frame {size:?}", f.index, h.width, h.height));
                }
                if h.components() != 3 || !h.is_420() {
                    self.header_errors.push(format!(
                        "frame {}: {} components, flags {:#x}",
                        f.index,
                        h.components(),
                        h.flags
                    ));
                }
                if h.is_intra() != f.keyframe {
                    self.flag_mismatches.push(format!(
                        "frame {}: header intra {} but V4L2 keyframe flag {}",
                        f.index,
                        h.is_intra(),
                        f.keyframe
                    ));
                }
                self.intra_headers += u64::from(h.is_intra());
            }
        }
    }

    fn decoded(&mut self, d: DecodedFrame, inputs: &mut HashMap<u64, VideoFrame>) -> anyhow::Result<()> {
        let Some(input) = inputs.remove(&d.frame.index) else {
            bail!("decoded frame with timestamp {} matches no frame sent", d.frame.index);
        };
        let Some(psnr) = psnr_i420(&input, &d.frame) else {
            bail!(
                "frame {}: decoded {}x{}, sent {}x{}",
                d.frame.index,
                d.frame.width,
                d.frame.height,
                input.width,
                input.height
            );
        };
        if self.decoded == 0 || psnr < self.worst_psnr {
            self.worst_psnr = psnr;
        }
        self.psnr_sum += psnr;
        self.decoded += 1;
        let size = (d.frame.width, d.frame.height);
        if self.sizes_decoded.last() != Some(&size) {
            self.sizes_decoded.push(size);
        }
        Ok(())
    }
}

/// Runs `roomcast codec-check`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let enc_path = pick(&args.device, args.format, Role::Encoder)?;
    let dec_path = pick(&args.decoder, args.format, Role::Decoder)?;
    let started = Instant::now();
    let (w, h) = args.size;
    let mut config = EncoderConfig::new(w, h, 30);
    config.keyframe_interval = args.gop;
    let mut enc = StatefulEncoder::new(open(&enc_path)?, config, args.format).context("encoder setup")?;
    println!("codec-check: encoder {} ({}) {} {w}x{h}", enc_path.display(), enc.name(), args.format);
    print_raw(&enc);
    // Coded buffers big enough for the larger size (drivers size them from the hint).
    let (hw, hh) = if args.resize.0 * args.resize.1 > w * h { args.resize } else { args.size };
    let mut dec = StatefulDecoder::new(open(&dec_path)?, args.format, hw, hh).context("decoder setup")?;
    println!("codec-check: decoder {} ({})", dec_path.display(), dec.name());

    let mut tally = Tally::default();
    let mut inputs: HashMap<u64, VideoFrame> = HashMap::new();
    let mut sizes: HashMap<u64, (u32, u32)> = HashMap::new();
    let half = args.frames / 2;
    for i in 0..args.frames {
        if i == half && half > 0 {
            let (w2, h2) = args.resize;
            let drained = enc.reconfigure(w2, h2).context("encoder resolution change")?;
            feed(drained, &mut dec, &mut tally, &mut inputs, &sizes)?;
            println!("codec-check: resolution change {w}x{h} -> {w2}x{h2} after {i} frames");
            print_raw(&enc);
        }
        let (fw, fh) = (enc.config().width, enc.config().height);
        let frame = SyntheticCamera::render(fw, fh, i, Instant::now());
        inputs.insert(i, frame.clone());
        sizes.insert(i, (fw, fh));
        let coded = enc.encode_frame(&frame).with_context(|| format!("encoding frame {i}"))?;
        feed(coded, &mut dec, &mut tally, &mut inputs, &sizes)?;
        if (i + 1) % 25 == 0 {
            println!("codec-check: streaming, {} frames encoded, {} decoded", tally.encoded, tally.decoded);
        }
    }
    let (rest, enc_last) = enc.drain().context("encoder drain")?;
    feed(rest, &mut dec, &mut tally, &mut inputs, &sizes)?;
    for d in dec.poll_frames(std::time::Duration::from_millis(200)).context("decoding")? {
        tally.decoded(d, &mut inputs)?;
    }
    let (rest, dec_last) = dec.drain().context("decoder drain")?;
    for d in rest {
        tally.decoded(d, &mut inputs)?;
    }
    let stats = dec.stats().clone();
    let mean = if tally.decoded > 0 { tally.psnr_sum / tally.decoded as f64 } else { 0.0 };
    println!(
        "codec-check: encoded {} frames ({} key frames, {} intra FWHT headers), encoder drain LAST: {enc_last}",
        tally.encoded, tally.keyframes, tally.intra_headers
    );
    println!(
        "codec-check: decoded {} frames, PSNR mean {mean:.1} dB worst {:.1} dB, sizes {:?}, source changes {}, \
         decoder drain LAST: {dec_last}",
        tally.decoded, tally.worst_psnr, tally.sizes_decoded, stats.source_changes
    );
    println!("codec-check: {:.1} s", started.elapsed().as_secs_f64());
    let mut problems = tally.header_errors.clone();
    if args.format == CodedFormat::Fwht {
        if tally.intra_headers == 0 {
            problems.push("no intra frame among the FWHT headers".into());
        }
        // A driver that sets V4L2_BUF_FLAG_KEYFRAME at all must set it exactly on intra frames.
        if tally.keyframes == 0 {
            println!("codec-check: the driver flags no V4L2_BUF_FLAG_KEYFRAME; key frames known from FWHT headers");
        } else {
            problems.extend(tally.flag_mismatches.iter().cloned());
        }
    }
    if tally.encoded != args.frames {
        problems.push(format!("{} of {} frames came out of the encoder", tally.encoded, args.frames));
    }
    if tally.decoded != args.frames {
        problems.push(format!("{} of {} frames came out of the decoder", tally.decoded, args.frames));
    }
    if tally.decoded > 0 && tally.worst_psnr < args.min_psnr {
        problems.push(format!("worst PSNR {:.1} dB below {:.1}", tally.worst_psnr, args.min_psnr));
    }
    if !enc_last || !dec_last {
        problems.push(format!("drain without LAST buffer (encoder {enc_last}, decoder {dec_last})"));
    }
    if half > 0 && args.size != args.resize && tally.sizes_decoded.len() < 2 {
        problems.push(format!("the decoder never changed resolution: {:?}", tally.sizes_decoded));
    }
    for p in &problems {
        println!("codec-check: FAIL {p}");
    }
    if !problems.is_empty() {
        bail!("{} problem(s)", problems.len());
    }
    println!("codec-check: OK");
    Ok(())
}

/// Checks coded frames and decodes them.
fn feed(
    frames: Vec<CodedFrame>,
    dec: &mut StatefulDecoder<LinuxM2m>,
    tally: &mut Tally,
    inputs: &mut HashMap<u64, VideoFrame>,
    sizes: &HashMap<u64, (u32, u32)>,
) -> anyhow::Result<()> {
    for f in frames {
        tally.coded(&f, sizes.get(&f.index).copied().unwrap_or_default());
        for d in dec.decode(&f.data, f.index).context("decoding")? {
            tally.decoded(d, inputs)?;
        }
    }
    Ok(())
}

/// The raw buffer layout the encoder's driver chose (coded size, stride) around the frames.
fn print_raw(enc: &StatefulEncoder<LinuxM2m>) {
    let raw = enc.raw_format();
    let c = enc.config();
    println!(
        "codec-check: encoder OUTPUT {} {}x{} stride {} size {} for {}x{} frames",
        String::from_utf8_lossy(&raw.fourcc),
        raw.width,
        raw.height,
        raw.bytesperline,
        raw.sizeimage,
        c.width,
        c.height
    );
}

fn open(path: &Path) -> anyhow::Result<LinuxM2m> {
    LinuxM2m::open(path).with_context(|| format!("opening {}", path.display()))
}
