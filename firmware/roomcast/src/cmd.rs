//! The subcommands of `roomcast`, one module each.

pub mod box_daemon;
pub mod check_config;
pub mod codec_check;
pub mod config;
pub mod display;
pub mod gateway;
pub mod listen;
pub mod meeting_client;
pub mod probe;
pub mod record;
pub mod relay;
pub mod server;
pub mod stream;
