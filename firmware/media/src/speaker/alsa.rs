//! [`AlsaSpeaker`]: the ALSA playback device, 48 kHz mono S16, 20 ms periods; an xrun or
//! suspend is recovered, a lost device is reopened every 2 s (the pace kept meanwhile).

use std::time::{Duration, Instant};

use super::{NullSpeaker, Speaker};
use crate::error::{MediaError, Result};
use crate::mixer::FRAME;

/// An ALSA playback device.
pub struct AlsaSpeaker {
    name: String,
    pcm: Option<alsa::PCM>,
    fallback: NullSpeaker,
    retry_at: Option<Instant>,
}

impl AlsaSpeaker {
    /// Opens `name` (e.g. "default", "hw:0,0"); a failure is returned so the caller can show it.
    pub fn open(name: &str) -> Result<Self> {
        let pcm = Self::open_pcm(name)?;
        Ok(Self { name: name.into(), pcm: Some(pcm), fallback: NullSpeaker::new(), retry_at: None })
    }

    fn open_pcm(name: &str) -> Result<alsa::PCM> {
        use alsa::pcm::{Access, Format, HwParams};
        let err = |what: &'static str, e: alsa::Error| MediaError::Alsa {
            device: format!("playback {name}"),
            what,
            message: e.to_string(),
        };
        let pcm = alsa::PCM::new(name, alsa::Direction::Playback, false).map_err(|e| err("open", e))?;
        {
            let hw = HwParams::any(&pcm).map_err(|e| err("hw params", e))?;
            hw.set_access(Access::RWInterleaved).map_err(|e| err("access", e))?;
            hw.set_format(Format::s16()).map_err(|e| err("format S16", e))?;
            hw.set_channels(1).map_err(|e| err("mono", e))?;
            hw.set_rate(48_000, alsa::ValueOr::Nearest).map_err(|e| err("48 kHz", e))?;
            hw.set_period_size_near(FRAME as alsa::pcm::Frames, alsa::ValueOr::Nearest)
                .map_err(|e| err("period", e))?;
            hw.set_buffer_size_near((FRAME * 4) as alsa::pcm::Frames).map_err(|e| err("buffer", e))?;
            pcm.hw_params(&hw).map_err(|e| err("apply hw params", e))?;
        }
        Ok(pcm)
    }
}

impl Speaker for AlsaSpeaker {
    fn describe(&self) -> String {
        format!("ALSA {}", self.name)
    }
    fn play(&mut self, frame: &[i16]) -> Result<()> {
        if self.pcm.is_none() {
            // Device lost: keep the pace, try to reopen every 2 s.
            if self.retry_at.map_or(true, |t| Instant::now() >= t) {
                match Self::open_pcm(&self.name) {
                    Ok(p) => {
                        tracing::info!(device = %self.name, "playback device back");
                        self.pcm = Some(p);
                    }
                    Err(_) => self.retry_at = Some(Instant::now() + Duration::from_secs(2)),
                }
            }
            if self.pcm.is_none() {
                return self.fallback.play(frame);
            }
        }
        let outcome = {
            let pcm = self.pcm.as_ref().expect("checked");
            match pcm.io_i16() {
                Err(e) => Err(MediaError::Alsa {
                    device: format!("playback {}", self.name),
                    what: "write",
                    message: e.to_string(),
                }),
                Ok(io) => match io.writei(frame) {
                    Ok(_) => Ok(()),
                    // xrun or suspend: recover; anything else: the device is gone.
                    Err(e) => match pcm.try_recover(e, true) {
                        Ok(()) => {
                            let _ = io.writei(frame);
                            Ok(())
                        }
                        Err(_) => Err(MediaError::Alsa {
                            device: format!("playback {}", self.name),
                            what: "write",
                            message: format!("{e}; retrying"),
                        }),
                    },
                },
            }
        };
        if outcome.is_err() {
            self.pcm = None;
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alsa_playback_writes_to_the_null_device() {
        // ALSA's "null" PCM (alsa-lib's standard configuration) takes frames like a real card.
        let mut s = AlsaSpeaker::open("null").expect("ALSA null device");
        for _ in 0..5 {
            s.play(&vec![1000; FRAME]).unwrap();
        }
        assert!(AlsaSpeaker::open("hw:99,0").is_err(), "a missing card is an error, not a panic");
    }
}
