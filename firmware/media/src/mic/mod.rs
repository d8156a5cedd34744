//! The microphone seam: [`Microphone`] yields 20 ms frames of 48 kHz 16-bit PCM.
//! [`synthetic::SyntheticMic`] plays a tone with a sample counter; [`alsa::AlsaMic`] captures
//! from an ALSA device with xrun and device-loss recovery.

pub mod alsa;
pub mod synthetic;

use crate::error::Result;
use crate::frame::AudioFrame;

/// A source of audio frames.
pub trait Microphone: Send {
    /// Human-readable name.
    fn describe(&self) -> String;
    /// 1 or 2.
    fn channels(&self) -> u8;
    /// Blocks until the next 20 ms frame.
    fn capture(&mut self) -> Result<AudioFrame>;
    /// True while the device is gone and silence is delivered.
    fn is_lost(&self) -> bool {
        false
    }
}

impl<M: Microphone + ?Sized> Microphone for Box<M> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn channels(&self) -> u8 {
        (**self).channels()
    }
    fn capture(&mut self) -> Result<AudioFrame> {
        (**self).capture()
    }
    fn is_lost(&self) -> bool {
        (**self).is_lost()
    }
}
