//! Ogg Opus files (RFC 7845) for the recorder's `audio.opus`: the OpusHead and OpusTags header
//! packets, then one Opus packet per Ogg packet with granule positions counting the 48 kHz
//! samples decoded so far (pre-skip included, RFC 7845 4: playback length = last granule -
//! pre-skip). Page framing and CRCs are the `ogg` crate's job.

use std::io::Write;

use ogg::writing::{PacketWriteEndInfo, PacketWriter};

use crate::error::Result;
use crate::opus::packet_samples;

/// Pages are closed every this many audio packets (1 s of 20 ms packets), so a recording that is
/// cut off still has nearly all its audio readable.
const PACKETS_PER_PAGE: u64 = 50;

/// Vendor string written to OpusTags.
pub const VENDOR: &str = concat!("roomcast-rtp ", env!("CARGO_PKG_VERSION"));

/// Builds the OpusHead identification header (RFC 7845 5.1), channel mapping family 0.
pub fn opus_head(channels: u8, pre_skip: u16, input_sample_rate: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(19);
    h.extend_from_slice(b"OpusHead");
    h.push(1);
    h.push(channels);
    h.extend_from_slice(&pre_skip.to_le_bytes());
    h.extend_from_slice(&input_sample_rate.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes());
    h.push(0);
    h
}

/// Builds the OpusTags comment header (RFC 7845 5.2) with no user comments.
pub fn opus_tags(vendor: &str) -> Vec<u8> {
    let mut t = Vec::with_capacity(16 + vendor.len());
    t.extend_from_slice(b"OpusTags");
    t.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    t.extend_from_slice(vendor.as_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    t
}

/// Writes Opus packets into an Ogg Opus stream.
pub struct OggOpusWriter<W: Write> {
    writer: PacketWriter<'static, W>,
    serial: u32,
    granule: u64,
    packets: u64,
    /// Written one packet late so the last one can carry the end-of-stream flag.
    pending: Option<(Vec<u8>, u64)>,
}

impl<W: Write> std::fmt::Debug for OggOpusWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OggOpusWriter").field("serial", &self.serial).field("granule", &self.granule).finish()
    }
}

impl<W: Write> OggOpusWriter<W> {
    /// Starts a stream with logical stream `serial`: writes OpusHead (its own page) and
    /// prepares OpusTags. `pre_skip` is the encoder lookahead in 48 kHz samples (312 for
    /// libopus at 48 kHz, as `opus_encoder_ctl(OPUS_GET_LOOKAHEAD)` reports).
    pub fn new(inner: W, serial: u32, channels: u8, pre_skip: u16) -> Result<Self> {
        let mut writer = PacketWriter::new(inner);
        writer.write_packet(opus_head(channels, pre_skip, 48_000), serial, PacketWriteEndInfo::EndPage, 0)?;
        Ok(Self { writer, serial, granule: 0, packets: 0, pending: Some((opus_tags(VENDOR), 0)) })
    }

    /// Appends one Opus packet; its duration is read from its TOC byte.
    pub fn write_packet(&mut self, packet: &[u8]) -> Result<()> {
        let samples = packet_samples(packet)?;
        self.granule += u64::from(samples);
        self.flush_pending(false)?;
        self.pending = Some((packet.to_vec(), self.granule));
        Ok(())
    }

    fn flush_pending(&mut self, last: bool) -> Result<()> {
        if let Some((data, granule)) = self.pending.take() {
            let header_packet = self.packets == 0;
            self.packets += 1;
            let info = if last {
                PacketWriteEndInfo::EndStream
            } else if header_packet || (self.packets - 1) % PACKETS_PER_PAGE == 0 {
                PacketWriteEndInfo::EndPage // OpusTags must end its page; then every second
            } else {
                PacketWriteEndInfo::NormalPacket
            };
            self.writer.write_packet(data, self.serial, info, granule)?;
        }
        Ok(())
    }

    /// Granule position so far: 48 kHz samples of all packets written (pre-skip included).
    pub fn granule_position(&self) -> u64 {
        self.granule
    }

    /// Writes the last packet with the end-of-stream flag and returns the sink.
    pub fn finish(mut self) -> Result<W> {
        self.flush_pending(true)?;
        let mut inner = self.writer.into_inner();
        inner.flush()?;
        Ok(inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_known_bytes() {
        assert_eq!(
            opus_head(2, 312, 48000),
            vec![b'O', b'p', b'u', b's', b'H', b'e', b'a', b'd', 1, 2, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, 0]
        );
        assert_eq!(opus_tags("x"), b"OpusTags\x01\x00\x00\x00x\x00\x00\x00\x00".to_vec());
    }

    #[test]
    fn writes_readable_stream() {
        let mut w = OggOpusWriter::new(Vec::new(), 42, 1, 312).unwrap();
        for i in 0..120u8 {
            w.write_packet(&[0xf8, i]).unwrap(); // config 31 (CELT FB 20 ms), mono, code 0
        }
        assert_eq!(w.granule_position(), 120 * 960);
        let bytes = w.finish().unwrap();
        let mut r = ogg::reading::PacketReader::new(std::io::Cursor::new(bytes));
        let head = r.read_packet().unwrap().unwrap();
        assert!(head.first_in_stream() && head.data.starts_with(b"OpusHead"));
        assert_eq!(r.read_packet().unwrap().unwrap().data, opus_tags(VENDOR));
        let mut n = 0;
        let mut last = None;
        while let Some(p) = r.read_packet().unwrap() {
            assert_eq!(p.data, vec![0xf8, n as u8]);
            n += 1;
            last = Some(p);
        }
        assert_eq!(n, 120);
        let last = last.unwrap();
        assert!(last.last_in_stream());
        assert_eq!(last.absgp_page(), 120 * 960);
    }
}
