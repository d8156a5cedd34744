//! Wire formats: the RTP header ([`header`]), RTCP packets and reception statistics
//! ([`rtcp`]), sequence-number extension ([`seq`]) and SDP session descriptions ([`sdp`]).

pub mod header;
pub mod rtcp;
pub mod sdp;
pub mod seq;
