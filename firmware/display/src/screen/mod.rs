//! The room's big screen: the other rooms' video composed into a layout that follows how many
//! there are (1, 2 side by side, 2x2, 3x3), each tile with the room's name, a muted mark and a
//! highlight on the active speaker, a status strip for the box itself and an optional
//! self-view; then shown on an output (`[screen] output`: DRM/KMS, framebuffer, a PNG about once
//! a second, or none).
//!
//! - [`layout`]: [`Layout`] and where each tile goes.
//! - [`canvas`]: the I420 canvas; tiles are scaled into it with fast_image_resize (SIMD), and
//!   it is turned into RGB with yuvutils-rs (SIMD) once per screen.
//! - [`compose`]: [`Compositor`], canvas + overlays (text from the status display's fonts).
//! - [`speaker`]: [`SpeakerTracker`], the active speaker from audio levels (sans-IO).
//! - [`output`]: [`ScreenOutput`] (parsed from the config) and [`ScreenSink`]; [`drm`]: the
//!   DRM/KMS output.
//!
//! The screen takes pictures as borrowed 8-bit 4:2:0 planes, roomcast-media's
//! [`I420Planes`] (one type for the decoder's output and the compositor's input), so it needs no
//! decoder: the box hands it what `decode::av1::Av1Decoder` produced.

pub mod canvas;
pub mod compose;
pub mod drm;
pub mod layout;
pub mod output;
pub mod speaker;

pub use compose::{Compositor, Status, Tile};
pub use layout::Layout;
pub use output::{ScreenOutput, ScreenSink};
pub use speaker::SpeakerTracker;

pub use roomcast_media::decode::I420Planes;
