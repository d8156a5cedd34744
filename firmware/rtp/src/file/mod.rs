//! File formats a recording is written in (and test streams read from): [`ivf`] (AV1),
//! [`annexb`] (H.264 byte stream) and [`ogg_opus`] (Ogg Opus).

pub mod annexb;
pub mod ivf;
pub mod ogg_opus;
