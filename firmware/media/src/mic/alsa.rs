//! A Linux ALSA microphone: 48 kHz, S16 or S32 (converted to 16 bit), mono or stereo (the
//! device's other channel count is converted), period sized for 20 ms. An overrun (xrun) is
//! recovered with `snd_pcm_recover` and logged (at most every [`XRUN_LOG_INTERVAL`], with the
//! count since: a starved CPU overruns several times a second); when the device fails or
//! vanishes, silence is delivered at the real rate while the device is reopened every second.

use std::time::{Duration, Instant};

use alsa::pcm::{Access, Format, HwParams, PCM};
use alsa::{Direction, ValueOr};

use super::Microphone;
use crate::error::{MediaError, Result};
use crate::frame::{AudioFrame, AUDIO_FRAME_SAMPLES, AUDIO_RATE};

/// A capture device ALSA knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MicInfo {
    /// ALSA name to open (e.g. `hw:CARD=Loopback,DEV=1`).
    pub name: String,
    /// Description.
    pub description: String,
}

/// ALSA capture devices (from the device-name hints: `hw:`, `plughw:`, `default`, ...).
pub fn list_microphones() -> Vec<MicInfo> {
    let Ok(hints) = alsa::device_name::HintIter::new_str(None, "pcm") else { return vec![] };
    hints
        .filter(|h| h.direction != Some(Direction::Playback))
        .filter_map(|h| {
            let name = h.name?;
            Some(MicInfo { name, description: h.desc.unwrap_or_default().replace('\n', " ") })
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SampleFormat {
    S16,
    S32,
}

struct Device {
    pcm: PCM,
    format: SampleFormat,
    channels: u32,
}

fn alsa_err<'a>(device: &'a str, what: &'static str) -> impl Fn(alsa::Error) -> MediaError + 'a {
    move |e| MediaError::Alsa { device: device.to_string(), what, message: e.to_string() }
}

fn open_device(name: &str, want_channels: u8) -> Result<Device> {
    let pcm = PCM::new(name, Direction::Capture, false).map_err(alsa_err(name, "open"))?;
    let (format, channels) = {
        let hw = HwParams::any(&pcm).map_err(alsa_err(name, "hw params"))?;
        hw.set_access(Access::RWInterleaved).map_err(alsa_err(name, "interleaved access"))?;
        let format = if hw.test_format(Format::s16()).is_ok() {
            hw.set_format(Format::s16()).map_err(alsa_err(name, "S16"))?;
            SampleFormat::S16
        } else {
            hw.set_format(Format::s32()).map_err(alsa_err(name, "S16 or S32 format"))?;
            SampleFormat::S32
        };
        let channels = if hw.test_channels(want_channels as u32).is_ok() {
            want_channels as u32
        } else if hw.test_channels(2).is_ok() {
            2
        } else {
            1
        };
        hw.set_channels(channels).map_err(alsa_err(name, "channels"))?;
        hw.set_rate(AUDIO_RATE, ValueOr::Nearest).map_err(alsa_err(name, "48 kHz rate"))?;
        hw.set_period_size_near(AUDIO_FRAME_SAMPLES as alsa::pcm::Frames, ValueOr::Nearest)
            .map_err(alsa_err(name, "period size"))?;
        hw.set_buffer_size_near(AUDIO_FRAME_SAMPLES as alsa::pcm::Frames * 4).map_err(alsa_err(name, "buffer size"))?;
        pcm.hw_params(&hw).map_err(alsa_err(name, "apply hw params"))?;
        (format, channels)
    };
    let rate = pcm.hw_params_current().and_then(|h| h.get_rate()).map_err(alsa_err(name, "read rate"))?;
    if rate != AUDIO_RATE {
        return Err(MediaError::Alsa {
            device: name.into(),
            what: "rate",
            message: format!("device runs at {rate} Hz, need 48000 (use plughw:)"),
        });
    }
    pcm.start().ok();
    tracing::info!(device = name, ?format, channels, "microphone open");
    Ok(Device { pcm, format, channels })
}

/// Overruns are logged at most this often (the first at once).
pub const XRUN_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The ALSA microphone.
pub struct AlsaMic {
    name: String,
    channels: u8,
    dev: Option<Device>,
    next_sample: u64,
    xruns: u64,
    /// When an overrun was last logged, and `xruns` then.
    xrun_logged: Option<(Instant, u64)>,
    lost_since: Option<Instant>,
    next_retry: Instant,
    silence_clock: Option<Instant>,
    raw16: Vec<i16>,
    raw32: Vec<i32>,
}

impl AlsaMic {
    /// Opens an ALSA capture device for `channels` (1 or 2) output channels.
    pub fn open(name: &str, channels: u8) -> Result<Self> {
        if !(1..=2).contains(&channels) {
            return Err(MediaError::Config(format!("microphone: {channels} channels (1 or 2)")));
        }
        let dev = open_device(name, channels)?;
        Ok(AlsaMic {
            name: name.to_string(),
            channels,
            dev: Some(dev),
            next_sample: 0,
            xruns: 0,
            xrun_logged: None,
            lost_since: None,
            next_retry: Instant::now(),
            silence_clock: None,
            raw16: Vec::new(),
            raw32: Vec::new(),
        })
    }

    /// Overruns recovered so far.
    pub fn xruns(&self) -> u64 {
        self.xruns
    }

    fn frame(&mut self, samples: Vec<i16>, captured_at: Instant) -> AudioFrame {
        let first = self.next_sample;
        self.next_sample += AUDIO_FRAME_SAMPLES as u64;
        AudioFrame { channels: self.channels, samples, first_sample: first, captured_at }
    }

    fn silence(&mut self) -> AudioFrame {
        let now = Instant::now();
        let due = *self.silence_clock.get_or_insert(now) + Duration::from_millis(20);
        if due > now {
            std::thread::sleep(due - now);
        }
        self.silence_clock = Some(due.max(now - Duration::from_millis(100)));
        let n = AUDIO_FRAME_SAMPLES * self.channels as usize;
        self.frame(vec![0; n], due - Duration::from_millis(20))
    }

    fn read_period(&mut self) -> std::result::Result<Vec<i16>, alsa::Error> {
        let Some(dev) = self.dev.as_ref() else { return Ok(vec![]) };
        let dev_ch = dev.channels as usize;
        let mut got = 0usize;
        let total = AUDIO_FRAME_SAMPLES;
        let mut interleaved = vec![0i16; total * dev_ch];
        while got < total {
            let n = match dev.format {
                SampleFormat::S16 => {
                    self.raw16.resize((total - got) * dev_ch, 0);
                    let io = dev.pcm.io_i16()?;
                    let n = io.readi(&mut self.raw16)?;
                    interleaved[got * dev_ch..(got + n) * dev_ch].copy_from_slice(&self.raw16[..n * dev_ch]);
                    n
                }
                SampleFormat::S32 => {
                    self.raw32.resize((total - got) * dev_ch, 0);
                    let io = dev.pcm.io_i32()?;
                    let n = io.readi(&mut self.raw32)?;
                    for (d, s) in interleaved[got * dev_ch..(got + n) * dev_ch].iter_mut().zip(&self.raw32) {
                        *d = (*s >> 16) as i16;
                    }
                    n
                }
            };
            got += n;
        }
        Ok(convert_channels(&interleaved, dev_ch, self.channels as usize))
    }
}

/// Converts interleaved PCM between channel counts (stereo -> mono averages, mono -> stereo
/// duplicates, more channels: the first one or two are kept).
pub fn convert_channels(input: &[i16], from: usize, to: usize) -> Vec<i16> {
    if from == to || from == 0 {
        return input.to_vec();
    }
    input
        .chunks_exact(from)
        .flat_map(|f| -> Vec<i16> {
            match (from, to) {
                (_, 1) if from >= 2 => vec![((f[0] as i32 + f[1] as i32) / 2) as i16],
                (1, 2) => vec![f[0], f[0]],
                (_, 2) => vec![f[0], f[1]],
                _ => vec![f[0]],
            }
        })
        .collect()
}

impl Microphone for AlsaMic {
    fn describe(&self) -> String {
        format!("ALSA {} ({} channel(s))", self.name, self.channels)
    }
    fn channels(&self) -> u8 {
        self.channels
    }
    fn is_lost(&self) -> bool {
        self.dev.is_none()
    }
    fn capture(&mut self) -> Result<AudioFrame> {
        if self.dev.is_none() && Instant::now() >= self.next_retry {
            self.next_retry = Instant::now() + Duration::from_secs(1);
            match open_device(&self.name, self.channels) {
                Ok(d) => {
                    tracing::info!(device = %self.name, "microphone is back");
                    self.dev = Some(d);
                    self.lost_since = None;
                    self.silence_clock = None;
                }
                Err(e) => tracing::debug!("microphone reopen failed: {e}"),
            }
        }
        if self.dev.is_none() {
            return Ok(self.silence());
        }
        for _attempt in 0..3 {
            let started = Instant::now();
            match self.read_period() {
                Ok(samples) => {
                    let captured_at = started.checked_sub(Duration::from_millis(20)).unwrap_or(started);
                    return Ok(self.frame(samples, captured_at));
                }
                Err(e) if e.errno() == libc::EPIPE || e.errno() == libc::ESTRPIPE => {
                    self.xruns += 1;
                    let now = Instant::now();
                    match self.xrun_logged {
                        Some((at, _)) if now < at + XRUN_LOG_INTERVAL => {}
                        last => {
                            let since = self.xruns - last.map_or(0, |(_, n)| n);
                            tracing::warn!(device = %self.name, xruns = self.xruns, since_last_log = since, "capture overrun, recovering");
                            self.xrun_logged = Some((now, self.xruns));
                        }
                    }
                    if let Some(dev) = self.dev.as_ref() {
                        if dev.pcm.try_recover(e, true).is_err() {
                            break;
                        }
                        dev.pcm.start().ok();
                    }
                }
                Err(e) => {
                    tracing::warn!(device = %self.name, "microphone lost ({e}); sending silence, retrying every second");
                    break;
                }
            }
        }
        self.dev = None;
        self.lost_since.get_or_insert_with(Instant::now);
        self.next_retry = Instant::now() + Duration::from_secs(1);
        Ok(self.silence())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_conversion() {
        assert_eq!(convert_channels(&[100, 200, -100, -300], 2, 1), vec![150, -200]);
        assert_eq!(convert_channels(&[1, 2], 1, 2), vec![1, 1, 2, 2]);
        assert_eq!(convert_channels(&[1, 2, 3, 4, 5, 6], 3, 2), vec![1, 2, 4, 5]);
        assert_eq!(convert_channels(&[7, 8], 2, 2), vec![7, 8]);
    }

    #[test]
    fn missing_device_is_a_clear_error() {
        let e = AlsaMic::open("hw:CARD=NoSuchCard,DEV=0", 1).err().expect("no such card");
        assert!(e.to_string().contains("NoSuchCard"), "{e}");
        assert!(AlsaMic::open("default", 3).is_err());
    }

    #[test]
    fn captures_20ms_frames_from_alsa_lib_null_device() {
        // alsa-lib's `null` PCM (alsa.conf) gives zero samples: the real open/hw-params/read path.
        let mut mic = AlsaMic::open("null", 2).expect("alsa-lib null device");
        for i in 0..3u64 {
            let f = mic.capture().unwrap();
            assert_eq!(f.samples.len(), 1920);
            assert_eq!(f.first_sample, i * 960);
            assert!(f.samples.iter().all(|&s| s == 0));
        }
        assert!(!mic.is_lost());
        assert_eq!(mic.xruns(), 0);
    }

    #[test]
    fn listing_never_panics() {
        for m in list_microphones() {
            assert!(!m.name.is_empty());
        }
    }
}
