//! The crate's one error type. Display errors are never fatal to the daemon: the [`crate::Display`]
//! driver logs them, drops to no display and retries later.

use std::path::PathBuf;

/// Everything that can go wrong in roomcast-display.
#[derive(Debug, thiserror::Error)]
pub enum DisplayError {
    /// A state name that is not one of [`crate::PhaseName::ALL`].
    #[error("unknown state {0:?}; expected one of booting, no-network, finding-relay, joining, in-meeting, relay-lost, config-error, no-camera, set-up, leaving")]
    UnknownState(String),
    /// A size that is not WIDTHxHEIGHT.
    #[error("bad display size {0:?}; expected WIDTHxHEIGHT, e.g. 128x64 or 320x240")]
    BadSize(String),
    /// Opening or talking to a device or file failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done, e.g. "opening framebuffer".
        what: &'static str,
        /// The device or file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The I2C bus rejected a transfer (no ACK, bus error).
    #[error("I2C {bus} address {address:#04x}: {message}")]
    I2c {
        /// The bus device, e.g. "/dev/i2c-1".
        bus: String,
        /// The 7-bit device address.
        address: u8,
        /// The driver's description of the failure.
        message: String,
    },
    /// The framebuffer reports a pixel format this crate cannot draw.
    #[error("framebuffer {path}: unsupported format: {reason}")]
    UnsupportedFramebuffer {
        /// The framebuffer device.
        path: PathBuf,
        /// What is unsupported.
        reason: String,
    },
    /// Encoding or decoding a PNG failed.
    #[error("PNG {path}: {message}")]
    Png {
        /// The PNG file.
        path: PathBuf,
        /// The encoder's or decoder's message.
        message: String,
    },
    /// A `[screen]` setting or picture is unusable.
    #[error("screen: {0}")]
    BadScreen(String),
    /// No display was found by `auto`, or the backend is `none`.
    #[error("no display: {0}")]
    NoDisplay(String),
}
