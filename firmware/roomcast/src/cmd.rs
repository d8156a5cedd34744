//! The subcommands of `roomcast`, one module each.

pub mod gateway;
pub mod relay;
