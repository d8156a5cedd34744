//! Tokio + socket2 drivers for the AMT relay and gateway of `roomcast-amt`.
