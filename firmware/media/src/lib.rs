//! Media capture and encoding for roomcast: camera, microphone, clock and video-encoder traits
//! with Linux implementations (V4L2 capture, Y4M files, ALSA, V4L2 M2M H.264, rav1e and libaom AV1, Opus) and
//! synthetic ones, plus the sender and receiver pipelines the box daemon and the
//! `roomcast stream|record|probe` commands are built on.
//!
//! Layout: [`frame`] raw media types, [`audio_processing`] (echo cancellation, noise suppression, gain), [`convert`] pixel formats to I420, [`camera`], [`mic`],
//! [`clock`], [`encoder`] (trait, rav1e, libaom, M2M, auto fallback), [`decode`] (remote rooms'
//! video, dav1d), [`opus`], [`pipeline`] (sender/receiver/recorder), [`probe`] (what hardware is
//! there), [`mixer`] and [`speaker`] (playback of the other rooms), [`button`] (the mute button,
//! any embedded-hal input pin).

pub mod audio_processing;
pub mod button;
pub mod camera;
pub mod clock;
pub mod convert;
pub mod decode;
pub mod encoder;
pub mod error;
pub mod frame;
pub mod mic;
pub mod mixer;
pub mod opus;
pub mod pipeline;
pub mod probe;
pub mod speaker;

pub use error::{MediaError, Result};
