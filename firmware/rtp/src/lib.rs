//! Sans-IO RTP/RTCP/SDP: packetizers, depacketizers and the jitter buffer for H.264, AV1 and Opus.
